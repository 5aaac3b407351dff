"""HTTP to the upstream index: its project pages, small files (core metadata) and streamed
distributions, over `serverless_pypi.storage.http1` (sockets; `ssl` only for https).

- Pages are asked for as PEP 691 JSON first, HTML second (PEP 691 content negotiation, with
  q-values), revalidated with `If-None-Match` (RFC 9110 section 13.1.2; a 304 is None).
- Redirects (RFC 9110 section 15.4) are followed, at most `MAX_REDIRECTS` of them.
- Credentials (HTTP Basic, RFC 7617), given as settings or as userinfo in the index URL, go
  only to the index's own origin (scheme, host, port: RFC 6454); a link or a redirect to
  another host (files.pythonhosted.org, a presigned S3 URL) never receives them. Neither
  `location`, nor an error's message, nor a repr contains them (nor a URL's query, which
  may hold a signature).
- Connections are kept alive, one per origin and thread. `timeout` bounds the connection
  (TCP and TLS) and every wait for data; answers are bounded in size.
- Failures are two kinds: UpstreamNotFound (404 / 410: the upstream says the thing is not
  there) and UpstreamUnavailable (everything else: unreachable, slow, 5xx, 429, refused
  credentials, a broken or oversized answer), after which the index serves what it cached.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, cast
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from serverless_pypi import __version__
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.storage.http1 import Connection, Response, StaleConnection

if TYPE_CHECKING:
    import ssl
    from contextlib import AbstractContextManager

__all__ = [
    "ACCEPT_PAGE",
    "MAX_REDIRECTS",
    "Fetched",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamNotFound",
    "UpstreamUnavailable",
]

#: PEP 691: JSON preferred, then the versioned HTML type, then plain HTML (as pip asks)
ACCEPT_PAGE = (
    "application/vnd.pypi.simple.v1+json, "
    "application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.1"
)
MAX_REDIRECTS = 5
#: the most of an unwanted body (a redirect's, an error's) read to keep the connection
_DRAIN = 64 * 1024
_CHUNK = 256 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NOT_FOUND = frozenset({404, 410})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 3986: what a request target may hold as it is (other bytes are percent-encoded)
_TARGET_SAFE = "/%:@!$&'()*+,;=-._~"
_HOST = re.compile(r"[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]", re.ASCII)


class UpstreamError(Exception):
    """The upstream could not give what was asked; str() never contains credentials."""


class UpstreamUnavailable(UpstreamError):
    """Unreachable, too slow, overloaded (5xx, 429), refusing the credentials, or answering
    something that is not HTTP or is over the size bound: try again later."""


class UpstreamNotFound(UpstreamError):
    """The upstream answered 404 or 410 for that URL."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """A page as the upstream answered it."""

    data: bytes = field(repr=False)
    content_type: str
    etag: str | None
    url: str  # the final URL (after redirects), without credentials


@dataclass(frozen=True, slots=True)
class _Origin:
    """RFC 6454 origin: what credentials and kept-alive connections are tied to."""

    scheme: str
    host: str  # as in the URL (brackets around IPv6), lower case
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return self.host.strip("[]"), self.port

    @property
    def host_header(self) -> str:
        default = _DEFAULT_PORTS[self.scheme] == self.port
        return self.host if default else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class _Target:
    origin: _Origin
    target: str  # path and query, as sent in the request line
    url: str  # the URL without userinfo

    @property
    def shown(self) -> str:
        """The URL for messages: without userinfo, query or fragment."""
        return self.url.partition("?")[0]


def _target(url: str) -> _Target:
    """A URL to send a request to; UpstreamUnavailable unless it is a usable http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:  # a port out of range, a malformed IPv6 literal
        raise UpstreamUnavailable(f"cannot fetch a malformed URL: {e}") from None
    host = parts.netloc.rpartition("@")[2].lower()
    if port is not None:
        host = host.rpartition(":")[0]
    if parts.scheme not in _DEFAULT_PORTS or not _HOST.fullmatch(host):
        shown = urlunsplit((parts.scheme, host, parts.path, "", ""))[:200]
        raise UpstreamUnavailable(f"cannot fetch {shown!r}: not an http(s) URL with a host name")
    origin = _Origin(parts.scheme, host, port or _DEFAULT_PORTS[parts.scheme])
    path = quote(parts.path or "/", safe=_TARGET_SAFE)
    query = quote(parts.query, safe=_TARGET_SAFE + "?")
    target = f"{path}?{query}" if query else path
    netloc = host if port is None else f"{host}:{port}"
    return _Target(origin, target, urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))


