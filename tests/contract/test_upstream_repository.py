"""Issue 12, items 2, 3, 5, 6, 8: the upstream repository and the application over both
stores, against a real upstream started by the test.

The upstream is the project's own server over a second store (PEP 691 JSON with sizes,
upload times and core metadata; ETags and 304s), or pypiserver (PEP 503 HTML only).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index import curation, layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.pull import BackgroundPuller
from serverless_pypi.index.upstream_cache import UpstreamCache
from serverless_pypi.repository.private_first import PrivateFirstRepository
from serverless_pypi.repository.store import StoreRepository
from serverless_pypi.repository.upstream import UpstreamRepository
from serverless_pypi.storage import Store
from serverless_pypi.storage.base import LocalFile, Redirect
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.web.app import Application
from tests.helpers.dists import make_wheel, sha256
from tests.helpers.forms import basic_auth
from tests.helpers.index import JSON, content, publish_file
from tests.helpers.servers import LiveServer, stop
from tests.helpers.upstream import (
    WatchedClient,
    publish_upstream,
    start_pypiserver,
    start_upstream,
)

ACME = NormalizedName("acme-core")
PUBDEP = NormalizedName("pubdep")
PRIVATE = ("internal-*",)


class Clock:
    """A clock the test moves: the TTL passes without waiting for it."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Upstream:
    server: LiveServer
    store_dir: Path
    work: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.store_dir)

    def page(self, name: str) -> dict[str, Any]:
        """The upstream's own JSON page (what the index must keep)."""
        request = urllib.request.Request(f"{self.url}{name}/", headers={"Accept": JSON})
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (127.0.0.1)
            page: dict[str, Any] = json.load(response)
        return page

    def publish(self, name: str, version: str, **options: Any) -> Path:
        return publish_upstream(self.store_dir, self.work, name, version, **options)


def _started(root: Path) -> Upstream:
    upstream = Upstream(
        start_upstream(root / "upstream-store", root), root / "upstream-store", root / "dists"
    )
    # the attack: a public project with the private project's name, at a higher version
    upstream.publish("acme-core", "99.0")
    upstream.publish("pubdep", "1.0", requires_python=">=3.8")
    upstream.publish("pubdep", "1.1", requires_python=">=3.9")
    upstream.publish("internal-tool", "5.0")
    return upstream


@pytest.fixture(scope="module")
def shared_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """An upstream the tests only read (one for the module)."""
    upstream = _started(tmp_path_factory.mktemp("shared-upstream"))
    yield upstream
    stop(upstream.server.process)


@pytest.fixture
def own_upstream(tmp_path: Path) -> Iterator[Upstream]:
    """An upstream the test changes, or stops."""
    upstream = _started(tmp_path / "own")
    yield upstream
    stop(upstream.server.process)


def private_store(store: Store, tmp_path: Path) -> Store:
    """`store` with the private acme-core 1.0 published."""
    (tmp_path / "private").mkdir(exist_ok=True)
    publish_file(store, make_wheel(tmp_path / "private", "acme-core", "1.0"))
    return store


@dataclass
class Index:
    app: Application
    upstream: UpstreamRepository
    client: WatchedClient
    clock: Clock


def index(
    store: Store,
    upstream: Upstream | str,
    *,
    mode: str = "proxy",
    ttl: int = 300,
    puller: Any = None,
    delay: float = 0.0,
    retry: float = 5.0,
    memory_bytes: int = 32 * 1024 * 1024,
) -> Index:
    url = upstream if isinstance(upstream, str) else upstream.url
    client = WatchedClient(url, delay=delay, timeout=3.0)
    clock = Clock()
    repository = UpstreamRepository(
        client,
        UpstreamCache(store),
        mode=mode,
        ttl=ttl,
        puller=puller,
        clock=clock,
        retry=retry,
        memory_bytes=memory_bytes,
    )
    stack = PrivateFirstRepository(StoreRepository(store), repository, PRIVATE)
    return Index(Application(stack, Settings()), repository, client, clock)


def call(app: Application, path: str, *, json_page: bool = True, **headers: str) -> Response:
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    if json_page:
        named.setdefault("accept", JSON)
    return app.handle(Request("GET", path, "", Headers(named)))


def page(app: Application, name: str) -> dict[str, Any]:
    response = call(app, f"{name}/")
    assert response.status == 200, content(response)
    result: dict[str, Any] = json.loads(content(response))
    return result


