"""Issue 10, item 1 end to end: S3 (moto's server) fails the PUT of a page during an upload
through a live server; the upload is answered 5xx, and its retry makes the file listed with
its hash and installable."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.clients import create_token, pip_install
from tests.helpers.dists import make_wheel, sha256
from tests.helpers.forms import post, upload_body
from tests.helpers.index import served_hashes
from tests.helpers.servers import (
    AtomicConditionalWrites,
    LiveServer,
    create_bucket,
    moto_env,
    start_moto,
)

pytestmark = pytest.mark.slow

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
    hooks: list[FailingPagePuts] = []

    def wrap(app: Any) -> FailingPagePuts:
        hooks.append(FailingPagePuts(AtomicConditionalWrites(app)))
        return hooks[0]

    server, url = start_moto(wrap)
    yield url, hooks[0]
    server.stop()


def test_an_upload_whose_page_write_failed_is_repaired_by_its_retry(
    failing_s3: tuple[str, FailingPagePuts],
    live_server: Callable[..., LiveServer],
    tmp_path: Path,
) -> None:
    url, hook = failing_s3
    env = moto_env(url)
    bucket = create_bucket(url)
    token = create_token(f"s3://{bucket}", "--scope", "write", env=env)
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
    assert served_hashes(server.url, "repaired-pkg") == {
        first.name: sha256(first),
        wheel.name: sha256(wheel),
    }
    request = urllib.request.Request(server.url + "repaired-pkg/", headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert f"{wheel.name}#sha256={sha256(wheel)}" in response.read().decode()
    with urllib.request.urlopen(server.url, timeout=10) as response:
        assert 'href="repaired-pkg/"' in response.read().decode()

    result = pip_install(server.url, tmp_path / "target", "repaired-pkg==2.0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "target" / "repaired_pkg.py").exists()
