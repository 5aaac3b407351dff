"""A store in an S3 bucket whose reads need no SDK: SigV4 (`sigv4`) over HTTP/1.1 (`http1`).

The API function reads (a page, a manifest, a metadata file, a listing) and presigns
(downloads); importing boto3 and building a client costs it about 200 ms of cold start, more
than the whole rest of a first answer. Here every read is one signed request on a kept-alive
connection of the calling thread (`http1`: sockets, without `http.client` and its `email`),
ListObjectsV2 answers are parsed with `xml.etree`, and S3's refusals mean what they mean to
the boto3 store (`s3_errors`, shared). A small `put` (a cached upstream page or metadata
file, with its conditions) is one signed PutObject too; the other writes (larger or streamed
bodies, multipart uploads, deletes) are rarer and go through the boto3 store (`storage.s3`),
imported at the first of them only.

Credentials come from the environment, as Lambda sets them (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); without them every call goes through the boto3
store, which knows the other sources (profiles, container and instance roles). The region is
AWS_REGION or AWS_DEFAULT_REGION; the endpoint is what boto3 would use: the regional
virtual-host endpoint (`s3.amazonaws.com` in us-east-1), path style for a bucket name that is
not a DNS label, and path style on a custom endpoint (`endpoint_url`, AWS_ENDPOINT_URL_S3,
AWS_ENDPOINT_URL).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, BinaryIO, cast
from urllib.parse import unquote_plus, urlsplit

from serverless_pypi.storage.base import (
    Blob,
    NotFound,
    ObjectInfo,
    PreconditionFailed,
    Redirect,
    Store,
    StoreError,
    UploadedPart,
)
from serverless_pypi.storage.http1 import Connection, Response, StaleConnection
from serverless_pypi.storage.s3_errors import (
    THROTTLED,
    translate_answer,
    unreachable,
)
from serverless_pypi.storage.sigv4 import (
    EMPTY_SHA256,
    Credentials,
    canonical_query,
    presign_url,
    quote_key,
    sign_headers,
)

if TYPE_CHECKING:
    import ssl
    from xml.etree.ElementTree import Element

    from serverless_pypi.storage.s3 import S3Store

__all__ = ["Endpoint", "LightS3Store", "environment_credentials", "resolve_endpoint"]

#: attempts of a request that S3 answered "busy" (500, 503, throttling) or did not answer
MAX_ATTEMPTS = 4
#: the largest body `put` sends itself (cached pages, metadata); larger ones go through boto3
MAX_LIGHT_PUT = 8 * 1024 * 1024
TIMEOUT = 60.0
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
# a bucket name that can be a host name label (no dots: a wildcard certificate covers one level)
_VIRTUAL_HOSTABLE = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_RETRIED_STATUSES = frozenset({500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the bucket's objects are: `scheme://netloc` + `base` + the encoded key."""

    scheme: str
    netloc: str  # as the endpoint URL writes it
    base: str  # "" (virtual host) or "/bucket", after the endpoint's own path

    @property
    def host(self) -> str:
        """The Host header (and the signed host): no port when it is the scheme's default."""
        default = ":443" if self.scheme == "https" else ":80"
        return self.netloc.removesuffix(default)

    def connection_address(self) -> tuple[str, int]:
        name, port = self.netloc, 443 if self.scheme == "https" else 80
        if not name.endswith("]") and ":" in name:
            name, _, number = name.rpartition(":")
            port = int(number)
        return name.strip("[]"), port


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _custom_endpoint(endpoint_url: str | None) -> str | None:
    return (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )


def resolve_endpoint(bucket: str, region: str, endpoint_url: str | None = None) -> Endpoint:
    """The endpoint boto3 (signature s3v4, addressing `virtual`, or `path` on a custom
    endpoint, as `storage.s3.make_client` configures it) sends the bucket's requests to."""
    custom = _custom_endpoint(endpoint_url)
    if custom:
        parts = urlsplit(custom)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"{custom!r} is not an http(s) endpoint URL")
        netloc = parts.netloc.rpartition("@")[2]
        return Endpoint(parts.scheme, netloc, f"{parts.path.rstrip('/')}/{quote_key(bucket)}")
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    service = "s3" if region == "us-east-1" else f"s3.{region}"
    if _VIRTUAL_HOSTABLE.fullmatch(bucket):
        return Endpoint("https", f"{bucket}.{service}.{suffix}", "")
    return Endpoint("https", f"{service}.{suffix}", f"/{quote_key(bucket)}")