class _Connections(threading.local):
    """The kept-alive connections of one thread, one per origin."""

    def __init__(self) -> None:
        self.idle: dict[_Origin, Connection] = {}


class UpstreamClient:
    """The upstream index at `index_url` (its simple API root, e.g. https://pypi.org/simple/)."""

    def __init__(
        self,
        index_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        max_page_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        parts = urlsplit(index_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError("the upstream index URL must be an http(s) URL with a host name")
        # credentials as userinfo (https://user:token@host/simple/), unless given apart
        if username is None and parts.username is not None:
            username = unquote(parts.username)
        if password is None and parts.password is not None:
            password = unquote(parts.password)
        netloc = parts.netloc.rpartition("@")[2]
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        #: the index URL without credentials (and with a final "/")
        self.location = urlunsplit((parts.scheme, netloc, path, parts.query, ""))
        self.origin = _target(self.location).origin
        self.timeout = timeout
        self.max_page_bytes = max_page_bytes
        self._authorization: str | None = None
        if username is not None or password is not None:
            pair = f"{username or ''}:{password or ''}".encode()
            self._authorization = "Basic " + base64.b64encode(pair).decode("ascii")
        self._connections = _Connections()
        self._context: ssl.SSLContext | None = None
        self._context_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"UpstreamClient({self.location!r})"

    # -- the three requests ------------------------------------------------------------------

    def project_page(self, name: NormalizedName, *, etag: str | None = None) -> Fetched | None:
        """The project page of `name` (None: not modified since `etag`, a 304)."""
        headers = {"Accept": ACCEPT_PAGE, "Accept-Encoding": "gzip"}
        if etag is not None:
            headers["If-None-Match"] = etag
        url = self.location + quote(name, safe="") + "/"
        with self._exchange(url, headers) as (response, final):
            if response.status == 304:
                if etag is None:
                    raise UpstreamUnavailable(
                        f"{final.shown} answered 304 Not Modified to an unconditional request"
                    )
                return None
            data = self._body(response, final, self.max_page_bytes)
            return Fetched(
                data,
                response.headers.get("content-type", ""),
                response.headers.get("etag"),
                final.url,
            )

    def get(self, url: str, *, max_bytes: int) -> bytes:
        """The whole body at `url` (small files: core metadata), at most `max_bytes`."""
        # identity: a digest is checked over the bytes as they are, never a re-encoding
        with self._exchange(url, {"Accept": "*/*", "Accept-Encoding": "identity"}) as answer:
            return self._body(*answer, max_bytes)

    @contextlib.contextmanager
    def _open(self, url: str) -> Iterator[BinaryIO]:
        with self._exchange(url, {"Accept": "*/*", "Accept-Encoding": "identity"}) as answer:
            response, final = answer
            raw = _Stream(response, final)
            yield cast(BinaryIO, io.BufferedReader(raw, _CHUNK))

    def open(self, url: str) -> AbstractContextManager[BinaryIO]:
        """A distribution at `url`, streamed (the caller bounds and verifies what it reads;
        a failure while reading raises UpstreamUnavailable)."""
        return self._open(url)

    # -- requests ----------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        with self._context_lock:
            if self._context is None:
                import ssl  # only for https upstreams

                self._context = ssl.create_default_context()
            return self._context

    def _checkout(self, origin: _Origin) -> Connection:
        connection = self._connections.idle.pop(origin, None)
        if connection is not None:
            return connection
        context = self._ssl_context() if origin.scheme == "https" else None
        host, port = origin.address
        return Connection(host, port, timeout=self.timeout, context=context)

    def _checkin(self, origin: _Origin, connection: Connection) -> None:
        if connection.reusable and origin not in self._connections.idle:
            self._connections.idle[origin] = connection
        else:
            connection.close()

    def _send(self, target: _Target, headers: dict[str, str]) -> Response:
        """One GET; sent again at once when a kept-alive connection turned out stale."""
        sent = {
            "Host": target.origin.host_header,
            "User-Agent": f"serverless-pypi/{__version__}",
            **headers,
        }
        if self._authorization is not None and target.origin == self.origin:
            sent["Authorization"] = self._authorization  # the index's own origin only
        connection = self._checkout(target.origin)
        try:
            try:
                return connection.request("GET", target.target, sent)
            except StaleConnection:
                return connection.request("GET", target.target, sent)  # on a new connection
        except (OSError, UnicodeError, ValueError) as e:
            connection.close()
            raise UpstreamUnavailable(f"{target.shown} did not answer: {_reason(e)}") from None

    @contextlib.contextmanager
    def _exchange(self, url: str, headers: dict[str, str]) -> Iterator[tuple[Response, _Target]]:
        """The answer to a GET of `url` after redirects: 2xx or 304 (others raised); its
        connection is kept for the thread when the body was read to its end."""
        target = _target(url)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(target, headers)
            if response.status in _REDIRECTS and "location" in response.headers:
                self._discard(response, target)
                target = _target(urljoin(target.url, response.headers["location"]))
                continue
            break
        else:
            self._discard(response, target)
            raise UpstreamUnavailable(f"{target.shown} redirected more than {MAX_REDIRECTS} times")
        if response.status >= 300 and response.status != 304:
            self._discard(response, target)
            raise _refusal(response.status, target)
        try:
            yield response, target
        finally:
            if response.done:
                self._checkin(target.origin, response.connection)
            else:
                response.connection.close()

    def _discard(self, response: Response, target: _Target) -> None:
        """Read an unwanted body to keep the connection, if it is short; else close it."""
        length = response.headers.get("content-length", "")
        if not response.done and (
            response.chunked or response.to_close or not length.isdigit() or int(length) > _DRAIN
        ):
            response.connection.close()
            return
        try:
            response.body()
        except OSError:
            response.connection.close()
            return
        self._checkin(target.origin, response.connection)

    def _body(self, response: Response, target: _Target, limit: int) -> bytes:
        """The whole body, decoded (gzip), at most `limit` bytes."""
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit and not _gzip(response):
            raise _too_large(target, limit)
        parts = []
        size = 0
        try:
            while chunk := response.read(min(_CHUNK, limit + 1 - size)):
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise _too_large(target, limit)
        except OSError as e:
            raise UpstreamUnavailable(
                f"{target.shown} broke off its answer: {_reason(e)}"
            ) from None
        data = b"".join(parts)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding in {"", "identity"}:
            return data
        if encoding != "gzip":
            raise UpstreamUnavailable(
                f"{target.shown} answered in an unknown encoding {encoding[:40]!r}"
            )
        return _gunzip(data, target, limit)


def _gzip(response: Response) -> bool:
    return response.headers.get("content-encoding", "").strip().lower() == "gzip"


def _gunzip(data: bytes, target: _Target, limit: int) -> bytes:
    """RFC 9110 section 8.4.1.3 gzip, decompressed to at most `limit` bytes."""
    import zlib

    inflater = zlib.decompressobj(wbits=31)  # gzip framing only
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as e:
        raise UpstreamUnavailable(f"{target.shown} answered broken gzip: {e}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise _too_large(target, limit)
    if not inflater.eof:
        raise UpstreamUnavailable(f"{target.shown} answered truncated gzip")
    return out


def _too_large(target: _Target, limit: int) -> UpstreamUnavailable:
    return UpstreamUnavailable(f"{target.shown} answered more than {limit} bytes")


def _refusal(status: int, target: _Target) -> UpstreamError:
    if status in _NOT_FOUND:
        return UpstreamNotFound(f"{target.shown} answered {status}: not found")
    if status in {401, 403}:
        return UpstreamUnavailable(
            f"{target.shown} answered {status}: it refuses access (check the upstream credentials)"
        )
    if status == 429 or status >= 500:
        return UpstreamUnavailable(f"{target.shown} answered {status}: unavailable")
    return UpstreamUnavailable(f"{target.shown} answered {status}")


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text[:200]


class _Stream(io.RawIOBase):
    """A distribution's body; a failure while reading is an UpstreamUnavailable."""

    def __init__(self, response: Response, target: _Target) -> None:
        super().__init__()
        self.response = response
        self.target = target

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            return self.response.readinto(buffer)
        except OSError as e:
            raise UpstreamUnavailable(
                f"{self.target.shown} broke off its answer: {_reason(e)}"
            ) from None
