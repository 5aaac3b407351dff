"""The indexer over both stores: events converge on what a full reindex writes; bad files
never stop it; `reindex --check` finds drift."""

from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path

import pytest

from serverless_pypi.adapters.cli import main as cli_main
from serverless_pypi.core.model import Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog, Change
from serverless_pypi.index.indexer import Indexer
from serverless_pypi.storage import NotFound, Store
from tests.helpers.dists import make_sdist, make_wheel
from tests.helpers.index import stored_page


def snapshot(store: Store) -> dict[str, str]:
    return {info.key: info.etag for info in store.list("")}


def put_file(store: Store, key: str, path: Path) -> None:
    store.put(key, path.read_bytes())


def reference_bucket(store: Store, tmp_path: Path) -> dict[str, bytes]:
    """A bucket as the reference module leaves it: distributions and index.html only."""
    files = {
        "My_Pkg/my_pkg-1.0-py3-none-any.whl": make_wheel(
            tmp_path, "my-pkg", "1.0", requires_python=">=3.9"
        ),
        "My_Pkg/my_pkg-1.1.tar.gz": make_sdist(tmp_path, "my-pkg", "1.1"),
        "my-pkg/my_pkg-2.0-py3-none-any.whl": make_wheel(tmp_path, "my-pkg", "2.0"),
        "other/other-0.1-py3-none-any.whl": make_wheel(tmp_path, "other", "0.1"),
    }
    for key, path in files.items():
        put_file(store, key, path)
    store.put("index.html", b"<html><body><a href='my-pkg/'>my-pkg</a></body></html>")
    return {key: path.read_bytes() for key, path in files.items()}


