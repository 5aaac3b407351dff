"""Storage behind one interface: a local directory or an S3 bucket (see `base.Store`)."""

from __future__ import annotations

from serverless_pypi.storage.base import (
    AccessDenied,
    Blob,
    BucketNotFound,
    LocalFile,
    NoCredentials,
    NotFound,
    NotModified,
    ObjectInfo,
    PreconditionFailed,
    Redirect,
    Store,
    StoreError,
    StoreUnavailable,
    StoreUnreachable,
    UploadedPart,
)

__all__ = [
    "AccessDenied",
    "Blob",
    "BucketNotFound",
    "LocalFile",
    "NoCredentials",
    "NotFound",
    "NotModified",
    "ObjectInfo",
    "PreconditionFailed",
    "Redirect",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoreUnreachable",
    "UploadedPart",
    "open_store",
]


def open_store(location: str, *, endpoint_url: str | None = None) -> Store:
    """A store for `DIR` or `s3://bucket[/prefix]`."""
    if location.startswith("s3://"):
        from serverless_pypi.storage.s3 import S3Store

        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"{location!r} names no bucket: use s3://bucket[/prefix]")
        return S3Store(bucket, prefix, endpoint_url=endpoint_url)
    if "://" in location:
        raise ValueError(f"{location!r}: a store is a directory or s3://bucket[/prefix]")
    from serverless_pypi.storage.local import LocalStore

    return LocalStore(location)
