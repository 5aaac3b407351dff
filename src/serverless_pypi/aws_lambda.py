"""AWS Lambda entry points: a thin edge over the application and the indexer.

`api_handler` answers API Gateway REST API (payload 1.0, the proxy resource `{package+}` under
a stage such as `simple`), HTTP API (payload 2.0) and Lambda function URL events.
`reindex_handler` keeps derived data current from S3 events (see `serverless_pypi.events`).

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
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from .app import Application, index_route
from .config import Settings
from .core.http import Headers, Request, Response, error
from .storage.s3 import S3Store

if TYPE_CHECKING:
    from .access import AccessControl
    from .indexer import Indexer
    from .upload import UploadHandler

__all__ = ["api_handler", "lambda_request", "lambda_response", "reindex_handler"]

log = logging.getLogger("serverless_pypi")
if not log.handlers:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    log.setLevel(logging.INFO)

#: Lambda answers at most 6 MB; base64 adds a third, and headers need room too
MAX_INLINE_BODY = 4 * 1024 * 1024
#: the largest file an upload can carry: 6 MB of event, base64-encoded (4/3), less the form
MAX_UPLOAD_THROUGH_LAMBDA = 6 * 1024 * 1024 * 3 // 4 - 64 * 1024
_TEXT_TYPES = ("text/", "application/json", "application/vnd.pypi.simple.v1+json")


def _store() -> S3Store:
    bucket = os.environ.get("S3_BUCKET", "").strip()
    if not bucket:
        raise RuntimeError("S3_BUCKET is not set: the function needs the bucket of packages")
    return S3Store(bucket, os.environ.get("S3_PREFIX", ""))


def _build_application() -> Application:
    store = _store()
    location = store.location.rstrip("/")
    settings = Settings.from_env(max_inline_body=MAX_INLINE_BODY)

    @functools.cache
    def access() -> AccessControl:
        # tokens are needed by uploads and by a locked index only: an open index reads
        # without importing them
        from .access import AccessControl
        from .tokens import TokenCache

        return AccessControl(TokenCache(store), settings)

    @functools.cache
    def uploads() -> UploadHandler:
        # built at the first upload: reads, the common case, never import the upload stack
        from .catalog import Catalog
        from .upload import UploadHandler

        return UploadHandler(
            Catalog(store),
            settings,
            access().check_upload,
            max_file_size=min(settings.max_upload_size, MAX_UPLOAD_THROUGH_LAMBDA),
            too_large_hint=(
                " A request through API Gateway and Lambda carries at most 6 MB (base64 adds a "
                "third): publish larger files straight to the bucket with "
                f"`serverless-pypi publish --store {location} FILE`."
            ),
        )

    def upload(request: Request) -> Response:
        return uploads()(request)

    locked = access() if settings.require_auth_for_read else None
    return Application(store, settings, upload=upload, access=locked)


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


@functools.cache
def indexer() -> Indexer:
    """The indexer of this execution environment, built once and then reused."""
    from .indexer import Indexer  # imported here: the API function never needs it

    return Indexer(_store())


def reindex_handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Index the keys an S3 event names, or reindex everything on a scheduled event.

    For SQS batches, failed messages are reported in `batchItemFailures` so only they are
    retried (the event source mapping needs `ReportBatchItemFailures`). Other invocations
    raise on failure, so EventBridge retries them and then sends them to the dead-letter queue.
    """
    from .events import parse_invocation

    worker = indexer()
    store = worker.store
    assert isinstance(store, S3Store)
    invocation = parse_invocation(event, store.bucket, store.prefix)
    failed: list[str | None] = []
    counts: dict[str, int] = {}
    for message in invocation.messages:
        for reason in message.ignored:
            log.info("ignored %s", reason)
        try:
            if message.full_reindex:
                report = worker.reindex()
                counts["reindexed_files"] = counts.get("reindexed_files", 0) + report.files
                log.info(
                    json.dumps(
                        {
                            "reindex": "full",
                            "projects": report.projects,
                            "files": report.files,
                            "indexed": len(report.indexed),
                            "removed": len(report.removed),
                            "skipped": len(report.skipped),
                            "orphans": len(report.orphans),
                        }
                    )
                )
            for key in message.keys:
                outcome = worker.index_key(key)
                counts[outcome.action] = counts.get(outcome.action, 0) + 1
                log.info(json.dumps({"key": key[:300], "action": outcome.action}))
        except Exception:
            log.exception("indexing failed for message %s", message.message_id)
            failed.append(message.message_id)
    if invocation.from_sqs:
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed if m is not None]}
    if failed:
        raise RuntimeError("indexing failed; the error is logged above and the event is retried")
    return {"status": "ok", **counts}
