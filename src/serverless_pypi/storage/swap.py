"""Compare-and-swap of one object: the only way documents that many writers share change.

Read the object with its etag, compute the new bytes, write them with `If-Match` (or
`If-None-Match: *` when there was no object), and start over when another writer got there
first. No update is ever lost to a race.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from serverless_pypi.storage.base import NotFound, PreconditionFailed, Store, StoreError

__all__ = ["MAX_ATTEMPTS", "Contention", "compare_and_swap", "swap"]

T = TypeVar("T")

MAX_ATTEMPTS = 60


class Contention(StoreError):
    """The object kept changing under us for every attempt."""


def _backoff(attempt: int) -> None:
    import random  # after a lost race only: not on the cold path of a read

    # jittered exponential backoff, capped at half a second
    time.sleep(min(0.5, 0.005 * 2 ** min(attempt, 7)) * random.uniform(0.5, 1.0))  # noqa: S311


def swap(
    store: Store,
    key: str,
    change: Callable[[bytes | None], tuple[bytes | None, T]],
    *,
    content_type: str = "application/json",
) -> tuple[T, bool]:
    """Replace the object at `key` by what `change(current bytes or None)` computes, atomically.

    `change` returns the new bytes (None: leave the object as it is) and a result for the
    caller. It may run several times (once per attempt), so it must depend only on its
    argument and on reads of the store. Returns the result of the attempt that settled, and
    whether it wrote anything.
    """
    for attempt in range(MAX_ATTEMPTS):
        try:
            blob = store.get(key)
            current, etag = blob.data, blob.etag
        except NotFound:
            current, etag = None, None
        new, result = change(current)
        if new is None:
            return result, False
        try:
            if etag is None:
                store.put(key, new, content_type=content_type, if_none_match=True)
            else:
                store.put(key, new, content_type=content_type, if_match=etag)
        except PreconditionFailed:
            _backoff(attempt)
            continue
        return result, True
    raise Contention(f"{key!r} kept changing: gave up after {MAX_ATTEMPTS} attempts")


def compare_and_swap(
    store: Store,
    key: str,
    change: Callable[[bytes | None], bytes | None],
    *,
    content_type: str = "application/json",
) -> bool:
    """`swap` for a change without a result: returns whether anything was written."""
    return swap(store, key, lambda data: (change(data), None), content_type=content_type)[1]
