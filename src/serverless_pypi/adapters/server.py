"""The local server: the application on waitress, a threaded production WSGI server.

Serves the index at `/simple/` and accepts uploads at `/`, `/legacy/` and `/simple/`. Logs one
line a request (method, path without the query, status, time): never headers or queries, which
can carry credentials, and with control characters escaped.

What it withstands: waitress reads every connection in one I/O loop (poll) and runs the
application in worker threads only once a request has fully arrived, so idle and slowly
dripping clients hold a connection each, never a thread. Up to `CONNECTION_LIMIT` connections
are held at once (the open-file limit is raised to allow for them); a connection silent for
`CHANNEL_TIMEOUT` seconds is closed. Request bodies are received by waitress into a buffer
that moves to a temporary file past `BODY_IN_MEMORY` bytes; the body of a POST to an upload
URL without well-formed upload credentials is dropped as it arrives (the upload is refused with
403 before its body is read).
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from io import BytesIO
from typing import Any
from urllib.parse import quote, urlsplit

from serverless_pypi.auth.access import USERNAME, basic_credentials
from serverless_pypi.auth.tokens import split_token
from serverless_pypi.core.config import Settings
from serverless_pypi.core.errors import DomainError, InvalidRequest, TooLarge
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.web.app import Application
from serverless_pypi.web.errors import error_response, internal_error
from serverless_pypi.web.paths import index_route, is_session_route, is_upload_route
from serverless_pypi.web.session_wire import MAX_JSON_BODY

__all__ = [
    "CHANNEL_TIMEOUT",
    "CONNECTION_LIMIT",
    "REQUEST_FORMAT",
    "BindError",
    "EscapingFormatter",
    "GroupWriteHandler",
    "WSGIApplication",
    "create_server",
    "log_safe",
    "serve",
]

log = logging.getLogger("serverless_pypi.adapters.server")

StartResponse = Callable[..., Any]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

#: connections held open at once: idle and stalled clients take one each, never a thread
CONNECTION_LIMIT = 1000
#: a connection with no byte in either direction for this long is closed, seconds
CHANNEL_TIMEOUT = 60
#: how often idle connections are looked for, seconds
CLEANUP_INTERVAL = 10
#: a request's body stays in memory up to this size while it arrives, then goes to disk
BODY_IN_MEMORY = 64 * 1024
#: the request line and headers together (an Authorization header is well below this)
MAX_HEADER_SIZE = 64 * 1024
#: groups of log lines a request's thread writes at most (the rest: the flusher's)
_WRITE_ROUNDS = 2
#: how often lines left by a request's thread are written, seconds
_FLUSH_INTERVAL = 0.05
#: file descriptors kept for the process beyond the connections (store, logs, stdio)
_SPARE_FILES = 64
#: waitress's "Task queue depth" warning is logged at most once in this many seconds
QUEUE_WARNING_INTERVAL = 60.0


class BindError(OSError):
    """The server cannot listen where asked; the message says what to do."""


def log_safe(text: str, limit: int = 300) -> str:
    """`text` cut to `limit` characters, with every non-printable character escaped.

    Request lines can carry any byte but CR and LF: a NUL, an ESC sequence or a line break
    must never reach the terminal or the log file as such (`\\x1b`, `\\x00`, `\\u202e`).
    """
    cut = text[:limit]
    if cut.isprintable():
        return cut + ("..." if len(text) > limit else "")
    escaped = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in cut)
    return escaped + ("..." if len(text) > limit else "")


class EscapingFormatter(logging.Formatter):
    """A log formatter that escapes control characters in every message.

    The request log escapes its own fields; this covers every other message that may quote a
    request (waitress's own, an exception's). Tracebacks keep their line breaks.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = log_safe(record.message, limit=4000)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        return "\n".join(log_safe(line, limit=4000) for line in text.split("\n"))


class GroupWriteHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose writers never queue behind one another's write.

    `logging.StreamHandler` holds its lock across the write: under load the worker threads
    line up behind the one writing (and the GIL it gives back and takes again). Here a line is
    formatted by its own thread and appended to a list under a short lock; the thread that
    finds no write under way writes the lines waiting, in order, with one `write` per group.
    A line handed over `deferred` is left to a flusher thread (within `_FLUSH_INTERVAL`): a
    request's thread then makes no system call for its line, which under load would give the
    GIL to the I/O loop and wait for it back (up to the switch interval, 5 ms). The server
    defers only while other requests are in flight; the last one writes every line waiting,
    so with one request at a time every line is written before its request returns.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._pending_lock = threading.Lock()
        self._writing = False
        self._second = -1
        self._stamp = ""
        self._flusher: threading.Thread | None = None

    def handle(self, record: logging.LogRecord) -> bool:
        # no handler lock around `emit`: it orders the lines itself
        rv = self.filter(record)
        if rv:
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._write(line)

    def request_line(self, message: str, *, deferred: bool = False) -> None:
        """Write `message` at INFO as `format` would (`REQUEST_FORMAT`), without a record:
        the one line of every request, formatted here at a fraction of the cost; `deferred`:
        leave the write to the flusher thread."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._second = second
        milliseconds = int((now - second) * 1000)
        line = f"{self._stamp},{milliseconds:03d} INFO {log_safe(message, 4000)}\n"
        self._write(line, deferred=deferred)

    def _write(self, line: str, *, deferred: bool = False) -> None:
        with self._pending_lock:
            self._pending.append(line)
            if deferred:
                self._start_flusher()
                return
            if self._writing:
                return  # the thread writing now takes this line too
            self._writing = True
        self._drain(_WRITE_ROUNDS)

    def _start_flusher(self) -> None:
        # with `_pending_lock` held
        if self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_left, name="log-flusher", daemon=True
            )
            self._flusher.start()

    def _drain(self, rounds: int) -> None:
        # with `_writing` set by the caller; a request's thread writes a few groups at most,
        # so that its own answer is not held up: the flusher takes what is left
        for _ in range(rounds):
            with self._pending_lock:
                if not self._pending:
                    self._writing = False
                    return
                group = "".join(self._pending)
                self._pending.clear()
            try:
                self.stream.write(group)
                self.stream.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": group}))
        with self._pending_lock:
            self._writing = False
            if self._pending:
                self._start_flusher()

    def _flush_left(self) -> None:
        while True:
            time.sleep(_FLUSH_INTERVAL)
            with self._pending_lock:
                if self._writing or not self._pending:
                    continue
                self._writing = True
            self._drain(_WRITE_ROUNDS)


#: the format of the server's log (`serverless-pypi serve`): `GroupWriteHandler.request_line`
#: writes the same
REQUEST_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def _direct_handler() -> GroupWriteHandler | None:
    """The handler a request line may be handed to directly: the server's own log set-up
    (one GroupWriteHandler on the root logger, formatting with REQUEST_FORMAT, no filters)."""
    root = logging.getLogger()
    if log.handlers or log.filters or root.filters or not log.propagate or len(root.handlers) != 1:
        return None
    handler = root.handlers[0]
    formatter = handler.formatter
    if (
        type(handler) is GroupWriteHandler
        and not handler.filters
        and handler.level <= logging.INFO
        and type(formatter) is EscapingFormatter
        and formatter._fmt == REQUEST_FORMAT
        and formatter.default_msec_format == "%s,%03d"
    ):
        return handler
    return None


def _log_request(message: str, *, deferred: bool = False) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    handler = _direct_handler()
    if handler is not None:
        handler.request_line(message, deferred=deferred)
    else:
        log.handle(logging.LogRecord(log.name, logging.INFO, __file__, 0, message, None, None))


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
    line = _STATUS_LINES.get(status)
    if line is None:
        return f"{status} Unknown"
    return line


#: "200 OK", ... by status (formatted once, not per request)
_STATUS_LINES = {int(status): f"{status.value} {status.phrase}" for status in HTTPStatus}


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


class EnvironHeaders(Headers):
    """The request headers of a WSGI environ, looked up when asked for (PEP 3333: `HTTP_*`,
    `CONTENT_TYPE`, `CONTENT_LENGTH`), not copied: a read asks for three or four of them.

    waitress has already combined repeated fields with commas (RFC 9110 section 5.3).
    """

    __slots__ = ("_environ",)

    def __init__(self, environ: dict[str, Any]) -> None:  # no super(): nothing is copied
        self._environ = environ

    def get(self, name: str, default: str | None = None) -> str | None:
        key = _ENVIRON_KEYS.get(name)
        if key is None:
            key = _environ_key(name)
        value = self._environ.get(key)
        if not value and key in _UNPREFIXED:
            return default  # an empty CONTENT_TYPE or CONTENT_LENGTH means none
        return default if value is None else str(value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    @property
    def _items(self) -> dict[str, str]:  # type: ignore[override]
        # every header, as `Headers` holds them: for any other use of the base class
        items = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in self._environ.items()
            if key.startswith("HTTP_")
        }
        for key in _UNPREFIXED:
            if self._environ.get(key):
                items[key.replace("_", "-").lower()] = str(self._environ[key])
        return items


_UNPREFIXED = frozenset({"CONTENT_TYPE", "CONTENT_LENGTH"})


def _environ_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    return key if key in _UNPREFIXED else "HTTP_" + key


#: the environ keys of the headers the application reads, by the names it asks for
_ENVIRON_KEYS = {
    name: _environ_key(name)
    for name in (
        "accept",
        "accept-encoding",
        "if-none-match",
        "authorization",
        "content-type",
        "content-length",
    )
}


def _headers(environ: dict[str, Any]) -> Headers:
    return EnvironHeaders(environ)


def _header_list(response: Response) -> list[tuple[str, str]]:
    """The response's headers for `start_response`, with its Content-Length."""
    if response.file is not None:
        return list(response.headers.items())
    if "Content-Length" in response.headers:
        headers = dict(response.headers)
        headers["Content-Length"] = str(len(response.body))
        return list(headers.items())
    return [*response.headers.items(), ("Content-Length", str(len(response.body)))]


