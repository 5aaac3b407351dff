"""Request paths: where the index lives in a URL, and the segments of a route below it."""

from __future__ import annotations

import re
from urllib.parse import unquote

from serverless_pypi.core.errors import InvalidRequest, NoSuchPath, PathTooLong
from serverless_pypi.core.http import Response, redirect

#: the host-root routes (`serverless_pypi.web.oidc`, which imports nothing heavy)
HOST_ROOT_PATHS = frozenset(
    {"/_/oidc/audience", "/_/oidc/mint-token", "/_/oidc/burn-token", "/.well-known/pytp"}
)

__all__ = [
    "HOST_ROOT_PATHS",
    "MAX_PATH_LENGTH",
    "NAMESPACE_LIST",
    "SESSION_ROOT",
    "STAGE_ROOT",
    "UPLOAD_PATHS",
    "index_base",
    "index_route",
    "is_session_route",
    "is_upload_route",
    "namespace_route",
    "split_path",
]

MAX_PATH_LENGTH = 1024
#: uploads are accepted at the index root and, as on PyPI, at "legacy/"
UPLOAD_PATHS = ([""], ["legacy", ""], ["legacy"])
#: PEP 752 (JSON only): the namespace list and `namespace/<namespace>`, below the index root.
#: Without a slash at the end, so they never shadow the pages of projects named so.
NAMESPACE_LIST = ["namespaces"]
_NAMESPACE = "namespace"
#: PEP 694 (Upload 2.0): the session root and the staged previews, below the index root; no
#: project name starts with "_" (PEP 508), so neither shadows a project page
SESSION_ROOT = "_upload"
STAGE_ROOT = "_stage"
#: what ends a distribution's (or its metadata's) file name: never a normalized namespace,
#: which has no "."
_FILE_ENDINGS = (".whl", ".tar.gz", ".zip", ".metadata")
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def split_path(raw: str) -> list[str]:
    """Decode a raw request path into segments, refusing anything that could escape a folder."""
    if len(raw) > MAX_PATH_LENGTH:
        raise PathTooLong(f"The path is longer than {MAX_PATH_LENGTH} characters.")
    if _ENCODED_SEPARATOR.search(raw):
        raise InvalidRequest("Percent-encoded slashes are not allowed in paths.")
    try:
        segments = [unquote(s, errors="strict") for s in raw.split("/")]
    except UnicodeDecodeError:
        raise InvalidRequest("The path is not valid UTF-8.") from None
    for segment in segments:
        if segment in {".", ".."}:
            raise InvalidRequest("Paths may not contain '.' or '..' segments.")
        if _CONTROL.search(segment) or "\\" in segment:
            raise InvalidRequest("Paths may not contain control characters or backslashes.")
    return segments


def namespace_route(segments: list[str]) -> str | None:
    """The namespace a `namespace/<namespace>` route asks for (as written), else None.

    A file of a project named "namespace" (`namespace/namespace-1.0.tar.gz`) is not one.
    """
    if len(segments) != 2 or segments[0] != _NAMESPACE or not segments[1]:
        return None
    if segments[1].lower().endswith(_FILE_ENDINGS):
        return None
    return segments[1]


def index_route(path: str) -> str | Response:
    """Map a full URL path on the local server, a function URL or an HTTP API to a route.

    The index lives at `/simple/`; uploads are also accepted at `/` and `/legacy/`; trusted
    publishing answers at the host root (`HOST_ROOT_PATHS`: PyPI's `/_/oidc/...` and PEP
    807's `/.well-known/pytp`), passed on as full paths.
    Returns the route below the index root (or the full path of a host-root route), or the
    redirect for `/simple`; raises NoSuchPath for paths outside the index.
    """
    if path in HOST_ROOT_PATHS:
        return path  # trusted publishing at the host root (`web.oidc`): the full path
    if path.startswith("/simple/"):
        route = path.removeprefix("/simple/")
        if route.startswith("/"):
            # "/simple//x": no route below the index root starts with "/" (host-root ones do)
            raise NoSuchPath("Not found: the index has project pages and their files only.")
        return route
    if path == "/simple":
        return redirect(301, "simple/", "max-age=3600")
    if path in {"", "/"}:
        return ""  # POST: upload; GET: the app answers the project list
    if path in {"/legacy", "/legacy/"}:
        return "legacy/"
    raise NoSuchPath("Not found: the index is at /simple/.")


def is_upload_route(path: str) -> bool:
    """Whether a full URL path is one the application takes uploads at."""
    try:
        route = index_route(path)
    except NoSuchPath:
        return False
    return isinstance(route, str) and route.split("/") in UPLOAD_PATHS


def is_session_route(path: str) -> bool:
    """Whether a full URL path is one of the Upload 2.0 session routes (`_upload/...`)."""
    try:
        route = index_route(path)
    except NoSuchPath:
        return False
    return isinstance(route, str) and route.split("/", 1)[0] == SESSION_ROOT


def index_base(raw_path: str, route: str, default: str = "/simple/") -> str:
    """The URL path of the index root as the client sent it: `raw_path` (the full path of
    the request) without the segments of `route` (the path below the index root), ending in
    "/"; `default` when `raw_path` does not end in as many segments."""
    segments = raw_path.split("/")
    count = len(route.split("/"))
    if not raw_path.startswith("/") or len(segments) <= count:
        return default
    return "/".join(segments[:-count]) + "/"
