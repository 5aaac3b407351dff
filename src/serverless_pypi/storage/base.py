"""The storage interface every backend implements, and the errors it raises.

Backends translate their own errors (botocore's ClientError, OSError) into these at the
boundary, and nowhere else: an access error is never mistaken for "not found".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, BinaryIO, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path  # annotations only: pathlib is not on the cold path

__all__ = [
    "AccessDenied",
    "Blob",
    "BucketNotFound",
    "LocalFile",
    "NoCredentials",
    "NotFound",
    "NotModified",
    "ObjectInfo",
    "PreconditionFailed",
    "Redirect",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoreUnreachable",
    "UploadedPart",
]


class StoreError(Exception):
    """The store failed or refused (permissions, network): never means "empty"."""


class StoreUnavailable(StoreError):
    """The store cannot answer at all: `cause` says why in words a person can act on.

    `transient` causes (an endpoint that does not answer, throttling) may pass by themselves;
    the others are configuration problems that stay until someone fixes them.
    """

    transient = False

    def __init__(self, cause: str, location: str = "", detail: str = "") -> None:
        message = f"{location}: {cause}" if location else cause
        super().__init__(f"{message} ({detail})" if detail else message)
        self.cause = cause
        self.location = location
        self.detail = detail


class BucketNotFound(StoreUnavailable):
    """The bucket (or directory) the store names does not exist."""


class AccessDenied(StoreUnavailable):
    """The credentials in use may not read or write the store."""


class NoCredentials(StoreUnavailable):
    """No credentials were found, or the service refused them as invalid or expired."""


class StoreUnreachable(StoreUnavailable):
    """The service did not answer (network, DNS, timeouts, throttling): may pass by itself."""

    transient = True


class NotFound(StoreError, FileNotFoundError):
    """No object under that key."""


class NotModified(StoreError):
    """A conditional read found the object unchanged (the If-None-Match etag matched)."""


class PreconditionFailed(StoreError):
    """A conditional write lost: the object exists (If-None-Match) or changed (If-Match)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime


class UploadedPart(NamedTuple):
    """One part a multipart upload holds: its number (1 to 10,000), size and etag."""

    number: int
    size: int
    etag: str


@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes
    etag: str
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class Redirect:
    """Served elsewhere: the client fetches `url` (a presigned store URL, another index)."""

    url: str


@dataclass(frozen=True, slots=True)
class LocalFile:
    """Served from this machine: the file at `path`, of `size` bytes with `etag`, now."""

    path: Path
    size: int
    etag: str