class WSGIApplication:
    """A WSGI callable around an `Application`."""

    def __init__(self, app: Application) -> None:
        self.app = app
        # requests in this callable now: a request line is written by its own thread only
        # when no other request is in flight (GroupWriteHandler, "deferred")
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()

    def _request(
        self, environ: dict[str, Any], method: str, path: str, query: str
    ) -> Request | Response:
        """The request, or the redirect answered instead; raises DomainError to refuse it."""
        route = index_route(path)
        if isinstance(route, Response):
            return route
        stream = None
        if method in _BODY_METHODS:
            raw = environ.get("CONTENT_LENGTH") or "0"
            # RFC 9110 section 8.6: Content-Length = 1*DIGIT
            if not (raw.isascii() and raw.isdigit()):
                raise InvalidRequest("Content-Length is not a number.")
            limit = body_limit(self.app.settings, path)
            if int(raw) > limit:
                raise TooLarge(f"The request body is over {limit} bytes.")
            # unread: the upload handler checks the credentials first, then reads in pieces
            stream = environ["wsgi.input"]
        scheme = "https" if environ.get("wsgi.url_scheme") == "https" else "http"
        return Request(method, route, query, _headers(environ), stream=stream, scheme=scheme)

    def _respond(self, environ: dict[str, Any], method: str, path: str, query: str) -> Response:
        try:
            request = self._request(environ, method, path, query)
            return request if isinstance(request, Response) else self.app.handle(request)
        except DomainError as e:
            return error_response(e)
        except Exception:
            log.exception("unhandled error")
            return internal_error("The index failed to answer; the error is logged.")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path, query = _raw_path(environ)
        with self._in_flight_lock:
            self._in_flight += 1
        try:
            response = self._respond(environ, method, path, query)
            start_response(_status_line(response), _header_list(response))
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1
                others = self._in_flight > 0
        _log_request(
            f"{log_safe(method, 20)} {log_safe(path)} {response.status} "
            f"{(time.perf_counter() - started) * 1000:.1f}ms",
            deferred=others,
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


def plausible_upload_credentials(authorization: str | None) -> bool:
    """Whether an `Authorization` header is HTTP Basic with `__token__` and a token's shape.

    Decided from the header alone, without the store: the upload check refuses (403) every
    request for which this is False, so its body need not be kept.
    """
    headers = Headers({"authorization": authorization} if authorization is not None else {})
    credentials = basic_credentials(Request("POST", "", headers=headers))
    return (
        credentials is not None
        and credentials[0] == USERNAME
        and split_token(credentials[1]) is not None
    )


def is_upload_target(path: str) -> bool:
    """Whether a (decoded) request path is one the application takes uploads at: the legacy
    upload URLs and the Upload 2.0 session routes."""
    return is_upload_route(path) or is_session_route(path)


def body_limit(settings: Settings, path: str) -> int:
    """The largest request body taken at `path`, bytes: a file and its form (MAX_UPLOAD_SIZE
    plus 1 MiB) at the legacy upload URLs; a file up to UPLOAD_SESSION_MAX_FILE_SIZE (plus 1
    MiB for a JSON body) at the session routes, whose http-post-bytes sends it whole."""
    if is_session_route(path):
        return max(settings.upload_session_max_file_size, MAX_JSON_BODY) + 1024 * 1024
    return settings.max_upload_size + 1024 * 1024


def _largest_body(settings: Settings) -> int:
    """The largest request body taken anywhere (waitress refuses a longer one at once)."""
    return max(settings.max_upload_size, settings.upload_session_max_file_size) + 1024 * 1024


class _Discarded:
    """A body buffer that keeps nothing: the body of a POST that will be refused (403)."""

    def append(self, data: bytes) -> None:
        pass

    def __len__(self) -> int:
        return 0

    def getfile(self) -> BytesIO:
        return BytesIO()

    def close(self) -> None:
        pass


class _QueueWarnings:
    """waitress's queue logger, at most one line per `QUEUE_WARNING_INTERVAL` seconds.

    waitress warns "Task queue depth is N" on every request that waits for a worker thread,
    from its I/O loop with its task lock held: under a burst that is a log line a request, and
    a write of the I/O loop each. One line per interval names the deepest queue seen since
    the last line.
    """

    def __init__(self, target: logging.Logger) -> None:
        self.target = target
        self._next = 0.0
        self._deepest = 0
        self._waited = 0

    def warning(self, message: str, depth: int, *args: Any) -> None:
        self._deepest = max(self._deepest, depth)
        self._waited += 1
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + QUEUE_WARNING_INTERVAL
        self.target.warning(
            "%d requests waited for a worker thread since the last such line (deepest queue: "
            "%d); more threads (--threads) help only if requests wait on the store",
            self._waited,
            self._deepest,
        )
        self._deepest = self._waited = 0


def _waitress_major() -> int:
    try:
        return int(version("waitress").split(".", 1)[0])
    except (PackageNotFoundError, ValueError):
        return 0


def _keep_open_task() -> type:
    """waitress's task (waitress 3), keeping the connection open after a 304 (or 204, 1xx)."""
    from waitress.task import WSGITask

    class Task(WSGITask):  # type: ignore[misc]
        """waitress's task, keeping the connection open after a 304 (or 204, 1xx).

        waitress closes an HTTP/1.1 connection after any answer without a Content-Length,
        these included, so that each revalidation of a warm install (a 304) cost the client a
        new connection. RFC 9112 section 6.3: such an answer ends with its header section, so
        the connection stays open unless the client asked to close it.
        """

        _keep_open = False

        def build_response_header(self) -> bytes:
            if (
                self.has_body
                or self.version != "1.1"
                or self.request.headers.get("CONNECTION", "").lower() == "close"
            ):
                return super().build_response_header()  # type: ignore[no-any-return]
            self._keep_open = True
            try:
                return super().build_response_header()  # type: ignore[no-any-return]
            finally:
                self._keep_open = False

        def set_close_on_finish(self) -> None:
            if not self._keep_open:
                super().set_close_on_finish()

    return Task


def _discarding_channel(settings: Settings) -> type | None:
    """waitress's connection class with a parser that drops the body of a doomed POST.

    waitress receives a whole request (into memory, then a temporary file) before the
    application sees it. This parser looks at the headers as soon as they are complete: a POST
    to an upload URL without plausible upload credentials, which the application refuses
    before it reads the body, gets its body dropped as it arrives instead of kept. No store is
    asked: this runs in the I/O loop.
    It relies on waitress 3's parser (`headers_finished`, `body_rcv.buf`), so it is used only
    with waitress 3 and checks those attributes on every request.
    """
    if _waitress_major() != 3:
        return None
    from waitress.buffers import OverflowableBuffer
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser
    from waitress.utilities import RequestEntityTooLarge

    class Parser(HTTPRequestParser):  # type: ignore[misc]
        error: Any  # waitress's: None, or the error answered instead of the request

        def received(self, data: bytes) -> int:
            before = self.headers_finished
            consumed: int = super().received(data)
            if isinstance(self.error, RequestEntityTooLarge) and not before:
                # waitress's own words name its setting; say what the index accepts
                self.error = RequestEntityTooLarge(
                    f"The request body is over {self.adj.max_request_body_size - 1} bytes, the "
                    "most this index accepts (MAX_UPLOAD_SIZE or UPLOAD_SESSION_MAX_FILE_SIZE, "
                    "plus 1 MiB)."
                )
            chunked = bool(getattr(self, "chunked", False))
            if self.headers_finished and self.error is None and (chunked or not before):
                self._refuse_oversized()
            receiver = self.body_rcv
            if (
                not before
                and self.headers_finished
                and self.error is None
                and receiver is not None
                and isinstance(getattr(receiver, "buf", None), OverflowableBuffer)
                and getattr(self, "command", "") == "POST"
                and is_upload_target(getattr(self, "path", ""))
                and not plausible_upload_credentials(self.headers.get("AUTHORIZATION"))
            ):
                receiver.buf.close()
                receiver.buf = _Discarded()
            return consumed

        def _refuse_oversized(self) -> None:
            # a body longer than its path takes, refused before it is received (a chunked
            # one once it has grown past it): waitress's own bound is the largest of any path
            limit = body_limit(settings, getattr(self, "path", ""))
            size = max(getattr(self, "content_length", 0), getattr(self, "body_bytes_received", 0))
            if size > limit:
                self.error = RequestEntityTooLarge(
                    f"The request body is over {limit} bytes, the most this index accepts here "
                    "(MAX_UPLOAD_SIZE plus 1 MiB for the form; session uploads: "
                    "UPLOAD_SESSION_MAX_FILE_SIZE)."
                )
                self.completed = True

    class Channel(HTTPChannel):  # type: ignore[misc]
        parser_class = Parser
        task_class = _keep_open_task()

    return Channel


class _AnswerInLoop:
    """A mixin for waitress's channel (HTTPChannel): reads answered in the I/O loop."""

    #: answer reads in the I/O loop (`answer_here`); set by `create_server`
    answer_in_loop = False
    _receiving = False
    _answer_now = False
    # waitress's HTTPChannel's
    total_outbufs_len: int
    requests: list[Any]
    service: Callable[[], None]

    def received(self, data: bytes) -> bool:
        if not self.answer_in_loop:
            return bool(super().received(data))  # type: ignore[misc]
        self._receiving = True
        try:
            done = bool(super().received(data))  # type: ignore[misc]
            # outside waitress's request lock, which `service` takes
            while self._answer_now:
                self._answer_now = False
                _LOOP.answering = True
                try:
                    self.service()
                finally:
                    _LOOP.answering = False
        finally:
            self._receiving = False
        return done

    def answer_here(self) -> bool:
        """Whether the request waitress is about to queue is answered in the I/O loop
        instead: a GET or HEAD without a body, while this connection has no answer
        still being sent (so an answer never waits for room in the output buffer)."""
        if not self._receiving or self.total_outbufs_len or not self.requests:
            return False
        request = self.requests[0]
        return (
            getattr(request, "command", "") in _READ_COMMANDS
            and request.error is None
            and not getattr(request, "content_length", 1)
            and not getattr(request, "chunked", True)
        )


_READ_COMMANDS = frozenset({"GET", "HEAD"})


#: `answering`: the I/O loop is answering a request itself (in `Channel.received`)
_LOOP = threading.local()


def _quiet_trigger(server: Any) -> None:
    """Skip `server`'s trigger (a byte through a pipe that wakes the I/O loop) when the loop
    pulls it itself, answering a request: it recomputes what to poll for before every poll,
    so a wake-up of its own is a write, a read and a turn of the loop for nothing."""
    pull = server.pull_trigger

    def pull_trigger() -> None:
        if not getattr(_LOOP, "answering", False):
            pull()

    server.pull_trigger = pull_trigger


def _answers_in_loop(app: Application) -> bool:
    """Whether reads of `app` may be answered in waitress's I/O loop: only over a local
    directory with no upstream index (under the policy layer, which reads the same store),
    where a read waits on no network (a stat, a small file); every other store keeps its
    reads in the worker threads."""
    from serverless_pypi.repository.policy import PolicyRepository
    from serverless_pypi.repository.store import StoreRepository
    from serverless_pypi.storage.local import LocalStore

    repository = app.repository
    # the policy layer reads its document from the same store (revalidated every POLICY_TTL)
    while isinstance(repository, PolicyRepository):
        repository = repository.inner
    return isinstance(repository, StoreRepository) and isinstance(
        repository.reader.store, LocalStore
    )


def _answer_in_loop(dispatcher: Any) -> None:
    """Have `dispatcher` (waitress's task queue) leave to the I/O loop the requests a
    channel answers there (`Channel.answer_here`).

    A page from memory costs the application a few tens of microseconds; handing it to a
    worker thread costs more (a queue, a wake-up, the GIL passed back and forth, a trigger
    to wake the loop for the answer), and under load the worker threads take the GIL from
    the loop that reads every connection. Idle and stalled connections still cost the loop
    nothing: a request is answered only once it has fully arrived.
    """
    queue = dispatcher.add_task

    def add_task(task: Any) -> None:
        answer_here = getattr(task, "answer_here", None)
        if answer_here is not None and answer_here():
            task._answer_now = True
            return
        queue(task)

    dispatcher.add_task = add_task


def _open_file_limit(wanted: int) -> int:
    """Raise the soft limit on open files towards `wanted` (up to the hard limit); the limit."""
    try:
        import resource
    except ImportError:  # not on POSIX: no such limit to raise
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def _connection_limit() -> int:
    # each connection takes a socket, and a temporary file while a large body arrives
    files = _open_file_limit(2 * CONNECTION_LIMIT + _SPARE_FILES)
    limit = min(CONNECTION_LIMIT, (files - _SPARE_FILES) // 2)
    if limit < CONNECTION_LIMIT:
        log.warning(
            "the open-file limit (%d, ulimit -n) allows %d connections at once, not %d",
            files,
            limit,
            CONNECTION_LIMIT,
        )
    return max(limit, 1)


def create_server(
    app: Application, host: str = "127.0.0.1", port: int = 8080, threads: int = 16
) -> Any:
    """A waitress server bound to `host:port`, not yet running (call `.run()`).

    Raises BindError, whose message names the port and how to choose another.
    """
    import waitress

    socket_map: dict[int, Any] = {}
    try:
        server = waitress.create_server(
            WSGIApplication(app),
            map=socket_map,
            host=host,
            port=port,
            threads=threads,
            ident="serverless-pypi",
            connection_limit=_connection_limit(),
            # poll, not select: select cannot watch descriptors numbered past 1023
            asyncore_use_poll=True,
            channel_timeout=CHANNEL_TIMEOUT,
            cleanup_interval=CLEANUP_INTERVAL,
            inbuf_overflow=BODY_IN_MEMORY,
            max_request_header_size=MAX_HEADER_SIZE,
            # waitress refuses a longer declared body (413) before receiving it; the parser
            # refuses one longer than its path takes (`body_limit`)
            max_request_body_size=_largest_body(app.settings) + 1,
            # a TLS front on this machine (Caddy, nginx) says the client's scheme: waitress
            # then reports https (trusted publishing and PEP 807 name https endpoints); the
            # header of any other peer is removed
            trusted_proxy="127.0.0.1",
            trusted_proxy_headers={"x-forwarded-proto"},
            clear_untrusted_proxy_headers=True,
        )
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise BindError(
                f"port {port} on {host} is already in use: stop the other server, or choose "
                f"another port (make serve PORT={port + 1}, or serverless-pypi serve "
                f"--port {port + 1})"
            ) from None
        raise BindError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    except ValueError as e:  # waitress: a host that does not resolve
        raise BindError(f"cannot listen on {host}:{port}: {e}") from None
    tasks = getattr(server, "task_dispatcher", None)
    if tasks is not None and hasattr(tasks, "queue_logger"):
        tasks.queue_logger = _QueueWarnings(tasks.queue_logger)
    channel = _discarding_channel(app.settings)
    in_loop = channel is not None and tasks is not None and _answers_in_loop(app)
    if in_loop and channel is not None:
        channel = type("Channel", (_AnswerInLoop, channel), {"answer_in_loop": True})
        _answer_in_loop(tasks)
    if channel is not None:
        from waitress.server import BaseWSGIServer

        for dispatcher in list(socket_map.values()):
            if isinstance(dispatcher, BaseWSGIServer):
                dispatcher.channel_class = channel
                if in_loop:
                    _quiet_trigger(dispatcher)
    return server


def serve(app: Application, host: str = "127.0.0.1", port: int = 8080, threads: int = 16) -> None:
    """Serve until interrupted (raises BindError when the port cannot be bound)."""
    create_server(app, host, port, threads).run()
