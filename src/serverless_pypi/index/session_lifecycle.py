"""Upload 2.0 (PEP 694) sessions: the documents in a store and the publishing session's life.

`SessionLifecycle` reads and changes a session's document (every change a compare-and-swap,
`storage.swap`), creates a session and claims its release
(`.serverless-pypi/sessions/releases/<name>/<version>.json`, `If-None-Match: *`; a new
session takes the claim over with `If-Match` only once its holder is dead), finds a session
by its token, extends and cancels it. Its file upload sessions are `index.session_files`;
publishing and sweeping, and the assembled service, are `index.sessions`.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from serverless_pypi.core.errors import Conflict, InvalidRequest, NoSuchPath
from serverless_pypi.core.names import (
    InvalidFilename,
    InvalidProjectName,
    NormalizedName,
    distribution_identity,
    normalize_project_name,
)
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.session_documents import (
    HTTP_POST_BYTES,
    MAX_LIFETIME,
    S3_MULTIPART,
    SESSION_ID,
    SessionConflict,
    UploadSession,
    format_time,
    new_session_id,
    parse_time,
)
from serverless_pypi.storage import NotFound, PreconditionFailed, Store, StoreError
from serverless_pypi.storage.swap import swap

__all__ = ["SessionLifecycle"]

log = logging.getLogger(__name__)


def _gone(sid: str) -> NoSuchPath:
    return NoSuchPath(f"No upload session {sid!r}: it never existed, was canceled, or expired.")


def _check_version(version: str) -> str:
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version))
    except InvalidVersion:
        raise InvalidRequest(
            f"{version[:100]!r} is not a valid version (PEP 440, e.g. 1.0 or 2.1.0rc1)"
        ) from None


class SessionLifecycle:
    """The publishing sessions in a store: their documents, each change of one a
    compare-and-swap, and their life from creation to cancellation."""

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
        if not SESSION_ID.fullmatch(sid):
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
        sid, secret = new_session_id(), secrets.token_urlsafe(32)
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
