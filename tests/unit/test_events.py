"""Indexer invocations: every accepted event shape parses to the keys it names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from serverless_pypi.index.events import parse_invocation
from tests.helpers.lambda_events import BUCKET, eventbridge, s3_notification, sns, sqs


@pytest.mark.parametrize(
    ("event", "keys"),
    [
        (eventbridge("a/a-1.0.tar.gz"), ["a/a-1.0.tar.gz"]),
        (eventbridge("a/a-1.0.tar.gz", "Object Deleted"), ["a/a-1.0.tar.gz"]),
        # the reference module's rule passes only the detail (input_path = "$.detail")
        (eventbridge("a/a-1.0.tar.gz")["detail"], ["a/a-1.0.tar.gz"]),
        # a key as written, and URL-decoded in case EventBridge encoded it
        (eventbridge("a/a-1.0%2Blocal.tar.gz"), ["a/a-1.0%2Blocal.tar.gz", "a/a-1.0+local.tar.gz"]),
        # S3 notifications URL-encode keys, spaces as "+"
        (s3_notification("My%2BPkg/my+pkg-1.0.tar.gz"), ["My+Pkg/my pkg-1.0.tar.gz"]),
        (s3_notification("a/x.whl", "b/y.whl"), ["a/x.whl", "b/y.whl"]),
        (sns(s3_notification("a/x.whl")), ["a/x.whl"]),
        # duplicates within one message are indexed once
        (s3_notification("a/x.whl", "a/x.whl"), ["a/x.whl"]),
    ],
)
def test_keys_of_direct_events(event: dict[str, Any], keys: list[str]) -> None:
    invocation = parse_invocation(event, BUCKET)
    assert not invocation.from_sqs
    assert [m.keys for m in invocation.messages] == [keys]


def test_sqs_batches_keep_one_message_per_record() -> None:
    envelope = {"Type": "Notification", "Message": json.dumps(s3_notification("c/z.whl"))}
    invocation = parse_invocation(
        sqs(eventbridge("a/x.whl"), s3_notification("b/y.whl"), envelope, "not json"), BUCKET
    )
    assert invocation.from_sqs
    assert [(m.message_id, m.keys) for m in invocation.messages] == [
        ("m0", ["a/x.whl"]),
        ("m1", ["b/y.whl"]),
        ("m2", ["c/z.whl"]),
        ("m3", []),
    ]
    # item 12: a body that is not JSON is unreadable (reported as a failure), not ignored
    assert invocation.messages[3].unreadable and not invocation.messages[3].ignored


@pytest.mark.parametrize(
    "event",
    [
        {"reindex": "full"},
        {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
    ],
)
def test_full_reindex_events(event: dict[str, Any]) -> None:
    (message,) = parse_invocation(event, BUCKET).messages
    assert message.full_reindex and not message.keys


def test_prefix_is_stripped_and_keys_outside_it_ignored() -> None:
    event = s3_notification("pypi/a/x.whl", "other/b/y.whl")
    (message,) = parse_invocation(event, BUCKET, "pypi").messages
    assert message.keys == ["a/x.whl"]
    assert any("prefix" in reason for reason in message.ignored)


@pytest.mark.parametrize(
    "event",
    [
        eventbridge("a/x.whl", bucket="someone-else"),
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET},
        {"unexpected": True},
        [],
        "garbage",
        {"Records": "nope"},
    ],
)
def test_events_that_name_no_key(event: Any) -> None:
    (message,) = parse_invocation(event, BUCKET).messages
    assert message.keys == [] and not message.full_reindex
    # understood but for someone else (ignored), or not understood at all (unreadable)
    assert message.ignored or message.unreadable
