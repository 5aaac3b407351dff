"""What an S3 answer means for a store: the one mapping both S3 clients share.

`storage.s3` (boto3) and `storage.s3_light` (the standard library) both reduce a refusal to
an S3 error code and an HTTP status and ask `translate_answer` what it means, so an access
error is never mistaken for "not found" by either. No SDK is imported here.
"""

from __future__ import annotations

from serverless_pypi.storage.base import (
    AccessDenied,
    BucketNotFound,
    NoCredentials,
    NotFound,
    NotModified,
    PreconditionFailed,
    StoreError,
    StoreUnreachable,
)

__all__ = [
    "CREDENTIALS_REFUSED",
    "THROTTLED",
    "no_credentials",
    "translate_answer",
    "unreachable",
    "where",
]

#: NoSuchUpload: a multipart upload that was completed or aborted (or never was)
NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})
CONFLICT = frozenset({"412", "409", "PreconditionFailed", "ConditionalRequestConflict"})
# S3 error codes that mean the store cannot work as configured, with what a person should do
CREDENTIALS_REFUSED = {
    "InvalidAccessKeyId": "the access key id is not known to S3",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id",
    "ExpiredToken": "the session credentials have expired",
    "InvalidToken": "the session token is invalid",
    "TokenRefreshRequired": "the session credentials have expired",
}
THROTTLED = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded"})


def where(bucket: str) -> str:
    return f"s3://{bucket}" if bucket else "S3"


def translate_answer(code: str, status: str, detail: str, key: str, bucket: str) -> StoreError:
    """What an answer of S3 (an error `code`, empty for a body-less answer, and an HTTP
    `status`) means for the store; `detail` is the answer in words, for the message."""
    location = where(bucket)
    if code == "NoSuchBucket":
        # a missing bucket is a misconfiguration, never an empty store
        return BucketNotFound(
            f"the bucket {bucket!r} does not exist (check S3_BUCKET / --store and the region)",
            location,
            detail,
        )
    if code in CREDENTIALS_REFUSED:
        return NoCredentials(
            f"S3 refused the credentials: {CREDENTIALS_REFUSED[code]}", location, detail
        )
    if code in {"AccessDenied", "AllAccessDisabled", "403"} or status == "403":
        return AccessDenied(
            "access denied: the credentials in use may not use this bucket "
            "(check the role's or user's policy and the bucket policy)",
            location,
            f"on {key!r}: {detail}",
        )
    if code in NOT_FOUND or status == "404":
        return NotFound(key)
    if code in {"304", "NotModified"} or status == "304":
        return NotModified(key)
    if code in CONFLICT or status in {"412", "409"}:
        return PreconditionFailed(key)
    if code in THROTTLED or status in {"500", "503"}:
        return StoreUnreachable(
            f"S3 is busy or failing ({code or status})", location, f"on {key!r}: {detail}"
        )
    return StoreError(f"S3 refused {key!r}: {code or status} {detail}")


def no_credentials(bucket: str, detail: str) -> NoCredentials:
    return NoCredentials(
        "no AWS credentials were found (set AWS_PROFILE, AWS_ACCESS_KEY_ID / "
        "AWS_SECRET_ACCESS_KEY, or run with a role)",
        where(bucket),
        detail,
    )


def unreachable(kind: str, bucket: str, detail: str) -> StoreUnreachable:
    """The endpoint did not answer: `kind` names how (a connection error's type)."""
    return StoreUnreachable(f"the S3 endpoint does not answer ({kind})", where(bucket), detail)
