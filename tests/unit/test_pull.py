"""Pulling upstream files through (`index.pull`): verified copies, refusals, the local puller.

The upstream is real HTTP: a standard-library server in the test that serves a PEP 691 page and
the files it lists, and can serve bytes that do not match what the page advertises, fail, or
be slow; and once the project's own server over a second store. The store is a local one
(the store contract of `put_stream` runs over every store in tests/contract).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.upstream import JSON_TYPE, parse_page
from serverless_pypi.index import layout
from serverless_pypi.index.pull import BackgroundPuller, PullRefused, pull_file
from serverless_pypi.index.upstream_cache import CachedPage, UpstreamCache
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.upstream.client import UpstreamClient, UpstreamUnavailable
from tests.helpers.servers import stop
from tests.helpers.upstream import publish_upstream, start_upstream

NAME = NormalizedName("demo")
WHEEL = "demo-1.0-py3-none-any.whl"
SDIST = "demo-1.0.tar.gz"


@dataclass
class Upstream:
    """What the stand-in upstream serves: files by name, and the page's claims about them."""

    files: dict[str, bytes] = field(default_factory=dict)
    #: what the page lists per file: {"sha256": ..., "size": ...}; None values are left out
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: bytes served instead of a file's own (a tampered upstream)
    served: dict[str, bytes] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    delay: float = 0.0
    requests: list[str] = field(default_factory=list)
    url: str = ""
    #: called before a file's bytes are sent (a page that changes during a copy)
    before_body: Any = None

    def add(self, filename: str, data: bytes, **claims: Any) -> None:
        self.files[filename] = data
        self.claims[filename] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            **claims,
        }

    def page(self) -> bytes:
        files = []
        for filename, claim in self.claims.items():
            entry: dict[str, Any] = {
                "filename": filename,
                "url": f"../../files/{filename}",
                "hashes": {"sha256": claim["sha256"]} if claim["sha256"] else {},
            }
            if claim["size"] is not None:
                entry["size"] = claim["size"]
            files.append(entry)
        return json.dumps({"meta": {"api-version": "1.1"}, "name": NAME, "files": files}).encode()

    def file_requests(self) -> list[str]:
        return [r for r in self.requests if r.startswith("/files/")]


