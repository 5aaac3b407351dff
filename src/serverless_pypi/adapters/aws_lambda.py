"""AWS Lambda entry points: a thin edge over the application and the indexer.

`api_handler` answers API Gateway REST API (payload 1.0, the proxy resource `{package+}` under
a stage such as `simple`), HTTP API (payload 2.0) and Lambda function URL events.
`reindex_handler` keeps derived data current from S3 events (see `serverless_pypi.index.events`).

Configuration comes from the environment: S3_BUCKET (required), S3_PREFIX,
S3_PRESIGNED_URL_TTL, FALLBACK_INDEX_URL, UPSTREAM_INDEX_URL, UPSTREAM_MODE, UPSTREAM_TTL,
UPSTREAM_CREDENTIALS_SECRET, PULL_QUEUE_URL, PRIVATE_PROJECTS, CACHE_CONTROL,
REQUIRE_AUTH_FOR_READ, MAX_UPLOAD_SIZE, UPLOAD_SESSION_TTL, UPLOAD_SESSION_MAX_FILE_SIZE,
LOG_REQUESTS. Each request carries the base path of the index root as its client sees it
(`Request.base`: the stage of a REST API, a custom domain's base path), for the absolute links
of Upload 2.0 sessions (`web.sessions`).

Mirror mode on Lambda: the API function answers the first download of an upstream file with
the upstream's URL and sends `{"pull": {"project": ..., "file": ...}}` to PULL_QUEUE_URL; the
indexer function receives it and streams the file into the bucket (`index.pull.pull_file`,
verified against the upstream's sha256 before it is ever served), a copy that may take
minutes and never passes through the API function. UPSTREAM_CREDENTIALS_SECRET is the ARN of
a Secrets Manager secret `{"username": ..., "password": ...}` for the upstream, read once per
execution environment (boto3-free, `storage.aws_json`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from serverless_pypi.compose import build_application
from serverless_pypi.core.config import ConfigError, Settings
from serverless_pypi.core.errors import DomainError, InvalidRequest
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.storage.s3_light import LightS3Store
from serverless_pypi.web.app import Application
from serverless_pypi.web.errors import error_response, internal_error
from serverless_pypi.web.paths import HOST_ROOT_PATHS, index_base, index_route

if TYPE_CHECKING:
    from serverless_pypi.index.events import Message
    from serverless_pypi.index.indexer import Indexer
    from serverless_pypi.repository.upstream import Puller
    from serverless_pypi.storage.s3 import S3Store
    from serverless_pypi.upstream.client import UpstreamClient

__all__ = ["BadEvent", "api_handler", "lambda_request", "lambda_response", "reindex_handler"]

log = logging.getLogger("serverless_pypi")
if not log.handlers:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    log.setLevel(logging.INFO)

#: Lambda answers at most 6 MB; base64 adds a third, and headers need room too
MAX_INLINE_BODY = 4 * 1024 * 1024
#: the largest file an upload can carry: 6 MB of event, base64-encoded (4/3), less the form
MAX_UPLOAD_THROUGH_LAMBDA = 6 * 1024 * 1024 * 3 // 4 - 64 * 1024
_TEXT_TYPES = ("text/", "application/json", "application/vnd.pypi.simple.v1+json")


def _bucket() -> str:
    bucket = os.environ.get("S3_BUCKET", "").strip()
    if not bucket:
        raise ConfigError("S3_BUCKET is not set: the function needs the bucket of packages")
    return bucket


def _api_store() -> LightS3Store:
    """The API function's store: its reads (pages, metadata, downloads, the project list)
    sign their requests with the standard library and never import boto3; its writes (uploads)
    import boto3 at the first one."""
    return LightS3Store(_bucket(), os.environ.get("S3_PREFIX", ""))


def _store() -> S3Store:
    """The indexer's store, through boto3 (it writes as much as it reads)."""
    from serverless_pypi.storage.s3 import S3Store

    return S3Store(_bucket(), os.environ.get("S3_PREFIX", ""))


@functools.cache
def application() -> Application:
    """The application of this execution environment, built once and then reused."""
    # the settings first: an invalid one fails every request before a client is built
    settings = _upstream_credentials(Settings.from_env())
    puller = _puller(settings)
    store = _api_store()
    return build_application(
        store,
        settings,
        max_inline_body=MAX_INLINE_BODY,
        max_upload_size=MAX_UPLOAD_THROUGH_LAMBDA,
        too_large_hint=(
            " A request through API Gateway and Lambda carries at most 6 MB (base64 adds a "
            "third): publish larger files with `serverless-pypi upload --index <this index's "
            "URL> FILE`, which sends them straight to S3 through an Upload 2.0 session (PEP "
            "694) with the same token, or with AWS credentials straight to the bucket: "
            f"`serverless-pypi publish --store {store.location.rstrip('/')} FILE`."
        ),
        puller=puller,
        # a thread of this function could copy nothing: Lambda freezes it between requests
        background_pulls=False,
    )


