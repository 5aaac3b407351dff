"""`serverless-pypi upload`: a client of the Upload 2.0 session API (PEP 694).

    upload --index URL [--token T | --trusted-publishing] [--stage] [--jobs N] FILE...

PEP 694 (draft; the revision posted 26-Jun-2026 with python/peps#5012) has no client yet; this
is one, for this index and any other that implements the same protocol. The files are grouped
by release (name and version, read from the file names with `packaging`); each release is one
publishing session below the index URL (`<URL>/_upload/`, the session root this index
documents; every other URL comes from the `links` of the answers, as the PEP requires):

1. `POST <root>` creates the session; a 409 with a Location (a session of that release is
   open) resumes it: a file it holds complete with the same sha256 and size is kept, a pending
   one is finished (on S3 only the parts S3 does not hold yet are sent), one in `error` is
   deleted and uploaded again.
2. One file upload session per file, with the first mechanism the index offers that the
   client knows: `vnd-serverlesspypi-s3multipart-presigned-v1` (the bytes go straight to S3
   over presigned part URLs, `--jobs` parts at a time, each retried) or `http-post-bytes`
   (one POST of the raw bytes to the index).
3. `complete` for each file (the index verifies size, hashes and the archive), then
   `publish`: every file of the release appears in one step. With `--stage` the session stays
   open and the command prints its stage URL, from which pip and uv install the release.

An index without the session API (`POST <root>` answered 404, 405, 406 or 415) gets the files
through the legacy upload API (the multipart form twine sends) instead, with a note on stderr.

HTTP is the standard library's (`urllib.request`; SSL_CERT_FILE and the proxy variables apply);
credentials go only to the index's own origin, never to the presigned S3 URLs.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import io
import json
import os
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from serverless_pypi import __version__
from serverless_pypi.core.names import InvalidFilename, parse_distribution_filename

__all__ = [
    "HTTP_POST_BYTES",
    "MEDIA_TYPE",
    "S3_MECHANISM",
    "Answer",
    "Http",
    "LocalFile",
    "Part",
    "Release",
    "UploadError",
    "Uploader",
    "add_commands",
    "choose_mechanism",
    "create_body",
    "error_text",
    "file_body",
    "group_releases",
    "legacy_form",
    "part_plan",
    "session_root",
]

#: PEP 694 "Versioning and Content Types": the media type of every JSON request and answer
MEDIA_TYPE = "application/vnd.pypi.upload.v2+json"
META = {"api-version": "2.0"}
HTTP_POST_BYTES = "http-post-bytes"  # PEP 694: the mechanism every index implements
#: this index's S3 mechanism (docs/upload-sessions.md): presigned multipart part URLs
S3_MECHANISM = "vnd-serverlesspypi-s3multipart-presigned-v1"
#: the mechanisms the client can run, in the order it prefers them when the index has no order
KNOWN_MECHANISMS = (S3_MECHANISM, HTTP_POST_BYTES)
#: answers to `POST <root>` that mean "no Upload 2.0 here": the legacy API is used
NO_SESSION_API = frozenset({404, 405, 406, 415})
#: part URLs asked for at once (the index takes at most 1000 per request); a batch is sent
#: before the next is asked for, so no URL waits long enough to expire
PART_BATCH = 100
ATTEMPTS = 3  # each part PUT (and the http-post-bytes POST) is tried this often
TIMEOUT = 120.0  # seconds for one request
#: complete and publish: the index reads the whole file (or release) before it answers
LONG_TIMEOUT = 900.0
POLL_LIMIT = 1800.0  # seconds of polling a `processing` file or session before giving up
_CHUNK = 1024 * 1024
USER_AGENT = f"serverless-pypi/{__version__} (upload; PEP 694)"
#: what to do about a verification that got no answer: the bytes are in the session
_UNFINISHED = "the file stays in the session; run the command again to finish it"


class UploadError(Exception):
    """A step that failed; the message says which and why (one line)."""


class NoSessionApi(Exception):
    """The index answered the session root as one without the Upload 2.0 API."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# -- the files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFile:
    """A distribution file to upload: its name says its project and version."""

    path: Path
    filename: str
    project: str  # normalized (packaging)
    version: str  # PEP 440 normalized
    kind: str  # "wheel" or "sdist"
    size: int
    sha256: str

    @classmethod
    def read(cls, path: Path) -> LocalFile:
        """The file at `path`, hashed (raises UploadError for a bad name or unreadable file)."""
        try:
            dist = parse_distribution_filename(path.name)
        except InvalidFilename as e:
            raise UploadError(str(e)) from None
        try:
            digest, size = _sha256(path)
        except OSError as e:
            raise UploadError(f"cannot be read: {e.strerror or e}") from None
        if size == 0:
            raise UploadError("the file is empty")
        return cls(path, path.name, dist.project, str(dist.version), dist.kind, size, digest)


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@dataclass(frozen=True)
class Release:
    """The files of one (project, version): one publishing session."""

    project: str
    version: str
    files: tuple[LocalFile, ...]


