"""One download concept: `Store.deliver` says how a key is served, in one call."""

from __future__ import annotations

from typing import Any

import pytest

from serverless_pypi.storage import LocalFile, NotFound, Redirect, Store
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.s3 import S3Store


def test_a_directory_delivers_the_file_as_it_is_now(local_store: LocalStore) -> None:
    local_store.put("pkg/pkg-1.0.tar.gz", b"first")
    first = local_store.deliver("pkg/pkg-1.0.tar.gz", "GET", 60)
    assert first == LocalFile(
        local_store.root / "pkg" / "pkg-1.0.tar.gz", 5, local_store.head("pkg/pkg-1.0.tar.gz").etag
    )
    local_store.put("pkg/pkg-1.0.tar.gz", b"second, longer")
    now = local_store.deliver("pkg/pkg-1.0.tar.gz", "HEAD", 60)
    assert now.size == 14 and now.etag != first.etag


@pytest.mark.parametrize("key", ["pkg/missing", "../outside", "pkg/../../x", ".locks/x", ""])
def test_a_directory_delivers_nothing_outside_its_objects(
    local_store: LocalStore, key: str
) -> None:
    with pytest.raises(NotFound):
        local_store.deliver(key, "GET", 60)


def test_s3_delivers_a_presigned_url_per_method_without_a_request(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed: list[tuple[str, str]] = []
    original = s3_store.client.generate_presigned_url

    def spy(operation: str, Params: dict[str, Any], ExpiresIn: int) -> str:  # noqa: N803
        signed.append((operation, Params["Key"]))
        return original(operation, Params=Params, ExpiresIn=ExpiresIn)

    def no_request(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("deliver sent a request to S3")

    monkeypatch.setattr(s3_store.client, "generate_presigned_url", spy)
    monkeypatch.setattr(s3_store.client, "head_object", no_request)
    monkeypatch.setattr(s3_store.client, "get_object", no_request)
    get = s3_store.deliver("pkg/pkg-1.0.tar.gz", "GET", 30)
    head = s3_store.deliver("pkg/pkg-1.0.tar.gz", "HEAD", 30)
    assert isinstance(get, Redirect) and isinstance(head, Redirect)
    assert "X-Amz-Expires=30" in get.url and get.url != head.url
    assert signed == [("get_object", "pkg/pkg-1.0.tar.gz"), ("head_object", "pkg/pkg-1.0.tar.gz")]


def test_deliver_is_the_only_download_call(store: Store) -> None:
    # the interface has no presign/local_path probing left
    assert not hasattr(Store, "presign") and not hasattr(Store, "local_path")
    store.put("pkg/pkg-1.0.tar.gz", b"payload")
    served = store.deliver("pkg/pkg-1.0.tar.gz", "GET", 60)
    assert isinstance(served, LocalFile if isinstance(store, LocalStore) else Redirect)
