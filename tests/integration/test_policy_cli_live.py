"""The policy commands against a live `serverless-pypi serve`, with real twine and uv publish,
over a local directory and over S3 (moto): statuses and namespaces refuse uploads with the
message the clients show, and concurrent CLI changes to the policy all land."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.index.policies import PolicyWriter
from serverless_pypi.storage import Store
from tests.helpers.clients import SERVERLESS_PYPI, client_env, run_client, twine_upload, uv_publish
from tests.helpers.dists import make_wheel, sha256, subdir
from tests.helpers.index import served_hashes
from tests.helpers.servers import LiveServer

pytestmark = pytest.mark.slow


@dataclass
class Served:
    server: LiveServer
    store: Store
    location: str  # the --store argument of the commands
    tokens: TokenStore


@pytest.fixture(params=["local", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Store, str]:
    store: Store = request.getfixturevalue(f"{request.param}_store")
    if request.param == "s3":
        return store, f"s3://{request.getfixturevalue('s3_bucket')}"
    return store, str(tmp_path / "store")


@pytest.fixture
def served(location: tuple[Store, str], live_server: Callable[..., LiveServer]) -> Served:
    store, where = location
    # the policy is revalidated at every upload: no test waits for POLICY_TTL
    server = live_server(where, env={"POLICY_TTL": "0.05"})
    return Served(server, store, where, TokenStore(store))


def cli(where: str, *argv: str) -> subprocess.CompletedProcess[str]:
    result = run_client(SERVERLESS_PYPI, *argv, "--store", where, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def said(result: subprocess.CompletedProcess[str]) -> str:
    """A client's output with line wrapping undone (uv and twine wrap to the terminal)."""
    return " ".join((result.stdout + result.stderr).split())


def test_archived_and_quarantined_refuse_uploads(served: Served, tmp_path: Path) -> None:
    url, where = served.server.url, served.location
    token, _ = served.tokens.create("write")
    first = make_wheel(subdir(tmp_path, "a"), "Demo.Pkg", "1.0")
    assert twine_upload(url, token, first).returncode == 0
    later = make_wheel(subdir(tmp_path, "b"), "demo-pkg", "2.0")
    for status in ("archived", "quarantined"):
        cli(where, "status", "Demo_Pkg", status, "--reason", "moved to demo-next")
        expected = (
            f"The project 'demo-pkg' is {status} (moved to demo-next): it takes no new uploads"
        )
        result = twine_upload(url, token, later)
        assert result.returncode != 0
        assert "403" in said(result)
        assert expected in said(result)
        result = uv_publish(url, token, later)
        assert result.returncode != 0
        assert expected in said(result)
    cli(where, "status", "demo-pkg", "deprecated")
    assert twine_upload(url, token, later).returncode == 0
    assert set(served_hashes(url, "demo-pkg")) == {first.name, later.name}
    assert " 500 " not in served.server.log.read_text()


def test_namespace_uploads_need_a_covering_token(served: Served, tmp_path: Path) -> None:
    url, where = served.server.url, served.location
    cli(where, "namespace", "add", "acme-")
    project_only, _ = served.tokens.create("write", ["acme-core"])
    covering, _ = served.tokens.create("write", ["acme-*"])
    wheel = make_wheel(tmp_path, "acme-core", "1.0")
    for upload in (twine_upload, uv_publish):
        result = upload(url, project_only, wheel)
        assert result.returncode != 0
        assert "409" in said(result)
        assert "is in the namespace 'acme' (PEP 752)" in said(result)
    result = uv_publish(url, covering, wheel)
    assert result.returncode == 0, said(result)
    assert served_hashes(url, "acme-core") == {wheel.name: sha256(wheel)}
    assert " 500 " not in served.server.log.read_text()


def test_concurrent_cli_changes_all_land(location: tuple[Store, str]) -> None:
    """Six processes change the policy document at once: compare-and-swap keeps them all."""
    store, where = location
    digests = [f"{i:064x}" for i in range(1, 4)]
    commands = [
        *(["revoke", f"sha256:{d}", "--reason", f"bad {i}"] for i, d in enumerate(digests)),
        *(["policy", "exempt", f"Project_{i}==1.{i}"] for i in range(3)),
    ]
    processes = [
        subprocess.Popen(
            [SERVERLESS_PYPI, *argv, "--store", where],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=client_env(),
        )
        for argv in commands
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, out + err
    policy = PolicyWriter(store).read()
    assert {d: r.reason for d, r in policy.revoked.items()} == {
        d: f"bad {i}" for i, d in enumerate(digests)
    }
    assert policy.exempt == {f"project-{i}==1.{i}" for i in range(3)}
    listed = cli(where, "revoke", "list").stdout
    assert all(f"sha256:{d}" in listed for d in digests)


def test_preview_agrees_with_the_server_on_upstream_projects(
    tmp_path: Path, live_server: Callable[..., LiveServer]
) -> None:
    """`policy preview` of an upstream project, over the same settings and store as a
    running proxy: it calls served exactly what the server lists, and says why the rest is
    hidden (cooldown, revoked, denied, namespace)."""
    from tests.helpers.servers import stop
    from tests.helpers.upstream import publish_upstream, start_upstream

    upstream_dir = tmp_path / "upstream"
    old = publish_upstream(upstream_dir, tmp_path / "w1", "lib", "1.0")
    new = publish_upstream(upstream_dir, tmp_path / "w2", "lib", "2.0")
    publish_upstream(upstream_dir, tmp_path / "w3", "acme-core", "1.0")
    upstream = start_upstream(upstream_dir, tmp_path)
    try:
        where = str(tmp_path / "store")
        options = ["--upstream", upstream.url, "--upstream-mode", "proxy"]
        server = live_server(where, env={"POLICY_TTL": "0.05"}, extra=options)

        def preview(name: str) -> list[str]:
            return cli(where, "policy", "preview", name, *options).stdout.splitlines()

        assert preview("lib") == [
            "lib: upstream project",
            f"served  {old.name}",
            f"served  {new.name}",
            "2 files: 2 served, 0 hidden",
        ]
        cli(where, "policy", "set", "cooldown", "7d")
        cli(where, "policy", "exempt", "lib==1.0")
        cli(where, "revoke", f"sha256:{sha256(old)}", "--reason", "malware")
        lines = preview("lib")
        assert lines[1] == f"hidden  {old.name}  revoked: malware"
        assert lines[2].startswith(f"hidden  {new.name}  hidden by the cooldown until 20")
        cli(where, "unrevoke", f"sha256:{sha256(old)}")
        lines = preview("lib")
        assert lines[1] == f"served  {old.name}"
        # what preview calls served is what the running server lists
        served = {line.split()[1] for line in lines if line.startswith("served ")}
        assert set(served_hashes(server.url, "lib")) == served == {old.name}
        cli(where, "policy", "deny", "li*")
        lines = preview("lib")
        assert "not served: the upstream project lib is denied (deny list: 'li*')" in lines
        assert lines[-1] == "2 files: 0 served, 2 hidden"
        cli(where, "namespace", "add", "acme")
        lines = preview("acme-core")
        assert lines[1].startswith("not served: acme-core is in the namespace 'acme'")
        assert lines[-1] == "1 file: 0 served, 1 hidden"
    finally:
        stop(upstream.process)