def group_releases(files: Iterable[LocalFile]) -> list[Release]:
    """The files by release, in the order the releases are first named."""
    groups: dict[tuple[str, str], list[LocalFile]] = {}
    for local in files:
        groups.setdefault((local.project, local.version), []).append(local)
    return [Release(name, version, tuple(group)) for (name, version), group in groups.items()]


# -- the protocol's bodies (pure) ------------------------------------------------------------


def session_root(index_url: str) -> str:
    """The session root below the index's simple URL: `<URL>/_upload/` (docs/upload-sessions.md)."""
    return index_url.rstrip("/") + "/_upload/"


def create_body(release: Release) -> dict[str, Any]:
    """PEP 694 "Create a Publishing Session": meta, name and version."""
    return {"meta": META, "name": release.project, "version": release.version}


def file_body(local: LocalFile, mechanism: str) -> dict[str, Any]:
    """PEP 694 "Create a File Upload Session": the file's name, size, sha256 and mechanism."""
    return {
        "meta": META,
        "filename": local.filename,
        "size": local.size,
        "hashes": {"sha256": local.sha256},
        "mechanism": mechanism,
    }


def choose_mechanism(offered: Sequence[str]) -> str:
    """The first mechanism the index offers (its order of preference) that the client runs."""
    for mechanism in offered:
        if mechanism in KNOWN_MECHANISMS:
            return mechanism
    raise UploadError(
        f"the index offers no upload mechanism this client knows ({', '.join(offered) or 'none'};"
        f" known: {', '.join(KNOWN_MECHANISMS)})"
    )


@dataclass(frozen=True)
class Part:
    """One part of an S3 multipart upload: numbers start at 1."""

    number: int
    offset: int
    length: int


