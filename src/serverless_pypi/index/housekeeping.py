"""Clearing what the index keeps only for a while, at every full reindex.

- the markers of exchanged OIDC JWTs (`.serverless-pypi/oidc/used/`): a marker refuses a
  replay of its JWT, so it is kept until the JWT itself has expired, plus the skew the
  verifier allows; a marker that cannot be read is kept (it refuses nothing it should not);
- the pulled-through copies of upstream files that no cached upstream page lists any more
  (issue 12: a copy is kept only while something lists it);
- upload sessions (PEP 694) that were canceled or expired: their documents, staged files and
  multipart uploads, and what a publish they left unfinished copied (`Sessions.sweep`).

`reindex --check` reports what would go; `reindex` (and the scheduled reindex on Lambda)
deletes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from serverless_pypi.index import layout
from serverless_pypi.storage import NotFound, Store

__all__ = ["MARKER_GRACE", "Sweep", "expired_oidc_markers", "sweep"]

#: seconds a marker outlives its JWT's `exp`: more than the verifier's clock skew (30 s)
MARKER_GRACE = 120


@dataclass
class Sweep:
    """What a sweep found (and, unless it was a check, deleted), by kind."""

    oidc_markers: list[str] = field(default_factory=list)
    upstream_copies: list[str] = field(default_factory=list)
    #: keys of dead upload sessions (deleted by `Sessions.sweep` itself)
    sessions: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return bool(self.oidc_markers or self.upstream_copies or self.sessions)


def expired_oidc_markers(store: Store, *, now: float) -> Iterator[str]:
    """Keys of the JWT markers whose JWT expired more than MARKER_GRACE seconds before `now`."""
    for info in store.list(layout.OIDC_USED):
        try:
            record = json.loads(store.get(info.key).data)
        except (NotFound, ValueError, UnicodeDecodeError):
            continue  # gone meanwhile, or unreadable: kept
        expires = record.get("exp") if isinstance(record, dict) else None
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            continue  # no readable expiry: kept
        if expires + MARKER_GRACE < now:
            yield info.key


def sweep(store: Store, *, check: bool, clock: Callable[[], float] = time.time) -> Sweep:
    """Find (and unless `check`, delete) what has outlived its use; see the module text."""
    from serverless_pypi.index.sessions import Sessions
    from serverless_pypi.index.upstream_cache import UpstreamCache

    found = Sweep(
        oidc_markers=list(expired_oidc_markers(store, now=clock())),
        upstream_copies=[info.key for info in UpstreamCache(store).orphans()],
    )
    if not check:
        for key in (*found.oidc_markers, *found.upstream_copies):
            store.delete(key)
    # the session lifetime and size limit play no part in the sweep
    sessions = Sessions(
        store, ttl=0, max_file_size=0, clock=lambda: datetime.fromtimestamp(clock(), UTC)
    )
    found.sessions = sessions.sweep(check=check)
    return found
