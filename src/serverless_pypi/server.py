"""The local server: the application on waitress, a threaded production WSGI server.

Serves the index at `/simple/` and accepts uploads at `/`, `/legacy/` and `/simple/`. Logs one
line a request (method, path without the query, status, time): never headers or queries, which
can carry credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

from .app import Application, index_route
from .core.http import Headers, Request, Response, error

__all__ = ["WSGIApplication", "serve"]

log = logging.getLogger("serverless_pypi.server")

StartResponse = Callable[..., Any]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _status_line(response: Response) -> str:
    """The status line; errors carry their message as the reason phrase, as PyPI's do.

    twine shows only the status line of a failed upload, so "400 File already exists ..."
    tells the user what went wrong where "400 Bad Request" would not.
    """
    status = response.status
    if status >= 400 and response.headers.get("Content-Type", "").startswith("text/plain"):
        first = response.body.decode("utf-8", "replace").split("\n", 1)[0]
        # RFC 9112 section 4: reason-phrase is HTAB / SP / VCHAR / obs-text; keep it ASCII
        reason = "".join(c if " " <= c <= "~" else " " for c in first).strip()[:200]
        if reason:
            return f"{status} {reason}"
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _raw_path(environ: dict[str, Any]) -> tuple[str, str]:
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        if "://" in raw.split("?", 1)[0]:  # absolute-form request target
            parts = urlsplit(raw)
            return parts.path or "/", parts.query
        path, _, query = raw.partition("?")
        return path or "/", query
    path = quote(environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace"))
    return path, environ.get("QUERY_STRING", "")


def _headers(environ: dict[str, Any]) -> Headers:
    pairs = [
        (key[5:].replace("_", "-"), value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    if environ.get("CONTENT_TYPE"):
        pairs.append(("content-type", environ["CONTENT_TYPE"]))
    if environ.get("CONTENT_LENGTH"):
        pairs.append(("content-length", environ["CONTENT_LENGTH"]))
    return Headers(pairs)


class WSGIApplication:
    """A WSGI callable around an `Application`."""

    def __init__(self, app: Application) -> None:
        self.app = app

    def _request(self, environ: dict[str, Any]) -> Request | Response:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path, query = _raw_path(environ)
        route = index_route(path)
        if isinstance(route, Response):
            return route
        body = b""
        if method in _BODY_METHODS:
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return error(400, "Content-Length is not a number.")
            limit = self.app.settings.max_upload_size + 1024 * 1024
            if length > limit:
                return error(413, f"The request body is over {limit} bytes.")
            body = environ["wsgi.input"].read(length) if length > 0 else b""
        return Request(method, route, query, _headers(environ), body)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        request = self._request(environ)
        try:
            response = request if isinstance(request, Response) else self.app.handle(request)
        except Exception:
            log.exception("unhandled error")
            response = error(500, "The index failed to answer; the error is logged.")
        headers = dict(response.headers)
        if response.file is None:
            headers["Content-Length"] = str(len(response.body))
        start_response(_status_line(response), list(headers.items()))
        log.info(
            "%s %s %d %.1fms",
            method,
            _raw_path(environ)[0][:300],
            response.status,
            (time.perf_counter() - started) * 1000,
        )
        if method == "HEAD" or response.status == 304:
            return [b""]
        if response.file is not None:
            handle = response.file.open("rb")
            wrapper = environ.get("wsgi.file_wrapper")
            if wrapper is not None:
                return wrapper(handle, 256 * 1024)  # type: ignore[no-any-return]
            return iter(lambda: handle.read(256 * 1024), b"")
        return [response.body]


def serve(app: Application, host: str = "127.0.0.1", port: int = 8080, threads: int = 16) -> None:
    import waitress

    waitress.serve(
        WSGIApplication(app),
        host=host,
        port=port,
        threads=threads,
        ident="serverless-pypi",
        # room for large uploads (the application enforces its own bound)
        max_request_body_size=app.settings.max_upload_size + 2 * 1024 * 1024,
        clear_untrusted_proxy_headers=True,
    )
