"""Curation: yank, unyank and remove published files.

Every change goes through `Catalog.update_project` (a compare-and-swap on the project's
manifest, then the pages are re-rendered), so the pages show it at once: a yanked file stays
listed with PEP 592 `data-yanked` (HTML) and `yanked` (PEP 691 JSON), which makes pip and uv
skip it unless a requirement pins its version with `==` or `===`; a removed file disappears
with its core metadata.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from serverless_pypi.core.errors import DomainError, InvalidRequest, NoSuchFile, NoSuchProject
from serverless_pypi.core.model import Manifest
from serverless_pypi.core.names import (
    InvalidFilename,
    InvalidProjectName,
    NormalizedName,
    normalize_project_name,
    parse_distribution_filename,
)
from serverless_pypi.index.catalog import Catalog, Change

__all__ = [
    "REMOVING",
    "CurationError",
    "InvalidProject",
    "Target",
    "UnknownProject",
    "UnknownTarget",
    "remove",
    "resolve",
    "unyank",
    "yank",
]

log = logging.getLogger(__name__)


class CurationError(DomainError):
    """A curation command that names nothing to act on; the message says what to check."""


class InvalidProject(CurationError, InvalidRequest):
    """The project name is not a valid one."""


class UnknownProject(CurationError, NoSuchProject):
    """The index lists no files for the project."""


class UnknownTarget(CurationError, NoSuchFile):
    """The project has no such version or file."""


@dataclass(frozen=True, slots=True)
class Target:
    """A project and the files one command acts on."""

    project: NormalizedName
    filenames: tuple[str, ...]


def _project(name: str) -> NormalizedName:
    try:
        return normalize_project_name(name)
    except InvalidProjectName as e:
        raise InvalidProject(str(e)) from None


def _matching(index: Manifest, version_or_file: str) -> list[str]:
    """The files a version (PEP 440 equality: 1.0 == 1.0.0) or a file name names."""
    if version_or_file in index.files:
        return [version_or_file]
    try:
        wanted = Version(version_or_file)
    except InvalidVersion:
        return []
    found = []
    for filename in index.files:
        try:
            if parse_distribution_filename(filename).version == wanted:
                found.append(filename)
        except (InvalidFilename, InvalidVersion):
            continue
    return sorted(found)


def resolve(catalog: Catalog, project: str, version_or_file: str) -> Target:
    """The files of `project` that a version or a file name designates (a CurationError if
    none: `UnknownProject`, `UnknownTarget`, or `InvalidProject` for an invalid name)."""
    name = _project(project)
    index, etag = catalog.read_project(name)
    if etag is None or not index.files:
        _converge(catalog, name, etag)
        raise UnknownProject(
            f"The index lists no files for project {name!r}. If its files are in the store "
            "but were never indexed, run `serverless-pypi reindex` first."
        )
    files = _matching(index, version_or_file)
    if not files:
        _converge(catalog, name, etag)
        versions = ", ".join(index.versions()) or "none"
        raise UnknownTarget(
            f"Project {name!r} has no version or file {version_or_file!r} (versions: {versions})."
        )
    return Target(name, tuple(files))


def _converge(catalog: Catalog, name: NormalizedName, etag: str | None) -> None:
    # a command repeated after a failure finds nothing left to change: its pages may still be
    # behind the manifest (the failure came after the manifest was written)
    if etag is not None:
        catalog.converge(name)


def _set_yanked(
    catalog: Catalog, project: str, version_or_file: str, yanked: str | None
) -> list[str]:
    target = resolve(catalog, project, version_or_file)

    def change(index: Manifest) -> Change[list[str]]:
        """The files whose yank state this attempt changed."""
        changed = []
        for filename in target.filenames:
            record = index.files.get(filename)
            if record is not None and record.yanked != yanked:
                index.files[filename] = record.with_changes(yanked=yanked)
                changed.append(filename)
        return Change(sorted(changed), write=bool(changed))

    return catalog.update_project(target.project, change)


def yank(catalog: Catalog, project: str, version_or_file: str, reason: str = "") -> list[str]:
    """Mark files yanked (PEP 592), with an optional reason; returns the files that changed."""
    # PEP 592: the reason is free text; keep it one line so every page renders it plainly
    return _set_yanked(catalog, project, version_or_file, " ".join(reason.split()))


def unyank(catalog: Catalog, project: str, version_or_file: str) -> list[str]:
    """Clear the yank mark of files; returns the files that changed."""
    return _set_yanked(catalog, project, version_or_file, None)


#: the `problem` of a record whose file is being removed: not served, found again by a retry
REMOVING = "removed with `serverless-pypi remove`; its bytes are being deleted"


def remove(catalog: Catalog, project: str, version_or_file: str) -> list[str]:
    """Delete files: their records (pages change at once), core metadata and bytes.

    First the records are marked as being removed (`REMOVING`: no page lists them from then
    on, so no page ever lists a file whose bytes are gone), then the core metadata and the
    bytes are deleted, and only then the records dropped. A command that failed halfway is
    repeated and finds the marked records again; an indexer that looks at the bytes meanwhile
    leaves the mark alone (same etag), and one that re-listed them is undone by the last step.
    """
    target = resolve(catalog, project, version_or_file)

    def mark(index: Manifest) -> Change[dict[str, str]]:
        """The keys of the files to remove (file name -> key), as this attempt's manifest
        lists them: marked now, or already by a command that failed halfway."""
        keys: dict[str, str] = {}
        changed = False
        for filename in target.filenames:
            record = index.files.get(filename)
            if record is None:
                continue
            keys[filename] = record.key
            if record.problem != REMOVING:
                index.files[filename] = record.with_changes(problem=REMOVING)
                changed = True
        return Change(keys, write=changed)

    keys = catalog.update_project(target.project, mark)
    for filename, key in sorted(keys.items()):
        catalog.delete_metadata(target.project, filename)
        catalog.delete_provenance(target.project, filename)
        catalog.store.delete(key)
        log.info("removed %s", key)
    # drop the records; a reindex racing with us may also have listed a file again from the
    # bytes just deleted
    catalog.update_project(target.project, lambda index: _forget(index, keys))
    return sorted(keys)


def _forget(index: Manifest, keys: dict[str, str]) -> Change[None]:
    stale = [f for f, key in keys.items() if f in index.files and index.files[f].key == key]
    for filename in stale:
        del index.files[filename]
    return Change(None, write=bool(stale))
