"""The Upload 2.0 session API (PEP 694, revision of 26 Jun 2026 with python/peps#5012).

Routes below the session root `_upload/` (itself below the index root); every URL a client
follows comes from the `links` of an answer, and every link is absolute:

    POST   ""                                create a publishing session (201)
    GET    "<sid>/"                          its status (200); DELETE: cancel it (204)
    POST   "<sid>/publish"                   publish the release (201)
    POST   "<sid>/extend"                    extend the session (200)
    POST   "<sid>/files/"                    create a file upload session (202)
    GET    "<sid>/files/<file>"              its status (200); DELETE: remove the file (204)
    POST   "<sid>/files/<file>/complete"     verify the uploaded file (201)
    POST   "<sid>/files/<file>/extend"       extend its session (200)
    POST   "<sid>/files/<file>/bytes"        http-post-bytes: the file's bytes (204)
    POST   "<sid>/files/<file>/parts"        the S3 mechanism: presigned part URLs (200)
    GET    "<sid>/files/<file>/parts"        the parts S3 holds (200)

Bodies are `application/vnd.pypi.upload.v2+json` with `"meta": {"api-version": "2.0"}`:
another Content-Type is answered 415, another major version in `meta` 400, an Accept that
refuses the media type 406. Errors carry the PEP's `message` and `errors` and the RFC 9457
members (`type`, `title`, `status`, `detail`) in one object, in the same media type.

Every request is authorized as a legacy upload to the session's project, at each request
(PEP 694 "Authentication and Authorization": a session is not tied to the credentials that
created it). What is stored and how is `serverless_pypi.index.sessions`; publishing is
`serverless_pypi.index.release.publish_release`.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from packaging.version import InvalidVersion, Version

from serverless_pypi.core.errors import (
    Conflict,
    DomainError,
    InvalidRequest,
    LengthRequired,
    MethodNotAllowed,
    NoSuchPath,
    TooLarge,
)
from serverless_pypi.core.http import Request, Response
from serverless_pypi.core.metadata import MAX_METADATA_SIZE
from serverless_pypi.core.names import (
    InvalidFilename,
    InvalidProjectName,
    NormalizedName,
    check_publishable_filename,
    normalize_project_name,
)
from serverless_pypi.core.negotiate import parse_accept
from serverless_pypi.storage.base import StoreError
from serverless_pypi.web.errors import message_of, status_of
from serverless_pypi.web.paths import SESSION_ROOT, STAGE_ROOT

if TYPE_CHECKING:
    from serverless_pypi.core.policy import Policy
    from serverless_pypi.index.sessions import Sessions, StagedFile, UploadSession

__all__ = [
    "API_VERSION",
    "MAX_PARTS_PER_REQUEST",
    "MEDIA_TYPE",
    "POST_BYTES",
    "S3_MECHANISM",
    "NotAcceptable",
    "SessionRoutes",
    "Unprocessable",
    "UnsupportedMediaType",
]

MEDIA_TYPE = "application/vnd.pypi.upload.v2+json"
#: PEP 691's alias, which PEP 694 inherits: the newest version the server speaks
_LATEST = "application/vnd.pypi.upload.latest+json"
API_VERSION = "2.0"
_META = {"api-version": API_VERSION}
#: the mechanism every server implements (PEP 694 "http-post-bytes")
POST_BYTES = "http-post-bytes"
#: ours (PEP 694 "Server-specific mechanisms": `vnd-<operator>-<implementation>`): presigned
#: S3 multipart part URLs, so a file's bytes go from the client to S3 (docs/upload-sessions.md)
S3_MECHANISM = "vnd-serverlesspypi-s3multipart-presigned-v1"
#: part numbers one `POST parts_url` may ask URLs for
MAX_PARTS_PER_REQUEST = 1000
#: the longest a presigned part URL lives, seconds
MAX_URL_LIFETIME = 3600
#: the largest JSON body: a file upload session may carry the file's core metadata
MAX_JSON_BODY = MAX_METADATA_SIZE + 64 * 1024
#: PEP 694: a file upload session's answer says when to poll again (Retry-After, seconds)
RETRY_AFTER = "1"
#: the sha256 the index requires of every file (PEP 694 recommends it; we need it for pages)
_HEX = re.compile(r"[0-9a-fA-F]+")
#: PEP 694 `hashes`: `hashlib.new()` names that take no parameters (the shake_* ones want a
#: length), of `hashlib.algorithms_guaranteed`
_ALGORITHMS = tuple(sorted(a for a in hashlib.algorithms_guaranteed if not a.startswith("shake_")))


class NotAcceptable(DomainError):
    """The request's Accept refuses `application/vnd.pypi.upload.v2+json` (406)."""


