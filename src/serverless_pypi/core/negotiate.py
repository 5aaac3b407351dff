"""Content negotiation for the simple API (PEP 691).

Offers are matched against the Accept header with q-values; a `?format=` query parameter
overrides it; a malformed header or no acceptable offer falls back to HTML (like PyPI, never a
406 and never an error).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import Enum

__all__ = ["Format", "choose_format", "parse_accept"]

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"


class Format(Enum):
    """A rendering of a page and the Content-Type it is served with."""

    HTML = TEXT_HTML
    HTML_V1 = HTML_V1
    JSON_V1 = JSON_V1

    @property
    def is_json(self) -> bool:
        return self is Format.JSON_V1

    @property
    def content_type(self) -> str:
        return self.value if self.is_json else f"{self.value}; charset=utf-8"


# In order of preference when the client rates several equally (PEP 691 recommends HTML
# as the default so that a client that asks for nothing gets what it always got).
_OFFERS: tuple[tuple[str, Format], ...] = (
    (TEXT_HTML, Format.HTML),
    (HTML_V1, Format.HTML_V1),
    (JSON_V1, Format.JSON_V1),
)
# PEP 691: `latest` is an alias for the newest version the server supports.
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
_FORMAT_SHORTHANDS = {"json": Format.JSON_V1, "html": Format.HTML}
_MAX_ACCEPT_LENGTH = 4096
# a space between two token characters of a media type was a "+" before form decoding
_FORM_PLUS = re.compile(r"(?<=[a-z0-9.\-])\x20+(?=[a-z0-9])")


@dataclass(frozen=True, slots=True)
class MediaRange:
    type: str
    subtype: str
    q: float

    def matches(self, media_type: str) -> int:
        """Specificity of the match (3 exact, 2 `type/*`, 1 `*/*`) or 0 for none."""
        main, _, sub = media_type.partition("/")
        if self.type == "*" and self.subtype == "*":
            return 1
        if self.type == main and self.subtype == "*":
            return 2
        if self.type == main and self.subtype == sub:
            return 3
        return 0


def parse_accept(header: str | None) -> list[MediaRange]:
    """Parse an Accept header (RFC 9110 section 12.5.1), skipping malformed entries."""
    if header is None or not header.strip():
        return [MediaRange("*", "*", 1.0)]
    ranges: list[MediaRange] = []
    for item in header[:_MAX_ACCEPT_LENGTH].split(","):
        media, *params = item.split(";")
        media = media.strip().lower()
        media = _ALIASES.get(media, media)
        main, slash, sub = media.partition("/")
        if not slash or not main or not sub or (main == "*" and sub != "*"):
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
                if not 0.0 <= q <= 1.0:  # also rejects nan
                    q = -1.0
        if q >= 0.0:
            ranges.append(MediaRange(main, sub, q))
    return ranges


def _quality(ranges: list[MediaRange], media_type: str) -> float:
    best_specificity, best_q = 0, 0.0
    for media_range in ranges:
        specificity = media_range.matches(media_type)
        if specificity > best_specificity:
            best_specificity, best_q = specificity, media_range.q
    return best_q


#: the longest Accept (and `?format=`) whose choice is remembered: clients send a few values
_MEMO_LENGTH = 512


def choose_format(accept: str | None, format_param: str | None = None) -> Format:
    """The page format to serve for an Accept header and an optional `?format=`."""
    if len(accept or "") + len(format_param or "") <= _MEMO_LENGTH:
        return _choose_memo(accept, format_param)
    return _choose(accept, format_param)


def _choose(accept: str | None, format_param: str | None) -> Format:
    if format_param:
        # a literal "+" in the query (`?format=application/vnd.pypi.simple.v1+json`, as the
        # PEP writes it) arrives as a space from form decoding: no media type holds a space
        wanted = _FORM_PLUS.sub("+", format_param.strip().lower())
        if wanted in _FORMAT_SHORTHANDS:
            return _FORMAT_SHORTHANDS[wanted]
        accept = wanted  # `?format=<media type>` behaves as that Accept header
    ranges = parse_accept(accept)
    best, best_q = Format.HTML, 0.0
    for media_type, fmt in _OFFERS:
        q = _quality(ranges, media_type)
        if q > best_q:
            best, best_q = fmt, q
    return best


# every request negotiates; pip and uv each send one Accept header: its choice is kept
_choose_memo = functools.lru_cache(maxsize=256)(_choose)
