"""A store in an S3 bucket (or any S3-compatible service), through boto3.

Conditional writes use S3's `If-None-Match: *` and `If-Match: <etag>` on PutObject.
Presigned URLs use SigV4 on the regional virtual-host endpoint: boto3's default in some
regions is SigV2 on the global endpoint, which newer buckets and regions refuse.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from serverless_pypi.storage.base import (
    Blob,
    NotFound,
    ObjectInfo,
    PreconditionFailed,
    Redirect,
    Store,
    StoreError,
    UploadedPart,
)
from serverless_pypi.storage.s3_errors import no_credentials, translate_answer, unreachable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopySourceTypeDef

__all__ = ["S3Store", "make_client"]


def make_client(endpoint_url: str | None = None) -> S3Client:
    """An S3 client that presigns with SigV4 on the regional endpoint.

    The endpoint comes from `endpoint_url`, else from boto3's own `AWS_ENDPOINT_URL_S3` /
    `AWS_ENDPOINT_URL`. A custom endpoint (moto, MinIO) is addressed path-style.
    """
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    custom = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if custom else "virtual"},
        retries={"max_attempts": 4, "mode": "standard"},
        max_pool_connections=32,
    )
    client: S3Client = boto3.session.Session().client(
        "s3", region_name=region, endpoint_url=endpoint_url, config=config
    )
    return client


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> str:
    return str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


_UNREACHABLE = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)
_NO_CREDENTIALS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)


def _translate(error: Exception, key: str, bucket: str = "") -> StoreError:
    # the meaning of an answer is shared with the standard-library client (s3_errors)
    if isinstance(error, ClientError):
        return translate_answer(_code(error), _status(error), str(error), key, bucket)
    if isinstance(error, _NO_CREDENTIALS):
        return no_credentials(bucket, str(error))
    if isinstance(error, _UNREACHABLE):
        return unreachable(type(error).__name__, bucket, str(error))
    return StoreError(f"S3 failed on {key!r}: {error}")


def _read_part(stream: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes of `stream`, fewer only at its end (a raw stream's `read` may
    return less than asked before the end)."""
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


#: S3's largest part of a multipart upload (and the largest object CopyObject copies)
MAX_PART = 5 * 1024**3
#: S3's most parts in one multipart upload
MAX_PARTS = 10_000


