"""Issue 10, integrity: renderings converge, no upload shadows or outlives a failure, no page
lists a file before its record, and the local store survives put/delete races.

The fault-injecting store fails the Nth write (put or delete) of an operation, for every N
over the writes the operation makes, either before the write happens or after it (the store
did it but the answer was lost, as with a timeout); the same operation is then repeated and
the store must be exactly what the manifests render.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

import pytest

from serverless_pypi.compose import build_application
from serverless_pypi.core.http import Headers, Request
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.render import render_html, root_page
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog, rendered_pages
from serverless_pypi.index.curation import CurationError, remove, yank
from serverless_pypi.index.indexer import Indexer
from serverless_pypi.index.publish import FileExists, IncompleteUpload
from serverless_pypi.storage import Blob, LocalFile, ObjectInfo, Redirect, Store, StoreError
from serverless_pypi.storage.local import LocalStore
from tests.helpers.dists import make_wheel, sha256
from tests.helpers.index import publish_file, stored_hashes


class InjectedFault(StoreError):
    """The failure the test store injects."""


@dataclass
class FaultyStore(Store):
    """A store that fails its `fail_at`-th write (1-based; puts and deletes are counted)."""

    inner: Store
    fail_at: int | None = None
    after: bool = False  # fail after the write was done (a lost answer), not before
    match: Callable[[str], bool] = lambda key: True
    #: writes that always fail, whatever `fail_at` says: refuse(op, key)
    refuse: Callable[[str, str], bool] = lambda op, key: False
    writes: int = 0

    def __post_init__(self) -> None:
        self.location = self.inner.location
        self.log: list[tuple[str, str]] = []

    def _write(self, op: str, key: str, do: Callable[[], str | None]) -> str | None:
        if self.refuse(op, key):
            raise InjectedFault(f"injected failure of {op} {key}")
        if not self.match(key):
            return do()
        self.writes += 1
        self.log.append((op, key))
        failing = self.writes == self.fail_at
        if failing and not self.after:
            raise InjectedFault(f"injected failure before {op} {key}")
        result = do()
        if failing:
            raise InjectedFault(f"injected failure after {op} {key}")
        return result

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob:
        return self.inner.get(key, if_none_match=if_none_match)

    def head(self, key: str) -> ObjectInfo:
        return self.inner.head(key)

    def open(self, key: str, *, if_match: str | None = None) -> AbstractContextManager[BinaryIO]:
        return self.inner.open(key, if_match=if_match)

    def put(
        self,
        key: str,
        data: bytes | IO[bytes],
        *,
        content_type: str | None = None,
        content_encoding: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        def do() -> str:
            return self.inner.put(
                key,
                data,
                content_type=content_type,
                content_encoding=content_encoding,
                if_match=if_match,
                if_none_match=if_none_match,
            )

        etag = self._write("put", key, do)
        assert etag is not None
        return etag

    def delete(self, key: str) -> None:
        self._write("delete", key, lambda: self.inner.delete(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def list_folders(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list_folders(prefix)

    def deliver(self, key: str, method: str, expires: int) -> Redirect | LocalFile:
        return self.inner.deliver(key, method, expires)


def assert_converged(store: Store) -> None:
    """Every project's pages are what its manifest renders; the root lists agree with them."""
    catalog = Catalog(store)
    prefix = layout.manifest_key(NormalizedName("")).removesuffix(".json")
    names = [
        NormalizedName(info.key.removeprefix(prefix).removesuffix(".json"))
        for info in store.list(prefix)
    ]
    listed, etag = catalog.read_project_names()
    for name in names:
        index, _ = catalog.read_project(name)
        for key, (wanted, _fmt) in rendered_pages(index).items():
            stored = store.find(key)
            if wanted is None:
                assert stored is None, f"{key} is stored but {name} serves nothing"
            else:
                assert store.get(key).data == wanted, f"{key} differs from the manifest"
        assert (name in listed) == bool(index.served()), f"projects.json vs {name}"
    if etag is not None:
        assert store.get(layout.ROOT_HTML).data == render_html(root_page(listed))


