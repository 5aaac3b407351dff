"""Publishing a distribution: validate it, store it, and list it with its derived data.

The order makes a file visible only when complete: first every file of the project's
folders that the manifest does not know is indexed (so a conflict is checked against all
that is served) and the manifest is created if there is none (a project with a manifest is
listed from it alone); then the bytes are written with `If-None-Match: *` (of two publishers
of one file name exactly one wins), then the core metadata file and the PEP 740 provenance
object (verified attestations, when the upload carried some), and only then the manifest
record that puts the file on the page. When the record cannot be written, the bytes this
upload created are removed again, so nothing of a failed upload stays behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Literal

from serverless_pypi.core.errors import Conflict, FileAlreadyExists, Forbidden, InvalidRequest
from serverless_pypi.core.metadata import BadDistribution, hash_stream
from serverless_pypi.core.model import FileRecord, Manifest, format_upload_time
from serverless_pypi.core.names import (
    Distribution,
    InvalidFilename,
    NormalizedName,
    check_publishable_filename,
    parse_distribution_filename,
)
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog, Change
from serverless_pypi.index.indexer import Indexer, being_published, classify_key
from serverless_pypi.index.records import Derived, derive_from_file, record_for
from serverless_pypi.storage import NotFound, PreconditionFailed, StoreError

if TYPE_CHECKING:
    from serverless_pypi.core.policy import Policy

__all__ = [
    "CLOSED_STATUSES",
    "FileExists",
    "IncompleteUpload",
    "PublishError",
    "PublishResult",
    "check_attestations",
    "check_status",
    "publish",
]

log = logging.getLogger(__name__)


class PublishError(InvalidRequest):
    """The distribution cannot be published; the message says why."""


class FileExists(PublishError, FileAlreadyExists):
    """Other bytes are already published under this file name."""


class IncompleteUpload(FileExists):
    """Other bytes lie under this file name without a record: another upload of it is under
    way, or one failed partway (and could not be cleaned up)."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    filename: str
    project: str
    sha256: str
    status: Literal["created", "exists"]


def _same_bytes(catalog: Catalog, key: str, sha256: str) -> bool | None:
    """Whether the object holds these bytes (None: there is no object any more)."""
    try:
        with catalog.store.open(key) as existing:
            return hash_stream(existing)[0] == sha256
    except NotFound:
        return None


def _lists(catalog: Catalog, name: NormalizedName, filename: str, key: str) -> bool:
    """Whether the manifest (read now) has a record of `filename` at `key`."""
    record = catalog.read_project(name)[0].files.get(filename)
    return record is not None and record.key == key


def _index_unknown(catalog: Catalog, name: NormalizedName, skip: str) -> None:
    """Index the files in the project's folders that the manifest does not know.

    Files copied into a folder that was never indexed (the reference layout's `My_Pkg/`) are
    served by the index as soon as it sees them: an upload must be checked against them, not
    stored next to them. `skip` (the key this upload writes) is left for the upload to settle.
    """
    folders = catalog.project_folders().get(name, [])
    if not folders:
        return
    index, _ = catalog.read_project(name)
    known = {(r.key, r.etag) for r in index.files.values()}
    unknown = [
        info.key
        for folder in sorted(folders)
        for info in catalog.store.list(folder + "/")
        if info.key != skip
        and (info.key, info.etag) not in known
        and not isinstance(classify_key(info.key), str)
    ]
    if unknown:
        indexer = Indexer(catalog.store)
        for key in unknown:
            indexer.index_key(key)


def _store_bytes(
    catalog: Catalog, file: IO[bytes], key: str, sha256: str, conflict: Callable[[], PublishError]
) -> bool:
    """Write the bytes if no object is at `key`: True if this call created it, False if the
    same bytes were there already; raises `conflict()` for other bytes."""
    for _ in range(3):
        file.seek(0)
        try:
            catalog.store.put(
                key, file, content_type="application/octet-stream", if_none_match=True
            )
            return True
        except PreconditionFailed:
            # somebody stored this name first: fine if they stored the same bytes
            same = _same_bytes(catalog, key, sha256)
            if same is None:
                continue  # removed meanwhile (a failed upload cleaning up): write again
            if not same:
                raise conflict() from None
            return False
    raise StoreError(f"{key!r} kept appearing and disappearing while it was written")


def _withdraw(
    catalog: Catalog, name: NormalizedName, filename: str, key: str, file: IO[bytes]
) -> None:
    """Remove the object a failed upload created, unless a record lists it after all.

    Only this upload's own object goes, and only while no record lists it: a concurrent
    upload of the same bytes may have adopted it (then it is put back). If the store fails
    here too, the object stays; an upload of the same bytes finishes the job.
    """
    try:
        if _lists(catalog, name, filename, key):
            return
        catalog.store.delete(key)
        log.warning("removed %r again: its upload failed before it was listed", key)
        if _lists(catalog, name, filename, key):
            _put_back(catalog, key, file)
    except StoreError as e:
        log.warning("could not remove %r after its upload failed: %s", key, e)