class S3Store(Store):
    #: the size of each part of a multipart upload (S3: 5 MiB to 5 GiB, the last one less)
    part_size = 16 * 1024 * 1024
    #: the size of each part of a server-side copy (UploadPartCopy), copied in parallel
    copy_part_size = 512 * 1024 * 1024
    #: parts copied at once
    copy_workers = 8
    supports_multipart = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        client: S3Client | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client or make_client(endpoint_url)
        self.location = f"s3://{bucket}/{self.prefix}"

    def _key(self, key: str) -> str:
        return self.prefix + key

    def get(self, key: str, *, if_none_match: str | None = None) -> Blob:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if if_none_match is not None:
            args["IfNoneMatch"] = if_none_match
        try:
            response = self.client.get_object(**args)
            data = response["Body"].read()
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, key, self.bucket) from e
        return Blob(data, response["ETag"], response["LastModified"])

    def head(self, key: str) -> ObjectInfo:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, key, self.bucket) from e
        return ObjectInfo(
            key, response["ContentLength"], response["ETag"], response["LastModified"]
        )

    @contextlib.contextmanager
    def open(self, key: str, *, if_match: str | None = None) -> Iterator[BinaryIO]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if if_match is not None:
            args["IfMatch"] = if_match
        try:
            body = self.client.get_object(**args)["Body"]
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, key, self.bucket) from e
        with contextlib.closing(body):
            yield body  # type: ignore[misc]

    def put(
        self,
        key: str,
        data: bytes | IO[bytes],
        *,
        content_type: str | None = None,
        content_encoding: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "Body": data}
        if content_type:
            args["ContentType"] = content_type
        if content_encoding:
            args["ContentEncoding"] = content_encoding
        if if_none_match:
            args["IfNoneMatch"] = "*"
        if if_match is not None:
            args["IfMatch"] = if_match
        try:
            response = self.client.put_object(**args)
        except (ClientError, BotoCoreError) as e:
            error = _translate(e, key, self.bucket)
            if if_match is not None and isinstance(error, NotFound):
                # S3 answers 404 to If-Match on a missing object: the condition does not hold
                raise PreconditionFailed(key) from e
            raise error from e
        return str(response["ETag"])

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        verify: Callable[[], None],
        content_type: str | None = None,
    ) -> str:
        """One PutObject for a stream shorter than a part; else a multipart upload of
        `part_size` parts, read one at a time (memory: about one part), completed only after
        `verify()` returned and aborted on any failure: S3 shows nothing until
        CompleteMultipartUpload, and keeps (and bills) no parts after AbortMultipartUpload."""
        first = _read_part(stream, self.part_size)
        if len(first) < self.part_size:
            verify()
            return self.put(key, first, content_type=content_type)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        try:
            upload = self.client.create_multipart_upload(**args, **extra)["UploadId"]
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, key, self.bucket) from e
        with self._aborted_on_failure(args, upload, key):
            parts = self._upload_parts(args, upload, first, stream)
            verify()
            response = self.client.complete_multipart_upload(
                **args, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        return str(response["ETag"])

    @contextlib.contextmanager
    def _aborted_on_failure(self, args: dict[str, Any], upload: str, key: str) -> Iterator[None]:
        """Abort the multipart upload `upload` on any failure inside (S3 keeps, and bills, no
        parts after AbortMultipartUpload); a store error is translated."""
        try:
            yield
        except BaseException as e:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(**args, UploadId=upload)
            if isinstance(e, ClientError | BotoCoreError):
                raise _translate(e, key, self.bucket) from e
            raise

    def _upload_parts(
        self, args: dict[str, Any], upload: str, first: bytes, stream: BinaryIO
    ) -> list[CompletedPartTypeDef]:
        parts: list[CompletedPartTypeDef] = []
        data = first
        while data:
            number = len(parts) + 1  # 1 to 10,000: 16 MiB parts allow 156 GiB
            answer = self.client.upload_part(**args, UploadId=upload, PartNumber=number, Body=data)
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            data = b"" if len(data) < self.part_size else _read_part(stream, self.part_size)
        return parts

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as e:
            error = _translate(e, key, self.bucket)
            if not isinstance(error, NotFound):
                raise error from e

    def _pages(self, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key(prefix)}
        if delimiter:
            args["Delimiter"] = delimiter
        try:
            # at most 1,000 keys a page (S3's limit); the paginator follows continuation tokens
            for page in self.client.get_paginator("list_objects_v2").paginate(**args):
                yield dict(page)
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, prefix, self.bucket) from e

    def check(self) -> None:
        """One LIST of at most one key: fails on a missing bucket, bad credentials, no access."""
        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, self.prefix, self.bucket) from e

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        skip = len(self.prefix)
        for page in self._pages(prefix, None):
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    item["Key"][skip:], item["Size"], item["ETag"], item["LastModified"]
                )

    def list_folders(self, prefix: str = "") -> Iterator[str]:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        skip = len(self.prefix) + len(prefix)
        for page in self._pages(prefix, "/"):
            for item in page.get("CommonPrefixes", []):
                yield item["Prefix"][skip:].rstrip("/")

    def deliver(self, key: str, method: str, expires: int) -> Redirect:
        # signed locally: no request, and no look-up (the caller knows the key exists)
        return Redirect(self.presign(key, method, expires))

    def presign(self, key: str, method: str, expires: int) -> str:
        """A SigV4 URL that answers `method` (GET or HEAD) on the object for `expires` seconds."""
        operation = "head_object" if method == "HEAD" else "get_object"
        url: str = self.client.generate_presigned_url(
            operation, Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires
        )
        return url

    def read_range(
        self, key: str, start: int, length: int, *, if_match: str | None = None
    ) -> bytes:
        """One ranged GetObject (`bytes=start-end`, RFC 9110 section 14.1.2)."""
        if length <= 0:
            return b""
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "Range": f"bytes={start}-{start + length - 1}",
        }
        if if_match is not None:
            args["IfMatch"] = if_match
        try:
            return bytes(self.client.get_object(**args)["Body"].read())
        except (ClientError, BotoCoreError) as e:
            if isinstance(e, ClientError) and _code(e) == "InvalidRange":
                return b""  # from the end of the object on
            raise _translate(e, key, self.bucket) from e

    # -- server-side copies ----------------------------------------------------------------
    def copy(self, source: str, destination: str, *, if_none_match: bool = False) -> ObjectInfo:
        """A server-side copy: no byte passes through this process.

        `if_none_match` copies through a multipart upload of UploadPartCopy parts completed
        with `If-None-Match: *`: S3 checks the condition atomically at completion (as on
        PutObject). CopyObject takes `If-None-Match` on S3 too, but moto (the tests' S3)
        ignores it there and honours it on CompleteMultipartUpload, as MinIO does; one way
        for every S3 the index runs on. Without the condition, CopyObject (up to 5 GiB).
        """
        info = self.head(source)
        if if_none_match and self.find(destination) is not None:
            raise PreconditionFailed(destination)  # cheap, before any part is copied
        if info.size == 0:
            self.put(destination, b"", if_none_match=if_none_match)
            return self.head(destination)
        if not if_none_match and info.size <= MAX_PART:
            try:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=self._key(destination),
                    CopySource={"Bucket": self.bucket, "Key": self._key(source)},
                )
            except (ClientError, BotoCoreError) as e:
                raise _translate(e, destination, self.bucket) from e
            return self.head(destination)
        return self._copy_in_parts(source, destination, info, if_none_match=if_none_match)

    def _copy_in_parts(
        self, source: str, destination: str, info: ObjectInfo, *, if_none_match: bool
    ) -> ObjectInfo:
        size = info.size
        part = max(self.copy_part_size, -(-size // MAX_PARTS))
        ranges = [(start, min(start + part, size) - 1) for start in range(0, size, part)]
        upload = self.create_multipart(destination)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(destination)}
        # the copy is of the version that was headed: a source replaced meanwhile fails it
        origin: CopySourceTypeDef = {"Bucket": self.bucket, "Key": self._key(source)}

        def copy_part(number: int) -> CompletedPartTypeDef:
            first, last = ranges[number - 1]
            answer = self.client.upload_part_copy(
                **args,
                UploadId=upload,
                PartNumber=number,
                CopySource=origin,
                CopySourceRange=f"bytes={first}-{last}",
                CopySourceIfMatch=info.etag,
            )
            return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

        with self._aborted_on_failure(args, upload, destination):
            with ThreadPoolExecutor(max_workers=min(self.copy_workers, len(ranges))) as pool:
                parts = list(pool.map(copy_part, range(1, len(ranges) + 1)))
            extra: dict[str, Any] = {"IfNoneMatch": "*"} if if_none_match else {}
            self.client.complete_multipart_upload(
                **args, UploadId=upload, MultipartUpload={"Parts": parts}, **extra
            )
        return self.head(destination)

    # -- multipart uploads whose parts clients PUT to presigned URLs ----------------------
    def create_multipart(self, key: str) -> str:
        try:
            answer = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), ContentType="application/octet-stream"
            )
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, key, self.bucket) from e
        return str(answer["UploadId"])

    def presign_part(self, key: str, upload_id: str, number: int, expires: int) -> str:
        url: str = self.client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": self.bucket,
                "Key": self._key(key),
                "UploadId": upload_id,
                "PartNumber": number,
            },
            ExpiresIn=expires,
        )
        return url

    def list_parts(self, key: str, upload_id: str) -> Sequence[UploadedPart]:
        found: list[UploadedPart] = []
        try:
            # at most 1,000 parts a page; the paginator follows the part-number markers
            pages = self.client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=self._key(key), UploadId=upload_id
            )
            for page in pages:
                for item in page.get("Parts", []):
                    found.append(UploadedPart(item["PartNumber"], item["Size"], item["ETag"]))
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, key, self.bucket) from e
        return sorted(found)

    def complete_multipart(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        *,
        if_none_match: bool = False,
    ) -> str:
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if if_none_match else {}
        completed: list[CompletedPartTypeDef] = [
            {"PartNumber": number, "ETag": etag} for number, etag in parts
        ]
        try:
            answer = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self._key(key),
                UploadId=upload_id,
                MultipartUpload={"Parts": completed},
                **extra,
            )
        except (ClientError, BotoCoreError) as e:
            raise _translate(e, key, self.bucket) from e
        return str(answer["ETag"])

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), UploadId=upload_id
            )
        except (ClientError, BotoCoreError) as e:
            error = _translate(e, key, self.bucket)
            if not isinstance(error, NotFound):
                raise error from e
