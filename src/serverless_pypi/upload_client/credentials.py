"""What the upload client sends as credentials: a token, or one minted by trusted publishing.

A token goes as twine sends it (HTTP Basic, user `__token__`), also when it is written into the
index URL. Trusted publishing is PyPI's exchange: the CI job's OIDC token for the index's
audience is traded for a short-lived token, which is revoked once the uploads are done.
"""

from __future__ import annotations

import base64
import contextlib
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from serverless_pypi.upload_client.errors import UploadError
from serverless_pypi.upload_client.transport import Answer, Http, error_text

__all__ = ["basic_authorization", "burn_token", "mint_token", "split_credentials"]


def basic_authorization(token: str) -> str:
    """A token as twine sends it: HTTP Basic (RFC 7617) with the user name `__token__`."""
    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


def split_credentials(url: str) -> tuple[str, str | None]:
    """`https://__token__:T@host/simple/` -> the URL without `__token__:T@`, and T."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url, None
    host = parts.netloc.rsplit("@", 1)[-1]
    bare = urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    return bare, urllib.parse.unquote(parts.password)


# -- trusted publishing ----------------------------------------------------------------------


def _host_root(index_url: str) -> str:
    parts = urllib.parse.urlsplit(index_url)
    return f"{parts.scheme}://{parts.netloc}"


def _json_of(answer: Answer, what: str) -> dict[str, Any]:
    if answer.status != 200:
        raise UploadError(f"{what}: {error_text(answer)}")
    return answer.json()


def _ci_oidc_token(http: Http, audience: str, environ: Mapping[str, str]) -> str:
    """The CI job's OIDC token for `audience`: GitHub Actions' token request, else
    SERVERLESS_PYPI_OIDC_TOKEN (GitLab CI: an `id_tokens` entry with that name)."""
    url, bearer = (
        environ.get("ACTIONS_ID_TOKEN_REQUEST_URL"),
        environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    )
    if url and bearer:
        answer = http.send(
            "GET",
            f"{url}&audience={urllib.parse.quote(audience)}",
            headers={"Authorization": f"bearer {bearer}", "Accept": "application/json"},
        )
        value = _json_of(answer, "GitHub's OIDC token request").get("value")
        if isinstance(value, str) and value:
            return value
        raise UploadError("GitHub's OIDC token request gave no token")
    token = environ.get("SERVERLESS_PYPI_OIDC_TOKEN", "").strip()
    if token:
        return token
    raise UploadError(
        "--trusted-publishing needs an OIDC token: run in GitHub Actions with `permissions: "
        "id-token: write`, or set SERVERLESS_PYPI_OIDC_TOKEN (GitLab CI: id_tokens)"
    )


def mint_token(index_url: str, environ: Mapping[str, str]) -> str:
    """Trusted publishing as PyPI's: the audience, the CI's OIDC token, a minted token."""
    root = _host_root(index_url)
    http = Http(index_url)
    audience = _json_of(http.send("GET", root + "/_/oidc/audience"), "the OIDC audience")
    jwt = _ci_oidc_token(http, str(audience.get("audience") or ""), environ)
    answer = http.send(
        "POST",
        root + "/_/oidc/mint-token",
        data=json.dumps({"token": jwt}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    token = _json_of(answer, "the token exchange").get("token")
    if not isinstance(token, str) or not token:
        raise UploadError("the token exchange gave no token")
    return token


def burn_token(index_url: str, token: str) -> None:
    """Revoke a minted token once the uploads are done (a failure changes nothing)."""
    with contextlib.suppress(UploadError):
        Http(index_url).send(
            "POST",
            _host_root(index_url) + "/_/oidc/burn-token",
            data=json.dumps({"token": token}).encode(),
            headers={"Content-Type": "application/json"},
        )
