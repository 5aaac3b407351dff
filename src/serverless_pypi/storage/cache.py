"""Store objects parsed once per process and revalidated on every use.

A download needs the project's manifest (is the file published, where are its bytes). Reading
and parsing it each time would cost a full GET and a JSON parse per download; a HEAD of the
file would not say whether the index refused it. Instead each use sends one conditional GET
with the etag of the copy held here (`If-None-Match`): while the object is unchanged the
store answers "not modified" without a body (S3: a 304), and the parsed copy is used. A
changed object comes back whole and is parsed again, so a reader never sees a stale copy.

A caller that knows the copy is still current by other means (the index's reader, when the
project's page is unchanged since the copy was read) may `trust` it for a few seconds:
`get(key, max_age=...)` then answers from memory without a request. `BlobCache` holds objects
that never change once written (core metadata files, keyed by their hash), bounded in bytes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from serverless_pypi.storage.base import Blob, NotFound, NotModified, Store

__all__ = ["BlobCache", "Cached", "RevalidatingCache"]

T = TypeVar("T")


@dataclass(slots=True)
class _Entry(Generic[T]):
    etag: str
    value: T
    size: int  # bytes of the stored object, what the bound counts
    last_modified: datetime
    #: when the last request that found this copy current was sent (time.monotonic())
    checked: float
    #: until when the copy is trusted without a request (see `trust`)
    trusted_until: float = field(default=float("-inf"))


@dataclass(frozen=True, slots=True)
class Cached(Generic[T]):
    """A parsed object as the cache holds it: `checked` is when the store last confirmed it
    (time.monotonic(), the request's start)."""

    value: T
    etag: str
    last_modified: datetime
    checked: float


class RevalidatingCache(Generic[T]):
    """Parsed objects by key, at most `max_bytes` of stored objects, least recently used out.

    Safe to share between threads (the local server is threaded): the lock guards only the
    table, never a store request, so readers are never serialized. Two threads that fetch one
    changed object at once both parse it; either copy is current. Values are shared between
    callers and must not be changed.
    """

    def __init__(self, store: Store, parse: Callable[[bytes], T], max_bytes: int) -> None:
        self.store = store
        self.parse = parse
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[T, str] | None:
        """The parsed object and its etag, current as of this call; None when there is none."""
        found = self.lookup(key)
        return (found.value, found.etag) if found is not None else None

    def lookup(self, key: str, *, trust: float = 0.0, fresh: bool = False) -> Cached[T] | None:
        """The parsed object, current as of this call (one conditional read); None if none.

        `trust` > 0: a copy the store confirmed (or `trust` vouched for) less than that many
        seconds ago is answered from memory without a request, unless `fresh`.
        """
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                if trust > 0 and not fresh and now <= entry.trusted_until:
                    return Cached(entry.value, entry.etag, entry.last_modified, entry.checked)
        try:
            blob = self.store.get(key, if_none_match=entry.etag if entry else None)
        except NotModified:
            if entry is None:  # never asked conditionally: a store that answers oddly
                raise
            with self._lock:
                entry.checked = max(entry.checked, now)
                entry.trusted_until = max(entry.trusted_until, now + trust)
            return Cached(entry.value, entry.etag, entry.last_modified, now)
        except NotFound:
            self._forget(key)
            return None
        value = self.parse(blob.data)
        entry = _Entry(blob.etag, value, len(blob.data), blob.last_modified, now, now + trust)
        self._remember(key, entry)
        return Cached(value, blob.etag, blob.last_modified, now)

    def holds(self, key: str) -> bool:
        """Whether a copy of `key` is held (a use of it is then a conditional read)."""
        with self._lock:
            return key in self._entries

    def keep(self, key: str, blob: Blob) -> T:
        """Hold `blob`, read now by the caller, as the copy of `key`; its parsed value."""
        value = self.parse(blob.data)
        now = time.monotonic()
        self._remember(key, _Entry(blob.etag, value, len(blob.data), blob.last_modified, now))
        return value

    def trust(self, key: str, seconds: float, *, if_checked_since: float) -> None:
        """Answer `key` from memory for `seconds` from now, if the copy held was confirmed
        current at or after `if_checked_since` (time.monotonic()); else nothing changes."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.checked >= if_checked_since:
                entry.trusted_until = time.monotonic() + seconds

    def distrust(self, key: str) -> None:
        """The next use of `key` asks the store again (a conditional read)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.trusted_until = float("-inf")

    def _forget(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: str) -> None:
        # with the lock held
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size

    def _remember(self, key: str, entry: _Entry[T]) -> None:
        with self._lock:
            self._drop(key)
            if entry.size > self.max_bytes:
                return  # larger than the whole bound: parsed for this use only
            self._entries[key] = entry
            self._bytes += entry.size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.size

    @property
    def size(self) -> int:
        """Bytes of the stored objects held."""
        with self._lock:
            return self._bytes


class BlobCache:
    """Objects that never change once written, by a key that names their content (e.g. the
    key and the sha256 of a core metadata file): at most `max_bytes`, least recently used out.

    Safe to share between threads.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, str], Blob] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Blob | None:
        with self._lock:
            blob = self._entries.get(key)
            if blob is not None:
                self._entries.move_to_end(key)
            return blob

    def put(self, key: tuple[str, str], blob: Blob) -> None:
        size = len(blob.data)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old.data)
            self._entries[key] = blob
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted.data)

    @property
    def size(self) -> int:
        with self._lock:
            return self._bytes