def part_plan(size: int, part_size: int) -> list[Part]:
    """The parts of a file of `size` bytes cut into `part_size` pieces (the last one shorter)."""
    if part_size <= 0:
        raise UploadError(f"the index gave a part size of {part_size}")
    count = max(1, -(-size // part_size))
    return [Part(n + 1, n * part_size, min(part_size, size - n * part_size)) for n in range(count)]


def _md5_of(path: Path, part: Part) -> str:
    with path.open("rb") as file:
        file.seek(part.offset)
        return hashlib.md5(file.read(part.length), usedforsecurity=False).hexdigest()


def missing_parts(
    path: Path, plan: Sequence[Part], held: Iterable[Mapping[str, Any]]
) -> list[Part]:
    """The parts of `plan` that S3 does not hold with these bytes (resuming an upload).

    A part S3 holds counts when its size matches and its ETag is the MD5 of the local bytes
    (what S3 answers for a part of an SSE-S3 bucket); any other part is sent again.
    """
    etags = {int(p["number"]): (int(p["size"]), str(p["etag"]).strip('"')) for p in held}
    todo = []
    for part in plan:
        size, etag = etags.get(part.number, (-1, ""))
        if size != part.length or etag != _md5_of(path, part):
            todo.append(part)
    return todo


def error_text(answer: Answer) -> str:
    """What an error answer says: the PEP's `message` and `errors`, an RFC 9457 `detail`, else
    the start of the body."""
    data = answer.json()
    if data:
        said = [str(data.get(k)) for k in ("message", "detail", "title") if data.get(k)]
        text = said[0] if said else ""
        for error in data.get("errors") or ():
            detail = error.get("message") if isinstance(error, dict) else None
            if detail and str(detail) not in text:
                text += f" ({detail})"
        if text:
            return f"HTTP {answer.status}: {text}"
    body = answer.body[:300].decode("utf-8", "replace").strip().splitlines()
    return f"HTTP {answer.status}: " + (body[0] if body else "no explanation given")


# -- HTTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A response: status, headers (names lowercased), body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; {} for any other body."""
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def location(self) -> str | None:
        return self.headers.get("location")

    def retry_after(self) -> float:
        """Retry-After in seconds (RFC 9110 section 10.2.3; 1 when absent, at most 30)."""
        raw = self.headers.get("retry-after", "1").strip()
        return min(30.0, float(raw)) if raw.isdigit() else 1.0


class TransportError(UploadError):
    """The request got no answer (refused connection, reset, timeout)."""


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower().rsplit("@", 1)[-1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Answers are taken as they come: a 3xx is the index's answer, not a place to go."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Http:
    """Requests to the index (with its credentials) and to presigned URLs (without)."""

    def __init__(self, index_url: str, authorization: str | None = None) -> None:
        self.origin = _origin(index_url)
        self.authorization = authorization
        self.opener = urllib.request.build_opener(_NoRedirect)

    def send(
        self,
        method: str,
        url: str,
        *,
        data: bytes | IO[bytes] | io.RawIOBase | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT,
    ) -> Answer:
        """One request; an HTTP error status is an Answer, no answer at all TransportError."""
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("User-Agent", USER_AGENT)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        if data is not None and not request.has_header("Content-type"):
            # urllib would say application/x-www-form-urlencoded, which bytes never are
            request.add_header("Content-Type", "application/octet-stream")
        if self.authorization and _origin(url) == self.origin:
            # only the index's own origin gets the credentials: never S3 or another host
            request.add_header("Authorization", self.authorization)
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return Answer(response.status, _headers(response.headers), response.read())
        except urllib.error.HTTPError as e:
            with e:
                return Answer(e.code, _headers(e.headers), e.read())
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TransportError(f"{method} {_redact(url)}: no answer ({reason})") from None

    def api(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float = TIMEOUT,
    ) -> Answer:
        """A request of the session API: JSON in PEP 694's media type, asking for it back."""
        headers = {"Accept": MEDIA_TYPE}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = MEDIA_TYPE
        return self.send(method, url, data=data, headers=headers, timeout=timeout)


def _headers(message: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in (message or {}).items()}


def _redact(url: str) -> str:
    """A URL without its query (a presigned URL's signature) or user information."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def basic_authorization(token: str) -> str:
    """A token as twine sends it: HTTP Basic (RFC 7617) with the user name `__token__`."""
    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


def split_credentials(url: str) -> tuple[str, str | None]:
    """`https://__token__:T@host/simple/` -> the URL without `__token__:T@`, and T."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url, None
    host = parts.netloc.rsplit("@", 1)[-1]
    bare = urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    return bare, urllib.parse.unquote(parts.password)


# -- trusted publishing ----------------------------------------------------------------------


def _host_root(index_url: str) -> str:
    parts = urllib.parse.urlsplit(index_url)
    return f"{parts.scheme}://{parts.netloc}"


def _json_of(answer: Answer, what: str) -> dict[str, Any]:
    if answer.status != 200:
        raise UploadError(f"{what}: {error_text(answer)}")
    return answer.json()


def _ci_oidc_token(http: Http, audience: str, environ: Mapping[str, str]) -> str:
    """The CI job's OIDC token for `audience`: GitHub Actions' token request, else
    SERVERLESS_PYPI_OIDC_TOKEN (GitLab CI: an `id_tokens` entry with that name)."""
    url, bearer = (
        environ.get("ACTIONS_ID_TOKEN_REQUEST_URL"),
        environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    )
    if url and bearer:
        answer = http.send(
            "GET",
            f"{url}&audience={urllib.parse.quote(audience)}",
            headers={"Authorization": f"bearer {bearer}", "Accept": "application/json"},
        )
        value = _json_of(answer, "GitHub's OIDC token request").get("value")
        if isinstance(value, str) and value:
            return value
        raise UploadError("GitHub's OIDC token request gave no token")
    token = environ.get("SERVERLESS_PYPI_OIDC_TOKEN", "").strip()
    if token:
        return token
    raise UploadError(
        "--trusted-publishing needs an OIDC token: run in GitHub Actions with `permissions: "
        "id-token: write`, or set SERVERLESS_PYPI_OIDC_TOKEN (GitLab CI: id_tokens)"
    )


def mint_token(index_url: str, environ: Mapping[str, str]) -> str:
    """Trusted publishing as PyPI's: the audience, the CI's OIDC token, a minted token."""
    root = _host_root(index_url)
    http = Http(index_url)
    audience = _json_of(http.send("GET", root + "/_/oidc/audience"), "the OIDC audience")
    jwt = _ci_oidc_token(http, str(audience.get("audience") or ""), environ)
    answer = http.send(
        "POST",
        root + "/_/oidc/mint-token",
        data=json.dumps({"token": jwt}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    token = _json_of(answer, "the token exchange").get("token")
    if not isinstance(token, str) or not token:
        raise UploadError("the token exchange gave no token")
    return token


def burn_token(index_url: str, token: str) -> None:
    """Revoke a minted token once the uploads are done (a failure changes nothing)."""
    with contextlib.suppress(UploadError):
        Http(index_url).send(
            "POST",
            _host_root(index_url) + "/_/oidc/burn-token",
            data=json.dumps({"token": token}).encode(),
            headers={"Content-Type": "application/json"},
        )


# -- progress ----------------------------------------------------------------------------------


class Progress:
    """Bytes sent, on a tqdm bar when stderr is a terminal (thread-safe; else silent)."""

    def __init__(self, bar: Any = None) -> None:
        self.bar = bar
        self.lock = threading.Lock()

    @classmethod
    def for_terminal(cls, stream: TextIO) -> Progress:
        if not stream.isatty():
            return cls()
        try:
            from tqdm import tqdm
        except ImportError:
            return cls()
        return cls(tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, file=stream))

    def expect(self, count: int) -> None:
        if self.bar is not None:
            with self.lock:
                self.bar.total += count
                self.bar.refresh()

    def sent(self, count: int) -> None:
        if self.bar is not None:
            with self.lock:
                self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Reader(io.RawIOBase):
    """`length` bytes of a file from `offset`, counted on the progress as they are read."""

    def __init__(self, path: Path, offset: int, length: int, progress: Progress) -> None:
        self.file = path.open("rb")
        self.file.seek(offset)
        self.left = length
        self.progress = progress
        self.counted = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.file.read(min(len(buffer), self.left))
        buffer[: len(data)] = data
        self.left -= len(data)
        self.counted += len(data)
        self.progress.sent(len(data))
        return len(data)

    def close(self) -> None:
        self.file.close()
        super().close()

    def uncount(self) -> None:
        """Take what this attempt counted off the progress (it is sent again)."""
        self.progress.sent(-self.counted)
        self.counted = 0


# -- the session flow --------------------------------------------------------------------------


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
    ) -> None:
        self.http = http
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
                verb = self.upload_file(session, local)
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
    def upload_file(self, session: Mapping[str, Any], local: LocalFile) -> str:
        """Bring `local` into the session, complete; returns what was done ("staged", or
        "kept" for a complete file the session already holds with the same bytes)."""
        entry = (session.get("files") or {}).get(local.filename)
        if entry is not None:
            link = urllib.parse.urljoin(self.root, entry["link"])
            held = self._file_status(link)
            if _same_file(held, local):
                return self._resume(local, link, held)
            # other bytes, an error, or a state the client cannot compare: start again
            self._delete_file(link)
        created = self._create_file(session, local)
        self._run_mechanism(local, created["mechanism"], resume=False)
        self._complete(local, created)
        return "staged"

    def _resume(self, local: LocalFile, link: str, held: dict[str, Any]) -> str:
        status = held.get("status")
        if status == "complete":
            return "staged (kept from an earlier run)"
        if status == "processing":
            self._wait_file(link)
            return "staged"
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
        deadline = time.monotonic() + POLL_LIMIT
        while time.monotonic() < deadline:
            answer = self.http.api("GET", link)
            status = answer.json().get("status") if answer.status == 200 else None
            if status == "complete":
                return
            if status != "processing":
                raise UploadError(f"the index did not complete the file: {error_text(answer)}")
            self.sleep(answer.retry_after())
        raise UploadError(f"the index was still verifying the file after {POLL_LIMIT:.0f} s")

    # mechanisms --------------------------------------------------------------------------
    def _post_bytes(self, local: LocalFile, mechanism: Mapping[str, Any]) -> None:
        """PEP 694 `http-post-bytes`: the raw bytes in one POST to `file_url`."""
        url = urllib.parse.urljoin(self.root, str(mechanism.get("file_url")))
        self.progress.expect(local.size)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(local.size)}
        for attempt in range(1, ATTEMPTS + 1):
            reader = _Reader(local.path, 0, local.size, self.progress)
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
        deadline = time.monotonic() + POLL_LIMIT
        status_url = urllib.parse.urljoin(self.root, links["session"])
        while time.monotonic() < deadline:
            status = self.http.api("GET", status_url)
            state = status.json().get("status") if status.status == 200 else None
            if state == "complete":
                return
            if state != "processing":
                raise UploadError(f"publish did not complete: {error_text(status)}")
            self.sleep(status.retry_after())
        raise UploadError(f"the index was still publishing after {POLL_LIMIT:.0f} s")


class S3Multipart:
    """The S3 mechanism for one file (docs/upload-sessions.md): presigned part URLs from the
    index's `parts_url`, each part PUT straight to S3, `jobs` at a time."""

    def __init__(
        self,
        http: Http,
        root: str,
        local: LocalFile,
        mechanism: Mapping[str, Any],
        progress: Progress,
    ) -> None:
        self.http = http
        self.local = local
        self.parts_url = urllib.parse.urljoin(root, str(mechanism.get("parts_url")))
        self.plan = part_plan(local.size, int(mechanism.get("part-size") or 0))
        if len(self.plan) != int(mechanism.get("part-count") or 0):
            raise UploadError(
                f"the index expects {mechanism.get('part-count')} parts of "
                f"{mechanism.get('part-size')} bytes, not the {len(self.plan)} this file makes"
            )
        self.progress = progress
        self.urls: dict[int, str] = {}
        self.sleep: Callable[[float], None] = time.sleep

    def run(self, *, jobs: int, resume: bool, sleep: Callable[[float], None]) -> None:
        """Send the parts (resuming: only those S3 does not hold with these bytes)."""
        self.sleep = sleep
        todo = missing_parts(self.local.path, self.plan, self.held()) if resume else self.plan
        self.progress.expect(sum(p.length for p in todo))
        for start in range(0, len(todo), PART_BATCH):
            batch = todo[start : start + PART_BATCH]
            self.urls.update(self.part_urls([p.number for p in batch]))
            with ThreadPoolExecutor(jobs, thread_name_prefix="part") as pool:
                failures = [error for error in pool.map(self.put, batch) if error]
            if failures:
                raise UploadError(f"{len(failures)} part(s) failed: {failures[0]}")

    def held(self) -> list[dict[str, Any]]:
        """The parts S3 holds for this upload (number, size, etag)."""
        answer = self.http.api("GET", self.parts_url)
        if answer.status != 200:
            raise UploadError(f"the parts S3 holds: {error_text(answer)}")
        return list(answer.json().get("parts") or [])

    def part_urls(self, numbers: Sequence[int]) -> dict[int, str]:
        """Presigned PUT URLs for these part numbers."""
        answer = self.http.api("POST", self.parts_url, {"meta": META, "parts": list(numbers)})
        if answer.status != 200:
            raise UploadError(f"the part URLs: {error_text(answer)}")
        urls = {int(p["number"]): str(p["url"]) for p in answer.json().get("parts") or []}
        if set(numbers) - set(urls):
            raise UploadError("the index gave no URL for some parts")
        return urls

    def put(self, part: Part) -> str | None:
        """PUT one part to its presigned URL, tried ATTEMPTS times (with a fresh URL after a
        403: it may have expired); None when S3 took it, else what went wrong."""
        problem = "no attempt"
        headers = {"Content-Length": str(part.length), "Content-Type": "application/octet-stream"}
        for attempt in range(1, ATTEMPTS + 1):
            reader = _Reader(self.local.path, part.offset, part.length, self.progress)
            try:
                answer = self.http.send("PUT", self.urls[part.number], data=reader, headers=headers)
                if 200 <= answer.status < 300:
                    return None
                problem = f"part {part.number}: S3 answered {error_text(answer)}"
                if answer.status == 403:
                    self.urls.update(self.part_urls([part.number]))
            except UploadError as e:
                problem = f"part {part.number}: {e}"
            finally:
                reader.close()
            reader.uncount()
            if attempt < ATTEMPTS:
                self.sleep(attempt)
        return problem


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


# -- the legacy upload API -----------------------------------------------------------------------


class _Concat(io.RawIOBase):
    """Several streams read as one (a form around a file, without holding the file)."""

    def __init__(self, parts: Sequence[IO[bytes] | io.RawIOBase]) -> None:
        self.parts = list(parts)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self.parts:
            data = self.parts[0].read(len(buffer))
            if data:
                buffer[: len(data)] = data
                return len(data)
            self.parts.pop(0).close()
        return 0


def _core_metadata_version(local: LocalFile) -> str:
    """The file's Metadata-Version (PyPI's form requires it), 2.1 when it cannot be read."""
    from packaging.metadata import parse_email

    from serverless_pypi.core.metadata import BadDistribution, inspect_distribution

    try:
        with local.path.open("rb") as file:
            metadata = inspect_distribution(file, parse_distribution_filename(local.filename))
        if metadata.metadata is not None:
            raw, _ = parse_email(metadata.metadata)
            return str(raw.get("metadata_version") or "2.1")
    except (BadDistribution, OSError, ValueError):
        pass
    return "2.1"


def legacy_form(local: LocalFile, boundary: str) -> tuple[bytes, bytes]:
    """The legacy upload form twine sends, as the bytes before and after the file's."""
    pyversion = "source" if local.kind == "sdist" else local.filename.split("-")[-3]
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": _core_metadata_version(local),
        "name": local.project,
        "version": local.version,
        "filetype": "sdist" if local.kind == "sdist" else "bdist_wheel",
        "pyversion": pyversion,
        "sha256_digest": local.sha256,
    }
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{local.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def legacy_upload(http: Http, url: str, local: LocalFile, progress: Progress) -> None:
    """POST the file to the legacy upload API at `url` (raises UploadError)."""
    boundary = secrets.token_hex(16)
    head, tail = legacy_form(local, boundary)
    progress.expect(local.size)
    reader = _Reader(local.path, 0, local.size, progress)
    body = _Concat([io.BytesIO(head), reader, io.BytesIO(tail)])
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + local.size + len(tail)),
    }
    try:
        answer = http.send("POST", url, data=body, headers=headers, timeout=LONG_TIMEOUT)
    finally:
        body.close()
    if not 200 <= answer.status < 300:
        raise UploadError(error_text(answer))


