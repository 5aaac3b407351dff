"""The application: one function from a `Request` to a `Response`, the same on every front.

Routes (paths below the index root, `/simple/` locally):

    ""                   project list            GET, HEAD (POST: uploads)
    "<project>"          301 to "<project>/"
    "<project>/"         project page            GET, HEAD
    "<project>/<file>"   the file                GET, HEAD (302 to S3, or the bytes)
    "<file>.metadata"    PEP 658 core metadata   GET, HEAD
    "<file>.provenance"  PEP 740 provenance      GET, HEAD (JSON; files uploaded with attestations)
    "namespaces"         PEP 752 namespace list  GET, HEAD (JSON; while the policy has any)
    "namespace/<ns>"     PEP 752 namespace       GET, HEAD (JSON; while the policy has any)
    "_upload/..."        PEP 694 Upload 2.0 sessions (`serverless_pypi.web.sessions`)
    "_stage/<token>/..." a session's stage: this whole index plus its staged files

At the host root, outside the index (full paths: `serverless_pypi.web.oidc`):

    "/_/oidc/audience", "/_/oidc/mint-token", "/_/oidc/burn-token"   trusted publishing
    "/.well-known/pytp"                                               PEP 807 discovery

What it serves comes from a `Repository` (`serverless_pypi.repository`); the application
negotiates the format, checks access, renders a model when it gets one, sets cache headers,
and answers errors through the one table in `serverless_pypi.web.errors`. It never builds a
storage key.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from serverless_pypi.core.config import Settings
from serverless_pypi.core.errors import (
    DomainError,
    InvalidRequest,
    MethodNotAllowed,
    NoSuchPath,
    NoSuchProject,
)
from serverless_pypi.core.http import (
    GZIP_MIN_SIZE,
    IfNoneMatch,
    InvalidConditional,
    Request,
    Response,
    accepts_gzip,
    compress,
    encoding_tag,
    http_date,
    make_etag,
    parse_if_none_match,
    redirect,
)
from serverless_pypi.core.names import (
    InvalidFilename,
    InvalidProjectName,
    NormalizedName,
    check_filename,
    normalize_project_name,
)
from serverless_pypi.core.negotiate import Format, choose_format
from serverless_pypi.core.render import project_page, render_html, render_json, root_page
from serverless_pypi.repository.base import (
    PageUnchanged,
    Redirect,
    Repository,
    StoredPage,
)
from serverless_pypi.storage.base import StoreError
from serverless_pypi.web.errors import FailureLog, error_response
from serverless_pypi.web.paths import (
    HOST_ROOT_PATHS,
    NAMESPACE_LIST,
    SESSION_ROOT,
    STAGE_ROOT,
    UPLOAD_PATHS,
    namespace_route,
    split_path,
)

__all__ = ["AccessCheck", "Application", "HostRootHandler", "UploadHandler", "cap_cache_control"]

READ_METHODS = frozenset({"GET", "HEAD"})
_VARY = "Accept, Accept-Encoding"
_READ_ONLY = ("GET", "HEAD")

#: an upload handler: takes the request, answers it (see `serverless_pypi.web.upload`);
#: refusals are raised (DomainError)
UploadHandler = Callable[[Request], Response]
#: the host-root routes (`serverless_pypi.web.oidc.OidcRoutes`): answers every request whose
#: path is one of HOST_ROOT_PATHS, errors included
HostRootHandler = Callable[[Request], Response]
#: the Upload 2.0 session API (`serverless_pypi.web.sessions.SessionRoutes`): answers a
#: request below `_upload/` (the segments after it), errors included
SessionHandler = Callable[[Request, list[str]], Response]
#: the stage of the open session a session token names (`repository.stage`); raises
#: NoSuchPath for an unknown token or a session no longer open
StageLookup = Callable[[str], Repository]
#: an access check for a read of a project (None: the project list): returns to let the
#: request through, raises Unauthenticated or Forbidden to refuse it
AccessCheck = Callable[[Request, str, NormalizedName | None], None]


class Namespaced(Protocol):
    """What the application reads from the policy in force (`serverless_pypi.core.policy`)."""

    @property
    def namespaces(self) -> tuple[str, ...]:
        """The PEP 752 namespaces reserved on this index, normalized."""
        ...


#: the policy in force, read at each request (a revalidating cache: `index.policies`)
PolicySource = Callable[[], Namespaced]


#: RFC 9111 section 5.2.2: how long a cache may use a response without asking (the shared
#: caches' s-maxage, everyone's max-age); RFC 5861: how long after that it may still use it
_LIFETIMES = ("max-age", "s-maxage")
_STALE = ("stale-while-revalidate", "stale-if-error")
_NOT_STORED = ("no-store", "no-cache")


def cap_cache_control(value: str, seconds: int) -> str:
    """The Cache-Control `value` with nothing that lets a cache keep the response longer than
    `seconds` from now: max-age and s-maxage at most `seconds`, the RFC 5861 stale windows
    within what is left after them, and a max-age added when `value` has no lifetime (RFC
    9111 section 4.2.2: a cache may otherwise guess one). `max-age=0` stays as it is."""
    directives = [d.strip() for d in value.split(",") if d.strip()]
    names = [d.partition("=")[0].strip().lower() for d in directives]
    capped: list[str] = []
    longest = 0
    for directive, name in zip(directives, names, strict=True):
        given = _seconds_of(directive) if name in _LIFETIMES else None
        if given is not None:
            longest = max(longest, min(given, seconds))
        capped.append(f"{name}={seconds}" if given is not None and given > seconds else directive)
    for index, name in enumerate(names):
        given = _seconds_of(capped[index]) if name in _STALE else None
        if given is not None and longest + given > seconds:
            capped[index] = f"{name}={max(seconds - longest, 0)}"
    if not any(n in _LIFETIMES or n in _NOT_STORED for n in names):
        capped.append(f"max-age={seconds}")
    return ", ".join(capped)


def _seconds_of(directive: str) -> int | None:
    """The delta-seconds of a `name=N` directive (quoted or not), None when it has none."""
    argument = directive.partition("=")[2].strip().strip('"')
    return int(argument) if argument.isascii() and argument.isdigit() else None


def _seconds_until(moment: datetime) -> int:
    """Whole seconds from now until `moment` (0 when it has passed)."""
    return max(int((moment - datetime.now(UTC)).total_seconds()), 0)


def _if_none_match(request: Request) -> IfNoneMatch | None:
    """The request's If-None-Match, parsed; 400 when it is malformed or oversized."""
    try:
        return parse_if_none_match(request.headers.get("if-none-match"))
    except InvalidConditional as e:
        raise InvalidRequest(f"Bad If-None-Match header: {e}.") from None


