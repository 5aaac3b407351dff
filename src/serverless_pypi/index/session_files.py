"""Upload 2.0 (PEP 694) sessions: the file upload sessions of a publishing session.

`SessionFiles` adds a file to a session (its declared size, hashes and mechanism checked,
PEP 694 "Create File Upload Session"), takes its bytes (`http-post-bytes`: one request
streamed to the store; the S3 mechanism: presigned part URLs, `index.session_parts`),
removes it, and completes it: the staged file is verified (`index.session_verification`)
before it can be published, or marked `error` with the reason. While it is pending, the
provenance object (PEP 740) of its verified attestations may be staged beside it
(`put_provenance`; verifying them is the caller's, `auth.attestations`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import IO

from serverless_pypi.core.errors import Conflict, InvalidRequest, NoSuchPath
from serverless_pypi.core.names import (
    Distribution,
    InvalidFilename,
    check_publishable_filename,
    distribution_identity,
)
from serverless_pypi.index import layout
from serverless_pypi.index.session_documents import (
    HTTP_POST_BYTES,
    S3_MULTIPART,
    StagedFile,
    UnsupportedMechanism,
    UploadSession,
    format_time,
    parse_time,
)
from serverless_pypi.index.session_lifecycle import SessionLifecycle
from serverless_pypi.index.session_parts import MAX_PART_URLS, join_parts
from serverless_pypi.index.session_verification import Counted, check_hashes, verify_staged
from serverless_pypi.storage import NotFound

__all__ = ["MAX_FILES", "SessionFiles"]

#: files one session holds (its document is rewritten at every change)
MAX_FILES = 1000


class SessionFiles(SessionLifecycle):
    """The file upload sessions (PEP 694) of the publishing sessions in a store."""

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
        checked = check_hashes(hashes)
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
        if file.provenance_sha256:
            self.store.delete(layout.session_provenance_key(sid, filename, file.provenance_sha256))

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

    def put_provenance(self, sid: str, filename: str, provenance: bytes) -> StagedFile:
        """Stage the provenance object of the pending file's verified attestations (PEP 694
        `attestations_url`, before completion), replacing any it had; Conflict (409) once the
        file is complete. Stored under its digest, then named in the session document by
        compare-and-swap: of two posts at once, the last one wins whole."""
        file = self._file(self.get(sid), filename)
        _session, file = self._pending(sid, filename, file.mechanism)
        digest = hashlib.sha256(provenance).hexdigest()
        key = layout.session_provenance_key(sid, filename, digest)
        self.store.put(key, provenance, content_type="application/json")
        replaced: list[str] = []

        def attach(current: UploadSession) -> UploadSession:
            self._editable(current)
            now = current.files.get(filename)
            if now is None or not _same_upload(now, file):
                raise Conflict(f"{filename!r} changed meanwhile: look again.")
            if now.status != "pending":
                raise Conflict(f"{filename!r} is {now.status}: its attestations are final.")
            replaced[:] = [now.provenance_sha256] if now.provenance_sha256 else []
            attached = replace(now, provenance_sha256=digest)
            return replace(current, files={**current.files, filename: attached})

        try:
            session = self._change(sid, attach)
        except BaseException:
            self._drop_provenance(sid, filename, digest)
            raise
        for old in replaced:
            if old != digest:
                self._drop_provenance(sid, filename, old)
        return session.files[filename]

    def _drop_provenance(self, sid: str, filename: str, digest: str) -> None:
        """Delete a staged provenance object unless the session's file names it (a post of
        the same attestations at the same time shares its key)."""
        with contextlib.suppress(NoSuchPath):
            now = self.get(sid).files.get(filename)
            if now is not None and now.provenance_sha256 == digest:
                return
        self.store.delete(layout.session_provenance_key(sid, filename, digest))

    def put_bytes(self, sid: str, filename: str, stream: IO[bytes], length: int) -> None:
        """http-post-bytes: store the body (exactly the declared size) as the staged file."""
        _session, file = self._pending(sid, filename, HTTP_POST_BYTES)
        if length != file.size:
            raise InvalidRequest(
                f"the body has {length} bytes, the file upload session declared {file.size}"
            )
        counted = Counted(stream, length)

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
            problem = join_parts(self.store, key, file)
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

    def _verify(
        self, key: str, file: StagedFile, dist: Distribution
    ) -> tuple[str | None, bytes | None, str | None]:
        """(problem, core metadata, Requires-Python) of the staged object (`verify_staged`)."""
        return verify_staged(self.store, key, file, dist)

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


def _same_upload(now: StagedFile, then: StagedFile) -> bool:
    """Whether `now` is still the upload `then` was (an extension changes neither, nor do
    attestations posted meanwhile: completing keeps them)."""
    return replace(now, expires=then.expires, provenance_sha256=then.provenance_sha256) == then
