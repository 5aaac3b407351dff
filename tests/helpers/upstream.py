"""Real upstream indexes for the upstream tests, and ways to watch the index talk to them.

Two upstreams: the project's own server over a second store (`start_upstream`: PEP 691 JSON
with sizes, upload times and core metadata, ETags and 304s), and pypiserver
(`start_pypiserver`: PEP 503 HTML with `#sha256=` fragments only, no upload times, no
metadata), the poorest upstream an index may meet.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from serverless_pypi.core.names import NormalizedName
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.upstream.client import Fetched, UpstreamClient
from tests.helpers.dists import make_wheel
from tests.helpers.index import publish_file
from tests.helpers.servers import LiveServer, start_server
from tests.helpers.upstream_e2e import Pypiserver
from tests.helpers.upstream_e2e import start_pypiserver as _start_pypiserver

__all__ = [
    "Pypiserver",
    "WatchedClient",
    "publish_upstream",
    "start_pypiserver",
    "start_upstream",
]


def start_upstream(store_dir: Path, log_dir: Path | None = None) -> LiveServer:
    """`serverless-pypi serve` over the local store at `store_dir` (no upstream of its own);
    stop it with `tests.helpers.servers.stop(server.process)`."""
    store_dir.mkdir(parents=True, exist_ok=True)
    env = {"FALLBACK_INDEX_URL": "", "UPSTREAM_INDEX_URL": "", "UPSTREAM_MODE": ""}
    return start_server(str(store_dir), log_dir or store_dir.parent, env)


def start_pypiserver(directory: Path, log_dir: Path | None = None) -> Pypiserver:
    """pypiserver over the distributions in `directory` (no fallback to PyPI)."""
    directory.mkdir(parents=True, exist_ok=True)
    return _start_pypiserver(directory, log_dir or directory.parent)


def publish_upstream(
    store_dir: Path,
    work: Path,
    name: str,
    version: str,
    *,
    requires_python: str | None = None,
    requires: tuple[str, ...] = (),
) -> Path:
    """Build a wheel and publish it into the upstream's store (as an upload would)."""
    work.mkdir(parents=True, exist_ok=True)
    wheel = make_wheel(work, name, version, requires_python=requires_python, requires=requires)
    publish_file(LocalStore(store_dir), wheel)
    return wheel


class WatchedClient(UpstreamClient):
    """The real client, recording what each page request got per project: "200", "304" or
    "error" (the upstream did not answer, or failed).

    `delay` holds every page request that long first, so concurrent requests overlap.
    """

    def __init__(self, index_url: str, *, delay: float = 0.0, **options: object) -> None:
        super().__init__(index_url, **options)  # type: ignore[arg-type]
        self.delay = delay
        self.pages: list[tuple[str, str]] = []
        self.gets: list[str] = []
        self._lock = threading.Lock()

    def project_page(self, name: NormalizedName, *, etag: str | None = None) -> Fetched | None:
        if self.delay:
            time.sleep(self.delay)
        try:
            fetched = super().project_page(name, etag=etag)
        except Exception:
            with self._lock:
                self.pages.append((name, "error"))
            raise
        with self._lock:
            self.pages.append((name, "304" if fetched is None else "200"))
        return fetched

    def get(self, url: str, *, max_bytes: int) -> bytes:
        with self._lock:
            self.gets.append(url)
        return super().get(url, max_bytes=max_bytes)

    def answers(self, name: str) -> list[str]:
        """What the page requests for `name` got, in order."""
        with self._lock:
            return [answer for project, answer in self.pages if project == name]
