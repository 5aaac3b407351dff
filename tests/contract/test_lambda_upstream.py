"""Mirror mode on Lambda, over moto's server: the API function and the function that copies.

The upstream is the project's own server over a second store (PEP 691 JSON with sizes). The
API function (`api_handler`, UPSTREAM_INDEX_URL, PULL_QUEUE_URL a moto SQS queue) answers the
first download of an upstream file with the upstream's URL and sends a pull message; the test
receives it from moto's SQS and hands it to `reindex_handler` as the event source mapping
would; the copy lands in moto's S3, verified; the next download is a presigned S3 redirect. A
tampered upstream file is refused (not retried) and never stored; an upstream that fails
during the copy is retried; the upstream's credentials come from Secrets Manager.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest

from serverless_pypi.adapters.aws_lambda import application, reindex_handler
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index import layout
from serverless_pypi.index.pull import QueuePuller
from serverless_pypi.storage.s3 import S3Store
from tests.helpers.index import JSON
from tests.helpers.lambda_events import (
    CONFIG,
    UPSTREAM_CONFIG,
    body_bytes,
    event,
    fresh_environment,
    handle,
)
from tests.helpers.servers import REGION, ROOT, LiveServer, create_bucket, stop
from tests.helpers.upstream import publish_upstream, start_upstream

NAME = NormalizedName("up-pkg")


fresh = fresh_environment


@dataclass
class Mirror:
    store: S3Store
    upstream: LiveServer
    wheel: Path
    queue: str

    @property
    def upstream_file(self) -> Path:
        """The wheel as the upstream's store holds it (to tamper with)."""
        [path] = Path(self.upstream.store).rglob(self.wheel.name)
        return path

    def copy_key(self) -> str:
        digest = hashlib.sha256(self.wheel.read_bytes()).hexdigest()
        return layout.upstream_file_key(NAME, digest, self.wheel.name)

    def messages(self) -> list[dict[str, Any]]:
        """What the pull queue holds now, received (as the event source mapping does)."""
        sqs = boto3.client("sqs", region_name=REGION)
        answer = sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
        return [dict(m) for m in answer.get("Messages", [])]


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping hands the indexer for `messages`."""
    return {
        "Records": [
            {"messageId": m["MessageId"], "body": m["Body"], "eventSource": "aws:sqs"}
            for m in messages
        ]
    }


@pytest.fixture
def mirror(
    aws_env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Mirror]:
    wheel = publish_upstream(tmp_path / "upstream", tmp_path / "work", "up_pkg", "1.0")
    upstream = start_upstream(tmp_path / "upstream")
    bucket = create_bucket(moto_url, "mirror")
    queue = boto3.client("sqs", region_name=REGION).create_queue(
        QueueName=f"pull-{uuid.uuid4().hex[:8]}"
    )["QueueUrl"]
    for variable in CONFIG + UPSTREAM_CONFIG:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("S3_BUCKET", bucket)
    monkeypatch.setenv("UPSTREAM_INDEX_URL", upstream.url)
    monkeypatch.setenv("UPSTREAM_MODE", "mirror")
    monkeypatch.setenv("PULL_QUEUE_URL", queue)
    fresh()
    yield Mirror(S3Store(bucket, endpoint_url=moto_url), upstream, wheel, queue)
    fresh()
    stop(upstream.process)


def download(filename: str) -> dict[str, Any]:
    return handle(event("function_url", f"{NAME}/{filename}"))


def test_a_download_is_pulled_through_and_then_served_from_s3(mirror: Mirror) -> None:
    page = handle(event("function_url", f"{NAME}/", headers={"Accept": JSON}))
    assert page["statusCode"] == 200
    [listed] = json.loads(body_bytes(page))["files"]
    assert listed["filename"] == mirror.wheel.name
    assert listed["hashes"]["sha256"] == hashlib.sha256(mirror.wheel.read_bytes()).hexdigest()

    # the first downloads go to the upstream, and ask once for a copy
    for _ in range(3):
        first = download(mirror.wheel.name)
        assert first["statusCode"] == 302
        assert first["headers"]["Location"].startswith(mirror.upstream.base)
    messages = mirror.messages()
    assert [json.loads(m["Body"]) for m in messages] == [
        {"pull": {"project": NAME, "file": mirror.wheel.name}}
    ]
    assert mirror.store.find(mirror.copy_key()) is None

    # the function that copies: the copy lands in S3, verified
    assert reindex_handler(sqs_event(messages)) == {"batchItemFailures": []}
    assert mirror.store.get(mirror.copy_key()).data == mirror.wheel.read_bytes()

    # the next download is a presigned redirect to the copy
    later = download(mirror.wheel.name)
    assert later["statusCode"] == 302
    location = later["headers"]["Location"]
    assert f"/{mirror.store.bucket}/{mirror.copy_key()}?" in location
    assert "X-Amz-Signature=" in location

    # a message delivered again finds the copy there: nothing fetched, nothing failed
    assert reindex_handler(sqs_event(messages)) == {"batchItemFailures": []}


def test_a_tampered_upstream_file_is_refused_and_never_stored(
    mirror: Mirror, caplog: pytest.LogCaptureFixture
) -> None:
    assert download(mirror.wheel.name)["statusCode"] == 302  # caches the page, asks for a copy
    data = mirror.upstream_file.read_bytes()
    mirror.upstream_file.write_bytes(bytes([data[0] ^ 1]) + data[1:])  # same size, other bytes
    messages = mirror.messages()
    assert len(messages) == 1
    with caplog.at_level(logging.WARNING, "serverless_pypi.index.pull"):
        # refused: reported done (not in batchItemFailures): a retry would be refused again
        assert reindex_handler(sqs_event(messages)) == {"batchItemFailures": []}
    [refusal] = [json.loads(r.getMessage()) for r in caplog.records if "refused" in r.getMessage()]
    assert refusal["project"] == NAME and refusal["file"] == mirror.wheel.name
    assert list(mirror.store.list(layout.UPSTREAM_FILES)) == []
    assert download(mirror.wheel.name)["headers"]["Location"].startswith(mirror.upstream.base)


def test_an_upstream_failing_during_the_copy_is_retried(mirror: Mirror) -> None:
    assert download(mirror.wheel.name)["statusCode"] == 302
    messages = mirror.messages()
    stop(mirror.upstream.process)
    answer = reindex_handler(sqs_event(messages))
    assert answer == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert list(mirror.store.list(layout.UPSTREAM_FILES)) == []


def test_mirror_mode_without_a_queue_copies_nothing_and_says_so(
    mirror: Mirror, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("PULL_QUEUE_URL")
    fresh()
    with caplog.at_level(logging.ERROR, "serverless_pypi"):
        for _ in range(2):
            answer = download(mirror.wheel.name)
            assert answer["headers"]["Location"].startswith(mirror.upstream.base)
    assert len([r for r in caplog.records if "PULL_QUEUE_URL" in r.getMessage()]) == 1
    assert mirror.messages() == []
    # a copy the bucket holds already (`serverless-pypi mirror`) is served
    mirror.store.put(mirror.copy_key(), mirror.wheel.read_bytes())
    assert mirror.copy_key() in download(mirror.wheel.name)["headers"]["Location"]


def test_a_failure_to_send_is_logged_not_raised(
    aws_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    puller = QueuePuller(f"{aws_env['AWS_ENDPOINT_URL']}/123456789012/no-such-queue")
    with caplog.at_level(logging.WARNING, "serverless_pypi.index.pull"):
        puller.request(NAME, "up_pkg-1.0.tar.gz")
    assert any("could not ask for a copy" in r.getMessage() for r in caplog.records)


# -- the upstream's credentials from Secrets Manager -------------------------------------------


@pytest.fixture
def locked_upstream() -> Iterator[tuple[str, list[str]]]:
    """An upstream that records the Authorization header of each request (and has nothing)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple/", seen
    server.shutdown()
    server.server_close()


