"""The session flow (PEP 694): a release's files into one publishing session, then publish.

`Uploader.release` creates the session (or resumes the open one a 409 names), brings each file
in through a file upload session with the mechanism the index offers (`http-post-bytes` here,
the S3 one in `serverless_pypi.upload_client.s3_multipart`), completes each, and publishes (or,
staging, leaves the session open and says its stage URL). `Outcome` is what happened.
A file's PEP 740 attestations (the `<file>.*.attestation` files beside it) are posted to its
mechanism's `attestations_url` before its bytes, when the index offers one.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from serverless_pypi.upload_client.errors import NoSessionApi, UploadError
from serverless_pypi.upload_client.files import (
    LocalFile,
    Release,
    attestation_files,
    read_attestations,
)
from serverless_pypi.upload_client.progress import CountingReader, Progress
from serverless_pypi.upload_client.protocol import (
    HTTP_POST_BYTES,
    MEDIA_TYPE,
    META,
    NO_SESSION_API,
    S3_MECHANISM,
    choose_mechanism,
    create_body,
    file_body,
    session_root,
)
from serverless_pypi.upload_client.s3_multipart import S3Multipart
from serverless_pypi.upload_client.transport import (
    ATTEMPTS,
    LONG_TIMEOUT,
    Http,
    TransportError,
    error_text,
)

__all__ = ["Outcome", "Uploader"]

POLL_LIMIT = 1800.0  # seconds of polling a `processing` file or session before giving up
#: what to do about a verification that got no answer: the bytes are in the session
_UNFINISHED = "the file stays in the session; run the command again to finish it"


@dataclass
class Outcome:
    """What happened to one release: lines for stdout and stderr, and whether it failed."""

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Uploader:
    """Uploads releases through the session API of the index at `index_url`."""

    def __init__(
        self,
        http: Http,
        index_url: str,
        *,
        jobs: int = 4,
        progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
        attestations: bool = True,
    ) -> None:
        self.http = http
        #: whether to send the files' attestations (`--no-attestations`: not)
        self.attestations = attestations
        self.index_url = index_url
        self.root = session_root(index_url)
        self.jobs = max(1, jobs)
        self.progress = progress or Progress()
        self.sleep = sleep

    # a release ---------------------------------------------------------------------------
    def release(self, release: Release, *, stage: bool) -> Outcome:
        """Upload the release's files into one session, then publish it (or, `stage`, leave it
        open); raises NoSessionApi when the index has no session API."""
        session = self.open_session(release)
        outcome = Outcome()
        for local in release.files:
            try:
                verb = self.upload_file(session, local, outcome.notes)
            except UploadError as e:
                outcome.errors.append(f"{local.filename}: {e}")
            else:
                outcome.lines.append(f"{verb}: {release.project}/{local.filename}")
        created = session
        session = self._session(urllib.parse.urljoin(self.root, session["links"]["session"]))
        # the index may answer the stage link and the session token only at creation
        if "stage" in created["links"]:
            session["links"].setdefault("stage", created["links"]["stage"])
        self._note_extra_files(session, release, outcome)
        if outcome.errors:
            outcome.errors.append(
                f"{release.project} {release.version}: not published; the session stays open "
                f"until {session.get('expires-at')}: run the command again to resume "
                f"({session['links']['session']})"
            )
            return outcome
        if stage:
            outcome.lines += _stage_lines(release, session)
            return outcome
        self.publish(session)
        outcome.lines = [
            "published" + line.removeprefix("staged") if line.startswith("staged") else line
            for line in outcome.lines
        ]
        return outcome

    def open_session(self, release: Release) -> dict[str, Any]:
        """A new session for the release, or the open one the index names in its 409."""
        answer = self.http.api("POST", self.root, create_body(release))
        if answer.status in NO_SESSION_API:
            raise NoSessionApi(answer.status)
        if answer.status == 201:
            return _checked_session(answer.json())
        refused = UploadError(f"{release.project} {release.version}: {error_text(answer)}")
        if answer.status != 409 or not answer.location:
            raise refused
        # PEP 694: a session of this release exists: resumed when it is still open
        status = self.http.api("GET", urllib.parse.urljoin(self.root, answer.location))
        if status.status != 200 or status.json().get("status") != "pending":
            raise refused
        return _checked_session(status.json())

    def _session(self, url: str) -> dict[str, Any]:
        answer = self.http.api("GET", url)
        if answer.status != 200:
            raise UploadError(f"the session's status: {error_text(answer)}")
        return _checked_session(answer.json())

    def _note_extra_files(self, session: Mapping[str, Any], release: Release, out: Outcome) -> None:
        mine = {f.filename for f in release.files}
        for filename in sorted(set(session.get("files") or {}) - mine):
            out.notes.append(
                f"the session also holds {filename} (uploaded earlier): it is published with "
                "the release unless deleted"
            )

    # a file ------------------------------------------------------------------------------
    def upload_file(
        self, session: Mapping[str, Any], local: LocalFile, notes: list[str] | None = None
    ) -> str:
        """Bring `local` into the session (its attestations first), complete; returns what
        was done ("staged", or "kept" for a complete file the session already holds with the
        same bytes). `notes` gets what the user should know (attestations not sent)."""
        notes = [] if notes is None else notes
        entry = (session.get("files") or {}).get(local.filename)
        if entry is not None:
            link = urllib.parse.urljoin(self.root, entry["link"])
            held = self._file_status(link)
            if _same_file(held, local) and not self._lacks_attestations(held, local):
                return self._resume(local, link, held, notes)
            # other bytes, an error, or a state the client cannot compare: start again
            self._delete_file(link)
        created = self._create_file(session, local)
        self._attest(local, created["mechanism"], notes)
        self._run_mechanism(local, created["mechanism"], resume=False)
        self._complete(local, created)
        return "staged"

    def _lacks_attestations(self, held: Mapping[str, Any], local: LocalFile) -> bool:
        """A complete file the index holds without the attestations beside `local` (a run
        with --no-attestations before): it is uploaded again, with them."""
        return (
            self.attestations
            and held.get("status") == "complete"
            and held.get("attestations") is False
            and bool(attestation_files(local))
        )

    def _resume(self, local: LocalFile, link: str, held: dict[str, Any], notes: list[str]) -> str:
        status = held.get("status")
        if status == "complete":
            return "staged (kept from an earlier run)"
        if status == "processing":
            self._wait_file(link)
            return "staged"
        self._attest(local, held["mechanism"], notes)
        self._run_mechanism(local, held["mechanism"], resume=True)
        self._complete(local, held)
        return "staged (resumed)"

    def _file_status(self, link: str) -> dict[str, Any]:
        answer = self.http.api("GET", link)
        if answer.status != 200:
            raise UploadError(f"its file upload session: {error_text(answer)}")
        return answer.json()

    def _delete_file(self, link: str) -> None:
        answer = self.http.api("DELETE", link)
        if answer.status not in (200, 204, 404):
            raise UploadError(f"deleting the earlier upload: {error_text(answer)}")

    def _create_file(self, session: Mapping[str, Any], local: LocalFile) -> dict[str, Any]:
        mechanism = choose_mechanism(session.get("mechanisms") or ())
        upload = urllib.parse.urljoin(self.root, session["links"]["upload"])
        answer = self.http.api("POST", upload, file_body(local, mechanism))
        if answer.status not in (201, 202):
            raise UploadError(error_text(answer))
        body = answer.json()
        if not isinstance(body.get("mechanism"), dict) or not isinstance(body.get("links"), dict):
            raise UploadError("the index's file upload session has no mechanism or links")
        return body

    def _run_mechanism(
        self, local: LocalFile, mechanism: Mapping[str, Any], *, resume: bool
    ) -> None:
        identifier = mechanism.get("identifier")
        if identifier == S3_MECHANISM:
            S3Multipart(self.http, self.root, local, mechanism, self.progress).run(
                jobs=self.jobs, resume=resume, sleep=self.sleep
            )
        elif identifier == HTTP_POST_BYTES:
            self._post_bytes(local, mechanism)
        else:
            raise UploadError(f"the index chose the mechanism {identifier!r}, unknown here")

    def _complete(self, local: LocalFile, file_session: Mapping[str, Any]) -> None:
        """PEP 694: the mechanism ran; the index verifies the file (201, or 202 then polled)."""
        links = file_session["links"]
        complete = urllib.parse.urljoin(self.root, links["complete"])
        try:
            answer = self.http.api("POST", complete, {"meta": META}, timeout=LONG_TIMEOUT)
        except TransportError as e:
            raise UploadError(f"{e}: {_UNFINISHED}") from None
        if answer.status == 202:
            self._wait_file(urllib.parse.urljoin(self.root, links["file-upload-session"]))
        elif answer.status >= 500:
            # a front that gave up (API Gateway: 29 s) while the index still verifies
            raise UploadError(f"verification not answered: {error_text(answer)}: {_UNFINISHED}")
        elif answer.status not in (200, 201):
            raise UploadError(f"refused at completion: {error_text(answer)}")

    def _wait_file(self, link: str) -> None:
        self._wait_until_complete(
            link, "the index did not complete the file", "the index was still verifying the file"
        )

    def _wait_until_complete(self, link: str, failed: str, late: str) -> None:
        """Poll a session's or a file's status URL while it is `processing` (at Retry-After),
        up to POLL_LIMIT seconds; UploadError(`failed`) for any other status than
        `complete`, UploadError(`late`) when the limit passes."""
        deadline = time.monotonic() + POLL_LIMIT
        while time.monotonic() < deadline:
            answer = self.http.api("GET", link)
            status = answer.json().get("status") if answer.status == 200 else None
            if status == "complete":
                return
            if status != "processing":
                raise UploadError(f"{failed}: {error_text(answer)}")
            self.sleep(answer.retry_after())
        raise UploadError(f"{late} after {POLL_LIMIT:.0f} s")

    def _attest(self, local: LocalFile, mechanism: Mapping[str, Any], notes: list[str]) -> None:
        """PEP 694: POST the file's attestations (a JSON array of PEP 740 attestation
        objects) to the mechanism's `attestations_url`, before completion; a note when the
        index offers none (the file is uploaded without them)."""
        if not self.attestations:
            return
        paths = attestation_files(local)
        if not paths:
            return
        url = mechanism.get("attestations_url")
        if not isinstance(url, str) or not url:
            names = ", ".join(p.name for p in paths)
            notes.append(
                f"{local.filename}: the index takes no attestations for it (no "
                f"attestations_url): uploaded without {names}"
            )
            return
        body = json.dumps(read_attestations(paths)).encode()
        headers = {"Content-Type": "application/json", "Accept": MEDIA_TYPE}
        target = urllib.parse.urljoin(self.root, url)
        try:
            answer = self.http.send("POST", target, data=body, headers=headers)
        except TransportError as e:
            raise UploadError(f"sending its attestations: {e}") from None
        if not 200 <= answer.status < 300:
            raise UploadError(f"attestations refused: {error_text(answer)}")

    # mechanisms --------------------------------------------------------------------------
    def _post_bytes(self, local: LocalFile, mechanism: Mapping[str, Any]) -> None:
        """PEP 694 `http-post-bytes`: the raw bytes in one POST to `file_url`."""
        url = urllib.parse.urljoin(self.root, str(mechanism.get("file_url")))
        self.progress.expect(local.size)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(local.size)}
        for attempt in range(1, ATTEMPTS + 1):
            reader = CountingReader(local.path, 0, local.size, self.progress)
            try:
                answer = self.http.send("POST", url, data=reader, headers=headers)
            except TransportError:
                answer = None
            finally:
                reader.close()
            if answer is not None and 200 <= answer.status < 300:
                return
            reader.uncount()
            if (answer is not None and answer.status < 500) or attempt == ATTEMPTS:
                raise UploadError(
                    f"sending the bytes: {error_text(answer) if answer else 'no answer'}"
                )
            self.sleep(attempt)

    # publish -----------------------------------------------------------------------------
    def publish(self, session: Mapping[str, Any]) -> None:
        """PEP 694 publish: every file appears at once (201, or 202 then polled)."""
        links = session["links"]
        url = urllib.parse.urljoin(self.root, links["publish"])
        answer = self.http.api("POST", url, {"meta": META}, timeout=LONG_TIMEOUT)
        if answer.status in (200, 201):
            return
        if answer.status != 202:
            raise UploadError(f"publish refused: {error_text(answer)}")
        self._wait_until_complete(
            urllib.parse.urljoin(self.root, links["session"]),
            "publish did not complete",
            "the index was still publishing",
        )


def _checked_session(body: dict[str, Any]) -> dict[str, Any]:
    links = body.get("links")
    if not isinstance(links, dict) or not {"session", "upload", "publish"} <= set(links):
        raise UploadError("the index's session has no links to upload and publish with")
    return body


def _same_file(held: Mapping[str, Any], local: LocalFile) -> bool:
    """Whether a file upload session the index holds is for these very bytes (and usable)."""
    hashes = held.get("hashes")
    return (
        held.get("status") in ("pending", "processing", "complete")
        and isinstance(hashes, dict)
        and hashes.get("sha256") == local.sha256
        and held.get("size") == local.size
        and isinstance(held.get("links"), dict)
    )


def _stage_lines(release: Release, session: Mapping[str, Any]) -> list[str]:
    links = session["links"]
    stage = links.get("stage")
    lines = [f"session: {links['session']} (open until {session.get('expires-at')})"]
    if not stage:
        # this index shows the stage URL once, to the run that created the session
        return [
            *lines,
            "note: no stage URL in this answer: the index shows it when the session is "
            "created (PEP 694 previews are optional)",
        ]
    pin = f"{release.project}=={release.version}"
    return [
        *lines,
        f"stage: {stage}",
        f"  pip install --index-url {stage} {pin}",
        f"  uv pip install --index-url {stage} {pin}",
        "  publish: run the same command without --stage",
    ]
