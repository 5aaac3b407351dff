"""Cache-Control of a page that changes by itself at a known moment (issue 13, item 1): no
directive lets a cache keep it past that moment (RFC 9111 section 5.2.2, RFC 5861)."""

from __future__ import annotations

import pytest

from serverless_pypi.web.app import cap_cache_control


@pytest.mark.parametrize(
    ("value", "seconds", "capped"),
    [
        # the default: already revalidated at every use
        ("max-age=0, must-revalidate", 60, "max-age=0, must-revalidate"),
        ("max-age=600", 60, "max-age=60"),
        ("max-age=30", 60, "max-age=30"),
        ("public, max-age=86400, s-maxage=86400", 120, "public, max-age=120, s-maxage=120"),
        ('max-age="600"', 60, "max-age=60"),
        ("MAX-AGE=600", 60, "max-age=60"),
        # the stale windows fit in what is left after the lifetime
        ("max-age=30, stale-while-revalidate=600", 60, "max-age=30, stale-while-revalidate=30"),
        ("max-age=600, stale-if-error=600", 60, "max-age=60, stale-if-error=0"),
        ("max-age=10, stale-while-revalidate=20", 60, "max-age=10, stale-while-revalidate=20"),
        # no lifetime: a cache would guess one from Last-Modified (RFC 9111 section 4.2.2)
        ("public", 60, "public, max-age=60"),
        ("no-cache", 60, "no-cache"),
        ("no-store", 60, "no-store"),
        ("max-age=600", 0, "max-age=0"),
    ],
)
def test_no_directive_outlives_the_moment(value: str, seconds: int, capped: str) -> None:
    assert cap_cache_control(value, seconds) == capped