def listed(app: Application) -> list[str]:
    """The names of the project list (JSON)."""
    response = call(app, "")
    assert response.status == 200, content(response)
    return [p["name"] for p in json.loads(content(response))["projects"]]


def html(app: Application, name: str) -> str:
    response = call(app, f"{name}/", json_page=False, accept="text/html")
    assert response.status == 200, content(response)
    return content(response).decode()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (127.0.0.1, moto)
        data: bytes = response.read()
    return data


def download(app: Application, path: str) -> tuple[Response, bytes]:
    response = call(app, path, json_page=False)
    if response.status == 302:
        return response, fetch(response.headers["Location"])
    return response, content(response)


def filenames(page_: dict[str, Any]) -> set[str]:
    return {f["filename"] for f in page_["files"]}


def sha_of(page_: dict[str, Any], filename: str) -> str:
    found: str = next(f for f in page_["files"] if f["filename"] == filename)["hashes"]["sha256"]
    return found


WHEEL_99 = "acme_core-99.0-py3-none-any.whl"
PUBDEP_10 = "pubdep-1.0-py3-none-any.whl"
PUBDEP_11 = "pubdep-1.1-py3-none-any.whl"


# -- item 2: private first, never mixed -----------------------------------------------------


@pytest.mark.parametrize("mode", ["proxy", "mirror"])
def test_a_private_project_never_shows_the_upstreams_files(
    store: Store, tmp_path: Path, shared_upstream: Upstream, mode: str
) -> None:
    private_store(store, tmp_path)
    settings = Settings(upstream_index_url=shared_upstream.url, upstream_mode=mode)
    app = build_application(store, settings, background_pulls=False)
    served = page(app, "acme-core")
    assert filenames(served) == {"acme_core-1.0-py3-none-any.whl"}
    assert served["versions"] == ["1.0"]
    assert "99.0" not in html(app, "acme-core")
    # the public file is neither served nor redirected to, nor its metadata
    assert call(app, f"acme-core/{WHEEL_99}").status == 404
    assert call(app, f"acme-core/{WHEEL_99}.metadata").status == 404
    # every other name comes from the upstream
    assert filenames(page(app, "pubdep")) == {PUBDEP_10, PUBDEP_11}


def test_a_private_pattern_absent_from_the_store_is_a_404_never_the_upstream(
    store: Store, shared_upstream: Upstream
) -> None:
    served = index(store, shared_upstream)
    for path in ("internal-tool/", "internal-tool/internal_tool-5.0-py3-none-any.whl"):
        assert call(served.app, path).status == 404
    assert served.client.pages == []  # not even asked
    assert listed(served.app) == []


def test_a_private_project_whose_files_were_all_removed_stays_private(
    store: Store, tmp_path: Path, shared_upstream: Upstream
) -> None:
    private_store(store, tmp_path)
    curation.remove(Catalog(store), "acme-core", "1.0")
    served = index(store, shared_upstream)
    assert call(served.app, "acme-core/").status == 404
    assert call(served.app, f"acme-core/{WHEEL_99}").status == 404
    assert served.client.pages == []


def test_a_project_copied_into_the_store_unindexed_is_private(
    store: Store, tmp_path: Path, shared_upstream: Upstream
) -> None:
    wheel = make_wheel(tmp_path, "acme-core", "1.0")
    store.put(f"Acme_Core/{wheel.name}", wheel.read_bytes())  # never indexed, un-normalized
    served = index(store, shared_upstream)
    assert filenames(page(served.app, "acme-core")) == {wheel.name}
    assert served.client.pages == []


def test_the_project_list_is_the_private_and_the_cached_upstream_names(
    store: Store, tmp_path: Path, shared_upstream: Upstream
) -> None:
    private_store(store, tmp_path)
    served = index(store, shared_upstream)
    assert listed(served.app) == ["acme-core"]
    page(served.app, "pubdep")
    # the upstream also has internal-tool: never listed (nor its whole list)
    assert listed(served.app) == ["acme-core", "pubdep"]


def test_a_locked_index_locks_upstream_projects_too(
    store: Store, shared_upstream: Upstream
) -> None:
    settings = Settings(
        upstream_index_url=shared_upstream.url, upstream_mode="proxy", require_auth_for_read=True
    )
    app = build_application(store, settings)
    for path in ("pubdep/", f"pubdep/{PUBDEP_10}", f"pubdep/{PUBDEP_10}.metadata", ""):
        assert call(app, path).status == 401, path
    token, _ = TokenStore(store).create("read")
    authorization = basic_auth(token)
    assert filenames(page_with(app, "pubdep", authorization)) == {PUBDEP_10, PUBDEP_11}
    assert call(app, f"pubdep/{PUBDEP_10}", authorization=authorization).status == 302


