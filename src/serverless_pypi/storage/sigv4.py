"""AWS Signature Version 4 for S3 with the standard library only (hashlib, hmac).

The read path of the API function signs one request per store read and one URL per download;
this is all it needs of an SDK, so it imports no boto3 (about 200 ms of cold start) and no
`awscrt` (about 45 ms of import and a 12 MB native library). It produces what botocore's
`S3SigV4Auth` (header signing) and `S3SigV4QueryAuth` (presigned URLs) produce, byte for byte:
tests/unit/test_sigv4.py checks it against botocore over a table of inputs.

The same signing serves the few AWS JSON-protocol calls of the functions (`aws_json`: SQS,
Secrets Manager), as botocore's `SigV4Auth` signs them (no X-Amz-Content-SHA256 header).

Specification: "Authenticating Requests (AWS Signature Version 4)" in the Amazon S3 API
reference (header signing, and query-string authentication for presigned URLs); paths are
not normalized for S3 and every byte but the unreserved characters is percent-encoded
(RFC 3986, section 2.3).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "EMPTY_SHA256",
    "MAX_EXPIRES",
    "MIN_EXPIRES",
    "UNSIGNED_PAYLOAD",
    "Credentials",
    "canonical_query",
    "presign_url",
    "quote_key",
    "quote_value",
    "sign_headers",
]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: a presigned URL lives at least a second and at most 7 days (S3 refuses longer ones)
MIN_EXPIRES = 1
MAX_EXPIRES = 7 * 24 * 3600
#: headers never signed (botocore's list: proxies and clients may change them)
_UNSIGNED_HEADERS = frozenset({"expect", "transfer-encoding", "user-agent", "x-amzn-trace-id"})

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_VALUE_TABLE = tuple(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in range(256))
_KEY_TABLE = tuple("/" if b == ord("/") else _VALUE_TABLE[b] for b in range(256))


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never the secret in a log or a traceback
        return f"Credentials(access_key={self.access_key!r}, ...)"


def quote_value(text: str) -> str:
    """Every UTF-8 byte of `text` percent-encoded but the unreserved characters."""
    return "".join(map(_VALUE_TABLE.__getitem__, text.encode("utf-8")))


def quote_key(text: str) -> str:
    """`quote_value` that keeps `/`: an object key as a URL path (S3 never normalizes it)."""
    return "".join(map(_KEY_TABLE.__getitem__, text.encode("utf-8")))


def canonical_query(params: Mapping[str, str]) -> str:
    """The query string, encoded and sorted as SigV4 signs it (also fine to send as is)."""
    return "&".join(sorted(f"{quote_value(k)}={quote_value(v)}" for k, v in params.items()))


#: seconds since the epoch, now (tests freeze it)
clock = time.time


def _timestamp(now: float | None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock() if now is None else now))


@functools.lru_cache(maxsize=16)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _signature(
    credentials: Credentials, stamp: str, region: str, service: str, canonical: str
) -> str:
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        (ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest())
    )
    key = _signing_key(credentials.secret_key, stamp[:8], region, service)
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(the canonical header block, the signed header names), of the headers to sign."""
    values: dict[str, list[str]] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower not in _UNSIGNED_HEADERS:
            values.setdefault(lower, []).append(" ".join(value.split()))
    names = sorted(values)
    block = "".join(f"{n}:{','.join(values[n])}\n" for n in names)
    return block, ";".join(names)


def sign_headers(
    method: str,
    host: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    *,
    credentials: Credentials,
    region: str,
    payload_hash: str = EMPTY_SHA256,
    service: str = "s3",
    content_sha256: bool = True,
    now: float | None = None,
) -> dict[str, str]:
    """The headers of a request signed in its `Authorization` header.

    `path` is already encoded (`quote_key`), `query` is `canonical_query`'s string, `host`
    is the Host header's value (with a port that is not the scheme's default), `payload_hash`
    the hex sha256 of the body. Returns `headers` with Host, X-Amz-Date, X-Amz-Content-SHA256
    (S3 requires it; other services, `content_sha256=False`, sign the hash without sending
    it, as botocore's SigV4Auth does), X-Amz-Security-Token (with a session token) and
    Authorization added: everything to send.
    """
    stamp = _timestamp(now)
    signed = {"Host": host, **headers, "X-Amz-Date": stamp}
    if credentials.token:
        signed["X-Amz-Security-Token"] = credentials.token
    if content_sha256:
        signed["X-Amz-Content-SHA256"] = payload_hash
    block, names = _canonical_headers(signed)
    canonical = "\n".join((method.upper(), path, query, block, names, payload_hash))
    signature = _signature(credentials, stamp, region, service, canonical)
    signed["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{stamp[:8]}/{region}/{service}/"
        f"aws4_request, SignedHeaders={names}, Signature={signature}"
    )
    return signed


def presign_url(
    method: str,
    origin: str,
    host: str,
    path: str,
    *,
    credentials: Credentials,
    region: str,
    expires: int,
    service: str = "s3",
    now: float | None = None,
    parameters: Mapping[str, str] | None = None,
) -> str:
    """A URL that answers `method` for `expires` seconds (1 s to 7 days), signed in its query.

    `origin` is the URL's `scheme://netloc`, `host` the host it signs (no default port),
    `path` the encoded path (`quote_key`), `parameters` the operation's own parameters (an
    UploadPart's `partNumber` and `uploadId`), signed with the others and sent first.

    Only the Host header is signed, and the payload is UNSIGNED-PAYLOAD: any client can follow
    the URL as it is. The parameters come in botocore's order, X-Amz-Signature last.
    """
    if not isinstance(expires, int) or not MIN_EXPIRES <= expires <= MAX_EXPIRES:
        raise ValueError(
            f"a presigned URL lives {MIN_EXPIRES} to {MAX_EXPIRES} seconds, not {expires!r}"
        )
    stamp = _timestamp(now)
    params = {
        **(parameters or {}),
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{credentials.access_key}/{stamp[:8]}/{region}/{service}/aws4_request",
        "X-Amz-Date": stamp,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": "host",
    }
    if credentials.token is not None:
        params["X-Amz-Security-Token"] = credentials.token
    canonical = "\n".join(
        (method.upper(), path, canonical_query(params), f"host:{host}\n", "host", UNSIGNED_PAYLOAD)
    )
    signature = _signature(credentials, stamp, region, service, canonical)
    query = "&".join(f"{quote_value(k)}={quote_value(v)}" for k, v in params.items())
    return f"{origin}{path}?{query}&X-Amz-Signature={signature}"
