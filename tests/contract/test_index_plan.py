"""The index layer's shape: `update_project` returns what its change computed, a reindex plans
then applies (so `--check` never writes), the token list lives in `index/`, and publish and
curation raise the domain errors of `core.errors`."""

from __future__ import annotations

from pathlib import Path

import pytest

from serverless_pypi.auth.tokens import TokenRecord, TokenStore
from serverless_pypi.core.errors import (
    DomainError,
    FileAlreadyExists,
    InvalidRequest,
    NoSuchFile,
    NoSuchProject,
)
from serverless_pypi.core.model import FileRecord, Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index import curation, layout
from serverless_pypi.index.catalog import Catalog, Change
from serverless_pypi.index.indexer import Indexer, Report
from serverless_pypi.index.publish import FileExists, IncompleteUpload, PublishError, publish
from serverless_pypi.index.tokens import TokenDocument
from serverless_pypi.storage import Store
from tests.helpers.dists import make_wheel
from tests.helpers.index import publish_file

NAME = NormalizedName("acme")


class Written(AssertionError):
    """A write where none is allowed."""


def forbid_writes(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every write of `store` raise; returns the keys that were tried (none, we hope)."""
    tried: list[str] = []

    def refuse(key: str, *args: object, **kwargs: object) -> None:
        tried.append(key)
        raise Written(f"wrote {key!r}")

    monkeypatch.setattr(store, "put", refuse)
    monkeypatch.setattr(store, "delete", refuse)
    return tried


def snapshot(store: Store) -> dict[str, str]:
    return {info.key: info.etag for info in store.list("")}


def record(filename: str, key: str, sha256: str = "0" * 64) -> FileRecord:
    return FileRecord(filename, key, 1, "2026-01-01T00:00:00.000000Z", '"x"', sha256)


def drifted(store: Store, tmp_path: Path) -> None:
    """An indexed store, then drift of every kind a reindex repairs."""
    for version in ("1.0", "1.1"):
        wheel = make_wheel(tmp_path, "acme", version)
        store.put(f"acme/{wheel.name}", wheel.read_bytes())
    Indexer(store).reindex()
    new = make_wheel(tmp_path, "acme", "2.0")
    store.put(f"acme/{new.name}", new.read_bytes())  # to index
    store.delete("acme/acme-1.1-py3-none-any.whl")  # a stale record
    store.put(layout.metadata_key(NormalizedName("gone"), "gone-1.0.tar.gz"), b"x")  # an orphan
    store.delete(layout.page_key(NAME, json=False))  # a stale page
    store.delete(layout.ROOT_LIST)  # a stale project list


# -- reindex: plan, then apply -------------------------------------------------------------


def test_check_never_writes(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drifted(store, tmp_path)
    before = snapshot(store)
    tried = forbid_writes(store, monkeypatch)
    report = Indexer(store).reindex(check=True)
    assert tried == []
    assert report.indexed == ["acme/acme-2.0-py3-none-any.whl"]
    assert report.removed == ["acme/acme-1.1-py3-none-any.whl"]
    assert report.orphans == [layout.metadata_key(NormalizedName("gone"), "gone-1.0.tar.gz")]
    assert report.stale_pages == ["acme"]
    assert report.root_changed and report.drift
    monkeypatch.undo()
    assert snapshot(store) == before


def test_a_plan_reads_and_says_what_to_do(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drifted(store, tmp_path)
    indexer = Indexer(store)
    metadata = indexer.catalog.metadata_files()
    forbid_writes(store, monkeypatch)
    plan = indexer.plan_project(NAME, ["acme"], metadata.get(NAME, []))
    assert list(plan.to_index) == ["acme-2.0-py3-none-any.whl"]
    assert plan.stale == {"acme-1.1-py3-none-any.whl": "acme/acme-1.1-py3-none-any.whl"}
    assert plan.demoted == {}
    assert plan.renderings.stale_pages and plan.renderings.orphans == []
    assert plan.files == 2 and plan.changes_records and plan.listed()
    report = plan.report()
    assert (report.projects, report.files) == (1, 2)
    assert report.indexed == ["acme/acme-2.0-py3-none-any.whl"]
    assert report.stale_pages == ["acme"]


def test_apply_carries_out_the_plan_and_reports_as_the_check_did(
    store: Store, tmp_path: Path
) -> None:
    drifted(store, tmp_path)
    checked = Indexer(store).reindex(check=True)
    applied = Indexer(store).reindex()

    def kinds(report: Report) -> tuple[object, ...]:
        return (report.projects, report.files, report.indexed, report.removed, report.skipped)

    assert kinds(applied) == kinds(checked)
    assert sorted(applied.orphans) == sorted(
        # the stale record's metadata file is orphaned once the record is dropped
        [*checked.orphans, layout.metadata_key(NAME, "acme-1.1-py3-none-any.whl")]
    )
    assert applied.root_changed
    # the pages were rewritten with the records (`update_project`), not again afterwards
    assert applied.stale_pages == []
    again = Indexer(store).reindex(check=True)
    assert not again.drift, again
    files = Catalog(store).read_project(NAME)[0].files
    assert sorted(files) == ["acme-1.0-py3-none-any.whl", "acme-2.0-py3-none-any.whl"]


def test_a_plan_without_record_changes_applies_only_the_renderings(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drifted(store, tmp_path)
    Indexer(store).reindex()
    store.delete(layout.page_key(NAME, json=True))
    writes: list[str] = []
    put = store.put

    def counting(key: str, *args: object, **kwargs: object) -> object:
        writes.append(key)
        return put(key, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "put", counting)
    report = Indexer(store).reindex()
    assert report.stale_pages == ["acme"] and not report.indexed and not report.removed
    assert layout.manifest_key(NAME) not in writes
    assert layout.page_key(NAME, json=True) in writes


# -- update_project returns what the change computed ---------------------------------------


def test_update_project_returns_the_result_and_writes_only_when_asked(store: Store) -> None:
    catalog = Catalog(store)
    key = layout.manifest_key(NAME)

    def add(project: Manifest) -> Change[int]:
        project.files["acme-1.0.tar.gz"] = record("acme-1.0.tar.gz", "acme/acme-1.0.tar.gz")
        return Change(len(project.files))

    assert catalog.update_project(NAME, add) == 1
    etag = store.head(key).etag

    def look(project: Manifest) -> Change[list[str]]:
        project.files.clear()  # edited, but not to be written
        return Change(["seen"], write=False)

    assert catalog.update_project(NAME, look) == ["seen"]
    assert store.head(key).etag == etag
    assert list(catalog.read_project(NAME)[0].files) == ["acme-1.0.tar.gz"]


def test_update_project_returns_the_result_of_the_attempt_that_settled(store: Store) -> None:
    """A change runs once per attempt: what the caller gets is the last attempt's answer."""
    catalog = Catalog(store)
    catalog.create_project(NAME)
    attempts: list[int] = []

    def change(project: Manifest) -> Change[tuple[int, list[str]]]:
        attempts.append(len(attempts))
        if len(attempts) == 1:  # another writer gets there first
            other = Manifest(NAME, {"acme-0.9.tar.gz": record("acme-0.9.tar.gz", "acme/x")})
            store.put(layout.manifest_key(NAME), other.to_bytes())
        seen = sorted(project.files)
        project.files["acme-1.0.tar.gz"] = record("acme-1.0.tar.gz", "acme/acme-1.0.tar.gz")
        return Change((len(attempts), seen))

    assert catalog.update_project(NAME, change) == (2, ["acme-0.9.tar.gz"])
    assert sorted(catalog.read_project(NAME)[0].files) == ["acme-0.9.tar.gz", "acme-1.0.tar.gz"]


def test_curation_reports_what_it_changed(store: Store, tmp_path: Path) -> None:
    catalog = Catalog(store)
    wheel = make_wheel(tmp_path, "acme", "1.0")
    publish_file(catalog, wheel)
    assert curation.yank(catalog, "acme", "1.0", "broken") == [wheel.name]
    assert curation.yank(catalog, "acme", "1.0", "broken") == []
    assert curation.unyank(catalog, "acme", "1.0") == [wheel.name]
    assert curation.remove(catalog, "acme", "1.0") == [wheel.name]
    assert catalog.read_project(NAME)[0].files == {}


def test_a_remove_repeated_after_a_failure_finds_its_keys_again(
    store: Store, tmp_path: Path
) -> None:
    """The records already marked write nothing: the keys still come back from the change."""
    catalog = Catalog(store)
    wheel = make_wheel(tmp_path, "acme", "1.0")
    publish_file(catalog, wheel)

    def mark(project: Manifest) -> Change[None]:
        project.files[wheel.name] = project.files[wheel.name].with_changes(
            problem=curation.REMOVING
        )
        return Change(None)

    catalog.update_project(NAME, mark)  # as a remove that failed after its first step
    assert curation.remove(catalog, "acme", wheel.name) == [wheel.name]
    assert store.find(f"acme/{wheel.name}") is None
    assert catalog.read_project(NAME)[0].files == {}


def test_orphans_are_deleted_only_among_metadata_files(store: Store) -> None:
    with pytest.raises(ValueError, match="not a core metadata file"):
        Catalog(store).delete_metadata_files([layout.manifest_key(NAME)])


# -- tokens.json belongs to index/ -----------------------------------------------------------


def test_the_token_document_reads_conditionally_and_returns_what_changes_computed(
    store: Store,
) -> None:
    tokens = TokenStore(store)
    _, first = tokens.create("read")
    _, second = tokens.create("write")
    document = TokenDocument(store, TokenRecord.from_json)
    found = document.read()
    assert set(found.records) == {first.id, second.id}
    assert document.read_if_changed(found.etag) is None  # one conditional read: unchanged

    def drop_reads(records: dict[str, TokenRecord]) -> Change[list[str]]:
        gone = sorted(i for i, r in records.items() if r.scope == "read")
        for token_id in gone:
            del records[token_id]
        return Change(gone, write=bool(gone))

    assert document.update(drop_reads) == [first.id]
    changed = document.read_if_changed(found.etag)
    assert changed is not None and set(changed.records) == {second.id}
    assert document.update(drop_reads) == []
    assert tokens.revoke([second.id]) == [second.id]
    assert tokens.revoke([second.id]) == []


# -- one error model -------------------------------------------------------------------------


def test_publish_errors_are_domain_errors(store: Store, tmp_path: Path) -> None:
    assert issubclass(PublishError, InvalidRequest)
    assert issubclass(FileExists, FileAlreadyExists) and issubclass(FileExists, PublishError)
    assert issubclass(IncompleteUpload, FileExists)
    catalog = Catalog(store)
    wheel = make_wheel(tmp_path, "acme", "1.0")
    with wheel.open("rb") as file, pytest.raises(InvalidRequest) as refused:
        publish(catalog, file, "not a distribution")
    assert refused.value.message == str(refused.value)
    publish_file(catalog, wheel)
    other = make_wheel(tmp_path, "acme", "1.0", payload="# other bytes\n")
    with other.open("rb") as file, pytest.raises(FileAlreadyExists, match="File already exists"):
        publish(catalog, file, other.name)


def test_curation_errors_are_domain_errors(store: Store, tmp_path: Path) -> None:
    catalog = Catalog(store)
    with pytest.raises(NoSuchProject) as missing:
        curation.yank(catalog, "acme", "1.0")
    assert isinstance(missing.value, curation.CurationError)
    wheel = make_wheel(tmp_path, "acme", "1.0")
    publish_file(catalog, wheel)
    with pytest.raises(NoSuchFile, match="no version or file '2.0'"):
        curation.remove(catalog, "acme", "2.0")
    with pytest.raises(InvalidRequest) as invalid:
        curation.unyank(catalog, "-acme-", "1.0")
    assert isinstance(invalid.value, curation.CurationError)
    assert issubclass(curation.CurationError, DomainError)