def page_with(app: Application, name: str, authorization: str) -> dict[str, Any]:
    response = call(app, f"{name}/", authorization=authorization)
    assert response.status == 200, content(response)
    result: dict[str, Any] = json.loads(content(response))
    return result


# -- item 3: upstream pages --------------------------------------------------------------


def _kept(entry: dict[str, Any]) -> dict[str, Any]:
    """What a file entry must keep from the upstream (all but the link)."""
    return {k: v for k, v in entry.items() if k != "url"}


@pytest.mark.parametrize("mode", ["proxy", "mirror"])
def test_the_page_keeps_the_upstreams_content_with_links_to_this_index(
    store: Store, shared_upstream: Upstream, mode: str
) -> None:
    served = index(store, shared_upstream, mode=mode)
    theirs, ours = shared_upstream.page("pubdep"), page(served.app, "pubdep")
    assert [_kept(f) for f in ours["files"]] == [_kept(f) for f in theirs["files"]]
    for entry in ours["files"]:
        # hashes, size, exact upload-time, requires-python, core metadata hash
        assert entry["hashes"]["sha256"] and entry["size"] > 0 and entry["upload-time"]
        assert "core-metadata" in entry and "requires-python" in entry
        assert entry["url"] == entry["filename"]  # relative: this index's `<project>/<file>`
    assert ours["versions"] == theirs["versions"] == ["1.0", "1.1"]
    text = html(served.app, "pubdep")
    assert f'href="{PUBDEP_10}#sha256=' in text
    assert 'data-requires-python="&gt;=3.8"' in text and "data-core-metadata=" in text


def test_both_formats_are_tagged_and_answered_304(store: Store, shared_upstream: Upstream) -> None:
    served = index(store, shared_upstream)
    first = call(served.app, "pubdep/", accept_encoding="gzip")
    assert first.status == 200 and first.headers["Content-Encoding"] == "gzip"
    again = call(served.app, "pubdep/", accept_encoding="gzip", if_none_match=first.headers["ETag"])
    assert again.status == 304
    assert served.client.answers("pubdep") == ["200"]  # once per fetch, not per request


def test_a_download_in_proxy_mode_redirects_to_the_upstreams_file(
    store: Store, shared_upstream: Upstream
) -> None:
    served = index(store, shared_upstream)
    response, data = download(served.app, f"pubdep/{PUBDEP_10}")
    assert response.status == 302 and response.headers["Location"].startswith(shared_upstream.url)
    upstream_sha = {
        f["filename"]: f["hashes"]["sha256"] for f in shared_upstream.page("pubdep")["files"]
    }
    assert hashlib.sha256(data).hexdigest() == upstream_sha[PUBDEP_10]
    assert call(served.app, "pubdep/pubdep-7.0-py3-none-any.whl").status == 404


def test_core_metadata_is_fetched_once_verified_and_kept(
    store: Store, shared_upstream: Upstream
) -> None:
    served = index(store, shared_upstream)
    entry = next(f for f in page(served.app, "pubdep")["files"] if f["filename"] == PUBDEP_10)
    response = call(served.app, f"pubdep/{PUBDEP_10}.metadata")
    assert response.status == 200
    assert hashlib.sha256(response.body).hexdigest() == entry["core-metadata"]["sha256"]
    assert b"Name: pubdep" in response.body
    assert call(served.app, f"pubdep/{PUBDEP_10}.metadata").body == response.body
    assert len(served.client.gets) == 1  # then from the store
    key = layout.upstream_metadata_key(PUBDEP, entry["core-metadata"]["sha256"], PUBDEP_10)
    assert store.get(key).data == response.body
    # held in memory by its digest (immutable): a repeat reads neither the store nor upstream
    store.delete(key)
    assert call(served.app, f"pubdep/{PUBDEP_10}.metadata").body == response.body
    assert len(served.client.gets) == 1


