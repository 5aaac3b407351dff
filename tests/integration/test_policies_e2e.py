"""Policies end to end (issue 13): the `serverless-pypi` CLI changes the policy document, a
live `serverless-pypi serve` (proxy mode over an upstream) and the Lambda handler (over moto's
S3) see it within seconds, and real uv, pip and pypi-simple see what the policy serves.

The upstream (the project's own server over a second directory) holds `pubpkg` 1.0, uploaded
30 days ago (its manifest record backdated: the upload time of an upstream file is the
upstream's), and `pubpkg` 2.0, uploaded now; and `acme-evil`, a name under the namespace the
index reserves. The index's store holds the private `privpkg`. Each test starts from an empty
policy, so the order does not matter.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pypi_simple import ProjectPage, ProjectStatus
from pypi_simple.errors import UnexpectedRepoVersionWarning

from serverless_pypi.adapters.aws_lambda import api_handler, application
from serverless_pypi.core.model import format_upload_time
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.policy import Policy
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.change import Change
from serverless_pypi.index.policies import PolicyWriter
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.s3 import S3Store
from tests.helpers.clients import SERVERLESS_PYPI, pip_install, run_client, uv_install
from tests.helpers.dists import make_wheel, sha256
from tests.helpers.index import JSON, publish_file
from tests.helpers.lambda_events import CONFIG, load
from tests.helpers.servers import LiveServer, create_bucket, start_server, stop
from tests.helpers.upstream import publish_upstream, start_upstream

pytestmark = pytest.mark.slow

T = TypeVar("T")
#: the fronts' POLICY_TTL here, and how long a change may take to reach them
POLICY_TTL = 1
WITHIN = 15.0
OLD = datetime.now(UTC) - timedelta(days=30)


@dataclass
class World:
    index: LiveServer
    upstream: LiveServer
    store: Path  # the index's store
    old_wheel: Path  # pubpkg 1.0, uploaded 30 days ago upstream
    new_wheel: Path  # pubpkg 2.0, uploaded now


def backdate(store_dir: Path, name: str, filename: str, when: datetime) -> None:
    """Set the upload time of a file in a store's manifest (its pages follow)."""

    def change(manifest: Any) -> Change[None]:
        record = manifest.files[filename]
        manifest.files[filename] = dataclasses.replace(record, upload_time=format_upload_time(when))
        return Change(write=True, result=None)

    Catalog(LocalStore(store_dir)).update_project(NormalizedName(name), change)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("policies")
    upstream_dir = work / "upstream"
    old = publish_upstream(upstream_dir, work / "w1", "pubpkg", "1.0")
    new = publish_upstream(upstream_dir, work / "w2", "pubpkg", "2.0")
    publish_upstream(upstream_dir, work / "w3", "acme_evil", "1.0")
    backdate(upstream_dir, "pubpkg", old.name, OLD)
    upstream = start_upstream(upstream_dir, work)
    store = work / "index-store"
    (work / "w4").mkdir()
    publish_file(LocalStore(store), make_wheel(work / "w4", "privpkg", "1.0"))
    env = {
        "UPSTREAM_INDEX_URL": upstream.url,
        "UPSTREAM_MODE": "proxy",
        "FALLBACK_INDEX_URL": "",
        "POLICY_TTL": str(POLICY_TTL),
    }
    index = start_server(str(store), work, env)
    try:
        yield World(index, upstream, store, old, new)
    finally:
        stop(index.process)
        stop(upstream.process)


@pytest.fixture
def fresh(world: World) -> World:
    """The world with an empty policy."""
    PolicyWriter(LocalStore(world.store)).update(lambda _: Policy())
    time.sleep(POLICY_TTL + 0.5)  # the server's copy of the last test's policy has expired
    return world


