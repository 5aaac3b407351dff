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
    POST   "<sid>/files/<file>/attestations" PEP 740 attestations, before complete (204)

Bodies are `application/vnd.pypi.upload.v2+json` with `"meta": {"api-version": "2.0"}`:
another Content-Type is answered 415, another major version in `meta` 400, an Accept that
refuses the media type 406. Errors carry the PEP's `message` and `errors` and the RFC 9457
members (`type`, `title`, `status`, `detail`) in one object, in the same media type.

Every request is authorized as a legacy upload to the session's project, at each request
(PEP 694 "Authentication and Authorization": a session is not tied to the credentials that
created it). What is stored and how is `serverless_pypi.index.sessions`; publishing is
`serverless_pypi.index.release.publish_release`.

This module is the publishing session routes and the dispatch (`SessionRoutes`); the file
upload session routes are `web.session_files`; the media type, the API's refusals and the
JSON and error answers are `web.session_wire`; reading requests is `web.session_requests`;
the session and file upload session bodies with their links are `web.session_bodies`. The
wire format's public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from serverless_pypi.core.errors import DomainError, InvalidRequest, NoSuchPath
from serverless_pypi.core.http import Request, Response
from serverless_pypi.core.names import InvalidProjectName, NormalizedName, normalize_project_name
from serverless_pypi.storage.base import StoreError
from serverless_pypi.web.session_bodies import Links, session_body
from serverless_pypi.web.session_files import FileSessionRoutes
from serverless_pypi.web.session_requests import allow_method, extend_for, read_json, string_of
from serverless_pypi.web.session_wire import (
    API_VERSION,
    MAX_JSON_BODY,
    MAX_PARTS_PER_REQUEST,
    MEDIA_TYPE,
    POST_BYTES,
    S3_MECHANISM,
    Located,
    NotAcceptable,
    Problem,
    Unprocessable,
    UnsupportedMediaType,
    accepts,
    json_answer,
    problem_answer,
)
from serverless_pypi.web.upload import Attest, Authorize, ClaimNamespace, check_upload_policy

if TYPE_CHECKING:
    from serverless_pypi.core.policy import Policy
    from serverless_pypi.index.sessions import Sessions, UploadSession

