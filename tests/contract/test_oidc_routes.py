"""Trusted publishing at the host root: PyPI's audience, mint-token and burn-token routes and
PEP 807 discovery, on the application, the Lambda handler's function-URL and HTTP API events,
and the local server.

Mints use a real local OIDC issuer (tests/helpers/oidc.py): RS256 keys made with joserfc, its
discovery document and JWKS read in-process (`fetch`) or over HTTP (the Lambda handler).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from serverless_pypi.auth.publishers import PublisherStore, github_publisher, oidc_publisher
from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.core.errors import NoSuchPath
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.storage import Store
from serverless_pypi.web import oidc as routes
from serverless_pypi.web.app import Application
from serverless_pypi.web.paths import HOST_ROOT_PATHS, index_route
from tests.helpers.lambda_events import CONFIG, fresh_environment, handle, load
from tests.helpers.oidc import GITHUB_ISSUER, LocalIssuer, tampered, unsigned
from tests.helpers.servers import create_bucket

HOST = "pypi.example.com"
PYTP = "application/vnd.pypi.pytp.v1+json"


def request(
    method: str,
    path: str,
    *,
    body: bytes = b"",
    query: str = "",
    host: str | None = HOST,
    headers: dict[str, str] | None = None,
    scheme: str = "https",
) -> Request:
    fields = {"host": host} if host is not None else {}
    return Request(method, path, query, Headers({**fields, **(headers or {})}), body, scheme=scheme)


def post_json(app: Application, path: str, document: Any, **kw: Any) -> Response:
    return app.handle(request("POST", path, body=json.dumps(document).encode(), **kw))


def doc(response: Response) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.body)
    return data


def refusal(response: Response, status: int = 422) -> tuple[str, str]:
    """The (code, description) of an error answer, checked to be RFC 9457 with PyPI's
    members."""
    assert response.status == status, response.body
    assert response.headers["Content-Type"] == "application/problem+json"
    data = doc(response)
    assert data["status"] == status and data["type"] == "about:blank" and data["title"]
    assert data["message"] == data["title"]
    [error] = data["errors"]
    assert data["detail"] == error["description"]
    return error["code"], error["description"]


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    """A GitHub stand-in: `iss` is GitHub's, its documents read in-process."""
    with LocalIssuer(issuer=GITHUB_ISSUER) as local:
        yield local


def app_over(store: Store, issuer: LocalIssuer | None = None, **settings: Any) -> Application:
    return build_application(
        store, Settings(**settings), oidc_fetch=issuer.fetch if issuer is not None else None
    )


def add_github(store: Store, **kw: Any) -> str:
    publisher = github_publisher(
        "acme/app", "release.yml", owner_id="1234567", projects=["acme-*"], **kw
    )
    return PublisherStore(store).add(publisher).id


# -- routing ----------------------------------------------------------------------------------


def test_the_host_root_paths_are_the_routes_served() -> None:
    assert {
        routes.AUDIENCE_PATH,
        routes.MINT_PATH,
        routes.BURN_PATH,
        routes.DISCOVERY_PATH,
    } == HOST_ROOT_PATHS
    for path in HOST_ROOT_PATHS:
        assert index_route(path) == path  # passed on whole, outside the index root
    assert index_route("/simple/_/oidc/audience") == "_/oidc/audience"  # below it: a name


def test_no_route_below_the_index_root_reaches_the_host_root() -> None:
    with pytest.raises(NoSuchPath):
        index_route("/simple//_/oidc/audience")
    with pytest.raises(NoSuchPath):
        index_route("/_/oidc/other")


def test_an_application_without_host_routes_answers_404(local_store: Store) -> None:
    app = Application(app_over(local_store).repository)
    assert app.handle(request("GET", routes.AUDIENCE_PATH)).status == 404


# -- the audience --------------------------------------------------------------------------------


def test_the_audience_is_the_host_name_without_its_port(local_store: Store) -> None:
    app = app_over(local_store)
    for host, audience in (
        (HOST, HOST),
        ("PyPI.Example.com:8443", "pypi.example.com"),
        ("127.0.0.1:8080", "127.0.0.1"),
        ("[::1]:8080", "::1"),
    ):
        response = app.handle(request("GET", routes.AUDIENCE_PATH, host=host))
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["Cache-Control"] == "no-store"
        assert doc(response) == {"audience": audience}


def test_oidc_audience_sets_the_audience(local_store: Store) -> None:
    app = app_over(local_store, oidc_audience="serverless-pypi")
    assert doc(app.handle(request("GET", routes.AUDIENCE_PATH))) == {"audience": "serverless-pypi"}
    assert Settings.from_env({"OIDC_AUDIENCE": " acme-index "}).oidc_audience == "acme-index"
    assert Settings.from_env({}).oidc_audience is None


