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

Where it lives (`serverless_pypi.index.sessions` re-exports the names other code uses):

- `index.session_documents`: the stored documents (`UploadSession`, `StagedFile`), their
  (de)serialization, session ids, times, the mechanisms' names, `SessionConflict`;
- `index.session_parts`: the S3 mechanism's part layout, the check and joining of parts;
- `index.session_verification`: the declared hashes and the verification of a staged file;
- `index.session_lifecycle`: documents by compare-and-swap, create and claim, token,
  extend, cancel (`SessionLifecycle`);
- `index.session_files`: the file upload sessions (`SessionFiles`);
- here: the service, `Sessions`, with what ends a session: publishing it, sweeping dead ones.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from serverless_pypi.core.errors import Conflict, NoSuchPath
from serverless_pypi.index import layout
from serverless_pypi.index.session_documents import (
    HTTP_POST_BYTES,
    MAX_LIFETIME,
    S3_MULTIPART,
    SESSION_ID,
    SessionConflict,
    StagedFile,
    Status,
    UnsupportedMechanism,
    UploadSession,
    format_time,
    parse_time,
)
from serverless_pypi.index.session_files import MAX_FILES, SessionFiles
from serverless_pypi.index.session_parts import MAX_PART_URLS, part_layout
from serverless_pypi.storage import StoreError

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


class Sessions(SessionFiles):
    """The upload sessions in a store: every change of one is a compare-and-swap of its
    document, so concurrent requests (Lambda runs many) never lose one another's work."""

    # -- publishing ----------------------------------------------------------------------------
    def publish(
        self, sid: str, check: Callable[[UploadSession], None] | None = None
    ) -> tuple[UploadSession, list[Any]]:
        """Publish every staged file of the session at once (`index.release`); the session,
        now `complete`, and the PublishResults. Conflict (409) while a file is not complete
        or when there is none; a failure leaves the session pending, its files staged
        (PEP 694: a failed publish leaves the session editable), and repeating it resumes.

        The caller checks authorization and the policy (status, namespace) first; `check`
        sees the files about to be published (all complete, so final: their attestations
        among them) and raises to refuse them.
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
            if check is not None:
                check(session)
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
            if sid in documents or not SESSION_ID.fullmatch(sid):
                continue
            if self.store.find(layout.session_key(sid)) is not None:
                continue  # created since the documents were listed
            keys = [i.key for i in self.store.list(layout.session_prefix(sid))]
            found += keys
            if not check:
                for key in keys:
                    self.store.delete(key)
        return found


def _back_to_pending(session: UploadSession) -> UploadSession:
    return replace(session, status="pending") if session.status == "processing" else session
