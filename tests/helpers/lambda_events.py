"""Lambda events: the indexer's invocations and the recorded shapes of the API fronts.

The events in tests/events/ keep the shape API Gateway and Lambda send; `event` rewrites only
the path, method, headers and query, the way the front would fill them in.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from serverless_pypi.adapters.aws_lambda import api_handler

EVENTS = Path(__file__).resolve().parents[1] / "events"
#: the wheel the Lambda tests publish in their bucket (my_pkg 1.0)
WHEEL = "my_pkg-1.0-py3-none-any.whl"

# -- the indexer's invocations ---------------------------------------------------------------

BUCKET = "pkgs"


def eventbridge(
    key: str, detail_type: str = "Object Created", bucket: str = BUCKET
) -> dict[str, Any]:
    return {
        "version": "0",
        "detail-type": detail_type,
        "source": "aws.s3",
        "detail": {"version": "0", "bucket": {"name": bucket}, "object": {"key": key}},
    }


def s3_notification(*keys: str, bucket: str = BUCKET) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
            }
            for key in keys
        ]
    }


def sns(message: dict[str, Any]) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(message)}}]}


def sqs(*bodies: Any) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "eventSource": "aws:sqs",
                "body": b if isinstance(b, str) else json.dumps(b),
            }
            for i, b in enumerate(bodies)
        ]
    }


# -- the API fronts ---------------------------------------------------------------------------

REST = ["rest_api_proxy", "rest_api_custom_domain"]
HTTP = ["http_api_default_stage", "http_api_named_stage", "function_url"]
SHAPES = REST + HTTP
LAMBDA_RESPONSE_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
CONFIG = (
    "S3_PREFIX",
    "S3_PRESIGNED_URL_TTL",
    "FALLBACK_INDEX_URL",
    "PRIVATE_PROJECTS",
    "CACHE_CONTROL",
    "REQUIRE_AUTH_FOR_READ",
)
#: the upstream's settings (issue 12), cleared by tests that configure one
UPSTREAM_CONFIG = (
    "UPSTREAM_INDEX_URL",
    "UPSTREAM_MODE",
    "UPSTREAM_TTL",
    "UPSTREAM_USERNAME",
    "UPSTREAM_PASSWORD",
    "UPSTREAM_CREDENTIALS_SECRET",
    "PULL_QUEUE_URL",
)


def fresh_environment() -> None:
    """A new execution environment: forget what a warm function keeps."""
    from serverless_pypi.adapters import aws_lambda

    aws_lambda.application.cache_clear()
    aws_lambda.indexer.cache_clear()
    aws_lambda._log_once.cache_clear()
    aws_lambda._pull_client.cache_clear()
    aws_lambda._secret_credentials.cache_clear()


def load(name: str) -> dict[str, Any]:
    """The recorded event `name` (a fresh copy: change it freely)."""
    data: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return data


def event(
    name: str,
    route: str = "my-pkg/",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The event `name` for `route` (the path below the index root, percent-encoded)."""
    data = copy.deepcopy(load(name))
    headers = {"Accept": "text/html", "Accept-Encoding": "identity", **(headers or {})}
    context = data["requestContext"]
    if data.get("version") == "2.0":
        prefix = {"http_api_named_stage": "/prod"}.get(name, "")
        raw = f"{prefix}/simple/{route}" if route is not None else prefix
        data["rawPath"] = raw
        context["http"]["path"] = unquote(raw)
        context["http"]["method"] = method
        data["headers"] = {k.lower(): v for k, v in headers.items()}
        data["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (query or {}).items())
        if query:
            data["queryStringParameters"] = dict(query)
        return data
    # REST API: `path` keeps a custom domain's base path; the proxy parameter is decoded
    base = "/pypi" if name == "rest_api_custom_domain" else ""
    data["httpMethod"] = context["httpMethod"] = method
    data["path"] = f"{base}/{route}"
    context["path"] = f"{base or '/simple'}/{route}"
    if route:
        data["resource"] = context["resourcePath"] = "/{package+}"
        data["pathParameters"] = {"package": unquote(route)}
    else:
        data["resource"] = context["resourcePath"] = "/"
        data["pathParameters"] = None
    data["headers"] = dict(headers)
    data["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    data["queryStringParameters"] = dict(query) if query else None
    data["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    return data


def body_bytes(response: dict[str, Any]) -> bytes:
    body = response.get("body") or ""
    data = base64.b64decode(body) if response["isBase64Encoded"] else body.encode()
    if response["headers"].get("Content-Encoding") == "gzip":
        data = gzip.decompress(data)
    return data


def check_shape(response: dict[str, Any]) -> None:
    """What API Gateway accepts; anything else is a 502 'Malformed Lambda proxy response'."""
    assert set(response) <= LAMBDA_RESPONSE_KEYS
    assert type(response["statusCode"]) is int
    assert isinstance(response["headers"], dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in response["headers"].items())
    assert isinstance(response["body"], str)
    assert type(response["isBase64Encoded"]) is bool
    json.dumps(response)


def handle(data: Any) -> dict[str, Any]:
    """The API function's answer to `data`, checked to be what API Gateway accepts."""
    response = api_handler(data, None)
    check_shape(response)
    return response


class FunctionUrlFront(BaseHTTPRequestHandler):
    """HTTP in, a function URL event (payload 2.0) to `api_handler`, its answer out: a
    function URL on loopback for real clients (serve it with a ThreadingHTTPServer)."""

    protocol_version = "HTTP/1.1"
    #: the scheme the front says it was reached by (`X-Forwarded-Proto`); None: none said,
    #: so the handler takes https, as on AWS
    forwarded_proto: str | None = None

    def received(self, body: bytes) -> None:
        """Called with every request body before the handler sees it."""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.received(body)
        event = copy.deepcopy(load("function_url"))
        event["rawPath"] = parts.path
        event["rawQueryString"] = parts.query
        event["headers"] = {k.lower(): v for k, v in self.headers.items()}
        if self.forwarded_proto is not None:
            event["headers"]["x-forwarded-proto"] = self.forwarded_proto
        event["requestContext"]["http"]["method"] = self.command
        event["requestContext"]["http"]["path"] = parts.path
        event["body"] = base64.b64encode(body).decode() if body else None
        event["isBase64Encoded"] = bool(body)
        answer = api_handler(event, None)
        data = answer.get("body") or ""
        payload = base64.b64decode(data) if answer.get("isBase64Encoded") else data.encode()
        self.send_response(answer["statusCode"])
        for name, value in answer["headers"].items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_DELETE = do_PUT = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass
