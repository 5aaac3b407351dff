"""One contract, two stores: a local directory and S3 (moto's standalone server over HTTP)."""

from __future__ import annotations

import io
import os
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from serverless_pypi.storage import (
    LocalFile,
    NotFound,
    NotModified,
    PreconditionFailed,
    Redirect,
    Store,
    StoreError,
    open_store,
)
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.s3 import S3Store

# -- reads and writes ---------------------------------------------------------------------


def test_put_get_head(store: Store) -> None:
    etag = store.put("pkg/pkg-1.0.tar.gz", b"bytes", content_type="application/octet-stream")
    blob = store.get("pkg/pkg-1.0.tar.gz")
    info = store.head("pkg/pkg-1.0.tar.gz")
    assert blob.data == b"bytes"
    assert blob.etag == info.etag == etag
    assert info.key == "pkg/pkg-1.0.tar.gz"
    assert info.size == 5
    assert info.last_modified.tzinfo is not None
    assert blob.last_modified.tzinfo is not None


def test_put_from_a_stream(store: Store) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    store.put("pkg/big.whl", io.BytesIO(data))
    assert store.get("pkg/big.whl").data == data
    with store.open("pkg/big.whl") as stream:
        assert stream.read() == data


def test_overwrite_changes_the_etag(store: Store) -> None:
    first = store.put("a/x", b"one")
    second = store.put("a/x", b"two")
    assert first != second
    assert store.get("a/x").data == b"two"


def test_empty_object(store: Store) -> None:
    store.put("a/empty", b"")
    assert store.get("a/empty").data == b""
    assert store.head("a/empty").size == 0


@pytest.mark.parametrize(
    "key",
    ["a/b c.tar.gz", "My_Pkg/my_pkg-1.0+local.tar.gz", "ünï/cödé-1.0.tar.gz", "a/b%2Fc", "a/x&y=z"],
)
def test_unusual_but_valid_keys(store: Store, key: str) -> None:
    folder = key.partition("/")[0]
    store.put(key, b"data")
    assert store.get(key).data == b"data"
    assert [i.key for i in store.list(folder + "/")] == [key]
    assert list(store.list_folders()) == [folder]


def test_missing_objects(store: Store) -> None:
    with pytest.raises(NotFound):
        store.get("nope/x")
    with pytest.raises(NotFound):
        store.head("nope/x")
    with pytest.raises(NotFound), store.open("nope/x"):
        pass
    # NotFound is a FileNotFoundError and a StoreError, and never the other way round
    assert issubclass(NotFound, FileNotFoundError) and issubclass(NotFound, StoreError)
    assert not issubclass(PreconditionFailed, NotFound)


def test_a_folder_is_not_an_object(store: Store) -> None:
    store.put("pkg/x/y", b"1")
    with pytest.raises(NotFound):
        store.get("pkg/x")
    with pytest.raises(NotFound):
        store.head("pkg")


def test_delete(store: Store) -> None:
    store.put("pkg/a", b"1")
    store.put("other/b", b"2")
    store.delete("pkg/a")
    with pytest.raises(NotFound):
        store.get("pkg/a")
    store.delete("pkg/a")  # deleting a missing object is not an error
    store.delete("never/was")
    assert [i.key for i in store.list()] == ["other/b"]
    # a folder whose last object went away is gone (as on S3)
    assert list(store.list_folders()) == ["other"]


# -- conditional reads and writes ---------------------------------------------------------


def test_get_if_none_match(store: Store) -> None:
    etag = store.put("k/x", b"1")
    with pytest.raises(NotModified):
        store.get("k/x", if_none_match=etag)
    assert store.get("k/x", if_none_match='"other"').data == b"1"
    new = store.put("k/x", b"2")
    assert store.get("k/x", if_none_match=etag).etag == new


