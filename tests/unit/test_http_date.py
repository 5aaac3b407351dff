"""`core.http.http_date` (RFC 9110 section 5.6.7 IMF-fixdate) is what email.utils writes.

It is formatted by hand so that the Lambda cold start does not import the `email` package.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

from hypothesis import given
from hypothesis import strategies as st

from serverless_pypi.core.http import http_date


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9998, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-11)), timezone(timedelta(hours=5, minutes=30))]
        ),
    )
)
def test_http_date_is_an_imf_fixdate(moment: datetime) -> None:
    assert http_date(moment) == format_datetime(moment.astimezone(UTC), usegmt=True)


def test_a_naive_time_is_utc() -> None:
    assert http_date(datetime(1994, 11, 6, 8, 49, 37)) == "Sun, 06 Nov 1994 08:49:37 GMT"