class Application:
    def __init__(
        self,
        repository: Repository,
        settings: Settings | None = None,
        *,
        upload: UploadHandler | None = None,
        access: AccessCheck | None = None,
        policies: PolicySource | None = None,
        host_root: HostRootHandler | None = None,
        sessions: SessionHandler | None = None,
        stage: StageLookup | None = None,
    ) -> None:
        self.repository = repository
        self.host_root = host_root
        self.sessions = sessions
        self.stage = stage
        self.settings = settings or Settings()
        self.upload = upload
        self.access = access
        self.policies = policies
        self._failures = FailureLog()

    # -- entry point ------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        try:
            if request.path in HOST_ROOT_PATHS:
                return self._host_root(request)
            # parsed once: a malformed conditional is refused on every read
            wanted = _if_none_match(request) if request.method in READ_METHODS else None
            return self._dispatch(request, wanted)
        except (DomainError, StoreError) as e:
            self._failures.report(e, request.method, self.repository.location)
            return error_response(e)

    def _dispatch(self, request: Request, wanted: IfNoneMatch | None) -> Response:
        segments = split_path(request.path)
        if segments[0] == SESSION_ROOT and self.sessions is not None:
            return self.sessions(request, segments[1:])
        if segments[0] == STAGE_ROOT and self.stage is not None:
            return self._staged(request, segments, wanted)
        return self._index_route(request, segments, wanted)

    def _index_route(
        self, request: Request, segments: list[str], wanted: IfNoneMatch | None
    ) -> Response:
        """A route of the simple index, and its legacy uploads."""
        if request.method == "POST" and segments in UPLOAD_PATHS:
            if self.upload is None:
                raise MethodNotAllowed("Uploads are not enabled on this index.", _READ_ONLY)
            return self.upload(request)
        if request.method not in READ_METHODS:
            allow = (
                (*_READ_ONLY, "POST") if segments in UPLOAD_PATHS and self.upload else _READ_ONLY
            )
            raise MethodNotAllowed(f"{request.method} is not allowed here.", allow)
        if segments == [""]:
            self._authorize(request, None)
            return self._root(request, wanted)
        namespaces = self._namespaces()
        if namespaces and (segments == NAMESPACE_LIST or namespace_route(segments)):
            self._authorize(request, None)
            return self._namespace(request, wanted, namespaces, namespace_route(segments))
        project = self._project_name(segments[0])
        if len(segments) == 1:
            # PEP 503: every page URL ends in "/"
            return redirect(301, quote(project, safe="") + "/", "max-age=3600")
        if len(segments) == 2 and segments[1] == "":
            if segments[0] != project:
                return redirect(301, "../" + quote(project, safe="") + "/", "max-age=3600")
            self._authorize(request, project)
            return self._project(request, project, wanted)
        if len(segments) == 2:
            self._authorize(request, project)
            return self._file(request, project, segments[1], wanted)
        raise NoSuchPath("Not found: the index has project pages and their files only.")

    def _staged(
        self, request: Request, segments: list[str], wanted: IfNoneMatch | None
    ) -> Response:
        """`_stage/<session token>/<route>`: the route as the session's stage answers it (PEP
        694 stage previews), with the index's read rules; never cached (the stage changes
        while the session is open, and ends with it)."""
        if len(segments) < 2 or not segments[1]:
            raise NoSuchPath("Not found: a stage is at _stage/<session token>/ (PEP 694).")
        if len(segments) == 2:
            return redirect(301, quote(segments[1], safe="") + "/")
        assert self.stage is not None  # dispatched here only with one
        view = Application(
            self.stage(segments[1]), self.settings, access=self.access, policies=self.policies
        )
        route = request.path.split("/", 2)[2]
        response = view._dispatch(dataclasses.replace(request, path=route), wanted)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _host_root(self, request: Request) -> Response:
        """A host-root route (a full path: `web.paths.index_route`): trusted publishing."""
        if self.host_root is None:
            raise NoSuchPath("Not found: trusted publishing is not served by this index.")
        return self.host_root(request)

    def _namespaces(self) -> tuple[str, ...]:
        """The PEP 752 namespaces of the policy in force (none: the PEP is not supported)."""
        return self.policies().namespaces if self.policies is not None else ()

    def _authorize(self, request: Request, project: NormalizedName | None) -> None:
        # before any answer: a download is redirected to a presigned URL only after it passed
        if self.access is not None:
            self.access(request, "read", project)

    @staticmethod
    def _project_name(segment: str) -> NormalizedName:
        try:
            return normalize_project_name(segment)
        except InvalidProjectName as e:
            if not segment:
                raise NoSuchProject(f"Not a project: {e}") from None
            raise InvalidRequest(f"Not a project: {e}") from None

    # -- pages ------------------------------------------------------------------------
    # Each content coding of a page has a strong ETag of its own (RFC 9110 section 8.8.3:
    # `encoding_tag`), so pip and uv (which revalidates strong tags only) both get 304s, and
    # a Last-Modified. If-Modified-Since alone is not evaluated: a change within the second
    # of the previous one (a yank) would be answered 304.
    def _headers(
        self,
        fmt: Format,
        etag: str,
        last_modified: datetime | None = None,
        expires: datetime | None = None,
    ) -> dict[str, str]:
        cache_control = self.settings.cache_control
        if expires is not None:
            # a page that changes by itself then (a file comes of age): no cache keeps it past
            cache_control = cap_cache_control(cache_control, _seconds_until(expires))
        headers = {
            "Content-Type": fmt.content_type,
            "Cache-Control": cache_control,
            "Vary": _VARY,
            "ETag": etag,
        }
        if last_modified is not None:
            headers["Last-Modified"] = http_date(last_modified)
        return headers

    def _page_response(
        self,
        request: Request,
        wanted: IfNoneMatch | None,
        fmt: Format,
        body: bytes,
        *,
        last_modified: datetime | None,
        expires: datetime | None = None,
    ) -> Response:
        """A page rendered for this request, tagged by its bytes."""
        etag = make_etag(body)
        gz = accepts_gzip(request.headers) and len(body) >= GZIP_MIN_SIZE
        headers = self._headers(fmt, encoding_tag(etag, gz), last_modified, expires)
        if wanted is not None and wanted.matches(headers["ETag"]):
            return Response(304, headers)
        if gz:
            headers["Content-Encoding"] = "gzip"
            body = compress(body)
        return Response(200, headers, body)

    def _stored_page(
        self, request: Request, fmt: Format, page: StoredPage, wanted: IfNoneMatch | None
    ) -> Response:
        """A precomputed, gzip-compressed page, passed on as the store holds it."""
        gz = accepts_gzip(request.headers)
        headers = self._headers(fmt, encoding_tag(page.etag, gz), page.last_modified, page.expires)
        if wanted is not None and wanted.matches(headers["ETag"]):
            return Response(304, headers)
        if gz:
            headers["Content-Encoding"] = "gzip"
            body = page.data
        else:
            body = gzip.decompress(page.data)
        limit = self.settings.max_inline_body
        if limit is not None and len(body) > limit:
            # too large for the front (Lambda's 6 MB): let the store serve the gzip object
            elsewhere = page.redirect(request.method)
            if elsewhere is not None:
                return redirect(302, elsewhere.url)
        return Response(200, headers, body)

    def _root(self, request: Request, wanted: IfNoneMatch | None) -> Response:
        """The project list, HTML and JSON rendered from one read of one source."""
        fmt = choose_format(request.headers.get("accept"), request.query_param("format"))
        listed = self.repository.project_list()
        page = root_page(listed.names)
        if fmt.is_json and self._namespaces():
            from serverless_pypi.core.namespaces import API_VERSION

            page["meta"] = {**page["meta"], "api-version": API_VERSION}  # PEP 752: JSON 1.5
        body = render_json(page) if fmt.is_json else render_html(page)
        return self._page_response(request, wanted, fmt, body, last_modified=listed.last_modified)

    def _project(
        self, request: Request, name: NormalizedName, wanted: IfNoneMatch | None
    ) -> Response:
        fmt = choose_format(request.headers.get("accept"), request.query_param("format"))
        namespaces = self._namespaces() if fmt.is_json else ()
        if namespaces:
            return self._namespaced_project(request, name, wanted, namespaces)
        # the store holds one object for both codings: it compares the tags of this one
        gz = accepts_gzip(request.headers)
        stored = wanted.for_encoding(gz) if wanted is not None else None
        page = self.repository.project_page(name, json=fmt.is_json, if_none_match=stored)
        if isinstance(page, StoredPage):
            return self._stored_page(request, fmt, page, wanted)
        if isinstance(page, PageUnchanged):
            return Response(304, self._headers(fmt, encoding_tag(page.etag, gz)))
        if isinstance(page, Redirect):
            return redirect(302, page.url)
        if not page.served():
            # in the index, but every file was refused (or removed)
            raise NoSuchProject(f"Project {name!r} has no files this index serves.")
        model = project_page(page)
        body = render_json(model) if fmt.is_json else render_html(model)
        return self._page_response(request, wanted, fmt, body, last_modified=page.last_modified)

    # -- PEP 752 namespaces ---------------------------------------------------------------
    # JSON only (PEP 833 froze HTML at 1.4) and only while the policy reserves a namespace: a
    # repository that does not support PEP 752 must not emit any of it.
    def _namespaced_project(
        self,
        request: Request,
        name: NormalizedName,
        wanted: IfNoneMatch | None,
        namespaces: tuple[str, ...],
    ) -> Response:
        """The JSON project page with PEP 752's `namespace` key, at api-version 1.5."""
        from serverless_pypi.core.namespaces import annotate_project, matching_namespace

        fmt = Format.JSON_V1
        # the body differs from the stored one: this layer compares the client's tags itself
        page = self.repository.project_page(name, json=True, if_none_match=None)
        if isinstance(page, Redirect):
            return redirect(302, page.url)
        if isinstance(page, PageUnchanged):  # not asked for; a layer below answered it anyway
            raise NoSuchProject(f"Project {name!r} could not be read; try again.")
        model: dict[str, Any]
        if isinstance(page, StoredPage):
            model = json.loads(gzip.decompress(page.data))
            last_modified, expires = page.last_modified, page.expires
        else:
            if not page.served():
                raise NoSuchProject(f"Project {name!r} has no files this index serves.")
            model = project_page(page)
            last_modified, expires = page.last_modified, None
        # authorized (PEP 752): the project is the index's own, which only a token covering
        # the namespace could create; asked only of names in a namespace
        authorized = matching_namespace(namespaces, name) is not None and self.repository.owns(name)
        body = render_json(annotate_project(model, namespaces, authorized=authorized))
        return self._page_response(
            request, wanted, fmt, body, last_modified=last_modified, expires=expires
        )

    def _namespace(
        self,
        request: Request,
        wanted: IfNoneMatch | None,
        namespaces: tuple[str, ...],
        asked: str | None,
    ) -> Response:
        """The namespace list (`asked` None) or one namespace's detail, as JSON."""
        from serverless_pypi.core.namespaces import (
            NoSuchNamespace,
            namespace_detail,
            namespace_list,
        )

        if asked is None:
            body = render_json(namespace_list(namespaces))
        else:
            prefix = self._namespace_name(asked)
            if prefix != asked:
                # the URL holds the normalized namespace (PEP 752), as a project URL does
                return redirect(301, quote(prefix, safe=""), "max-age=3600")
            try:
                body = render_json(namespace_detail(namespaces, prefix))
            except NoSuchNamespace as e:
                raise NoSuchPath(f"Not found: {e}") from None
        return self._page_response(request, wanted, Format.JSON_V1, body, last_modified=None)

    @staticmethod
    def _namespace_name(segment: str) -> NormalizedName:
        try:
            return normalize_project_name(segment)
        except InvalidProjectName as e:
            # PEP 752: a namespace is a valid project name
            raise InvalidRequest(f"Not a namespace: {e}") from None

    # -- files --------------------------------------------------------------------------
    def _file(
        self, request: Request, name: NormalizedName, filename: str, wanted: IfNoneMatch | None
    ) -> Response:
        try:
            check_filename(filename)
        except InvalidFilename as e:
            raise InvalidRequest(f"Not a file name: {e}") from None
        if filename.endswith(".metadata"):
            return self._metadata(name, filename.removesuffix(".metadata"), wanted)
        if filename.endswith(".provenance"):
            return self._provenance(name, filename.removesuffix(".provenance"), wanted)
        found = self.repository.locate(name, filename, request.method)
        if isinstance(found, Redirect):
            return redirect(302, found.url)
        return Response(
            200,
            {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(found.size),
                "ETag": found.etag,
                "Cache-Control": "max-age=31536000, immutable",
            },
            file=found.path,
        )

    def _provenance(
        self, name: NormalizedName, filename: str, wanted: IfNoneMatch | None
    ) -> Response:
        """PEP 740: the provenance object at the file's URL + `.provenance`. The PEP names no
        media type: JSON. It may change (PEP 740 allows attestations to be added), so it is
        revalidated like a page, by its store's strong tag."""
        found = self.repository.provenance(name, filename)
        headers = {
            "Content-Type": "application/json",
            "ETag": found.etag,
            "Cache-Control": self.settings.cache_control,
        }
        if found.last_modified is not None:
            headers["Last-Modified"] = http_date(found.last_modified)
        if wanted is not None and wanted.matches(found.etag):
            return Response(304, headers)
        return Response(200, headers, found.data)

    def _metadata(
        self, name: NormalizedName, filename: str, wanted: IfNoneMatch | None
    ) -> Response:
        found = self.repository.metadata(name, filename)
        # served as stored (never gzip-encoded): the store's strong tag names these bytes
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": found.etag,
            "Cache-Control": "max-age=31536000, immutable",
        }
        if found.last_modified is not None:
            headers["Last-Modified"] = http_date(found.last_modified)
        if wanted is not None and wanted.matches(found.etag):
            return Response(304, headers)
        return Response(200, headers, found.data)
