"""HTTP values: headers, ETags (RFC 9110 section 13.1.2), Accept-Encoding, helper responses."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serverless_pypi.core.http import (
    Headers,
    Request,
    accepts_gzip,
    compress,
    etag_matches,
    make_etag,
    redirect,
    text_response,
)


def test_headers_are_case_insensitive_and_combine_repeats() -> None:
    headers = Headers([("Accept", "text/html"), ("ACCEPT", "application/json"), ("X-A", "1")])
    # RFC 9110 section 5.3: repeated fields combine with commas
    assert headers.get("accept") == "text/html, application/json"
    assert headers.get("x-a") == "1"
    assert "X-a" in headers
    assert "missing" not in headers
    assert 42 not in headers
    assert headers.get("missing") is None
    assert headers.get("missing", "default") == "default"
    assert Headers({"If-None-Match": '"x"'}).get("if-none-match") == '"x"'


@pytest.mark.parametrize(
    ("query", "name", "expected"),
    [
        ("", "format", None),
        ("format=json", "format", "json"),
        ("a=1&format=html&format=json", "format", "html"),
        ("format=", "format", ""),
        ("format", "format", ""),
        ("format=%6Ason", "format", "json"),
        ("format=%ff", "format", "\ufffd"),
        ("format=a+b", "format", "a b"),
        ("x=1", "format", None),
        ("&&&==&", "format", None),
    ],
)
def test_query_param(query: str, name: str, expected: str | None) -> None:
    assert Request("GET", "", query).query_param(name) == expected


@pytest.mark.parametrize(
    ("if_none_match", "etag", "matches"),
    [
        (None, '"abc"', False),
        ("", '"abc"', False),
        ('"abc"', '"abc"', True),
        ('"abd"', '"abc"', False),
        ("*", '"abc"', True),
        (" * ", '"abc"', True),
        # weak comparison: W/ is ignored on either side
        ('W/"abc"', '"abc"', True),
        ('"abc"', 'W/"abc"', True),
        ('W/"abc"', 'W/"abc"', True),
        ('"x", "abc"', '"abc"', True),
        ('"x",W/"abc"', '"abc"', True),
        ('"x" , "y"', '"abc"', False),
        ("abc", '"abc"', False),  # the quotes are part of the tag
        (",,,", '"abc"', False),
        ('"', '"abc"', False),
        ("W/", '"abc"', False),
    ],
)
def test_etag_matches(if_none_match: str | None, etag: str, matches: bool) -> None:
    assert etag_matches(if_none_match, etag) is matches


@settings(deadline=None)
@given(st.one_of(st.none(), st.text(max_size=200)))
def test_etag_matches_never_raises(value: str | None) -> None:
    etag_matches(value, make_etag(b"x"))


def test_make_etag_is_a_quoted_content_hash() -> None:
    etag = make_etag(b"page")
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34
    assert etag == make_etag(b"page")
    assert etag != make_etag(b"page2")


@pytest.mark.parametrize(
    ("accept_encoding", "gzip_ok"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("gzip, deflate, br", True),
        ("br, gzip", True),
        ("deflate, br", False),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("gzip;q=0.5", True),
        ("gzip ; q=1", True),
        ("gzip;q=abc", False),
        ("*", True),
        ("*;q=0", False),
        # RFC 9110 section 12.5.3: `*` covers only codings not listed explicitly
        ("*;q=0, gzip", True),
        ("gzip, *;q=0", True),
        ("gzip;q=0, *", False),
        ("*, gzip;q=0", False),
        (",,,", False),
        (";;;", False),
    ],
)
def test_accepts_gzip(accept_encoding: str | None, gzip_ok: bool) -> None:
    headers = Headers({} if accept_encoding is None else {"Accept-Encoding": accept_encoding})
    assert accepts_gzip(headers) is gzip_ok


@settings(deadline=None)
@given(st.text(max_size=200))
def test_accepts_gzip_never_raises(value: str) -> None:
    accepts_gzip(Headers({"Accept-Encoding": value}))


def test_compress_is_deterministic_and_round_trips() -> None:
    body = b"<html>" + b"x" * 5000
    assert compress(body) == compress(body)  # mtime=0: stable bytes, stable ETag
    assert gzip.decompress(compress(body)) == body
    assert len(compress(body)) < len(body)


def test_error_is_plain_text_and_uncached() -> None:
    response = text_response(404, "No project named 'x'.", {"X-Extra": "1"})
    assert response.status == 404
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Extra"] == "1"
    assert response.body == b"No project named 'x'.\n"


def test_redirect() -> None:
    response = redirect(302, "https://example.com/simple/x/")
    assert response.status == 302
    assert response.headers["Location"] == "https://example.com/simple/x/"
    assert response.headers["Cache-Control"] == "no-store"
    assert redirect(301, "x/", "max-age=3600").headers["Cache-Control"] == "max-age=3600"
