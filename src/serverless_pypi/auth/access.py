"""Who may read and who may upload: HTTP Basic with an API token as the password.

Clients send `Authorization: Basic base64("__token__:<token>")` (RFC 7617): pip and uv from
credentials in the index URL, netrc or keyring; `twine -u __token__ -p <token>`;
`uv publish -t <token>`.

- Reads are open unless REQUIRE_AUTH_FOR_READ is set; then a read without a valid token gets
  401 with `WWW-Authenticate: Basic` (RFC 9110 section 11.6.1), which makes pip and uv look up
  credentials and retry. A valid token that does not cover the project gets 403.
- Uploads always need a write token that covers the project; failures get 403, as on PyPI.

The application runs this check before it answers, so a download is redirected to a
presigned URL only after it passed.
"""

from __future__ import annotations

import base64
import binascii

from serverless_pypi.auth.tokens import TokenCache, TokenRecord
from serverless_pypi.core.config import Settings
from serverless_pypi.core.http import Request, Response, error
from serverless_pypi.core.names import NormalizedName

__all__ = ["REALM", "USERNAME", "AccessControl", "basic_credentials"]

REALM = "serverless-pypi"
USERNAME = "__token__"
#: a longer header is not a token we issued
_MAX_AUTHORIZATION = 1024


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """`(username, password)` from an `Authorization: Basic` header (RFC 7617), else None."""
    header = request.headers.get("authorization")
    if not header or len(header) > _MAX_AUTHORIZATION:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


class AccessControl:
    """The application's access check (reads) and the upload handler's (writes)."""

    def __init__(self, tokens: TokenCache, settings: Settings) -> None:
        self.tokens = tokens
        self.settings = settings

    def _token(self, request: Request) -> tuple[TokenRecord | None, str]:
        """The valid token a request carries, or None and why not."""
        credentials = basic_credentials(request)
        if credentials is None:
            return None, (
                "no credentials: send username __token__ and an API token as the password "
                "(HTTP Basic)"
            )
        username, password = credentials
        if username != USERNAME:
            return None, f"use the username {USERNAME} with an API token as the password"
        token = self.tokens.verify(password)
        if token is None:
            return None, "the token is not valid: it is unknown, revoked or expired"
        return token, ""

    def __call__(
        self, request: Request, scope: str, project: NormalizedName | None
    ) -> Response | None:
        """The check before a read (`scope` "read"): None lets the request through."""
        if scope == "read" and not self.settings.require_auth_for_read:
            return None
        token, why = self._token(request)
        if token is None:
            return error(
                401,
                f"This index requires a token to read: {why}.",
                {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            )
        if not token.allows("write" if scope == "write" else "read", project):
            what = f"project {project!r}" if project else "the project list"
            return error(403, f"The token {token.id} does not grant access to {what}.")
        return None

    def check_upload(self, request: Request, project: NormalizedName | None) -> Response | None:
        """None if the request may upload to `project` (None: to some project), else a 403."""
        token, why = self._token(request)
        if token is None:
            return error(403, f"Invalid or non-existent authentication information: {why}.")
        if token.scope != "write":
            return error(403, f"The token {token.id} can only read: uploads need a write token.")
        if project is not None and not token.allows("write", project):
            return error(
                403,
                f"The token {token.id} may not upload to project {project!r} "
                f"(it covers {token.describe_projects()}).",
            )
        return None
