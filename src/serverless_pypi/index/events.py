"""What an indexer invocation asks for: the S3 keys it names, or a full reindex.

Accepted shapes (all may arrive duplicated, late or out of order; the indexer looks at the
store, not at the event, so that is harmless):
- EventBridge "Object Created" / "Object Deleted" events from S3, whole or only their `detail`
  (the reference module's rule passes `input_path = "$.detail"`);
- S3 event notifications (`Records` with `s3`), direct, wrapped in SNS, or in SQS messages
  (whose bodies hold any of these shapes), in batches;
- a scheduled EventBridge event, or `{"reindex": "full"}`: a full reindex;
- `{"pull": {"project": name, "file": filename}}` (mirror mode, from the API function through
  the pull queue, `index.pull.pull_message`): copy that upstream file into the store. Only the
  names travel: the URL and the digest are read from the cached upstream page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from serverless_pypi.core.names import (
    InvalidFilename,
    InvalidProjectName,
    NormalizedName,
    check_filename,
    normalize_project_name,
)

__all__ = ["Invocation", "Message", "parse_invocation"]


#: how deeply envelopes may nest (SQS body > SNS message > S3 notification needs 3)
MAX_NESTING = 8


@dataclass(slots=True)
class Message:
    """One retryable unit: an SQS message (with its id), or the whole event."""

    message_id: str | None
    keys: list[str] = field(default_factory=list)
    full_reindex: bool = False
    #: upstream files to copy into the store: (project, filename)
    pulls: list[tuple[NormalizedName, str]] = field(default_factory=list)
    #: why parts of the message were ignored although understood (another bucket, a key
    #: outside the prefix, S3's test event): nothing to do, the message is done
    ignored: list[str] = field(default_factory=list)
    #: why parts of the message could not be read (not JSON, no known shape, too deeply
    #: nested): an SQS message with any is reported as failed, so it reaches the dead-letter
    #: queue instead of being deleted unseen
    unreadable: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Invocation:
    messages: list[Message]

    @property
    def from_sqs(self) -> bool:
        return any(m.message_id is not None for m in self.messages)


def _collect(payload: Any, bucket: str, prefix: str, message: Message, depth: int = 0) -> None:
    """Add the keys (or the full-reindex request) found in `payload` to `message`."""
    if depth > MAX_NESTING:
        message.unreadable.append(f"envelopes nested more than {MAX_NESTING} deep")
        return
    payload = _json_object(payload, message)
    if payload is None:
        return
    if payload.get("reindex") == "full" or payload.get("detail-type") == "Scheduled Event":
        message.full_reindex = True
        return
    if "pull" in payload:
        _pull(payload["pull"], message)
        return
    if isinstance(payload.get("Records"), list):
        for record in payload["Records"]:
            _record(record, bucket, prefix, message, depth)
        return
    if payload.get("Type") == "Notification" and "Message" in payload:  # SNS envelope in SQS
        _collect(payload["Message"], bucket, prefix, message, depth + 1)
        return
    if payload.get("Event") == "s3:TestEvent":
        message.ignored.append("an S3 test event")
        return
    detail = payload.get("detail", payload)  # EventBridge event, or its detail alone
    if isinstance(detail, dict) and isinstance(detail.get("object"), dict):
        _object_event(detail, bucket, prefix, message)
        return
    message.unreadable.append(f"an event of unknown shape (keys: {_some_keys(payload)})")


def _pull(request: Any, message: Message) -> None:
    """A request for a pulled-through copy: a normalized project name and a file name."""
    project = request.get("project") if isinstance(request, dict) else None
    filename = request.get("file") if isinstance(request, dict) else None
    if not isinstance(project, str) or not isinstance(filename, str):
        message.unreadable.append("a pull request without a project and a file name")
        return
    try:
        name = normalize_project_name(project)
        check_filename(filename)
    except (InvalidProjectName, InvalidFilename) as e:
        message.unreadable.append(f"a pull request for an invalid name: {str(e)[:200]}")
        return
    if name != project:
        message.unreadable.append(f"a pull request for a name not normalized: {project[:100]!r}")
        return
    if (name, filename) not in message.pulls:
        message.pulls.append((name, filename))


def _json_object(payload: Any, message: Message) -> dict[str, Any] | None:
    """`payload` as a JSON object (a string is parsed first), else None and why not."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError):
            message.unreadable.append("a message body that is not JSON")
            return None
    if not isinstance(payload, dict):
        message.unreadable.append("an event that is not a JSON object")
        return None
    return payload


