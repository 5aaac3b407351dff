"""`Store.put_stream`: a stream written whole, or not at all (every store).

Pulled-through upstream files are streamed into the store and checked against the upstream's
sha256 before they may be served: `verify` runs once the stream is read to its end and before
anything is visible; when it refuses, or the stream fails half-way, nothing is stored, no
temporary file shows, and S3 keeps no incomplete multipart upload (whose parts it bills).
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import BinaryIO, cast

import boto3
import pytest

from serverless_pypi.storage import Store
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.s3 import S3Store
from serverless_pypi.storage.s3_light import LightS3Store
from tests.helpers.servers import REGION

#: S3's smallest part (but the last): parts of this size make a multipart upload quick to test
SMALL_PART = 5 * 1024 * 1024
KEY = ".serverless-pypi/upstream/files/demo/abc/demo-1.0-py3-none-any.whl"


class Refused(Exception):
    """What a test's `verify` raises."""


class Hashing(io.RawIOBase):
    """A stream of `data` in pieces of at most `piece` bytes that hashes what was read, and
    fails with OSError once `fail_after` bytes were read (an upstream that drops the
    connection)."""

    def __init__(self, data: bytes, *, piece: int = 1 << 20, fail_after: int | None = None):
        self.data = memoryview(data)
        self.piece = piece
        self.fail_after = fail_after
        self.position = 0
        self.hasher = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.fail_after is not None and self.position >= self.fail_after:
            raise OSError("the upstream closed the connection")
        count = min(len(buffer), self.piece, len(self.data) - self.position)
        buffer[:count] = self.data[self.position : self.position + count]
        self.hasher.update(self.data[self.position : self.position + count])
        self.position += count
        return count

    def verify(self, expected: str) -> None:
        actual = self.hasher.hexdigest()
        if self.position != len(self.data) or actual != expected:
            raise Refused(f"sha256 {actual} is not {expected}")


def as_binary(stream: Hashing) -> BinaryIO:
    return cast(BinaryIO, stream)


def small_parts(store: Store) -> Store:
    """`store` with S3 multipart parts of 5 MiB (the boto3 writer's, for the light store)."""
    if isinstance(store, LightS3Store):
        store.writer.part_size = SMALL_PART
    elif isinstance(store, S3Store):
        store.part_size = SMALL_PART
    return store


def incomplete_uploads(store: Store) -> list[str]:
    """Multipart uploads S3 still holds in the store's bucket (none for a local store)."""
    if not isinstance(store, S3Store | LightS3Store):
        return []
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])]


def leftovers(store: Store) -> list[str]:
    """Every key; for a local store every file on disk but the lock files (temporary files
    are no keys, so a listing would not show them)."""
    if isinstance(store, LocalStore):
        return [
            str(p.relative_to(store.root))
            for p in Path(store.root).rglob("*")
            if p.is_file() and ".locks" not in p.parts
        ]
    return [info.key for info in store.list()]


@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024, 2 * SMALL_PART + 12345])
def test_a_verified_stream_is_stored_whole(store: Store, size: int) -> None:
    data = os.urandom(size)
    stream = Hashing(data, piece=700_001)  # pieces that are no part boundary
    digest = hashlib.sha256(data).hexdigest()
    etag = small_parts(store).put_stream(
        KEY,
        io.BufferedReader(stream),
        verify=lambda: stream.verify(digest),
        content_type="application/octet-stream",
    )
    assert store.get(KEY).data == data
    info = store.head(KEY)
    assert (info.size, info.etag) == (size, etag)
    assert incomplete_uploads(store) == []


def test_a_stream_larger_than_a_part_goes_in_parts(s3_store: S3Store) -> None:
    data = os.urandom(2 * SMALL_PART + 1)
    stream = Hashing(data)
    etag = small_parts(s3_store).put_stream(
        KEY, as_binary(stream), verify=lambda: stream.verify(hashlib.sha256(data).hexdigest())
    )
    assert etag.endswith('-3"')  # S3's etag of a multipart object counts its parts
    assert s3_store.get(KEY).data == data


def test_the_content_type_is_kept(s3_store: S3Store) -> None:
    for size in (10, SMALL_PART + 10):  # one PutObject, then a multipart upload
        key = f"{KEY}.{size}"
        small_parts(s3_store).put_stream(
            key, io.BytesIO(b"x" * size), verify=lambda: None, content_type="application/zip"
        )
        head = s3_store.client.head_object(Bucket=s3_store.bucket, Key=key)
        assert head["ContentType"] == "application/zip"


@pytest.mark.parametrize("size", [100, 2 * SMALL_PART + 1])
def test_a_refused_stream_leaves_nothing(store: Store, size: int) -> None:
    data = os.urandom(size)
    stream = Hashing(data)
    with pytest.raises(Refused):
        small_parts(store).put_stream(
            KEY, as_binary(stream), verify=lambda: stream.verify("0" * 64)
        )
    assert stream.position == size  # refused after the whole stream was read
    assert leftovers(store) == []
    assert incomplete_uploads(store) == []


@pytest.mark.parametrize("fail_after", [0, 100, SMALL_PART + 100])
def test_a_stream_failing_midway_leaves_nothing(store: Store, fail_after: int) -> None:
    data = os.urandom(2 * SMALL_PART + 1)
    stream = Hashing(data, fail_after=fail_after)
    verified: list[bool] = []
    with pytest.raises(OSError, match="closed the connection"):
        small_parts(store).put_stream(KEY, as_binary(stream), verify=lambda: verified.append(True))
    assert verified == []  # never asked: the stream did not end
    assert leftovers(store) == []
    assert incomplete_uploads(store) == []


def test_a_failure_leaves_the_object_there_before(store: Store) -> None:
    store.put(KEY, b"the copy verified before")
    stream = Hashing(b"other bytes")
    with pytest.raises(Refused):
        store.put_stream(KEY, as_binary(stream), verify=lambda: stream.verify("0" * 64))
    assert store.get(KEY).data == b"the copy verified before"
    assert leftovers(store) == [KEY]


def test_a_verified_stream_replaces_the_object(store: Store) -> None:
    store.put(KEY, b"old")
    store.put_stream(KEY, io.BytesIO(b"new"), verify=lambda: None)
    assert store.get(KEY).data == b"new"


class DefaultPutStream(LocalStore):
    """A store without a `put_stream` of its own: the interface's default (spool, then put)."""

    put_stream = Store.put_stream


def test_the_default_put_stream_is_whole_or_nothing(tmp_path: Path) -> None:
    store = DefaultPutStream(tmp_path / "store")
    data = os.urandom(3 * 1024 * 1024 + 1)
    stream = Hashing(data)
    with pytest.raises(Refused):
        store.put_stream(KEY, as_binary(stream), verify=lambda: stream.verify("0" * 64))
    assert stream.position == len(data) and leftovers(store) == []
    stream = Hashing(data)
    etag = store.put_stream(
        KEY, as_binary(stream), verify=lambda: stream.verify(hashlib.sha256(data).hexdigest())
    )
    assert store.get(KEY).data == data and store.head(KEY).etag == etag