def test_a_mismatching_metadata_file_is_refused_and_not_kept(
    store: Store, own_upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    # the upstream serves other bytes than the sha256 its page lists
    own_upstream.store.put(
        layout.metadata_key(PUBDEP, PUBDEP_10), b"Metadata-Version: 2.1\nName: evil\n"
    )
    served = index(store, own_upstream)
    page(served.app, "pubdep")
    with caplog.at_level(logging.WARNING):
        assert call(served.app, f"pubdep/{PUBDEP_10}.metadata").status == 404
    assert "refused the core metadata of pubdep-1.0" in caplog.text
    assert not list(store.list(layout.UPSTREAM_METADATA))


def test_an_html_only_upstream_pypiserver(store: Store, tmp_path: Path) -> None:
    directory = tmp_path / "packages"
    directory.mkdir()
    wheel = make_wheel(directory, "pubdep", "1.0")
    server = start_pypiserver(directory, tmp_path)
    try:
        served = index(store, server.url)
        ours = page(served.app, "pubdep")
        assert [f["filename"] for f in ours["files"]] == [wheel.name]
        entry = ours["files"][0]
        assert entry["hashes"] == {"sha256": sha256(wheel)}
        assert "upload-time" not in entry and "core-metadata" not in entry
        response, data = download(served.app, f"pubdep/{wheel.name}")
        assert response.status == 302 and data == wheel.read_bytes()
    finally:
        server.stop()


# -- TTL revalidation ---------------------------------------------------------------------


def test_after_the_ttl_the_page_is_revalidated_and_a_304_writes_nothing(
    store: Store, own_upstream: Upstream
) -> None:
    served = index(store, own_upstream, ttl=60)
    assert filenames(page(served.app, "pubdep")) == {PUBDEP_10, PUBDEP_11}
    stored = store.head(layout.upstream_page_key(PUBDEP))
    served.clock.advance(59)
    page(served.app, "pubdep")
    assert served.client.answers("pubdep") == ["200"]  # within the TTL: not asked
    served.clock.advance(2)
    page(served.app, "pubdep")
    assert served.client.answers("pubdep") == ["200", "304"]
    assert store.head(layout.upstream_page_key(PUBDEP)).etag == stored.etag  # no store write
    # a change upstream: visible after the TTL that follows the 304, not before
    own_upstream.publish("pubdep", "1.2")
    served.clock.advance(59)
    assert filenames(page(served.app, "pubdep")) == {PUBDEP_10, PUBDEP_11}
    served.clock.advance(2)
    assert "pubdep-1.2-py3-none-any.whl" in filenames(page(served.app, "pubdep"))
    assert served.client.answers("pubdep") == ["200", "304", "200"]
    # another process reads the store's copy (the new one)
    other = index(store, own_upstream, ttl=60)
    other.clock.now = served.clock.now
    assert "pubdep-1.2-py3-none-any.whl" in filenames(page(other.app, "pubdep"))
    assert other.client.pages == []


def test_concurrent_requests_for_a_stale_page_make_one_upstream_request(
    store: Store, shared_upstream: Upstream
) -> None:
    served = index(store, shared_upstream, ttl=60, delay=0.3)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(call(served.app, "pubdep/").status))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 8
    assert served.client.answers("pubdep") == ["200"]


def test_pages_in_memory_are_bounded(store: Store, shared_upstream: Upstream) -> None:
    sizing = index(store, shared_upstream)
    sizes = []
    for name in ("pubdep", "acme-core"):
        page(sizing.app, name)
        sizes.append(sizing.upstream._entries[NormalizedName(name)].size)
    budget = sum(sizes) - 1  # either page fits, not both
    served = index(store, shared_upstream, memory_bytes=budget)
    served.clock.now = sizing.clock.now
    for name in ("pubdep", "acme-core"):
        page(served.app, name)
    assert list(served.upstream._entries) == ["acme-core"] and served.upstream._bytes <= budget
    # the evicted page comes back from the store, without asking the upstream
    page(served.app, "pubdep")
    assert served.client.pages == []  # each came from the store the first index filled


# -- item 6: upstream changes win --------------------------------------------------------


