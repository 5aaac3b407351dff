"""Upload 2.0 (PEP 694) sessions: the data of publishing sessions and their staged files.

A publishing session stages the files of one release (name, version) until it is published
(`index.release`: every file appears at once) or canceled. Its document lives at
`.serverless-pypi/sessions/<sid>.json` and changes only by compare-and-swap (`storage.swap`);
its staged bytes lie under `.serverless-pypi/sessions/<sid>/files/`, where nothing is indexed
(the reserved prefix). A release has at most one live session: the session claims
`.serverless-pypi/sessions/releases/<name>/<version>.json` with `If-None-Match: *`, and a new
session replaces the claim (with `If-Match`) only once its session is dead (canceled, failed
or expired).

Files arrive by one of two mechanisms (PEP 694, "File Upload Mechanisms"): the required
`http-post-bytes` (one request carries the whole file, streamed to the store), and on S3
`vnd-serverlesspypi-s3multipart-presigned-v1`: a multipart upload whose parts the client PUTs
straight to S3 through presigned URLs. Completing a file verifies it before it can be
published: its size, every hash the client declared, and the checks of a legacy upload (the
file name's rules, the archive, the core metadata agreeing with the file name).

What the PEP leaves to the index, decided here: a session lives `ttl` seconds, extended on
request up to 7 days after its creation; the session token is `<sid>.<secret>`, kept in the
session document (the bucket is private; PEP 694 lets anyone authorized for the project learn
the stage again from the session's status) and compared in constant time; a session whose
version already has files on the
project page is refused (sessions make new releases).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import IO, Any, Literal, cast

from serverless_pypi.core.errors import Conflict, InvalidRequest, NoSuchPath
from serverless_pypi.core.metadata import BadDistribution, inspect_distribution
from serverless_pypi.core.names import (
    Distribution,
    InvalidFilename,
    InvalidProjectName,
    NormalizedName,
    check_publishable_filename,
    distribution_identity,
    normalize_project_name,
)
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.records import SPOOL_IN_MEMORY
from serverless_pypi.storage import (
    NotFound,
    ObjectInfo,
    PreconditionFailed,
    Store,
    StoreError,
    UploadedPart,
)
from serverless_pypi.storage.swap import swap

__all__ = [
    "HTTP_POST_BYTES",
    "MAX_FILES",
    "MAX_LIFETIME",
    "MAX_PART_URLS",
    "S3_MULTIPART",
    "SessionConflict",
    "Sessions",
    "StagedFile",
    "Status",
    "UnsupportedMechanism",
    "UploadSession",
    "format_time",
    "parse_time",
    "part_layout",
]

log = logging.getLogger(__name__)

Status = Literal["pending", "processing", "complete", "error", "canceled"]

#: PEP 694: the mechanism every server implements (one POST carrying the file's bytes)
HTTP_POST_BYTES = "http-post-bytes"
#: our vendor mechanism (PEP 694 "vnd-<operator>-<implementation>"): presigned S3 multipart
S3_MULTIPART = "vnd-serverlesspypi-s3multipart-presigned-v1"
#: the longest a session lives, from its creation, however often it is extended
MAX_LIFETIME = 7 * 24 * 3600
#: part numbers one request for part URLs may ask for
MAX_PART_URLS = 1000
#: files one session holds (its document is rewritten at every change)
MAX_FILES = 1000
#: S3: at most 10,000 parts; a part is 5 MiB to 5 GiB (the last one may be smaller)
MAX_PARTS = 10_000
_MIN_PART = 16 * 1024 * 1024
_MAX_PART = 5 * 1024**3
_SID = re.compile(r"[a-z2-7]{26}", re.ASCII)
_HEX = re.compile(r"[0-9a-f]+", re.ASCII)
_DOCUMENT_FORMAT = 1


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC, to the second (`2026-12-01T15:00:00Z`), as PEP 694's `expires-at`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def part_layout(size: int) -> tuple[int, int]:
    """(part size, part count) of the S3 mechanism for a file of `size` bytes: the smallest
    of 16, 32, 64, ... MiB that keeps the count within S3's 10,000 parts."""
    part = _MIN_PART
    while -(-size // part) > MAX_PARTS and part < _MAX_PART:
        part *= 2
    return part, max(1, -(-size // part))


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


def _gone(sid: str) -> NoSuchPath:
    return NoSuchPath(f"No upload session {sid!r}: it never existed, was canceled, or expired.")


def _new_sid() -> str:
    # 16 random bytes in lowercase base32: 26 characters, safe in a URL path and a key
    return base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def _check_version(version: str) -> str:
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version))
    except InvalidVersion:
        raise InvalidRequest(
            f"{version[:100]!r} is not a valid version (PEP 440, e.g. 1.0 or 2.1.0rc1)"
        ) from None


def _check_hashes(hashes: Mapping[str, str]) -> dict[str, str]:
    """The declared hashes, lowercase, each known and well formed; sha256 is required.

    PEP 694: any `hashlib` algorithm that takes no parameters, at least one of
    `algorithms_guaranteed`; the index needs sha256 (its pages list it).
    """
    checked: dict[str, str] = {}
    for name, value in hashes.items():
        algorithm = str(name).lower()
        if algorithm not in hashlib.algorithms_guaranteed or algorithm.startswith("shake_"):
            known = ", ".join(
                sorted(a for a in hashlib.algorithms_guaranteed if not a.startswith("shake_"))
            )
            raise InvalidRequest(f"hashes: {str(name)[:40]!r} is not one of {known}")
        digest = str(value).lower()
        width = hashlib.new(algorithm).digest_size * 2
        if len(digest) != width or not _HEX.fullmatch(digest):
            raise InvalidRequest(f"hashes: {algorithm} must be {width} hexadecimal digits")
        checked[algorithm] = digest
    if "sha256" not in checked:
        raise InvalidRequest("hashes: sha256 is required")
    return checked


class Sessions:
    """The upload sessions in a store: every change of one is a compare-and-swap of its
    document, so concurrent requests (Lambda runs many) never lose one another's work."""

    def __init__(
        self,
        store: Store,
        *,
        ttl: int,
        max_file_size: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.max_file_size = max_file_size
        self.clock = clock
        self.catalog = Catalog(store)

    # -- what the index offers -------------------------------------------------------------
    def mechanisms(self) -> list[str]:
        """The file upload mechanisms, in the order the index prefers them."""
        if self.store.supports_multipart:
            return [S3_MULTIPART, HTTP_POST_BYTES]
        return [HTTP_POST_BYTES]

    def staged_key(self, sid: str, filename: str) -> str:
        return f"{layout.session_prefix(sid)}files/{filename}"

    def staged_metadata_key(self, sid: str, filename: str) -> str:
        return self.staged_key(sid, filename) + ".metadata"

    # -- documents ---------------------------------------------------------------------------
    def _now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def _read(self, sid: str) -> UploadSession | None:
        if not _SID.fullmatch(sid):
            return None
        try:
            return UploadSession.from_bytes(self.store.get(layout.session_key(sid)).data)
        except NotFound:
            return None

    def find(self, sid: str) -> UploadSession | None:
        """The session's document as stored, whatever its state (None: there is none)."""
        return self._read(sid)

    def get(self, sid: str) -> UploadSession:
        """The session; NoSuchPath (404) when unknown, canceled or expired (PEP 694: every
        URL of a canceled or expired session answers 404)."""
        session = self._read(sid)
        if session is None or session.status == "canceled" or session.expired(self._now()):
            raise _gone(sid)
        return session

    def _change(
        self,
        sid: str,
        change: Callable[[UploadSession], UploadSession],
        *,
        expired: bool = False,
    ) -> UploadSession:
        """Apply `change` to the session's document by compare-and-swap; it may run several
        times and raises to refuse (a session gone meanwhile: NoSuchPath). `expired` lets
        it change a session that expired meanwhile (the end of a publish under way)."""

        def apply(data: bytes | None) -> tuple[bytes | None, UploadSession]:
            if data is None:
                raise _gone(sid)
            current = UploadSession.from_bytes(data)
            if current.status == "canceled" or (current.expired(self._now()) and not expired):
                raise _gone(sid)
            new = change(current)
            return (None if new == current else new.to_bytes()), new

        return swap(self.store, layout.session_key(sid), apply)[0]

    def _editable(self, session: UploadSession) -> None:
        if session.status == "processing":
            raise Conflict("The session is being published: its files can no longer change.")
        if session.status != "pending":
            raise Conflict(f"The session is {session.status}: its files can no longer change.")

    # -- publishing sessions -----------------------------------------------------------------
    def create(self, name: str, version: str) -> tuple[UploadSession, str]:
        """A new session for the release, and its session token (`<sid>.<secret>`, also
        `session.token`).

        SessionConflict (409) while another session of the release is live or published
        it, or when the version already has files on the project page.
        """
        try:
            project = normalize_project_name(name)
        except InvalidProjectName as e:
            raise InvalidRequest(f"name: {e}") from e
        version = _check_version(version)
        self._check_unpublished(project, version)
        now = self._now()
        sid, secret = _new_sid(), secrets.token_urlsafe(32)
        session = UploadSession(
            id=sid,
            name=project,
            version=version,
            status="pending",
            created=format_time(now),
            expires=format_time(now + timedelta(seconds=min(self.ttl, MAX_LIFETIME))),
            secret=secret,
        )
        # the document first, then the claim: a claim always names an existing session
        self.store.put(
            layout.session_key(sid),
            session.to_bytes(),
            content_type="application/json",
            if_none_match=True,
        )
        try:
            self._claim(session)
        except BaseException:
            self.store.delete(layout.session_key(sid))
            raise
        return session, session.token

    def _check_unpublished(self, name: NormalizedName, version: str) -> None:
        from packaging.version import Version

        wanted = Version(version)
        for record in self.catalog.read_project(name)[0].served():
            try:
                if distribution_identity(record.filename).version == wanted:
                    raise SessionConflict(
                        f"Version {version} of {name!r} is already published: sessions make "
                        "new releases; add files to it with the legacy upload API."
                    )
            except InvalidFilename:
                continue

    def _claim(self, session: UploadSession) -> None:
        """Make `session` the one live session of its release (SessionConflict if another
        one is live, or published it)."""
        key = layout.session_release_key(session.name, session.version)
        claim = json.dumps({"session": session.id}).encode()
        for _ in range(20):
            try:
                blob = self.store.get(key)
            except NotFound:
                try:
                    self.store.put(key, claim, content_type="application/json", if_none_match=True)
                    return
                except PreconditionFailed:
                    continue  # claimed meanwhile: look at the claimant
            holder = self._holder(blob.data)
            if holder is not None and holder.id != session.id:
                if holder.alive(self._now()):
                    raise SessionConflict(
                        f"An upload session for {holder.name} {holder.version} is open: "
                        "use it, or cancel it first.",
                        holder.id,
                    )
                if holder.status == "complete":
                    raise SessionConflict(
                        f"{holder.name} {holder.version} was published by an upload "
                        "session: sessions make new releases.",
                        holder.id,
                    )
            try:
                # the claimant is dead (canceled, failed, expired or gone): take its place
                self.store.put(key, claim, content_type="application/json", if_match=blob.etag)
                return
            except PreconditionFailed:
                continue
        raise StoreError(f"the claim {key!r} kept changing")

    def _holder(self, data: bytes) -> UploadSession | None:
        try:
            sid = str(json.loads(data)["session"])
        except (ValueError, KeyError, TypeError):
            return None
        return self._read(sid)

    def by_token(self, token: str) -> UploadSession:
        """The open session of a session token (the stage); NoSuchPath for an unknown or
        wrong token, and for a session canceled, expired or published."""
        sid, dot, secret = token.partition(".")
        session = self._read(sid) if dot and secret else None
        # compared in constant time: the stage is protected by the secret alone
        given = secret.encode("utf-8", "surrogatepass")
        if session is None or not hmac.compare_digest(given, session.secret.encode()):
            raise NoSuchPath("No such stage: the session token is unknown or wrong.")
        if not session.alive(self._now()):
            raise NoSuchPath("No such stage: its session was published, canceled or expired.")
        return session

    def extend(self, sid: str, seconds: int) -> UploadSession:
        """Extend the session (and its files) by `seconds`, up to MAX_LIFETIME after its
        creation; never shortens it (PEP 694: a refused extension still answers success)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
            raise InvalidRequest("extend-for must be a whole number of seconds, 0 or more")

        def extend(session: UploadSession) -> UploadSession:
            current = parse_time(session.expires)
            limit = parse_time(session.created) + timedelta(seconds=MAX_LIFETIME)
            wanted = min(current + timedelta(seconds=seconds), limit)
            if wanted <= current:
                return session
            expires = format_time(wanted)
            files = {n: replace(f, expires=expires) for n, f in session.files.items()}
            return replace(session, expires=expires, files=files)

        return self._change(sid, extend)

    def cancel(self, sid: str) -> None:
        """Cancel the session: it answers 404 from now on, its multipart uploads are
        aborted and its staged objects deleted. A published session stays (Conflict)."""

        def cancel(session: UploadSession) -> UploadSession:
            if session.status == "complete":
                raise Conflict("The session is published: a published release stays.")
            if session.status == "processing":
                raise Conflict("The session is being published: it cannot be canceled now.")
            return replace(session, status="canceled")

        session = self._change(sid, cancel)
        self._clean(session)

    def _clean(self, session: UploadSession) -> list[str]:
        """Abort the session's multipart uploads and delete its staged objects; the keys."""
        for file in session.files.values():
            if file.upload_id:
                self._abort(self.staged_key(session.id, file.filename), file.upload_id)
        deleted = [info.key for info in self.store.list(layout.session_prefix(session.id))]
        for key in deleted:
            self.store.delete(key)
        return deleted

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.store.abort_multipart(key, upload_id)
        except NotImplementedError:
            pass
        except StoreError as e:
            # S3's lifecycle rule aborts it later (terraform: abort_incomplete_multipart_upload)
            log.warning("could not abort the multipart upload of %r: %s", key, e)

    # -- file upload sessions ----------------------------------------------------------------
    def _file(self, session: UploadSession, filename: str) -> StagedFile:
        file = session.files.get(filename)
        if file is None:
            raise NoSuchPath(f"The session has no file {filename[:300]!r}.")
        return file

    def _distribution(self, session: UploadSession, filename: str) -> Distribution:
        """The distribution `filename` names, if it may be a file of the session's release
        (the legacy upload's file-name rules)."""
        try:
            dist = check_publishable_filename(filename)
        except InvalidFilename as e:
            raise InvalidRequest(f"filename: {e}") from e
        from packaging.version import Version

        if dist.project != session.name or dist.version != Version(session.version):
            raise InvalidRequest(
                f"filename: {filename!r} is a file of {dist.project} {dist.version}, not of "
                f"this session's release {session.name} {session.version}"
            )
        return dist

    def add_file(
        self,
        sid: str,
        filename: str,
        size: int,
        hashes: Mapping[str, str],
        mechanism: str,
    ) -> StagedFile:
        """Start a file upload session; Conflict (409) when the name is in the session
        already (delete it first) or published, UnsupportedMechanism (422)."""
        session = self.get(sid)
        self._editable(session)
        dist = self._distribution(session, filename)
        checked = self._check_declared(size, hashes, mechanism)
        self._check_not_published(session, dist)
        upload_id = None
        if mechanism == S3_MULTIPART:
            upload_id = self.store.create_multipart(self.staged_key(sid, filename))

        def add(current: UploadSession) -> UploadSession:
            self._editable(current)
            if filename in current.files:
                raise Conflict(
                    f"{filename!r} is in the session already: delete its file upload "
                    "session first to upload it again."
                )
            if len(current.files) >= MAX_FILES:
                raise InvalidRequest(f"A session holds at most {MAX_FILES} files.")
            for other in current.files:
                if distribution_identity(other) == dist.identity:
                    raise Conflict(f"{filename!r} is the same distribution as {other!r}.")
            file = StagedFile(
                filename=filename,
                size=size,
                hashes=checked,
                mechanism=mechanism,
                status="pending",
                created=format_time(self._now()),
                expires=current.expires,
                upload_id=upload_id,
            )
            return replace(current, files={**current.files, filename: file})

        try:
            session = self._change(sid, add)
        except BaseException:
            if upload_id is not None:
                self._abort(self.staged_key(sid, filename), upload_id)
            raise
        return session.files[filename]

    def _check_declared(
        self, size: int, hashes: Mapping[str, str], mechanism: str
    ) -> dict[str, str]:
        """The declared hashes (checked), once the size and mechanism are acceptable."""
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise InvalidRequest("size must be the file's size in bytes, more than 0")
        if size > self.max_file_size:
            raise InvalidRequest(
                f"size: {size} bytes is more than the {self.max_file_size} bytes a session "
                "file may have (UPLOAD_SESSION_MAX_FILE_SIZE)"
            )
        checked = _check_hashes(hashes)
        if mechanism not in self.mechanisms():
            raise UnsupportedMechanism(
                f"mechanism: {str(mechanism)[:80]!r} is not offered here; offered: "
                + ", ".join(self.mechanisms())
            )
        return checked

    def _check_not_published(self, session: UploadSession, dist: Distribution) -> None:
        """PEP 694's best-effort check at creation (publish checks again, atomically)."""
        index = self.catalog.read_project(session.name)[0]
        if dist.filename in index.files or index.rivals(dist.filename, ""):
            raise Conflict(
                f"File already exists: {dist.filename!r} (or the same distribution) is "
                "published. A published file never changes; publish a new version instead."
            )

    def remove_file(self, sid: str, filename: str) -> None:
        """Cancel a file upload session or delete a staged file (PEP 694: 204)."""
        session = self.get(sid)
        self._editable(session)
        file = self._file(session, filename)
        key = self.staged_key(sid, filename)
        if file.upload_id:
            self._abort(key, file.upload_id)
        self.store.delete(key)
        self.store.delete(self.staged_metadata_key(sid, filename))

        def remove(current: UploadSession) -> UploadSession:
            self._editable(current)
            files = {n: f for n, f in current.files.items() if n != filename}
            return replace(current, files=files)

        self._change(sid, remove)

    def extend_file(self, sid: str, filename: str, seconds: int) -> StagedFile:
        """A file lives as long as its session: extending it extends the session."""
        self._file(self.get(sid), filename)
        return self._file(self.extend(sid, seconds), filename)

    def _pending(self, sid: str, filename: str, mechanism: str) -> tuple[UploadSession, StagedFile]:
        session = self.get(sid)
        self._editable(session)
        file = self._file(session, filename)
        if file.mechanism != mechanism:
            raise InvalidRequest(f"{filename!r} is uploaded with {file.mechanism}, not {mechanism}")
        if file.status != "pending":
            raise Conflict(
                f"{filename!r} is {file.status}: delete its file upload session to upload it again."
            )
        return session, file

    def put_bytes(self, sid: str, filename: str, stream: IO[bytes], length: int) -> None:
        """http-post-bytes: store the body (exactly the declared size) as the staged file."""
        _session, file = self._pending(sid, filename, HTTP_POST_BYTES)
        if length != file.size:
            raise InvalidRequest(
                f"the body has {length} bytes, the file upload session declared {file.size}"
            )
        counted = _Counted(stream, length)

        def verify() -> None:
            if counted.read_bytes != length:
                raise InvalidRequest(f"the body ended after {counted.read_bytes} of {length} bytes")

        self.store.put_stream(
            self.staged_key(sid, filename),
            counted,  # type: ignore[arg-type]
            verify=verify,
            content_type="application/octet-stream",
        )

    def part_urls(
        self, sid: str, filename: str, numbers: Sequence[int], expires: int
    ) -> list[tuple[int, str]]:
        """Presigned PUT URLs of the parts `numbers` (S3 mechanism), living `expires` seconds
        at most, and never beyond the session."""
        session, file = self._pending(sid, filename, S3_MULTIPART)
        if not numbers or len(numbers) > MAX_PART_URLS:
            raise InvalidRequest(f"parts: ask for 1 to {MAX_PART_URLS} part numbers at a time")
        for number in numbers:
            if isinstance(number, bool) or not isinstance(number, int):
                raise InvalidRequest("parts: part numbers are whole numbers")
            if not 1 <= number <= file.part_count:
                raise InvalidRequest(f"parts: {number} is not a part number 1 to {file.part_count}")
        left = int((parse_time(session.expires) - self._now()).total_seconds())
        lifetime = max(1, min(expires, left))
        key = self.staged_key(sid, filename)
        assert file.upload_id is not None
        return [
            (n, self.store.presign_part(key, file.upload_id, n, lifetime))
            for n in dict.fromkeys(numbers)
        ]

    def parts(self, sid: str, filename: str) -> list[tuple[int, int, str]]:
        """(number, size, etag) of every part S3 holds for the file (to resume an upload)."""
        _session, file = self._pending(sid, filename, S3_MULTIPART)
        assert file.upload_id is not None
        try:
            found = self.store.list_parts(self.staged_key(sid, filename), file.upload_id)
        except NotFound:
            return []
        return [tuple(part) for part in found]  # type: ignore[misc]

    # -- completion: the file is verified ----------------------------------------------------
    def complete_file(self, sid: str, filename: str) -> StagedFile:
        """Verify the staged file (size, every declared hash, the legacy upload's checks) and
        mark it complete. A file that does not match is marked `error` (the reason in its
        `problem`), its bytes deleted, and InvalidRequest names the reason; bytes not all
        there yet (parts missing, no body) raise InvalidRequest and leave it pending."""
        session = self.get(sid)
        file = self._file(session, filename)
        if file.status == "complete":
            return file
        session, file = self._pending(sid, filename, file.mechanism)
        dist = self._distribution(session, filename)
        key = self.staged_key(sid, filename)
        if file.mechanism == S3_MULTIPART:
            problem = self._join_parts(key, file)
        else:
            problem = None if self.store.find(key) else "no bytes were uploaded yet"
            if problem:
                raise InvalidRequest(f"{filename!r}: {problem}")
        if problem is None:
            problem, metadata, requires_python = self._verify(key, file, dist)
        if problem is not None:
            self._fail(sid, file, problem)
            raise InvalidRequest(f"{filename!r} was refused: {problem}")
        metadata_sha256 = None
        if metadata is not None:
            self.store.put(
                self.staged_metadata_key(sid, filename),
                metadata,
                content_type="application/octet-stream",
            )
            metadata_sha256 = hashlib.sha256(metadata).hexdigest()
        completed = format_time(self._now())

        def complete(current: UploadSession) -> UploadSession:
            self._editable(current)
            now = current.files.get(filename)
            if now is None or not _same_upload(now, file):
                raise Conflict(f"{filename!r} changed while it was verified: look again.")
            done = replace(
                now,
                status="complete",
                completed=completed,
                metadata_sha256=metadata_sha256,
                requires_python=requires_python,
            )
            return replace(current, files={**current.files, filename: done})

        return self._change(sid, complete).files[filename]

    def _join_parts(self, key: str, file: StagedFile) -> str | None:
        """Complete the multipart upload if its parts make the declared size; a problem (the
        file fails), or InvalidRequest while parts are missing (the client uploads them)."""
        assert file.upload_id is not None
        try:
            parts = list(self.store.list_parts(key, file.upload_id))
        except NotFound:  # S3: a completed (or aborted) upload is no more
            parts = []
        if not parts and self.store.find(key) is not None:
            return None  # joined by an earlier attempt that stopped before its end
        numbers = {p.number for p in parts}
        missing = [n for n in range(1, file.part_count + 1) if n not in numbers]
        if missing:
            shown = ", ".join(map(str, missing[:20])) + (", ..." if len(missing) > 20 else "")
            raise InvalidRequest(
                f"{file.filename!r}: parts {shown} of {file.part_count} are not uploaded yet"
            )
        problem = _part_problem(parts, file)
        if problem is None:
            try:
                self.store.complete_multipart(
                    key, file.upload_id, [(p.number, p.etag) for p in parts]
                )
            except NotFound:
                if self.store.find(key) is None:  # else a concurrent complete joined them
                    raise InvalidRequest(
                        f"{file.filename!r}: its multipart upload is gone: delete the file "
                        "upload session and upload the file again"
                    ) from None
        return problem

    def _verify(
        self, key: str, file: StagedFile, dist: Distribution
    ) -> tuple[str | None, bytes | None, str | None]:
        """(problem, core metadata, Requires-Python) of the staged object.

        One pass hashes the bytes; the inspection (the legacy upload's, `records`) then reads
        what it needs: from memory for a file of up to SPOOL_IN_MEMORY bytes, else through
        ranged reads (the central directory and METADATA of a wheel, the head of an sdist),
        so neither memory nor the API function's small /tmp bounds the size of a file.
        """
        info = self.store.head(key)
        if info.size != file.size:
            return f"size: {info.size} bytes uploaded, {file.size} declared", None, None
        digests = {name: hashlib.new(name) for name in file.hashes}
        small = io.BytesIO() if info.size <= SPOOL_IN_MEMORY else None
        with self.store.open(key, if_match=info.etag) as source:
            while chunk := source.read(1024 * 1024):
                for digest in digests.values():
                    digest.update(chunk)
                if small is not None:
                    small.write(chunk)
        for name, digest in sorted(digests.items()):
            if digest.hexdigest() != file.hashes[name]:
                return (
                    f"hashes: the {name} of the bytes uploaded is not the one declared",
                    None,
                    None,
                )
        readable: IO[bytes] = small if small is not None else _ranged(self.store, info)
        try:
            inspection = inspect_distribution(readable, dist)
        except BadDistribution as e:
            return str(e), None, None
        return None, inspection.metadata, inspection.requires_python

    def _fail(self, sid: str, file: StagedFile, problem: str) -> None:
        key = self.staged_key(sid, file.filename)
        if file.upload_id:
            self._abort(key, file.upload_id)
        self.store.delete(key)

        def fail(current: UploadSession) -> UploadSession:
            now = current.files.get(file.filename)
            if now is None or not _same_upload(now, file):
                return current  # deleted or replaced meanwhile
            failed = replace(now, status="error", problem=problem)
            return replace(current, files={**current.files, file.filename: failed})

        with contextlib.suppress(NoSuchPath):
            self._change(sid, fail)

    # -- publishing ----------------------------------------------------------------------------
    def publish(self, sid: str) -> tuple[UploadSession, list[Any]]:
        """Publish every staged file of the session at once (`index.release`); the session,
        now `complete`, and the PublishResults. Conflict (409) while a file is not complete
        or when there is none; a failure leaves the session pending, its files staged
        (PEP 694: a failed publish leaves the session editable), and repeating it resumes.

        The caller checks authorization and the policy (status, namespace) first.
        """
        from serverless_pypi.index.release import publish_release

        def start(session: UploadSession) -> UploadSession:
            if session.status == "complete":
                return session
            if session.status not in ("pending", "processing"):
                raise Conflict(f"The session is {session.status}: it cannot be published.")
            if not session.files:
                raise Conflict("Nothing to publish: the session has no files.")
            waiting = sorted(n for n, f in session.files.items() if f.status != "complete")
            if waiting:
                raise Conflict(
                    "Files not complete yet: "
                    + ", ".join(f"{n} ({session.files[n].status})" for n in waiting)
                )
            return replace(session, status="processing")

        session = self._change(sid, start)
        if session.status == "complete":
            return session, []
        try:
            results = publish_release(
                self.catalog, session, lambda filename: self.staged_key(sid, filename)
            )
        except BaseException:
            with contextlib.suppress(NoSuchPath, StoreError):
                self._change(sid, _back_to_pending, expired=True)
            raise

        def finish(current: UploadSession) -> UploadSession:
            return replace(current, status="complete", published=format_time(self._now()))

        # the release is public now, even if the session expired while it was published
        return self._change(sid, finish, expired=True), results

    # -- expiry ------------------------------------------------------------------------------
    def sweep(self, *, check: bool) -> list[str]:
        """Find (and unless `check`, delete) what dead sessions leave: the documents and
        staged objects of sessions canceled, failed or expired (published ones too, once
        expired), their multipart uploads (aborted), and staged objects without a document.
        Returns the keys. A release a dead session left half copied is undone
        (`index.release.undo_abandoned`)."""
        from serverless_pypi.index.release import abandoned_markers, undo_abandoned

        now = self._now()
        found: list[str] = []
        # first the publishes dead sessions left half done (their markers name the bytes)
        for marker in abandoned_markers(self, now):
            try:
                found += undo_abandoned(self.catalog, marker, check=check)
            except StoreError as e:
                # the indexer's role deletes no distribution (terraform/lambda.tf): the copies
                # stay unlisted under their marker, and the API undoes them at the release's
                # next publish (`index.release`)
                log.warning("left the unfinished publish %r: %s", marker.key, e)
        documents: set[str] = set()
        for info in self.store.list(layout.SESSIONS):
            rest = info.key.removeprefix(layout.SESSIONS)
            if "/" in rest or not rest.endswith(".json"):
                continue
            sid = rest.removesuffix(".json")
            documents.add(sid)
            found += self._sweep_session(sid, now, check=check)
        found += self._sweep_orphans(documents, check=check)
        return found

    def _sweep_session(self, sid: str, now: datetime, *, check: bool) -> list[str]:
        """The keys of a dead session (nothing for a live one), deleted unless `check`."""
        session = self._read(sid)
        if session is None or session.alive(now):
            return []
        if session.status == "complete" and not session.expired(now):
            return []  # its status stays readable until it expires
        keys = [i.key for i in self.store.list(layout.session_prefix(sid))]
        if not check:
            self._clean(session)
            self.store.delete(layout.session_key(sid))
        return [*keys, layout.session_key(sid)]

    def _sweep_orphans(self, documents: set[str], *, check: bool) -> list[str]:
        """Staged objects of sessions without a document, deleted unless `check`."""
        found: list[str] = []
        for sid in self.store.list_folders(layout.SESSIONS):
            if sid in documents or not _SID.fullmatch(sid):
                continue
            if self.store.find(layout.session_key(sid)) is not None:
                continue  # created since the documents were listed
            keys = [i.key for i in self.store.list(layout.session_prefix(sid))]
            found += keys
            if not check:
                for key in keys:
                    self.store.delete(key)
        return found


def _same_upload(now: StagedFile, then: StagedFile) -> bool:
    """Whether `now` is still the upload `then` was (an extension changes neither)."""
    return replace(now, expires=then.expires) == then


def _back_to_pending(session: UploadSession) -> UploadSession:
    return replace(session, status="pending") if session.status == "processing" else session


def _part_problem(parts: Sequence[UploadedPart], file: StagedFile) -> str | None:
    """Why the uploaded parts cannot make the declared file (None: they can)."""
    if len(parts) != file.part_count:
        return f"{len(parts)} parts uploaded, {file.part_count} expected"
    size, count = file.part_size, file.part_count
    for part in parts:
        wanted = size if part.number < count else file.size - size * (count - 1)
        if part.size != wanted:
            return f"size: part {part.number} has {part.size} bytes, {wanted} expected"
    return None


class _Counted:
    """A stream that yields at most `limit` bytes of another and counts what it read."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream = stream
        self.left = limit
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        wanted = self.left if size is None or size < 0 else min(size, self.left)
        chunk = self.stream.read(wanted)
        self.left -= len(chunk)
        self.read_bytes += len(chunk)
        return chunk


class _Ranged(io.RawIOBase):
    """The object `info` describes as a seekable file, read by ranged reads of exactly its
    version (its etag): a change under it raises PreconditionFailed."""

    def __init__(self, store: Store, info: ObjectInfo) -> None:
        self.store = store
        self.info = info
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.info.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self.info.size - self.position)
        if wanted <= 0:
            return 0
        data = self.store.read_range(self.info.key, self.position, wanted, if_match=self.info.etag)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def _ranged(store: Store, info: ObjectInfo) -> IO[bytes]:
    # reads of at least 1 MiB: a wheel's central directory and METADATA take a few
    return io.BufferedReader(_Ranged(store, info), buffer_size=1024 * 1024)
