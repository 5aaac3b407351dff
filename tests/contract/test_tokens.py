"""Tokens: hashed in the store, compare-and-swap writes, expiry, patterns, the server's cache."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from serverless_pypi.adapters.cli import main
from serverless_pypi.auth.tokens import (
    TokenCache,
    TokenError,
    TokenRecord,
    TokenStore,
    normalize_pattern,
    parse_expiry,
    split_token,
    verify,
)
from serverless_pypi.index import layout
from serverless_pypi.storage import Blob, Store, StoreError
from serverless_pypi.storage.local import LocalStore

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def test_create_stores_only_a_hash(store: Store) -> None:
    tokens = TokenStore(store)
    token, record = tokens.create("write", ["Team.*"], description="CI")
    document = store.get(layout.TOKENS).data
    assert token.encode() not in document
    parts = split_token(token)
    assert parts is not None
    assert parts[1].encode() not in document
    assert record.hash.encode() in document
    assert record.projects == ("team-*",)
    assert tokens.records() == [record]
    records, _ = tokens.read()
    assert verify(records, token) == record


def test_verify_rejects_anything_but_the_token(local_store: LocalStore) -> None:
    tokens = TokenStore(local_store)
    token, record = tokens.create("read")
    records, _ = tokens.read()
    token_id, secret = split_token(token)  # type: ignore[misc]
    assert verify(records, token) == record
    for wrong in [
        token[:-1],
        token + "x",
        f"spypi_{token_id}_{secret[::-1]}",
        f"spypi_{'0' * 16}_{secret}",
        "",
        "spypi_",
        secret,
        token.upper(),
    ]:
        assert verify(records, wrong) is None, wrong


def test_expiry(local_store: LocalStore) -> None:
    tokens = TokenStore(local_store, clock=lambda: NOW)
    token, record = tokens.create("read", expires=NOW + timedelta(hours=1))
    records, _ = tokens.read()
    assert verify(records, token, NOW + timedelta(minutes=59)) == record
    assert verify(records, token, NOW + timedelta(hours=1)) is None
    assert record.expired(NOW + timedelta(hours=2))
    with pytest.raises(TokenError, match="past"):
        tokens.create("read", expires=NOW - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", NOW + timedelta(minutes=90)),
        ("12h", NOW + timedelta(hours=12)),
        ("30d", NOW + timedelta(days=30)),
        ("2w", NOW + timedelta(weeks=2)),
        ("1y", NOW + timedelta(days=365)),
        ("2031-01-31", datetime(2031, 1, 31, tzinfo=UTC)),
        ("2031-01-31T10:00:00Z", datetime(2031, 1, 31, 10, tzinfo=UTC)),
        ("2031-01-31T10:00:00+02:00", datetime(2031, 1, 31, 8, tzinfo=UTC)),
    ],
)
def test_parse_expiry(text: str, expected: datetime) -> None:
    assert parse_expiry(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "0d", "-1d", "10", "3 months", "2020-01-01", "soon", "1x"])
def test_parse_expiry_refuses(text: str) -> None:
    with pytest.raises(TokenError):
        parse_expiry(text, NOW)


@pytest.mark.parametrize(
    ("pattern", "normalized"),
    [("Foo.Bar", "foo-bar"), ("team_*", "team-*"), ("a?c", "a?c"), ("[ab]-x", "[ab]-x")],
)
def test_patterns(pattern: str, normalized: str) -> None:
    assert normalize_pattern(pattern) == normalized


@pytest.mark.parametrize("pattern", ["", "a/b", "a b", "ü", "x" * 201, "../x"])
def test_bad_patterns(pattern: str) -> None:
    with pytest.raises(TokenError):
        normalize_pattern(pattern)


@pytest.mark.parametrize(
    ("scope", "projects", "asked", "project", "allowed"),
    [
        ("read", (), "read", "anything", True),
        ("read", (), "read", None, True),
        ("read", (), "write", "anything", False),
        ("write", (), "read", "anything", True),
        ("write", (), "write", "anything", True),
        ("write", ("team-*",), "write", "team-tools", True),
        ("write", ("team-*",), "write", "other", False),
        ("write", ("team-*",), "read", None, False),  # the project list names every project
        ("read", ("a", "b"), "read", "b", True),
    ],
)
def test_allows(
    scope: str, projects: tuple[str, ...], asked: str, project: str | None, allowed: bool
) -> None:
    record = TokenRecord("0" * 16, "h", scope, "2030-01-01T00:00:00Z", projects)  # type: ignore[arg-type]
    assert record.allows(asked, project) is allowed  # type: ignore[arg-type]


def test_create_refuses_unknown_scope(local_store: LocalStore) -> None:
    with pytest.raises(TokenError, match="scope"):
        TokenStore(local_store).create("admin")


def test_revoke_by_id_or_token(store: Store) -> None:
    tokens = TokenStore(store)
    first, first_record = tokens.create("read")
    second, second_record = tokens.create("write")
    assert tokens.revoke([first_record.id]) == [first_record.id]
    assert tokens.revoke([second]) == [second_record.id]
    assert tokens.records() == []
    assert tokens.revoke([first_record.id]) == []
    with pytest.raises(TokenError):
        tokens.revoke(["not-an-id"])


def test_concurrent_creates_are_all_kept(store: Store) -> None:
    """Compare-and-swap: eight administrators at once lose nothing."""
    tokens = TokenStore(store)
    created: list[str] = []
    lock = threading.Lock()

    def create() -> None:
        for _ in range(3):
            _, record = tokens.create("read")
            with lock:
                created.append(record.id)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.id for r in tokens.records()) == sorted(created)
    assert len(created) == 24


def test_unreadable_token_list_is_an_error_not_empty(local_store: LocalStore) -> None:
    local_store.put(layout.TOKENS, b"{not json")
    with pytest.raises(StoreError):
        TokenStore(local_store).read()
    with pytest.raises(StoreError):
        TokenCache(local_store).verify("spypi_0000000000000000_x")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CountingStore(LocalStore):
    """A local store that counts reads of the token list."""

    reads = 0

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob:
        if key == layout.TOKENS:
            self.reads += 1
        return super().get(key, if_none_match=if_none_match)


def test_cache_sees_new_tokens_at_once_and_revocations_after_the_ttl(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "store")
    tokens = TokenStore(store)
    clock = Clock()
    cache = TokenCache(store, ttl=10, monotonic=clock)
    old, old_record = tokens.create("read")
    assert cache.verify(old) == old_record
    reads = store.reads
    assert cache.verify(old) == old_record
    assert store.reads == reads  # served from the cache
    new, new_record = tokens.create("write")
    # an unknown id is looked up again once the copy is a second old (NEGATIVE_TTL)
    clock.now = 1.0
    assert cache.verify(new) == new_record
    tokens.revoke([old_record.id])
    clock.now = 9.0
    assert cache.verify(old) == old_record  # still trusted within the TTL
    clock.now = 11.5  # the ttl counts from the last read (at 1.0)
    assert cache.verify(old) is None
    assert cache.verify(new) == new_record


def test_cache_without_a_token_list(local_store: LocalStore) -> None:
    cache = TokenCache(local_store)
    assert cache.verify("spypi_0000000000000000_secret") is None
    assert cache.verify("garbage") is None


def test_cli_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "store")
    args = ["--store", store]
    assert main(["token", "create", "--scope", "write", "--project", "My.Pkg", *args]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("spypi_")
    assert "shown only now" in err
    assert main(["token", "create", "--scope", "read", "--expires", "30d", *args]) == 0
    capsys.readouterr()
    assert main(["token", "list", *args]) == 0
    out, _ = capsys.readouterr()
    assert token not in out
    token_id = split_token(token)[0]  # type: ignore[index]
    assert token_id in out
    assert "my-pkg" in out
    assert "write" in out
    assert "read" in out
    assert main(["token", "revoke", token_id, *args]) == 0
    assert f"revoked: {token_id}" in capsys.readouterr().out
    assert main(["token", "revoke", token_id, *args]) == 1
    assert main(["token", "create", "--scope", "read", "--expires", "soon", *args]) == 2
    assert "--expires" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["token", "create", "--scope", "admin", *args])