def test_yanked_and_removed_upstream_win_even_over_a_cached_copy(
    store: Store, own_upstream: Upstream
) -> None:
    puller = BackgroundPuller(UpstreamCache(store), WatchedClient(own_upstream.url))
    served = index(store, own_upstream, mode="mirror", ttl=60, puller=puller)
    try:
        for filename in (PUBDEP_10, PUBDEP_11):
            first, _ = download(served.app, f"pubdep/{filename}")
            assert first.status == 302 and first.headers["Location"].startswith(own_upstream.url)
            call(served.app, f"pubdep/{filename}.metadata")
        assert puller.wait()
        # later downloads come from the verified copy in the store
        response, data = download(served.app, f"pubdep/{PUBDEP_10}")
        assert not response.headers.get("Location", "").startswith(own_upstream.url)
        assert hashlib.sha256(data).hexdigest() == sha_of(page(served.app, "pubdep"), PUBDEP_10)
        copies = {info.key for info in store.list(layout.UPSTREAM_FILES)}
        assert len(copies) == 2
        # upstream: 1.1 yanked, 1.0 removed (say, malware)
        curation.yank(Catalog(own_upstream.store), "pubdep", "1.1", "broken")
        curation.remove(Catalog(own_upstream.store), "pubdep", "1.0")
        served.clock.advance(61)
        ours = page(served.app, "pubdep")
        assert filenames(ours) == {PUBDEP_11}
        assert ours["files"][0]["yanked"] == "broken"
        assert 'data-yanked="broken"' in html(served.app, "pubdep")
        assert call(served.app, f"pubdep/{PUBDEP_10}").status == 404
        assert call(served.app, f"pubdep/{PUBDEP_10}.metadata").status == 404
        # the removed file's copy and metadata are deleted; the yanked one's kept
        left = {info.key for info in store.list(layout.UPSTREAM_FILES)}
        assert len(left) == 1 and next(iter(left)).endswith(PUBDEP_11)
        assert all(PUBDEP_10 not in i.key for i in store.list(layout.UPSTREAM_METADATA))
        assert list(UpstreamCache(store).orphans()) == []
    finally:
        puller.close()


def test_a_project_removed_upstream_is_forgotten(store: Store, own_upstream: Upstream) -> None:
    served = index(store, own_upstream, ttl=60)
    page(served.app, "acme-core")
    curation.remove(Catalog(own_upstream.store), "acme-core", "99.0")
    served.clock.advance(61)
    assert call(served.app, "acme-core/").status == 404
    assert store.find(layout.upstream_page_key(ACME)) is None
    assert listed(served.app) == []


# -- item 5: availability ----------------------------------------------------------------