# -- item 1: every write path ends with the renderings in line -------------------------------


@dataclass
class Scenario:
    setup: Callable[[Store], None]
    operation: Callable[[Store], object]
    check: Callable[[Store], None]


def _scenarios(tmp_path: Path) -> dict[str, Scenario]:
    first = make_wheel(tmp_path, "conv", "1.0")
    second = make_wheel(tmp_path, "conv", "2.0")
    raw = make_wheel(tmp_path, "evt", "1.0")

    def nothing(store: Store) -> None:
        pass

    def published_first(store: Store) -> None:
        publish_file(Catalog(store), first)

    def has(*paths: Path) -> Callable[[Store], None]:
        def check(store: Store) -> None:
            name = "evt" if paths and paths[0] is raw else "conv"
            assert stored_hashes(store, name) == {p.name: sha256(p) for p in paths}

        return check

    def raw_copied(store: Store) -> None:
        store.put(f"evt/{raw.name}", raw.read_bytes())

    def raw_indexed_then_deleted(store: Store) -> None:
        raw_copied(store)
        Indexer(store).index_key(f"evt/{raw.name}")
        store.delete(f"evt/{raw.name}")

    def gone(store: Store) -> None:
        name = NormalizedName("evt" if store.find(f"evt/{raw.name}") is None else "conv")
        assert not Catalog(store).read_project(name)[0].served()
        assert store.find(layout.page_key(name, json=True)) is None

    def removed(store: Store) -> None:
        assert not Catalog(store).read_project(NormalizedName("conv"))[0].files
        assert store.find(f"conv/{first.name}") is None
        assert store.find(layout.page_key(NormalizedName("conv"), json=False)) is None

    def removal(store: Store) -> object:
        try:
            return remove(Catalog(store), "conv", "1.0")
        except CurationError:
            return None  # repeated after it completed: nothing left to remove

    def yanked(store: Store) -> None:
        key = layout.page_key(NormalizedName("conv"), json=True)
        (entry,) = json.loads(gzip.decompress(store.get(key).data))["files"]
        assert entry["yanked"] == "broken"

    return {
        "curation-yank": Scenario(
            published_first, lambda s: yank(Catalog(s), "conv", "1.0", "broken"), yanked
        ),
        "publish-new-project": Scenario(
            nothing, lambda s: publish_file(Catalog(s), first), has(first)
        ),
        "publish-second-file": Scenario(
            published_first, lambda s: publish_file(Catalog(s), second), has(first, second)
        ),
        "index-event": Scenario(
            raw_copied, lambda s: Indexer(s).index_key(f"evt/{raw.name}"), has(raw)
        ),
        "delete-event": Scenario(
            raw_indexed_then_deleted, lambda s: Indexer(s).index_key(f"evt/{raw.name}"), gone
        ),
        "curation-remove": Scenario(published_first, removal, removed),
    }


SCENARIOS = [
    "curation-yank",
    "publish-new-project",
    "publish-second-file",
    "index-event",
    "delete-event",
    "curation-remove",
]


def _writes(tmp_path: Path, scenario: Scenario) -> int:
    store = FaultyStore(LocalStore(tmp_path / "count"))
    scenario.setup(store.inner)
    scenario.operation(store)
    assert store.writes > 0
    return store.writes