def test_a_request_without_a_usable_host_is_refused(local_store: Store) -> None:
    app = app_over(local_store)
    for host in (None, "", "bad host", "example.com:port"):
        response = app.handle(request("GET", routes.AUDIENCE_PATH, host=host))
        code, _ = refusal(response, 400)
        assert code == "invalid-host"


def test_only_the_routes_methods_are_answered(local_store: Store) -> None:
    app = app_over(local_store)
    for method, path, allow in (
        ("POST", routes.AUDIENCE_PATH, "GET, HEAD"),
        ("DELETE", routes.DISCOVERY_PATH, "GET, HEAD"),
        ("GET", routes.MINT_PATH, "POST"),
        ("PUT", routes.BURN_PATH, "POST"),
    ):
        response = app.handle(request(method, path))
        code, _ = refusal(response, 405)
        assert code == "method-not-allowed"
        assert response.headers["Allow"] == allow
    assert app.handle(request("HEAD", routes.AUDIENCE_PATH)).status == 200


# -- PEP 807 discovery ------------------------------------------------------------------------


def discover(app: Application, path: str, **kw: Any) -> Response:
    from urllib.parse import quote_plus

    return app.handle(
        request("GET", routes.DISCOVERY_PATH, query=f"discover={quote_plus(path)}", **kw)
    )


def test_discovery_names_the_endpoints_on_the_same_host(local_store: Store) -> None:
    app = app_over(local_store)
    for upload_path in ("/legacy/", "/", "", "/simple/"):
        response = discover(app, upload_path, headers={"Accept": PYTP})
        assert response.status == 200, upload_path
        assert response.headers["Content-Type"] == PYTP
        assert doc(response) == {
            "audience-endpoint": f"https://{HOST}/_/oidc/audience",
            "token-mint-endpoint": f"https://{HOST}/_/oidc/mint-token",
            "features": ["multi-use-token"],
            "default-features": ["multi-use-token"],
        }


def test_discovery_keeps_the_port_and_a_loopback_hosts_own_scheme(local_store: Store) -> None:
    app = app_over(local_store)
    found = doc(discover(app, "/legacy/", host="127.0.0.1:8080", scheme="http"))
    assert found["token-mint-endpoint"] == "http://127.0.0.1:8080/_/oidc/mint-token"
    # PEP 807: https for every other host, whatever the hop before the index used
    found = doc(discover(app, "/legacy/", host="pypi.example.com:8443", scheme="http"))
    assert found["audience-endpoint"] == "https://pypi.example.com:8443/_/oidc/audience"


def test_discovery_accepts_its_media_type_and_refuses_others(local_store: Store) -> None:
    app = app_over(local_store)
    for accept in (PYTP, "*/*", "application/*", f"text/html;q=0.5, {PYTP}", ""):
        assert discover(app, "/legacy/", headers={"Accept": accept}).status == 200, accept
    for accept in ("text/html", "application/json", f"{PYTP};q=0"):
        code, _ = refusal(discover(app, "/legacy/", headers={"Accept": accept}), 406)
        assert code == "not-acceptable"


def test_discovery_answers_404_where_no_upload_is_taken(local_store: Store) -> None:
    app = app_over(local_store)
    for path in ("/simple/my-pkg/", "/upload/", "/other"):
        code, _ = refusal(discover(app, path), 404)
        assert code == "not-found"
    reads_only = build_application(local_store, Settings(), uploads=False)
    refusal(discover(reads_only, "/legacy/"), 404)
    missing = app.handle(request("GET", routes.DISCOVERY_PATH))
    code, description = refusal(missing, 400)
    assert "discover=" in description


# -- minting ----------------------------------------------------------------------------------


def test_bad_mint_bodies_are_refused_with_the_reason(local_store: Store) -> None:
    app = app_over(local_store)
    for body in (b"", b"not json", b"[1]", b'{"token": 5}', b'{"token": ""}', b"\xff"):
        code, _ = refusal(app.handle(request("POST", routes.MINT_PATH, body=body)))
        assert code == "invalid-payload", body
    big = json.dumps({"token": "x" * routes.MAX_BODY}).encode()
    code, _ = refusal(app.handle(request("POST", routes.MINT_PATH, body=big)), 413)
    assert code == "invalid-payload"
    bad_features = post_json(app, routes.MINT_PATH, {"token": "a.b.c", "features": "all"})
    assert refusal(bad_features)[0] == "invalid-payload"
    single = post_json(app, routes.MINT_PATH, {"token": "a.b.c", "features": ["single-use-token"]})
    code, description = refusal(single)
    assert code == "unsupported-feature" and "single-use-token" in description


