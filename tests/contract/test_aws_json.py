"""The AWS JSON-protocol client of the Lambda functions (`storage.aws_json`), boto3-free.

Against moto's server: SQS SendMessage lands in the queue, Secrets Manager GetSecretValue
reads a secret, refusals carry AWS's error code. Against a stand-in: the request is the one
botocore signs (SigV4Auth, the time frozen), busy answers are retried, and the endpoint is
the one botocore picks from the environment.
"""

from __future__ import annotations

import calendar
import datetime
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from serverless_pypi.storage import aws_json, sigv4
from serverless_pypi.storage.aws_json import (
    SECRETS_MANAGER,
    SQS,
    AwsCallFailed,
    AwsJsonClient,
    endpoint_url,
)
from tests.helpers.servers import REGION

FROZEN = datetime.datetime(2026, 3, 4, 5, 6, 7)


def test_a_message_is_sent_to_an_sqs_queue(aws_env: dict[str, str]) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="pulls-send")["QueueUrl"]
    body = json.dumps({"pull": {"project": "demo", "file": "demo-1.0.tar.gz"}})
    answer = AwsJsonClient(SQS).call("SendMessage", {"QueueUrl": queue, "MessageBody": body})
    assert answer["MessageId"]
    [message] = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    assert message["Body"] == body


def test_a_secret_is_read(aws_env: dict[str, str]) -> None:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    value = json.dumps({"username": "reader", "password": "p@ss wörd"})
    arn = secrets.create_secret(Name="upstream-read", SecretString=value)["ARN"]
    answer = AwsJsonClient(SECRETS_MANAGER).call("GetSecretValue", {"SecretId": arn})
    assert json.loads(answer["SecretString"]) == {"username": "reader", "password": "p@ss wörd"}


def test_refusals_carry_the_error_code(aws_env: dict[str, str]) -> None:
    with pytest.raises(AwsCallFailed) as raised:
        AwsJsonClient(SECRETS_MANAGER).call("GetSecretValue", {"SecretId": "no-such-secret"})
    assert raised.value.code == "ResourceNotFoundException" and raised.value.status >= 400
    with pytest.raises(AwsCallFailed) as raised:
        AwsJsonClient(SQS).call(
            "SendMessage",
            {"QueueUrl": f"{aws_env['AWS_ENDPOINT_URL']}/123456789012/none", "MessageBody": "x"},
        )
    assert raised.value.status == 400 and "QueueDoesNotExist" in raised.value.code


def test_without_credentials_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    client = AwsJsonClient(SQS, endpoint="http://127.0.0.1:9")
    with pytest.raises(AwsCallFailed, match="no AWS credentials"):
        client.call("SendMessage", {})


@pytest.mark.parametrize(
    ("env", "service", "expected"),
    [
        ({}, SQS, "https://sqs.eu-west-1.amazonaws.com"),
        ({}, SECRETS_MANAGER, "https://secretsmanager.eu-west-1.amazonaws.com"),
        ({"AWS_ENDPOINT_URL": "http://all:1/"}, SQS, "http://all:1"),
        (
            {"AWS_ENDPOINT_URL": "http://all:1", "AWS_ENDPOINT_URL_SQS": "http://q:2"},
            SQS,
            "http://q:2",
        ),
        (
            {"AWS_ENDPOINT_URL": "http://all:1", "AWS_ENDPOINT_URL_SQS": "http://q:2"},
            SECRETS_MANAGER,
            "http://all:1",
        ),
        ({"AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://s:3"}, SECRETS_MANAGER, "http://s:3"),
    ],
)
def test_the_endpoint_is_botocores(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    service: aws_json.Service,
    expected: str,
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert endpoint_url(service, "eu-west-1") == expected
    if not env:  # botocore agrees (it resolves the same endpoint itself)
        client = boto3.client(service.name, region_name="eu-west-1")  # type: ignore[call-overload]
        assert client.meta.endpoint_url == expected
        assert endpoint_url(service, "cn-north-1").endswith(".cn-north-1.amazonaws.com.cn")


# -- the request, against a stand-in ---------------------------------------------------------


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[Any], list[Any], str]]:
    """A server that records requests and answers from `answers` (status, body), and the
    environment of a Lambda function with session credentials; the time frozen."""
    seen: list[Any] = []
    answers: list[tuple[int, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, dict(self.headers.items()), body))
            status, answer = answers.pop(0) if answers else (200, b"{}")
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "ASIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret/with+slash=",
        "AWS_SESSION_TOKEN": "the-token",
        "AWS_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)
    monkeypatch.setattr(sigv4, "clock", lambda: float(calendar.timegm(FROZEN.timetuple())))
    monkeypatch.setattr(aws_json, "_backoff", lambda attempt: None)
    yield seen, answers, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("service", "operation", "payload"),
    [
        (SQS, "SendMessage", {"QueueUrl": "https://q/1/pulls", "MessageBody": '{"pull": {}}'}),
        (SECRETS_MANAGER, "GetSecretValue", {"SecretId": "arn:aws:secretsmanager:x:1:secret:u"}),
    ],
)
def test_calls_are_signed_as_botocore_signs_them(
    stand_in: tuple[list[Any], list[Any], str],
    service: aws_json.Service,
    operation: str,
    payload: dict[str, str],
) -> None:
    seen, _, url = stand_in
    AwsJsonClient(service, endpoint=url).call(operation, payload)
    [(path, headers, body)] = seen
    assert path == "/" and json.loads(body) == payload
    assert headers["X-Amz-Target"] == f"{service.target_prefix}.{operation}"
    assert headers["Content-Type"] == f"application/x-amz-json-{service.json_version}"
    signed = {k: v for k, v in headers.items() if k not in {"Authorization", "Content-Length"}}
    request = AWSRequest(method="POST", url=f"{url}/", data=body, headers=signed)
    botocore.auth.SigV4Auth(
        BotoCredentials("ASIAEXAMPLE", "secret/with+slash=", "the-token"),
        service.name,
        "eu-west-1",
    ).add_auth(request)
    assert request.headers["Authorization"] == headers["Authorization"]
    assert f"/eu-west-1/{service.name}/aws4_request" in headers["Authorization"]
    assert "X-Amz-Content-SHA256" not in headers  # S3's header only


def test_busy_answers_are_retried_and_refusals_are_not(
    stand_in: tuple[list[Any], list[Any], str],
) -> None:
    seen, answers, url = stand_in
    client = AwsJsonClient(SQS, endpoint=url)
    answers += [(500, b'{"__type": "InternalError"}'), (200, b'{"MessageId": "m1"}')]
    assert client.call("SendMessage", {}) == {"MessageId": "m1"}
    answers += [(400, b'{"__type": "com.amazonaws.sqs#InvalidParameterValue", "message": "no"}')]
    with pytest.raises(AwsCallFailed, match="InvalidParameterValue: no") as raised:
        client.call("SendMessage", {})
    assert raised.value.code == "InvalidParameterValue"
    answers += [(503, b"")] * 3
    with pytest.raises(AwsCallFailed) as raised:
        client.call("SendMessage", {})
    assert raised.value.status == 503
    assert len(seen) == 2 + 1 + 3


def test_an_endpoint_that_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, stand_in: tuple[list[Any], list[Any], str]
) -> None:
    from tests.helpers.servers import free_port

    client = AwsJsonClient(SQS, endpoint=f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(AwsCallFailed, match="ConnectionRefusedError"):
        client.call("SendMessage", {})
