"""Only distributions are served (issue 10, item 5) and no page lists a file before its record
(item 6, the application's side), over both stores.

Downloads serve only keys that are a wheel or sdist of the project and, for a project with a
manifest, that the manifest lists without a problem; the check costs one conditional GET of
the manifest, parsed once per process (`RevalidatingCache`).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.core.model import Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog, Change
from serverless_pypi.index.indexer import Indexer
from serverless_pypi.storage import NotModified, Store
from serverless_pypi.storage.cache import RevalidatingCache
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.web.app import Application
from tests.helpers.dists import make_sdist, make_wheel, metadata_text
from tests.helpers.index import JSON, content, publish_file

NAME = NormalizedName("acme")


def get(app: Application, path: str, **headers: str) -> Response:
    return app.handle(Request("GET", path, headers=Headers(headers)))


def listed(app: Application, project: str = NAME) -> list[str] | int:
    """File names on the project's JSON page, or the status when there is no page."""
    response = get(app, f"{project}/", Accept=JSON)
    if response.status != 200:
        return response.status
    return [f["filename"] for f in json.loads(content(response))["files"]]


def wheel_naming_another_project(tmp_path: Path) -> bytes:
    """A wheel named acme 1.0 whose METADATA says it is `other`."""
    folder = tmp_path / "liar"
    folder.mkdir()
    path = make_wheel(folder, "acme", "1.0", metadata=metadata_text("other", "1.0"))
    return path.read_bytes()


# -- item 5: only distributions are served ------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "acme/credentials.json",
        "acme/notes.txt",
        "acme/acme-1.0.tar.gz.asc",
        "acme/other_pkg-1.0.tar.gz",  # a distribution, but of another project
        "Acme/credentials.json",  # an un-normalized folder of the project
    ],
)
def test_other_objects_in_a_project_folder_are_never_downloadable(
    store: Store, tmp_path: Path, key: str
) -> None:
    wheel = make_wheel(tmp_path, "acme", "1.0")
    publish_file(store, wheel)
    store.put(key, b'{"secret": "value"}')
    app = build_application(store)
    filename = key.split("/")[1]
    for project in ("acme", "Acme", "other-pkg"):
        response = get(app, f"{project}/{filename}")
        assert response.status == 404, (project, response.status)
        assert b"secret" not in content(response)
    assert listed(app) == [wheel.name]
    assert get(app, f"acme/{wheel.name}").status in {200, 302}


@pytest.mark.parametrize("key", ["acme/credentials.json", "acme/other_pkg-1.0.tar.gz"])
def test_other_objects_of_a_project_never_indexed_are_not_served_either(
    store: Store, key: str
) -> None:
    store.put("acme/acme-1.0.tar.gz", b"legacy sdist")  # the reference layout, no manifest
    store.put(key, b'{"secret": "value"}')
    app = build_application(store)
    assert listed(app) == ["acme-1.0.tar.gz"]
    assert get(app, "acme/" + key.split("/")[1]).status == 404
    assert get(app, "acme/acme-1.0.tar.gz").status in {200, 302}


@pytest.mark.parametrize(
    ("filename", "contents"),
    [
        ("acme-1.0-py3-none-any.whl", "liar"),  # metadata naming another project
        ("acme-1.0-py3-none-any.whl", b"PK\x03\x04 truncated"),  # a corrupt archive
        ("acme-1.0.tar.gz", b"\x1f\x8b but not gzip"),
    ],
)
def test_files_the_indexer_refused_are_neither_listed_nor_downloadable(
    store: Store, tmp_path: Path, filename: str, contents: bytes | str
) -> None:
    data = wheel_naming_another_project(tmp_path) if contents == "liar" else contents
    assert isinstance(data, bytes)
    store.put(f"acme/{filename}", data)
    outcome = Indexer(store).index_key(f"acme/{filename}")
    assert outcome.action == "skipped"
    index, _ = Catalog(store).read_project(NAME)
    assert index.files[filename].problem is not None  # remembered, not served
    fallback = Settings(fallback_index_url="https://pypi.org/simple")
    for app in (build_application(store), build_application(store, fallback)):
        # the project's only file: no page, and never sent to the fallback index
        assert listed(app) == 404
        assert get(app, f"acme/{filename}").status == 404
    # beside a good file, the refused one is still neither listed nor served
    good = make_wheel(tmp_path, "acme", "2.0")
    publish_file(store, good)
    app = build_application(store)
    assert listed(app) == [good.name]
    assert get(app, f"acme/{filename}").status == 404