def test_put_if_none_match(store: Store) -> None:
    etag = store.put("k/x", b"first", if_none_match=True)
    assert store.head("k/x").etag == etag
    with pytest.raises(PreconditionFailed):
        store.put("k/x", b"second", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put("k/x", io.BytesIO(b"third"), if_none_match=True)
    assert store.get("k/x").data == b"first"


def test_put_if_match(store: Store) -> None:
    etag = store.put("k/x", b"1")
    new = store.put("k/x", b"2", if_match=etag)
    assert store.get("k/x").data == b"2"
    with pytest.raises(PreconditionFailed):
        store.put("k/x", b"3", if_match=etag)  # a stale etag loses
    assert store.get("k/x").data == b"2"
    assert store.put("k/x", b"4", if_match=new) != new


def test_put_if_match_on_a_missing_object(store: Store) -> None:
    # the condition does not hold: PreconditionFailed, whatever the backend answers (S3: 404)
    with pytest.raises(PreconditionFailed):
        store.put("k/missing", b"1", if_match='"0123456789abcdef0123456789abcdef"')
    with pytest.raises(NotFound):
        store.get("k/missing")


def test_open_if_match(store: Store) -> None:
    etag = store.put("k/x", b"1")
    with store.open("k/x", if_match=etag) as stream:
        assert stream.read() == b"1"
    store.put("k/x", b"2")
    with pytest.raises(PreconditionFailed), store.open("k/x", if_match=etag):
        pass


# The two races run over both stores. On the local store atomicity is our code (link(),
# flock); on S3 it is S3's, which conftest's AtomicConditionalWrites gives moto's server.


def test_create_race_has_exactly_one_winner(store: Store) -> None:
    barrier = threading.Barrier(6)

    def create(i: int) -> bool:
        barrier.wait()
        try:
            store.put("race/x", f"writer {i}".encode(), if_none_match=True)
        except PreconditionFailed:
            return False
        return True

    with ThreadPoolExecutor(6) as pool:
        wins = list(pool.map(create, range(6)))
    assert wins.count(True) == 1
    assert store.get("race/x").data == f"writer {wins.index(True)}".encode()


def test_compare_and_swap_loses_no_update(store: Store) -> None:
    store.put("cas/counter", b"0")

    def increment(_: int) -> int:
        attempts = 0
        while True:
            attempts += 1
            blob = store.get("cas/counter")
            try:
                store.put("cas/counter", str(int(blob.data) + 1).encode(), if_match=blob.etag)
            except PreconditionFailed:
                continue
            return attempts

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(increment, range(80)))
    assert store.get("cas/counter").data == b"80"


# -- listings -----------------------------------------------------------------------------

KEYS = ["a-b", "a/1", "a/2", "a/sub/3", "ab/x", "b/c/d", "z"]


@pytest.fixture
def filled(store: Store) -> Store:
    for key in reversed(KEYS):
        store.put(key, key.encode())
    return store


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", KEYS),
        ("a", ["a-b", "a/1", "a/2", "a/sub/3", "ab/x"]),
        ("a/", ["a/1", "a/2", "a/sub/3"]),
        ("a/s", ["a/sub/3"]),
        ("b/c/", ["b/c/d"]),
        ("nothing", []),
        ("nothing/", []),
    ],
)
def test_list_in_key_order(filled: Store, prefix: str, expected: list[str]) -> None:
    infos = list(filled.list(prefix))
    assert [i.key for i in infos] == expected
    assert all(i.size == len(i.key) for i in infos)
    assert all(i.etag == filled.head(i.key).etag for i in infos)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", ["a", "ab", "b"]),
        ("a/", ["sub"]),
        ("a", ["sub"]),
        ("b/", ["c"]),
        ("z/", []),
        ("q/", []),
    ],
)
def test_list_folders(filled: Store, prefix: str, expected: list[str]) -> None:
    assert list(filled.list_folders(prefix)) == expected


def test_list_is_lazy(filled: Store) -> None:
    listing = filled.list()
    assert isinstance(listing, Iterator)
    assert next(listing).key == "a-b"


# -- delivery: a presigned URL, or a local file -------------------------------------------


def test_deliver(store: Store) -> None:
    store.put("pkg/pkg-1.0.tar.gz", b"payload")
    if isinstance(store, LocalStore):
        local = store.deliver("pkg/pkg-1.0.tar.gz", "GET", 60)
        assert isinstance(local, LocalFile)
        assert local.path.read_bytes() == b"payload"
        assert local.size == 7 and local.etag == store.head("pkg/pkg-1.0.tar.gz").etag
        with pytest.raises(NotFound):
            store.deliver("pkg/missing", "GET", 60)
        return
    served = store.deliver("pkg/pkg-1.0.tar.gz", "GET", 123)
    assert isinstance(served, Redirect)
    url = served.url
    # SigV4 (never SigV2), with the TTL asked for
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=123" in url
    with urllib.request.urlopen(url) as response:  # noqa: S310 (moto on 127.0.0.1)
        assert response.read() == b"payload"
    head = store.deliver("pkg/pkg-1.0.tar.gz", "HEAD", 60)
    assert isinstance(head, Redirect)
    request = urllib.request.Request(head.url, method="HEAD")
    with urllib.request.urlopen(request) as response:  # noqa: S310
        assert response.headers["Content-Length"] == "7"


