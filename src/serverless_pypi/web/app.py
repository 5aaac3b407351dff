"""The application: one function from a `Request` to a `Response`, the same on every front.

Routes (paths below the index root, `/simple/` locally):

    ""                   project list            GET, HEAD (POST: uploads)
    "<project>"          301 to "<project>/"
    "<project>/"         project page            GET, HEAD
    "<project>/<file>"   the file                GET, HEAD (302 to S3, or the bytes)
    "<file>.metadata"    PEP 658 core metadata   GET, HEAD

Pages are read precomputed from the store (one read); projects that were never indexed are
listed live, without hashes, until the indexer has seen them.
"""

from __future__ import annotations

import fnmatch
import gzip
import logging
import re
import threading
import time
from collections.abc import Callable
from urllib.parse import quote, unquote

from serverless_pypi.core.config import Settings
from serverless_pypi.core.http import (
    IfNoneMatch,
    InvalidConditional,
    Request,
    Response,
    accepts_gzip,
    compress,
    error,
    etag_matches,
    make_etag,
    parse_if_none_match,
    redirect,
)
from serverless_pypi.core.model import FileRecord, Manifest, format_upload_time
from serverless_pypi.core.names import (
    Distribution,
    Identity,
    InvalidFilename,
    InvalidProjectName,
    NormalizedName,
    check_filename,
    normalize_project_name,
    parse_distribution_filename,
)
from serverless_pypi.core.negotiate import Format, choose_format
from serverless_pypi.core.render import project_page, render_html, render_json, root_page
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage import (
    NotFound,
    NotModified,
    ObjectInfo,
    Store,
    StoreError,
    StoreUnavailable,
)
from serverless_pypi.storage.cache import RevalidatingCache
from serverless_pypi.storage.swap import Contention

__all__ = ["Application", "BadRequest"]

log = logging.getLogger(__name__)

MAX_PATH_LENGTH = 1024
READ_METHODS = frozenset({"GET", "HEAD"})
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# RFC 9110 section 8.8.3: opaque-tag = DQUOTE *etagc DQUOTE (ASCII etagc only)
_VARY = "Accept, Accept-Encoding"
#: seconds a client should wait before retrying a transient store failure (RFC 9110 10.2.3)
RETRY_AFTER = "2"
#: a store failure with the same cause is logged at most once per this many seconds
REPORT_INTERVAL = 600.0
#: distinct store failures remembered (a bound on the memory they take)
_MAX_REPORTED = 64
#: bytes of manifests (as stored) the application keeps parsed in memory, per process
MANIFEST_CACHE_BYTES = 16 * 1024 * 1024
#: uploads are accepted at the index root and, as on PyPI, at "legacy/"
UPLOAD_PATHS = ([""], ["legacy", ""], ["legacy"])

#: an upload handler: takes the request, answers it (see `serverless_pypi.web.upload`)
UploadHandler = Callable[[Request], Response]
#: an access check: returns None to let the request through, or the refusal
AccessCheck = Callable[[Request, str, NormalizedName | None], Response | None]


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def split_path(raw: str) -> list[str]:
    """Decode a raw request path into segments, refusing anything that could escape a folder."""
    if len(raw) > MAX_PATH_LENGTH:
        raise BadRequest(414, f"The path is longer than {MAX_PATH_LENGTH} characters.")
    if _ENCODED_SEPARATOR.search(raw):
        raise BadRequest(400, "Percent-encoded slashes are not allowed in paths.")
    try:
        segments = [unquote(s, errors="strict") for s in raw.split("/")]
    except UnicodeDecodeError:
        raise BadRequest(400, "The path is not valid UTF-8.") from None
    for segment in segments:
        if segment in {".", ".."}:
            raise BadRequest(400, "Paths may not contain '.' or '..' segments.")
        if _CONTROL.search(segment) or "\\" in segment:
            raise BadRequest(400, "Paths may not contain control characters or backslashes.")
    return segments


def _if_none_match(request: Request) -> IfNoneMatch | None:
    """The request's If-None-Match, parsed; 400 when it is malformed or oversized."""
    try:
        return parse_if_none_match(request.headers.get("if-none-match"))
    except InvalidConditional as e:
        raise BadRequest(400, f"Bad If-None-Match header: {e}.") from None