class UnsupportedMediaType(DomainError):
    """A body that is not the media type the route reads (415)."""


class Unprocessable(DomainError):
    """A file upload mechanism the index does not offer for this file (PEP 694: 422)."""


def _own_statuses() -> dict[type[Exception], int]:
    """The statuses of this API's own refusals (the rest: `web.errors.STATUSES`)."""
    from serverless_pypi.index.sessions import UnsupportedMechanism

    return {
        NotAcceptable: 406,
        UnsupportedMediaType: 415,
        Unprocessable: 422,
        UnsupportedMechanism: 422,  # PEP 694: a mechanism the index does not offer
    }


class _Problem(Exception):
    """A refusal with the member of the request it is about (`errors[].source`)."""

    def __init__(self, error: DomainError | StoreError, source: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.source = source


def _problem(error: DomainError | StoreError, source: str, location: str | None) -> Response:
    """The error answer: PEP 694's body plus RFC 9457's members, in the API's media type."""
    own = [s for cls, s in _own_statuses().items() if isinstance(error, cls)]
    status, headers = (own[0], {}) if own else status_of(error)
    message = message_of(error)
    body = {
        "meta": _META,
        "message": message,
        "errors": [{"source": source, "message": message}],
        # RFC 9457 section 4.2.1: "about:blank", the title is the status's phrase
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": message,
    }
    if location is not None:
        headers = {**headers, "Location": location}
    return _json(status, body, headers)


def _json(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        status,
        {"Content-Type": MEDIA_TYPE, "Cache-Control": "no-store", **(headers or {})},
        json.dumps(body, indent=2, sort_keys=True).encode() + b"\n",
    )


def _accepts(request: Request) -> bool:
    """Whether Accept allows the API's media type (RFC 9110 section 12.5.1; PEP 691's
    server-driven negotiation, which PEP 694 keeps): none at all accepts everything."""
    ranges = parse_accept(request.headers.get("accept"))
    best = (0, 0.0)
    for media in (MEDIA_TYPE, _LATEST):
        for media_range in ranges:
            specificity = media_range.matches(media)
            if specificity > best[0]:
                best = (specificity, media_range.q)
    return best[1] > 0


def _origin(request: Request) -> str:
    """`scheme://host` the client sent the request to (RFC 9110 section 7.2: Host)."""
    host = (request.headers.get("host") or "").strip().lower()
    try:
        parts = urlsplit("//" + host)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if not host or parts is None or not parts.hostname or parts.netloc != host:
        raise InvalidRequest("The request has no usable Host header: links name it.")
    if any(c in host for c in "/?#@\\ "):
        raise InvalidRequest("The request has no usable Host header: links name it.")
    return f"{request.scheme}://{host}"


class _Links:
    """The absolute URLs of one request's sessions: scheme, host and the index's base path."""

    def __init__(self, request: Request) -> None:
        base = request.base if request.base.endswith("/") else request.base + "/"
        self.index = _origin(request) + base

    def session(self, sid: str) -> str:
        return f"{self.index}{SESSION_ROOT}/{sid}/"

    def stage(self, token: str) -> str:
        # the stage URL is calculable from the session token (PEP 694), documented
        return f"{self.index}{STAGE_ROOT}/{quote(token, safe='')}/"

    def file(self, sid: str, filename: str) -> str:
        return f"{self.session(sid)}files/{quote(filename, safe='')}"


def _read_json(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON body, checked for the media type and `meta.api-version`."""
    raw = _read_body(request, MAX_JSON_BODY)
    content_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if optional and not raw.strip():
        return {}  # publish and complete need nothing but the request
    if content_type not in (MEDIA_TYPE, _LATEST):
        raise _Problem(
            UnsupportedMediaType(
                f"The body must be {MEDIA_TYPE} (PEP 694), not {content_type or 'untyped'!r}."
            ),
            "Content-Type",
        )
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _Problem(InvalidRequest("The body is not valid JSON."), "body") from None
    if not isinstance(body, dict):
        raise _Problem(InvalidRequest("The body must be a JSON object."), "body")
    meta = body.get("meta")
    version = meta.get("api-version") if isinstance(meta, dict) else None
    if not isinstance(version, str):
        raise _Problem(
            InvalidRequest('The body needs "meta": {"api-version": "2.0"} (PEP 694).'),
            "meta.api-version",
        )
    if version.split(".", 1)[0] != API_VERSION.split(".", 1)[0]:
        raise _Problem(
            InvalidRequest(
                f"meta.api-version {version!r} is not this API's: the index speaks "
                f"{API_VERSION} (the major version must match the Content-Type's v2)."
            ),
            "meta.api-version",
        )
    return body


def _read_body(request: Request, limit: int) -> bytes:
    """The request's body, at most `limit` bytes (TooLarge past it)."""
    if request.stream is None:
        if len(request.body) > limit:
            raise _Problem(TooLarge(f"The body is larger than {limit} bytes."), "body")
        return request.body
    length = _content_length(request)
    if length > limit:
        raise _Problem(TooLarge(f"The body is larger than {limit} bytes."), "body")
    data = request.stream.read(length) if length else b""
    if len(data) != length:
        raise _Problem(InvalidRequest("The body ends before its Content-Length."), "body")
    return data


def _content_length(request: Request) -> int:
    raw = (request.headers.get("content-length") or "").strip()
    if not raw:
        raise _Problem(LengthRequired("The request needs a Content-Length header."), "body")
    # RFC 9110 section 8.6: Content-Length = 1*DIGIT
    if not (raw.isascii() and raw.isdigit()):
        raise _Problem(InvalidRequest(f"The Content-Length {raw[:40]!r} is not a number."), "body")
    return int(raw)


def _string(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise _Problem(InvalidRequest(f"The body needs {key!r}, a non-empty string."), key)
    return value


def _integer(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Problem(InvalidRequest(f"The body needs {key!r}, a whole number."), key)
    return value


def _hashes(body: Mapping[str, Any]) -> dict[str, str]:
    """PEP 694 `hashes`: `hashlib` names without parameters to hex digests; sha256 is
    required here (the pages list it), the others are checked at completion too."""
    given = body.get("hashes")
    if not isinstance(given, dict) or not given:
        raise _Problem(InvalidRequest('The body needs "hashes", e.g. {"sha256": "..."}.'), "hashes")
    hashes: dict[str, str] = {}
    for name, value in given.items():
        source = f"hashes.{name}"
        if name not in _ALGORITHMS:
            raise _Problem(
                InvalidRequest(f"Unknown hash {name!r}: use one of {', '.join(_ALGORITHMS)}."),
                source,
            )
        digits = hashlib.new(name).digest_size * 2
        if not isinstance(value, str) or len(value) != digits or not _HEX.fullmatch(value):
            raise _Problem(
                InvalidRequest(f"The {name} digest must be {digits} hexadecimal digits."), source
            )
        hashes[name] = value.lower()
    if "sha256" not in hashes:
        raise _Problem(
            InvalidRequest("This index requires a sha256 digest of each file."), "hashes"
        )
    return hashes


def _seconds_left(expires: str) -> int:
    try:
        moment = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(int((moment - datetime.now(UTC)).total_seconds()), 0)


#: checks the request's credentials for a project (None: any): Forbidden to refuse
Authorize = Callable[[Request, NormalizedName | None], None]
#: checks that the request's token covers the PEP 752 namespace of the project: Conflict
ClaimNamespace = Callable[[Request, NormalizedName, str], None]


class SessionRoutes:
    """The session API: `__call__(request, segments)` answers a request whose path is the
    session root plus `segments` (decoded, as `web.paths.split_path` gives them).

    `front_limit`: the largest body the front carries (Lambda's 6 MB payload, base64): a file
    larger than it cannot use http-post-bytes there.
    """

    def __init__(
        self,
        sessions: Callable[[], Sessions],
        authorize: Authorize,
        *,
        max_file_size: int,
        front_limit: int | None = None,
        policies: Callable[[], Policy] | None = None,
        claim_namespace: ClaimNamespace | None = None,
    ) -> None:
        self.sessions = sessions
        self.authorize = authorize
        self.max_file_size = max_file_size
        self.front_limit = front_limit
        self.policies = policies
        self.claim_namespace = claim_namespace

    # -- dispatch --------------------------------------------------------------------------
    def __call__(self, request: Request, segments: list[str]) -> Response:
        location: str | None = None
        source = "request"
        try:
            if not _accepts(request):
                raise _Problem(
                    NotAcceptable(f"This API answers {MEDIA_TYPE} only (PEP 694)."), "Accept"
                )
            links = _Links(request)
            # credentials first, as legacy uploads: a stranger learns nothing about sessions
            self.authorize(request, None)
            return self._route(request, links, segments)
        except _Problem as e:
            error, source = e.error, e.source
        except (DomainError, StoreError) as e:
            error = e
        if isinstance(error, _Located):
            location = error.location
        return _problem(error, source, location)

    def _route(self, request: Request, links: _Links, segments: list[str]) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        if segments in ([], [""]):
            _allow(method, ("POST",))
            return self._create(request, links)
        sid, rest = segments[0], segments[1:]
        if rest == [""]:
            _allow(method, ("GET", "DELETE"))
            return (
                self._status(request, links, sid) if method == "GET" else self._cancel(request, sid)
            )
        if rest in (["publish"], ["extend"]):
            _allow(method, ("POST",))
            if rest == ["publish"]:
                return self._publish(request, links, sid)
            return self._extend(request, links, sid)
        if rest == ["files", ""]:
            _allow(method, ("POST",))
            return self._create_file(request, links, sid)
        if len(rest) in (2, 3) and rest[0] == "files" and rest[1]:
            return self._file_route(request, links, sid, rest[1], rest[2:], method)
        raise NoSuchPath("Not found: no such session URL (follow the links of the answers).")

    def _file_route(  # noqa: PLR0917 - the parts of one route
        self,
        request: Request,
        links: _Links,
        sid: str,
        filename: str,
        action: list[str],
        method: str,
    ) -> Response:
        if not action:
            _allow(method, ("GET", "DELETE"))
            if method == "GET":
                return self._file_status(request, links, sid, filename)
            return self._remove_file(request, sid, filename)
        handlers = {
            "complete": self._complete,
            "extend": self._extend_file,
            "bytes": self._bytes,
        }
        if action[0] in handlers:
            _allow(method, ("POST",))
            return handlers[action[0]](request, links, sid, filename)
        if action[0] == "parts":
            _allow(method, ("GET", "POST"))
            if method == "GET":
                return self._parts(request, sid, filename)
            return self._part_urls(request, sid, filename)
        raise NoSuchPath("Not found: no such file upload session URL.")

    # -- sessions ------------------------------------------------------------------------
    def _session(self, request: Request, sid: str) -> UploadSession:
        """The session `sid` (404 when unknown, canceled or expired), once the request may
        upload to its project (PEP 694: checked at every request)."""
        session = self.sessions().get(sid)
        self.authorize(request, session.name)
        return session

    def _create(self, request: Request, links: _Links) -> Response:
        body = _read_json(request)
        try:
            name = normalize_project_name(_string(body, "name"))
        except InvalidProjectName as e:
            raise _Problem(InvalidRequest(f"Invalid project name: {e}."), "name") from None
        raw_version = _string(body, "version")
        try:
            version = str(Version(raw_version))
        except InvalidVersion:
            raise _Problem(
                InvalidRequest(f"Invalid version {raw_version!r} (PEP 440)."), "version"
            ) from None
        self.authorize(request, name)
        self._check_policy(request, name)
        from serverless_pypi.index.sessions import SessionConflict

        try:
            session, _token = self.sessions().create(name, version)
        except SessionConflict as e:
            raise _Located(e.message, self._open_session(links, e.session_id)) from None
        body = self._session_body(links, session)
        return _json(201, body, {"Location": links.session(session.id)})

    def _open_session(self, links: _Links, sid: str) -> str | None:
        """The URL of session `sid` while it is open (PEP 694: a second create answers 409
        with its Location, to resume it); None for a release published already."""
        found = self.sessions().find(sid) if sid else None
        if found is None or not found.alive(datetime.now(UTC)):
            return None
        return links.session(sid)

    def _status(self, request: Request, links: _Links, sid: str) -> Response:
        return _json(200, self._session_body(links, self._session(request, sid)))

    def _cancel(self, request: Request, sid: str) -> Response:
        self._session(request, sid)
        self.sessions().cancel(sid)
        return Response(204, {"Cache-Control": "no-store"})

    def _extend(self, request: Request, links: _Links, sid: str) -> Response:
        self._session(request, sid)
        seconds = _extend_for(_read_json(request))
        session = self.sessions().extend(sid, seconds)
        return _json(200, self._session_body(links, session))

    def _publish(self, request: Request, links: _Links, sid: str) -> Response:
        session = self._session(request, sid)
        _read_json(request, optional=True)
        self._check_policy(request, session.name)
        # every file complete (else 409), then all at once (`index.release`); a failure
        # leaves the session pending and its files staged: publishing again resumes
        published, _results = self.sessions().publish(sid)
        return _json(201, self._session_body(links, published), {"Location": links.session(sid)})

    def _check_policy(self, request: Request, project: NormalizedName) -> None:
        """As a legacy upload: the project's status (PEP 792, 403) and its namespace (PEP
        752: the token must cover it, 409)."""
        if self.policies is None:
            return
        from serverless_pypi.index.publish import check_attestations, check_status

        policy = self.policies()
        check_status(policy, project)
        # PEP 740: sessions carry no attestations (yet): a project that requires them is
        # refused before any byte is sent, and again at publish
        check_attestations(policy, project)
        namespace = policy.namespace_of(project)
        if namespace is None:
            return
        if self.claim_namespace is None:
            raise Conflict(f"The project {project!r} is in the namespace {namespace!r} (PEP 752).")
        self.claim_namespace(request, project, namespace)

    def _mechanisms(self) -> list[str]:
        # the server's preference first: the S3 mechanism carries any size on any front
        return self.sessions().mechanisms()

    def _session_body(self, links: _Links, session: UploadSession) -> dict[str, Any]:
        """PEP 694's publishing session body. The session token and the stage link are in
        it while the session is open (pending or processing), to every request authorized
        for the project: PEP 694 has another publisher learn the stage by repeating the
        create (409, Location, this body); a published session has no stage."""
        own = links.session(session.id)
        body: dict[str, Any] = {
            "meta": _META,
            "links": {
                "upload": own + "files/",
                "session": own,
                "publish": own + "publish",
                "extend": own + "extend",
            },
            "mechanisms": self._mechanisms(),
            "expires-at": session.expires,
            "status": session.status,
            "files": {
                name: {
                    "status": staged.status,
                    "link": links.file(session.id, name),
                    **({"notices": [staged.problem]} if staged.problem else {}),
                }
                for name, staged in sorted(session.files.items())
            },
            "notices": [],
        }
        if session.alive(datetime.now(UTC)):
            body["session-token"] = session.token
            body["links"]["stage"] = links.stage(session.token)
        return body

    # -- file upload sessions ---------------------------------------------------------------
    def _create_file(self, request: Request, links: _Links, sid: str) -> Response:
        session = self._session(request, sid)
        body = _read_json(request)
        filename = _string(body, "filename")
        self._check_filename(session, filename)
        size = _integer(body, "size")
        if size <= 0:
            raise _Problem(InvalidRequest("The size must be more than 0 bytes."), "size")
        if size > self.max_file_size:
            raise _Problem(
                TooLarge(
                    f"The file is larger than this index takes ({self.max_file_size} bytes, "
                    "UPLOAD_SESSION_MAX_FILE_SIZE)."
                ),
                "size",
            )
        hashes = _hashes(body)
        mechanism = _string(body, "mechanism")
        self._check_mechanism(mechanism, size)
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, str):
            raise _Problem(InvalidRequest("The metadata must be a string."), "metadata")
        staged = self.sessions().add_file(sid, filename, size, hashes, mechanism)
        answer = self._file_body(links, session, staged)
        return _json(
            202,
            answer,
            {"Location": links.file(sid, filename), "Retry-After": RETRY_AFTER},
        )

    @staticmethod
    def _check_filename(session: UploadSession, filename: str) -> None:
        """The legacy upload's rules (`check_publishable_filename`), and a file of the
        session's release."""
        try:
            dist = check_publishable_filename(filename)
        except InvalidFilename as e:
            raise _Problem(InvalidRequest(f"Invalid file name: {e}."), "filename") from None
        if dist.project != session.name or dist.version != Version(session.version):
            raise _Problem(
                InvalidRequest(
                    f"{filename!r} is not a file of this session's release "
                    f"({session.name} {session.version})."
                ),
                "filename",
            )

    def _check_mechanism(self, mechanism: str, size: int) -> None:
        offered = self._mechanisms()
        if mechanism not in offered:
            raise _Problem(
                Unprocessable(
                    f"The mechanism {mechanism!r} is not offered here: use one of "
                    f"{', '.join(offered)}."
                ),
                "mechanism",
            )
        if mechanism == POST_BYTES and self.front_limit is not None and size > self.front_limit:
            raise _Problem(
                Unprocessable(
                    f"http-post-bytes carries at most {self.front_limit} bytes through this "
                    f"front (API Gateway and Lambda: a 6 MB payload, base64): use {S3_MECHANISM}"
                    " (`serverless-pypi upload` does)."
                ),
                "mechanism",
            )

    def _file_body(
        self, links: _Links, session: UploadSession, staged: StagedFile
    ) -> dict[str, Any]:
        """PEP 694's file upload session body."""
        own = links.file(session.id, staged.filename)
        mechanism: dict[str, Any] = {"identifier": staged.mechanism}
        if staged.mechanism == POST_BYTES:
            mechanism["file_url"] = own + "/bytes"
        elif staged.mechanism == S3_MECHANISM:
            mechanism.update(
                {
                    "part-size": staged.part_size,
                    "part-count": staged.part_count,
                    "parts_url": own + "/parts",
                    "url-expires-in": min(MAX_URL_LIFETIME, _seconds_left(session.expires)),
                }
            )
        return {
            "meta": _META,
            "links": {
                "publishing-session": links.session(session.id),
                "file-upload-session": own,
                "complete": own + "/complete",
                "extend": own + "/extend",
            },
            "status": staged.status,
            "expires-at": session.expires,
            "mechanism": mechanism,
            "notices": [staged.problem] if staged.problem else [],
            # what the create request declared (members of ours): a client resuming compares
            "filename": staged.filename,
            "size": staged.size,
            "hashes": dict(staged.hashes),
        }

    def _staged(self, session: UploadSession, filename: str) -> StagedFile:
        staged = session.files.get(filename)
        if staged is None:
            raise NoSuchPath(f"The session has no file {filename!r}.")
        return staged

    def _file_status(self, request: Request, links: _Links, sid: str, filename: str) -> Response:
        session = self._session(request, sid)
        body = self._file_body(links, session, self._staged(session, filename))
        return _json(200, body, {"Retry-After": RETRY_AFTER})

    def _remove_file(self, request: Request, sid: str, filename: str) -> Response:
        self._staged(self._session(request, sid), filename)
        self.sessions().remove_file(sid, filename)
        return Response(204, {"Cache-Control": "no-store"})

    def _complete(self, request: Request, links: _Links, sid: str, filename: str) -> Response:
        session = self._session(request, sid)
        self._staged(session, filename)
        _read_json(request, optional=True)
        try:
            staged = self.sessions().complete_file(sid, filename)
        except InvalidRequest as e:
            raise _Problem(e, "file") from None
        body = self._file_body(links, session, staged)
        return _json(201, body, {"Location": links.file(sid, filename)})

    def _extend_file(self, request: Request, links: _Links, sid: str, filename: str) -> Response:
        """A file upload session lives as long as its publishing session: extending one
        extends the other."""
        self._staged(self._session(request, sid), filename)
        seconds = _extend_for(_read_json(request))
        staged = self.sessions().extend_file(sid, filename, seconds)
        return _json(200, self._file_body(links, self.sessions().get(sid), staged))

    def _bytes(self, request: Request, links: _Links, sid: str, filename: str) -> Response:
        """http-post-bytes (PEP 694): the file's bytes as the body, in one request."""
        session = self._session(request, sid)
        staged = self._staged(session, filename)
        if staged.mechanism != POST_BYTES:
            raise Conflict(f"{filename!r} is uploaded with {staged.mechanism}, not {POST_BYTES}.")
        content_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip()
        if content_type.lower() != "application/octet-stream":
            raise _Problem(
                UnsupportedMediaType(
                    "http-post-bytes sends the file as application/octet-stream, not "
                    f"{content_type or 'untyped'!r}."
                ),
                "Content-Type",
            )
        stream: IO[bytes]
        if request.stream is None:
            length, stream = len(request.body), io.BytesIO(request.body)
        else:
            length, stream = _content_length(request), request.stream
        if length != staged.size:
            raise _Problem(
                InvalidRequest(
                    f"The body is {length} bytes; the file upload session declared {staged.size}."
                ),
                "size",
            )
        self.sessions().put_bytes(sid, filename, stream, length)
        return Response(204, {"Cache-Control": "no-store"})

    def _check_s3(self, staged: StagedFile) -> None:
        if staged.mechanism != S3_MECHANISM:
            raise Conflict(
                f"{staged.filename!r} is uploaded with {staged.mechanism}, not {S3_MECHANISM}."
            )

    def _part_urls(self, request: Request, sid: str, filename: str) -> Response:
        session = self._session(request, sid)
        staged = self._staged(session, filename)
        self._check_s3(staged)
        numbers = body_parts(_read_json(request), staged.part_count)
        expires = min(MAX_URL_LIFETIME, _seconds_left(session.expires))
        if expires <= 0:
            raise NoSuchPath("The session has expired.")
        urls = self.sessions().part_urls(sid, filename, numbers, expires)
        parts = [{"number": number, "url": url} for number, url in urls]
        return _json(200, {"meta": _META, "parts": parts})

    def _parts(self, request: Request, sid: str, filename: str) -> Response:
        session = self._session(request, sid)
        self._check_s3(self._staged(session, filename))
        held = self.sessions().parts(sid, filename)
        parts = [{"number": n, "size": size, "etag": etag} for n, size, etag in held]
        return _json(200, {"meta": _META, "parts": parts})


class _Located(Conflict):
    """A 409 that names the resource it conflicts with (PEP 694: Location of the session)."""

    def __init__(self, message: str, location: str | None) -> None:
        super().__init__(message)
        self.location = location


def body_parts(body: Mapping[str, Any], count: int) -> list[int]:
    """The `parts` a `POST parts_url` asks for: 1 to MAX_PARTS_PER_REQUEST distinct part
    numbers of the file (1 to `count`)."""
    numbers = body.get("parts")
    if (
        not isinstance(numbers, list)
        or not numbers
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers)
    ):
        raise _Problem(InvalidRequest('The body needs "parts": a list of part numbers.'), "parts")
    if len(numbers) > MAX_PARTS_PER_REQUEST:
        raise _Problem(
            InvalidRequest(f"Ask for at most {MAX_PARTS_PER_REQUEST} part URLs at a time."), "parts"
        )
    wrong = [n for n in numbers if not 1 <= n <= count]
    if wrong:
        raise _Problem(
            InvalidRequest(f"Part numbers run from 1 to {count} for this file, not {wrong[0]}."),
            "parts",
        )
    return sorted(set(numbers))


def _extend_for(body: Mapping[str, Any]) -> int:
    seconds = _integer(body, "extend-for")
    if seconds < 0:
        raise _Problem(
            InvalidRequest("extend-for is a number of seconds, at least 0."), "extend-for"
        )
    return seconds


def _allow(method: str, allowed: tuple[str, ...]) -> None:
    if method not in allowed:
        shown = (*allowed, "HEAD") if "GET" in allowed else allowed
        raise MethodNotAllowed(f"{method} is not allowed here.", shown)