def test_with_the_upstream_stopped_cached_pages_serve_and_others_404_quickly(
    store: Store, own_upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    served = index(store, own_upstream, ttl=60)
    page(served.app, "pubdep")
    metadata = call(served.app, f"pubdep/{PUBDEP_10}.metadata").body
    stop(own_upstream.server.process)
    served.clock.advance(3600)
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        stale = page(served.app, "pubdep")
        for _ in range(5):
            assert call(served.app, "acme-core/").status == 404  # never cached
            assert page(served.app, "pubdep") == stale
        assert time.monotonic() - started < 3
    assert filenames(stale) == {PUBDEP_10, PUBDEP_11}
    # metadata the store holds stays advertised and served; the rest is not advertised
    advertised = {f["filename"] for f in stale["files"] if "core-metadata" in f}
    assert advertised == {PUBDEP_10}
    assert call(served.app, f"pubdep/{PUBDEP_10}.metadata").body == metadata
    # asked once, then not again within `retry` seconds
    assert served.client.pages == [("pubdep", "200"), ("pubdep", "error")]
    # after it, asked again by one request: still down, still logged once
    served.clock.advance(6)
    with caplog.at_level(logging.WARNING):
        assert call(served.app, "acme-core/").status == 404
        assert page(served.app, "pubdep") == stale
    assert served.client.answers("acme-core") == ["error"]
    assert served.client.answers("pubdep") == ["200", "error"]
    assert caplog.text.count("is unavailable") == 1
    # a process that starts during the outage serves the store's copy
    fresh = index(store, own_upstream, ttl=60)
    fresh.clock.now = served.clock.now + 3600
    assert filenames(page(fresh.app, "pubdep")) == {PUBDEP_10, PUBDEP_11}


def test_the_upstream_is_asked_again_after_the_retry_interval_and_logged_back(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = _started(tmp_path / "flaky")
    served = index(store, upstream, ttl=60, retry=5)
    page(served.app, "pubdep")
    stop(upstream.server.process)
    served.clock.advance(61)
    with caplog.at_level(logging.WARNING):
        page(served.app, "pubdep")
        page(served.app, "pubdep")
        assert served.client.answers("pubdep") == ["200", "error"]  # asked once
        # back, on another port: the same store behind a new server
        restarted = start_upstream(upstream.store_dir, tmp_path)
        try:
            back = WatchedClient(restarted.url)
            served.upstream.client = back
            served.clock.advance(4)
            page(served.app, "pubdep")
            assert back.pages == []  # within the retry interval
            served.clock.advance(2)
            assert filenames(page(served.app, "pubdep")) == {PUBDEP_10, PUBDEP_11}
            assert back.answers("pubdep") in (["304"], ["200"])
        finally:
            stop(restarted.process)
    assert caplog.text.count("is unavailable") == 1
    assert caplog.text.count("answers again") == 1


class NotAPage(http.server.BaseHTTPRequestHandler):
    """An "upstream" that answers every page request with something that is not a page."""

    def do_GET(self) -> None:
        body = b"<html>please log in</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_an_answer_that_is_not_a_page_serves_the_last_good_one(
    store: Store, shared_upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    served = index(store, shared_upstream, ttl=60)
    good = page(served.app, "pubdep")
    broken = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotAPage)
    threading.Thread(target=broken.serve_forever, daemon=True).start()
    try:
        bad = WatchedClient(f"http://127.0.0.1:{broken.server_address[1]}/simple/")
        served.upstream.client = bad
        served.clock.advance(61)
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                assert page(served.app, "pubdep") == good
            assert call(served.app, "acme-core/").status == 404  # never cached: nothing to serve
            for _ in range(3):  # never cached either: one request and one log line a TTL
                assert call(served.app, "newcomer/").status == 404
        assert bad.answers("pubdep") == ["200"]  # asked once per TTL, not per request
        assert bad.answers("newcomer") == ["200"]
        assert caplog.text.count("page of pubdep cannot be used") == 1
        assert caplog.text.count("page of newcomer cannot be used") == 1
        served.clock.advance(61)
        assert call(served.app, "newcomer/").status == 404
        assert bad.answers("newcomer") == ["200", "200"]  # asked again after the TTL
        assert "is unavailable" not in caplog.text  # one project's page: not an outage
    finally:
        broken.shutdown()
        broken.server_close()


def test_a_mirror_copy_is_served_with_the_upstream_down(
    store: Store, own_upstream: Upstream
) -> None:
    puller = BackgroundPuller(UpstreamCache(store), WatchedClient(own_upstream.url))
    served = index(store, own_upstream, mode="mirror", ttl=60, puller=puller)
    try:
        download(served.app, f"pubdep/{PUBDEP_10}")
        assert puller.wait()
        stop(own_upstream.server.process)
        served.clock.advance(3600)
        assert isinstance(served.upstream.locate(PUBDEP, PUBDEP_10, "GET"), LocalFile | Redirect)
        _, data = download(served.app, f"pubdep/{PUBDEP_10}")
        assert hashlib.sha256(data).hexdigest() == sha_of(page(served.app, "pubdep"), PUBDEP_10)
    finally:
        puller.close()


def test_a_gzip_page_decompresses_to_the_identity_page(
    store: Store, shared_upstream: Upstream
) -> None:
    served = index(store, shared_upstream)
    plain = call(served.app, "pubdep/")
    zipped = call(served.app, "pubdep/", accept_encoding="gzip")
    assert gzip.decompress(zipped.body) == plain.body
    assert zipped.headers["ETag"] != plain.headers["ETag"]


# -- the cache's namespace ----------------------------------------------------------------


def test_the_cache_reports_copies_no_cached_page_lists(
    store: Store, shared_upstream: Upstream
) -> None:
    served = index(store, shared_upstream)
    page(served.app, "pubdep")
    cache = UpstreamCache(store)
    listed = cache.page(PUBDEP)
    assert listed is not None
    file = listed.page.file(PUBDEP_10)
    assert file is not None and file.sha256 is not None
    kept = cache.file_key(PUBDEP, file)
    store.put(kept, b"a verified copy")
    other = layout.upstream_file_key(PUBDEP, "0" * 64, PUBDEP_10)  # a digest not listed
    unknown = layout.upstream_file_key(NormalizedName("gone"), "1" * 64, "gone-1.0.tar.gz")
    junk = layout.UPSTREAM_FILES + "pubdep/not-a-copy"
    for key in (other, unknown, junk):
        store.put(key, b"x")
    assert sorted(info.key for info in cache.orphans()) == sorted([other, unknown, junk])
    assert cache.names() == [PUBDEP]


def test_an_unreadable_cached_page_is_fetched_again(
    store: Store, shared_upstream: Upstream
) -> None:
    store.put(layout.upstream_page_key(PUBDEP), b"{not json")
    assert UpstreamCache(store).page(PUBDEP) is None
    served = index(store, shared_upstream)
    assert filenames(page(served.app, "pubdep")) == {PUBDEP_10, PUBDEP_11}
    assert served.client.answers("pubdep") == ["200"]
    assert UpstreamCache(store).page(PUBDEP) is not None