def environment_credentials() -> Credentials | None:
    """The credentials in the environment (Lambda's role sets all three), or None."""
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        return None
    return Credentials(access, secret, os.environ.get("AWS_SESSION_TOKEN") or None)


def _http_date(value: str | None) -> datetime:
    """An RFC 9110 IMF-fixdate (`Last-Modified`), as an aware datetime."""
    try:
        _, day, month, year, clock, _ = (value or "").split()
        hour, minute, second = clock.split(":")
        return datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except (ValueError, KeyError):
        return datetime.fromtimestamp(0, UTC)


def _xml(data: bytes) -> Element:
    from xml.etree.ElementTree import fromstring  # listings and errors only

    return fromstring(data)  # noqa: S314 (S3's own answer, over a signed connection)


def _text(element: Element, name: str) -> str:
    return element.findtext(_NS + name) or element.findtext(name) or ""


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class _Connections(threading.local):
    """One kept-alive connection per thread (the local server is threaded; Lambda is not)."""

    connection: Connection | None = None


class LightS3Store(Store):
    """The `S3Store` contract: reads and small puts over the standard library, the other
    writes through boto3."""

    #: keys per ListObjectsV2 page (None: S3's own, 1,000); tests set it smaller
    page_size: int | None = None

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.region = _region()
        self.endpoint = resolve_endpoint(bucket, self.region, endpoint_url)
        self.location = f"s3://{bucket}/{self.prefix}"
        self._connections = _Connections()
        self._writer: S3Store | None = None
        self._writer_lock = threading.Lock()
        self._context: ssl.SSLContext | None = None

    # -- the boto3 store, for writes and for credentials from elsewhere --------------------

    @property
    def writer(self) -> S3Store:
        """The boto3 store of the same bucket and prefix, built at its first use."""
        with self._writer_lock:
            if self._writer is None:
                from serverless_pypi.storage.s3 import S3Store

                self._writer = S3Store(self.bucket, self.prefix, endpoint_url=self.endpoint_url)
            return self._writer

    def put(
        self,
        key: str,
        data: bytes | IO[bytes],
        *,
        content_type: str | None = None,
        content_encoding: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """A small body (a cached page, a metadata file: up to `MAX_LIGHT_PUT`) is one signed
        PutObject, as boto3 sends it (the payload's sha256 signed); a larger body, a file
        object, or credentials from elsewhere go through the boto3 store."""
        credentials = environment_credentials()
        if credentials is None or not isinstance(data, bytes) or len(data) > MAX_LIGHT_PUT:
            return self.writer.put(
                key,
                data,
                content_type=content_type,
                content_encoding=content_encoding,
                if_match=if_match,
                if_none_match=if_none_match,
            )
        if not key:
            raise NotFound(key)
        headers: dict[str, str] = {}
        if content_type:
            headers["Content-Type"] = content_type
        if content_encoding:
            headers["Content-Encoding"] = content_encoding
        if if_none_match:
            headers["If-None-Match"] = "*"
        if if_match is not None:
            headers["If-Match"] = if_match
        try:
            response, _ = self._request(credentials, "PUT", key, headers=headers, body=data)
        except NotFound:
            if if_match is not None:
                # S3 answers 404 to If-Match on a missing object: the condition does not hold
                raise PreconditionFailed(key) from None
            raise
        return response.headers.get("etag", "")

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        verify: Callable[[], None],
        content_type: str | None = None,
    ) -> str:
        # a distribution of any size: boto3's multipart upload (the indexer's job, not the API's)
        return self.writer.put_stream(key, stream, verify=verify, content_type=content_type)

    def delete(self, key: str) -> None:
        self.writer.delete(key)

    # -- copies and multipart uploads (upload sessions): the boto3 store's ----------------
    supports_multipart = True

    def copy(self, source: str, destination: str, *, if_none_match: bool = False) -> ObjectInfo:
        return self.writer.copy(source, destination, if_none_match=if_none_match)

    def read_range(
        self, key: str, start: int, length: int, *, if_match: str | None = None
    ) -> bytes:
        return self.writer.read_range(key, start, length, if_match=if_match)

    def create_multipart(self, key: str) -> str:
        return self.writer.create_multipart(key)

    def presign_part(self, key: str, upload_id: str, number: int, expires: int) -> str:
        """Signed here, like a download URL (no request); boto3's without environment
        credentials."""
        credentials = environment_credentials()
        if credentials is None:
            return self.writer.presign_part(key, upload_id, number, expires)
        return presign_url(
            "PUT",
            f"{self.endpoint.scheme}://{self.endpoint.netloc}",
            self.endpoint.host,
            f"{self.endpoint.base}/{quote_key(self.prefix + key)}",
            credentials=credentials,
            region=self.region,
            expires=expires,
            parameters={"uploadId": upload_id, "partNumber": str(number)},  # botocore's order
        )

    def list_parts(self, key: str, upload_id: str) -> Sequence[UploadedPart]:
        return self.writer.list_parts(key, upload_id)

    def complete_multipart(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        *,
        if_none_match: bool = False,
    ) -> str:
        return self.writer.complete_multipart(key, upload_id, parts, if_none_match=if_none_match)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self.writer.abort_multipart(key, upload_id)

    # -- requests ----------------------------------------------------------------------------

    def _connect(self) -> Connection:
        name, port = self.endpoint.connection_address()
        if self.endpoint.scheme == "https" and self._context is None:
            import ssl  # only for TLS endpoints (every AWS one)

            self._context = ssl.create_default_context()
        context = self._context if self.endpoint.scheme == "https" else None
        return Connection(name, port, timeout=TIMEOUT, context=context)

    def _checkout(self) -> Connection:
        """The thread's kept-alive connection, taken (a request while it is busy, inside
        `open`, gets a connection of its own)."""
        connection = self._connections.connection
        self._connections.connection = None
        return connection if connection is not None else self._connect()

    def _checkin(self, connection: Connection) -> None:
        if connection.reusable and self._connections.connection is None:
            self._connections.connection = connection
        else:
            connection.close()

    def _send(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        credentials: Credentials,
        *,
        body: bytes = b"",
    ) -> Response:
        """One request, sent again at once when a kept-alive connection turned out stale."""
        signed = sign_headers(
            method,
            self.endpoint.host,
            path,
            query,
            headers,
            credentials=credentials,
            region=self.region,
            payload_hash=hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256,
        )
        target = f"{path}?{query}" if query else path
        connection = self._checkout()
        try:
            return connection.request(method, target, signed, body)
        except StaleConnection:
            return connection.request(method, target, signed, body)  # on a new connection

    def _request(
        self,
        credentials: Credentials,
        method: str,
        key: str,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        *,
        stream: bool = False,
        body: bytes = b"",
    ) -> tuple[Response, bytes]:
        """A signed request on the object `key` (the bucket for ""), retried while S3 is busy
        or does not answer; S3's refusals raised as StoreErrors. The body is read, unless
        `stream` asks for a successful answer unread (its connection is then the caller's)."""
        # the bucket itself: "/" on its own host, "/bucket" in path style (as botocore sends it)
        path = f"{self.endpoint.base}/{quote_key(self.prefix + key)}" if key else ""
        path = path or self.endpoint.base or "/"
        encoded = canonical_query(query) if query else ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self._send(method, path, encoded, headers or {}, credentials, body=body)
                if response.status < 300 and stream:
                    return response, b""
                answer = response.body()
            except OSError as e:
                if attempt == MAX_ATTEMPTS:
                    raise unreachable(type(e).__name__, self.bucket, str(e)) from e
                _backoff(attempt)
                continue
            self._checkin(response.connection)
            if response.status < 300:
                return response, answer
            code = self._error_code(answer)
            if attempt < MAX_ATTEMPTS and (
                response.status in _RETRIED_STATUSES or code in THROTTLED
            ):
                _backoff(attempt)
                continue
            raise self._refusal(response.status, code, answer, key or self.prefix)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _error_code(body: bytes) -> str:
        if not body.lstrip().startswith(b"<"):
            return ""
        try:
            return _text(_xml(body), "Code")
        except SyntaxError:
            return ""

    def _refusal(self, status: int, code: str, body: bytes, key: str) -> StoreError:
        message = ""
        if body:
            with contextlib.suppress(SyntaxError):
                message = _text(_xml(body), "Message")
        detail = f"{code or status}: {message}" if message else str(code or status)
        return translate_answer(code or str(status), str(status), detail, key, self.bucket)

    def _read(
        self,
        method: str,
        key: str,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> _Answer:
        credentials = environment_credentials()
        if credentials is None:
            raise _NoEnvironmentCredentials
        response, body = self._request(credentials, method, key, query, headers)
        return _Answer(response.status, response.headers, body)

    # -- reads ----------------------------------------------------------------------------

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob:
        if not key:
            raise NotFound(key)
        headers = {"If-None-Match": if_none_match} if if_none_match is not None else None
        try:
            answer = self._read("GET", key, headers=headers)
        except _NoEnvironmentCredentials:
            return self.writer.get(key, if_none_match=if_none_match)
        return Blob(
            answer.body,
            answer.headers.get("etag", ""),
            _http_date(answer.headers.get("last-modified")),
        )

    def head(self, key: str) -> ObjectInfo:
        if not key:
            raise NotFound(key)
        try:
            answer = self._read("HEAD", key)
        except _NoEnvironmentCredentials:
            return self.writer.head(key)
        return ObjectInfo(
            key,
            int(answer.headers.get("content-length", "0")),
            answer.headers.get("etag", ""),
            _http_date(answer.headers.get("last-modified")),
        )

    @contextlib.contextmanager
    def open(self, key: str, *, if_match: str | None = None) -> Iterator[BinaryIO]:
        credentials = environment_credentials()
        if credentials is None:
            with self.writer.open(key, if_match=if_match) as stream:
                yield stream
            return
        if not key:
            raise NotFound(key)
        headers = {"If-Match": if_match} if if_match is not None else None
        response, _ = self._request(credentials, "GET", key, headers=headers, stream=True)
        try:
            yield cast(BinaryIO, io.BufferedReader(response))
        finally:
            if response.done:  # read to its end: the connection can serve another
                self._checkin(response.connection)
            else:
                response.connection.close()

    def _list_page(self, query: dict[str, str]) -> Element:
        return _xml(self._read("GET", "", query).body)

    def _pages(self, prefix: str, delimiter: str | None) -> Iterator[Element]:
        # at most 1,000 keys a page (S3's limit): follow the continuation tokens
        query = {"list-type": "2", "prefix": self.prefix + prefix, "encoding-type": "url"}
        if delimiter:
            query["delimiter"] = delimiter
        if self.page_size is not None:
            query["max-keys"] = str(self.page_size)
        while True:
            page = self._list_page(query)
            yield page
            token = _text(page, "NextContinuationToken")
            if _text(page, "IsTruncated") != "true" or not token:
                return
            query["continuation-token"] = token

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if environment_credentials() is None:
            yield from self.writer.list(prefix)
            return
        skip = len(self.prefix)
        for page in self._pages(prefix, None):
            for item in page.iter(_NS + "Contents"):
                yield ObjectInfo(
                    unquote_plus(_text(item, "Key"))[skip:],
                    int(_text(item, "Size") or 0),
                    _text(item, "ETag"),
                    datetime.fromisoformat(_text(item, "LastModified")),
                )

    def list_folders(self, prefix: str = "") -> Iterator[str]:
        if environment_credentials() is None:
            yield from self.writer.list_folders(prefix)
            return
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        skip = len(self.prefix) + len(prefix)
        for page in self._pages(prefix, "/"):
            for item in page.iter(_NS + "CommonPrefixes"):
                yield unquote_plus(_text(item, "Prefix"))[skip:].rstrip("/")

    def check(self) -> None:
        """One LIST of at most one key: fails on a missing bucket, bad credentials, no access."""
        try:
            self._read("GET", "", {"list-type": "2", "prefix": self.prefix, "max-keys": "1"})
        except _NoEnvironmentCredentials:
            self.writer.check()

    def deliver(self, key: str, method: str, expires: int) -> Redirect:
        # signed locally: no request, and no look-up (the caller knows the key exists)
        return Redirect(self.presign(key, method, expires))

    def presign(self, key: str, method: str, expires: int) -> str:
        """A SigV4 URL that answers `method` (GET or HEAD) on the object for `expires` seconds."""
        credentials = environment_credentials()
        if credentials is None:
            return self.writer.presign(key, method, expires)
        path = f"{self.endpoint.base}/{quote_key(self.prefix + key)}"
        return presign_url(
            "HEAD" if method == "HEAD" else "GET",
            f"{self.endpoint.scheme}://{self.endpoint.netloc}",
            self.endpoint.host,
            path,
            credentials=credentials,
            region=self.region,
            expires=expires,
        )


class _NoEnvironmentCredentials(Exception):
    """No credentials in the environment: the boto3 store answers instead."""


def _backoff(attempt: int) -> None:
    import random  # only after a failure

    # jittered exponential backoff, as boto3's standard retry mode (capped at 2 s)
    time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))  # noqa: S311