class Store(ABC):
    """Objects under string keys with `/` separators, and conditional writes.

    Keys are relative to the store's root (an S3 prefix or a directory). Writes are atomic:
    a reader sees the old object or the new one, never a part.
    """

    #: a description for messages and logs, e.g. `s3://bucket/prefix`
    location: str
    #: whether the multipart API below works: parts a client PUTs itself, to presigned URLs
    supports_multipart: bool = False

    @abstractmethod
    def get(self, key: str, *, if_none_match: str | None = None) -> Blob:
        """The object's bytes; NotFound, or NotModified when `if_none_match` matches."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """The object's size, etag and time; NotFound."""

    @abstractmethod
    def open(self, key: str, *, if_match: str | None = None) -> AbstractContextManager[BinaryIO]:
        """A stream of the object's bytes (PreconditionFailed if its etag is not `if_match`)."""

    @abstractmethod
    def put(
        self,
        key: str,
        data: bytes | IO[bytes],
        *,
        content_type: str | None = None,
        content_encoding: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Write atomically and return the new etag.

        `if_none_match=True` writes only if no object exists; `if_match` only if the current
        etag equals it. Either raises PreconditionFailed when the condition does not hold.
        """

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        verify: Callable[[], None],
        content_type: str | None = None,
    ) -> str:
        """Write the bytes `stream` gives, to its end, and return the new etag, but only if
        `verify()` (called once the stream is exhausted, before anything is visible) returns.

        `verify` raises to refuse (a digest that does not match what was read): the error
        propagates and nothing is stored under `key`, nor left half-written; a stream that
        fails does the same. Memory stays bounded whatever the size. The stores override this
        (local: a temporary file renamed into place; S3: a multipart upload completed after
        `verify`); this default spools the bytes to a temporary file first.
        """
        import shutil
        import tempfile

        with tempfile.TemporaryFile() as spool:
            shutil.copyfileobj(stream, spool, 1024 * 1024)
            verify()
            spool.seek(0)
            return self.put(key, spool, content_type=content_type)

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, in key order, streamed page by page."""

    @abstractmethod
    def list_folders(self, prefix: str = "") -> Iterator[str]:
        """Names of the "folders" directly under `prefix` (keys with a further `/`)."""

    def check(self) -> None:
        """Probe the store cheaply (one listing request): raise StoreUnavailable (with a
        `cause` for people) when it cannot work, e.g. at startup, before serving anyone."""
        for _ in self.list_folders(""):
            break

    def find(self, key: str) -> ObjectInfo | None:
        """The object's size, etag and time, or None when there is no such object."""
        try:
            return self.head(key)
        except NotFound:
            return None

    @abstractmethod
    def deliver(self, key: str, method: str, expires: int) -> Redirect | LocalFile:
        """How the object is served to a client without passing through the index.

        A store with URLs of its own (S3) answers a Redirect to a URL valid for `expires`
        seconds that answers `method` (GET or HEAD); it does not look the key up. A store on
        the local file system answers the LocalFile with its size and etag now, or raises
        NotFound.
        """

    def read_range(
        self, key: str, start: int, length: int, *, if_match: str | None = None
    ) -> bytes:
        """`length` bytes of the object from offset `start` (fewer at its end); NotFound, or
        PreconditionFailed if its etag is not `if_match`. The stores override this (a seek,
        a ranged GET); this default reads from the start."""
        with self.open(key, if_match=if_match) as stream:
            left = start
            while left > 0:
                skipped = stream.read(min(left, 1024 * 1024))
                if not skipped:
                    return b""
                left -= len(skipped)
            chunks: list[bytes] = []
            while length > 0 and (chunk := stream.read(length)):
                chunks.append(chunk)
                length -= len(chunk)
            return b"".join(chunks)

    def copy(self, source: str, destination: str, *, if_none_match: bool = False) -> ObjectInfo:
        """Copy the object at `source` to `destination` atomically; the copy's info.

        `if_none_match=True` copies only if no object is at `destination` (PreconditionFailed
        otherwise), as `put` does; NotFound when there is no `source`. The stores override
        this (local: a hard link of a copy; S3: a server-side copy); this default spools the
        bytes through a temporary file.
        """
        import shutil
        import tempfile

        with tempfile.TemporaryFile() as spool:
            with self.open(source) as stream:
                shutil.copyfileobj(stream, spool, 1024 * 1024)
            spool.seek(0)
            self.put(
                destination,
                spool,
                content_type="application/octet-stream",
                if_none_match=if_none_match,
            )
        return self.head(destination)

    # -- multipart uploads whose parts clients send themselves (S3 only) -----------------
    def create_multipart(self, key: str) -> str:
        """Start a multipart upload to `key`; its upload id. Nothing shows at `key` until
        `complete_multipart`."""
        raise NotImplementedError(f"{self.location} has no multipart uploads")

    def presign_part(self, key: str, upload_id: str, number: int, expires: int) -> str:
        """A URL that takes a PUT of part `number` of the upload for `expires` seconds, with
        no other credentials (the URL carries the signature)."""
        raise NotImplementedError(f"{self.location} has no multipart uploads")

    def list_parts(self, key: str, upload_id: str) -> Sequence[UploadedPart]:
        """The parts the upload holds now, by number; NotFound for an unknown upload."""
        raise NotImplementedError(f"{self.location} has no multipart uploads")

    def complete_multipart(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        *,
        if_none_match: bool = False,
    ) -> str:
        """Join the `parts` (number, etag) into the object at `key`; its etag."""
        raise NotImplementedError(f"{self.location} has no multipart uploads")

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; an upload already gone is not an error."""
        raise NotImplementedError(f"{self.location} has no multipart uploads")
