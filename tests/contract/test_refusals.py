"""Issue 10, item 10: refusing costs little. Unknown tokens do not read the store per request,
readers never queue behind a refresh, and If-None-Match never reaches the store unchecked.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.auth.access import AccessControl
from serverless_pypi.auth.tokens import TOKEN_PREFIX, TokenCache, TokenStore
from serverless_pypi.compose import build_application, build_repository
from serverless_pypi.core.config import Settings
from serverless_pypi.core.http import MAX_ENTITY_TAG, Headers, Request, parse_if_none_match
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage import Blob, Store
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.web.app import Application
from tests.helpers.dists import make_wheel
from tests.helpers.index import publish_file


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingStore(LocalStore):
    """Counts reads of the token list; a read can be held until `release` is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads = 0
        self.hold = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.reading = threading.Event()

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob:
        if key == layout.TOKENS:
            self.reads += 1
            self.reading.set()
            assert self.release.wait(10), "the test never released the read"
        return super().get(key, if_none_match=if_none_match)


def random_token() -> str:
    return f"{TOKEN_PREFIX}{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


@pytest.fixture
def counting(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "store")


def test_unknown_ids_cost_one_read_per_second(counting: CountingStore) -> None:
    tokens = TokenStore(counting)
    token, record = tokens.create("read")
    counting.reads = 0  # creating read the list too
    clock = Clock()
    cache = TokenCache(counting, monotonic=clock)
    assert cache.verify(token) == record
    assert counting.reads == 1
    for step in range(500):  # 500 requests with made-up ids within one second
        clock.now = 100.0 + step / 1000
        assert cache.verify(random_token()) is None
    assert counting.reads == 1
    clock.now = 101.01
    for _ in range(500):
        assert cache.verify(random_token()) is None
    assert counting.reads == 2  # one more read once the copy is a second old
    assert cache.verify(token) == record  # known tokens never read the store again
    assert counting.reads == 2


def test_a_new_token_works_on_its_first_use_after_the_window(counting: CountingStore) -> None:
    tokens = TokenStore(counting)
    clock = Clock()
    cache = TokenCache(counting, monotonic=clock)
    assert cache.verify(random_token()) is None  # the list is read at 100.0
    token, record = tokens.create("write")
    counting.reads = 1  # creating read the list too
    clock.now = 100.5
    assert cache.verify(token) is None  # within a second of the last read: refused
    clock.now = 101.0
    assert cache.verify(token) == record  # a second after it: read again, and found
    assert counting.reads == 2


def test_a_token_created_before_the_last_read_works_at_once(counting: CountingStore) -> None:
    tokens = TokenStore(counting)
    clock = Clock()
    cache = TokenCache(counting, monotonic=clock)
    token, record = tokens.create("read")
    counting.reads = 0  # creating read the list too
    assert cache.verify(token) == record
    assert counting.reads == 1


def test_readers_are_not_blocked_by_a_slow_refresh(counting: CountingStore) -> None:
    tokens = TokenStore(counting)
    token, record = tokens.create("read")
    counting.reads = 0  # creating read the list too
    clock = Clock()
    cache = TokenCache(counting, ttl=15, monotonic=clock)
    assert cache.verify(token) == record
    clock.now += 16  # the copy is stale: the next request refreshes it
    counting.release.clear()
    counting.reading.clear()
    refresher = threading.Thread(target=cache.verify, args=(token,))
    refresher.start()
    try:
        assert counting.reading.wait(5)  # the refresh is under way, and held
        results: list[Any] = []
        readers = [
            threading.Thread(target=lambda: results.append(cache.verify(token))) for _ in range(8)
        ]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(5)
        # every reader answered from the current copy while the refresh was still held
        assert results == [record] * 8
        assert refresher.is_alive()
        assert counting.reads == 2
    finally:
        counting.release.set()
        refresher.join(5)


def test_the_first_load_is_shared(counting: CountingStore) -> None:
    tokens = TokenStore(counting)
    token, record = tokens.create("read")
    counting.reads = 0  # creating read the list too
    cache = TokenCache(counting)
    counting.release.clear()
    counting.reading.clear()
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.verify(token))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    assert counting.reading.wait(5)
    counting.release.set()
    for thread in threads:
        thread.join(5)
    assert results == [record] * 8
    assert counting.reads == 1


