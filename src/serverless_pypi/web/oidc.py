"""Trusted publishing at the host root: PyPI's token exchange and PEP 807 discovery.

Routes (full paths at the root of the upload URL's host, outside the index root):

    /_/oidc/audience      GET    {"audience": OIDC_AUDIENCE}
    /_/oidc/mint-token    POST   {"token": <OIDC JWT>} -> {"success": true, "token", "expires"}
    /_/oidc/burn-token    POST   {"token": <minted token>} -> the minted token revoked
    /.well-known/pytp     GET    PEP 807 discovery (`?discover=<upload URL path>`)

PyPI's flow (what `uv publish --trusted-publishing` and the PyPA action run) has no discovery:
clients ask `https://<upload host>/_/oidc/...` directly. PEP 807 (draft, revision of
29-Sep-2025: `/.well-known/pytp?discover=<percent-encoded path>`, `token-mint-endpoint`)
adds the discovery document. Every error is an RFC 9457 problem details object (PEP 807:
"all error responses MUST use RFC 9457") that also carries PyPI's `message` and
`errors: [{code, description}]` as extension members (RFC 9457 section 3.2), which is what
uv and the PyPA action print when a mint is refused: the reason, never the JWT.

The exchange itself (verifying the JWT, matching a publisher, minting the token) is an
`Exchange` handed in by the composition root, imported at the first mint: reads never
import a JOSE library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from serverless_pypi.core.errors import DomainError
from serverless_pypi.core.http import Request, Response
from serverless_pypi.storage.base import StoreError
from serverless_pypi.web.errors import FailureLog, message_of, status_of
from serverless_pypi.web.paths import HOST_ROOT_PATHS

__all__ = [
    "AUDIENCE_PATH",
    "BURN_PATH",
    "DISCOVERY_PATH",
    "HOST_ROOT_PATHS",
    "MINT_PATH",
    "PYTP_MEDIA_TYPE",
    "Exchange",
    "Minted",
    "OidcRoutes",
    "TokenRefused",
    "request_host",
]

AUDIENCE_PATH = "/_/oidc/audience"
MINT_PATH = "/_/oidc/mint-token"
BURN_PATH = "/_/oidc/burn-token"
DISCOVERY_PATH = "/.well-known/pytp"
#: PEP 807's media type, of requests (Accept) and of the discovery document
PYTP_MEDIA_TYPE = "application/vnd.pypi.pytp.v1+json"
_PROBLEM = "application/problem+json"  # RFC 9457 section 3
#: a mint or burn request is one small JSON object (a JWT is a few kilobytes)
MAX_BODY = 64 * 1024
#: PEP 807 "Feature Negotiation": minted tokens serve every upload until they expire
_FEATURES = ["multi-use-token"]
_METHODS = {AUDIENCE_PATH: ("GET", "HEAD"), DISCOVERY_PATH: ("GET", "HEAD")}
_MINT_FAILED = "Token request failed"  # PyPI's `message` of every refused mint
#: RFC 9110 section 7.2: Host = uri-host [ ":" port ]; a DNS name, IPv4 or [IPv6]
_HOST = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))(?::[0-9]{1,5})?$"
)


class TokenRefused(Exception):
    """A mint the index refuses: `code` is machine-readable (PyPI's: `invalid-token`,
    `invalid-publisher`, ...), `description` says why without the JWT."""

    def __init__(self, code: str, description: str, *, status: int = 422) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        #: 422 as PyPI answers; 503 when the issuer could not be asked (try again)
        self.status = status


@dataclass(frozen=True, slots=True)
class Minted:
    """A token minted for a trusted publisher, and when it expires."""

    token: str
    expires: datetime


class Exchange(Protocol):
    """What mints and burns tokens (`web.trusted_publishing.TrustedPublishing`)."""

    def mint(self, jwt: str, audience: str) -> Minted:
        """A token for the publisher `jwt` proves to be; raises TokenRefused."""
        ...

    def burn(self, token: str) -> None:
        """Revoke a minted token (nothing happens for any other string)."""
        ...


class _Problem(Exception):
    """An error answer of these routes (RFC 9457), with PyPI's members."""

    def __init__(
        self,
        status: int,
        title: str,
        errors: Sequence[tuple[str, str]],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.errors = tuple(errors)
        self.headers = dict(headers or {})


def request_host(request: Request) -> str:
    """The request's Host (RFC 9110 section 7.2), lowercased, with its port; 400 when it has
    none or one that is not a host."""
    raw = (request.headers.get("host") or "").strip()
    if not _HOST.match(raw):
        raise _Problem(
            400, "Bad Host header", [("invalid-host", "The request has no usable Host header.")]
        )
    return raw.lower()


def _host_name(host: str) -> str:
    """The host name of a Host value, without its port (and without IPv6 brackets)."""
    return urlsplit("//" + host).hostname or host


def _is_loopback(name: str) -> bool:
    """A loopback host name or address (W3C Secure Contexts: potentially trustworthy)."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    import ipaddress  # discovery only: not on the cold start

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _accepts_pytp(accept: str | None) -> bool:
    """PEP 807: no Accept means its media type; otherwise a range must cover it (q > 0)."""
    if accept is None or not accept.strip():
        return True
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        quality = next((p[2:] for p in params if p.lower().startswith("q=")), "1")
        try:
            if float(quality) <= 0:
                continue
        except ValueError:
            continue
        if media.lower() in (PYTP_MEDIA_TYPE, "application/*", "*/*"):
            return True
    return False


class OidcRoutes:
    """The host-root routes of trusted publishing, answering `Request`s whose `path` is one
    of HOST_ROOT_PATHS.

    `audience`: OIDC_AUDIENCE, or None for the request's host name (without its port).
    `exchange`: builds the minting side at its first use (None: the index takes no uploads,
    and discovery answers 404 as PEP 807 says for an index without trusted publishing).
    `upload_paths`: whether a full path is one the index takes uploads at (PEP 807's
    `discover` parameter names the upload URL's path).
    """

    def __init__(
        self,
        *,
        audience: str | None,
        exchange: Callable[[], Exchange] | None,
        upload_paths: Callable[[str], bool],
    ) -> None:
        self.audience_setting = audience
        self.exchange = exchange
        self.upload_paths = upload_paths
        self._failures = FailureLog()  # store failures logged as the application logs them

    def __call__(self, request: Request) -> Response:
        try:
            return self._route(request)
        except _Problem as e:
            return _problem_response(e)
        except (DomainError, StoreError) as e:
            self._failures.report(e, request.method, "the store of trusted publishing")
            status, headers = status_of(e)
            title = message_of(e)
            return _problem_response(_Problem(status, title, [("error", title)], headers))

    def _route(self, request: Request) -> Response:
        path = request.path
        if path not in HOST_ROOT_PATHS:
            raise _Problem(404, "Not Found", [("not-found", "Nothing is served at this path.")])
        allowed = _METHODS.get(path, ("POST",))
        if request.method not in allowed:
            raise _Problem(
                405,
                "Method not allowed",
                [("method-not-allowed", f"{path} answers {' and '.join(allowed)} only.")],
                {"Allow": ", ".join(allowed)},
            )
        if path == AUDIENCE_PATH:
            return _json(200, {"audience": self.audience(request)})
        if path == DISCOVERY_PATH:
            return self._discovery(request)
        if path == MINT_PATH:
            return self._mint(request)
        return self._burn(request)

    def audience(self, request: Request) -> str:
        """The `aud` JWTs must name: OIDC_AUDIENCE, else the request's host name."""
        if self.audience_setting:
            return self.audience_setting
        return _host_name(request_host(request))

    # -- PEP 807 discovery ---------------------------------------------------------------
    def _discovery(self, request: Request) -> Response:
        if not _accepts_pytp(request.headers.get("accept")):
            raise _Problem(
                406,
                "Not Acceptable",
                [("not-acceptable", f"The discovery document is served as {PYTP_MEDIA_TYPE}.")],
            )
        discover = request.query_param("discover")
        if discover is None:
            raise _Problem(
                400,
                "Missing discover parameter",
                [
                    (
                        "invalid-request",
                        "Ask /.well-known/pytp?discover=<the upload URL's path, "
                        "percent-encoded> (PEP 807).",
                    )
                ],
            )
        if self.exchange is None or not self.upload_paths(discover or "/"):
            # PEP 807: 404 when the index has no trusted publishing for that upload URL
            raise _Problem(
                404,
                "Not Found",
                [("not-found", f"No trusted publishing for uploads to {discover!r} here.")],
            )
        host = request_host(request)
        # PEP 807: https, or a loopback host (which may be plain http: the scheme it came by)
        scheme = request.scheme if _is_loopback(_host_name(host)) else "https"
        base = f"{scheme}://{host}"
        document = {
            "audience-endpoint": base + AUDIENCE_PATH,
            "token-mint-endpoint": base + MINT_PATH,
            "features": _FEATURES,
            "default-features": _FEATURES,
        }
        return _json(200, document, content_type=PYTP_MEDIA_TYPE)

    # -- PyPI's exchange -----------------------------------------------------------------
    def _mint(self, request: Request) -> Response:
        if self.exchange is None:
            raise _refused(404, "not-enabled", "This index takes no uploads.")
        payload = _payload(request)
        jwt = payload.get("token")
        if not isinstance(jwt, str) or not jwt:
            raise _refused(422, "invalid-payload", 'The body must be {"token": "<OIDC JWT>"}.')
        features = payload.get("features", _FEATURES)
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise _refused(422, "invalid-payload", "features must be a list of strings.")
        unsupported = [f for f in features if f not in _FEATURES]
        if unsupported:
            raise _refused(
                422,
                "unsupported-feature",
                f"This index mints {', '.join(_FEATURES)} tokens only, not "
                f"{', '.join(unsupported)} (PEP 807).",
            )
        audience = self.audience(request)
        try:
            minted = self.exchange().mint(jwt, audience)
        except TokenRefused as e:
            raise _refused(e.status, e.code, e.description) from None
        body = {"success": True, "token": minted.token, "expires": int(minted.expires.timestamp())}
        return _json(200, body)

    def _burn(self, request: Request) -> Response:
        payload = _payload(request)
        token = payload.get("token")
        if not isinstance(token, str) or not token:
            raise _refused(422, "invalid-payload", 'The body must be {"token": "<token>"}.')
        if self.exchange is not None:
            self.exchange().burn(token)
        # as PyPI: the same answer whether or not the token was one to revoke
        return _json(200, {"success": True})


def _refused(status: int, code: str, description: str) -> _Problem:
    return _Problem(status, _MINT_FAILED, [(code, description)])


def _body(request: Request) -> bytes:
    """The request body, at most MAX_BODY bytes (413 beyond)."""
    too_large = _refused(413, "invalid-payload", f"The body is over {MAX_BODY} bytes.")
    if request.stream is None:
        if len(request.body) > MAX_BODY:
            raise too_large
        return request.body
    # the local server: a stream of Content-Length bytes (checked to be digits there)
    raw = request.headers.get("content-length") or "0"
    length = int(raw) if raw.isascii() and raw.isdigit() else 0
    if length > MAX_BODY:
        raise too_large
    return request.stream.read(length)


def _payload(request: Request) -> dict[str, Any]:
    """The JSON object of the body; 422 `invalid-payload` (as PyPI) for anything else."""
    try:
        payload = json.loads(_body(request))
    except (ValueError, UnicodeDecodeError):
        payload = None
    if not isinstance(payload, dict):
        raise _refused(422, "invalid-payload", "The body is not a JSON object.")
    return payload


def _json(
    status: int, document: Mapping[str, Any], *, content_type: str = "application/json"
) -> Response:
    """A JSON answer; never cached (an audience or a token is no page). The fronts drop the
    body of a HEAD."""
    headers = {"Content-Type": content_type, "Cache-Control": "no-store"}
    return Response(status, headers, json.dumps(document).encode())


def _problem_response(problem: _Problem) -> Response:
    """RFC 9457 section 3.1 members, and PyPI's `message` and `errors` beside them."""
    document = {
        "type": "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": "; ".join(d for _, d in problem.errors),
        "message": problem.title,
        "errors": [{"code": c, "description": d} for c, d in problem.errors],
    }
    response = _json(problem.status, document, content_type=_PROBLEM)
    response.headers.update(problem.headers)
    return response
