"""HTTP for the upload client: the standard library's `urllib.request`, no redirects.

Requests to the index carry its credentials; requests to any other origin (the presigned S3
URLs) never do. An HTTP error status is an `Answer`; no answer at all is a `TransportError`.
`error_text` tells an error answer in one line. SSL_CERT_FILE and the proxy variables apply.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from serverless_pypi import __version__
from serverless_pypi.upload_client.errors import UploadError
from serverless_pypi.upload_client.protocol import MEDIA_TYPE

__all__ = ["ATTEMPTS", "LONG_TIMEOUT", "TIMEOUT", "Answer", "Http", "TransportError", "error_text"]

ATTEMPTS = 3  # each part PUT (and the http-post-bytes POST) is tried this often
TIMEOUT = 120.0  # seconds for one request
#: complete and publish: the index reads the whole file (or release) before it answers
LONG_TIMEOUT = 900.0
USER_AGENT = f"serverless-pypi/{__version__} (upload; PEP 694)"


@dataclass(frozen=True)
class Answer:
    """A response: status, headers (names lowercased), body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; {} for any other body."""
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def location(self) -> str | None:
        return self.headers.get("location")

    def retry_after(self) -> float:
        """Retry-After in seconds (RFC 9110 section 10.2.3; 1 when absent, at most 30)."""
        raw = self.headers.get("retry-after", "1").strip()
        return min(30.0, float(raw)) if raw.isdigit() else 1.0


class TransportError(UploadError):
    """The request got no answer (refused connection, reset, timeout)."""


def error_text(answer: Answer) -> str:
    """What an error answer says: the PEP's `message` and `errors`, an RFC 9457 `detail`, else
    the start of the body."""
    data = answer.json()
    if data:
        said = [str(data.get(k)) for k in ("message", "detail", "title") if data.get(k)]
        text = said[0] if said else ""
        for error in data.get("errors") or ():
            detail = error.get("message") if isinstance(error, dict) else None
            if detail and str(detail) not in text:
                text += f" ({detail})"
        if text:
            return f"HTTP {answer.status}: {text}"
    body = answer.body[:300].decode("utf-8", "replace").strip().splitlines()
    return f"HTTP {answer.status}: " + (body[0] if body else "no explanation given")


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower().rsplit("@", 1)[-1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Answers are taken as they come: a 3xx is the index's answer, not a place to go."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Http:
    """Requests to the index (with its credentials) and to presigned URLs (without)."""

    def __init__(self, index_url: str, authorization: str | None = None) -> None:
        self.origin = _origin(index_url)
        self.authorization = authorization
        self.opener = urllib.request.build_opener(_NoRedirect)

    def send(
        self,
        method: str,
        url: str,
        *,
        data: bytes | IO[bytes] | io.RawIOBase | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT,
    ) -> Answer:
        """One request; an HTTP error status is an Answer, no answer at all TransportError."""
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("User-Agent", USER_AGENT)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        if data is not None and not request.has_header("Content-type"):
            # urllib would say application/x-www-form-urlencoded, which bytes never are
            request.add_header("Content-Type", "application/octet-stream")
        if self.authorization and _origin(url) == self.origin:
            # only the index's own origin gets the credentials: never S3 or another host
            request.add_header("Authorization", self.authorization)
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return Answer(response.status, _headers(response.headers), response.read())
        except urllib.error.HTTPError as e:
            with e:
                return Answer(e.code, _headers(e.headers), e.read())
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TransportError(f"{method} {_redact(url)}: no answer ({reason})") from None

    def api(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float = TIMEOUT,
    ) -> Answer:
        """A request of the session API: JSON in PEP 694's media type, asking for it back."""
        headers = {"Accept": MEDIA_TYPE}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = MEDIA_TYPE
        return self.send(method, url, data=data, headers=headers, timeout=timeout)


def _headers(message: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in (message or {}).items()}


def _redact(url: str) -> str:
    """A URL without its query (a presigned URL's signature) or user information."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