def _put_back(catalog: Catalog, key: str, file: IO[bytes]) -> None:
    file.seek(0)
    # PreconditionFailed: somebody wrote it again; the record's etag decides, and an indexer
    # re-derives a record whose etag no longer matches
    with contextlib.suppress(PreconditionFailed):
        catalog.store.put(key, file, content_type="application/octet-stream", if_none_match=True)


def _twin(catalog: Catalog, index: Manifest, filename: str, key: str) -> FileRecord | None:
    """A file the index lists under another name that is the same distribution as `filename`
    (`Manifest.rivals`: `Acme_X-5.0-...` for `acme_x-5.0-...`, `5.0.0` for `5.0`,
    `py3.py2` for `py2.py3`), whose object still exists."""
    return next((r for r in index.rivals(filename, key) if catalog.store.find(r.key)), None)


def _twin_exists(filename: str, twin: FileRecord) -> FileExists:
    # the wording of PyPI's answer, which twine --skip-existing and uv recognize
    return FileExists(
        f"File already exists: {filename!r} is the same distribution as the published "
        f"{twin.filename!r} (same project, version and, for wheels, build tag and tags). "
        "A published file never changes; publish a new version instead."
    )


def _exists(filename: str) -> FileExists:
    return FileExists(
        f"File already exists: {filename!r} is published with other contents. "
        "A published file never changes; publish a new version instead."
    )


def _check(file: IO[bytes], filename: str) -> tuple[Distribution, Derived]:
    """The distribution a valid file name names, and the file's derived data (PublishError
    for an invalid name or file)."""
    try:
        dist = check_publishable_filename(filename)  # ASCII, canonical, not a .zip sdist
        return dist, derive_from_file(file, dist)
    except (InvalidFilename, BadDistribution) as e:
        raise PublishError(str(e)) from e


def _key_for(catalog: Catalog, name: NormalizedName, filename: str, sha256: str) -> str:
    """The key the upload goes to, once the checks that need no bytes written passed.

    The project's files never indexed are indexed first and its manifest is created if there
    is none (see the module's docstring); other bytes under the name, or under another
    spelling of it, raise FileExists.
    """
    target = layout.distribution_key(name, filename)
    if being_published(catalog.store, name, [parse_distribution_filename(filename)]):
        # PEP 694 (atomic publication): the names of a release being published are reserved
        # for it, against uploads through either API, while it is published
        raise Conflict(
            f"{filename!r} is being published by an upload session of its release: "
            "try again in a moment."
        )
    _index_unknown(catalog, name, skip=target)
    index, manifest_etag = catalog.read_project(name)
    if manifest_etag is None:
        catalog.create_project(name)  # before any bytes: see the module's docstring
    known = index.files.get(filename)
    if known is not None and known.sha256 not in (None, sha256):
        raise _exists(filename)
    key = known.key if known is not None else target
    if twin := _twin(catalog, index, filename, key):
        raise _twin_exists(filename, twin)
    return key


def _conflict(catalog: Catalog, name: NormalizedName, filename: str, key: str) -> PublishError:
    """What other bytes found at `key` mean: published, or an upload not finished."""
    if _lists(catalog, name, filename, key):
        return _exists(filename)
    # PyPI's wording first (twine --skip-existing and uv look for it), then what happened
    return IncompleteUpload(
        f"File already exists: the store holds other contents under {filename!r} that the "
        "index does not list yet: another upload of this name is under way, or a previous "
        "upload of this name failed partway (or the file was copied into the store and is "
        "not indexed yet). Upload that same file again to finish it, or have the object "
        "removed from the store."
    )


def _adding(catalog: Catalog, record: FileRecord) -> Callable[[Manifest], Change[None]]:
    """The manifest change that lists `record` (FileExists if other bytes got there first)."""
    filename, key = record.filename, record.key

    def add(project: Manifest) -> Change[None]:
        if twin := _twin(catalog, project, filename, key):
            raise _twin_exists(filename, twin)  # published meanwhile under another spelling
        current = project.files.get(filename)
        if current is None:
            project.files[filename] = record
            return Change(None)
        if current.sha256 not in (None, record.sha256):
            raise _exists(filename)
        # the same bytes: a provenance the file has stays (the first verified attestations
        # of a file are its provenance; a later upload never replaces them)
        provenance = current.provenance_sha256 or record.provenance_sha256
        if (
            current.sha256 == record.sha256
            and current.etag == record.etag
            and current.provenance_sha256 == provenance
        ):
            return Change(None, write=False)
        # keep the upload time and yank state the index already has
        project.files[filename] = record.with_changes(
            upload_time=current.upload_time, yanked=current.yanked, provenance_sha256=provenance
        )
        return Change(None)

    return add