def cli(*argv: str, env: dict[str, str] | None = None) -> str:
    done = run_client(SERVERLESS_PYPI, *argv, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def get(url: str, accept: str = JSON) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (127.0.0.1)
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def page(world: World, name: str) -> dict[str, Any] | None:
    status, body = get(f"{world.index.url}{name}/")
    return json.loads(body) if status == 200 else None


def filenames(world: World, name: str) -> set[str]:
    found = page(world, name)
    return {f["filename"] for f in found["files"]} if found else set()


def status_of(world: World, name: str) -> str | None:
    """The PEP 792 status on the project's JSON page (None: no page, or no status)."""
    found = page(world, name)
    status = found.get("project-status") if found else None
    return status["status"] if status else None


def eventually(check: Callable[[], T], what: str, seconds: float = WITHIN) -> T:
    """`check()` once it is truthy (polled), failing after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what}")
        time.sleep(0.2)


def version_installed(target: Path, name: str) -> str:
    (info,) = target.glob(f"{name}-*.dist-info")
    return info.name.removesuffix(".dist-info").split("-")[1]


# -- cooldown and exemption ------------------------------------------------------------------
def test_cooldown_then_exemption_with_uv_and_pip(fresh: World, tmp_path: Path) -> None:
    world = fresh
    both = {world.old_wheel.name, world.new_wheel.name}
    assert filenames(world, "pubpkg") == both
    cli("policy", "set", "cooldown", "7d", "--store", str(world.store))
    eventually(lambda: filenames(world, "pubpkg") == {world.old_wheel.name}, "2.0 hidden")
    for install, target in ((uv_install, tmp_path / "uv"), (pip_install, tmp_path / "pip")):
        done = install(world.index.url, target, "pubpkg")
        assert done.returncode == 0, done.stdout + done.stderr
        assert version_installed(target, "pubpkg") == "1.0"  # the newer one is too young
    # a lockfile's URL does not walk past it: 404 with the reason
    status, body = get(f"{world.index.url}pubpkg/{world.new_wheel.name}", accept="*/*")
    assert status == 404
    assert b"cooldown" in body
    # break glass: the exempted version shows at once, whatever its age
    cli("policy", "exempt", "pubpkg==2.0", "--store", str(world.store))
    eventually(lambda: filenames(world, "pubpkg") == both, "2.0 exempted")
    for install, target in ((uv_install, tmp_path / "uv2"), (pip_install, tmp_path / "pip2")):
        done = install(world.index.url, target, "pubpkg")
        assert done.returncode == 0, done.stdout + done.stderr
        assert version_installed(target, "pubpkg") == "2.0"


# -- revocation ------------------------------------------------------------------------------
def test_revoke_and_unrevoke_seen_by_the_running_server(fresh: World) -> None:
    world = fresh
    digest = sha256(world.old_wheel)
    url = f"{world.index.url}pubpkg/{world.old_wheel.name}"
    assert get(url, accept="*/*")[0] in {200, 302}
    started = time.monotonic()
    cli("revoke", f"sha256:{digest}", "--reason", "malware found", "--store", str(world.store))
    eventually(lambda: get(url, accept="*/*")[0] == 404, "the revoked file refused")
    assert time.monotonic() - started < WITHIN
    assert world.old_wheel.name not in filenames(world, "pubpkg")
    status, body = get(url, accept="*/*")
    assert b"malware found" in body
    assert digest in cli("revoke", "list", "--store", str(world.store))
    cli("unrevoke", f"sha256:{digest}", "--store", str(world.store))
    eventually(lambda: world.old_wheel.name in filenames(world, "pubpkg"), "unrevoked")


def lambda_get(path: str) -> tuple[int, bytes]:
    event = copy.deepcopy(load("function_url"))
    event["rawPath"] = path
    event["rawQueryString"] = ""
    event["headers"] = {"accept": JSON}
    event["requestContext"]["http"]["method"] = "GET"
    event["requestContext"]["http"]["path"] = path
    answer = api_handler(event, None)
    body = answer.get("body") or ""
    data = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
    return answer["statusCode"], data


def test_revoke_and_unrevoke_seen_by_the_lambda_handler(
    aws_env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bucket = create_bucket(moto_url, "policies")
    wheel = make_wheel(tmp_path, "lambdapkg", "1.0")
    publish_file(S3Store(bucket, endpoint_url=moto_url), wheel)
    for variable in (*CONFIG, "UPSTREAM_INDEX_URL", "UPSTREAM_MODE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("S3_BUCKET", bucket)
    monkeypatch.setenv("POLICY_TTL", str(POLICY_TTL))
    application.cache_clear()
    try:
        file_path = f"/simple/lambdapkg/{wheel.name}"
        assert lambda_get("/simple/lambdapkg/")[0] == 200
        assert lambda_get(file_path)[0] == 302
        store = f"s3://{bucket}"
        cli("revoke", f"sha256:{sha256(wheel)}", "--reason", "bad build", "--store", store)
        eventually(lambda: lambda_get(file_path)[0] == 404, "refused by Lambda")
        assert b"bad build" in lambda_get(file_path)[1]
        # its only file revoked: the page lists nothing
        listed = lambda_get("/simple/lambdapkg/")
        assert listed[0] == 404 or wheel.name.encode() not in listed[1]
        cli("unrevoke", f"sha256:{sha256(wheel)}", "--store", store)
        eventually(lambda: lambda_get(file_path)[0] == 302, "served again by Lambda")
    finally:
        application.cache_clear()


# -- project status (PEP 792) ----------------------------------------------------------------
def test_archived_and_quarantined_shown_to_pypi_simple_and_uv(fresh: World, tmp_path: Path) -> None:
    world = fresh
    url = f"{world.index.url}privpkg/"
    cli(
        "status",
        "privpkg",
        "archived",
        "--reason",
        "moved to acme-lib",
        "--store",
        str(world.store),
    )
    eventually(lambda: status_of(world, "privpkg") == "archived", "archived shown")
    found = page(world, "privpkg")
    assert found is not None
    assert found["project-status"] == {"status": "archived", "reason": "moved to acme-lib"}
    for accept in (JSON, "text/html"):
        status, body = get(url, accept=accept)
        parsed = (
            ProjectPage.from_json_data(json.loads(body))
            if accept == JSON
            else ProjectPage.from_html("privpkg", body.decode())
        )
        assert parsed.status is ProjectStatus.ARCHIVED
        assert parsed.status_reason == "moved to acme-lib"
        assert [p.filename for p in parsed.packages] == ["privpkg-1.0-py3-none-any.whl"]
    # archived: uv reads the page with its status and installs (archived refuses uploads only)
    done = uv_install(world.index.url, tmp_path / "uv", "privpkg")
    assert done.returncode == 0, done.stdout + done.stderr

    cli("status", "privpkg", "quarantined", "--reason", "under review", "--store", str(world.store))
    eventually(lambda: status_of(world, "privpkg") == "quarantined", "quarantined shown")
    status, body = get(url)
    assert status == 200, body
    parsed = ProjectPage.from_json_data(json.loads(body))
    assert parsed.status is ProjectStatus.QUARANTINED
    assert parsed.packages == []  # PEP 792: a quarantined project offers no files
    done = uv_install(world.index.url, tmp_path / "uv2", "privpkg")
    assert done.returncode != 0
    assert "no versions of privpkg" in done.stderr  # the page parsed: it offers nothing
    cli("status", "privpkg", "active", "--store", str(world.store))


# -- namespaces (PEP 752) --------------------------------------------------------------------
def test_upstream_names_under_a_namespace_are_never_served(fresh: World, tmp_path: Path) -> None:
    world = fresh
    assert filenames(world, "acme-evil") == {"acme_evil-1.0-py3-none-any.whl"}
    cli("namespace", "add", "acme", "--store", str(world.store))
    eventually(lambda: page(world, "acme-evil") is None, "acme-evil refused")
    status, body = get(f"{world.index.url}acme-evil/acme_evil-1.0-py3-none-any.whl", "*/*")
    assert status == 404
    assert b"acme" in body
    done = uv_install(world.index.url, tmp_path / "uv", "acme-evil")
    assert done.returncode != 0
    done = pip_install(world.index.url, tmp_path / "pip", "acme-evil")
    assert done.returncode != 0
    assert "acme" in cli("namespace", "list", "--store", str(world.store))
    # the rest of the upstream is served as before
    assert world.old_wheel.name in filenames(world, "pubpkg")


def test_pep_752_data_served_and_read_by_real_clients(fresh: World, tmp_path: Path) -> None:
    world = fresh
    assert get(f"{world.index.url}namespaces")[0] != 200  # not emitted without a namespace
    cli("namespace", "add", "acme", "--store", str(world.store))
    eventually(lambda: get(f"{world.index.url}namespaces")[0] == 200, "namespaces served")
    listed = json.loads(get(f"{world.index.url}namespaces")[1])
    assert listed["meta"]["api-version"] == "1.5"
    assert [n["prefix"] for n in listed["namespaces"]] == ["acme"]
    status, body = get(f"{world.index.url}namespace/acme")
    assert status == 200
    assert json.loads(body)["children"] == []
    found = page(world, "privpkg")
    assert found is not None
    assert found["meta"]["api-version"] == "1.5"
    assert found["namespace"] is None
    # pypi-simple 1.8 knows 1.4: it warns of a newer minor version (PEP 629) and reads on
    with pytest.warns(UnexpectedRepoVersionWarning, match=r"1\.5"):
        parsed = ProjectPage.from_json_data(found)
    assert [p.filename for p in parsed.packages] == ["privpkg-1.0-py3-none-any.whl"]
    # installers read the 1.5 pages as they read 1.4 ones
    for install, target in ((uv_install, tmp_path / "uv"), (pip_install, tmp_path / "pip")):
        done = install(world.index.url, target, "privpkg")
        assert done.returncode == 0, done.stdout + done.stderr
