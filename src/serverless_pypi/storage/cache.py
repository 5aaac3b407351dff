"""Store objects parsed once per process and revalidated on every use.

A download needs the project's manifest (is the file published, where are its bytes). Reading
and parsing it each time would cost a full GET and a JSON parse per download; a HEAD of the
file would not say whether the index refused it. Instead each use sends one conditional GET
with the etag of the copy held here (`If-None-Match`): while the object is unchanged the
store answers "not modified" without a body (S3: a 304), and the parsed copy is used. A
changed object comes back whole and is parsed again, so a reader never sees a stale copy.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from serverless_pypi.storage.base import NotFound, NotModified, Store

__all__ = ["RevalidatingCache"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    etag: str
    value: T
    size: int  # bytes of the stored object, what the bound counts


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
        with self._lock:
            entry = self._entries.get(key)
        try:
            blob = self.store.get(key, if_none_match=entry.etag if entry else None)
        except NotModified:
            if entry is None:  # never asked conditionally: a store that answers oddly
                raise
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
            return entry.value, entry.etag
        except NotFound:
            self._forget(key)
            return None
        value = self.parse(blob.data)
        self._remember(key, _Entry(blob.etag, value, len(blob.data)))
        return value, blob.etag

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