def test_a_file_the_manifest_does_not_list_yet_is_not_downloadable(
    store: Store, tmp_path: Path
) -> None:
    """Bytes copied in after the project was indexed, before their event: not on the page,
    so not served either (they will be once indexed)."""
    publish_file(store, make_wheel(tmp_path, "acme", "1.0"))
    late = make_wheel(tmp_path, "acme", "2.0")
    store.put(f"acme/{late.name}", late.read_bytes())
    app = build_application(store)
    assert get(app, f"acme/{late.name}").status == 404
    Indexer(store).index_key(f"acme/{late.name}")
    assert get(app, f"acme/{late.name}").status in {200, 302}
    assert late.name in listed(app)  # type: ignore[operator]


class Counting:
    """Counts the store calls an application makes (method -> calls)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: Counter[str] = Counter()
        self.conditional = 0
        for method in ("get", "head", "list", "list_folders", "open"):
            original = getattr(store, method)

            def spy(*args: Any, _name: str = method, _original: Any = original, **kw: Any) -> Any:
                self.calls[_name] += 1
                if _name == "get" and kw.get("if_none_match"):
                    self.conditional += 1
                return _original(*args, **kw)

            monkeypatch.setattr(store, method, spy)


def test_a_download_costs_no_store_request_while_the_manifest_is_trusted(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(tmp_path, "acme", "1.0")
    publish_file(store, wheel)
    app = build_application(store)
    assert get(app, f"acme/{wheel.name}").status in {200, 302}  # reads the manifest once
    counting = Counting(store, monkeypatch)
    for _ in range(3):
        assert get(app, f"acme/{wheel.name}").status in {200, 302}
    # S3: the manifest from memory, the URL signed here; a directory stats the file (head)
    assert counting.calls["get"] == 0
    assert counting.calls["head"] == (3 if isinstance(store, LocalStore) else 0)
    assert counting.calls["list"] == counting.calls["list_folders"] == 0
    # a removal made visible on the page is seen at once by the process that reads the page
    catalog = Catalog(store)

    def remove(project: Manifest) -> Change[None]:
        del project.files[wheel.name]
        return Change(None)

    catalog.update_project(NAME, remove)
    assert get(app, "acme/", accept=JSON).status == 404  # no files left: the page says so
    assert listed(app) == 404
    assert get(app, f"acme/{wheel.name}").status == 404


def test_without_a_page_read_a_removal_is_seen_once_the_trust_runs_out(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that serves the download but not the page trusts its manifest copy for
    MANIFEST_TRUST_SECONDS at most: a removal reaches it within seconds."""
    wheel = make_wheel(tmp_path, "acme", "1.0")
    other = make_wheel(tmp_path, "acme", "2.0")
    publish_file(store, wheel)
    publish_file(store, other)
    clock = [1000.0]
    monkeypatch.setattr("serverless_pypi.storage.cache.time.monotonic", lambda: clock[0])
    monkeypatch.setattr("serverless_pypi.index.reader.time.monotonic", lambda: clock[0])
    app = build_application(store)
    assert get(app, f"acme/{wheel.name}").status in {200, 302}  # read now: trusted 15 s

    def remove(project: Manifest) -> Change[None]:
        del project.files[wheel.name]
        return Change(None)

    Catalog(store).update_project(NAME, remove)
    clock[0] += 10
    assert get(app, f"acme/{wheel.name}").status in {200, 302}  # within the trust
    clock[0] += 6
    assert get(app, f"acme/{wheel.name}").status == 404
    assert get(app, f"acme/{other.name}").status in {200, 302}


def test_a_listed_file_deleted_by_hand_is_a_404(local_store: Store, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "acme", "1.0")
    publish_file(local_store, wheel)
    local_store.delete(f"acme/{wheel.name}")  # no indexer event on a directory
    assert get(build_application(local_store), f"acme/{wheel.name}").status == 404


# -- item 6: a project with a manifest is listed from it alone ---------------------------


