"""What an install costs the store, and the validators that let clients revalidate.

An install asks the index for the project page, the PEP 658 core metadata file and the
download (a redirect to S3, or the file). Warm, that is one store request (the page: a
conditional GET) plus the client's download: the metadata and the manifest come from memory
(issue 15, item 6). Every page and metadata file carries a strong ETag per content coding
and a Last-Modified (RFC 9110 sections 8.8.2 and 8.8.3; issue 15, item 4).
"""

from __future__ import annotations

import gzip
from collections import Counter
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.compose import build_application
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.core.model import Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog, Change
from serverless_pypi.index.curation import yank
from serverless_pypi.storage import NotModified, Store
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.web.app import Application
from tests.helpers.dists import make_wheel
from tests.helpers.index import JSON, publish_file

NAME = NormalizedName("acme")
GZIP = {"accept-encoding": "gzip"}


def get(app: Application, path: str, **headers: str) -> Response:
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return app.handle(Request("GET", path, "", Headers({"accept": JSON, **named})))


class Counting:
    """Counts the requests the application sends to the store (deliver is a local signature
    on S3 and a stat, counted as a head, on a directory)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        self.keys: list[str] = []
        for method in ("get", "head", "list", "list_folders", "open"):
            original = getattr(store, method)

            def spy(*args: Any, _name: str = method, _original: Any = original, **kw: Any) -> Any:
                self.calls[_name] += 1
                if args:
                    self.keys.append(str(args[0]))
                return _original(*args, **kw)

            monkeypatch.setattr(store, method, spy)

    def requests(self, store: Store) -> int:
        """Store requests, less the stat a directory's download makes (S3 signs locally)."""
        heads = self.calls["head"] if isinstance(store, LocalStore) else 0
        return sum(self.calls.values()) - heads

    def reset(self) -> None:
        self.calls.clear()
        self.keys.clear()


def install(app: Application, wheel: str, etag: str | None = None) -> str:
    """What pip and uv ask for: the page (revalidated when they hold it), the metadata file,
    the download; returns the page's ETag."""
    conditional = {"if_none_match": etag} if etag else {}
    page = get(app, "acme/", **GZIP, **conditional)
    assert page.status in {200, 304}
    assert get(app, f"acme/{wheel}.metadata").status == 200
    assert get(app, f"acme/{wheel}").status in {200, 302}
    return page.headers["ETag"]


