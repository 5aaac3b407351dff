"""AWS Lambda entry points: a thin edge over the application.

`api_handler` answers API Gateway REST API (payload 1.0, the proxy resource `{package+}` under
a stage such as `simple`), HTTP API (payload 2.0) and Lambda function URL events.

Configuration comes from the environment: S3_BUCKET (required), S3_PREFIX,
S3_PRESIGNED_URL_TTL, FALLBACK_INDEX_URL, PRIVATE_PROJECTS, CACHE_CONTROL,
REQUIRE_AUTH_FOR_READ, MAX_UPLOAD_SIZE.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import time
from typing import Any
from urllib.parse import quote, urlencode

from .app import Application, index_route
from .config import Settings
from .core.http import Headers, Request, Response, error
from .storage.s3 import S3Store

__all__ = ["api_handler", "lambda_request", "lambda_response"]

log = logging.getLogger("serverless_pypi")
if not log.handlers:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    log.setLevel(logging.INFO)

#: Lambda answers at most 6 MB; base64 adds a third, and headers need room too
MAX_INLINE_BODY = 4 * 1024 * 1024
_TEXT_TYPES = ("text/", "application/json", "application/vnd.pypi.simple.v1+json")


def _build_application() -> Application:
    bucket = os.environ.get("S3_BUCKET", "").strip()
    if not bucket:
        raise RuntimeError("S3_BUCKET is not set: the function needs the bucket of packages")
    store = S3Store(bucket, os.environ.get("S3_PREFIX", ""))
    settings = Settings.from_env(max_inline_body=MAX_INLINE_BODY)
    return Application(store, settings)


@functools.cache
def application() -> Application:
    """The application of this execution environment, built once and then reused."""
    return _build_application()


# Build during the init phase (full CPU, not billed per request) when configured.
if os.environ.get("S3_BUCKET") and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    application()


def _raw_query(event: dict[str, Any]) -> str:
    if "rawQueryString" in event:
        return str(event.get("rawQueryString") or "")
    multi = event.get("multiValueQueryStringParameters") or {}
    if multi:
        return urlencode([(k, v) for k, values in multi.items() for v in values or []])
    return urlencode(event.get("queryStringParameters") or {})


def _headers(event: dict[str, Any]) -> Headers:
    multi = event.get("multiValueHeaders") or {}
    if multi:
        return Headers((k, v) for k, values in multi.items() for v in values or [])
    return Headers({k: v for k, v in (event.get("headers") or {}).items() if v is not None})


def _body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode() if isinstance(body, str) else bytes(body)


def lambda_request(event: dict[str, Any]) -> Request | Response:
    """The request an event carries, or the answer for a path outside the index."""
    context = event.get("requestContext") or {}
    if event.get("version") == "2.0" or "rawPath" in event:
        method = str(context.get("http", {}).get("method", "GET")).upper()
        path = str(event.get("rawPath") or "/")
        stage = context.get("stage")
        if stage and stage != "$default" and (path == f"/{stage}" or path.startswith(f"/{stage}/")):
            path = path[len(stage) + 1 :] or "/"
            if stage == "simple":
                # the stage itself is the index root, as in the reference module
                path = "/simple" + path
        route = index_route(path)
    else:
        method = str(event.get("httpMethod") or "GET").upper()
        params = event.get("pathParameters") or {}
        # REST API: the greedy proxy parameter is the path below the index root, decoded
        proxied = next(iter(params.values()), "") if params else ""
        route = quote(str(proxied or ""), safe="/")
    if isinstance(route, Response):
        return route
    return Request(method, route, _raw_query(event), _headers(event), _body(event))


def lambda_response(response: Response, method: str) -> dict[str, Any]:
    """The proxy response API Gateway and function URLs accept (string header values)."""
    headers = dict(response.headers)
    body = b"" if method == "HEAD" else response.body
    content_type = headers.get("Content-Type", "")
    binary = "Content-Encoding" in headers or not content_type.startswith(_TEXT_TYPES)
    return {
        "statusCode": response.status,
        "headers": headers,
        "body": base64.b64encode(body).decode() if binary else body.decode("utf-8"),
        "isBase64Encoded": binary,
    }


def api_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Answer one simple-API request from API Gateway or a function URL."""
    started = time.perf_counter()
    request = lambda_request(event if isinstance(event, dict) else {})
    if isinstance(request, Response):
        response, method, path = request, "GET", "-"
    else:
        method, path = request.method, request.path
        try:
            response = application().handle(request)
        except Exception:
            log.exception("unhandled error")
            response = error(500, "The index failed to answer; the error is logged.")
    # log the method, the path below the index and the status: never queries or headers,
    # which may carry tokens or presigned credentials
    log.info(
        json.dumps(
            {
                "method": method,
                "path": "/" + path[:200],
                "status": response.status,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
        )
    )
    return lambda_response(response, method)
