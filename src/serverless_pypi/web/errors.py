"""The one table from errors to HTTP answers, and the only place error responses are built.

Domain errors (`serverless_pypi.core.errors`) and store errors (`serverless_pypi.storage.base`)
are raised where they happen; `Application.handle` catches them and answers
`error_response(e)`: the status and headers from `STATUSES`, the message as a plain-text body
(and, on the local server, as the reason phrase, which twine shows). Adapters use
`error_response` too, for the requests they refuse before the application sees them, and
`internal_error` for the failures no table entry describes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from serverless_pypi.core.errors import (
    Conflict,
    DomainError,
    FileAlreadyExists,
    Forbidden,
    InvalidRequest,
    LengthRequired,
    MethodNotAllowed,
    NoSuchFile,
    NoSuchPath,
    NoSuchProject,
    PathTooLong,
    TooLarge,
    Unauthenticated,
)
from serverless_pypi.core.http import Response, text_response
from serverless_pypi.storage.base import (
    AccessDenied,
    BucketNotFound,
    NoCredentials,
    NotFound,
    NotModified,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
    StoreUnreachable,
)
from serverless_pypi.storage.swap import Contention

__all__ = [
    "REPORT_INTERVAL",
    "RETRY_AFTER",
    "STATUSES",
    "FailureLog",
    "error_response",
    "internal_error",
    "message_of",
    "status_of",
]

log = logging.getLogger(__name__)

#: seconds a client should wait before retrying a transient store failure (RFC 9110 10.2.3)
RETRY_AFTER = "2"
#: a store failure with the same cause is logged at most once per this many seconds
REPORT_INTERVAL = 600.0
#: distinct store failures remembered (a bound on the memory they take)
_MAX_REPORTED = 64

Headers = Callable[[Any], dict[str, str]]


def _challenge(e: Unauthenticated) -> dict[str, str]:
    # RFC 7617: makes pip and uv look up credentials and retry
    return {"WWW-Authenticate": f'Basic realm="{e.realm}", charset="UTF-8"'}


def _allow(e: MethodNotAllowed) -> dict[str, str]:
    return {"Allow": ", ".join(e.allow)}  # RFC 9110 section 15.5.6


def _retry(e: StoreError) -> dict[str, str]:
    return {"Retry-After": RETRY_AFTER}


def _retry_if_transient(e: StoreUnavailable) -> dict[str, str]:
    return {"Retry-After": RETRY_AFTER} if e.transient else {}


#: every error class and its answer: (status, extra headers); a class not listed takes the
#: entry of its nearest listed base
STATUSES: dict[type[Exception], tuple[int, Headers | None]] = {
    DomainError: (400, None),
    InvalidRequest: (400, None),
    FileAlreadyExists: (400, None),  # twine --skip-existing and uv look for it in a 400
    LengthRequired: (411, None),
    PathTooLong: (414, None),
    Unauthenticated: (401, _challenge),
    Forbidden: (403, None),  # as on PyPI, for uploads with missing or bad credentials too
    NoSuchPath: (404, None),
    NoSuchProject: (404, None),
    NoSuchFile: (404, None),
    MethodNotAllowed: (405, _allow),
    Conflict: (409, None),  # PEP 752: an upload into a namespace the token does not cover
    TooLarge: (413, None),
    # the store: a failure no one described is a bad gateway; known causes are "unavailable"
    # (RFC 9110 section 15.6.4), transient ones with Retry-After
    StoreError: (502, None),
    NotFound: (502, None),  # a key the index should have found: a broken store
    NotModified: (502, None),
    PreconditionFailed: (502, None),
    StoreUnavailable: (503, _retry_if_transient),
    BucketNotFound: (503, _retry_if_transient),
    AccessDenied: (503, _retry_if_transient),
    NoCredentials: (503, _retry_if_transient),
    StoreUnreachable: (503, _retry_if_transient),
    Contention: (503, _retry),
}


def _entry(error: Exception) -> tuple[int, Headers | None]:
    for cls in type(error).__mro__:
        if cls in STATUSES:
            return STATUSES[cls]
    raise TypeError(f"no status for {type(error).__name__}: not a DomainError or StoreError")


def status_of(error: DomainError | StoreError) -> tuple[int, dict[str, str]]:
    """The status and extra headers that answer `error`."""
    status, headers = _entry(error)
    return status, headers(error) if headers is not None else {}


def message_of(error: DomainError | StoreError) -> str:
    """What the person who sent the request reads."""
    if isinstance(error, DomainError):
        return error.message
    if isinstance(error, Contention):
        return "The index is busy with concurrent changes to the same project; try again."
    if isinstance(error, StoreUnavailable):
        if error.transient:
            return f"The package store does not answer ({error.cause}); try again shortly."
        return (
            f"The package store cannot be used: {error.cause}. "
            "The index's operator needs to fix its configuration."
        )
    return "The package store failed to answer; try again shortly."


def error_response(error: DomainError | StoreError) -> Response:
    """The answer to `error`: its status, headers and message, as plain text."""
    status, headers = status_of(error)
    return text_response(status, message_of(error), headers)


def internal_error(message: str) -> Response:
    """A 500: the index itself failed (a bug, or a configuration it cannot run with)."""
    return text_response(500, message)


class FailureLog:
    """Logs the store failures requests meet: known causes once per cause and interval.

    Known causes (an unavailable store, contention) are logged once per cause and
    REPORT_INTERVAL, not with a traceback per request: a broken store must not flood the log,
    and an outage next week is still seen by a server that runs for weeks. Any other store
    failure is logged with its traceback. Domain errors are answers, not failures: not logged.
    """

    def __init__(self) -> None:
        self._reported: dict[str, float] = {}  # cause -> when it was last logged
        self._lock = threading.Lock()

    def report(self, error: DomainError | StoreError, method: str, location: str) -> None:
        """Log `error`, met by a `method` request to the store at `location`, if it is due."""
        if isinstance(error, DomainError):
            return
        if isinstance(error, Contention):
            self._log_once("contention", f"contention: {error}", logging.WARNING)
        elif isinstance(error, StoreUnavailable):
            where = error.location or location
            cause = f"store unavailable: {where}: {error.cause}"
            self._log_once(cause, f"{cause} ({error.detail})" if error.detail else cause)
        else:
            log.error("store failure on %s", method, exc_info=error)

    def _log_once(self, cause: str, message: str, level: int = logging.ERROR) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._reported.get(cause)
            if last is not None and now - last < REPORT_INTERVAL:
                return
            if last is None and len(self._reported) >= _MAX_REPORTED:
                self._reported.pop(next(iter(self._reported)))
            self._reported[cause] = now
        log.log(level, "%s", message)