def test_a_warm_install_costs_one_store_request(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(tmp_path, "acme", "1.0")
    publish_file(store, wheel)
    app = build_application(store)
    etag = install(app, wheel.name)  # a new process: the manifest and the metadata read once
    counting = Counting(store, monkeypatch)
    install(app, wheel.name)  # a client without a copy of the page
    assert counting.requests(store) == 1
    assert counting.keys[0] == layout.page_key(NAME, json=True)
    counting.reset()
    install(app, wheel.name, etag)  # a client revalidating its copy: a 304 from the store
    assert counting.requests(store) == 1
    assert counting.calls["get"] == 1 and counting.calls["list"] == 0
    # + the client's download from S3: 2 requests per install


def test_a_new_upload_is_served_at_once(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_wheel(tmp_path, "acme", "1.0")
    publish_file(store, old)
    app = build_application(store)
    install(app, old.name)
    new = make_wheel(tmp_path, "acme", "2.0")
    publish_file(store, new)  # another process publishes it
    page = get(app, "acme/", **GZIP)
    assert new.name.encode() in gzip.decompress(page.body)
    install(app, new.name)  # the copy in memory does not list it: the store is asked


def test_a_yank_shows_at_once_and_the_file_stays_served(store: Store, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "acme", "1.0")
    publish_file(store, wheel)
    app = build_application(store)
    etag = install(app, wheel.name)
    yank(Catalog(store), "acme", "1.0", "broken")
    page = get(app, "acme/", **GZIP, if_none_match=etag)
    assert page.status == 200 and b'"yanked":"broken"' in gzip.decompress(page.body)
    install(app, wheel.name)  # PEP 592: a yanked file is still served


def test_a_removed_files_metadata_is_not_served_from_memory(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(tmp_path, "acme", "1.0")
    other = make_wheel(tmp_path, "acme", "2.0")
    publish_file(store, wheel)
    publish_file(store, other)
    app = build_application(store)
    install(app, wheel.name)
    install(app, wheel.name)

    def remove(project: Manifest) -> Change[None]:
        del project.files[wheel.name]
        return Change(None)

    Catalog(store).update_project(NAME, remove)
    store.delete(layout.metadata_key(NAME, wheel.name))
    page = get(app, "acme/", **GZIP)
    assert wheel.name.encode() not in gzip.decompress(page.body)  # the removal is visible
    counting = Counting(store, monkeypatch)
    assert get(app, f"acme/{wheel.name}.metadata").status == 404
    assert get(app, f"acme/{wheel.name}").status == 404
    assert counting.calls["get"] >= 1  # asked the store, not memory


# -- validators (item 4) -------------------------------------------------------------------


def _unstore_pages(store: Store) -> None:
    for fmt in (True, False):
        store.delete(layout.page_key(NAME, json=fmt))


@pytest.mark.parametrize("front", ["root", "stored", "rendered", "live"])
def test_each_coding_has_a_strong_etag_and_a_last_modified(
    store: Store, tmp_path: Path, front: str
) -> None:
    """RFC 9110 8.8.3: one strong tag per sequence of bytes, so the gzip and the identity
    encodings differ; each revalidates to a 304 with its own tag only."""
    for number in range(30):  # a page large enough to be compressed when rendered
        publish_file(store, make_wheel(tmp_path, "acme", f"1.{number}"))
    path = "" if front == "root" else "acme/"
    if front == "rendered":
        _unstore_pages(store)
    if front == "live":
        store.delete(layout.manifest_key(NAME))
        _unstore_pages(store)
    app = build_application(store)
    zipped, plain = get(app, path, **GZIP), get(app, path)
    if front == "root":  # a short list: identity either way
        assert zipped.headers["ETag"] == plain.headers["ETag"]
    else:
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert "Content-Encoding" not in plain.headers
        assert zipped.headers["ETag"] != plain.headers["ETag"]
    for response in (zipped, plain):
        tag = response.headers["ETag"]
        assert tag.startswith('"') and tag.endswith('"')  # strong: no W/
        assert parsedate_to_datetime(response.headers["Last-Modified"]).tzinfo is not None
    assert get(app, path, **GZIP, if_none_match=zipped.headers["ETag"]).status == 304
    assert get(app, path, if_none_match=plain.headers["ETag"]).status == 304
    if front != "root":
        assert get(app, path, if_none_match=zipped.headers["ETag"]).status == 200
        assert get(app, path, **GZIP, if_none_match=plain.headers["ETag"]).status == 200


def test_the_stores_304_passes_through_for_either_coding(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish_file(store, make_wheel(tmp_path, "acme", "1.0"))
    app = build_application(store)
    outcomes: list[str] = []
    original = store.get

    def spy(key: str, *, if_none_match: str | None = None) -> Any:
        try:
            found = original(key, if_none_match=if_none_match)
        except NotModified:
            outcomes.append(f"304 {if_none_match}")
            raise
        outcomes.append("200")
        return found

    monkeypatch.setattr(store, "get", spy)
    for coding in (GZIP, {}):
        tag = get(app, "acme/", **coding).headers["ETag"]
        outcomes.clear()
        again = get(app, "acme/", **coding, if_none_match=tag)
        assert again.status == 304 and again.headers["ETag"] == tag and again.body == b""
        stored = store.head(layout.page_key(NAME, json=True)).etag
        assert outcomes == [f"304 {stored}"]  # the store's own tag, compared by the store


def test_metadata_files_revalidate(store: Store, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "acme", "1.0")
    publish_file(store, wheel)
    app = build_application(store)
    first = get(app, f"acme/{wheel.name}.metadata")
    tag = first.headers["ETag"]
    assert first.status == 200 and tag.startswith('"')
    assert parsedate_to_datetime(first.headers["Last-Modified"]).year >= 2020
    again = get(app, f"acme/{wheel.name}.metadata", if_none_match=tag)
    assert again.status == 304 and again.body == b"" and again.headers["ETag"] == tag


def test_a_name_the_store_lacks_costs_no_listing_per_request(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a fallback (redirect mode) every public name is a name the store lacks: its
    page request reads the page and the manifest (both miss) and reuses one listing of the
    project folders for a few seconds, instead of listing the bucket per request."""
    from serverless_pypi.core.config import Settings
    from serverless_pypi.repository import store as store_repository

    publish_file(store, make_wheel(tmp_path, "acme", "1.0"))
    app = build_application(store, Settings(fallback_index_url="https://pypi.example/simple"))
    assert get(app, "public-lib/").status == 302  # the first one lists the folders once
    counting = Counting(store, monkeypatch)
    for _ in range(5):
        assert get(app, "public-lib/").status == 302
    assert counting.calls["list"] == counting.calls["list_folders"] == 0
    assert counting.calls["get"] == 10  # the page and the manifest, each time
    # a folder copied into the store is listed once the listing is older than the trust
    (tmp_path / "copied").mkdir()
    copied = make_wheel(tmp_path / "copied", "copied", "1.0")
    store.put(f"copied/{copied.name}", copied.read_bytes())
    monkeypatch.setattr(store_repository, "FOLDERS_TRUST_SECONDS", 0.0)
    assert get(app, "copied/").status == 200