@pytest.mark.parametrize("after", [False, True], ids=["before-write", "after-write"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_a_failed_write_at_any_step_is_repaired_by_the_retry(
    tmp_path: Path, name: str, after: bool
) -> None:
    scenario = _scenarios(tmp_path)[name]
    total = _writes(tmp_path, scenario)
    for n in range(1, total + 1):
        store = FaultyStore(LocalStore(tmp_path / f"run-{n}"), fail_at=n, after=after)
        scenario.setup(store.inner)
        with pytest.raises(StoreError):
            scenario.operation(store)
        store.fail_at = None
        scenario.operation(store)  # the client's retry, the repeated event, the re-run
        assert_converged(store.inner)
        scenario.check(store.inner)


def test_a_repeated_publish_repairs_the_root_lists(local_store: LocalStore, tmp_path: Path) -> None:
    # the manifest and pages were written, then the store failed before projects.json
    wheel = make_wheel(tmp_path, "rooted", "1.0")
    faulty = FaultyStore(local_store, fail_at=1, match=lambda key: key == layout.ROOT_LIST)
    with pytest.raises(StoreError):
        publish_file(Catalog(faulty), wheel)
    assert Catalog(local_store).read_project_names()[1] is None
    publish_file(Catalog(local_store), wheel)  # answered "already published"
    assert Catalog(local_store).read_project_names()[0] == {"rooted"}
    assert_converged(local_store)


def test_a_write_that_changes_nothing_writes_nothing(
    local_store: LocalStore, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, "quiet", "1.0")
    publish_file(Catalog(local_store), wheel)
    faulty = FaultyStore(local_store)
    publish_file(Catalog(faulty), wheel)
    Indexer(faulty).index_key(f"quiet/{wheel.name}")
    # only the conditional put of the bytes (refused: they exist) and the core metadata file
    rendered = [key for _op, key in faulty.log if "/pages/" in key or "/projects" in key]
    assert rendered == []
    assert all(key != layout.ROOT_HTML for _op, key in faulty.log)


def test_an_event_for_a_key_not_indexed_repairs_its_project(
    local_store: LocalStore, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, "skippy", "1.0")
    publish_file(Catalog(local_store), wheel)
    local_store.delete(layout.page_key(NormalizedName("skippy"), json=True))  # a lost write
    local_store.put("skippy/README.txt", b"not a distribution")
    assert Indexer(local_store).index_key("skippy/README.txt").action == "skipped"
    assert stored_hashes(local_store, "skippy") == {wheel.name: sha256(wheel)}
    assert_converged(local_store)


# -- item 3: no upload shadows a served file ---------------------------------------------------


def test_an_upload_is_checked_against_a_folder_never_indexed(store: Store, tmp_path: Path) -> None:
    original = make_wheel(tmp_path, "shadow-pkg", "1.0", payload="ORIGINAL = 1\n")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = make_wheel(other_dir, "shadow-pkg", "1.0", payload="OTHER = 1\n")
    # the reference layout: an un-normalized folder, copied in and never indexed
    store.put(f"Shadow_Pkg/{original.name}", original.read_bytes())
    with pytest.raises(FileExists, match="File already exists"):
        publish_file(Catalog(store), other)
    assert store.find(f"shadow-pkg/{other.name}") is None
    index, _ = Catalog(store).read_project(NormalizedName("shadow-pkg"))
    assert index.files[original.name].key == f"Shadow_Pkg/{original.name}"
    assert stored_hashes(store, "shadow-pkg") == {original.name: sha256(original)}
    # the same bytes are "already published", still from their own folder
    publish_file(Catalog(store), original)
    assert store.find(f"shadow-pkg/{original.name}") is None
    assert_converged(store)


# -- item 4: a failed upload leaves nothing behind ---------------------------------------------


def _variants(tmp_path: Path, name: str) -> tuple[Path, Path]:
    paths = []
    for i in range(2):
        directory = tmp_path / f"variant-{i}"
        directory.mkdir()
        paths.append(make_wheel(directory, name, "1.0", payload=f"VARIANT = {i}\n"))
    return paths[0], paths[1]


def _manifest_writes(name: str) -> Callable[[str], bool]:
    return lambda key: key == layout.manifest_key(NormalizedName(name))


def test_an_upload_whose_record_fails_is_removed(store: Store, tmp_path: Path) -> None:
    bad, corrected = _variants(tmp_path, "withdrawn")
    # write 1 creates the (empty) manifest, write 2 would add the record
    faulty = FaultyStore(store, fail_at=2, match=_manifest_writes("withdrawn"))
    with pytest.raises(StoreError):
        publish_file(Catalog(faulty), bad)
    assert store.find(f"withdrawn/{bad.name}") is None
    # nothing for an indexer to publish later, and a corrected file is accepted
    Indexer(store).index_key(f"withdrawn/{bad.name}")
    publish_file(Catalog(store), corrected)
    assert stored_hashes(store, "withdrawn") == {corrected.name: sha256(corrected)}
    assert store.get(f"withdrawn/{corrected.name}").data == corrected.read_bytes()


def test_an_upload_whose_cleanup_fails_too_can_be_finished(store: Store, tmp_path: Path) -> None:
    first, other = _variants(tmp_path, "stuck")
    key = f"stuck/{first.name}"
    # the record write fails (the manifest's second write), and so does the cleanup's delete
    faulty = FaultyStore(
        store,
        fail_at=2,
        match=_manifest_writes("stuck"),
        refuse=lambda op, k: op == "delete" and k == key,
    )
    with pytest.raises(StoreError):
        publish_file(Catalog(faulty), first)
    assert store.find(key) is not None, "the cleanup was meant to fail"
    with pytest.raises(IncompleteUpload, match="failed partway"):
        publish_file(Catalog(store), other)
    publish_file(Catalog(store), first)  # the retry of the same bytes finishes it
    assert stored_hashes(store, "stuck") == {first.name: sha256(first)}


# -- item 6: no page lists a file before its record --------------------------------------------


def test_the_manifest_exists_before_the_bytes(local_store: LocalStore, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "ordered", "1.0")
    faulty = FaultyStore(local_store)
    publish_file(Catalog(faulty), wheel)
    keys = [key for _op, key in faulty.log]
    assert keys.index(layout.manifest_key(NormalizedName("ordered"))) < keys.index(
        f"ordered/{wheel.name}"
    )


def test_readers_never_see_a_file_without_its_hash(store: Store, tmp_path: Path) -> None:
    """Several clients publish files of one new project while readers poll its page.

    Passes once the application lists files live only for projects without a manifest.
    """
    wheels = [make_wheel(tmp_path, "fresh-race", f"1.{i}") for i in range(6)]
    app = build_application(store)
    stop = threading.Event()
    seen: list[str] = []
    unhashed: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            for accept in ("application/vnd.pypi.simple.v1+json", "text/html"):
                response = app.handle(
                    Request("GET", "fresh-race/", headers=Headers({"accept": accept}))
                )
                if response.status != 200 or not accept.endswith("json"):
                    continue
                body = response.body
                if response.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                for entry in json.loads(body)["files"]:
                    seen.append(entry["filename"])
                    if not entry["hashes"].get("sha256"):
                        unhashed.append(entry["filename"])

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    barrier = threading.Barrier(len(wheels))

    def upload(path: Path) -> None:
        barrier.wait()
        publish_file(Catalog(store), path)

    uploaders = [threading.Thread(target=upload, args=(w,)) for w in wheels]
    for thread in uploaders:
        thread.start()
    for thread in uploaders:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert not unhashed, f"listed without a hash: {sorted(set(unhashed))}"
    assert stored_hashes(store, "fresh-race") == {w.name: sha256(w) for w in wheels}


# -- item 7: the local store never answers 500 to a race ---------------------------------------


def test_local_put_racing_delete_of_its_folder(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    errors: list[BaseException] = []
    stop = threading.Event()

    def putter(i: int) -> None:
        try:
            for n in range(300):
                store.put(f"deep/er/file-{i}-{n}", b"x")
                store.delete(f"deep/er/file-{i}-{n}")
        except BaseException as e:  # noqa: BLE001 - the test reports any failure
            errors.append(e)

    def deleter() -> None:
        while not stop.is_set():
            store.delete("deep/er/nothing")

    deleters = [threading.Thread(target=deleter) for _ in range(2)]
    putters = [threading.Thread(target=putter, args=(i,)) for i in range(4)]
    for thread in deleters + putters:
        thread.start()
    for thread in putters:
        thread.join()
    stop.set()
    for thread in deleters:
        thread.join()
    assert errors == []
    leftovers = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert [p for p in leftovers if ".locks" not in p.parts] == []
