"""Compare-and-swap of one object: the only way documents that many writers share change.

Read the object with its etag, compute the new bytes, write them with `If-Match` (or
`If-None-Match: *` when there was no object), and start over when another writer got there
first. No update is ever lost to a race.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from serverless_pypi.storage.base import NotFound, PreconditionFailed, Store, StoreError

__all__ = ["MAX_ATTEMPTS", "Contention", "compare_and_swap"]

MAX_ATTEMPTS = 60


class Contention(StoreError):
    """The object kept changing under us for every attempt."""


def _backoff(attempt: int) -> None:
    # jittered exponential backoff, capped at half a second
    time.sleep(min(0.5, 0.005 * 2 ** min(attempt, 7)) * random.uniform(0.5, 1.0))  # noqa: S311


def compare_and_swap(
    store: Store,
    key: str,
    change: Callable[[bytes | None], bytes | None],
    *,
    content_type: str = "application/json",
) -> bool:
    """Replace the object at `key` by `change(current bytes or None)`, atomically.

    `change` returns the new bytes, or None to leave the object as it is. It may run several
    times (once per attempt), so it must depend only on its argument and on reads of the
    store. Returns whether anything was written.
    """
    for attempt in range(MAX_ATTEMPTS):
        try:
            blob = store.get(key)
            current, etag = blob.data, blob.etag
        except NotFound:
            current, etag = None, None
        new = change(current)
        if new is None:
            return False
        try:
            if etag is None:
                store.put(key, new, content_type=content_type, if_none_match=True)
            else:
                store.put(key, new, content_type=content_type, if_match=etag)
        except PreconditionFailed:
            _backoff(attempt)
            continue
        return True
    raise Contention(f"{key!r} kept changing: gave up after {MAX_ATTEMPTS} attempts")
