"""Who may read and who may upload: HTTP Basic with an API token as the password.

Clients send `Authorization: Basic base64("__token__:<token>")` (RFC 7617): pip and uv from
credentials in the index URL, netrc or keyring; `twine -u __token__ -p <token>`;
`uv publish -t <token>`.

- Reads are open unless REQUIRE_AUTH_FOR_READ is set; then a read without a valid token gets
  401 with `WWW-Authenticate: Basic` (RFC 9110 section 11.6.1), which makes pip and uv look up
  credentials and retry. A valid token that does not cover the project gets 403.
- Uploads always need a write token that covers the project; failures get 403, as on PyPI.

The checks raise Unauthenticated (401) or Forbidden (403) to refuse, and return to let the
request through; the web layer's error table turns the refusal into the answer. The
application runs the read check before it answers, so a download is redirected to a
presigned URL only after it passed.
"""

from __future__ import annotations

import base64
import binascii

from serverless_pypi.auth.tokens import TokenCache, TokenRecord
from serverless_pypi.core.config import Settings
from serverless_pypi.core.errors import Conflict, Forbidden, Unauthenticated
from serverless_pypi.core.http import Request
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

    def __call__(self, request: Request, scope: str, project: NormalizedName | None) -> None:
        """The check before a read (`scope` "read"): returns to let the request through.

        Raises Unauthenticated without a valid token, Forbidden for one that does not cover
        `project` (None: the project list).
        """
        if scope == "read" and not self.settings.require_auth_for_read:
            return
        token, why = self._token(request)
        if token is None:
            raise Unauthenticated(f"This index requires a token to read: {why}.", REALM)
        if not token.allows("write" if scope == "write" else "read", project):
            what = f"project {project!r}" if project else "the project list"
            raise Forbidden(f"The token {token.id} does not grant access to {what}.")

    def check_upload(self, request: Request, project: NormalizedName | None) -> None:
        """Returns if the request may upload to `project` (None: to some project), else
        raises Forbidden (as PyPI: a 403, not a challenge, for missing credentials too)."""
        token, why = self._token(request)
        if token is None:
            raise Forbidden(f"Invalid or non-existent authentication information: {why}.")
        if token.scope != "write":
            raise Forbidden(f"The token {token.id} can only read: uploads need a write token.")
        if project is not None and not token.allows("write", project):
            raise Forbidden(
                f"The token {token.id} may not upload to project {project!r} "
                f"(it covers {token.describe_projects()})."
            )

    def minted_by(self, request: Request) -> str | None:
        """The id of the trusted publisher whose OIDC token minted the request's token (the
        identity its PEP 740 attestations must carry); None for an ordinary token."""
        token, _ = self._token(request)
        return token.publisher if token is not None else None

    def check_namespace(self, request: Request, project: NormalizedName, namespace: str) -> None:
        """Returns if the request's token covers the PEP 752 namespace `project` is in, else
        raises Conflict (the PEP's 409: the namespace belongs to whoever holds it whole).

        Runs after `check_upload`: the token is valid and may write `project`.
        """
        token, why = self._token(request)
        if token is None:
            raise Forbidden(f"Invalid or non-existent authentication information: {why}.")
        if not token.covers_namespace(namespace):
            raise Conflict(
                f"The project {project!r} is in the namespace {namespace!r} (PEP 752): "
                f"uploads into it need a token that covers the whole namespace (every "
                f"project, or a pattern such as '{namespace}-*'); the token {token.id} "
                f"covers {token.describe_projects()}."
            )
