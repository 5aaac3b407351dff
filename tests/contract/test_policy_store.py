"""The policy document in a store: written by compare-and-swap, read through a revalidating
cache, on every store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from serverless_pypi.core.policy import Cooldown, InvalidPolicy, Policy, Revocation
from serverless_pypi.index import layout
from serverless_pypi.index.policies import PolicyReader, PolicyWriter
from serverless_pypi.storage import Store
from serverless_pypi.storage.base import Blob, NotModified

WRITERS = 8
WHEN = "2026-12-01T12:00:00Z"


def digest(i: int) -> str:
    return f"{i:064x}"


def revoke(i: int) -> Callable[[Policy], Policy]:
    def change(policy: Policy) -> Policy:
        return replace(policy, revoked={**policy.revoked, digest(i): Revocation(f"bad {i}", WHEN)})

    return change


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore:
    """Counts the reads of a store (delegates everything)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.gets = 0
        self.not_modified = 0
        self.location = store.location

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob:
        self.gets += 1
        try:
            return self.store.get(key, if_none_match=if_none_match)
        except NotModified:
            self.not_modified += 1
            raise


def test_a_missing_document_is_the_empty_policy(store: Store) -> None:
    assert PolicyReader(store).current() == Policy()
    assert PolicyWriter(store).read() == Policy()
    assert store.find(layout.POLICY) is None  # reading writes nothing


def test_write_then_read(store: Store) -> None:
    written = PolicyWriter(store).update(lambda p: replace(p, cooldown=Cooldown(7 * 86400)))
    assert written == Policy(cooldown=Cooldown(7 * 86400))
    assert PolicyReader(store).current() == written
    assert PolicyWriter(store).read() == written
    assert Policy.from_bytes(store.get(layout.POLICY).data) == written


def test_an_unchanged_policy_is_not_rewritten(store: Store) -> None:
    writer = PolicyWriter(store)
    writer.update(lambda p: replace(p, namespaces=("acme",)))
    etag = store.get(layout.POLICY).etag
    assert writer.update(lambda p: replace(p, namespaces=("ACME",))) == Policy(namespaces=("acme",))
    assert store.get(layout.POLICY).etag == etag
    writer.update(lambda p: p)
    assert store.get(layout.POLICY).etag == etag


def test_concurrent_updates_lose_nothing(store: Store) -> None:
    writer = PolicyWriter(store)
    start = threading.Barrier(WRITERS)

    def run(i: int) -> None:
        start.wait()  # all read the same document, most lose the first race
        PolicyWriter(store).update(revoke(i))

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(run, range(WRITERS)))
    assert set(writer.read().revoked) == {digest(i) for i in range(WRITERS)}


def test_the_reader_sees_a_change_within_its_ttl(store: Store) -> None:
    clock = Clock()
    counting = CountingStore(store)
    reader = PolicyReader(counting, ttl=2.0, clock=clock)  # type: ignore[arg-type]
    writer = PolicyWriter(store)
    writer.update(revoke(1))
    assert set(reader.current().revoked) == {digest(1)}
    assert counting.gets == 1
    writer.update(revoke(2))
    clock.now += 1.9  # within the ttl: the copy held, no request
    assert set(reader.current().revoked) == {digest(1)}
    assert counting.gets == 1
    clock.now += 0.1  # the ttl is over: one conditional read sees the change
    assert set(reader.current().revoked) == {digest(1), digest(2)}
    assert counting.gets == 2
    clock.now += 2.0  # unchanged: answered "not modified", without a body
    assert set(reader.current().revoked) == {digest(1), digest(2)}
    assert (counting.gets, counting.not_modified) == (3, 1)
    writer.update(lambda p: replace(p, revoked={}))  # unrevoke
    clock.now += 2.0
    assert reader.current().revoked == {}


def test_a_removed_document_is_the_empty_policy_again(store: Store) -> None:
    clock = Clock()
    reader = PolicyReader(store, clock=clock)
    PolicyWriter(store).update(revoke(1))
    assert reader.current().revoked
    store.delete(layout.POLICY)
    clock.now += 10
    assert reader.current() == Policy()


def test_a_corrupt_document_keeps_the_last_good_one(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    counting = CountingStore(store)
    reader = PolicyReader(counting, clock=clock)  # type: ignore[arg-type]
    good = PolicyWriter(store).update(revoke(1))
    assert reader.current() == good
    store.put(layout.POLICY, b'{"format": 1, "revoked": "oops"}')
    clock.now += 10
    with caplog.at_level(logging.ERROR):
        assert reader.current() == good
    assert "invalid" in caplog.text and "`revoked` is not an object" in caplog.text
    # asked again, the same corrupt bytes are not parsed again (one conditional read)
    clock.now += 10
    caplog.clear()
    assert reader.current() == good
    assert counting.not_modified == 1
    assert not [r for r in caplog.records if r.name == "serverless_pypi.index.policies"]
    # a writer refuses to build on it, and leaves it for a person to fix
    with pytest.raises(InvalidPolicy, match="fix it or remove it"):
        PolicyWriter(store).update(revoke(2))
    with pytest.raises(InvalidPolicy):
        PolicyWriter(store).read()
    # fixed: the reader follows
    store.put(layout.POLICY, Policy(namespaces=("acme",)).to_bytes())
    clock.now += 10
    assert reader.current() == Policy(namespaces=("acme",))


def test_a_corrupt_document_without_a_good_one_is_the_empty_policy(store: Store) -> None:
    store.put(layout.POLICY, b"not json")
    assert PolicyReader(store).current() == Policy()
