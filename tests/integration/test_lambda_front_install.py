"""One index URL through the Lambda handler: real pip and uv over a function URL front.

A thread serves HTTP on 127.0.0.1 the way a Lambda function URL does: each request becomes a
payload 2.0 event for `api_handler` (in this process, over moto's S3), and the function's
answer becomes the HTTP response. Private packages live in the moto bucket; their public
dependencies on an upstream started here (the project's own server over a second directory).
In each mode (redirect, proxy, mirror) pip and uv install the tree with one index URL; in
mirror mode the pull queue (moto's SQS) is drained into `reindex_handler` as the event source
mapping would, the upstream is stopped, and a fresh execution environment installs the tree
again from the bucket alone.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from serverless_pypi.adapters.aws_lambda import reindex_handler
from serverless_pypi.index import layout
from serverless_pypi.storage.s3 import S3Store
from tests.helpers.clients import pip_install, uv_install
from tests.helpers.dists import make_wheel
from tests.helpers.index import publish_file
from tests.helpers.lambda_events import CONFIG, FunctionUrlFront, fresh_environment
from tests.helpers.lambda_events import UPSTREAM_CONFIG as LAMBDA_UPSTREAM_CONFIG
from tests.helpers.servers import REGION, LiveServer, create_bucket, stop
from tests.helpers.upstream import publish_upstream, start_upstream

pytestmark = pytest.mark.slow

UPSTREAM_CONFIG = (*LAMBDA_UPSTREAM_CONFIG, "FALLBACK_INDEX_URL")


class FunctionUrl(FunctionUrlFront):
    """The function URL front of these tests (`tests.helpers.lambda_events`)."""


@dataclass
class Front:
    url: str  # the index URL clients use
    store: S3Store
    upstream: LiveServer
    queue: str
    public: list[Path]

    def drain_pulls(self) -> int:
        """Hand every pull message to the indexer, as the event source mapping does."""
        sqs = boto3.client("sqs", region_name=REGION)
        handled = 0
        while True:
            answer = sqs.receive_message(
                QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = answer.get("Messages", [])
            if not messages:
                return handled
            records = [
                {"messageId": m["MessageId"], "body": m["Body"], "eventSource": "aws:sqs"}
                for m in messages
            ]
            result = reindex_handler({"Records": records})
            assert result == {"batchItemFailures": []}, result
            for m in messages:
                sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])
            handled += len(messages)


@pytest.fixture
def front(
    aws_env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Front]:
    upstream_dir = tmp_path / "upstream"
    public = [
        publish_upstream(upstream_dir, tmp_path / "w1", "public_util", "1.0"),
        publish_upstream(
            upstream_dir, tmp_path / "w2", "public_lib", "1.0", requires=("public-util",)
        ),
    ]
    # the dependency-confusion bait: a public acme-core far ahead of the private one
    publish_upstream(upstream_dir, tmp_path / "w3", "acme_core", "99.0")
    upstream = start_upstream(upstream_dir)
    bucket = create_bucket(moto_url, "front")
    store = S3Store(bucket, endpoint_url=moto_url)
    dists = tmp_path / "private"
    dists.mkdir()
    publish_file(store, make_wheel(dists, "acme_core", "1.0"))
    publish_file(store, make_wheel(dists, "acme_app", "1.0", requires=("acme-core", "public-lib")))
    queue = boto3.client("sqs", region_name=REGION).create_queue(
        QueueName=f"pull-{uuid.uuid4().hex[:8]}"
    )["QueueUrl"]
    for variable in CONFIG + UPSTREAM_CONFIG:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("S3_BUCKET", bucket)
    fresh_environment()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FunctionUrl)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Front(
            f"http://127.0.0.1:{server.server_address[1]}/simple/", store, upstream, queue, public
        )
    finally:
        server.shutdown()
        server.server_close()
        stop(upstream.process)
        fresh_environment()


def installed(target: Path) -> set[str]:
    return {p.name.split("-")[0] for p in target.glob("*.dist-info")}


def versions(target: Path) -> dict[str, str]:
    names = (p.name.removesuffix(".dist-info") for p in target.glob("*.dist-info"))
    return dict(name.split("-", 1) for name in names)


TREE = {"acme_app", "acme_core", "public_lib", "public_util"}


def configure(monkeypatch: pytest.MonkeyPatch, front: Front, mode: str) -> None:
    if mode == "redirect":
        monkeypatch.setenv("FALLBACK_INDEX_URL", front.upstream.url)
    else:
        monkeypatch.setenv("UPSTREAM_INDEX_URL", front.upstream.url)
        monkeypatch.setenv("UPSTREAM_MODE", mode)
        monkeypatch.setenv("PULL_QUEUE_URL", front.queue)
    fresh_environment()


@pytest.mark.parametrize("mode", ["redirect", "proxy", "mirror"])
def test_pip_and_uv_install_a_private_tree_with_public_dependencies(
    front: Front, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str
) -> None:
    configure(monkeypatch, front, mode)
    pip = pip_install(front.url, tmp_path / "pip", "acme-app")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    uv = uv_install(front.url, tmp_path / "uv", "acme-app")
    assert uv.returncode == 0, uv.stdout + uv.stderr
    for target in (tmp_path / "pip", tmp_path / "uv"):
        assert installed(target) == TREE
        assert versions(target)["acme_core"] == "1.0"  # never the upstream's 99.0


def test_mirror_mode_installs_again_with_the_upstream_down(
    front: Front, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    configure(monkeypatch, front, "mirror")
    first = pip_install(front.url, tmp_path / "first", "acme-app")
    assert first.returncode == 0, first.stdout + first.stderr
    assert front.drain_pulls() >= len(front.public)
    copies = {i.key.rsplit("/", 1)[1] for i in front.store.list(layout.UPSTREAM_FILES)}
    assert copies == {w.name for w in front.public}
    stop(front.upstream.process)
    # a new execution environment, revalidating every page (and failing to reach upstream)
    monkeypatch.setenv("UPSTREAM_TTL", "0")
    fresh_environment()
    started = time.monotonic()
    again = pip_install(front.url, tmp_path / "pip", "acme-app")
    assert again.returncode == 0, again.stdout + again.stderr
    uv = uv_install(front.url, tmp_path / "uv", "acme-app")
    assert uv.returncode == 0, uv.stdout + uv.stderr
    assert installed(tmp_path / "pip") == installed(tmp_path / "uv") == TREE
    assert time.monotonic() - started < 60
    # a project never cached answers 404 at once, not after a client's timeout
    started = time.monotonic()
    missing = pip_install(front.url, tmp_path / "missing", "never-seen")
    assert missing.returncode != 0
    assert "never-seen" in missing.stdout + missing.stderr
    assert time.monotonic() - started < 30
