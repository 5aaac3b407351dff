"""The index's data model: what the store's derived data says about each file.

A `Manifest` is the source of truth for one project's page. It is stored as JSON under the
reserved prefix (see `serverless_pypi.index.layout`) and rendered into both page formats by
`serverless_pypi.core.render`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from serverless_pypi.core.names import (
    InvalidFilename,
    NormalizedName,
    distribution_identity,
    parse_distribution_filename,
)

if TYPE_CHECKING:
    from packaging.version import Version

__all__ = ["FORMAT_VERSION", "FileRecord", "Manifest", "format_upload_time"]

FORMAT_VERSION = 1


def format_upload_time(moment: datetime) -> str:
    """PEP 700 `upload-time`: ISO 8601 in UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One distribution as the index lists it.

    `key` is where the bytes live in the store (the folder may be un-normalized) and `etag`
    is the store's version of those bytes when they were indexed: a record whose etag no
    longer matches the object describes other bytes and must be rebuilt.
    """

    filename: str
    key: str
    size: int
    upload_time: str
    etag: str = ""
    sha256: str | None = None
    requires_python: str | None = None
    # sha256 of the PEP 658 core metadata file, when the index holds one
    metadata_sha256: str | None = None
    # PEP 592: None = not yanked; "" = yanked without a reason; else the reason
    yanked: str | None = None
    # why the file is not served (a corrupt archive, a wheel contradicting its name): kept in
    # the manifest so the indexer does not hash it again, never listed on a page
    problem: str | None = None
    # sha256 of the PEP 740 provenance object (the file's verified attestations), when the
    # index holds one
    provenance_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "filename": self.filename,
            "key": self.key,
            "size": self.size,
            "upload_time": self.upload_time,
            "etag": self.etag,
        }
        for name in (
            "sha256",
            "requires_python",
            "metadata_sha256",
            "yanked",
            "problem",
            "provenance_sha256",
        ):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileRecord:
        return cls(
            filename=str(data["filename"]),
            key=str(data["key"]),
            size=int(data["size"]),
            upload_time=str(data["upload_time"]),
            etag=str(data.get("etag", "")),
            sha256=data.get("sha256"),
            requires_python=data.get("requires_python"),
            metadata_sha256=data.get("metadata_sha256"),
            yanked=data.get("yanked"),
            problem=data.get("problem"),
            provenance_sha256=data.get("provenance_sha256"),
        )

    def with_changes(self, **changes: Any) -> FileRecord:
        return replace(self, **changes)


def _version_of(filename: str) -> Version | None:
    from packaging.version import InvalidVersion

    try:
        return parse_distribution_filename(filename).version
    except (InvalidFilename, InvalidVersion):
        return None


@dataclass(slots=True)
class Manifest:
    """All files of one project, keyed by file name."""

    name: NormalizedName
    files: dict[str, FileRecord] = field(default_factory=dict)
    #: when the stored manifest (or, listed live, the newest file) was written; not stored
    last_modified: datetime | None = field(default=None, compare=False)

    def served(self) -> list[FileRecord]:
        """The files a page lists: all but those recorded with a problem."""
        return [r for r in self.files.values() if r.problem is None]

    def rivals(self, filename: str, key: str) -> list[FileRecord]:
        """Records under other file names of the same distribution (see `Identity`) as the
        object `key` holding `filename`, which the index keeps in its place.

        An index keeps one key per identity: the one its manifest lists, and of two listed
        keys the first in key order. So every such record is a rival of an unlisted key; a
        listed key's rivals are those with earlier keys. The caller checks that their objects
        still exist (a record of a deleted object is dropped by its own event).
        """
        try:
            identity = distribution_identity(filename)
        except InvalidFilename:
            return []
        mine = self.files.get(filename)
        listed = mine is not None and mine.key == key
        found = []
        for record in self.files.values():
            if record.filename == filename or (listed and record.key > key):
                continue
            try:
                if distribution_identity(record.filename) == identity:
                    found.append(record)
            except InvalidFilename:
                continue
        return found

    def sorted_files(self) -> list[FileRecord]:
        """Served files ordered by version, then name: the order pages list them in."""

        from packaging.version import Version

        def order(record: FileRecord) -> tuple[int, Version, str]:
            version = _version_of(record.filename)
            if version is None:
                return (0, Version("0"), record.filename)
            return (1, version, record.filename)

        return sorted(self.served(), key=order)

    def versions(self) -> list[str]:
        """PEP 700 `versions`: every version that has a file, in ascending order."""
        found = {v for r in self.served() if (v := _version_of(r.filename)) is not None}
        return [str(v) for v in sorted(found)]

    def to_bytes(self) -> bytes:
        document = {
            "format": FORMAT_VERSION,
            "name": self.name,
            "files": [r.to_json() for r in sorted(self.files.values(), key=lambda r: r.filename)],
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        document = json.loads(data)
        if document.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported project index format {document.get('format')!r}")
        files = [FileRecord.from_json(f) for f in document["files"]]
        return cls(NormalizedName(document["name"]), {f.filename: f for f in files})
