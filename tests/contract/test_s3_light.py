"""The API function's S3 client (`storage.s3_light`): what the shared store contract does not say.

The contract itself (tests/contract/test_storage_contract.py, test_deliver.py) runs over it as
the `s3-light` store. Here: its reads and small puts import no AWS SDK, its other writes go
through boto3 (imported at the first one), listings follow continuation tokens, S3's refusals
mean what they mean to the boto3 store, busy answers are retried, stale kept-alive connections
are replaced, and without credentials in the environment it answers through boto3's credential
chain.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from serverless_pypi.storage import (
    AccessDenied,
    BucketNotFound,
    NoCredentials,
    NotFound,
    StoreError,
    StoreUnreachable,
)
from serverless_pypi.storage import s3_light as s3_light_module
from serverless_pypi.storage.s3_light import LightS3Store
from tests.helpers.servers import REGION, ROOT, free_port

READS = """
import json, sys
from serverless_pypi.storage.s3_light import LightS3Store
store = LightS3Store(sys.argv[1], endpoint_url=sys.argv[2])
blob = store.get("pkg/a.whl")
assert blob.data == b"wheel", blob
assert store.head("pkg/a.whl").size == 5
assert [i.key for i in store.list("pkg/")] == ["pkg/a.whl"]
assert list(store.list_folders()) == ["pkg"]
store.check()
with store.open("pkg/a.whl") as stream:
    assert stream.read() == b"wheel"
assert "X-Amz-Signature=" in store.deliver("pkg/a.whl", "GET", 60).url
store.put("pkg/b.whl", b"more", if_none_match=True)  # a small put: signed here too
assert store.get("pkg/b.whl").data == b"more"
before = sorted(m for m in sys.modules if m.split(".")[0] in {"boto3", "botocore"})
store.delete("pkg/b.whl")
after = any(m.split(".")[0] == "boto3" for m in sys.modules)
print(json.dumps({"before": before, "after": after}))
"""


def test_reads_import_no_sdk_and_writes_import_boto3(
    s3_bucket: str, moto_url: str, aws_env: dict[str, str]
) -> None:
    boto3.client("s3", endpoint_url=moto_url, region_name=REGION).put_object(
        Bucket=s3_bucket, Key="pkg/a.whl", Body=b"wheel"
    )
    done = subprocess.run(
        [sys.executable, "-c", READS, s3_bucket, moto_url],
        capture_output=True,
        text=True,
        check=False,
        env={**aws_env, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"before": [], "after": True}


def test_the_writer_is_built_at_the_first_write(light_s3_store: LightS3Store) -> None:
    with pytest.raises(NotFound):
        light_s3_store.get("pkg/x")
    list(light_s3_store.list())
    light_s3_store.put("pkg/y", b"small bytes")
    assert light_s3_store._writer is None
    light_s3_store.put("pkg/x", io.BytesIO(b"1"))  # a file object: through boto3
    assert light_s3_store._writer is not None
    assert light_s3_store.get("pkg/x").data == b"1"


def _count_pages(store: LightS3Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pages: list[int] = []
    original = store._list_page

    def counted(query: dict[str, str]) -> Any:
        page = original(query)
        pages.append(sum(1 for e in page if e.tag.endswith(("}Contents", "}CommonPrefixes"))))
        return page

    monkeypatch.setattr(store, "_list_page", counted)
    return pages


def test_listings_follow_continuation_tokens(
    light_s3_store: LightS3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = sorted(f"pkg/f {i:03d}+ü" for i in range(23))  # and keys that need encoding
    for key in keys:
        light_s3_store.put(key, b"x")
    for i in range(9):
        light_s3_store.put(f"folder{i}/x", b"x")
    light_s3_store.page_size = 5
    pages = _count_pages(light_s3_store, monkeypatch)
    assert [i.key for i in light_s3_store.list("pkg/")] == keys
    assert pages == [5, 5, 5, 5, 3]
    pages.clear()
    assert list(light_s3_store.list_folders()) == [f"folder{i}" for i in range(9)] + ["pkg"]
    assert len(pages) == 2


def test_a_listing_over_a_thousand_keys(
    light_s3_store: LightS3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"big/pkg-{i:04d}.tar.gz" for i in range(1005)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: light_s3_store.put(k, b""), keys))
    pages = _count_pages(light_s3_store, monkeypatch)
    assert [i.key for i in light_s3_store.list("big/")] == keys
    assert pages == [1000, 5]


def test_a_prefix_isolates_keys(s3_bucket: str, moto_url: str) -> None:
    raw = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
    raw.put_object(Bucket=s3_bucket, Key="outside/x", Body=b"o")
    raw.put_object(Bucket=s3_bucket, Key="some/prefixed/y", Body=b"o")
    store = LightS3Store(s3_bucket, "/some/prefix/", endpoint_url=moto_url)
    assert store.location == f"s3://{s3_bucket}/some/prefix/"
    store.put("pkg/p-1.0.tar.gz", b"data")
    assert raw.get_object(Bucket=s3_bucket, Key="some/prefix/pkg/p-1.0.tar.gz")["Body"].read()
    assert [i.key for i in store.list()] == ["pkg/p-1.0.tar.gz"]
    assert list(store.list_folders()) == ["pkg"]
    with pytest.raises(NotFound):
        store.get("outside/x")
    assert "/some/prefix/pkg/p-1.0.tar.gz?" in store.deliver("pkg/p-1.0.tar.gz", "GET", 60).url


def test_a_missing_bucket_is_an_error_not_an_empty_store(
    aws_env: dict[str, str], moto_url: str
) -> None:
    store = LightS3Store("no-such-bucket-here", endpoint_url=moto_url)
    for action in (
        lambda: store.get("x/y"),
        lambda: list(store.list()),
        lambda: list(store.list_folders()),
        store.check,
    ):
        with pytest.raises(BucketNotFound):
            action()


def test_without_credentials_in_the_environment_boto3_answers(
    light_s3_store: LightS3Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    light_s3_store.put("pkg/x", b"1")
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = LightS3Store(light_s3_store.bucket, endpoint_url=light_s3_store.endpoint_url)
    with pytest.raises(NoCredentials):
        store.get("pkg/x")
    with pytest.raises(NoCredentials):
        store.check()


# -- answers of a stand-in S3: refusals, retries, framing, stale connections -----------------


class Script:
    """What the stand-in answers, in order: (status, headers, body, close after it)."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str], bytes, bool]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.connections: set[int] = set()


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            script.requests.append((self.command, self.path, dict(self.headers.items())))
            script.connections.add(self.client_address[1])  # the client port: a connection
            status, headers, body, close = script.answers.pop(0)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if "Transfer-Encoding" not in headers and "Content-Length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
            if close:
                self.close_connection = True

        do_GET = do_HEAD = _answer  # noqa: N815

    return Handler


