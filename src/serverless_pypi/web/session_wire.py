"""The wire format of the Upload 2.0 session API (PEP 694): its media type and constants, its
own refusals, content negotiation, and the JSON and error answers.

Bodies are `application/vnd.pypi.upload.v2+json` with `"meta": {"api-version": "2.0"}`; an
Accept that refuses the media type is answered 406 (`accepts`). Errors carry the PEP's
`message` and `errors` and the RFC 9457 members (`type`, `title`, `status`, `detail`) in one
object, in the same media type (`problem_answer`). Reading request bodies is
`web.session_requests`; the session bodies are `web.session_bodies`; the routes are
`web.sessions`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from serverless_pypi.core.errors import Conflict, DomainError
from serverless_pypi.core.http import Request, Response
from serverless_pypi.core.metadata import MAX_METADATA_SIZE
from serverless_pypi.core.negotiate import parse_accept
from serverless_pypi.storage.base import StoreError
from serverless_pypi.web.errors import message_of, status_of

__all__ = [
    "API_VERSION",
    "LATEST_MEDIA_TYPE",
    "MAX_JSON_BODY",
    "MAX_PARTS_PER_REQUEST",
    "MAX_URL_LIFETIME",
    "MEDIA_TYPE",
    "META",
    "POST_BYTES",
    "RETRY_AFTER",
    "S3_MECHANISM",
    "Located",
    "NotAcceptable",
    "Problem",
    "Unprocessable",
    "UnsupportedMediaType",
    "accepts",
    "json_answer",
    "problem_answer",
]

MEDIA_TYPE = "application/vnd.pypi.upload.v2+json"
#: PEP 691's alias, which PEP 694 inherits: the newest version the server speaks
LATEST_MEDIA_TYPE = "application/vnd.pypi.upload.latest+json"
API_VERSION = "2.0"
META = {"api-version": API_VERSION}
#: the mechanism every server implements (PEP 694 "http-post-bytes")
POST_BYTES = "http-post-bytes"
#: ours (PEP 694 "Server-specific mechanisms": `vnd-<operator>-<implementation>`): presigned
#: S3 multipart part URLs, so a file's bytes go from the client to S3 (docs/upload-sessions.md)
S3_MECHANISM = "vnd-serverlesspypi-s3multipart-presigned-v1"
#: part numbers one `POST parts_url` may ask URLs for
MAX_PARTS_PER_REQUEST = 1000
#: the longest a presigned part URL lives, seconds
MAX_URL_LIFETIME = 3600
#: the largest JSON body: a file upload session may carry the file's core metadata
MAX_JSON_BODY = MAX_METADATA_SIZE + 64 * 1024
#: PEP 694: a file upload session's answer says when to poll again (Retry-After, seconds)
RETRY_AFTER = "1"


class NotAcceptable(DomainError):
    """The request's Accept refuses `application/vnd.pypi.upload.v2+json` (406)."""


class UnsupportedMediaType(DomainError):
    """A body that is not the media type the route reads (415)."""


class Unprocessable(DomainError):
    """A file upload mechanism the index does not offer for this file (PEP 694: 422)."""


def _own_statuses() -> dict[type[Exception], int]:
    """The statuses of this API's own refusals (the rest: `web.errors.STATUSES`)."""
    from serverless_pypi.index.sessions import UnsupportedMechanism

    return {
        NotAcceptable: 406,
        UnsupportedMediaType: 415,
        Unprocessable: 422,
        UnsupportedMechanism: 422,  # PEP 694: a mechanism the index does not offer
    }


class Problem(Exception):
    """A refusal with the member of the request it is about (`errors[].source`)."""

    def __init__(self, error: DomainError | StoreError, source: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.source = source


class Located(Conflict):
    """A 409 that names the resource it conflicts with (PEP 694: Location of the session)."""

    def __init__(self, message: str, location: str | None) -> None:
        super().__init__(message)
        self.location = location


def problem_answer(error: DomainError | StoreError, source: str, location: str | None) -> Response:
    """The error answer: PEP 694's body plus RFC 9457's members, in the API's media type."""
    own = [s for cls, s in _own_statuses().items() if isinstance(error, cls)]
    status, headers = (own[0], {}) if own else status_of(error)
    message = message_of(error)
    body = {
        "meta": META,
        "message": message,
        "errors": [{"source": source, "message": message}],
        # RFC 9457 section 4.2.1: "about:blank", the title is the status's phrase
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": message,
    }
    if location is not None:
        headers = {**headers, "Location": location}
    return json_answer(status, body, headers)


def json_answer(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        status,
        {"Content-Type": MEDIA_TYPE, "Cache-Control": "no-store", **(headers or {})},
        json.dumps(body, indent=2, sort_keys=True).encode() + b"\n",
    )


def accepts(request: Request) -> bool:
    """Whether Accept allows the API's media type (RFC 9110 section 12.5.1; PEP 691's
    server-driven negotiation, which PEP 694 keeps): none at all accepts everything."""
    ranges = parse_accept(request.headers.get("accept"))
    best = (0, 0.0)
    for media in (MEDIA_TYPE, LATEST_MEDIA_TYPE):
        for media_range in ranges:
            specificity = media_range.matches(media)
            if specificity > best[0]:
                best = (specificity, media_range.q)
    return best[1] > 0
