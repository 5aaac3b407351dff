"""Issue 10, items 12, 13, 14 and 17 on Lambda: every event gets an answer, and every failure
of configuration or store is answered with its cause, logged once.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.adapters import aws_lambda
from serverless_pypi.adapters.aws_lambda import application, reindex_handler
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.events import MAX_NESTING, parse_invocation
from serverless_pypi.storage.s3 import S3Store
from tests.helpers.dists import make_wheel
from tests.helpers.index import JSON, publish_file
from tests.helpers.lambda_events import (
    BUCKET,
    CONFIG,
    WHEEL,
    event,
    eventbridge,
    handle,
    load,
    s3_notification,
    sqs,
)
from tests.helpers.servers import create_bucket, free_port

# -- the function configured for a bucket of moto's server ---------------------------------


@pytest.fixture
def function(
    aws_env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[S3Store]:
    """A fresh execution environment for a bucket with one published wheel."""
    name = create_bucket(moto_url, "events")
    store = S3Store(name, endpoint_url=moto_url)
    wheel = make_wheel(tmp_path, "my_pkg", "1.0")
    publish_file(Catalog(store), wheel)
    for variable in CONFIG:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("S3_BUCKET", name)
    fresh()
    yield store
    fresh()


def fresh() -> None:
    """Forget what a warm execution environment keeps (application, indexer, logged causes)."""
    application.cache_clear()
    aws_lambda.indexer.cache_clear()
    aws_lambda._log_once.cache_clear()


def text(response: dict[str, Any]) -> str:
    assert not response["isBase64Encoded"]
    return str(response["body"])


# -- item 12: malformed API events are answered 400 ---------------------------------------


def rest(**changes: Any) -> dict[str, Any]:
    data = event("rest_api_proxy")
    data.update(changes)
    return data


def http(**changes: Any) -> dict[str, Any]:
    data = event("http_api_default_stage")
    data.update(changes)
    return data


def http_context(http_value: Any) -> dict[str, Any]:
    data = event("function_url")
    data["requestContext"]["http"] = http_value
    return data


MALFORMED_EVENTS: dict[str, Any] = {
    "invalid base64 body": rest(body="!!not base64!!", isBase64Encoded=True),
    "invalid base64 body (http)": http(body="abc", isBase64Encoded=True),
    "numeric body": rest(body=12345),
    "list body": http(body=["a"]),
    "object body": rest(body={"a": 1}),
    "headers as a list": rest(headers=[["accept", "text/html"]], multiValueHeaders=None),
    "headers as a list beside multiValueHeaders": rest(headers=[["accept", "text/html"]]),
    "query parameters as a string beside the multi-value ones": rest(
        queryStringParameters="format=json", multiValueQueryStringParameters={"format": ["json"]}
    ),
    "headers as a list (http)": http(headers=["accept: text/html"]),
    "header values not strings": http(headers={"accept": 5}),
    "requestContext.http null": http_context(None),
    "requestContext.http a string": http_context("GET"),
    "requestContext a list": http(requestContext=[]),
    "query parameters as a string": rest(
        queryStringParameters="format=json", multiValueQueryStringParameters=None
    ),
    "multi-value query values not lists": rest(multiValueQueryStringParameters={"format": "json"}),
    "multiValueHeaders a list": rest(multiValueHeaders=[["accept", "text/html"]]),
    "multiValueHeaders values not lists": rest(multiValueHeaders={"accept": "text/html"}),
    "multiValueHeaders values of numbers": rest(multiValueHeaders={"accept": [1, 2]}),
    "rawQueryString a number": http(rawQueryString=5),
    "rawPath a number": http(rawPath=5),
    "pathParameters a list": rest(pathParameters=["my-pkg/"]),
    "pathParameters a number": rest(pathParameters={"package": 5}),
    "httpMethod a number": rest(httpMethod=5),
    "an event that is a list": [],
    "an event that is a string": "GET /simple/",
    "no event": None,
}


@pytest.mark.parametrize("name", sorted(MALFORMED_EVENTS))
def test_malformed_api_events_are_answered_400(
    function: S3Store, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="serverless_pypi"):
        response = handle(MALFORMED_EVENTS[name])
    assert response["statusCode"] == 400, name
    assert text(response).startswith("Bad request event: ")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_null_fields_stay_allowed(function: S3Store) -> None:
    # the console's test button sends null for what it does not fill in
    data = load("console_test")
    data["multiValueHeaders"] = {"accept": None, "accept-encoding": ["identity"]}
    data["requestContext"]["stage"] = None
    response = handle(data)
    assert response["statusCode"] == 200 and WHEEL in text(response)
    data = http(headers=None, rawQueryString=None, body=None, cookies=None)
    assert handle(data)["statusCode"] == 200


def test_a_valid_base64_body_still_reaches_the_application(function: S3Store) -> None:
    data = rest(httpMethod="POST", body="YWJj", isBase64Encoded=True)
    data["requestContext"]["httpMethod"] = "POST"
    # an upload without credentials: refused by the application, not by the event parser
    response = handle(data)
    assert response["statusCode"] in {403, 405}


# -- item 12: malformed indexer events are logged and skipped, or sent to the DLQ ----------


def nested_sns(depth: int) -> dict[str, Any]:
    payload: dict[str, Any] = s3_notification("my-pkg/x.whl", bucket=BUCKET)
    for _ in range(depth):
        payload = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": payload}}]}
    return payload


@pytest.mark.parametrize(
    "junk",
    [
        {"Records": [{"s3": None}]},
        {"Records": [{"s3": {"object": None}}]},
        {"Records": [{"s3": {"object": {"key": 5}, "bucket": {"name": BUCKET}}}]},
        {"Records": [{"s3": {"object": {"key": "a/b.whl"}, "bucket": "pkgs"}}]},
        {"Records": [{"Sns": None}]},
        {"Records": [{"Sns": {"Message": None}}]},
        {"Records": [None, 5, "x"]},
        {"detail": {"object": {"key": None}}},
        {"detail": {"object": {"key": "a/b.whl"}, "bucket": "pkgs"}},
        pytest.param(nested_sns(3000), id="sns-nested-3000-deep"),
    ],
    ids=lambda junk: repr(junk)[:60],
)
def test_malformed_indexer_events_are_skipped(
    function: S3Store, junk: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="serverless_pypi"):
        assert reindex_handler(junk) == {"status": "ok"}
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info]


def test_nesting_is_bounded() -> None:
    (message,) = parse_invocation(nested_sns(MAX_NESTING), BUCKET).messages
    assert message.keys == ["my-pkg/x.whl"] and not message.unreadable
    (message,) = parse_invocation(nested_sns(MAX_NESTING + 1), BUCKET).messages
    assert message.keys == [] and message.unreadable


def test_unreadable_sqs_messages_reach_the_dead_letter_queue(
    function: S3Store, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = function.bucket
    batch = sqs(
        "not json",  # m0: unreadable
        {"unexpected": True},  # m1: of no known shape
        "[" * 100_000 + "]" * 100_000,  # m2: JSON too deep for the parser
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket},  # m3: ignorable
        eventbridge("my-pkg/x.whl", bucket="someone-else"),  # m4: another bucket
        eventbridge(f"my_pkg/{WHEEL}", bucket=bucket),  # m5: a key to index
        {"Records": [{"s3": None}]},  # m6: unreadable record
        nested_sns(50),  # m7: nested too deeply
    )
    with caplog.at_level(logging.INFO, logger="serverless_pypi"):
        result = reindex_handler(batch)
    failed = [item["itemIdentifier"] for item in result["batchItemFailures"]]
    assert failed == ["m0", "m1", "m2", "m6", "m7"]
    assert not [r for r in caplog.records if r.exc_info]


# -- item 13: an invalid setting is a 500 whose reason is logged once ----------------------


@pytest.mark.parametrize("value", ["y", "2", "enabled", "maybe"])
def test_an_invalid_boolean_setting_fails_closed(
    function: S3Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    value: str,
) -> None:
    monkeypatch.setenv("REQUIRE_AUTH_FOR_READ", value)
    fresh()
    with caplog.at_level(logging.INFO, logger="serverless_pypi"):
        responses = [handle(event(shape)) for shape in ("rest_api_proxy", "function_url") * 3]
    for response in responses:
        assert response["statusCode"] == 500
        assert (
            text(response) == "The index is misconfigured; the reason is in the function's log.\n"
        )
        assert WHEEL not in text(response)
    reasons = [
        r
        for r in caplog.records
        if r.name.startswith("serverless_pypi") and "REQUIRE_AUTH_FOR_READ" in r.getMessage()
    ]
    assert len(reasons) == 1 and "true" in reasons[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("value", ["YES", " on ", "True", "1"])
def test_accepted_true_values_lock_reads(
    function: S3Store, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("REQUIRE_AUTH_FOR_READ", value)
    fresh()
    assert handle(event("function_url"))["statusCode"] == 401


# -- item 14: a store that cannot work is answered 503 with its cause, logged once ---------


def test_a_missing_bucket_is_a_503_naming_it(
    function: S3Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("S3_BUCKET", missing)
    fresh()
    with caplog.at_level(logging.INFO, logger="serverless_pypi"):
        responses = [handle(event(shape)) for shape in ("rest_api_proxy", "function_url") * 3]
    for response in responses:
        assert response["statusCode"] == 503
        assert missing in text(response) and "does not exist" in text(response)
        assert "try again" not in text(response)
    causes = [
        r
        for r in caplog.records
        if r.name.startswith("serverless_pypi") and missing in r.getMessage()
    ]
    assert len(causes) == 1
    assert not [r for r in caplog.records if r.exc_info]


def test_an_unreachable_endpoint_is_a_503_to_retry(
    function: S3Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    fresh()
    with caplog.at_level(logging.INFO, logger="serverless_pypi"):
        response = handle(event("function_url"))
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"].isdigit()
    assert "does not answer" in text(response)
    assert not [r for r in caplog.records if r.exc_info]


# -- item 17: a literal "+" in ?format= selects JSON ---------------------------------------


@pytest.mark.parametrize(
    "shape", ["http_api_default_stage", "function_url", "http_api_named_stage"]
)
def test_format_with_a_literal_plus_selects_json(function: S3Store, shape: str) -> None:
    data = event(shape, query={"format": JSON})  # rawQueryString carries the "+" as it is
    assert "+json" in data["rawQueryString"]
    response = handle(data)
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == JSON
    assert json.loads(text(response))["name"] == "my-pkg"


@pytest.mark.parametrize("shape", ["rest_api_proxy", "rest_api_custom_domain"])
def test_format_with_a_plus_through_a_rest_api(function: S3Store, shape: str) -> None:
    # REST APIs hand over decoded parameters: "+" as written, or a space where it was decoded
    for value in (JSON, JSON.replace("+", " ")):
        response = handle(event(shape, query={"format": value}))
        assert response["headers"]["Content-Type"] == JSON, value