def secret(value: str) -> str:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    return str(
        secrets.create_secret(Name=f"upstream-{uuid.uuid4().hex[:8]}", SecretString=value)["ARN"]
    )


@pytest.fixture
def function(
    aws_env: dict[str, str],
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
    locked_upstream: tuple[str, list[str]],
) -> Iterator[list[str]]:
    for variable in CONFIG + UPSTREAM_CONFIG:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("S3_BUCKET", create_bucket(moto_url, "secret"))
    monkeypatch.setenv("UPSTREAM_INDEX_URL", locked_upstream[0])
    monkeypatch.setenv("UPSTREAM_MODE", "proxy")
    fresh()
    yield locked_upstream[1]
    fresh()


def test_the_upstreams_credentials_come_from_the_secret(
    function: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = secret(json.dumps({"username": "reader", "password": "s3cr:et"}))
    monkeypatch.setenv("UPSTREAM_CREDENTIALS_SECRET", arn)
    assert handle(event("function_url", "public-pkg/"))["statusCode"] == 404
    assert function == ["Basic " + base64.b64encode(b"reader:s3cr:et").decode()]
    assert "s3cr:et" not in repr(application().settings)


@pytest.mark.parametrize("value", ['{"username": "reader"}', "not json", '["reader", "password"]'])
def test_a_secret_of_another_shape_is_a_configuration_error(
    function: list[str],
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("UPSTREAM_CREDENTIALS_SECRET", secret(value))
    with caplog.at_level(logging.ERROR, "serverless_pypi"):
        answer = handle(event("function_url", "public-pkg/"))
    assert answer["statusCode"] == 500 and "misconfigured" in answer["body"]
    [line] = [
        r.getMessage() for r in caplog.records if "UPSTREAM_CREDENTIALS_SECRET" in r.getMessage()
    ]
    assert '{"username": "...", "password": "..."}' in line
    assert "reader" not in line  # the secret's value is never logged
    assert function == []  # nothing was asked of the upstream


def test_credentials_in_two_places_are_refused(
    function: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_CREDENTIALS_SECRET", secret('{"username": "a", "password": "b"}'))
    monkeypatch.setenv("UPSTREAM_USERNAME", "other")
    answer = handle(event("function_url", "public-pkg/"))
    assert answer["statusCode"] == 500


API_FUNCTION = """
import json, sys
from serverless_pypi.adapters.aws_lambda import api_handler
from tests.helpers.lambda_events import event
page = api_handler(event("function_url", sys.argv[1] + "/"), None)
download = api_handler(event("function_url", sys.argv[1] + "/" + sys.argv[2]), None)
print(json.dumps({
    "statuses": [page["statusCode"], download["statusCode"]],
    "boto3": sorted(m for m in sys.modules if m.split(".")[0] in {"boto3", "botocore"}),
}))
"""


def test_the_api_function_caches_and_asks_without_boto3(
    mirror: Mirror, aws_env: dict[str, str]
) -> None:
    env = {
        **aws_env,
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
        **{k: os.environ[k] for k in ("S3_BUCKET", "UPSTREAM_INDEX_URL", "UPSTREAM_MODE")},
        "PULL_QUEUE_URL": mirror.queue,
    }
    done = subprocess.run(
        [sys.executable, "-c", API_FUNCTION, NAME, mirror.wheel.name],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"statuses": [200, 302], "boto3": []}
    # the page was cached in the bucket and the copy asked for
    assert mirror.store.find(layout.upstream_page_key(NAME)) is not None
    assert len(mirror.messages()) == 1