def _object_event(detail: dict[str, Any], bucket: str, prefix: str, message: Message) -> None:
    """The key of an EventBridge S3 event's `detail` (with an `object`)."""
    key = detail["object"].get("key")
    bucket_info = detail.get("bucket")
    if not isinstance(key, str) or not isinstance(bucket_info, dict | None):
        message.unreadable.append("an EventBridge event whose object or bucket is malformed")
        return
    name = (bucket_info or {}).get("name")
    _add_key(name, key, bucket, prefix, message)
    # EventBridge documents keys as they are, but reports disagree about special
    # characters ("+" in local versions): look at the URL-decoded key too. The indexer
    # reads the store's state for each, so the wrong candidate is a harmless no-op.
    if unquote_plus(key) != key:
        _add_key(name, unquote_plus(key), bucket, prefix, message)


def _record(record: Any, bucket: str, prefix: str, message: Message, depth: int) -> None:
    """One entry of `Records`: an SNS delivery, an S3 notification or an SQS message."""
    if not isinstance(record, dict):
        message.unreadable.append("a record that is not a JSON object")
    elif "Sns" in record:  # SNS delivers the S3 notification as a JSON string
        sns = record["Sns"]
        if not isinstance(sns, dict) or "Message" not in sns:
            message.unreadable.append("an SNS record without a message")
            return
        _collect(sns["Message"], bucket, prefix, message, depth + 1)
    elif "s3" in record:
        s3 = record["s3"]
        target = s3.get("object") if isinstance(s3, dict) else None
        bucket_info = s3.get("bucket") if isinstance(s3, dict) else None
        key = target.get("key") if isinstance(target, dict) else None
        if not isinstance(key, str) or not isinstance(bucket_info, dict | None):
            message.unreadable.append("an S3 record without an object key")
            return
        # S3 notifications URL-encode keys (spaces as "+")
        name = (bucket_info or {}).get("name")
        _add_key(name, unquote_plus(key), bucket, prefix, message)
    elif "body" in record:
        _collect(record["body"], bucket, prefix, message, depth + 1)
    else:
        message.unreadable.append(f"a record of unknown shape (keys: {_some_keys(record)})")


def _some_keys(payload: dict[Any, Any]) -> list[str]:
    # for the log: a few keys, each cut short (an event may carry anything)
    return [str(k)[:40] for k in sorted(payload, key=str)[:8]]


def _add_key(event_bucket: object, key: str, bucket: str, prefix: str, message: Message) -> None:
    if event_bucket not in (None, bucket):
        message.ignored.append(f"an event for another bucket ({event_bucket!r})")
        return
    if not key.startswith(prefix):
        message.ignored.append(f"a key outside the prefix {prefix!r}")
        return
    relative = key[len(prefix) :]
    if relative and relative not in message.keys:
        message.keys.append(relative)


def parse_invocation(event: Any, bucket: str, prefix: str = "") -> Invocation:
    """Split an indexer invocation into messages (SQS batches keep one per message)."""
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        records = event["Records"]
        if records and all(isinstance(r, dict) and "messageId" in r for r in records):
            messages = []
            for record in records:
                message = Message(str(record["messageId"]))
                _collect(record.get("body", ""), bucket, prefix, message)
                messages.append(message)
            return Invocation(messages)
    message = Message(None)
    _collect(event, bucket, prefix, message)
    return Invocation([message])
