"""Issue 10, item 1 end to end: S3 (moto's server) fails the PUT of a page during an upload
through a live server; the upload is answered 5xx, and its retry makes the file listed with
its hash and installable."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import BIN, REGION, AtomicConditionalWrites, LiveServer
from tests.dists import make_wheel
from tests.forms import post, upload_body
from tests.test_access import client_env
from tests.test_hardening_integrity import sha256

pytestmark = pytest.mark.slow

JSON = "application/vnd.pypi.simple.v1+json"
_INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)


class FailingPagePuts:
    """moto's WSGI app, answering 500 to every PUT of a key ending in `suffix` while armed."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.suffix: str | None = None
        self.failed = 0
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        suffix = self.suffix
        if (
            suffix is not None
            and environ.get("REQUEST_METHOD") == "PUT"
            and environ.get("PATH_INFO", "").endswith(suffix)
        ):
            with self.lock:
                self.failed += 1
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            start_response("500 Internal Server Error", [("Content-Type", "application/xml")])
            return [_INTERNAL_ERROR]
        return self.app(environ, start_response)


@pytest.fixture
def failing_s3() -> Iterator[tuple[str, FailingPagePuts]]:
    """A moto server of this test's own (the session's is shared), with the fault hook."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    assert server._server is not None
    hook = FailingPagePuts(AtomicConditionalWrites(server._server.app))
    server._server.app = hook
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}", hook
    server.stop()


def _env(url: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": url,
        "AWS_ENDPOINT_URL": url,
    }


def _json_page(server: LiveServer, project: str) -> dict[str, str]:
    request = urllib.request.Request(server.url + project + "/", headers={"Accept": JSON})
    with urllib.request.urlopen(request, timeout=10) as response:
        data = json.load(response)
    return {f["filename"]: f["hashes"].get("sha256", "") for f in data["files"]}


def test_an_upload_whose_page_write_failed_is_repaired_by_its_retry(
    failing_s3: tuple[str, FailingPagePuts],
    live_server: Callable[..., LiveServer],
    tmp_path: Path,
) -> None:
    url, hook = failing_s3
    env = _env(url)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    created = subprocess.run(
        [str(BIN / "serverless-pypi"), "token", "create", "--store", f"s3://{bucket}"]
        + ["--scope", "write"],
        check=True,
        capture_output=True,
        text=True,
        env=client_env(**env),
    )
    token = created.stdout.strip().splitlines()[-1]
    server = live_server(f"s3://{bucket}", env=env)
    first = make_wheel(tmp_path, "repaired-pkg", "1.0")
    status, text = post(server.url, *upload_body(first), token)
    assert status == 200, text
    wheel = make_wheel(tmp_path, "repaired-pkg", "2.0")
    body, content_type = upload_body(wheel)

    hook.suffix = "/.serverless-pypi/pages/repaired-pkg.json.gz"
    status, text = post(server.url, body, content_type, token)
    hook.suffix = None
    assert hook.failed > 0
    assert status >= 500, text
    # the manifest holds the record, but the pages still list 1.0 alone
    status, text = post(server.url, body, content_type, token)
    assert status == 200, text
    assert _json_page(server, "repaired-pkg") == {
        first.name: sha256(first),
        wheel.name: sha256(wheel),
    }
    request = urllib.request.Request(server.url + "repaired-pkg/", headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert f"{wheel.name}#sha256={sha256(wheel)}" in response.read().decode()
    with urllib.request.urlopen(server.url, timeout=10) as response:
        assert 'href="repaired-pkg/"' in response.read().decode()

    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
        + ["--no-input", "--target", str(tmp_path / "target"), "--index-url", server.url]
        + ["repaired-pkg==2.0"],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
        env=client_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "target" / "repaired_pkg.py").exists()
