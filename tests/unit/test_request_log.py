"""The local server's log: a request line written directly is the line a record would give."""

from __future__ import annotations

import io
import logging

from serverless_pypi.adapters.server import REQUEST_FORMAT, EscapingFormatter, GroupWriteHandler


def test_request_line_is_formatted_as_a_record_would_be() -> None:
    out = io.StringIO()
    handler = GroupWriteHandler(out)
    handler.setFormatter(EscapingFormatter(REQUEST_FORMAT))
    message = "GET /simple/\x1b[31m/ 404 0.3ms"
    handler.emit(logging.LogRecord("x", logging.INFO, __file__, 0, message, None, None))
    handler.request_line(message)
    by_record, direct = out.getvalue().splitlines()
    # the same but for the milliseconds of the time stamp
    assert (
        by_record.split(" ", 2)[2]
        == direct.split(" ", 2)[2]
        == ("INFO GET /simple/\\x1b[31m/ 404 0.3ms")
    )
    assert len(by_record.split(" ", 2)[1]) == len(direct.split(" ", 2)[1]) == len("11:29:04,384")
