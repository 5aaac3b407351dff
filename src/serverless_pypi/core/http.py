"""HTTP values shared by every adapter: requests, responses and the helpers to build them.

Adapters (Lambda, local server) turn their native request into a `Request`, call the
application and translate the `Response` back. Nothing here does I/O.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from pathlib import Path  # annotations only: pathlib is not on the cold path

__all__ = [
    "GZIP_MIN_SIZE",
    "MAX_ENTITY_TAG",
    "MAX_IF_NONE_MATCH",
    "Headers",
    "IfNoneMatch",
    "InvalidConditional",
    "Request",
    "Response",
    "accepts_gzip",
    "encoding_tag",
    "etag_matches",
    "http_date",
    "make_etag",
    "parse_if_none_match",
    "redirect",
    "text_response",
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
    list, "name/" for a project page, "name/file" for a file; a route at the host root
    (trusted publishing, `web.oidc`) is its full path, the only kind that starts with "/".
    `body` is the raw request body as bytes (Lambda), or `stream` carries it unread (the local
    server), so that a handler can check the credentials in the headers before it reads a
    byte of the body, and then read it in pieces.
    """

    method: str
    path: str
    query: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    #: the body as a readable stream of `content-length` bytes; when set, `body` is empty
    stream: IO[bytes] | None = None
    #: the scheme the request came by: API Gateway and function URLs take https only; the
    #: local server's is its own (absolute URLs of PEP 807 discovery, `web.oidc`)
    scheme: str = "https"
    #: the URL path of the index root as the client sees it (`/simple/` locally, on a
    #: function URL and an HTTP API's `$default` stage; `/<stage>/` or a custom domain's
    #: base path on a REST API): set by each adapter, for the absolute links of the Upload
    #: 2.0 sessions (`web.sessions`)
    base: str = "/simple/"

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


#: the suffix that tells the gzip encoding of a page from its identity encoding
GZIP_TAG_SUFFIX = "-gz"


def encoding_tag(etag: str, gzip: bool) -> str:
    """A strong entity tag for one content coding of the representation tagged `etag`.

    RFC 9110 section 8.8.3: a strong tag stands for one sequence of bytes, so the gzip and the
    identity encodings of a page need tags of their own (uv revalidates strong tags only):
    `"<etag>-gz"` for gzip, `"<etag>"` for identity. `etag` is a strong tag (`W/` dropped).
    """
    etag = etag.removeprefix("W/")
    return etag[:-1] + GZIP_TAG_SUFFIX + '"' if gzip else etag


