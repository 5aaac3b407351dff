"""A warm install revalidates: pip and uv send If-None-Match and get 304s (issue 15, item 4).

uv revalidates strong ETags only (RFC 9110 section 8.8.3): each content coding of a page has
its own. The server's request log says what the clients asked and what they got.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from serverless_pypi.storage.local import LocalStore
from tests.helpers.clients import PIP, UV, run_client
from tests.helpers.dists import make_wheel
from tests.helpers.index import publish_file
from tests.helpers.servers import LiveServer

pytestmark = pytest.mark.slow

Start = Callable[..., LiveServer]


def _served(server: LiveServer, status: int) -> list[str]:
    """The paths the server answered with `status`, from its request log."""
    pattern = re.compile(r"(GET|HEAD) (\S+) (\d{3}) ")
    lines = server.log.read_text(errors="replace").splitlines()
    return [m.group(2) for line in lines if (m := pattern.search(line)) and int(m[3]) == status]


@pytest.fixture
def server(live_server: Start, tmp_path: Path) -> LiveServer:
    root = tmp_path / "store"
    store = LocalStore(root)
    for version in ("1.0", "1.1"):
        publish_file(store, make_wheel(tmp_path, "acme", version))
    return live_server(str(root))


def _uv(server: LiveServer, cache: Path, target: Path) -> None:
    result = run_client(
        UV,
        "pip",
        "install",
        "--no-config",
        "--cache-dir",
        str(cache),
        "--python",
        sys.executable,
        "--target",
        str(target),
        "--index-url",
        server.url,
        "acme",
    )
    assert result.returncode == 0, result.stderr


def _pip(server: LiveServer, cache: Path, target: Path) -> None:
    result = run_client(
        *PIP,
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--cache-dir",
        str(cache),
        # pip caches HTTP responses of https:// and trusted hosts only
        "--trusted-host",
        "127.0.0.1",
        "--target",
        str(target),
        "--index-url",
        server.url,
        "acme",
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("client", [_uv, _pip], ids=["uv", "pip"])
def test_a_warm_install_gets_304s(
    server: LiveServer, tmp_path: Path, client: Callable[[LiveServer, Path, Path], None]
) -> None:
    cache = tmp_path / "cache"
    client(server, cache, tmp_path / "cold")
    assert _served(server, 304) == []
    assert "/simple/acme/" in _served(server, 200)
    client(server, cache, tmp_path / "warm")
    # the page revalidated with If-None-Match and answered 304, not downloaded again
    assert "/simple/acme/" in _served(server, 304)
    assert _served(server, 200).count("/simple/acme/") == 1
