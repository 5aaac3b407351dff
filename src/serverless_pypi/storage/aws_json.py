"""Signed requests of the AWS JSON protocol with the standard library: SQS and Secrets Manager.

The API function sends one SQS message per file to pull through (mirror mode) and reads the
upstream's credentials from Secrets Manager once; importing boto3 for that would cost its
cold start 200 ms. The AWS JSON protocol (awsJson1_0 for SQS, awsJson1_1 for Secrets Manager)
is one POST to `/` of the service's endpoint: the operation in `X-Amz-Target`, the input as a
JSON body, signed with SigV4 (`sigv4`, the payload's sha256 signed, as botocore's SigV4Auth
does), over a kept-alive connection of the calling thread (`http1`); the answer is JSON, a
refusal `{"__type": ..., "message": ...}`.

Credentials come from the environment (Lambda's role sets them); the region from AWS_REGION
or AWS_DEFAULT_REGION; the endpoint is botocore's: AWS_ENDPOINT_URL_<SERVICE> (e.g.
AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_SECRETS_MANAGER), else AWS_ENDPOINT_URL, else
`https://<service>.<region>.amazonaws.com`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from serverless_pypi.storage.http1 import Connection, StaleConnection
from serverless_pypi.storage.s3_light import environment_credentials
from serverless_pypi.storage.sigv4 import sign_headers

if TYPE_CHECKING:
    import ssl

__all__ = ["SECRETS_MANAGER", "SQS", "AwsCallFailed", "AwsJsonClient", "Service"]

#: attempts of a call that the service answered "busy" (5xx, throttling) or did not answer
MAX_ATTEMPTS = 3
#: the largest answer read (a secret is at most 64 KiB; SQS answers are small)
MAX_ANSWER = 1024 * 1024
_THROTTLED = frozenset(
    {"ThrottlingException", "Throttling", "RequestThrottled", "ServiceUnavailable"}
)


@dataclass(frozen=True, slots=True)
class Service:
    """What the protocol needs of a service: its signing name (also the endpoint's first
    label), the suffix of its endpoint variable, its target prefix and JSON version."""

    name: str
    endpoint_variable: str
    target_prefix: str
    json_version: str


SQS = Service("sqs", "AWS_ENDPOINT_URL_SQS", "AmazonSQS", "1.0")
SECRETS_MANAGER = Service(
    "secretsmanager", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "secretsmanager", "1.1"
)


class AwsCallFailed(Exception):
    """The service refused the call or did not answer: `code` says which (an AWS error code,
    or the kind of network failure), `status` the HTTP status (0: no answer)."""

    def __init__(self, service: str, operation: str, code: str, message: str, status: int = 0):
        super().__init__(f"{service} {operation} failed: {code}: {message}"[:500])
        self.code = code
        self.status = status


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def endpoint_url(service: Service, region: str) -> str:
    """The endpoint botocore would call for `service` in `region`."""
    custom = os.environ.get(service.endpoint_variable) or os.environ.get("AWS_ENDPOINT_URL")
    if custom:
        return custom.rstrip("/")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{service.name}.{region}.{suffix}"


class _Connections(threading.local):
    connection: Connection | None = None


class AwsJsonClient:
    """Calls of one service's JSON protocol, e.g. `AwsJsonClient(SQS).call("SendMessage",
    {"QueueUrl": ..., "MessageBody": ...})`."""

    def __init__(
        self,
        service: Service,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        timeout: float = 10.0,
        attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.service = service
        self.region = region or _region()
        self.endpoint = (endpoint or endpoint_url(service, self.region)).rstrip("/")
        parts = urlsplit(self.endpoint)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"{self.endpoint!r} is not an http(s) endpoint URL")
        self.scheme = parts.scheme
        default = 443 if parts.scheme == "https" else 80
        self.address = (parts.hostname, parts.port or default)
        netloc = parts.netloc.rpartition("@")[2]
        self.host = netloc.removesuffix(f":{default}")
        self.path = parts.path or "/"
        self.timeout = timeout
        self.attempts = attempts
        self._connections = _Connections()
        self._context: ssl.SSLContext | None = None

    def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The answer of `operation` to `payload`; AwsCallFailed when refused or unanswered
        (a busy or silent service is asked again, up to `attempts` times in all)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        for attempt in range(1, self.attempts + 1):
            try:
                status, answer = self._post(operation, body)
            except OSError as e:
                if attempt == self.attempts:
                    raise AwsCallFailed(
                        self.service.name, operation, type(e).__name__, str(e)
                    ) from e
                _backoff(attempt)
                continue
            if status < 300:
                return self._json(operation, answer, status)
            code, message = self._refusal(answer)
            if attempt < self.attempts and (status >= 500 or code in _THROTTLED):
                _backoff(attempt)
                continue
            raise AwsCallFailed(self.service.name, operation, code or str(status), message, status)
        raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, operation: str, body: bytes) -> tuple[int, bytes]:
        credentials = environment_credentials()
        if credentials is None:
            raise AwsCallFailed(
                self.service.name,
                operation,
                "NoCredentials",
                "no AWS credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
            )
        headers = {
            "Content-Type": f"application/x-amz-json-{self.service.json_version}",
            "X-Amz-Target": f"{self.service.target_prefix}.{operation}",
        }
        signed = sign_headers(
            "POST",
            self.host,
            self.path,
            "",
            headers,
            credentials=credentials,
            region=self.region,
            payload_hash=hashlib.sha256(body).hexdigest(),
            service=self.service.name,
            content_sha256=False,
        )
        connection = self._connections.connection or self._connect()
        self._connections.connection = None
        try:
            try:
                response = connection.request("POST", self.path, signed, body)
            except StaleConnection:
                response = connection.request("POST", self.path, signed, body)  # a new one
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > MAX_ANSWER:
                raise OSError(f"an answer of {length} bytes, more than {MAX_ANSWER}")
            answer = response.body()
        except BaseException:
            connection.close()
            raise
        if connection.reusable:
            self._connections.connection = connection
        else:
            connection.close()
        return response.status, answer

    def _connect(self) -> Connection:
        context = None
        if self.scheme == "https":
            if self._context is None:
                import ssl  # every AWS endpoint

                self._context = ssl.create_default_context()
            context = self._context
        return Connection(*self.address, timeout=self.timeout, context=context)

    def _json(self, operation: str, answer: bytes, status: int) -> dict[str, Any]:
        try:
            value = json.loads(answer or b"{}")
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise AwsCallFailed(
                self.service.name, operation, "BadAnswer", "an answer that is not JSON", status
            )
        return value

    @staticmethod
    def _refusal(answer: bytes) -> tuple[str, str]:
        """The error code (`__type`, namespace removed) and message of a refusal."""
        try:
            value = json.loads(answer)
        except ValueError:
            return "", answer[:200].decode("utf-8", "replace")
        if not isinstance(value, dict):
            return "", ""
        code = str(value.get("__type") or value.get("code") or "").rpartition("#")[2]
        message = str(value.get("message") or value.get("Message") or "")
        return code, message


def _backoff(attempt: int) -> None:
    import random  # only after a failure

    time.sleep(min(1.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311
