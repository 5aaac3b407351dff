"""The policy document in the store: read by every front, changed by compare-and-swap.

`PolicyReader.current()` answers the policy in force from a copy held in memory, asking the
store again (one conditional GET, answered "not modified" without a body while the document
is unchanged) at most every `ttl` seconds: a change (a revocation) reaches every process
within seconds, without a redeploy. A missing document is the empty policy; a document that
does not parse is logged and the last good copy stays in force (the empty policy if none
was ever read), so a broken write never lifts the rules already applied.

`PolicyWriter.update(change)` applies `change` to the current policy with compare-and-swap
(storage/swap.py): concurrent changes (two CLI runs) are all kept, none lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from serverless_pypi.core.policy import InvalidPolicy, Policy
from serverless_pypi.index import layout
from serverless_pypi.storage.base import NotFound, NotModified, Store
from serverless_pypi.storage.swap import swap

__all__ = ["POLICY_TTL", "PolicyReader", "PolicyWriter"]

log = logging.getLogger(__name__)

#: seconds a policy copy is used without asking the store (POLICY_TTL)
POLICY_TTL = 2.0

_EMPTY = Policy()


@dataclass(frozen=True, slots=True)
class _Held:
    policy: Policy
    #: the etag of the stored document last read (None: there was none), good or not
    etag: str | None
    #: when the store last answered for it (the reader's clock)
    checked: float


class PolicyReader:
    """The policy in force, read through a revalidating cache. Safe to share between
    threads: the lock guards the held copy only, never a store request."""

    def __init__(
        self,
        store: Store,
        *,
        ttl: float = POLICY_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._held: _Held | None = None
        self._lock = threading.Lock()

    def current(self) -> Policy:
        """The policy in force, at most `ttl` seconds old. A store that fails (StoreError
        other than a missing document) raises: no rule is silently dropped."""
        now = self.clock()
        with self._lock:
            held = self._held
        if held is not None and now - held.checked < self.ttl:
            return held.policy
        etag = held.etag if held is not None else None
        try:
            blob = self.store.get(layout.POLICY, if_none_match=etag)
        except NotModified:
            assert held is not None  # only asked conditionally with a held copy
            return self._keep(_Held(held.policy, held.etag, now)).policy
        except NotFound:
            return self._keep(_Held(_EMPTY, None, now)).policy
        try:
            policy = Policy.from_bytes(blob.data)
        except InvalidPolicy as e:
            last = held.policy if held is not None else _EMPTY
            log.error(
                "the policy document %s in %s is invalid, the last good copy stays in force: %s",
                layout.POLICY,
                self.store.location,
                e,
            )
            # remember its etag: asked again conditionally, it is not parsed again
            return self._keep(_Held(last, blob.etag, now)).policy
        return self._keep(_Held(policy, blob.etag, now)).policy

    def _keep(self, held: _Held) -> _Held:
        with self._lock:
            if self._held is None or held.checked >= self._held.checked:
                self._held = held
        return held


class PolicyWriter:
    """Changes to the policy document, each atomic (compare-and-swap, retried)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def read(self) -> Policy:
        """The stored policy now (the empty one when there is none); InvalidPolicy when the
        document does not parse."""
        try:
            return Policy.from_bytes(self.store.get(layout.POLICY).data)
        except NotFound:
            return _EMPTY

    def update(self, change: Callable[[Policy], Policy]) -> Policy:
        """Store `change(current policy)` and return it. `change` may run several times
        (once per attempt after a concurrent write), so it must depend only on its argument.
        Writes nothing when the policy is unchanged. InvalidPolicy when the stored document
        does not parse (it is not overwritten: fix or remove it first), or when `change`
        builds an invalid policy."""

        def attempt(data: bytes | None) -> tuple[bytes | None, Policy]:
            current = _EMPTY if data is None else _parse_stored(data, self.store.location)
            new = change(current)
            if not isinstance(new, Policy):
                raise TypeError(f"a policy change returned {type(new).__name__}, not a Policy")
            if new == current:  # nothing to write (an empty policy needs no document)
                return None, current
            return new.to_bytes(), new

        return swap(self.store, layout.POLICY, attempt)[0]


def _parse_stored(data: bytes, location: str) -> Policy:
    try:
        return Policy.from_bytes(data)
    except InvalidPolicy as e:
        raise InvalidPolicy(
            f"the policy document {layout.POLICY} in {location} is invalid ({e}): fix it or "
            "remove it before changing the policy"
        ) from e