def test_presign_signs_the_right_operation(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, dict[str, Any], int]] = []
    original = s3_store.client.generate_presigned_url

    def spy(method: str, Params: dict[str, Any], ExpiresIn: int) -> str:  # noqa: N803
        calls.append((method, Params, ExpiresIn))
        return original(method, Params=Params, ExpiresIn=ExpiresIn)

    monkeypatch.setattr(s3_store.client, "generate_presigned_url", spy)
    s3_store.presign("a/b", "GET", 60)
    s3_store.presign("a/b", "HEAD", 70)
    assert [(m, p["Key"], e) for m, p, e in calls] == [
        ("get_object", "a/b", 60),
        ("head_object", "a/b", 70),
    ]


# -- S3 specifics: prefixes, pagination, errors -------------------------------------------


def test_s3_prefix_isolates_keys(s3_bucket: str, moto_url: str) -> None:
    raw = boto3.client("s3", endpoint_url=moto_url)
    raw.put_object(Bucket=s3_bucket, Key="outside/x", Body=b"o")
    raw.put_object(Bucket=s3_bucket, Key="some/prefixed/y", Body=b"o")  # shares a string prefix
    store = open_store(f"s3://{s3_bucket}/some/prefix", endpoint_url=moto_url)
    assert isinstance(store, S3Store)
    assert store.location == f"s3://{s3_bucket}/some/prefix/"
    store.put("pkg/pkg-1.0.tar.gz", b"data")
    assert (
        raw.get_object(Bucket=s3_bucket, Key="some/prefix/pkg/pkg-1.0.tar.gz")["Body"].read()
        == b"data"
    )
    assert [i.key for i in store.list()] == ["pkg/pkg-1.0.tar.gz"]
    assert list(store.list_folders()) == ["pkg"]
    assert store.get("pkg/pkg-1.0.tar.gz").data == b"data"
    with pytest.raises(NotFound):
        store.get("outside/x")
    url = store.presign("pkg/pkg-1.0.tar.gz", "GET", 60)
    assert url is not None and "/some/prefix/pkg/pkg-1.0.tar.gz?" in url
    # surrounding slashes do not matter
    assert S3Store(s3_bucket, "/some/prefix/", endpoint_url=moto_url).location == store.location
    assert S3Store(s3_bucket, "", endpoint_url=moto_url).location == f"s3://{s3_bucket}/"


@pytest.mark.parametrize("location", ["s3://", "s3:///prefix", "https://example.com/x", "gs://b"])
def test_open_store_refuses_unknown_locations(location: str) -> None:
    with pytest.raises(ValueError):
        open_store(location)


def test_open_store_local(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "dir"))
    assert isinstance(store, LocalStore)
    assert store.location == str((tmp_path / "dir").resolve())


def _count_list_calls(store: S3Store, page_size: int | None = None) -> list[int]:
    """Record the keys of each ListObjectsV2 page; optionally force a small page size."""
    pages: list[int] = []

    def small_pages(params: dict[str, Any], **_: Any) -> None:
        if page_size is not None:
            params["MaxKeys"] = page_size

    def count(parsed: dict[str, Any], **_: Any) -> None:
        pages.append(len(parsed.get("Contents", [])) + len(parsed.get("CommonPrefixes", [])))

    events = store.client.meta.events
    events.register("provide-client-params.s3.ListObjectsV2", small_pages)
    events.register("after-call.s3.ListObjectsV2", lambda parsed, **kw: count(parsed))
    return pages


def test_s3_list_follows_continuation_tokens(s3_store: S3Store) -> None:
    keys = sorted(f"pkg/f{i:03d}" for i in range(23))
    for key in keys:
        s3_store.put(key, b"x")
    for i in range(9):
        s3_store.put(f"folder{i}/x", b"x")
    pages = _count_list_calls(s3_store, page_size=5)
    assert [i.key for i in s3_store.list("pkg/")] == keys
    assert pages == [5, 5, 5, 5, 3]
    pages.clear()
    assert list(s3_store.list_folders()) == [f"folder{i}" for i in range(9)] + ["pkg"]
    assert len(pages) == 2


