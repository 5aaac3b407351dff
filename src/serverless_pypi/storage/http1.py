"""The little of HTTP/1.1 (RFC 9112) an S3 client needs, over `socket` (and `ssl` for https).

`http.client` would do, but it imports the `email` package to parse headers: about 7 ms of
the API function's cold start, a tenth of it (measured by `make bench`). S3's answers are
simple: a status line, headers, and a body framed by Content-Length or chunked (RFC 9112
section 6 and 7.1), or none at all (HEAD, 304). Connections are kept alive between requests.
"""

from __future__ import annotations

import io
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

__all__ = ["Connection", "IncompleteAnswer", "Response", "StaleConnection"]

#: the longest status or header line read, and the most header lines (S3 sends ~10)
MAX_LINE = 65536
MAX_HEADERS = 100


class IncompleteAnswer(OSError):
    """The server closed the connection in the middle of an answer, or broke the framing."""


class StaleConnection(IncompleteAnswer):
    """A kept-alive connection the server had closed: nothing of the answer arrived."""


class Response(io.RawIOBase):
    """An answer: `status`, `headers` (names in lower case), and the body as a stream."""

    def __init__(
        self, connection: Connection, status: int, headers: dict[str, str], *, keep: bool
    ) -> None:
        super().__init__()
        self.connection = connection
        self.status = status
        self.headers = headers
        self.keep = keep  # the server keeps the connection open after this answer
        self.left = 0  # bytes of the body (or of the current chunk) still to read
        self.chunked = False
        self.to_close = False  # the body runs to the end of the connection
        self.done = False
        self._in_chunks = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.done or (self.chunked and self.left == 0 and not self._next_chunk()):
            return 0
        limit = len(buffer) if self.to_close else min(len(buffer), self.left)
        # a view: the caller's buffer is filled, not a copy of it (a bytearray slices by copy)
        count = self.connection.file.readinto(memoryview(buffer)[:limit])
        if count == 0 and limit:
            if self.to_close:
                self.finish()
                return 0
            raise IncompleteAnswer("the connection closed inside the answer's body")
        self.left -= count
        if not self.chunked and not self.to_close and self.left == 0:
            self.finish()
        return count

    def _next_chunk(self) -> bool:
        file = self.connection.file
        if self._in_chunks:
            _line(file)  # the CRLF after the previous chunk's data
        self._in_chunks = True
        size = _line(file).split(b";", 1)[0].strip()
        try:
            self.left = int(size, 16)
        except ValueError:
            raise IncompleteAnswer(f"a chunk size that is not a number: {size[:20]!r}") from None
        if self.left == 0:
            while _line(file) not in {b"\r\n", b"\n"}:  # trailers, then the end
                pass
            self.finish()
            return False
        return True

    def finish(self) -> None:
        self.done = True
        self.connection.answered(reusable=self.keep and not self.to_close)

    def body(self) -> bytes:
        """The whole body (the connection can then serve another request)."""
        if self.done:
            return b""
        if self.chunked or self.to_close:
            return self.readall() or b""
        data = self.connection.file.read(self.left)
        if len(data) != self.left:
            raise IncompleteAnswer("the connection closed inside the answer's body")
        self.left = 0
        self.finish()
        return data


def _line(file: io.BufferedReader) -> bytes:
    line = file.readline(MAX_LINE + 1)
    if not line:
        raise IncompleteAnswer("the connection closed inside the answer's head")
    if len(line) > MAX_LINE:
        raise IncompleteAnswer("a line of the answer's head is too long")
    return line


class Connection:
    """One connection to `host`:`port`, opened at the first request and kept alive."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.context = context
        self.sock: socket.socket | None = None
        self.file: io.BufferedReader = io.BufferedReader(io.BytesIO())
        self.reusable = False

    def _open(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.file = sock.makefile("rb")

    def close(self) -> None:
        if self.sock is not None:
            self.file.close()
            self.sock.close()
        self.sock = None
        self.reusable = False

    def answered(self, *, reusable: bool) -> None:
        """The body was read to its end: the connection can serve the next request."""
        self.reusable = reusable
        if not reusable:
            self.close()

    def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        """Send a request (with `body`, framed by its Content-Length, when there is one) and
        read the head of its answer.

        StaleConnection: a connection used before was closed by the server meanwhile (the
        request can be sent again on a new one). Other OSErrors: the server did not answer.
        """
        reused = self.sock is not None
        if self.sock is None:
            self._open()
        assert self.sock is not None
        self.reusable = False
        if body or method in {"POST", "PUT"}:
            # RFC 9112 section 6.3: a request's body is framed by its Content-Length
            headers = {**headers, "Content-Length": str(len(body))}
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        try:
            self.sock.sendall((head + "\r\n").encode("latin-1"))
            if body:
                self.sock.sendall(body)
            first = self.file.readline(MAX_LINE + 1)
        except (ConnectionResetError, BrokenPipeError) as e:
            self.close()
            raise (StaleConnection(str(e)) if reused else e) from e
        if not first:
            self.close()
            raise (StaleConnection if reused else IncompleteAnswer)("closed without an answer")
        try:
            return self._answer(method, first)
        except BaseException:
            self.close()
            raise

    def _answer(self, method: str, first: bytes) -> Response:
        version, _, rest = first.decode("latin-1").partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise IncompleteAnswer(f"not an HTTP/1.1 answer: {first[:40]!r}")
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = _line(self.file)
            if line in {b"\r\n", b"\n"}:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise IncompleteAnswer("too many header lines")
        status = int(code)
        if 100 <= status < 200:  # no interim answers: requests never send `Expect`
            raise IncompleteAnswer(f"an unexpected interim answer {status}")
        keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        response = Response(self, status, headers, keep=keep)
        length = headers.get("content-length", "")
        if method == "HEAD" or status in {204, 304}:
            response.finish()
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            response.chunked = True
        elif length:
            if not length.isdigit():
                raise IncompleteAnswer(f"a Content-Length that is not a number: {length[:20]!r}")
            response.left = int(length)
            if response.left == 0:
                response.finish()
        else:
            response.to_close = True
        return response