def test_a_mint_gives_a_15_minute_token_for_the_publishers_projects(
    store: Store, issuer: LocalIssuer
) -> None:
    publisher = add_github(store)
    app = app_over(store, issuer)
    jwt = issuer.github_token(HOST)
    before = datetime.now(UTC).timestamp()
    response = post_json(app, routes.MINT_PATH, {"token": jwt})
    assert response.status == 200, response.body
    minted = doc(response)
    assert minted["success"] is True and isinstance(minted["expires"], int)
    assert before + 899 <= minted["expires"] <= datetime.now(UTC).timestamp() + 901
    records, _ = TokenStore(store).read()
    [record] = [r for r in records.values() if minted["token"].startswith(f"spypi_{r.id}_")]
    assert record.publisher == publisher
    assert record.scope == "write" and record.projects == ("acme-*",)
    # PEP 807's `features`, when sent, asks for what is minted anyway
    again = issuer.github_token(HOST)
    asked = post_json(app, routes.MINT_PATH, {"token": again, "features": ["multi-use-token"]})
    assert asked.status == 200


def test_refused_mints_say_why_and_never_echo_the_jwt(
    local_store: Store, issuer: LocalIssuer
) -> None:
    add_github(local_store)
    app = app_over(local_store, issuer)
    used = issuer.github_token(HOST)
    assert post_json(app, routes.MINT_PATH, {"token": used}).status == 200
    cases = {
        "replayed": (used, "invalid-reuse-token", "once"),
        "wrong repository": (
            issuer.github_token(HOST, repository="evil/app"),
            "invalid-publisher",
            "repository: expected acme/app",
        ),
        "owner id changed": (
            issuer.github_token(HOST, owner_id="999"),
            "invalid-publisher",
            "repository_owner_id: expected 1234567",
        ),
        "wrong audience": (issuer.github_token("elsewhere.example"), "invalid-token", ""),
        "tampered": (
            tampered(issuer.github_token(HOST), repository="acme/app2"),
            "invalid-token",
            "",
        ),
        "alg none": (
            unsigned({"iss": GITHUB_ISSUER, "aud": HOST, "exp": 2**31}),
            "invalid-token",
            "none",
        ),
        "not a JWT": ("garbage", "invalid-payload", "not a JWT"),
    }
    for name, (jwt, expected_code, words) in cases.items():
        response = post_json(app, routes.MINT_PATH, {"token": jwt})
        code, description = refusal(response)
        assert code == expected_code, (name, description)
        assert words in description, (name, description)
        for part in jwt.split("."):
            if len(part) > 8:
                assert part.encode() not in response.body, name


def test_an_issuer_that_does_not_answer_is_a_503(local_store: Store) -> None:
    add_github(local_store)
    with LocalIssuer(issuer=GITHUB_ISSUER) as github:

        def down(url: str) -> bytes:
            raise OSError("connection refused")

        app = build_application(local_store, Settings(), oidc_fetch=down)
        response = post_json(app, routes.MINT_PATH, {"token": github.github_token(HOST)})
    code, _ = refusal(response, 503)
    assert code == "issuer-unavailable"


# -- burning ----------------------------------------------------------------------------------


def test_burn_revokes_a_minted_token_and_nothing_else(
    local_store: Store, issuer: LocalIssuer
) -> None:
    add_github(local_store)
    app = app_over(local_store, issuer)
    minted = doc(post_json(app, routes.MINT_PATH, {"token": issuer.github_token(HOST)}))["token"]
    cli_token, cli_record = TokenStore(local_store).create("write")
    minted_id = minted.split("_")[1]
    for body in ({"token": cli_token}, {"token": minted_id}, {"token": "spypi_0_x"}):
        response = post_json(app, routes.BURN_PATH, body)
        assert response.status == 200 and doc(response) == {"success": True}
    records, _ = TokenStore(local_store).read()
    assert {cli_record.id, minted_id} <= records.keys()  # an id alone revokes nothing
    assert post_json(app, routes.BURN_PATH, {"token": minted}).status == 200
    records, _ = TokenStore(local_store).read()
    assert minted_id not in records and cli_record.id in records
    code, _ = refusal(app.handle(request("POST", routes.BURN_PATH, body=b"{}")))
    assert code == "invalid-payload"


# -- the read path ------------------------------------------------------------------------------


def test_reads_and_the_audience_never_import_the_jose_library(tmp_path: Any) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from serverless_pypi.compose import build_application
        from serverless_pypi.core.http import Headers, Request
        from serverless_pypi.storage.local import LocalStore

        app = build_application(LocalStore({str(tmp_path)!r}))
        for path in ("", "/_/oidc/audience", "/.well-known/pytp"):
            app.handle(Request("GET", path, "discover=%2F", Headers({{"host": "h"}})))
        print(sorted(m for m in sys.modules if m.startswith(("joserfc", "serverless_pypi.auth"))))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# -- the Lambda handler ---------------------------------------------------------------------------

LAMBDA_FRONTS = ["function_url", "http_api_default_stage"]


