"""Issue 10, item 14: a store that cannot work is named, answered 503, and logged once.

`Store.check()` is the probe a front calls at startup; `Application.handle` maps the typed
errors: 503 with Retry-After for what may pass (contention, an endpoint that does not answer),
503 naming the cause for configuration problems (no bucket, no credentials, access denied).
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber

from serverless_pypi.compose import build_application
from serverless_pypi.core.http import Request
from serverless_pypi.storage import (
    AccessDenied,
    Blob,
    BucketNotFound,
    NoCredentials,
    NotFound,
    StoreUnavailable,
    StoreUnreachable,
)
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.s3 import S3Store, _translate
from serverless_pypi.storage.swap import Contention
from serverless_pypi.web import errors as errors_module
from tests.helpers.servers import free_port


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": code},
            "ResponseMetadata": {
                "RequestId": "",
                "HostId": "",
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        "GetObject",
    )


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        (client_error("NoSuchBucket", 404), BucketNotFound, "does not exist"),
        (client_error("AccessDenied", 403), AccessDenied, "access denied"),
        (client_error("403", 403), AccessDenied, "access denied"),  # HEAD: no body, no code
        (client_error("AllAccessDisabled", 403), AccessDenied, "access denied"),
        (client_error("InvalidAccessKeyId", 403), NoCredentials, "access key id"),
        (client_error("SignatureDoesNotMatch", 403), NoCredentials, "secret access key"),
        (client_error("ExpiredToken", 400), NoCredentials, "expired"),
        (client_error("SlowDown", 503), StoreUnreachable, "busy"),
        (client_error("InternalError", 500), StoreUnreachable, "busy"),
        (NoCredentialsError(), NoCredentials, "no AWS credentials"),
        (EndpointConnectionError(endpoint_url="http://x"), StoreUnreachable, "does not answer"),
    ],
)
def test_s3_errors_are_translated_to_causes(
    error: Exception, kind: type[StoreUnavailable], words: str
) -> None:
    translated = _translate(error, "k", "pkgs")
    assert type(translated) is kind
    assert words in translated.cause
    assert translated.transient is (kind is StoreUnreachable)
    assert not isinstance(translated, NotFound)


@pytest.fixture
def caught(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="serverless_pypi")
    return caplog


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("serverless_pypi")]


def test_access_denied_is_a_503_naming_it_logged_once(
    s3_store: S3Store, caught: pytest.LogCaptureFixture
) -> None:
    app = build_application(s3_store)
    with Stubber(s3_store.client) as stub:
        for _ in range(3):
            stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
        responses = [app.handle(Request("GET", path)) for path in ("a/", "b/", "c/")]
    for response in responses:
        assert response.status == 503
        assert b"access denied" in response.body and b"policy" in response.body
        assert "Retry-After" not in response.headers  # it will not pass by itself
    assert len(ours(caught)) == 1
    assert not [r for r in caught.records if r.exc_info]


def test_throttling_is_a_503_to_retry(s3_store: S3Store, caught: pytest.LogCaptureFixture) -> None:
    app = build_application(s3_store)
    with Stubber(s3_store.client) as stub:
        stub.add_client_error("get_object", "SlowDown", "Please reduce your request rate", 503)
        response = app.handle(Request("GET", "pkg/"))
    assert response.status == 503 and response.headers["Retry-After"].isdigit()
    assert not [r for r in caught.records if r.exc_info]


def test_no_credentials_is_a_503_naming_it(
    s3_bucket: str,
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caught: pytest.LogCaptureFixture,
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    store = S3Store(s3_bucket, endpoint_url=moto_url)
    with pytest.raises(NoCredentials):
        store.check()
    response = build_application(store).handle(Request("GET", "pkg/"))
    assert response.status == 503 and b"no AWS credentials" in response.body
    assert not [r for r in caught.records if r.exc_info]


def test_check_finds_a_missing_bucket(s3_store: S3Store, moto_url: str) -> None:
    s3_store.check()  # the bucket exists: nothing to say
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(BucketNotFound) as raised:
        S3Store(missing, "some/prefix", endpoint_url=moto_url).check()
    assert missing in raised.value.cause and f"s3://{missing}" in str(raised.value)


def test_check_and_requests_on_an_unreachable_endpoint(
    aws_env: dict[str, str], caught: pytest.LogCaptureFixture
) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    store = S3Store("pkgs", client=client)
    with pytest.raises(StoreUnreachable):
        store.check()
    app = build_application(store)
    responses = [
        app.handle(Request("GET", path)) for path in ("a/", "b/", "a/a-1.0-py3-none-any.whl")
    ]
    for response in responses:
        assert response.status == 503 and response.headers["Retry-After"].isdigit()
        assert b"does not answer" in response.body
    assert len(ours(caught)) == 1
    assert not [r for r in caught.records if r.exc_info]


class ContendedStore(LocalStore):
    def get(self, key: str, *, if_none_match: str | None = None) -> Blob:
        raise Contention(f"{key!r} kept changing")


def test_contention_is_a_503_to_retry(tmp_path: Path, caught: pytest.LogCaptureFixture) -> None:
    response = build_application(ContendedStore(tmp_path)).handle(Request("GET", "pkg/"))
    assert response.status == 503 and response.headers["Retry-After"].isdigit()
    assert b"try again" in response.body
    assert not [r for r in caught.records if r.exc_info]


def test_check_of_a_local_store(tmp_path: Path) -> None:
    LocalStore(tmp_path / "new" / "store").check()  # can be created: fine
    LocalStore(tmp_path).check()
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreUnavailable, match="not a directory"):
        LocalStore(tmp_path / "file").check()
    with pytest.raises(StoreUnavailable):
        LocalStore(tmp_path / "file" / "below").check()


def test_a_cause_is_logged_again_after_the_report_interval(
    s3_store: S3Store, caught: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr("serverless_pypi.web.errors.time.monotonic", lambda: now[0])
    app = build_application(s3_store)
    with Stubber(s3_store.client) as stub:
        for _ in range(3):
            stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
        app.handle(Request("GET", "a/"))
        now[0] += errors_module.REPORT_INTERVAL - 1
        app.handle(Request("GET", "a/"))
        assert len(ours(caught)) == 1
        now[0] += 2
        app.handle(Request("GET", "a/"))
    assert len(ours(caught)) == 2