def _uses_upstream(settings: Settings) -> bool:
    """The index serves the upstream's pages itself (proxy or mirror): it talks to it."""
    return settings.upstream_index_url is not None and settings.upstream_mode in {
        "proxy",
        "mirror",
    }


def _upstream_credentials(settings: Settings) -> Settings:
    """`settings` with the upstream's credentials from UPSTREAM_CREDENTIALS_SECRET, if set."""
    arn = os.environ.get("UPSTREAM_CREDENTIALS_SECRET", "").strip()
    if not arn or not _uses_upstream(settings):
        return settings
    if settings.upstream_username is not None or settings.upstream_password is not None:
        raise ConfigError(
            "UPSTREAM_CREDENTIALS_SECRET is set and the upstream has credentials already "
            "(UPSTREAM_USERNAME / UPSTREAM_PASSWORD, or in UPSTREAM_INDEX_URL): give them in "
            "one place only"
        )
    username, password = _secret_credentials(arn)
    return dataclasses.replace(settings, upstream_username=username, upstream_password=password)


@functools.cache
def _secret_credentials(arn: str) -> tuple[str, str]:
    """The (username, password) the secret `arn` holds as JSON; read once (a failure is
    not cached: the next request asks again). ConfigError names the secret, never its value."""
    from serverless_pypi.storage.aws_json import SECRETS_MANAGER, AwsCallFailed, AwsJsonClient

    try:
        answer = AwsJsonClient(SECRETS_MANAGER).call("GetSecretValue", {"SecretId": arn})
    except AwsCallFailed as e:
        raise ConfigError(f"cannot read UPSTREAM_CREDENTIALS_SECRET {arn}: {e}") from None
    try:
        value = json.loads(answer.get("SecretString") or "")
    except ValueError:
        value = None
    if not (
        isinstance(value, dict)
        and isinstance(value.get("username"), str)
        and isinstance(value.get("password"), str)
    ):
        raise ConfigError(
            f"UPSTREAM_CREDENTIALS_SECRET {arn} must hold the JSON object "
            '{"username": "...", "password": "..."} (as a secret string)'
        )
    return value["username"], value["password"]


def _puller(settings: Settings) -> Puller | None:
    """What asks for pulled-through copies in mirror mode: the pull queue (PULL_QUEUE_URL).

    Without the queue nothing is copied (logged once): downloads go to the upstream as in
    proxy mode, but for the copies the bucket holds already (`serverless-pypi mirror`)."""
    if not _uses_upstream(settings) or settings.upstream_mode != "mirror":
        return None
    queue_url = os.environ.get("PULL_QUEUE_URL", "").strip()
    if queue_url:
        from serverless_pypi.index.pull import QueuePuller

        return QueuePuller(queue_url)
    _log_once(
        "UPSTREAM_MODE=mirror needs PULL_QUEUE_URL (the queue of the function that copies): "
        "upstream files are not copied, downloads go to the upstream (as in proxy mode) but "
        "for the copies the bucket holds"
    )
    return None


@functools.lru_cache(maxsize=64)
def _log_once(message: str) -> None:
    """Log an error once per execution environment, not once per request."""
    log.error("%s", message)


def _configured_application() -> Application | Response:
    """The application, or the 500 every request gets while the configuration is invalid."""
    try:
        return application()
    except ConfigError as e:
        _log_once(f"configuration error: {e}")
        return internal_error("The index is misconfigured; the reason is in the function's log.")


# Build during the init phase (full CPU, not billed per request) when configured.
if os.environ.get("S3_BUCKET") and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    _configured_application()