@pytest.fixture
def stand_in(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Script, LightS3Store]]:
    script = Script()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setattr(s3_light_module, "_backoff", lambda attempt: None)
    store = LightS3Store("bucket", endpoint_url=f"http://127.0.0.1:{server.server_address[1]}")
    yield script, store
    server.shutdown()
    server.server_close()


DATE = {"Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT", "ETag": '"e1"'}


def error(code: str, status: int) -> tuple[int, dict[str, str], bytes, bool]:
    body = f"<Error><Code>{code}</Code><Message>{code} said S3</Message></Error>"
    return status, {"Content-Type": "application/xml"}, body.encode(), False


@pytest.mark.parametrize(
    ("answer", "kind", "words"),
    [
        (error("AccessDenied", 403), AccessDenied, "access denied"),
        (error("NoSuchBucket", 404), BucketNotFound, "does not exist"),
        (error("InvalidAccessKeyId", 403), NoCredentials, "access key id"),
        (error("ExpiredToken", 400), NoCredentials, "expired"),
        ((403, {}, b"", False), AccessDenied, "access denied"),  # no body, as HEAD answers
    ],
)
def test_refusals_mean_what_they_mean_to_the_boto3_store(
    stand_in: tuple[Script, LightS3Store], answer: Any, kind: type[StoreError], words: str
) -> None:
    script, store = stand_in
    script.answers = [answer]
    with pytest.raises(kind) as raised:
        store.get("k")
    assert words in str(raised.value) and not isinstance(raised.value, NotFound)


def test_busy_answers_are_retried(stand_in: tuple[Script, LightS3Store]) -> None:
    script, store = stand_in
    script.answers = [
        error("SlowDown", 503),
        error("InternalError", 500),
        (200, DATE, b"ok", False),
    ]
    assert store.get("k").data == b"ok"
    assert len(script.requests) == 3
    script.answers = [error("SlowDown", 503)] * 4
    with pytest.raises(StoreUnreachable, match="busy"):
        store.get("k")


def test_requests_are_signed_and_carry_the_session_token(
    stand_in: tuple[Script, LightS3Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    script, store = stand_in
    monkeypatch.setenv("AWS_SESSION_TOKEN", "the-token")
    script.answers = [(304, DATE, b"", False)]
    with pytest.raises(StoreError):
        store.get("a b/ü", if_none_match='"e1"')
    method, path, headers = script.requests[0]
    assert (method, path) == ("GET", "/bucket/a%20b/%C3%BC")
    assert headers["If-None-Match"] == '"e1"' and headers["X-Amz-Security-Token"] == "the-token"
    assert "SignedHeaders=host;if-none-match;x-amz-content-sha256;" in headers["Authorization"]


def test_the_connection_is_kept_alive_and_a_stale_one_replaced(
    stand_in: tuple[Script, LightS3Store],
) -> None:
    script, store = stand_in
    script.answers = [(200, DATE, b"1", False), (200, DATE, b"2", True), (200, DATE, b"3", False)]
    assert [store.get("k").data for _ in range(2)] == [b"1", b"2"]
    assert len(script.connections) == 1  # the first two on one connection
    # the server closed it after the second answer: the third goes on a new one, unnoticed
    assert store.get("k").data == b"3"
    assert len(script.connections) == 2


def test_chunked_answers_and_heads(stand_in: tuple[Script, LightS3Store]) -> None:
    script, store = stand_in
    chunked = b"4\r\nwhee\r\n3;ext=1\r\nl!!\r\n0\r\n\r\n"
    script.answers = [
        (200, {**DATE, "Transfer-Encoding": "chunked"}, chunked, False),
        (200, {**DATE, "Content-Length": "12345"}, b"", False),
        (200, DATE, b"after", False),
    ]
    assert store.get("k").data == b"wheel!!"
    info = store.head("k")
    assert (info.size, info.etag, info.last_modified.isoformat()) == (
        12345,
        '"e1"',
        "2026-12-01T10:00:00+00:00",
    )
    assert store.get("k").data == b"after"  # the framing left the connection usable
    assert len(script.connections) == 1


def test_an_endpoint_that_does_not_answer(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_light_module, "_backoff", lambda attempt: None)
    store = LightS3Store("pkgs", endpoint_url=f"http://127.0.0.1:{free_port()}")
    for action in (lambda: store.get("k"), lambda: list(store.list()), store.check):
        with pytest.raises(StoreUnreachable, match="does not answer"):
            action()