@functools.lru_cache(maxsize=1024)  # a page's Last-Modified is formatted once, not per request
def http_date(moment: datetime) -> str:
    """RFC 9110 section 5.6.7 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # formatted here: email.utils (format_datetime) costs the Lambda cold start ~4 ms
    moment = moment.astimezone(UTC)
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[moment.weekday()]
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[
        moment.month - 1
    ]
    return f"{day}, {moment.day:02d} {month} {moment.year:04d} {moment:%H:%M:%S} GMT"


#: the longest If-None-Match accepted, and the longest entity tag passed on to a store
MAX_IF_NONE_MATCH = 4096
MAX_ENTITY_TAG = 256
# RFC 9110 section 8.8.3: entity-tag = [ W/ ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E /
# obs-text; a comma is an etagc, so a list is split by this pattern, never at every comma
_ENTITY_TAG_ITEM = re.compile(r'[ \t]*(?:((?:W/)?"[\x21\x23-\x7e\x80-\xff]*")[ \t]*)?(?:,|\Z)')
_ASCII_TAG = re.compile(r'"[\x21\x23-\x7e]*"')


class InvalidConditional(ValueError):
    """An If-None-Match header that is neither `*` nor a list of entity tags."""


@dataclass(frozen=True, slots=True)
class IfNoneMatch:
    """A parsed If-None-Match (RFC 9110 section 13.1.2): `*`, or entity tags without `W/`."""

    any: bool
    tags: tuple[str, ...]

    def matches(self, etag: str) -> bool:
        # If-None-Match uses the weak comparison: W/ is ignored on both sides
        return self.any or etag.removeprefix("W/") in self.tags

    def for_encoding(self, gzip: bool) -> IfNoneMatch:
        """The tags that name the `gzip` (or identity) encoding, as the underlying tags that
        `encoding_tag` decorated: what a store holding one object for both can compare."""
        if self.any:
            return self
        suffix = GZIP_TAG_SUFFIX + '"'
        if gzip:
            tags = tuple(t[: -len(suffix)] + '"' for t in self.tags if t.endswith(suffix))
        else:
            tags = tuple(t for t in self.tags if not t.endswith(suffix))
        return IfNoneMatch(False, tags)

    def single_tag(self) -> str | None:
        """The one ASCII tag a store can compare itself (S3's IfNoneMatch), if that is all."""
        if self.any or len(self.tags) != 1:
            return None
        tag = self.tags[0]
        return tag if len(tag) <= MAX_ENTITY_TAG and _ASCII_TAG.fullmatch(tag) else None


def parse_if_none_match(value: str | None) -> IfNoneMatch | None:
    """`If-None-Match = "*" / #entity-tag`; None when absent, InvalidConditional if malformed.

    Empty list elements are allowed (RFC 9110 section 5.6.1); a value longer than
    MAX_IF_NONE_MATCH, or a tag longer than MAX_ENTITY_TAG, is refused as oversized.
    """
    if value is None:
        return None
    if len(value) > MAX_IF_NONE_MATCH:
        raise InvalidConditional(f"If-None-Match is longer than {MAX_IF_NONE_MATCH} characters")
    if value.strip(" \t") == "*":
        return IfNoneMatch(True, ())
    tags: list[str] = []
    position = 0
    while position < len(value):
        match = _ENTITY_TAG_ITEM.match(value, position)
        if match is None or match.end() == position:
            raise InvalidConditional(
                "If-None-Match must be * or a comma-separated list of entity tags such as "
                '"abc" or W/"abc" (RFC 9110 section 8.8.3)'
            )
        if match.group(1):
            tag = match.group(1).removeprefix("W/")
            if len(tag) > MAX_ENTITY_TAG:
                raise InvalidConditional(
                    f"an entity tag in If-None-Match is longer than {MAX_ENTITY_TAG} characters"
                )
            tags.append(tag)
        position = match.end()
    return IfNoneMatch(False, tuple(tags))


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 section 13.1.2: If-None-Match uses the weak comparison; malformed never
    matches (the application refuses it before it gets here)."""
    try:
        parsed = parse_if_none_match(if_none_match)
    except InvalidConditional:
        return False
    return parsed is not None and parsed.matches(etag)


def accepts_gzip(headers: Headers) -> bool:
    """Whether Accept-Encoding allows gzip (RFC 9110 section 12.5.3)."""
    value = headers.get("accept-encoding")
    if not value:
        return False
    if len(value) <= _MEMO_LENGTH:
        return _gzip_allowed_memo(value)
    return _gzip_allowed(value)


#: the longest Accept-Encoding whose answer is remembered (clients send a few values)
_MEMO_LENGTH = 256


def _gzip_allowed(value: str) -> bool:
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


_gzip_allowed_memo = functools.lru_cache(maxsize=64)(_gzip_allowed)


def compress(body: bytes) -> bytes:
    # level 6 balances size and time; mtime=0 keeps the bytes (and the ETag) stable
    return gzip.compress(body, compresslevel=6, mtime=0)


def text_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A plain-text answer, never cached (error answers are built from it in one place:
    `serverless_pypi.web.errors`)."""
    all_headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}
    all_headers.update(headers or {})
    return Response(status, all_headers, (message.rstrip("\n") + "\n").encode())


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
