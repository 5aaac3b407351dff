"""Trusted publishing and OIDC read tokens with real uv (and pip) against a live server.

As in CI: a local OIDC issuer (`tests.helpers.oidc.LocalIssuer`) stands in for GitHub's and
its token request endpoint for `ACTIONS_ID_TOKEN_REQUEST_URL`; TLS is put in front of the
live `serverless-pypi serve` (uv's release builds ask `https://<host>/_/oidc/...` whatever the
publish URL's scheme), trusted by the clients through `SSL_CERT_FILE`. Publishers are added
with `serverless-pypi publisher add`, as a user does.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage import Store
from tests.helpers.clients import PIP, SERVERLESS_PYPI, UV, run_client
from tests.helpers.dists import make_wheel, subdir
from tests.helpers.index import publish_file
from tests.helpers.oidc import LocalIssuer, TestCA, TlsProxy, claims_of, tls_front
from tests.helpers.servers import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trusted_publishing")]

REPOSITORY = "acme/app"
OWNER_ID = "1234567"
PYTP = "application/vnd.pypi.pytp.v1+json"


@dataclass
class Front:
    """A live server over a store, with TLS in front of it."""

    server: LiveServer
    store: Store
    location: str  # the --store argument
    ca: TestCA
    proxy: TlsProxy

    @property
    def index(self) -> str:
        """The index (and upload) URL over TLS: https://127.0.0.1:<port>/simple/"""
        return self.proxy.base + "simple/"

    def env(self, **extra: str) -> dict[str, str]:
        """The clients' environment: the test CA trusted (uv: SSL_CERT_FILE; pip too)."""
        return {"SSL_CERT_FILE": str(self.ca.ca), **extra}


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    """The CI provider: its tokens say they come from acme/app's release.yml on main."""
    with LocalIssuer(
        github={"repository": REPOSITORY, "workflow": "release.yml", "owner_id": OWNER_ID}
    ) as started:
        yield started


@pytest.fixture
def front(live_server: Callable[..., LiveServer], tmp_path: Path) -> Iterator[Callable[..., Front]]:
    """Start a server with TLS in front of it: `front(store, location, env)`."""
    fronts: list[Any] = []

    def start(store: Store, location: str, env: dict[str, str] | None = None) -> Front:
        server = live_server(location, env=env)
        context = tls_front(tmp_path / f"tls-{len(fronts)}", server.port)
        ca, proxy = context.__enter__()
        fronts.append(context)
        return Front(server, store, location, ca, proxy)

    yield start
    for context in fronts:
        context.__exit__(None, None, None)


def add_publisher(location: str, *options: str) -> str:
    """`serverless-pypi publisher add --store location *options`; the id it prints."""
    added = run_client(SERVERLESS_PYPI, "publisher", "add", "--store", location, *options)
    assert added.returncode == 0, added.stdout + added.stderr
    return added.stdout.strip().splitlines()[-1]