def test_a_flood_of_unknown_tokens_through_the_application(counting: CountingStore) -> None:
    settings = Settings(require_auth_for_read=True)
    clock = Clock()
    app = Application(
        build_repository(counting, settings),
        settings,
        access=AccessControl(TokenCache(counting, monotonic=clock), settings),
    )
    import base64

    for _ in range(200):
        credentials = base64.b64encode(f"__token__:{random_token()}".encode()).decode()
        request = Request("GET", "pkg/", "", Headers({"Authorization": f"Basic {credentials}"}))
        assert app.handle(request).status == 401
    assert counting.reads == 1


# -- If-None-Match: one bounded, well-formed tag reaches the store; malformed ones are 400 --


@pytest.fixture
def served(store: Store, tmp_path: Path) -> Iterator[tuple[Application, list[str | None]]]:
    """An application over a store with one published project, and the tags sent to it."""
    wheel = make_wheel(tmp_path, "pkg", "1.0")
    publish_file(Catalog(store), wheel)
    asked: list[str | None] = []
    original = store.get

    def spy(key: str, *, if_none_match: str | None = None) -> Blob:
        asked.append(if_none_match)
        return original(key, if_none_match=if_none_match)

    store.get = spy  # type: ignore[method-assign]
    yield build_application(store), asked


def get(app: Application, path: str, if_none_match: str) -> Any:
    return app.handle(Request("GET", path, "", Headers({"If-None-Match": if_none_match})))


MALFORMED = [
    '"',
    "W/",
    "abc",
    '"a" "b"',
    '*, "a"',
    '"a"b"',
    '"x\ny"',
    "\x00",
    'w/"lowercase weak"',
    '"' + "a" * (MAX_ENTITY_TAG - 1) + '"',  # one tag over the bound
    '"x", ' * 1000,  # a list over the bound
]


@pytest.mark.parametrize("value", MALFORMED, ids=lambda v: repr(v)[:30])
@pytest.mark.parametrize("path", ["pkg/", "", "pkg/pkg-1.0-py3-none-any.whl"])
def test_malformed_or_oversized_if_none_match_is_a_400(
    served: tuple[Application, list[str | None]], value: str, path: str
) -> None:
    app, asked = served
    response = get(app, path, value)
    assert response.status == 400, (value, response.body)
    assert b"If-None-Match" in response.body
    assert all(tag is None for tag in asked)  # never sent on


def test_one_bounded_tag_is_forwarded_and_a_list_compared_here(
    served: tuple[Application, list[str | None]],
) -> None:
    app, asked = served
    etag = app.handle(Request("GET", "pkg/")).headers["ETag"]
    strong = etag.removeprefix("W/")
    asked.clear()
    assert get(app, "pkg/", etag).status == 304
    assert asked == [strong]  # the one tag, checked by the store (S3's IfNoneMatch)
    asked.clear()
    longest = '"' + "a" * (MAX_ENTITY_TAG - 2) + '"'
    assert get(app, "pkg/", longest).status == 200
    assert asked == [strong]  # the store compares the tag of the copy held here
    for value in (f'"other", {etag}', f'"a,b", {strong}', "*", '"é", ' + etag):
        asked.clear()
        response = get(app, "pkg/", value)
        assert response.status == 304, value
        assert response.headers["ETag"] == etag
        # a list, `*` or non-ASCII is compared here: the store sees the held copy's tag only
        assert asked == [strong], value
    assert get(app, "pkg/", '"other", "more"').status == 200
    assert get(app, "pkg/", ",,").status == 200  # an empty list (RFC 9110 section 5.6.1)


@pytest.mark.parametrize(
    ("value", "tags"),
    [
        ('"a"', ('"a"',)),
        ('W/"a"', ('"a"',)),
        (' "a" ,\tW/"b" ', ('"a"', '"b"')),
        ('"a,b"', ('"a,b"',)),  # a comma is an etagc (RFC 9110 section 8.8.3)
        ('""', ('""',)),
        ("", ()),
        (", ,", ()),
    ],
)
def test_if_none_match_parses_entity_tag_lists(value: str, tags: tuple[str, ...]) -> None:
    parsed = parse_if_none_match(value)
    assert parsed is not None and not parsed.any and parsed.tags == tags
