"""Upload 2.0 (PEP 694) sessions: the verification of a staged file.

What a file upload session is checked against (the hashes the client declares, PEP 694) and
the check itself: a staged object's size, every declared hash, and the checks of a legacy
upload (the archive, the core metadata agreeing with the file name), read from memory or
through ranged reads of the store. Also the guard that stores an `http-post-bytes` body of
exactly the declared size. The service that uses them is `index.sessions`.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from serverless_pypi.core.errors import InvalidRequest
from serverless_pypi.core.metadata import BadDistribution, inspect_distribution
from serverless_pypi.core.names import Distribution
from serverless_pypi.index.records import SPOOL_IN_MEMORY
from serverless_pypi.storage import ObjectInfo, Store

if TYPE_CHECKING:
    from serverless_pypi.index.session_documents import StagedFile

__all__ = ["Counted", "check_hashes", "verify_staged"]

_HEX = re.compile(r"[0-9a-f]+", re.ASCII)


def check_hashes(hashes: Mapping[str, str]) -> dict[str, str]:
    """The declared hashes, lowercase, each known and well formed; sha256 is required.

    PEP 694: any `hashlib` algorithm that takes no parameters, at least one of
    `algorithms_guaranteed`; the index needs sha256 (its pages list it).
    """
    checked: dict[str, str] = {}
    for name, value in hashes.items():
        algorithm = str(name).lower()
        if algorithm not in hashlib.algorithms_guaranteed or algorithm.startswith("shake_"):
            known = ", ".join(
                sorted(a for a in hashlib.algorithms_guaranteed if not a.startswith("shake_"))
            )
            raise InvalidRequest(f"hashes: {str(name)[:40]!r} is not one of {known}")
        digest = str(value).lower()
        width = hashlib.new(algorithm).digest_size * 2
        if len(digest) != width or not _HEX.fullmatch(digest):
            raise InvalidRequest(f"hashes: {algorithm} must be {width} hexadecimal digits")
        checked[algorithm] = digest
    if "sha256" not in checked:
        raise InvalidRequest("hashes: sha256 is required")
    return checked


def verify_staged(
    store: Store, key: str, file: StagedFile, dist: Distribution
) -> tuple[str | None, bytes | None, str | None]:
    """(problem, core metadata, Requires-Python) of the staged object.

    One pass hashes the bytes; the inspection (the legacy upload's, `records`) then reads
    what it needs: from memory for a file of up to SPOOL_IN_MEMORY bytes, else through
    ranged reads (the central directory and METADATA of a wheel, the head of an sdist),
    so neither memory nor the API function's small /tmp bounds the size of a file.
    """
    info = store.head(key)
    if info.size != file.size:
        return f"size: {info.size} bytes uploaded, {file.size} declared", None, None
    digests = {name: hashlib.new(name) for name in file.hashes}
    small = io.BytesIO() if info.size <= SPOOL_IN_MEMORY else None
    with store.open(key, if_match=info.etag) as source:
        while chunk := source.read(1024 * 1024):
            for digest in digests.values():
                digest.update(chunk)
            if small is not None:
                small.write(chunk)
    for name, digest in sorted(digests.items()):
        if digest.hexdigest() != file.hashes[name]:
            return (
                f"hashes: the {name} of the bytes uploaded is not the one declared",
                None,
                None,
            )
    readable: IO[bytes] = small if small is not None else _ranged(store, info)
    try:
        inspection = inspect_distribution(readable, dist)
    except BadDistribution as e:
        return str(e), None, None
    return None, inspection.metadata, inspection.requires_python


class Counted:
    """A stream that yields at most `limit` bytes of another and counts what it read."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream = stream
        self.left = limit
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        wanted = self.left if size is None or size < 0 else min(size, self.left)
        chunk = self.stream.read(wanted)
        self.left -= len(chunk)
        self.read_bytes += len(chunk)
        return chunk


class _Ranged(io.RawIOBase):
    """The object `info` describes as a seekable file, read by ranged reads of exactly its
    version (its etag): a change under it raises PreconditionFailed."""

    def __init__(self, store: Store, info: ObjectInfo) -> None:
        self.store = store
        self.info = info
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.info.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self.info.size - self.position)
        if wanted <= 0:
            return 0
        data = self.store.read_range(self.info.key, self.position, wanted, if_match=self.info.etag)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def _ranged(store: Store, info: ObjectInfo) -> IO[bytes]:
    # reads of at least 1 MiB: a wheel's central directory and METADATA take a few
    return io.BufferedReader(_Ranged(store, info), buffer_size=1024 * 1024)
