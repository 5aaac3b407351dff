"""The API function's boto3-free `put` (`LightS3Store.put` of small byte bodies).

The API function caches upstream pages and core metadata in the store; importing boto3 for
that would cost its cold start 200 ms. The light put must give exactly what boto3's put gives
on moto (etags, stored bytes, headers, conditions, errors), be signed as botocore signs a
PutObject, and leave larger bodies and file objects to boto3.
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from serverless_pypi.storage import BucketNotFound, PreconditionFailed, Store, StoreError, sigv4
from serverless_pypi.storage import s3_light as s3_light_module
from serverless_pypi.storage.s3 import S3Store
from serverless_pypi.storage.s3_light import LightS3Store
from tests.helpers.servers import REGION, create_bucket

Outcome = tuple[str, Any]


def outcome(action: Callable[[], Any]) -> Outcome:
    try:
        return "ok", action()
    except StoreError as e:
        return "error", type(e).__name__


def stored(store: S3Store | LightS3Store, key: str) -> dict[str, Any]:
    """What S3 holds under `key`: bytes and the headers a download gets."""
    s3 = boto3.client("s3", region_name=REGION)  # moto's, from the environment
    try:
        answer = s3.get_object(Bucket=store.bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return {}
    return {
        "body": answer["Body"].read(),
        "etag": answer["ETag"],
        "type": answer.get("ContentType"),
        "encoding": answer.get("ContentEncoding"),
    }


def scenario(store: Store) -> list[Outcome]:
    """A run of puts with every option and condition, and what each gave."""
    results: list[Outcome] = []
    first = outcome(lambda: store.put("pages/a.json", b'{"a": 1}'))
    results.append(first)
    etag = first[1]
    results += [
        outcome(
            lambda: store.put(
                "pages/b.json.gz",
                b"\x1f\x8b compressed",
                content_type="application/vnd.pypi.simple.v1+json",
                content_encoding="gzip",
            )
        ),
        outcome(lambda: store.put("pages/a.json", b"again", if_none_match=True)),
        outcome(lambda: store.put("pages/new.json", b"new", if_none_match=True)),
        outcome(lambda: store.put("pages/a.json", b"stale", if_match='"0123"')),
        outcome(lambda: store.put("pages/missing.json", b"x", if_match=etag)),
        outcome(lambda: store.put("pages/a.json", b"current", if_match=etag)),
        outcome(lambda: store.put("pages/empty", b"")),
        outcome(lambda: store.put("pages/ü b+c%.json", b"encoded key")),
    ]
    return results


KEYS = [
    "pages/a.json",
    "pages/b.json.gz",
    "pages/new.json",
    "pages/missing.json",
    "pages/empty",
    "pages/ü b+c%.json",
]


def test_the_light_put_gives_what_boto3s_put_gives(moto_url: str, aws_env: dict[str, str]) -> None:
    boto = S3Store(create_bucket(moto_url), endpoint_url=moto_url)
    light = LightS3Store(create_bucket(moto_url), endpoint_url=moto_url)
    ours, theirs = scenario(light), scenario(boto)
    assert light._writer is None  # not one of them went through boto3
    assert ours == theirs
    assert [r[0] for r in ours] == ["ok", "ok", "error", "ok", "error", "error", "ok", "ok", "ok"]
    assert ours[2][1] == ours[4][1] == ours[5][1] == "PreconditionFailed"
    for key in KEYS:
        assert stored(light, key) == stored(boto, key), key
    assert stored(light, "pages/a.json")["body"] == b"current"
    assert stored(light, "pages/b.json.gz")["encoding"] == "gzip"


def test_a_light_put_into_a_missing_bucket(moto_url: str, aws_env: dict[str, str]) -> None:
    light = LightS3Store("no-such-bucket-here", endpoint_url=moto_url)
    with pytest.raises(BucketNotFound):
        light.put("k", b"x")
    with pytest.raises(BucketNotFound):
        S3Store("no-such-bucket-here", endpoint_url=moto_url).put("k", b"x")


def test_larger_bodies_and_file_objects_go_through_boto3(
    light_s3_store: LightS3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_light_module, "MAX_LIGHT_PUT", 10)
    light_s3_store.put("small", b"0123456789")
    assert light_s3_store._writer is None
    light_s3_store.put("large", b"0123456789!")
    assert light_s3_store._writer is not None
    light_s3_store._writer = None
    light_s3_store.put("file", io.BytesIO(b"1"))
    assert light_s3_store._writer is not None
    assert [light_s3_store.get(k).data for k in ("small", "large", "file")] == [
        b"0123456789",
        b"0123456789!",
        b"1",
    ]


# -- the request itself, against botocore's signature ----------------------------------------

FROZEN = datetime.datetime(2026, 3, 4, 5, 6, 7)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[Any], LightS3Store]]:
    """A light store whose requests go to a stand-in that records them and answers 200."""
    seen: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_PUT(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.command, self.path, dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("ETag", '"stand-in"')
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "ASIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret/with+slash=",
        "AWS_SESSION_TOKEN": "the-token",
        "AWS_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)
    monkeypatch.setattr(sigv4, "clock", lambda: float(calendar.timegm(FROZEN.timetuple())))
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield seen, LightS3Store("bucket", "some/prefix", endpoint_url=endpoint)
    server.shutdown()
    server.server_close()


def test_a_light_put_is_signed_as_botocore_signs_it(
    recorder: tuple[list[Any], LightS3Store],
) -> None:
    seen, store = recorder
    body = b'{"meta": {"api-version": "1.1"}}'
    etag = store.put(
        "a b/ü.json",
        body,
        content_type="application/json",
        content_encoding="gzip",
        if_match='"e1"',
    )
    assert etag == '"stand-in"'
    [(method, path, headers, sent)] = seen
    assert (method, path, sent) == ("PUT", "/bucket/some/prefix/a%20b/%C3%BC.json", body)
    assert headers["X-Amz-Content-SHA256"] == hashlib.sha256(body).hexdigest()
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["If-Match"] == '"e1"'
    # what was signed: all but the signature, and the framing http1 adds (botocore, too,
    # frames the body after signing)
    signed = {k: v for k, v in headers.items() if k not in {"Authorization", "Content-Length"}}
    request = AWSRequest(
        method="PUT", url=f"http://{headers['Host']}{path}", data=body, headers=signed
    )
    botocore.auth.S3SigV4Auth(
        BotoCredentials("ASIAEXAMPLE", "secret/with+slash=", "the-token"), "s3", "eu-west-1"
    ).add_auth(request)
    assert request.headers["Authorization"] == headers["Authorization"]
    assert "content-type;host;if-match;x-amz-content-sha256" in headers["Authorization"]


def test_a_light_put_without_conditions_sends_none(
    recorder: tuple[list[Any], LightS3Store],
) -> None:
    seen, store = recorder
    store.put("k", b"x", if_none_match=True)
    store.put("k", b"y")
    assert seen[0][2]["If-None-Match"] == "*"
    assert not {"If-None-Match", "If-Match", "Content-Type"} & set(seen[1][2])


def test_a_lost_condition_is_precondition_failed(light_s3_store: LightS3Store) -> None:
    light_s3_store.put("k", b"1")
    with pytest.raises(PreconditionFailed):
        light_s3_store.put("k", b"2", if_none_match=True)
    assert light_s3_store.get("k").data == b"1"
