"""The application: one function from a `Request` to a `Response`, the same on every front.

Routes (paths below the index root, `/simple/` locally):

    ""                   project list            GET, HEAD (POST: uploads)
    "<project>"          301 to "<project>/"
    "<project>/"         project page            GET, HEAD
    "<project>/<file>"   the file                GET, HEAD (302 to S3, or the bytes)
    "<file>.metadata"    PEP 658 core metadata   GET, HEAD

What it serves comes from a `Repository` (`serverless_pypi.repository`); the application
negotiates the format, checks access, renders a model when it gets one, sets cache headers,
and answers errors through the one table in `serverless_pypi.web.errors`. It never builds a
storage key.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import datetime
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
from serverless_pypi.web.paths import UPLOAD_PATHS, split_path

__all__ = ["AccessCheck", "Application", "UploadHandler"]

READ_METHODS = frozenset({"GET", "HEAD"})
_VARY = "Accept, Accept-Encoding"
_READ_ONLY = ("GET", "HEAD")

#: an upload handler: takes the request, answers it (see `serverless_pypi.web.upload`);
#: refusals are raised (DomainError)
UploadHandler = Callable[[Request], Response]
#: an access check for a read of a project (None: the project list): returns to let the
#: request through, raises Unauthenticated or Forbidden to refuse it
AccessCheck = Callable[[Request, str, NormalizedName | None], None]


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
    ) -> None:
        self.repository = repository
        self.settings = settings or Settings()
        self.upload = upload
        self.access = access
        self._failures = FailureLog()

    # -- entry point ------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        try:
            # parsed once: a malformed conditional is refused on every read
            wanted = _if_none_match(request) if request.method in READ_METHODS else None
            return self._dispatch(request, wanted)
        except (DomainError, StoreError) as e:
            self._failures.report(e, request.method, self.repository.location)
            return error_response(e)

    def _dispatch(self, request: Request, wanted: IfNoneMatch | None) -> Response:
        segments = split_path(request.path)
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
        self, fmt: Format, etag: str, last_modified: datetime | None = None
    ) -> dict[str, str]:
        headers = {
            "Content-Type": fmt.content_type,
            "Cache-Control": self.settings.cache_control,
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
    ) -> Response:
        """A page rendered for this request, tagged by its bytes."""
        etag = make_etag(body)
        gz = accepts_gzip(request.headers) and len(body) >= GZIP_MIN_SIZE
        headers = self._headers(fmt, encoding_tag(etag, gz), last_modified)
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
        headers = self._headers(fmt, encoding_tag(page.etag, gz), page.last_modified)
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
        body = render_json(page) if fmt.is_json else render_html(page)
        return self._page_response(request, wanted, fmt, body, last_modified=listed.last_modified)

    def _project(
        self, request: Request, name: NormalizedName, wanted: IfNoneMatch | None
    ) -> Response:
        fmt = choose_format(request.headers.get("accept"), request.query_param("format"))
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
