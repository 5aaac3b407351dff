"""Reading the requests of the Upload 2.0 session API (PEP 694): the body within its bound, the
JSON body checked for the media type (415) and `meta.api-version` (another major version: 400),
and the members the routes read (`name`, `size`, `hashes`, `parts`, `extend-for`, ...); the
methods a route allows (405 with Allow).

Every refusal is a `web.session_wire.Problem` naming the member it is about
(`errors[].source`). The routes are `web.sessions`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from serverless_pypi.core.errors import (
    InvalidRequest,
    LengthRequired,
    MethodNotAllowed,
    TooLarge,
)
from serverless_pypi.core.http import Request
from serverless_pypi.web.session_wire import (
    API_VERSION,
    LATEST_MEDIA_TYPE,
    MAX_JSON_BODY,
    MAX_PARTS_PER_REQUEST,
    MEDIA_TYPE,
    Problem,
    UnsupportedMediaType,
)

__all__ = [
    "allow_method",
    "body_parts",
    "content_length",
    "extend_for",
    "hashes_of",
    "integer_of",
    "read_body",
    "read_json",
    "string_of",
]

#: the sha256 the index requires of every file (PEP 694 recommends it; we need it for pages)
_HEX = re.compile(r"[0-9a-fA-F]+")
#: PEP 694 `hashes`: `hashlib.new()` names that take no parameters (the shake_* ones want a
#: length), of `hashlib.algorithms_guaranteed`
_ALGORITHMS = tuple(sorted(a for a in hashlib.algorithms_guaranteed if not a.startswith("shake_")))


def read_json(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """The request's JSON body, checked for the media type and `meta.api-version`."""
    raw = read_body(request, MAX_JSON_BODY)
    content_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if optional and not raw.strip():
        return {}  # publish and complete need nothing but the request
    if content_type not in (MEDIA_TYPE, LATEST_MEDIA_TYPE):
        raise Problem(
            UnsupportedMediaType(
                f"The body must be {MEDIA_TYPE} (PEP 694), not {content_type or 'untyped'!r}."
            ),
            "Content-Type",
        )
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Problem(InvalidRequest("The body is not valid JSON."), "body") from None
    if not isinstance(body, dict):
        raise Problem(InvalidRequest("The body must be a JSON object."), "body")
    meta = body.get("meta")
    version = meta.get("api-version") if isinstance(meta, dict) else None
    if not isinstance(version, str):
        raise Problem(
            InvalidRequest('The body needs "meta": {"api-version": "2.0"} (PEP 694).'),
            "meta.api-version",
        )
    if version.split(".", 1)[0] != API_VERSION.split(".", 1)[0]:
        raise Problem(
            InvalidRequest(
                f"meta.api-version {version!r} is not this API's: the index speaks "
                f"{API_VERSION} (the major version must match the Content-Type's v2)."
            ),
            "meta.api-version",
        )
    return body


def read_body(request: Request, limit: int) -> bytes:
    """The request's body, at most `limit` bytes (TooLarge past it)."""
    if request.stream is None:
        if len(request.body) > limit:
            raise Problem(TooLarge(f"The body is larger than {limit} bytes."), "body")
        return request.body
    length = content_length(request)
    if length > limit:
        raise Problem(TooLarge(f"The body is larger than {limit} bytes."), "body")
    data = request.stream.read(length) if length else b""
    if len(data) != length:
        raise Problem(InvalidRequest("The body ends before its Content-Length."), "body")
    return data


def content_length(request: Request) -> int:
    raw = (request.headers.get("content-length") or "").strip()
    if not raw:
        raise Problem(LengthRequired("The request needs a Content-Length header."), "body")
    # RFC 9110 section 8.6: Content-Length = 1*DIGIT
    if not (raw.isascii() and raw.isdigit()):
        raise Problem(InvalidRequest(f"The Content-Length {raw[:40]!r} is not a number."), "body")
    return int(raw)


def string_of(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise Problem(InvalidRequest(f"The body needs {key!r}, a non-empty string."), key)
    return value


def integer_of(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Problem(InvalidRequest(f"The body needs {key!r}, a whole number."), key)
    return value


def hashes_of(body: Mapping[str, Any]) -> dict[str, str]:
    """PEP 694 `hashes`: `hashlib` names without parameters to hex digests; sha256 is
    required here (the pages list it), the others are checked at completion too."""
    given = body.get("hashes")
    if not isinstance(given, dict) or not given:
        raise Problem(InvalidRequest('The body needs "hashes", e.g. {"sha256": "..."}.'), "hashes")
    hashes: dict[str, str] = {}
    for name, value in given.items():
        source = f"hashes.{name}"
        if name not in _ALGORITHMS:
            raise Problem(
                InvalidRequest(f"Unknown hash {name!r}: use one of {', '.join(_ALGORITHMS)}."),
                source,
            )
        digits = hashlib.new(name).digest_size * 2
        if not isinstance(value, str) or len(value) != digits or not _HEX.fullmatch(value):
            raise Problem(
                InvalidRequest(f"The {name} digest must be {digits} hexadecimal digits."), source
            )
        hashes[name] = value.lower()
    if "sha256" not in hashes:
        raise Problem(InvalidRequest("This index requires a sha256 digest of each file."), "hashes")
    return hashes


def body_parts(body: Mapping[str, Any], count: int) -> list[int]:
    """The `parts` a `POST parts_url` asks for: 1 to MAX_PARTS_PER_REQUEST distinct part
    numbers of the file (1 to `count`)."""
    numbers = body.get("parts")
    if (
        not isinstance(numbers, list)
        or not numbers
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers)
    ):
        raise Problem(InvalidRequest('The body needs "parts": a list of part numbers.'), "parts")
    if len(numbers) > MAX_PARTS_PER_REQUEST:
        raise Problem(
            InvalidRequest(f"Ask for at most {MAX_PARTS_PER_REQUEST} part URLs at a time."), "parts"
        )
    wrong = [n for n in numbers if not 1 <= n <= count]
    if wrong:
        raise Problem(
            InvalidRequest(f"Part numbers run from 1 to {count} for this file, not {wrong[0]}."),
            "parts",
        )
    return sorted(set(numbers))


def extend_for(body: Mapping[str, Any]) -> int:
    seconds = integer_of(body, "extend-for")
    if seconds < 0:
        raise Problem(
            InvalidRequest("extend-for is a number of seconds, at least 0."), "extend-for"
        )
    return seconds


def allow_method(method: str, allowed: tuple[str, ...]) -> None:
    if method not in allowed:
        shown = (*allowed, "HEAD") if "GET" in allowed else allowed
        raise MethodNotAllowed(f"{method} is not allowed here.", shown)