def _normalize_pattern(pattern: str) -> str:
    # normalize a glob the way project names are normalized, keeping its wildcards
    return re.sub(r"[-_.]+", "-", pattern).lower()


class Application:
    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        *,
        upload: UploadHandler | None = None,
        access: AccessCheck | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or Settings()
        self.catalog = Catalog(store)
        self.upload = upload
        self.access = access
        self._private = tuple(_normalize_pattern(p) for p in self.settings.private_projects)
        # every download reads its project's manifest: parsed once, revalidated per use
        self._manifests = RevalidatingCache(store, Manifest.from_bytes, MANIFEST_CACHE_BYTES)
        self._reported: dict[str, float] = {}  # cause -> when it was last logged
        self._reported_lock = threading.Lock()

    # -- entry point ------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        try:
            if request.method in READ_METHODS:
                _if_none_match(request)  # a malformed conditional is refused on every read
            return self._dispatch(request)
        except BadRequest as e:
            return error(e.status, e.message)
        except StoreError as e:
            return self._store_failure(request, e)

    def _store_failure(self, request: Request, failure: StoreError) -> Response:
        """The answer to a store that failed: 503 naming the cause when it is known.

        Known causes (RFC 9110 section 15.6.4: the service is unavailable) are logged once per
        cause and REPORT_INTERVAL, not with a traceback per request; transient ones (contention,
        an endpoint that does not answer) carry Retry-After. Anything else is a 502 with its
        traceback logged.
        """
        if isinstance(failure, Contention):
            self._log_once("contention", f"contention: {failure}", logging.WARNING)
            return error(
                503,
                "The index is busy with concurrent changes to the same project; try again.",
                {"Retry-After": RETRY_AFTER},
            )
        if isinstance(failure, StoreUnavailable):
            where = failure.location or self.store.location
            cause = f"store unavailable: {where}: {failure.cause}"
            self._log_once(cause, f"{cause} ({failure.detail})" if failure.detail else cause)
            if failure.transient:
                return error(
                    503,
                    f"The package store does not answer ({failure.cause}); try again shortly.",
                    {"Retry-After": RETRY_AFTER},
                )
            return error(
                503,
                f"The package store cannot be used: {failure.cause}. "
                "The index's operator needs to fix its configuration.",
            )
        log.exception("store failure on %s", request.method)
        return error(502, "The package store failed to answer; try again shortly.")

    def _log_once(self, cause: str, message: str, level: int = logging.ERROR) -> None:
        # one line per distinct cause and REPORT_INTERVAL: a broken store must not flood the
        # log, and an outage next week is still seen by a server that runs for weeks
        now = time.monotonic()
        with self._reported_lock:
            last = self._reported.get(cause)
            if last is not None and now - last < REPORT_INTERVAL:
                return
            if last is None and len(self._reported) >= _MAX_REPORTED:
                self._reported.pop(next(iter(self._reported)))
            self._reported[cause] = now
        log.log(level, "%s", message)

    def _dispatch(self, request: Request) -> Response:
        segments = split_path(request.path)
        if request.method == "POST" and segments in UPLOAD_PATHS:
            if self.upload is None:
                return error(405, "Uploads are not enabled on this index.", {"Allow": "GET, HEAD"})
            return self.upload(request)
        if request.method not in READ_METHODS:
            allow = "GET, HEAD, POST" if segments in UPLOAD_PATHS and self.upload else "GET, HEAD"
            return error(405, f"{request.method} is not allowed here.", {"Allow": allow})
        if segments == [""]:
            return self._checked(request, "read", None, lambda: self._root(request))
        project = self._project_name(segments[0])
        if len(segments) == 1:
            # PEP 503: every page URL ends in "/"
            return redirect(301, quote(project, safe="") + "/", "max-age=3600")
        if len(segments) == 2 and segments[1] == "":
            if segments[0] != project:
                return redirect(301, "../" + quote(project, safe="") + "/", "max-age=3600")
            return self._checked(request, "read", project, lambda: self._project(request, project))
        if len(segments) == 2:
            filename = segments[1]
            return self._checked(
                request, "read", project, lambda: self._file(request, project, filename)
            )
        return error(404, "Not found: the index has project pages and their files only.")

    def _checked(
        self,
        request: Request,
        scope: str,
        project: NormalizedName | None,
        answer: Callable[[], Response],
    ) -> Response:
        if self.access is not None and (refusal := self.access(request, scope, project)):
            return refusal
        return answer()

    @staticmethod
    def _project_name(segment: str) -> NormalizedName:
        try:
            return normalize_project_name(segment)
        except InvalidProjectName as e:
            raise BadRequest(404 if not segment else 400, f"Not a project: {e}") from None

    # -- pages ------------------------------------------------------------------------
    def _page_response(self, request: Request, fmt: Format, body: bytes, etag: str) -> Response:
        # weak: the same tag stands for the gzip and the identity encodings of the page
        etag = etag if etag.startswith("W/") else "W/" + etag
        headers = {
            "Content-Type": fmt.content_type,
            "Cache-Control": self.settings.cache_control,
            "Vary": _VARY,
            "ETag": etag,
        }
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(304, headers)
        if accepts_gzip(request.headers) and len(body) >= 1024:
            headers["Content-Encoding"] = "gzip"
            body = compress(body)
        return Response(200, headers, body)

    def _stored_page(self, request: Request, fmt: Format, key: str) -> Response | None:
        """Serve a precomputed, gzip-compressed page object; None if there is none."""
        wanted = _if_none_match(request)
        # only one bounded, well-formed ASCII tag is passed on for the store to compare (S3
        # answers 400 to an oversized or odd one); a list or `*` is compared here
        store_etag = wanted.single_tag() if wanted is not None else None
        headers = {
            "Content-Type": fmt.content_type,
            "Cache-Control": self.settings.cache_control,
            "Vary": _VARY,
        }
        try:
            blob = self.store.get(key, if_none_match=store_etag)
        except NotModified:
            return Response(304, {**headers, "ETag": "W/" + (store_etag or '""')})
        except NotFound:
            return None
        headers["ETag"] = "W/" + blob.etag
        if wanted is not None and wanted.matches(blob.etag):
            return Response(304, headers)
        limit = self.settings.max_inline_body
        if accepts_gzip(request.headers):
            headers["Content-Encoding"] = "gzip"
            body = blob.data
        else:
            body = gzip.decompress(blob.data)
        if limit is not None and len(body) > limit:
            # too large for the front (Lambda's 6 MB): let the store serve the gzip object
            url = self.store.presign(key, request.method, self.settings.presigned_url_ttl)
            if url is not None:
                return redirect(302, url)
        return Response(200, headers, body)

    def _root(self, request: Request) -> Response:
        """The project list, HTML and JSON rendered from one read of one source.

        The source is the index's project list (`projects.json`), else the live project folders.
        The store's `index.html` is never served: one left by the reference module links
        un-normalized folders (`My_Pkg`, `my.pkg`) where the JSON list names `my-pkg`.
        """
        fmt = choose_format(request.headers.get("accept"), request.query_param("format"))
        names, etag = self.catalog.read_project_names()
        if etag is None:
            names = set(self.catalog.project_folders())
        page = root_page(names)
        body = render_json(page) if fmt.is_json else render_html(page)
        return self._page_response(request, fmt, body, make_etag(body))

    def _project(self, request: Request, name: NormalizedName) -> Response:
        fmt = choose_format(request.headers.get("accept"), request.query_param("format"))
        stored = self._stored_page(request, fmt, layout.page_key(name, json=fmt.is_json))
        if stored is not None:
            return stored
        index = self._live_index(name)
        if index is None:
            return self._unknown_project(name)
        if not index.served():
            # in the store, but every file was refused (or removed): never sent to a fallback
            return error(404, f"Project {name!r} has no files this index serves.")
        page = project_page(index)
        body = render_json(page) if fmt.is_json else render_html(page)
        return self._page_response(request, fmt, body, make_etag(body))

    def _manifest(self, name: NormalizedName) -> Manifest | None:
        """The project's manifest (one conditional GET), None when it has none."""
        found = self._manifests.get(layout.manifest_key(name))
        return found[0] if found is not None else None

    def _live_index(self, name: NormalizedName) -> Manifest | None:
        """The project's files when it has no precomputed page: its manifest, else a listing.

        A project with a manifest is served from it alone, even when it lists nothing: a
        publisher writes the manifest before any bytes, so a file is never listed before its
        record (or after the indexer refused it). Only a project never indexed at all is
        listed live, without hashes: its keys that are distributions of the project, one per
        distribution identity (the first in key order), as the indexer will list them.
        """
        index = self._manifest(name)
        if index is not None:
            return index
        index = Manifest(name)
        seen: set[Identity] = set()
        for folder in self.catalog.project_folders().get(name, []):
            for info in self.store.list(folder + "/"):
                dist = _distribution_of(name, info.key)
                if dist is None or dist.identity in seen:
                    continue
                seen.add(dist.identity)
                index.files[dist.filename] = FileRecord(
                    filename=dist.filename,
                    key=info.key,
                    size=info.size,
                    upload_time=format_upload_time(info.last_modified),
                    etag=info.etag,
                )
        return index if index.files else None

    def _unknown_project(self, name: NormalizedName) -> Response:
        fallback = self.settings.fallback_index_url
        if fallback and not any(fnmatch.fnmatchcase(name, p) for p in self._private):
            # a temporary redirect: the project may be published here later
            return redirect(302, f"{fallback}/{quote(name, safe='')}/")
        return error(404, f"No project named {name!r} on this index.")

    # -- files --------------------------------------------------------------------------
    def _file(self, request: Request, name: NormalizedName, filename: str) -> Response:
        try:
            check_filename(filename)
        except InvalidFilename as e:
            raise BadRequest(400, f"Not a file name: {e}") from None
        if filename.endswith(".metadata"):
            return self._metadata(name, filename.removesuffix(".metadata"))
        found = self._locate(name, filename)
        if found is None:
            return error(404, f"No file {filename!r} in project {name!r}.")
        url = self.store.presign(found.key, request.method, self.settings.presigned_url_ttl)
        if url is not None:
            return redirect(302, url)
        # served from a directory: a stat for the size and etag of the bytes there now
        info = self.store.find(found.key) if isinstance(found, FileRecord) else found
        path = self.store.local_path(found.key) if info is not None else None
        if info is None or path is None:
            return error(404, f"No file {filename!r} in project {name!r}.")
        return Response(
            200,
            {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(info.size),
                "ETag": info.etag,
                "Cache-Control": "max-age=31536000, immutable",
            },
            file=path,
        )

    def _metadata(self, name: NormalizedName, filename: str) -> Response:
        try:
            blob = self.store.get(layout.metadata_key(name, filename))
        except NotFound:
            return error(404, f"No core metadata for {filename!r} in project {name!r}.")
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": blob.etag,
            "Cache-Control": "max-age=31536000, immutable",
        }
        return Response(200, headers, blob.data)

    def _locate(self, name: NormalizedName, filename: str) -> FileRecord | ObjectInfo | None:
        """Where a served distribution of the project lives; None for anything else.

        Only a wheel or sdist of this project is ever served (never `credentials.json` or
        other objects in its folders). For a project with a manifest: its record, unless the
        indexer refused the file (one conditional GET of the manifest, no HEAD of the file).
        For a project never indexed: its own folder (one HEAD), else its un-normalized ones.
        """
        try:
            dist = parse_distribution_filename(filename)
        except InvalidFilename:
            return None
        if dist.project != name:
            return None
        index = self._manifest(name)
        if index is not None:
            record = index.files.get(filename)
            return record if record is not None and record.problem is None else None
        if info := self.store.find(layout.distribution_key(name, filename)):
            return info
        for folder in self.catalog.project_folders().get(name, []):
            if info := self.store.find(layout.distribution_key(folder, filename)):
                return info
        return None


def _distribution_of(name: NormalizedName, key: str) -> Distribution | None:
    """The distribution of project `name` that `key` holds, if it holds one."""
    split = layout.split_key(key)
    if split is None:
        return None
    try:
        dist = parse_distribution_filename(split[1])
    except InvalidFilename:
        return None
    return dist if dist.project == name else None


def index_route(path: str) -> str | Response:
    """Map a full URL path on the local server, a function URL or an HTTP API to a route.

    The index lives at `/simple/`; uploads are also accepted at `/` and `/legacy/`.
    Returns the route below the index root, or the response for paths outside it.
    """
    if path.startswith("/simple/"):
        return path.removeprefix("/simple/")
    if path == "/simple":
        return redirect(301, "simple/", "max-age=3600")
    if path in {"", "/"}:
        return ""  # POST: upload; GET: the app answers the project list
    if path in {"/legacy", "/legacy/"}:
        return "legacy/"
    return error(404, "Not found: the index is at /simple/.")