def _handler(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            upstream.requests.append(self.path)
            if self.path == f"/simple/{NAME}/":
                self._send(200, upstream.page(), JSON_TYPE)
                return
            filename = self.path.removeprefix("/files/")
            status = upstream.statuses.get(filename, 200)
            if filename not in upstream.files or status != 200:
                self._send(404 if status == 200 else status, b"no", "text/plain")
                return
            time.sleep(upstream.delay)
            if upstream.before_body is not None:
                upstream.before_body()
            data = upstream.served.get(filename, upstream.files[filename])
            self._send(200, data, "application/octet-stream")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    state = Upstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def cache(local_store: LocalStore) -> UpstreamCache:
    return UpstreamCache(local_store)


def cache_page(cache: UpstreamCache, client: UpstreamClient, name: NormalizedName = NAME) -> None:
    """Fetch the project's page from the upstream and keep it, as the repository does."""
    fetched = client.project_page(name)
    assert fetched is not None
    page = parse_page(fetched.data, fetched.content_type, fetched.url, name)
    cache.save_page(name, CachedPage(page, fetched.etag, time.time()))


def copies(cache: UpstreamCache) -> list[str]:
    """Every file under the pulled-through namespace, temporary files included."""
    root = Path(cache.store.location) / layout.UPSTREAM_FILES
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_file_is_copied_verified_and_then_not_fetched_again(
    upstream: Upstream, cache: UpstreamCache
) -> None:
    data = b"wheel bytes " * 10000
    upstream.add(WHEEL, data)
    client = UpstreamClient(upstream.url)
    cache_page(cache, client)
    assert pull_file(cache, client, NAME, WHEEL) is True
    digest = hashlib.sha256(data).hexdigest()
    assert copies(cache) == [f"demo/{digest}/{WHEEL}"]
    file = cache.page(NAME).page.file(WHEEL)  # type: ignore[union-attr]
    assert file is not None and cache.find_file(NAME, file) is not None
    assert cache.store.get(cache.file_key(NAME, file)).data == data
    # already there: no upstream request at all
    assert pull_file(cache, client, NAME, WHEEL) is False
    assert upstream.file_requests() == [f"/files/{WHEEL}"]


def test_bytes_that_do_not_match_the_sha256_are_refused_and_not_stored(
    upstream: Upstream, cache: UpstreamCache, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.add(WHEEL, b"the real wheel")
    upstream.served[WHEEL] = b"a tampered one"  # same size, other bytes
    client = UpstreamClient(upstream.url)
    cache_page(cache, client)
    with caplog.at_level(logging.WARNING, "serverless_pypi.index.pull"):
        with pytest.raises(PullRefused, match="expected sha256"):
            pull_file(cache, client, NAME, WHEEL)
    assert copies(cache) == []
    [line] = [json.loads(r.getMessage()) for r in caplog.records]
    assert line == {
        "pull": "refused",
        "project": "demo",
        "file": WHEEL,
        "expected": f"sha256 {hashlib.sha256(b'the real wheel').hexdigest()}, 14 bytes",
        "actual": f"sha256 {hashlib.sha256(b'a tampered one').hexdigest()}",
    }


@pytest.mark.parametrize("served", [b"the real wheel" + b"!", b"the real"])
def test_a_size_that_is_not_the_listed_one_is_refused(
    upstream: Upstream, cache: UpstreamCache, served: bytes
) -> None:
    upstream.add(WHEEL, b"the real wheel")
    upstream.served[WHEEL] = served
    client = UpstreamClient(upstream.url)
    cache_page(cache, client)
    with pytest.raises(PullRefused):
        pull_file(cache, client, NAME, WHEEL)
    assert copies(cache) == []


def test_a_file_not_listed_or_listed_without_a_sha256_is_never_fetched(
    upstream: Upstream, cache: UpstreamCache
) -> None:
    upstream.add(WHEEL, b"wheel", sha256=None)
    upstream.files[SDIST] = b"sdist: served, but not on the page"
    client = UpstreamClient(upstream.url)
    with pytest.raises(PullRefused, match="not listed"):
        pull_file(cache, client, NAME, WHEEL)  # no page cached at all
    cache_page(cache, client)
    with pytest.raises(PullRefused, match="without a sha256"):
        pull_file(cache, client, NAME, WHEEL)
    with pytest.raises(PullRefused, match="not listed"):
        pull_file(cache, client, NAME, SDIST)
    assert upstream.file_requests() == [] and copies(cache) == []


def test_the_size_bound(upstream: Upstream, cache: UpstreamCache) -> None:
    upstream.add(WHEEL, b"x" * 1000)
    upstream.add(SDIST, b"y" * 1000, size=None)  # the size is not listed: read to the bound
    client = UpstreamClient(upstream.url)
    cache_page(cache, client)
    with pytest.raises(PullRefused, match="over the limit"):
        pull_file(cache, client, NAME, WHEEL, max_size=999)
    assert upstream.file_requests() == []  # known from the page: not even asked
    with pytest.raises(PullRefused, match="more than 999 bytes"):
        pull_file(cache, client, NAME, SDIST, max_size=999)
    assert copies(cache) == []
    assert pull_file(cache, client, NAME, SDIST, max_size=1000) is True


def test_a_file_gone_from_its_url_is_refused_a_failing_upstream_is_not(
    upstream: Upstream, cache: UpstreamCache
) -> None:
    upstream.add(WHEEL, b"wheel")
    upstream.add(SDIST, b"sdist")
    upstream.statuses[WHEEL] = 404
    upstream.statuses[SDIST] = 503
    client = UpstreamClient(upstream.url)
    cache_page(cache, client)
    with pytest.raises(PullRefused, match="nothing at its URL"):
        pull_file(cache, client, NAME, WHEEL)
    with pytest.raises(UpstreamUnavailable):  # try again later
        pull_file(cache, client, NAME, SDIST)
    assert copies(cache) == []


def test_a_copy_finished_after_the_file_left_the_page_is_not_kept(
    upstream: Upstream, cache: UpstreamCache
) -> None:
    upstream.add(WHEEL, b"wheel")
    upstream.add(SDIST, b"sdist")
    client = UpstreamClient(upstream.url)
    cache_page(cache, client)

    def removed_upstream() -> None:  # PyPI removes the file while it is being copied
        del upstream.claims[WHEEL]
        cache_page(cache, UpstreamClient(upstream.url))

    upstream.before_body = removed_upstream
    with pytest.raises(PullRefused, match="changed upstream"):
        pull_file(cache, client, NAME, WHEEL)
    assert copies(cache) == []


def test_a_file_of_the_projects_own_server_as_upstream(
    tmp_path: Path, cache: UpstreamCache
) -> None:
    wheel = publish_upstream(tmp_path / "upstream", tmp_path / "work", "demo", "1.0")
    server = start_upstream(tmp_path / "upstream")
    try:
        client = UpstreamClient(server.url)
        cache_page(cache, client)
        assert pull_file(cache, client, NAME, wheel.name) is True
    finally:
        stop(server.process)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert copies(cache) == [f"demo/{digest}/{wheel.name}"]


# -- the local server's puller ---------------------------------------------------------------


def test_the_background_puller_copies_each_file_once(
    upstream: Upstream, cache: UpstreamCache
) -> None:
    upstream.add(WHEEL, b"wheel" * 1000)
    upstream.delay = 0.3
    client = UpstreamClient(upstream.url)
    cache_page(cache, client)
    puller = BackgroundPuller(cache, client)
    started = time.monotonic()
    for _ in range(20):
        puller.request(NAME, WHEEL)
    assert time.monotonic() - started < 0.2  # the request thread never waits for a copy
    assert puller.wait()
    assert upstream.file_requests() == [f"/files/{WHEEL}"]
    assert len(copies(cache)) == 1
    puller.request(NAME, WHEEL)  # copied already: a HEAD in the store, no upstream request
    assert puller.wait()
    assert upstream.file_requests() == [f"/files/{WHEEL}"]
    puller.close()


def test_the_background_puller_drops_what_does_not_fit_and_logs_it(
    upstream: Upstream, cache: UpstreamCache, caplog: pytest.LogCaptureFixture
) -> None:
    names = [f"demo-1.{i}-py3-none-any.whl" for i in range(6)]
    for filename in names:
        upstream.add(filename, filename.encode())
    upstream.delay = 0.3
    client = UpstreamClient(upstream.url)
    cache_page(cache, client)
    puller = BackgroundPuller(cache, client, workers=1, max_pending=2)
    with caplog.at_level(logging.WARNING, "serverless_pypi.index.pull"):
        puller.request(NAME, names[0])
        deadline = time.monotonic() + 10
        while not upstream.file_requests() and time.monotonic() < deadline:
            time.sleep(0.01)  # until the worker is busy copying the first one
        for filename in names[1:]:
            puller.request(NAME, filename)
        assert puller.wait()
    # one being copied, two waiting, the other three dropped: logged once for the burst
    assert len(upstream.file_requests()) == 3 and len(copies(cache)) == 3
    assert len([r for r in caplog.records if "waiting" in r.getMessage()]) == 1
    for filename in names:  # a later download asks again
        puller.request(NAME, filename)
        puller.wait()
    assert len(copies(cache)) == 6
    puller.close()


def test_the_background_puller_does_not_retry_a_refused_file_at_once(
    upstream: Upstream, cache: UpstreamCache, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.add(WHEEL, b"the real wheel")
    upstream.served[WHEEL] = b"a tampered one"
    client = UpstreamClient(upstream.url)
    cache_page(cache, client)
    puller = BackgroundPuller(cache, client)
    with caplog.at_level(logging.WARNING, "serverless_pypi.index.pull"):
        for _ in range(3):
            puller.request(NAME, WHEEL)
            assert puller.wait()
    assert upstream.file_requests() == [f"/files/{WHEEL}"]
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1
    assert copies(cache) == []
    puller.close()


def test_a_failing_copy_is_logged_and_the_puller_goes_on(
    upstream: Upstream, cache: UpstreamCache, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.add(WHEEL, b"wheel")
    upstream.add(SDIST, b"sdist")
    upstream.statuses[WHEEL] = 503
    client = UpstreamClient(upstream.url)
    cache_page(cache, client)
    puller = BackgroundPuller(cache, client, workers=1)
    with caplog.at_level(logging.WARNING, "serverless_pypi.index.pull"):
        puller.request(NAME, WHEEL)
        puller.request(NAME, SDIST)
        assert puller.wait()
    assert any("could not copy demo/" + WHEEL in r.getMessage() for r in caplog.records)
    assert len(copies(cache)) == 1
    puller.close()
