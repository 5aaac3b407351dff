"""Trusted publishing's host-root routes through a REST API whose custom domain maps its root
to the stage: API Gateway hands the function the path below the stage (`_/oidc/audience`),
which the adapter must read as the host-root route, not as a project name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from serverless_pypi.auth.publishers import (
    GITHUB_ISSUER,
    PublisherStore,
    github_publisher,
    oidc_publisher,
)
from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.core.config import ConfigError, Settings
from serverless_pypi.storage import Store
from tests.contract.test_oidc_routes import function, lambda_doc
from tests.helpers.lambda_events import event, handle
from tests.helpers.oidc import LocalIssuer

__all__ = ["function"]  # the fixture: the API function over a fresh bucket, used by name

FRONT = "rest_api_custom_domain"
HOST = "pypi.example.com"


def rest_event(route: str, *, method: str = "GET", body: Any = None) -> dict[str, Any]:
    data = event(FRONT, route, method=method, headers={"Accept": "*/*", "Host": HOST})
    if body is not None:
        data["body"] = json.dumps(body)
        data["isBase64Encoded"] = False
        data["headers"]["Content-Type"] = "application/json"
        data["multiValueHeaders"]["Content-Type"] = ["application/json"]
    return data


def test_a_rest_api_serves_the_audience_and_discovery(function: Store) -> None:
    audience = handle(rest_event("_/oidc/audience"))
    assert audience["statusCode"] == 200, audience["body"]
    assert lambda_doc(audience) == {"audience": HOST}
    found = handle(rest_event("_/oidc/mint-token"))  # a GET: the route, not a project page
    assert found["statusCode"] == 405
    # a project page still answers as before, and a path that is no host-root route stays one
    assert handle(rest_event("_/oidc/elsewhere"))["statusCode"] in (400, 404)
    assert handle(rest_event("my-pkg/"))["statusCode"] == 404


def test_a_rest_api_mints_and_burns(function: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OIDC_AUDIENCE", "acme-index")
    with LocalIssuer() as issuer:
        publisher = oidc_publisher(issuer.issuer, {"repository": "acme/app"}, projects=["acme-app"])
        PublisherStore(function).add(publisher)
        jwt = issuer.github_token("acme-index")
        minted = handle(rest_event("_/oidc/mint-token", method="POST", body={"token": jwt}))
    assert minted["statusCode"] == 200, minted["body"]
    token = lambda_doc(minted)["token"]
    burned = handle(rest_event("_/oidc/burn-token", method="POST", body={"token": token}))
    assert burned["statusCode"] == 200
    records, _ = TokenStore(function).read()
    assert not [r for r in records.values() if r.publisher == publisher.id]


# -- OIDC_READ_TOKEN_TTL: the lifetime of read tokens minted for read publishers -------------------


def test_oidc_read_token_ttl_sets_the_read_tokens_lifetime(local_store: Store) -> None:
    from serverless_pypi.web import oidc as routes
    from tests.contract.test_oidc_routes import HOST as APP_HOST
    from tests.contract.test_oidc_routes import app_over, doc, post_json

    with LocalIssuer(issuer=GITHUB_ISSUER) as issuer:
        reader = github_publisher("acme/app", "release.yml", projects=["acme-*"], scope="read")
        PublisherStore(local_store).add(reader)
        app = app_over(local_store, issuer, require_auth_for_read=True, oidc_read_token_ttl=3600)
        before = datetime.now(UTC).timestamp()
        answer = post_json(app, routes.MINT_PATH, {"token": issuer.github_token(APP_HOST)})
    assert answer.status == 200, answer.body
    minted = doc(answer)
    records, _ = TokenStore(local_store).read()
    [record] = [r for r in records.values() if minted["token"].startswith(f"spypi_{r.id}_")]
    assert record.scope == "read"
    assert before + 3599 <= minted["expires"] <= datetime.now(UTC).timestamp() + 3601


@pytest.mark.parametrize("value", ["59", "43201", "soon"])
def test_oidc_read_token_ttl_out_of_bounds_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="OIDC_READ_TOKEN_TTL"):
        Settings.from_env({"OIDC_READ_TOKEN_TTL": value})