def test_s3_list_over_a_thousand_keys(s3_store: S3Store) -> None:
    """S3 answers 1,000 keys a page: a listing that stops at the first page loses files."""
    keys = [f"big/pkg-{i:04d}.tar.gz" for i in range(1005)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3_store.put(k, b""), keys))
    pages = _count_list_calls(s3_store)
    assert [i.key for i in s3_store.list("big/")] == keys
    assert pages == [1000, 5]


def test_s3_missing_bucket_is_an_error_not_an_empty_store(
    aws_env: dict[str, str], moto_url: str
) -> None:
    store = S3Store("no-such-bucket-here", endpoint_url=moto_url)
    for action in (
        lambda: store.get("x/y"),
        lambda: list(store.list()),
        lambda: list(store.list_folders()),
    ):
        with pytest.raises(StoreError) as raised:
            action()
        assert not isinstance(raised.value, NotFound)


@pytest.mark.parametrize("code", ["AccessDenied", "InternalError", "SlowDown"])
def test_s3_errors_are_never_not_found(s3_store: S3Store, code: str) -> None:
    with Stubber(s3_store.client) as stub:
        stub.add_client_error("get_object", service_error_code=code, http_status_code=403)
        with pytest.raises(StoreError) as raised:
            s3_store.get("x/y")
    assert not isinstance(raised.value, NotFound | NotModified | PreconditionFailed)
    assert code in str(raised.value)


# -- the local store stays inside its directory -------------------------------------------

TRAVERSALS = [
    "",
    "../outside",
    "a/../../outside",
    "/etc/passwd",
    "a/./b",
    "a//b",
    "a/",
    "a\\..\\b",
    "a\x00b",
    ".locks/x",
    "pkg/.tmp-abc",
]


@pytest.mark.parametrize("key", TRAVERSALS)
def test_local_store_refuses_escaping_keys(
    local_store: LocalStore, tmp_path: Path, key: str
) -> None:
    (tmp_path / "outside").write_bytes(b"secret")
    with pytest.raises(NotFound):
        local_store.get(key)
    with pytest.raises(NotFound):
        local_store.head(key)
    with pytest.raises(NotFound), local_store.open(key):
        pass
    with pytest.raises(StoreError):
        local_store.put(key, b"overwrite")
    assert (tmp_path / "outside").read_bytes() == b"secret"
    assert list(local_store.list(key)) == [] or not key.startswith(("..", "/"))
    assert list(local_store.list_folders("../")) == []


def test_local_store_does_not_follow_symlinks_out(local_store: LocalStore, tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key").write_bytes(b"secret")
    local_store.put("pkg/pkg-1.0.tar.gz", b"ok")
    (local_store.root / "evil").symlink_to(tmp_path / "secret")
    (local_store.root / "pkg" / "link").symlink_to(tmp_path / "secret" / "key")
    with pytest.raises(NotFound):
        local_store.get("evil/key")
    with pytest.raises(NotFound):
        local_store.get("pkg/link")
    assert "evil" not in list(local_store.list_folders())
    assert [i.key for i in local_store.list()] == ["pkg/pkg-1.0.tar.gz"]


def test_local_store_hides_its_own_bookkeeping(local_store: LocalStore) -> None:
    etag = local_store.put("pkg/a", b"1")
    local_store.put("pkg/a", b"2", if_match=etag)  # creates the lock folder
    (local_store.root / "pkg" / ".tmp-partial").write_bytes(b"half")
    assert (local_store.root / ".locks").is_dir()
    assert [i.key for i in local_store.list()] == ["pkg/a"]
    assert list(local_store.list_folders()) == ["pkg"]


def test_local_store_sees_a_folder_replaced_under_it(
    local_store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # reads stat in a folder held open, checked again every _FOLDER_RECHECK seconds
    import serverless_pypi.storage.local as local

    monkeypatch.setattr(local, "_FOLDER_RECHECK", 0.0)
    etag = local_store.put("pkg/a", b"1")
    with pytest.raises(NotModified):
        local_store.get("pkg/a", if_none_match=etag)
    (local_store.root / "pkg").rename(tmp_path / "old")
    with pytest.raises(NotFound):
        local_store.get("pkg/a", if_none_match=etag)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "a").write_bytes(b"secret")
    (local_store.root / "pkg").symlink_to(tmp_path / "secret")
    with pytest.raises(NotFound):
        local_store.get("pkg/a", if_none_match=etag)
    with pytest.raises(NotFound):
        local_store.head("pkg/a")
    (local_store.root / "pkg").unlink()
    local_store.put("pkg/a", b"2")
    assert local_store.get("pkg/a", if_none_match=etag).data == b"2"
