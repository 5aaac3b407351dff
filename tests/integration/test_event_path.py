"""The event path end to end: S3 (moto's server) -> EventBridge -> SQS -> reindex_handler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from serverless_pypi.adapters import aws_lambda
from serverless_pypi.index import layout
from serverless_pypi.storage.s3 import S3Store
from tests.helpers.dists import make_wheel
from tests.helpers.index import stored_page
from tests.helpers.servers import REGION


# The rule the Terraform module installs: S3 object events of the bucket, except the keys the
# index writes itself (so its own writes never trigger another indexing).
def rule_pattern(bucket: str) -> dict[str, Any]:
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created", "Object Deleted"],
        "detail": {
            "bucket": {"name": [bucket]},
            "object": {"key": [{"anything-but": {"prefix": layout.RESERVED_PREFIX}}]},
        },
    }


@pytest.fixture
def wired(
    s3_bucket: str, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"endpoint_url": moto_url, "region_name": REGION}
    s3 = boto3.client("s3", **kwargs)
    events = boto3.client("events", **kwargs)
    sqs = boto3.client("sqs", **kwargs)
    s3.put_bucket_notification_configuration(
        Bucket=s3_bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    queue = sqs.create_queue(QueueName=f"q-{s3_bucket}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    rule = f"r-{s3_bucket}"
    events.put_rule(Name=rule, EventPattern=json.dumps(rule_pattern(s3_bucket)))
    events.put_targets(Rule=rule, Targets=[{"Id": "indexer", "Arn": arn}])
    monkeypatch.setenv("S3_BUCKET", s3_bucket)
    monkeypatch.delenv("S3_PREFIX", raising=False)
    aws_lambda.indexer.cache_clear()
    yield {"s3": s3, "sqs": sqs, "queue": queue, "bucket": s3_bucket}
    aws_lambda.indexer.cache_clear()
    events.remove_targets(Rule=rule, Ids=["indexer"])
    events.delete_rule(Name=rule)


def drain(sqs: Any, queue: str) -> list[dict[str, Any]]:
    """The queue's messages in the shape Lambda's SQS event source mapping delivers them."""
    records: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = got.get("Messages", [])
        if not messages:
            return records
        for message in messages:
            records.append(
                {
                    "messageId": message["MessageId"],
                    "eventSource": "aws:sqs",
                    "body": message["Body"],
                }
            )
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


def test_a_copied_file_is_on_the_page_after_one_indexer_run(
    wired: dict[str, Any], tmp_path: Path
) -> None:
    s3, sqs, queue, bucket = wired["s3"], wired["sqs"], wired["queue"], wired["bucket"]
    wheel = make_wheel(tmp_path, "evented", "1.0", requires_python=">=3.10")
    # `aws s3 cp` straight into the bucket, as the reference module expects
    s3.put_object(Bucket=bucket, Key=f"Evented/{wheel.name}", Body=wheel.read_bytes())
    records = drain(sqs, queue)
    assert len(records) == 1
    # duplicated delivery (at-least-once)
    result = aws_lambda.reindex_handler({"Records": records + records})
    assert result == {"batchItemFailures": []}
    store = S3Store(bucket)
    (entry,) = stored_page(store, "evented")["files"]
    assert entry["filename"] == wheel.name
    assert entry["requires-python"] == ">=3.10"
    assert "core-metadata" in entry and entry["hashes"]["sha256"]
    # the indexer's own writes (derived data) raised no events; index.html did, and is ignored
    follow_up = drain(sqs, queue)
    keys = [json.loads(r["body"])["detail"]["object"]["key"] for r in follow_up]
    assert all(not k.startswith(layout.RESERVED_PREFIX) for k in keys)
    assert set(keys) <= {layout.ROOT_HTML}
    assert aws_lambda.reindex_handler({"Records": follow_up}) == {"batchItemFailures": []}
    # a delete goes through the same path
    s3.delete_object(Bucket=bucket, Key=f"Evented/{wheel.name}")
    aws_lambda.reindex_handler({"Records": drain(sqs, queue)})
    with pytest.raises(Exception):
        stored_page(store, "evented")


def test_eventbridge_detail_only_and_scheduled_events(
    wired: dict[str, Any], tmp_path: Path
) -> None:
    s3, sqs, queue, bucket = wired["s3"], wired["sqs"], wired["queue"], wired["bucket"]
    first = make_wheel(tmp_path, "direct", "1.0")
    second = make_wheel(tmp_path, "direct", "2.0")
    s3.put_object(Bucket=bucket, Key=f"direct/{first.name}", Body=first.read_bytes())
    s3.put_object(Bucket=bucket, Key=f"direct/{second.name}", Body=second.read_bytes())
    records = drain(sqs, queue)
    # EventBridge invoking the function directly with `input_path = "$.detail"`
    detail = json.loads(records[0]["body"])["detail"]
    assert aws_lambda.reindex_handler(detail)["indexed"] == 1
    # the scheduled reconcile picks up what a lost event left
    result = aws_lambda.reindex_handler({"source": "aws.events", "detail-type": "Scheduled Event"})
    assert result["status"] == "ok"
    files = {f["filename"] for f in stored_page(S3Store(bucket), "direct")["files"]}
    assert files == {first.name, second.name}


def test_failed_messages_are_reported_for_retry(
    wired: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, sqs, queue, bucket = wired["s3"], wired["sqs"], wired["queue"], wired["bucket"]
    good = make_wheel(tmp_path, "fine", "1.0")
    s3.put_object(Bucket=bucket, Key=f"fine/{good.name}", Body=good.read_bytes())
    s3.put_object(Bucket=bucket, Key="broken/broken-1.0-py3-none-any.whl", Body=b"junk")
    records = drain(sqs, queue)
    worker = aws_lambda.indexer()
    original = worker.index_key

    def flaky(key: str) -> Any:
        if key.startswith("fine/"):
            raise ConnectionError("S3 went away")
        return original(key)

    monkeypatch.setattr(worker, "index_key", flaky)
    result = aws_lambda.reindex_handler({"Records": records})
    failed = [f["itemIdentifier"] for f in result["batchItemFailures"]]
    fine_ids = [r["messageId"] for r in records if "fine/" in r["body"]]
    assert failed == fine_ids  # the bad file is not a failure: it is skipped with a reason
    monkeypatch.setattr(worker, "index_key", original)
    retried = [r for r in records if r["messageId"] in failed]
    assert aws_lambda.reindex_handler({"Records": retried}) == {"batchItemFailures": []}
    assert [f["filename"] for f in stored_page(S3Store(bucket), "fine")["files"]] == [good.name]
    # outside SQS a failure raises, so EventBridge retries and then dead-letters the event
    monkeypatch.setattr(worker, "index_key", flaky)
    with pytest.raises(RuntimeError):
        aws_lambda.reindex_handler(json.loads(retried[0]["body"]))