class BadEvent(InvalidRequest):
    """An event API Gateway or a function URL would never send: answered 400."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"Bad request event: {problem}.")


def _optional(event: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    # null and absent are the same (the console's test button sends null)
    value = event.get(name)
    if value is not None and not isinstance(value, kind):
        raise BadEvent(f"the event's {name!r} is a {type(value).__name__}")
    return value


def _string_map(event: dict[str, Any], name: str) -> dict[str, str]:
    """`headers` / `queryStringParameters`: an object of strings (null values dropped)."""
    value = _optional(event, name, dict) or {}
    if not all(isinstance(k, str) and isinstance(v, str | None) for k, v in value.items()):
        raise BadEvent(f"the event's {name!r} holds values that are not strings")
    return {k: v for k, v in value.items() if v is not None}


def _multi_map(event: dict[str, Any], name: str) -> list[tuple[str, str]]:
    """`multiValueHeaders` / `multiValueQueryStringParameters`: an object of string lists."""
    value = _optional(event, name, dict) or {}
    pairs: list[tuple[str, str]] = []
    for key, values in value.items():
        if values is None:
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadEvent(f"the event's {name!r} holds values that are not lists of strings")
        pairs.extend((str(key), v) for v in values)
    return pairs


def _raw_query(event: dict[str, Any]) -> str:
    if "rawQueryString" in event:
        return str(_optional(event, "rawQueryString", str) or "")
    # both are checked; the multi-value form, when there, holds every value of a repeated name
    single = _string_map(event, "queryStringParameters")
    multi = _multi_map(event, "multiValueQueryStringParameters")
    return urlencode(multi or list(single.items()))


def _headers(event: dict[str, Any]) -> Headers:
    single = _string_map(event, "headers")
    multi = _multi_map(event, "multiValueHeaders")
    return Headers(multi or single)


def _body(event: dict[str, Any]) -> bytes:
    body = _optional(event, "body", str) or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error:
            raise BadEvent("the event's body is marked base64 but is not valid base64") from None
    return body.encode("utf-8", "surrogatepass")


def _method(value: object) -> str:
    if not isinstance(value, str | None):
        raise BadEvent("the event's HTTP method is not a string")
    return (value or "GET").upper()


def _parse_request(event: dict[str, Any]) -> Request | Response:
    context = _optional(event, "requestContext", dict) or {}
    if event.get("version") == "2.0" or "rawPath" in event:
        http = _optional(context, "http", dict)
        if http is None:
            raise BadEvent("the event's requestContext.http is missing (payload 2.0)")
        method = _method(http.get("method"))
        path = _optional(event, "rawPath", str) or "/"
        stage = _optional(context, "stage", str)
        if stage and stage != "$default" and (path == f"/{stage}" or path.startswith(f"/{stage}/")):
            path = path[len(stage) + 1 :] or "/"
            if stage == "simple":
                # the stage itself is the index root, as in the reference module
                path = "/simple" + path
        route = index_route(path)
        raw = _optional(event, "rawPath", str) or "/"
    else:
        method = _method(event.get("httpMethod"))
        params = _optional(event, "pathParameters", dict) or {}
        # REST API: the greedy proxy parameter is the path below the index root, decoded
        proxied = next(iter(params.values()), "") if params else ""
        if not isinstance(proxied, str | None):
            raise BadEvent("the event's pathParameters hold a value that is not a string")
        route = quote(proxied or "", safe="/")
        if "/" + route in HOST_ROOT_PATHS:
            # a custom domain whose root maps to the stage brings trusted publishing's
            # host-root routes (`/_/oidc/...`, `/.well-known/pytp`) here as paths below the
            # stage; no project name starts with "_" or ".", so none is shadowed
            route = "/" + route
        # the path the client sent: the stage's (or a custom domain's base path) and below
        raw = _optional(context, "path", str) or f"/{_optional(context, 'stage', str) or ''}/"
    if isinstance(route, Response):
        return route
    headers = _headers(event)
    return Request(
        method,
        route,
        _raw_query(event),
        headers,
        _body(event),
        scheme=_scheme(headers),
        # the index root as the client sees it: the absolute links of Upload 2.0 sessions
        base=index_base(raw, route) if not route.startswith("/") else "/simple/",
    )


def _scheme(headers: Headers) -> str:
    """The scheme the client used: API Gateway and function URLs take https only and say so
    in X-Forwarded-Proto; a test front over plain HTTP says `http` there."""
    forwarded = (headers.get("x-forwarded-proto") or "").split(",", 1)[0].strip().lower()
    return "http" if forwarded == "http" else "https"


def lambda_request(event: object) -> Request | Response:
    """The request an event carries, or the answer for a path outside the index or for an
    event no front would send (400, with what is wrong)."""
    try:
        if not isinstance(event, dict):
            raise BadEvent("the event is not a JSON object")
        return _parse_request(event)
    except DomainError as e:
        return error_response(e)


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
    request = lambda_request(event)
    app = _configured_application()
    if isinstance(request, Response):
        response, method, path = request, "GET", "-"
    elif isinstance(app, Response):
        response, method, path = app, request.method, request.path
    else:
        method, path = request.method, request.path
        try:
            response = app.handle(request)
        except Exception:
            log.exception("unhandled error")
            response = internal_error("The index failed to answer; the error is logged.")
    # a line per request only when the operator asked for it (LOG_REQUESTS); a failure of the
    # index's own (5xx) always; the method, the path below the index and the status, never
    # queries or headers, which may carry tokens or presigned credentials
    asked = isinstance(app, Application) and app.settings.log_requests
    if asked or response.status >= 500:
        log.info(
            json.dumps(
                {
                    "method": method,
                    "path": ("" if path.startswith("/") else "/") + path[:200],
                    "status": response.status,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                }
            )
        )
    return lambda_response(response, method)


@functools.cache
def indexer() -> Indexer:
    """The indexer of this execution environment, built once and then reused."""
    from serverless_pypi.index.indexer import Indexer

    return Indexer(_store())


@functools.cache
def _pull_client() -> UpstreamClient:
    """The indexer's client of the upstream it copies files from (mirror mode)."""
    from serverless_pypi.upstream.client import UpstreamClient

    settings = _upstream_credentials(Settings.from_env())
    if not _uses_upstream(settings):
        raise ConfigError(
            "a pull request arrived, but UPSTREAM_INDEX_URL (mode proxy or mirror) is not set "
            "on this function"
        )
    assert settings.upstream_index_url is not None
    return UpstreamClient(
        settings.upstream_index_url,
        username=settings.upstream_username,
        password=settings.upstream_password,
        timeout=settings.upstream_timeout,
    )


