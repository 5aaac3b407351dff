"""HTTP values shared by every adapter: requests, responses and the helpers to build them.

Adapters (Lambda, local server) turn their native request into a `Request`, call the
application and translate the `Response` back. Nothing here does I/O.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

__all__ = [
    "Headers",
    "Request",
    "Response",
    "accepts_gzip",
    "error",
    "etag_matches",
    "make_etag",
    "redirect",
]

GZIP_MIN_SIZE = 1024


class Headers:
    """A case-insensitive, single-valued view of request headers."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[str, str] = {}
        for key, value in pairs:
            lower = key.lower()
            # RFC 9110 section 5.3: repeated fields combine with commas
            self._items[lower] = f"{self._items[lower]}, {value}" if lower in self._items else value

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items


@dataclass(slots=True)
class Request:
    """A request to the index.

    `path` is the raw (still percent-encoded) path below the index root: "" for the project
    list, "name/" for a project page, "name/file" for a file. `body` is the raw request body.
    """

    method: str
    path: str
    query: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def query_param(self, name: str) -> str | None:
        for key, value in parse_qsl(self.query, keep_blank_values=True):
            if key == name:
                return value
        return None


@dataclass(slots=True)
class Response:
    """A response. Exactly one of `body` and `file` carries the content."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # a local file to stream as the body (local directory store only)
    file: Path | None = None


def make_etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 section 13.1.2: If-None-Match uses the weak comparison."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


def accepts_gzip(headers: Headers) -> bool:
    """Whether Accept-Encoding allows gzip (RFC 9110 section 12.5.3)."""
    value = headers.get("accept-encoding")
    if not value:
        return False
    # an explicit gzip entry wins over `*`, which covers only codings not listed
    found: dict[str, bool] = {}
    for item in value.split(","):
        coding, *params = item.strip().lower().split(";")
        coding = "gzip" if coding.strip() == "x-gzip" else coding.strip()
        if coding not in {"gzip", "*"} or coding in found:
            continue
        found[coding] = True
        for param in params:
            key, _, q = param.partition("=")
            if key.strip() == "q":
                try:
                    found[coding] = float(q) > 0
                except ValueError:
                    found[coding] = False
                break
    return found.get("gzip", found.get("*", False))


def compress(body: bytes) -> bytes:
    # level 6 balances size and time; mtime=0 keeps the bytes (and the ETag) stable
    return gzip.compress(body, compresslevel=6, mtime=0)


def text_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    all_headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}
    all_headers.update(headers or {})
    return Response(status, all_headers, (message.rstrip("\n") + "\n").encode())


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error with a message a person can act on."""
    return text_response(status, message, headers)


def redirect(status: int, location: str, cache_control: str = "no-store") -> Response:
    return Response(
        status,
        {
            "Location": location,
            "Cache-Control": cache_control,
            "Content-Type": "text/plain; charset=utf-8",
        },
        f"Redirecting to {location}\n".encode(),
    )