def lambda_event(
    name: str, path: str, *, method: str = "GET", body: Any = None, query: str = ""
) -> dict[str, Any]:
    """A recorded event of front `name` for the full path `path` at the host root."""
    data = copy.deepcopy(load(name))
    data["rawPath"] = path
    data["rawQueryString"] = query
    data.pop("queryStringParameters", None)
    data["requestContext"]["http"]["path"] = path
    data["requestContext"]["http"]["method"] = method
    data["headers"]["accept"] = "*/*"  # what uv and the PyPA action send
    if body is not None:
        data["body"] = json.dumps(body)
        data["isBase64Encoded"] = False
        data["headers"]["content-type"] = "application/json"
    return data


def lambda_doc(response: dict[str, Any]) -> dict[str, Any]:
    import base64

    raw = response["body"]
    text = base64.b64decode(raw).decode() if response["isBase64Encoded"] else raw
    data: dict[str, Any] = json.loads(text)
    return data


@pytest.fixture
def function(
    aws_env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """The API function over a fresh bucket, in a fresh execution environment."""
    from serverless_pypi.storage.s3 import S3Store

    for name in (*CONFIG, "OIDC_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    bucket = create_bucket(moto_url)
    monkeypatch.setenv("S3_BUCKET", bucket)
    fresh_environment()
    yield S3Store(bucket, endpoint_url=moto_url)
    fresh_environment()


@pytest.mark.parametrize("front", LAMBDA_FRONTS)
def test_the_lambda_fronts_serve_the_host_root_routes(front: str, function: Store) -> None:
    host = load(front)["headers"]["host"]
    audience = handle(lambda_event(front, "/_/oidc/audience"))
    assert audience["statusCode"] == 200
    assert lambda_doc(audience) == {"audience": host}
    found = handle(lambda_event(front, "/.well-known/pytp", query="discover=%2Flegacy%2F"))
    assert found["statusCode"] == 200
    assert lambda_doc(found)["token-mint-endpoint"] == f"https://{host}/_/oidc/mint-token"
    wrong = handle(lambda_event(front, "/_/oidc/mint-token"))  # a GET
    assert wrong["statusCode"] == 405
    bad = handle(lambda_event(front, "/_/oidc/mint-token", method="POST", body=[1]))
    assert bad["statusCode"] == 422
    assert lambda_doc(bad)["errors"][0]["code"] == "invalid-payload"
    assert handle(lambda_event(front, "/_/oidc/elsewhere"))["statusCode"] == 404


@pytest.mark.parametrize("front", LAMBDA_FRONTS)
def test_a_lambda_front_mints_refuses_a_replay_and_burns(
    front: str, function: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OIDC_AUDIENCE", "acme-index")
    with LocalIssuer() as issuer:  # over HTTP on loopback: the function's own fetch
        publisher = oidc_publisher(issuer.issuer, {"repository": "acme/app"}, projects=["acme-app"])
        PublisherStore(function).add(publisher)
        jwt = issuer.github_token("acme-index")
        minted = handle(
            lambda_event(front, "/_/oidc/mint-token", method="POST", body={"token": jwt})
        )
        assert minted["statusCode"] == 200, minted["body"]
        token = lambda_doc(minted)["token"]
        replay = handle(
            lambda_event(front, "/_/oidc/mint-token", method="POST", body={"token": jwt})
        )
    assert replay["statusCode"] == 422
    assert lambda_doc(replay)["errors"][0]["code"] == "invalid-reuse-token"
    assert jwt.split(".")[2] not in replay["body"]
    burned = handle(lambda_event(front, "/_/oidc/burn-token", method="POST", body={"token": token}))
    assert burned["statusCode"] == 200
    records, _ = TokenStore(function).read()
    assert not [r for r in records.values() if r.publisher == publisher.id]


# -- the local server -----------------------------------------------------------------------------


def test_the_local_server_serves_the_host_root_routes(live_server: Any, tmp_path: Any) -> None:
    server = live_server(str(tmp_path / "store"))
    base = server.base.rstrip("/")
    with urllib.request.urlopen(f"{base}/_/oidc/audience") as answer:
        assert json.loads(answer.read()) == {"audience": "127.0.0.1"}
    discovery = urllib.request.Request(
        f"{base}/.well-known/pytp?discover=%2Flegacy%2F", headers={"Accept": PYTP}
    )
    with urllib.request.urlopen(discovery) as answer:
        assert answer.headers["Content-Type"] == PYTP
        assert json.loads(answer.read())["audience-endpoint"] == f"{base}/_/oidc/audience"
    mint = urllib.request.Request(f"{base}/_/oidc/mint-token", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(mint)
    assert refused.value.code == 422
    assert json.loads(refused.value.read())["errors"][0]["code"] == "invalid-payload"
