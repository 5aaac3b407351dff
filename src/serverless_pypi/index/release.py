"""Publishing a release of staged files at once (PEP 694: atomic publication).

A page shows what the project's manifest lists, so one manifest update that adds every
record makes every file of the release appear in one step. Before it, the bytes must be in
place under `<project>/<file>`, where the indexer (S3 events, reindex) would list each copy
on its own as soon as it sees it; so the publish first writes a marker,
`.serverless-pypi/publishing/<name>/<version>.json` naming the files, and the indexer adds no
record for a file a marker names. The order:

1. the marker (`If-None-Match: *`; a marker of the same session is a publish to resume);
2. the project's unknown files indexed and its manifest created (as `publish` does);
3. each staged object copied to its key (`If-None-Match: *`: the same bytes there already
   are fine, other bytes undo the copies and raise FileExists);
4. the core metadata files and the provenance objects (PEP 740: the verified attestations
   staged with a file, written as `publish` writes them);
5. ONE `Catalog.update_project` adding every record;
6. the marker deleted, then the staged objects.

A failure before 5 lists nothing; the marker stays (the copies stay unlisted) and publishing
again resumes. A session that dies with its marker left is undone by the session sweep
(`undo_abandoned`: its unlisted copies deleted, then the marker).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from serverless_pypi.core.errors import Conflict
from serverless_pypi.core.metadata import Inspection
from serverless_pypi.core.model import FileRecord, Manifest, format_upload_time
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog, Change
from serverless_pypi.index.publish import (
    FileExists,
    PublishResult,
    _adding,
    _exists,
    _index_unknown,
    _same_bytes,
    _twin,
    _twin_exists,
    _write_provenance,
)
from serverless_pypi.index.records import Derived, record_for
from serverless_pypi.storage import NotFound, PreconditionFailed, StoreError

if TYPE_CHECKING:
    from serverless_pypi.index.sessions import Sessions, StagedFile, UploadSession

__all__ = ["Marker", "abandoned_markers", "publish_release", "read_marker", "undo_abandoned"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Marker:
    """A release being published: by `session`, the files (file name -> sha256)."""

    key: str
    session: str
    name: str
    version: str
    files: dict[str, str]

    def to_bytes(self, started: str) -> bytes:
        document = {
            "session": self.session,
            "files": sorted(self.files),
            "sha256": self.files,
            "started": started,
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def read_marker(catalog: Catalog, key: str) -> Marker | None:
    """The marker at `key`; None when there is none (or it cannot be read)."""
    try:
        document = json.loads(catalog.store.get(key).data)
        name, _, version = key.removeprefix(layout.PUBLISHING).removesuffix(".json").partition("/")
        sha256 = document.get("sha256") or {}
        files = {str(f): str(sha256.get(f, "")) for f in document["files"]}
        return Marker(key, str(document["session"]), name, version, files)
    except NotFound:
        return None
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("unreadable publish marker %r", key)
        return None


def _target(index: Manifest, name: str, filename: str) -> str:
    """Where the file goes: where the manifest lists it already, else `<project>/<file>`."""
    known = index.files.get(filename)
    return known.key if known is not None else layout.distribution_key(name, filename)


def _place_marker(catalog: Catalog, session: UploadSession) -> Marker:
    """Write the release's marker, or take over this session's (a publish to resume)."""
    key = layout.publishing_key(session.name, session.version)
    marker = Marker(
        key,
        session.id,
        session.name,
        session.version,
        {f.filename: f.sha256 for f in session.files.values()},
    )
    started = format_upload_time(datetime.now(UTC))
    for _ in range(10):
        try:
            catalog.store.put(
                key, marker.to_bytes(started), content_type="application/json", if_none_match=True
            )
            return marker
        except PreconditionFailed:
            current = read_marker(catalog, key)
            if current is None:
                continue  # removed meanwhile: write ours
            if current.session == session.id:
                # our own publish, interrupted: resume it, the files since added reserved too
                merged = {**current.files, **marker.files}
                if merged != current.files:
                    current = Marker(key, session.id, current.name, current.version, merged)
                    # only this session's publishes write its marker, and the files do not
                    # change while it publishes: no other writer to race
                    catalog.store.put(
                        key, current.to_bytes(started), content_type="application/json"
                    )
                return current
            if _session_alive(catalog, current.session):
                raise Conflict(
                    f"{session.name} {session.version} is being published by another "
                    "session: try again later."
                ) from None
            undo_abandoned(catalog, current, check=False)
    raise StoreError(f"the publish marker {key!r} kept changing")


def _session_alive(catalog: Catalog, sid: str) -> bool:
    from serverless_pypi.index.sessions import UploadSession

    try:
        session = UploadSession.from_bytes(catalog.store.get(layout.session_key(sid)).data)
    except (NotFound, ValueError, KeyError):
        return False
    return session.alive(datetime.now(UTC))


def _check_conflicts(catalog: Catalog, session: UploadSession) -> Manifest:
    """The manifest, once no file of the session conflicts with what it lists."""
    index, _ = catalog.read_project(session.name)
    for file in session.files.values():
        known = index.files.get(file.filename)
        if known is not None and known.sha256 not in (None, file.sha256):
            raise _exists(file.filename)
        key = _target(index, session.name, file.filename)
        if twin := _twin(catalog, index, file.filename, key):
            raise _twin_exists(file.filename, twin)
    return index


def _copy(
    catalog: Catalog, staged: str, key: str, sha256: str, filename: str
) -> tuple[bool, str | None]:
    """Copy the staged object to `key` unless it is there: (created, the copy's etag);
    FileExists when other bytes are at `key`."""
    for _ in range(3):
        try:
            info = catalog.store.copy(staged, key, if_none_match=True)
            return True, info.etag
        except PreconditionFailed:
            same = _same_bytes(catalog, key, sha256)
            if same is None:
                continue  # removed meanwhile: copy again
            if not same:
                raise _exists(filename) from None
            return False, None
    raise StoreError(f"{key!r} kept appearing and disappearing while it was copied")


def _records_adding(
    catalog: Catalog, records: list[FileRecord]
) -> Callable[[Manifest], Change[None]]:
    """One manifest change that lists every record (`publish._adding` for each)."""
    adders = [_adding(catalog, record) for record in records]

    def add(project: Manifest) -> Change[None]:
        write = False
        for adder in adders:
            write = adder(project).write or write
        return Change(None, write=write)

    return add


def publish_release(
    catalog: Catalog, session: UploadSession, staged_key: Callable[[str], str]
) -> list[PublishResult]:
    """Publish every file of `session` (each verified and staged at `staged_key(filename)`)
    in one manifest update; see the module's text for the order and what a failure leaves.

    FileExists (and nothing listed, no copy of this publish left) when a file name (or the
    same distribution) holds other bytes; a StoreError leaves the marker for a resume.
    """
    name = session.name
    marker = _place_marker(catalog, session)
    made: dict[str, str] = {}
    try:
        _index_unknown(catalog, name, skip="")
        if catalog.read_project(name)[1] is None:
            catalog.create_project(name)
        index = _check_conflicts(catalog, session)
        # copies an interrupted publish made of files the session dropped since: they go
        strays = {f: s for f, s in marker.files.items() if f not in session.files}
        _remove_copies(catalog, marker, strays, {}, check=False)
        results: dict[str, PublishResult] = {}
        for file in sorted(session.files.values(), key=lambda f: f.filename):
            key = _target(index, name, file.filename)
            created, etag = _copy(
                catalog, staged_key(file.filename), key, file.sha256, file.filename
            )
            if etag is not None:
                made[key] = etag
            results[file.filename] = PublishResult(
                file.filename, name, file.sha256, "created" if created else "exists"
            )
        records = [
            _record(
                catalog,
                name,
                file,
                _target(index, name, file.filename),
                staged_key,
                provenance=_staged_provenance(catalog, session.id, file),
            )
            for file in session.files.values()
        ]
        catalog.update_project(name, _records_adding(catalog, records))
    except FileExists:
        _withdraw(catalog, marker, made)
        raise
    _finish(catalog, marker, session, staged_key)
    return [results[n] for n in sorted(results)]


def _record(
    catalog: Catalog,
    name: NormalizedName,
    file: StagedFile,
    key: str,
    staged_key: Callable[[str], str],
    *,
    provenance: bytes | None,
) -> FileRecord:
    """The record of the copy at `key`, after its core metadata file and its provenance
    object (`provenance`, PEP 740) are in place."""
    metadata = None
    if file.metadata_sha256:
        metadata = catalog.store.get(staged_key(file.filename) + ".metadata").data
        catalog.write_metadata(name, file.filename, metadata)
    provenance_sha256 = _write_provenance(catalog, name, file.filename, provenance)
    derived = Derived(file.sha256, file.size, Inspection(metadata, file.requires_python))
    return record_for(
        catalog.store.head(key),
        derived,
        format_upload_time(datetime.now(UTC)),
        provenance_sha256=provenance_sha256,
    )


def _staged_provenance(catalog: Catalog, sid: str, file: StagedFile) -> bytes | None:
    """The provenance object staged with `file` (None: it has none), checked against the
    digest its session document names."""
    if not file.provenance_sha256:
        return None
    key = layout.session_provenance_key(sid, file.filename, file.provenance_sha256)
    data = catalog.store.get(key).data
    if hashlib.sha256(data).hexdigest() != file.provenance_sha256:
        raise StoreError(f"the staged provenance object {key!r} does not match its digest")
    return data


def _finish(
    catalog: Catalog, marker: Marker, session: UploadSession, staged_key: Callable[[str], str]
) -> None:
    """Listed: the marker goes, then the staged objects (the sweep removes what stays)."""
    catalog.store.delete(marker.key)
    for filename in session.files:
        try:
            catalog.store.delete(staged_key(filename))
            catalog.store.delete(staged_key(filename) + ".metadata")
            staged = session.files[filename].provenance_sha256
            if staged:
                catalog.store.delete(layout.session_provenance_key(session.id, filename, staged))
        except StoreError as e:
            log.warning("could not delete the staged %r: %s", filename, e)


def _withdraw(catalog: Catalog, marker: Marker, made: dict[str, str]) -> None:
    """Undo a publish that cannot complete: remove its unlisted copies, then the marker."""
    try:
        _undo(catalog, marker, made, check=False)
    except StoreError as e:
        # the marker stays: the files stay unlisted, and the sweep (or a resume) finishes
        log.warning("could not undo the publish of %s %s: %s", marker.name, marker.version, e)


def _undo(catalog: Catalog, marker: Marker, made: dict[str, str], *, check: bool) -> list[str]:
    """The copies the marker's publish left unlisted (known by the etag `made` them, else by
    their sha256), deleted unless `check`, and then the marker; the keys."""
    found = _remove_copies(catalog, marker, marker.files, made, check=check)
    found.append(marker.key)
    if not check:
        catalog.store.delete(marker.key)
    return found


def _remove_copies(
    catalog: Catalog,
    marker: Marker,
    files: dict[str, str],
    made: dict[str, str],
    *,
    check: bool,
) -> list[str]:
    """The unlisted copies of `files` (file name -> sha256) that the marker's publish made,
    deleted unless `check` (with their core metadata files); their keys."""
    name = NormalizedName(marker.name)
    index, _ = catalog.read_project(name)
    found: list[str] = []
    for filename, sha256 in sorted(files.items()):
        key = _target(index, name, filename)
        listed = index.files.get(filename)
        if listed is not None and listed.key == key:
            continue
        info = catalog.store.find(key)
        if info is None:
            continue
        ours = made.get(key) == info.etag or (
            bool(sha256) and _same_bytes(catalog, key, sha256) is True
        )
        if ours:
            found.append(key)
            if not check:
                catalog.store.delete(key)
                catalog.delete_metadata(name, filename)
                catalog.delete_provenance(name, filename)
    return found


def abandoned_markers(sessions: Sessions, now: datetime) -> Iterator[Marker]:
    """Markers whose session is dead (or gone): their publish will never resume."""
    for info in sessions.store.list(layout.PUBLISHING):
        marker = read_marker(sessions.catalog, info.key)
        if marker is None:
            continue
        session = sessions.find(marker.session)
        if session is None or not session.alive(now):
            yield marker


def undo_abandoned(catalog: Catalog, marker: Marker, *, check: bool) -> list[str]:
    """Undo the publish a dead session left half done (see `_undo`); the keys."""
    found = _undo(catalog, marker, {}, check=check)
    if not check:
        log.warning("undid the unfinished publish of %s %s", marker.name, marker.version)
    return found
