"""Upload 2.0 (PEP 694) sessions: the stored documents and their (de)serialization.

A publishing session (`UploadSession`) and its file upload sessions (`StagedFile`) are one
JSON document, `.serverless-pypi/sessions/<sid>.json` (`index.layout.session_key`), which
`index.sessions` changes only by compare-and-swap. Here are the documents, the session ids,
the times PEP 694 shows (`expires-at`), the mechanisms' names, and the errors particular to
sessions.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from serverless_pypi.core.errors import Conflict, InvalidRequest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index.session_parts import part_layout

__all__ = [
    "HTTP_POST_BYTES",
    "MAX_LIFETIME",
    "S3_MULTIPART",
    "SESSION_ID",
    "SessionConflict",
    "StagedFile",
    "Status",
    "UnsupportedMechanism",
    "UploadSession",
    "format_time",
    "new_session_id",
    "parse_time",
]

Status = Literal["pending", "processing", "complete", "error", "canceled"]

#: PEP 694: the mechanism every server implements (one POST carrying the file's bytes)
HTTP_POST_BYTES = "http-post-bytes"
#: our vendor mechanism (PEP 694 "vnd-<operator>-<implementation>"): presigned S3 multipart
S3_MULTIPART = "vnd-serverlesspypi-s3multipart-presigned-v1"
#: the longest a session lives, from its creation, however often it is extended
MAX_LIFETIME = 7 * 24 * 3600
#: a session id, as `new_session_id` makes them
SESSION_ID = re.compile(r"[a-z2-7]{26}", re.ASCII)
_DOCUMENT_FORMAT = 1


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC, to the second (`2026-12-01T15:00:00Z`), as PEP 694's `expires-at`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def new_session_id() -> str:
    # 16 random bytes in lowercase base32: 26 characters, safe in a URL path and a key
    return base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


@dataclass(frozen=True)
class StagedFile:
    """One file upload session (PEP 694): a file of the release, staged until publish."""

    filename: str
    size: int
    #: what the client declared, by hashlib name: sha256 always, others as given
    hashes: Mapping[str, str]
    mechanism: str
    status: Status
    created: str
    expires: str
    #: the S3 multipart upload the client's parts go to (S3 mechanism only)
    upload_id: str | None = None
    #: when it was verified (its `upload-time` on the stage)
    completed: str | None = None
    #: why it failed verification (status `error`)
    problem: str | None = None
    #: sha256 of its core metadata file (staged beside it), when it has one
    metadata_sha256: str | None = None
    requires_python: str | None = None
    #: sha256 of its PEP 740 provenance object (verified attestations), staged beside it
    #: (`layout.session_provenance_key`), when the client posted attestations
    provenance_sha256: str | None = None

    @property
    def sha256(self) -> str:
        return self.hashes["sha256"]

    @property
    def part_size(self) -> int:
        return part_layout(self.size)[0]

    @property
    def part_count(self) -> int:
        return part_layout(self.size)[1]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "filename": self.filename,
            "size": self.size,
            "hashes": dict(self.hashes),
            "mechanism": self.mechanism,
            "status": self.status,
            "created": self.created,
            "expires": self.expires,
        }
        for name in (
            "upload_id",
            "completed",
            "problem",
            "metadata_sha256",
            "requires_python",
            "provenance_sha256",
        ):
            if (value := getattr(self, name)) is not None:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StagedFile:
        return cls(
            filename=str(data["filename"]),
            size=int(data["size"]),
            hashes={str(k): str(v) for k, v in data["hashes"].items()},
            mechanism=str(data["mechanism"]),
            status=cast("Status", data["status"]),
            created=str(data["created"]),
            expires=str(data["expires"]),
            upload_id=data.get("upload_id"),
            completed=data.get("completed"),
            problem=data.get("problem"),
            metadata_sha256=data.get("metadata_sha256"),
            requires_python=data.get("requires_python"),
            provenance_sha256=data.get("provenance_sha256"),
        )


@dataclass(frozen=True)
class UploadSession:
    """A publishing session (PEP 694) of one release: `version` is normalized (PEP 440)."""

    id: str
    name: NormalizedName
    version: str
    status: Status
    created: str
    expires: str
    #: the session token's secret: the stage's only protection besides read access
    secret: str = field(repr=False)
    files: Mapping[str, StagedFile] = field(default_factory=dict)
    #: when it was published (status `complete`)
    published: str | None = None

    @property
    def token(self) -> str:
        """The session token (PEP 694 `session-token`): the stage URL is made of it."""
        return f"{self.id}.{self.secret}"

    def expired(self, now: datetime) -> bool:
        return now > parse_time(self.expires)

    def alive(self, now: datetime) -> bool:
        """Open for work: pending or processing, and not expired."""
        return self.status in ("pending", "processing") and not self.expired(now)

    def to_bytes(self) -> bytes:
        document: dict[str, Any] = {
            "format": _DOCUMENT_FORMAT,
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "created": self.created,
            "expires": self.expires,
            "secret": self.secret,
            "files": [f.to_json() for f in sorted(self.files.values(), key=_by_name)],
        }
        if self.published is not None:
            document["published"] = self.published
        return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> UploadSession:
        document = json.loads(data)
        if document.get("format") != _DOCUMENT_FORMAT:
            raise ValueError(f"unsupported upload session format {document.get('format')!r}")
        files = [StagedFile.from_json(f) for f in document["files"]]
        return cls(
            id=str(document["id"]),
            name=NormalizedName(str(document["name"])),
            version=str(document["version"]),
            status=cast("Status", document["status"]),
            created=str(document["created"]),
            expires=str(document["expires"]),
            secret=str(document["secret"]),
            files={f.filename: f for f in files},
            published=document.get("published"),
        )


def _by_name(file: StagedFile) -> str:
    return file.filename


class SessionConflict(Conflict):
    """A release that takes no new session: `session_id` names its live (or published)
    session, "" when its version was published otherwise (the legacy API)."""

    def __init__(self, message: str, session_id: str = "") -> None:
        super().__init__(message)
        self.session_id = session_id


class UnsupportedMechanism(InvalidRequest):
    """A file upload mechanism the index does not offer (PEP 694: 422)."""