def trusted_publish(
    front: Front, issuer: LocalIssuer, *files: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """`uv publish --trusted-publishing always` as a GitHub Actions job runs it."""
    return run_client(
        UV,
        "publish",
        "--no-config",
        "--publish-url",
        front.index,
        "--trusted-publishing",
        "always",
        *map(str, files),
        env=front.env(**issuer.github_env(), **env),
        timeout=120,
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def refusal(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The mint endpoint's refusal, as uv prints it (`Response: {...}`; uv wraps its output
    to the terminal's width: the wrapping is undone first)."""
    text = " ".join(said(result).split())
    at = text.find("Response: ")
    assert at >= 0, said(result)
    body, _ = json.JSONDecoder().raw_decode(text, at + len("Response: "))
    assert isinstance(body, dict), said(result)
    return body


def descriptions(body: dict[str, Any]) -> str:
    return " ".join(str(error.get("description", "")) for error in body.get("errors", []))


def https(
    front: Front,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """GET (or POST `body` as JSON) https://<front>/<path>: status, JSON answer, headers."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        front.proxy.base + path.lstrip("/"),
        data=data,
        headers={**({"Content-Type": "application/json"} if data else {}), **(headers or {})},
    )
    context: ssl.SSLContext = front.ca.client_context()
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, _json(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, _json(error.read()), dict(error.headers)


def _json(raw: bytes) -> dict[str, Any]:
    """A JSON object answer; any other body as {"text": ...} (the index's plain-text errors)."""
    try:
        answer = json.loads(raw)
    except ValueError:
        return {"text": raw.decode(errors="replace")}
    return answer if isinstance(answer, dict) else {"value": answer}


def ci_token(issuer: LocalIssuer, audience: str) -> str:
    """What the docs' `curl "$ACTIONS_ID_TOKEN_REQUEST_URL&audience=..."` line gets."""
    env = issuer.github_env()
    request = urllib.request.Request(
        f"{env['ACTIONS_ID_TOKEN_REQUEST_URL']}&audience={urllib.parse.quote(audience)}",
        headers={"Authorization": f"bearer {env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.load(response)["value"])


def served_files(front: Front, project: str, **headers: str) -> list[str]:
    status, page, _ = https(
        front,
        f"simple/{project}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json", **headers},
    )
    return [f["filename"] for f in page.get("files", [])] if status == 200 else []


def minted_records(store: Store) -> list[Any]:
    return [r for r in TokenStore(store).records() if r.publisher is not None]


# -- publishing ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_uv_publishes_with_trusted_publishing(
    kind: str,
    request: pytest.FixtureRequest,
    front: Callable[..., Front],
    issuer: LocalIssuer,
    tmp_path: Path,
) -> None:
    store: Store = request.getfixturevalue(f"{kind}_store")
    location = (
        f"s3://{request.getfixturevalue('s3_bucket')}" if kind == "s3" else str(tmp_path / "store")
    )
    served = front(store, location)
    add_publisher(
        location,
        "--project",
        "demo-*",
        "--issuer",
        issuer.url,
        "--claim",
        f"repository={REPOSITORY}",
        "--claim",
        f"repository_owner_id={OWNER_ID}",
    )
    wheel = make_wheel(subdir(tmp_path, "dist"), "demo-app", "1.0")

    result = trusted_publish(served, issuer, wheel)

    assert result.returncode == 0, said(result)
    assert served_files(served, "demo-app") == [wheel.name]
    # uv asked the audience at the host root (the default: the host name), got a JWT for it,
    # minted a token, uploaded with it, and burnt it
    assert issuer.audiences == ["127.0.0.1"]
    log = served.server.log.read_text()
    for line in (
        "GET /_/oidc/audience 200",
        "POST /_/oidc/mint-token 200",
        "POST /simple/ 200",
    ):
        assert line in log, log
    assert re.search(r"POST /_/oidc/burn-token 20\d", log), log
    assert minted_records(store) == []  # burnt: revoked at once, not left for 15 minutes
    jwt = issuer.issued[-1]
    assert jwt not in log and jwt.split(".")[2] not in log

    # each JWT is usable once, on every instance: the same JWT again is refused
    status, body, _ = https(served, "/_/oidc/mint-token", {"token": jwt})
    assert status == 422, body
    assert descriptions(body) and jwt not in json.dumps(body)

    # a project outside the publisher's pattern: the minted token may not upload it
    other = make_wheel(subdir(tmp_path, "other"), "other-app", "1.0")
    result = trusted_publish(served, issuer, other)
    assert result.returncode != 0, said(result)
    assert "POST /simple/ 403" in served.server.log.read_text()
    assert served_files(served, "other-app") == []


def test_uv_names_the_claim_that_does_not_match(
    local_store: Store, front: Callable[..., Front], issuer: LocalIssuer, tmp_path: Path
) -> None:
    location = str(tmp_path / "store")
    served = front(local_store, location)
    add_publisher(
        location,
        "--project",
        "demo-*",
        "--issuer",
        issuer.url,
        "--claim",
        f"repository={REPOSITORY}",
        "--claim",
        f"repository_owner_id={OWNER_ID}",
    )
    wheel = make_wheel(subdir(tmp_path, "dist"), "demo-app", "1.0")

    # another repository's workflow
    issuer.github["repository"] = "mallory/app"
    result = trusted_publish(served, issuer, wheel)
    assert result.returncode != 0, said(result)
    body = refusal(result)
    # the claim is named (`repository`, not `repository_owner_id`), with what is expected
    assert re.search(r"\brepository\b(?!_)", descriptions(body)), body
    assert REPOSITORY in descriptions(body), body
    assert issuer.issued[-1] not in said(result)  # the answer does not echo the JWT
    assert issuer.issued[-1] not in served.server.log.read_text()

    # the owner's name re-registered by someone else (account resurrection): same name,
    # another repository_owner_id
    issuer.github.update(repository=REPOSITORY, owner_id="7777777")
    result = trusted_publish(served, issuer, wheel)
    assert result.returncode != 0, said(result)
    assert "repository_owner_id" in descriptions(refusal(result))

    assert served_files(served, "demo-app") == []
    assert minted_records(local_store) == []
    # and the right identity still publishes
    issuer.github["owner_id"] = OWNER_ID
    result = trusted_publish(served, issuer, wheel)
    assert result.returncode == 0, said(result)


def test_uv_publishes_from_gitlab_ci(
    local_store: Store, front: Callable[..., Front], issuer: LocalIssuer, tmp_path: Path
) -> None:
    """GitLab CI hands the job its ID token in a variable named after the audience (uv reads
    `<AUDIENCE>_ID_TOKEN`, non-alphanumerics as `_`, with `GITLAB_CI=true`)."""
    location = str(tmp_path / "store")
    served = front(local_store, location)
    add_publisher(
        location,
        "--project",
        "demo-*",
        "--gitlab",
        "acme/app",
        "--gitlab-url",  # a self-hosted GitLab: here the local issuer
        issuer.url,
        "--ref",
        "main",
    )
    wheel = make_wheel(subdir(tmp_path, "dist"), "demo-app", "2.0")
    token = issuer.gitlab_token("127.0.0.1", project_path="acme/app", ref="main")
    result = run_client(
        UV,
        "publish",
        "--no-config",
        "--publish-url",
        served.index,
        "--trusted-publishing",
        "always",
        str(wheel),
        env=served.env(GITLAB_CI="true", **{"127_0_0_1_ID_TOKEN": token}),
        timeout=120,
    )
    assert result.returncode == 0, said(result)
    assert served_files(served, "demo-app") == [wheel.name]


# -- PEP 807 discovery ----------------------------------------------------------------------


def discover(front: Front, path: str = "%2Fsimple%2F", accept: str = PYTP) -> Any:
    return https(front, f"/.well-known/pytp?discover={path}", headers={"Accept": accept})


def test_pep_807_discovery_over_tls(
    local_store: Store, front: Callable[..., Front], tmp_path: Path
) -> None:
    served = front(local_store, str(tmp_path / "store"))
    status, document, headers = discover(served)
    assert status == 200, document
    assert headers["Content-Type"] == PYTP
    # PEP 807: the endpoints are on the upload URL's host (and port)
    for field, path in (
        ("audience-endpoint", "/_/oidc/audience"),
        ("token-mint-endpoint", "/_/oidc/mint-token"),
    ):
        url = urllib.parse.urlsplit(document[field])
        assert (url.hostname, url.port, url.path) == ("127.0.0.1", served.proxy.port, path)
    assert document["features"] == document["default-features"] == ["multi-use-token"]
    # the endpoints it names answer
    audience = urllib.parse.urlsplit(document["audience-endpoint"]).path
    assert https(served, audience)[:2] == (200, {"audience": "127.0.0.1"})

    # another upload path is not ours: 404; another media type: 406 (RFC 9457 problems)
    status, problem, headers = discover(served, "%2Fother%2F")
    assert (status, problem.get("status")) == (404, 404)
    status, problem, headers = discover(served, accept="text/html")
    assert status == 406
    assert headers.get("Content-Type", "").startswith("application/problem+json")
    assert problem.get("status") == 406 and problem.get("title")


def test_pep_807_discovery_behind_a_tls_front_names_https_endpoints(
    local_store: Store, front: Callable[..., Front], tmp_path: Path
) -> None:
    """Behind TLS (the front says so with `X-Forwarded-Proto: https`, as caddy and nginx do),
    the endpoints must be https: a client that follows `http://127.0.0.1:<TLS port>/...`
    speaks plain HTTP to a TLS port."""
    served = front(local_store, str(tmp_path / "store"))
    status, document, _ = discover(served)
    assert status == 200, document
    base = served.proxy.base.rstrip("/")
    assert document["audience-endpoint"] == f"{base}/_/oidc/audience"
    assert document["token-mint-endpoint"] == f"{base}/_/oidc/mint-token"


# -- OIDC read tokens on a locked index -----------------------------------------------------


def test_read_token_from_oidc_on_a_locked_index(
    local_store: Store, front: Callable[..., Front], issuer: LocalIssuer, tmp_path: Path
) -> None:
    location = str(tmp_path / "store")
    wheel = make_wheel(subdir(tmp_path, "dist"), "Locked.Pkg", "1.0")
    publish_file(Catalog(local_store), wheel)
    served = front(local_store, location, env={"REQUIRE_AUTH_FOR_READ": "1"})
    add_publisher(
        location,
        "--scope",
        "read",
        "--project",
        "locked-*",
        "--issuer",
        issuer.url,
        "--claim",
        f"repository={REPOSITORY}",
    )
    # without a token: 401, as before
    assert https(served, "simple/locked-pkg/")[0] == 401

    # the CI job: the audience (open, even on a locked index), a JWT for it, the exchange
    status, answer, _ = https(served, "/_/oidc/audience")
    assert status == 200, answer
    jwt = ci_token(issuer, answer["audience"])
    assert claims_of(jwt)["aud"] == "127.0.0.1"
    before = time.time()
    status, minted, _ = https(served, "/_/oidc/mint-token", {"token": jwt})
    assert status == 200, minted
    token = minted["token"]
    # minutes of life (default 15): PEP 807's floor is 900 seconds
    assert before + 900 - 2 <= minted["expires"] <= time.time() + 900 + 2
    assert https(served, "simple/locked-pkg/", headers=basic_auth(token))[0] == 200
    # a job uses its token at once, even when the server has just read the token list
    again = https(served, "/_/oidc/mint-token", {"token": ci_token(issuer, "127.0.0.1")})[1]
    assert https(served, "simple/locked-pkg/", headers=basic_auth(again["token"]))[0] == 200

    # the docs' GitHub Actions step, word for word (host and audience those of this server):
    # it sets UV_INDEX_PRIVATE_PASSWORD and PIP_INDEX_URL for the later steps
    github_env = docs_step(served, "JWT=$(curl", ACTIONS=issuer.github_env())
    read_token = github_env["UV_INDEX_PRIVATE_PASSWORD"]
    assert github_env["PIP_INDEX_URL"] == f"https://__token__:{read_token}@{served.index[8:]}"
    target = tmp_path / "uv"
    result = run_client(
        UV,
        "pip",
        "install",
        "--no-config",
        "--no-cache",
        "--python",
        sys.executable,
        "--target",
        str(target),
        "--index",
        f"private={served.index}",
        "--index-strategy",
        "first-index",
        "locked-pkg",
        env=served.env(
            UV_INDEX_PRIVATE_USERNAME="__token__",
            UV_INDEX_PRIVATE_PASSWORD=read_token,
        ),
    )
    assert result.returncode == 0, said(result)
    assert (target / "locked_pkg.py").read_text().startswith("VERSION = '1.0'")

    # the docs' GitLab CI lines (the job's ID token in PYPI_ID_TOKEN), then pip
    add_publisher(
        location,
        *("--scope", "read", "--project", "locked-*"),
        *("--gitlab", "acme/app", "--gitlab-url", issuer.url),
    )
    gitlab_env = docs_step(
        served,
        "- UV_INDEX_PRIVATE_PASSWORD=$(jq",
        ACTIONS={"PYPI_ID_TOKEN": issuer.gitlab_token("127.0.0.1", project_path="acme/app")},
    )
    target = tmp_path / "pip"
    result = run_client(
        *PIP,
        "install",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--no-input",
        "--target",
        str(target),
        "locked-pkg",
        env=served.env(PIP_INDEX_URL=gitlab_env["PIP_INDEX_URL"]),
    )
    assert result.returncode == 0, said(result)
    assert (target / "locked_pkg.py").exists()

    # a read token does not upload, and reads only the publisher's projects
    other = make_wheel(subdir(tmp_path, "more"), "locked-pkg", "2.0")
    result = run_client(
        UV,
        "publish",
        "--no-config",
        "--publish-url",
        served.index,
        "--trusted-publishing",
        "never",
        "-t",
        token,
        str(other),
        env=served.env(),
    )
    assert result.returncode != 0, said(result)
    assert "POST /simple/ 403" in served.server.log.read_text()
    basic = basic_auth(token)
    assert https(served, "simple/locked-pkg/", headers=basic)[0] == 200
    publish_file(Catalog(local_store), make_wheel(subdir(tmp_path, "x"), "secret", "1.0"))
    assert https(served, "simple/secret/", headers=basic)[0] in (403, 404)
    assert token not in served.server.log.read_text()


DOCS = Path(__file__).resolve().parents[2] / "docs" / "trusted-publishing.md"


def docs_step(front: Front, first: str, ACTIONS: dict[str, str]) -> dict[str, str]:  # noqa: N803
    """Run the shell lines of docs/trusted-publishing.md that start at the line beginning
    with `first` (a `run: |` block, or a GitLab `script:` list), with pypi.example.com
    pointing at `front`, as CI runs them (`bash -eo pipefail`); the variables they set, from
    $GITHUB_ENV or `export`."""
    lines = DOCS.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(first))
    indent = len(lines[at]) - len(lines[at].lstrip())
    block: list[str] = []
    for line in lines[at:]:
        if len(line) - len(line.lstrip()) != indent or line.strip() in ("", "```"):
            break
        text = line.strip().removeprefix("- ")
        if text.startswith(("uv ", "- uv ")):
            break  # the job's own work, after the token
        block.append(text)
    host = front.proxy.base.removeprefix("https://").rstrip("/")
    script = "\n".join(block)
    script = script.replace("audience=pypi.example.com", "audience=127.0.0.1")
    script = script.replace("pypi.example.com", host)
    env_file = front.ca.dir / "github_env"
    env_file.write_text("")
    dump = '\nprintf "UV_INDEX_PRIVATE_PASSWORD=%s\\nPIP_INDEX_URL=%s\\n" '
    dump += '"${UV_INDEX_PRIVATE_PASSWORD:-}" "${PIP_INDEX_URL:-}" >> "$GITHUB_ENV"\n'
    ran = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script + dump],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "GITHUB_ENV": str(env_file),
            "CURL_CA_BUNDLE": str(front.ca.ca),
            **ACTIONS,
        },
    )
    assert ran.returncode == 0, f"{script}\n{ran.stdout}{ran.stderr}"
    # the token shows only in GitHub's mask command, which hides it from the job's log
    shown = [line for line in ran.stdout.splitlines() if "spypi_" in line]
    assert all(line.startswith("::add-mask::") for line in shown), ran.stdout
    found: dict[str, str] = {}
    for line in env_file.read_text().splitlines():
        name, _, value = line.partition("=")
        if value:
            found[name] = value
    return found


def basic_auth(token: str) -> dict[str, str]:
    credentials = base64.b64encode(f"__token__:{token}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}
