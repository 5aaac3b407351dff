"""The one error table: every domain and store error answers its documented status."""

from __future__ import annotations

import inspect
import logging

import pytest

from serverless_pypi.core import errors as domain
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
from serverless_pypi.core.http import Request
from serverless_pypi.storage import base as storage
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
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.swap import Contention
from serverless_pypi.web.app import Application
from serverless_pypi.web.errors import (
    RETRY_AFTER,
    STATUSES,
    error_response,
    internal_error,
    status_of,
)

#: the documented status of every error class (README, core/errors.py, storage/base.py)
DOCUMENTED: dict[type[Exception], int] = {
    DomainError: 400,
    InvalidRequest: 400,
    FileAlreadyExists: 400,
    LengthRequired: 411,
    PathTooLong: 414,
    Unauthenticated: 401,
    Forbidden: 403,
    NoSuchPath: 404,
    NoSuchProject: 404,
    NoSuchFile: 404,
    MethodNotAllowed: 405,
    Conflict: 409,
    TooLarge: 413,
    StoreError: 502,
    NotFound: 502,
    NotModified: 502,
    PreconditionFailed: 502,
    StoreUnavailable: 503,
    BucketNotFound: 503,
    AccessDenied: 503,
    NoCredentials: 503,
    StoreUnreachable: 503,
    Contention: 503,
}


def example(cls: type[Exception]) -> DomainError | StoreError:
    """An instance of `cls` with what its constructor needs."""
    if cls is Unauthenticated:
        return Unauthenticated("a token, please", "serverless-pypi")
    if cls is MethodNotAllowed:
        return MethodNotAllowed("PUT is not allowed here.", ("GET", "HEAD"))
    if issubclass(cls, StoreUnavailable):
        return cls("the cause", "s3://bucket", "detail")
    error = cls("what went wrong")
    assert isinstance(error, DomainError | StoreError)
    return error


def error_classes(module: object, base: type[Exception]) -> set[type[Exception]]:
    return {
        value for _, value in inspect.getmembers(module, inspect.isclass) if issubclass(value, base)
    }


def test_every_error_class_is_in_the_table() -> None:
    found = error_classes(domain, DomainError) | error_classes(storage, StoreError) | {Contention}
    assert found == set(DOCUMENTED)
    assert set(STATUSES) == set(DOCUMENTED)


@pytest.mark.parametrize("cls", list(DOCUMENTED), ids=lambda cls: cls.__name__)
def test_each_error_answers_its_documented_status(cls: type[Exception]) -> None:
    error = example(cls)
    response = error_response(error)
    assert response.status == DOCUMENTED[cls] == status_of(error)[0]
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    if isinstance(error, DomainError):
        assert response.body == error.message.encode() + b"\n"


def test_a_subclass_not_listed_takes_its_base_entry() -> None:
    class IncompleteUpload(FileAlreadyExists):
        pass

    class Throttled(StoreUnreachable):
        pass

    assert status_of(IncompleteUpload("File already exists")) == (400, {})
    assert status_of(Throttled("busy")) == (503, {"Retry-After": RETRY_AFTER})


def test_headers_that_come_with_a_status() -> None:
    challenge = error_response(Unauthenticated("a token, please", "serverless-pypi"))
    assert challenge.headers["WWW-Authenticate"] == 'Basic realm="serverless-pypi", charset="UTF-8"'
    allow = error_response(MethodNotAllowed("no", ("GET", "HEAD", "POST")))
    assert allow.headers["Allow"] == "GET, HEAD, POST"
    assert error_response(Contention("busy")).headers["Retry-After"] == RETRY_AFTER
    assert error_response(StoreUnreachable("does not answer")).headers["Retry-After"] == RETRY_AFTER
    # a configuration problem does not pass by itself: no Retry-After
    assert "Retry-After" not in error_response(AccessDenied("access denied")).headers
    assert "WWW-Authenticate" not in error_response(Forbidden("no")).headers


def test_store_messages_name_the_cause_never_the_detail() -> None:
    denied = error_response(AccessDenied("access denied", "s3://b", "secret detail")).body
    assert b"access denied" in denied and b"secret detail" not in denied
    assert b"try again" in error_response(Contention("k kept changing")).body
    assert b"k kept changing" not in error_response(Contention("k kept changing")).body
    assert error_response(StoreError("boom")).body.startswith(b"The package store failed")


def test_internal_error_is_a_500_without_details() -> None:
    response = internal_error("The index failed to answer; the error is logged.")
    assert response.status == 500
    assert b"Traceback" not in response.body


def test_an_undescribed_store_failure_is_a_502_logged_with_its_traceback(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    class Odd(LocalStore):
        def get(self, key: str, *, if_none_match: str | None = None) -> storage.Blob:
            raise PreconditionFailed(key)  # a store answering a read oddly

    from serverless_pypi.compose import build_repository

    app = Application(build_repository(Odd(str(tmp_path))))
    response = app.handle(Request("GET", "pkg/"))
    assert response.status == 502
    assert response.body == b"The package store failed to answer; try again shortly.\n"
    assert [r.exc_info for r in caplog.records if r.name.startswith("serverless_pypi")]


def test_unknown_exceptions_are_not_in_the_table() -> None:
    with pytest.raises(TypeError):
        status_of(ValueError("not ours"))  # type: ignore[arg-type]


def test_domain_errors_are_not_logged(tmp_path: object, caplog: pytest.LogCaptureFixture) -> None:
    from serverless_pypi.compose import build_application

    caplog.set_level(logging.DEBUG, logger="serverless_pypi")
    app = build_application(LocalStore(str(tmp_path)))
    assert app.handle(Request("GET", "missing/")).status == 404
    assert app.handle(Request("GET", "a/b/c")).status == 404
    assert app.handle(Request("PUT", "missing/")).status == 405
    assert app.handle(Request("GET", "x" * 2000)).status == 414
    assert not [r for r in caplog.records if r.name.startswith("serverless_pypi")]