def _list(
    catalog: Catalog,
    name: NormalizedName,
    filename: str,
    key: str,
    derived: Derived,
    *,
    file: IO[bytes],
    created: bool,
    provenance: bytes | None,
) -> None:
    """Write the core metadata file, the provenance object (unless the file has one: see
    `_adding`) and the record of the bytes at `key`; when that fails, remove the bytes this
    upload `created` (see `_withdraw`)."""
    try:
        info = catalog.store.head(key)
        metadata = derived.inspection.metadata
        if metadata is not None:
            catalog.write_metadata(name, filename, metadata)
        provenance_sha256 = _write_provenance(catalog, name, filename, provenance)
        record = record_for(
            info,
            derived,
            format_upload_time(datetime.now(UTC)),
            provenance_sha256=provenance_sha256,
        )
        catalog.update_project(name, _adding(catalog, record))
    except FileExists:
        if created:
            catalog.store.delete(key)
        raise
    except StoreError:
        if created:
            _withdraw(catalog, name, filename, key, file)
        raise


def _write_provenance(
    catalog: Catalog, name: NormalizedName, filename: str, provenance: bytes | None
) -> str | None:
    """Store the provenance object before the record that names it (as the core metadata);
    its sha256, or None without one. A file listed with a provenance keeps it: nothing is
    written over it."""
    if provenance is None:
        return None
    listed = catalog.read_project(name)[0].files.get(filename)
    if listed is not None and listed.provenance_sha256:
        return None
    catalog.write_provenance(name, filename, provenance)
    return hashlib.sha256(provenance).hexdigest()


def publish(
    catalog: Catalog, file: IO[bytes], filename: str, *, provenance: bytes | None = None
) -> PublishResult:
    """Publish the seekable distribution `file` under `filename`, with `provenance` (a PEP 740
    provenance object of verified attestations, see `auth.attestations`) when given.

    Identical bytes under an existing name are a no-op ("exists"); other bytes raise
    FileExists; an invalid file raises PublishError. Nothing of the file is written for
    either (files of the project that were never indexed are indexed first, see above). After a
    StoreError, the bytes this upload created are removed again unless a record lists them
    (`_withdraw`).
    """
    dist, derived = _check(file, filename)
    name = dist.project
    key = _key_for(catalog, name, filename, derived.sha256)
    created = _store_bytes(
        catalog, file, key, derived.sha256, lambda: _conflict(catalog, name, filename, key)
    )
    _list(catalog, name, filename, key, derived, file=file, created=created, provenance=provenance)
    if not created and catalog.store.find(key) is None:
        # the upload that created the object failed and withdrew it after our record: ours
        # are the same bytes, so they go back in place
        _put_back(catalog, key, file)
    # debug: the caller reports the outcome (the CLI prints one line a file, uploads answer it)
    log.debug("published %s (%s)", filename, "new" if created else "already there")
    return PublishResult(filename, name, derived.sha256, "created" if created else "exists")


#: the project statuses (PEP 792) under which a project takes no new files
CLOSED_STATUSES = ("archived", "quarantined")


def check_status(policy: Policy, project: NormalizedName) -> None:
    """Raise Forbidden when the project's status in `policy` closes it to new files.

    PEP 792: an `archived` project takes no new uploads, nor does a `quarantined` one (which
    offers no files either); `deprecated` and `active` ones do. Every way in checks it: the
    upload API and `serverless-pypi publish`.
    """
    status = policy.status_of(project)
    if status is None or status.status not in CLOSED_STATUSES:
        return
    why = f" ({status.reason})" if status.reason else ""
    raise Forbidden(
        f"The project {project!r} is {status.status}{why}: it takes no new uploads (PEP 792)."
    )


def check_attestations(
    policy: Policy, project: NormalizedName, files: Sequence[str] | None = None
) -> None:
    """Raise InvalidRequest when `policy` requires PEP 740 attestations of the project's
    uploads (`serverless-pypi attestations require`): for an upload without any, for
    `serverless-pypi publish`, which sends none, and for an upload session (PEP 694) whose
    `files` (those without attestations; empty: none lacks them) are not empty."""
    glob = policy.requires_attestations(project)
    if glob is None or (files is not None and not files):
        return
    if files is not None:
        raise InvalidRequest(
            f"The project {project!r} requires attestations (PEP 740), and the session's "
            f"files {', '.join(sorted(files))} have none: post each file's attestations to "
            "its mechanism's attestations_url before completing it (`serverless-pypi upload` "
            f"sends the <file>.*.attestation files beside it), signed by the project's "
            f"publisher (rule {glob!r}). Delete those files and upload them again with them."
        )
    raise InvalidRequest(
        f"The project {project!r} requires attestations (PEP 740): upload each file with its "
        "attestations (uv publish sends the <file>.*.attestation files beside it, twine "
        f"upload --attestations), signed by the project's publisher (rule {glob!r})."
    )