def test_one_reindex_brings_a_reference_bucket_to_full_hashes_and_metadata(
    store: Store, tmp_path: Path
) -> None:
    files = reference_bucket(store, tmp_path)
    report = Indexer(store).reindex()
    assert sorted(report.indexed) == sorted(files)
    assert report.projects == 2 and report.files == 4
    listed = stored_page(store, "my-pkg")
    assert listed["versions"] == ["1.0", "1.1", "2.0"]
    import hashlib

    for entry in listed["files"]:
        key = next(k for k in files if k.endswith("/" + entry["filename"]))
        assert entry["hashes"] == {"sha256": hashlib.sha256(files[key]).hexdigest()}
        assert entry["size"] == len(files[key])
        metadata = store.get(layout.metadata_key(NormalizedName("my-pkg"), entry["filename"])).data
        assert entry["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    assert listed["files"][0]["requires-python"] == ">=3.9"
    names = json.loads(store.get(layout.ROOT_LIST).data)["projects"]
    assert names == ["my-pkg", "other"]
    root = store.get(layout.ROOT_HTML).data.decode()
    assert 'href="my-pkg/"' in root and 'href="other/"' in root
    assert not Indexer(store).reindex(check=True).drift


def test_reindex_is_incremental(store: Store, tmp_path: Path) -> None:
    reference_bucket(store, tmp_path)
    Indexer(store).reindex()
    again = Indexer(store).reindex()
    assert again.indexed == [] and again.removed == [] and again.orphans == []


def test_check_reports_each_kind_of_drift_and_reindex_repairs_it(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference_bucket(store, tmp_path)
    Indexer(store).reindex()
    location = store.location if not store.location.startswith("s3://") else store.location
    # drift: a new file, a vanished file, a lost metadata file, an orphaned one, a lost page
    put_file(store, "other/other-0.2-py3-none-any.whl", make_wheel(tmp_path, "other", "0.2"))
    store.delete("My_Pkg/my_pkg-1.1.tar.gz")
    store.delete(layout.metadata_key(NormalizedName("my-pkg"), "my_pkg-1.0-py3-none-any.whl"))
    store.put(layout.metadata_key(NormalizedName("gone"), "gone-1.0-py3-none-any.whl"), b"x")
    store.delete(layout.page_key(NormalizedName("other"), json=False))
    before = snapshot(store)
    args = ["reindex", "--store", location]
    if location.startswith("s3://"):
        # the boto3 store's client, or the endpoint the standard-library store was given
        endpoint = getattr(store, "endpoint_url", None) or store.client.meta.endpoint_url  # type: ignore[attr-defined]
        args += ["--endpoint-url", endpoint]
    assert cli_main([*args, "--check"]) == 1
    out = capsys.readouterr().out
    assert "needs indexing: other/other-0.2-py3-none-any.whl" in out
    assert "stale record: My_Pkg/my_pkg-1.1.tar.gz" in out
    assert "orphaned: .serverless-pypi/metadata/gone/gone-1.0-py3-none-any.whl.metadata" in out
    assert "stale pages: other" in out
    assert "needs indexing: My_Pkg/my_pkg-1.0-py3-none-any.whl" in out  # its metadata was lost
    assert snapshot(store) == before, "--check must not write"
    assert cli_main(args) == 0
    assert cli_main([*args, "--check"]) == 0
    store.head(layout.metadata_key(NormalizedName("my-pkg"), "my_pkg-1.0-py3-none-any.whl"))
    files = {f["filename"] for f in stored_page(store, "other")["files"]}
    assert files == {"other-0.1-py3-none-any.whl", "other-0.2-py3-none-any.whl"}
    assert "my_pkg-1.1.tar.gz" not in {f["filename"] for f in stored_page(store, "my-pkg")["files"]}
    with pytest.raises(NotFound):
        store.head(layout.metadata_key(NormalizedName("gone"), "gone-1.0-py3-none-any.whl"))


def manifest(store: Store, name: str) -> dict[str, tuple[object, ...]]:
    """A project's records without what differs between equally correct runs."""
    index, _ = Catalog(store).read_project(NormalizedName(name))
    return {
        r.filename: (
            r.key,
            r.sha256,
            r.size,
            r.etag,
            r.metadata_sha256,
            r.requires_python,
            r.problem,
        )
        for r in index.files.values()
    }


def test_duplicated_reordered_late_and_stale_events_equal_a_full_reindex(
    store: Store, tmp_path: Path
) -> None:
    reference_bucket(store, tmp_path)
    put_file(store, "my-pkg/my_pkg-3.0-py3-none-any.whl", make_wheel(tmp_path, "my-pkg", "3.0"))
    store.delete("my-pkg/my_pkg-2.0-py3-none-any.whl")
    keys = [
        "My_Pkg/my_pkg-1.0-py3-none-any.whl",
        "My_Pkg/my_pkg-1.1.tar.gz",
        "my-pkg/my_pkg-2.0-py3-none-any.whl",  # created, then deleted: a stale "created" event
        "my-pkg/my_pkg-3.0-py3-none-any.whl",
        "other/other-0.1-py3-none-any.whl",
    ]
    # every key twice, shuffled: duplicates and any order
    events = keys * 2
    random.Random(7).shuffle(events)
    indexer = Indexer(store)
    outcomes = [indexer.index_key(key) for key in events]
    assert {o.action for o in outcomes} <= {"indexed", "unchanged", "removed"}
    by_events = {name: manifest(store, name) for name in ("my-pkg", "other")}
    pages_by_events = {name: stored_page(store, name) for name in ("my-pkg", "other")}
    # the same store indexed from scratch
    for info in list(store.list(layout.RESERVED_PREFIX)):
        store.delete(info.key)
    Indexer(store).reindex()
    assert {name: manifest(store, name) for name in ("my-pkg", "other")} == by_events
    assert {name: stored_page(store, name) for name in ("my-pkg", "other")} == pages_by_events
    assert "my_pkg-2.0-py3-none-any.whl" not in by_events["my-pkg"]


def test_delete_then_late_create_event_keeps_the_file(store: Store, tmp_path: Path) -> None:
    key = "my-pkg/my_pkg-1.0-py3-none-any.whl"
    put_file(store, key, make_wheel(tmp_path, "my-pkg", "1.0"))
    indexer = Indexer(store)
    # the "deleted" event of an earlier upload arrives after the new upload
    assert indexer.index_key(key).action == "indexed"
    assert indexer.index_key(key).action == "unchanged"
    assert "my_pkg-1.0-py3-none-any.whl" in manifest(store, "my-pkg")


def test_replaced_bytes_are_rehashed(store: Store, tmp_path: Path) -> None:
    key = "my-pkg/my_pkg-1.0-py3-none-any.whl"
    put_file(store, key, make_wheel(tmp_path, "my-pkg", "1.0"))
    indexer = Indexer(store)
    indexer.index_key(key)
    first = manifest(store, "my-pkg")[Path(key).name]
    replacement = make_wheel(tmp_path / "..", "my-pkg", "1.0", payload="CHANGED = True\n")
    put_file(store, key, replacement)
    assert indexer.index_key(key).action == "indexed"
    second = manifest(store, "my-pkg")[Path(key).name]
    import hashlib

    assert second[1] == hashlib.sha256(replacement.read_bytes()).hexdigest() != first[1]


def test_yank_state_and_upload_time_survive_a_reindex(store: Store, tmp_path: Path) -> None:
    reference_bucket(store, tmp_path)
    Indexer(store).reindex()
    catalog = Catalog(store)
    filename = "my_pkg-2.0-py3-none-any.whl"

    def yank(project: Manifest) -> Change[None]:
        record = project.files[filename]
        project.files[filename] = record.with_changes(
            yanked="broken", upload_time="2020-01-01T00:00:00.000000Z"
        )
        return Change(None)

    catalog.update_project(NormalizedName("my-pkg"), yank)
    for info in list(store.list(layout.metadata_prefix(NormalizedName("my-pkg")))):
        store.delete(info.key)  # force every record to be rebuilt
    Indexer(store).reindex()
    entry = next(f for f in stored_page(store, "my-pkg")["files"] if f["filename"] == filename)
    assert entry["yanked"] == "broken"
    assert entry["upload-time"] == "2020-01-01T00:00:00.000000Z"


# -- bad files ------------------------------------------------------------------------------


def zip_bomb_wheel(tmp_path: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/__init__.py", b"")
        # 64 MiB of zeros compress to ~64 KiB: over the metadata bound, never read
        archive.writestr("bomb-1.0.dist-info/METADATA", b"\0" * (64 * 1024 * 1024))
    return buffer.getvalue()


def wheel_without_metadata() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bomb/__init__.py", b"")
    return buffer.getvalue()


def wheel_naming_another_project(tmp_path: Path) -> bytes:
    other = make_wheel(tmp_path / "..", "someone-else", "1.0")
    return other.read_bytes()


BAD_KEYS = {
    "bomb/bomb-1.0-py3-none-any.whl": "larger than",
    "bomb/bomb-1.1-py3-none-any.whl": "no .dist-info/METADATA",
    "bomb/bomb-1.2-py3-none-any.whl": "not a readable zip",
    "bomb/bomb-1.3.tar.gz": "not a readable archive",
    "bomb/bomb-1.4-py3-none-any.whl": "names project",
    "bomb/notes.txt": "not a distribution",
    "bomb/deeper/bomb-1.0.tar.gz": "one level deep",
    "<script>/x-1.0.tar.gz": "not a valid project name",
    'bomb/bomb-1.0"onload=alert(1).tar.gz': "not a valid distribution file name",
    "bomb/..": "",
}


def test_bad_files_are_skipped_with_a_reason_and_the_rest_goes_on(
    store: Store, tmp_path: Path
) -> None:
    contents = {
        "bomb/bomb-1.0-py3-none-any.whl": zip_bomb_wheel(tmp_path),
        "bomb/bomb-1.1-py3-none-any.whl": wheel_without_metadata(),
        "bomb/bomb-1.2-py3-none-any.whl": b"PK\x03\x04 truncated",
        "bomb/bomb-1.3.tar.gz": b"\x1f\x8b but not gzip",
        "bomb/bomb-1.4-py3-none-any.whl": wheel_naming_another_project(tmp_path),
    }
    for key in BAD_KEYS:
        if key == "bomb/..":
            continue
        try:
            store.put(key, contents.get(key, b"junk"))
        except NotFound:
            pass  # the local store refuses keys that are not paths (the hostile ones)
    good = make_wheel(tmp_path, "bomb", "2.0")
    put_file(store, "bomb/bomb-2.0-py3-none-any.whl", good)
    indexer = Indexer(store)
    for key, reason in BAD_KEYS.items():
        outcome = indexer.index_key(key)
        assert outcome.action == "skipped", (key, outcome)
        assert reason in outcome.reason, (key, outcome.reason)
    assert indexer.index_key("bomb/bomb-2.0-py3-none-any.whl").action == "indexed"
    listed = [f["filename"] for f in stored_page(store, "bomb")["files"]]
    assert listed == ["bomb-2.0-py3-none-any.whl"]
    report = Indexer(store).reindex()
    assert [f["filename"] for f in stored_page(store, "bomb")["files"]] == listed
    assert {key for key, _ in report.skipped} >= set(contents)
    # bad files are hashed once: a second reindex has nothing to do
    assert Indexer(store).reindex().indexed == []