# -- the command -------------------------------------------------------------------------------


def _read_files(names: Sequence[str], err: TextIO) -> tuple[list[LocalFile], int]:
    files, failed = [], 0
    for name in names:
        try:
            files.append(LocalFile.read(Path(name)))
        except UploadError as e:
            print(f"error: {name}: {e}", file=err)
            failed += 1
    return files, failed


def _credentials(args: argparse.Namespace, index_url: str, token: str | None) -> tuple[str, bool]:
    """The token to send, and whether it was minted here (trusted publishing)."""
    if args.trusted_publishing:
        return mint_token(index_url, os.environ), True
    token = args.token or token or os.environ.get("SERVERLESS_PYPI_TOKEN", "").strip()
    if not token:
        raise ValueError(
            "no credentials: give --token T (a write token), set SERVERLESS_PYPI_TOKEN, or use "
            "--trusted-publishing in CI"
        )
    return token, False


def _legacy(
    http: Http, args: argparse.Namespace, release: Release, progress: Progress, status: int
) -> Outcome:
    outcome = Outcome()
    if args.stage:
        outcome.errors.append(
            f"{release.project} {release.version}: the index has no Upload 2.0 session API "
            f"(its session root answered {status}): --stage needs one; nothing uploaded"
        )
        return outcome
    url = args.legacy_url or args.index
    for local in release.files:
        try:
            legacy_upload(http, url, local, progress)
        except UploadError as e:
            outcome.errors.append(f"{local.filename}: legacy upload: {e}")
        else:
            outcome.lines.append(f"published (legacy API): {release.project}/{local.filename}")
    return outcome