__all__ = [
    "API_VERSION",
    "MAX_JSON_BODY",
    "MAX_PARTS_PER_REQUEST",
    "MEDIA_TYPE",
    "POST_BYTES",
    "S3_MECHANISM",
    "Authorize",
    "ClaimNamespace",
    "NotAcceptable",
    "SessionRoutes",
    "Unprocessable",
    "UnsupportedMediaType",
]


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
        attest: Attest | None = None,
    ) -> None:
        self.sessions = sessions
        self.authorize = authorize
        self.max_file_size = max_file_size
        self.front_limit = front_limit
        self.policies = policies
        self.claim_namespace = claim_namespace
        self.files = FileSessionRoutes(
            sessions,
            self._session,
            max_file_size=max_file_size,
            front_limit=front_limit,
            attest=attest,
        )

    # -- dispatch --------------------------------------------------------------------------
    def __call__(self, request: Request, segments: list[str]) -> Response:
        location: str | None = None
        source = "request"
        try:
            if not accepts(request):
                raise Problem(
                    NotAcceptable(f"This API answers {MEDIA_TYPE} only (PEP 694)."), "Accept"
                )
            links = Links(request)
            # credentials first, as legacy uploads: a stranger learns nothing about sessions
            self.authorize(request, None)
            return self._route(request, links, segments)
        except Problem as e:
            error, source = e.error, e.source
        except (DomainError, StoreError) as e:
            error = e
        if isinstance(error, Located):
            location = error.location
        return problem_answer(error, source, location)

    def _route(self, request: Request, links: Links, segments: list[str]) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        if segments in ([], [""]):
            allow_method(method, ("POST",))
            return self._create(request, links)
        sid, rest = segments[0], segments[1:]
        if rest == [""]:
            allow_method(method, ("GET", "DELETE"))
            return (
                self._status(request, links, sid) if method == "GET" else self._cancel(request, sid)
            )
        if rest in (["publish"], ["extend"]):
            allow_method(method, ("POST",))
            if rest == ["publish"]:
                return self._publish(request, links, sid)
            return self._extend(request, links, sid)
        if rest == ["files", ""]:
            allow_method(method, ("POST",))
            return self.files.create(request, links, sid)
        if len(rest) in (2, 3) and rest[0] == "files" and rest[1]:
            return self.files.route(request, links, sid, rest[1], rest[2:], method)
        raise NoSuchPath("Not found: no such session URL (follow the links of the answers).")

    # -- sessions ------------------------------------------------------------------------
    def _session(self, request: Request, sid: str) -> UploadSession:
        """The session `sid` (404 when unknown, canceled or expired), once the request may
        upload to its project (PEP 694: checked at every request)."""
        session = self.sessions().get(sid)
        self.authorize(request, session.name)
        return session

    def _create(self, request: Request, links: Links) -> Response:
        body = read_json(request)
        try:
            name = normalize_project_name(string_of(body, "name"))
        except InvalidProjectName as e:
            raise Problem(InvalidRequest(f"Invalid project name: {e}."), "name") from None
        raw_version = string_of(body, "version")
        try:
            version = str(Version(raw_version))
        except InvalidVersion:
            raise Problem(
                InvalidRequest(f"Invalid version {raw_version!r} (PEP 440)."), "version"
            ) from None
        self.authorize(request, name)
        self._check_policy(request, name)
        from serverless_pypi.index.sessions import SessionConflict

        try:
            session, _token = self.sessions().create(name, version)
        except SessionConflict as e:
            raise Located(e.message, self._open_session(links, e.session_id)) from None
        body = session_body(links, session, self._mechanisms())
        return json_answer(201, body, {"Location": links.session(session.id)})

    def _open_session(self, links: Links, sid: str) -> str | None:
        """The URL of session `sid` while it is open (PEP 694: a second create answers 409
        with its Location, to resume it); None for a release published already."""
        found = self.sessions().find(sid) if sid else None
        if found is None or not found.alive(datetime.now(UTC)):
            return None
        return links.session(sid)

    def _status(self, request: Request, links: Links, sid: str) -> Response:
        return json_answer(
            200, session_body(links, self._session(request, sid), self._mechanisms())
        )

    def _cancel(self, request: Request, sid: str) -> Response:
        self._session(request, sid)
        self.sessions().cancel(sid)
        return Response(204, {"Cache-Control": "no-store"})

    def _extend(self, request: Request, links: Links, sid: str) -> Response:
        self._session(request, sid)
        seconds = extend_for(read_json(request))
        session = self.sessions().extend(sid, seconds)
        return json_answer(200, session_body(links, session, self._mechanisms()))

    def _publish(self, request: Request, links: Links, sid: str) -> Response:
        session = self._session(request, sid)
        read_json(request, optional=True)
        self._check_policy(request, session.name)
        # every file complete (else 409), then all at once (`index.release`); a failure
        # leaves the session pending and its files staged: publishing again resumes
        published, _results = self.sessions().publish(sid, self._attested)
        return json_answer(
            201,
            session_body(links, published, self._mechanisms()),
            {"Location": links.session(sid)},
        )

    def _check_policy(self, request: Request, project: NormalizedName) -> None:
        """As a legacy upload (`web.upload.check_upload_policy`): the project's status (PEP
        792, 403) and its namespace (PEP 752: the token must cover it, 409)."""
        if self.policies is not None:
            check_upload_policy(self.policies(), self.claim_namespace, request, project)

    def _attested(self, session: UploadSession) -> None:
        """PEP 740 at publish: a project that requires attestations takes the release only
        when every file has verified attestations (posted to its `attestations_url`): 400
        naming the files without, as a legacy upload without attestations is refused."""
        if self.policies is None:
            return
        from serverless_pypi.index.publish import check_attestations

        missing = [n for n, f in session.files.items() if not f.provenance_sha256]
        check_attestations(self.policies(), session.name, missing)

    def _mechanisms(self) -> list[str]:
        # the server's preference first: the S3 mechanism carries any size on any front
        return self.sessions().mechanisms()