def _pull(worker: Indexer, message: Message, counts: dict[str, int]) -> None:
    """Copy the upstream files a message asks for. A refused copy (the bytes do not match the
    upstream's page) is logged by `pull_file` and done with: a retry would be refused again.
    Other failures (the upstream down, the store failing) raise: the message is retried."""
    from serverless_pypi.index.pull import PullRefused, pull_file
    from serverless_pypi.index.upstream_cache import UpstreamCache

    cache = UpstreamCache(worker.store)
    for name, filename in message.pulls:
        try:
            copied = pull_file(cache, _pull_client(), name, filename)
        except PullRefused:
            outcome = "pull_refused"
        else:
            outcome = "pulled" if copied else "already_pulled"
        counts[outcome] = counts.get(outcome, 0) + 1


def _index_message(worker: Indexer, message: Message, counts: dict[str, int]) -> None:
    """Do what one message asks (a full reindex, keys to index, files to pull), counting the
    outcomes."""
    if message.full_reindex:
        from serverless_pypi.index.housekeeping import sweep

        report = worker.reindex()
        swept = sweep(worker.store, check=False)
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
                    "upstream_orphans": len(swept.upstream_copies),
                    "expired_oidc_markers": len(swept.oidc_markers),
                    "upload_session_keys": len(swept.sessions),
                }
            )
        )
    for key in message.keys:
        outcome = worker.index_key(key)
        counts[outcome.action] = counts.get(outcome.action, 0) + 1
        log.info(json.dumps({"key": key[:300], "action": outcome.action}))
    if message.pulls:
        _pull(worker, message, counts)


def reindex_handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Index the keys an S3 event names, reindex everything on a scheduled event, or copy
    the upstream files pull messages name (mirror mode).

    For SQS batches, failed messages are reported in `batchItemFailures` so only they are
    retried (the event source mapping needs `ReportBatchItemFailures`); a message that cannot
    be read (not JSON, no known shape) is reported too, so it reaches the dead-letter queue.
    Other invocations raise on failure, so EventBridge retries them and then sends them to the
    dead-letter queue; parts of them that cannot be read are logged and skipped.
    """
    from serverless_pypi.index.events import parse_invocation
    from serverless_pypi.storage.s3 import S3Store

    worker = indexer()
    store = worker.store
    assert isinstance(store, S3Store)
    invocation = parse_invocation(event, store.bucket, store.prefix)
    failed: list[str | None] = []
    counts: dict[str, int] = {}
    for message in invocation.messages:
        for reason in message.ignored:
            log.info("ignored %s", reason)
        for reason in message.unreadable[:20]:
            log.warning("unreadable part of message %s: %s", message.message_id, reason)
        if message.unreadable and message.message_id is not None:
            # an SQS message that cannot be read is reported as failed, so it reaches the
            # dead-letter queue instead of being deleted unseen; any other event is logged and
            # skipped (a retry would not make it readable)
            failed.append(message.message_id)
        try:
            _index_message(worker, message, counts)
        except Exception:
            log.exception("indexing failed for message %s", message.message_id)
            if not failed or failed[-1] != message.message_id:
                failed.append(message.message_id)
    if invocation.from_sqs:
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failed if m is not None]}
    if failed:
        raise RuntimeError("indexing failed; the error is logged above and the event is retried")
    return {"status": "ok", **counts}