def test_a_project_with_a_manifest_is_never_listed_live(store: Store, tmp_path: Path) -> None:
    """A publisher writes the manifest before the bytes: until the record is there, the bytes
    are neither listed (without a hash) nor downloadable."""
    wheel = make_wheel(tmp_path, "acme", "1.0")
    Catalog(store).update_project(NAME, lambda project: Change(None))  # an empty manifest
    store.put(f"acme/{wheel.name}", wheel.read_bytes())  # the bytes, before their record
    app = build_application(store)
    assert listed(app) == 404
    assert get(app, f"acme/{wheel.name}").status == 404
    fallback = build_application(store, Settings(fallback_index_url="https://pypi.org/simple"))
    assert get(fallback, "acme/").status == 404  # present in the store: never redirected


def test_a_project_never_indexed_lists_only_its_distributions(store: Store) -> None:
    for key in (
        "Acme/acme-1.0.tar.gz",
        "acme/acme-2.0-py3-none-any.whl",
        "acme/credentials.json",
        "acme/README",
        "acme/other-1.0.tar.gz",
        "acme/acme-notaversion.tar.gz",
        "acme/acme_x-1.0.tar.gz",
    ):
        store.put(key, b"bytes")
    app = build_application(store)
    assert listed(app) == ["acme-1.0.tar.gz", "acme-2.0-py3-none-any.whl"]
    page = json.loads(content(get(app, "acme/", Accept=JSON)))
    assert all(f["hashes"] == {} for f in page["files"])  # live: no hashes until indexed


def test_a_live_listing_shows_one_file_per_identity(store: Store) -> None:
    store.put("Acme/Acme-1.0.tar.gz", b"first in key order")
    store.put("acme/acme-1.0.tar.gz", b"second")
    store.put("acme/acme-1.0.zip", b"third")
    assert listed(build_application(store)) == ["Acme-1.0.tar.gz"]


def test_an_indexed_project_lists_every_served_file_and_nothing_else(
    store: Store, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, "acme", "1.0")
    sdist = make_sdist(tmp_path, "acme", "1.0")
    publish_file(store, wheel)
    publish_file(store, sdist)
    store.put("acme/credentials.json", b"{}")
    store.put("acme/acme-0.9.tar.gz", b"not yet indexed")
    # without its stored pages (deleted, or a renderer that failed) the manifest still rules
    for fmt in (True, False):
        store.delete(layout.page_key(NAME, json=fmt))
    assert listed(build_application(store)) == [wheel.name, sdist.name]


# -- the manifest cache ------------------------------------------------------------------


def test_the_cache_revalidates_every_use(store: Store) -> None:
    parsed: list[bytes] = []

    def parse(data: bytes) -> bytes:
        parsed.append(data)
        return data

    cache = RevalidatingCache(store, parse, max_bytes=1024)
    assert cache.get("doc") is None
    store.put("doc", b"one")
    assert cache.get("doc") == (b"one", store.head("doc").etag)
    assert cache.get("doc") is not None and parsed == [b"one"]  # unchanged: not parsed again
    store.put("doc", b"two")
    found = cache.get("doc")
    assert found is not None and found[0] == b"two"
    store.delete("doc")
    assert cache.get("doc") is None
    assert cache.size == 0


def test_the_cache_is_bounded_in_bytes(local_store: Store) -> None:
    cache = RevalidatingCache(local_store, bytes, max_bytes=100)
    for number in range(10):
        local_store.put(f"doc{number}", bytes(30))
        cache.get(f"doc{number}")
        assert cache.size <= 100
    assert cache.size == 90  # the three most recently used
    local_store.put("huge", bytes(101))
    assert cache.get("huge") == (bytes(101), local_store.head("huge").etag)  # served, not held
    assert cache.size == 90


def test_the_cache_is_safe_to_share_between_threads(local_store: Store) -> None:
    cache = RevalidatingCache(local_store, bytes, max_bytes=200)
    keys = [f"doc{n}" for n in range(8)]
    for key in keys:
        local_store.put(key, bytes(40))
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for step in range(200):
                key = keys[(seed + step) % len(keys)]
                if step % 17 == 0:
                    local_store.put(key, bytes(40 + seed % 3))
                found = cache.get(key)
                assert found is not None and len(found[0]) in {40, 41, 42}
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    held = cache._entries  # the accounting matches what is held
    assert cache.size == sum(entry.size for entry in held.values()) <= 200


def test_a_store_that_answers_not_modified_unasked_is_not_hidden(
    local_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def odd(key: str, *, if_none_match: str | None = None) -> Iterator[bytes]:
        raise NotModified(key)

    monkeypatch.setattr(local_store, "get", odd)
    with pytest.raises(NotModified):
        RevalidatingCache(local_store, bytes, max_bytes=10).get("doc")