def cmd_upload(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    index_url, inline_token = split_credentials(args.index.strip())
    if not index_url.endswith("/"):
        index_url += "/"
    files, failed = _read_files(args.files, err)
    if not files:
        return 1
    token, minted = _credentials(args, index_url, inline_token)
    http = Http(index_url, basic_authorization(token))
    progress = Progress.for_terminal(err)
    uploader = Uploader(http, index_url, jobs=args.jobs, progress=progress)
    noted = False
    try:
        for release in group_releases(files):
            try:
                outcome = uploader.release(release, stage=args.stage)
            except NoSessionApi as e:
                if not noted and not args.stage:
                    print(
                        f"note: the index has no Upload 2.0 session API ({uploader.root} "
                        f"answered {e.status}): uploaded with the legacy API",
                        file=err,
                    )
                    noted = True
                outcome = _legacy(http, args, release, progress, e.status)
            except UploadError as e:
                outcome = Outcome(errors=[str(e)])
            progress_lines(outcome, out, err)
            failed += len(outcome.errors)
    finally:
        progress.close()
        if minted:
            burn_token(index_url, token)
    return 1 if failed else 0


def progress_lines(outcome: Outcome, out: TextIO, err: TextIO) -> None:
    for line in outcome.lines:
        print(line, file=out, flush=True)
    for line in outcome.notes:
        print(f"note: {line}", file=err, flush=True)
    for line in outcome.errors:
        print(f"error: {line}", file=err, flush=True)


def add_commands(commands: Any) -> None:
    """Register `upload` on the CLI."""
    upload = commands.add_parser(
        "upload",
        help="upload distributions through the index's Upload 2.0 sessions (PEP 694)",
        description="Upload wheels and sdists to an index with a token, a release at a time: "
        "the files go into one Upload 2.0 session (PEP 694; on S3 straight to the bucket, in "
        "parallel parts), are verified, and appear together when the session is published. "
        "Running the command again resumes an interrupted upload. An index without the "
        "session API gets the files through the legacy upload API. Exits 1 if any file "
        "failed.",
    )
    upload.add_argument(
        "--index",
        required=True,
        metavar="URL",
        help="the index's simple URL, e.g. https://pypi.example.com/simple/ (sessions live "
        "below it, at _upload/)",
    )
    who = upload.add_mutually_exclusive_group()
    who.add_argument("--token", metavar="T", help="a write token (default: $SERVERLESS_PYPI_TOKEN)")
    who.add_argument(
        "--trusted-publishing",
        action="store_true",
        help="exchange the CI job's OIDC token for a token (GitHub Actions, or "
        "$SERVERLESS_PYPI_OIDC_TOKEN)",
    )
    upload.add_argument(
        "--stage",
        action="store_true",
        help="upload and verify, but do not publish: print the stage URL to install from",
    )
    upload.add_argument("--jobs", type=int, default=4, help="parts sent in parallel (default 4)")
    upload.add_argument(
        "--legacy-url",
        metavar="URL",
        help="where the legacy upload API is, for an index without sessions (default: --index)",
    )
    upload.add_argument("files", nargs="+", metavar="FILE", help="wheels and sdists")
    upload.set_defaults(func=cmd_upload)
