"""Content negotiation (PEP 691): q-values, `?format=`, `latest` aliases, malformed headers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serverless_pypi.core.negotiate import Format, choose_format, parse_accept

JSON = Format.JSON_V1
HTML = Format.HTML
HTML_V1 = Format.HTML_V1

# what the real clients send (see FIELD_NOTES.md)
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
UV_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
PYPI_SIMPLE_JSON_ONLY = "application/vnd.pypi.simple.v1+json"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        # no Accept means */*, and HTML is the default (PEP 691)
        (None, HTML),
        ("", HTML),
        ("   ", HTML),
        ("*/*", HTML),
        ("text/*", HTML),
        ("text/html", HTML),
        ("TEXT/HTML", HTML),
        ("application/*", HTML_V1),
        ("application/vnd.pypi.simple.v1+html", HTML_V1),
        ("application/vnd.pypi.simple.v1+json", JSON),
        ("Application/Vnd.PyPI.Simple.V1+JSON", JSON),
        (PIP_ACCEPT, JSON),
        (UV_ACCEPT, JSON),
        # PEP 691: `latest` is the newest version the server supports
        ("application/vnd.pypi.simple.latest+json", JSON),
        ("application/vnd.pypi.simple.latest+html", HTML_V1),
        # q-values decide, whatever the order
        ("text/html;q=0.5, application/vnd.pypi.simple.v1+json;q=0.9", JSON),
        ("application/vnd.pypi.simple.v1+json;q=0.4, text/html;q=0.5", HTML),
        ("application/vnd.pypi.simple.v1+json, */*;q=0.1", JSON),
        ("*/*;q=0.1, application/vnd.pypi.simple.v1+json", JSON),
        ("application/vnd.pypi.simple.v1+json;q=1.0, text/html;q=1", HTML),  # tie: HTML
        # the most specific range sets a type's quality (RFC 9110 section 12.5.1)
        ("text/*;q=1, text/html;q=0.1, application/vnd.pypi.simple.v1+json;q=0.5", JSON),
        ("*/*, text/html;q=0", HTML_V1),
        # nothing acceptable: HTML anyway, never a 406 (as PyPI)
        ("application/json", HTML),
        ("image/png", HTML),
        ("application/vnd.pypi.simple.v1+json;q=0", HTML),
        ("application/vnd.pypi.simple.v2+json", HTML),
        # parameters other than q are ignored
        ("text/html;level=1", HTML),
        ("application/vnd.pypi.simple.v1+json; charset=utf-8", JSON),
        # malformed: skipped entries, never an error
        (";;;", HTML),
        (",,,", HTML),
        ("q=abc", HTML),
        ("application/vnd.pypi.simple.v1+json;q=abc", HTML),
        ("application/vnd.pypi.simple.v1+json;q=", HTML),
        ("application/vnd.pypi.simple.v1+json;q=nan", HTML),
        ("application/vnd.pypi.simple.v1+json;q=inf", HTML),
        ("application/vnd.pypi.simple.v1+json;q=-1", HTML),
        ("application/vnd.pypi.simple.v1+json;q=2", HTML),
        ("application/vnd.pypi.simple.v1+json;q=1e999", HTML),
        ("application/vnd.pypi.simple.v1+json;;;q=0.5", JSON),
        ("*/json", HTML),
        ("/", HTML),
        ("json", HTML),
        ("text/", HTML),
        ("\x00\x01", HTML),
        ("application/vnd.pypi.simple.v1+json\x00", HTML),
        ("é/ü, application/vnd.pypi.simple.v1+json", JSON),
    ],
)
def test_choose_format_from_accept(accept: str | None, expected: Format) -> None:
    assert choose_format(accept) is expected


@pytest.mark.parametrize(
    ("accept", "param", "expected"),
    [
        (None, "json", JSON),
        (None, "JSON", JSON),
        (None, " json ", JSON),
        (None, "html", HTML),
        (PIP_ACCEPT, "html", HTML),  # ?format= overrides Accept
        ("text/html", "json", JSON),
        (None, "application/vnd.pypi.simple.v1+json", JSON),
        (None, "application/vnd.pypi.simple.latest+json", JSON),
        (None, "application/vnd.pypi.simple.v1+html", HTML_V1),
        (None, "text/html", HTML),
        (PIP_ACCEPT, "garbage", HTML),
        (PIP_ACCEPT, ";;;", HTML),
        (PIP_ACCEPT, "", JSON),  # an empty parameter is no parameter
        (PIP_ACCEPT, None, JSON),
    ],
)
def test_format_parameter_overrides_accept(
    accept: str | None, param: str | None, expected: Format
) -> None:
    assert choose_format(accept, param) is expected


def test_huge_accept_header_is_bounded_and_harmless() -> None:
    header = "text/plain;q=0.5, " * 100_000 + PYPI_SIMPLE_JSON_ONLY
    assert choose_format(header) is HTML  # only the first few KB are read
    assert len(parse_accept(header)) < 1000
    assert choose_format("x" * 1_000_000) is HTML


def test_content_types() -> None:
    # PEP 691: the JSON type has no charset; HTML pages declare UTF-8
    assert JSON.content_type == "application/vnd.pypi.simple.v1+json"
    assert HTML.content_type == "text/html; charset=utf-8"
    assert HTML_V1.content_type == "application/vnd.pypi.simple.v1+html; charset=utf-8"
    assert JSON.is_json and not HTML.is_json and not HTML_V1.is_json


def test_parse_accept_values() -> None:
    ranges = parse_accept("text/html;q=0.3, */*;q=0.1, application/vnd.pypi.simple.latest+json")
    assert [(r.type, r.subtype, r.q) for r in ranges] == [
        ("text", "html", 0.3),
        ("*", "*", 0.1),
        ("application", "vnd.pypi.simple.v1+json", 1.0),
    ]
    assert [(r.type, r.subtype, r.q) for r in parse_accept(None)] == [("*", "*", 1.0)]


@settings(deadline=None)
@given(st.text(max_size=300), st.one_of(st.none(), st.text(max_size=60)))
def test_never_raises(accept: str, param: str | None) -> None:
    assert choose_format(accept, param) in set(Format)
    for media_range in parse_accept(accept):
        assert 0.0 <= media_range.q <= 1.0


accept_item = st.builds(
    lambda t, q: f"{t};q={q}",
    st.sampled_from(
        [
            "text/html",
            "application/vnd.pypi.simple.v1+json",
            "application/vnd.pypi.simple.v1+html",
            "*/*",
            "text/*",
            "application/json",
        ]
    ),
    st.sampled_from(["0", "0.1", "0.5", "0.9", "1"]),
)


@settings(deadline=None)
@given(st.lists(accept_item, min_size=1, max_size=6))
def test_never_picks_a_refused_format_over_an_accepted_one(items: list[str]) -> None:
    header = ", ".join(items)
    chosen = choose_format(header)
    ranges = parse_accept(header)

    def quality(media_type: str) -> float:
        best: tuple[int, float] = (0, 0.0)
        for r in ranges:
            spec = r.matches(media_type)
            if spec > best[0]:
                best = (spec, r.q)
        return best[1]

    qualities = {fmt: quality(fmt.value) for fmt in Format}
    if max(qualities.values()) > 0:
        assert qualities[chosen] == max(qualities.values())
    else:
        assert chosen is HTML
