"""Issue 12, item 7: `serverless-pypi mirror` fills the store ahead of time; `serve` flags.

A real upstream (the project's own server over a second directory: PEP 691 with hashes,
upload times and core metadata) holds public packages that depend on each other; the index's
store holds the private ones. `mirror` copies what a project name, a requirements file, a real
`uv.lock` and a `pylock.toml` (both written by uv against the upstream) name; then the
upstream is stopped and pip and uv install the whole tree from the index alone, from fresh
client caches.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from serverless_pypi.storage import open_store
from tests.helpers.clients import SERVERLESS_PYPI, UV, pip_install, run_client, uv_install
from tests.helpers.dists import make_sdist, make_wheel
from tests.helpers.index import publish_file
from tests.helpers.servers import LiveServer, start_server, stop

pytestmark = pytest.mark.slow

# the documented layout of the upstream namespace (README, "How the store is laid out")
FILES = ".serverless-pypi/upstream/files/"
PAGES = ".serverless-pypi/upstream/pages/"


@dataclass
class Tree:
    upstream_dir: Path  # the upstream's store, with the public packages
    private: list[Path]  # to publish to the index's store


def make_tree(root: Path) -> Tree:
    """acme-app (private) needs acme-core (private) and public-lib, which needs public-util;
    public-extra needs public-lib. The upstream also has an older public-util, and an
    acme-core 99.0 (the dependency-confusion attack) that must never be mirrored."""
    private_dir, public_dir = root / "private", root / "public"
    private_dir.mkdir()
    public_dir.mkdir()
    public = [
        make_wheel(public_dir, "public-lib", "1.0", requires=("public-util>=1",)),
        make_wheel(public_dir, "public-util", "0.9"),
        make_wheel(public_dir, "public-util", "1.0"),
        make_sdist(public_dir, "public-util", "1.0"),
        make_wheel(public_dir, "public-extra", "1.0", requires=("public-lib>=1",)),
        make_wheel(public_dir, "acme-core", "99.0", payload="PWNED = True\n"),
    ]
    upstream_dir = root / "upstream-store"
    store = open_store(str(upstream_dir))
    for path in public:
        publish_file(store, path)
    private = [
        make_wheel(private_dir, "acme-app", "1.0", requires=("acme-core>=1", "public-lib>=1")),
        make_wheel(private_dir, "acme-core", "1.0"),
    ]
    return Tree(upstream_dir, private)


def index_store(root: Path, tree: Tree) -> Path:
    location = root / "index-store"
    store = open_store(str(location))
    for path in tree.private:
        publish_file(store, path)
    return location


def mirror(
    store: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_client(SERVERLESS_PYPI, "mirror", "--store", str(store), *args, env=env)


def copies(store: Path) -> set[str]:
    """The files copied into the store's upstream namespace, by file name."""
    root = store / FILES
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tree, LiveServer]]:
    root = tmp_path_factory.mktemp("mirror-upstream")
    tree = make_tree(root)
    server = start_server(str(tree.upstream_dir), root)
    yield tree, server
    stop(server.process)


def uv_lock(project: Path, index_url: str, cache: Path) -> Path:
    """A real `uv lock` of a project that needs public-extra, against `index_url`."""
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["public-extra"]\n'
    )
    locked = run_client(
        UV,
        "lock",
        "--no-config",
        "--directory",
        str(project),
        "--cache-dir",
        str(cache),
        "--python",
        sys.executable,
        "--index-url",
        index_url,
    )
    assert locked.returncode == 0, locked.stderr
    return project / "uv.lock"


def banner(server: LiveServer) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = server.log.read_text()
        if "install:" in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"no banner: {server.log.read_text()}")


# -- the whole story ---------------------------------------------------------------------------


def test_mirror_then_install_offline(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    store = index_store(tmp_path, tree)
    up = start_server(str(tree.upstream_dir), tmp_path)
    try:
        # a project name: the newest version's files (wheel and sdist), not the older one
        named = mirror(store, "--upstream", up.url, "public-util")
        assert named.returncode == 0, named.stderr
        assert "copied: public-util/public_util-1.0-py3-none-any.whl" in named.stdout
        assert "copied: public-util/public_util-1.0.tar.gz" in named.stdout
        assert copies(store) == {"public_util-1.0-py3-none-any.whl", "public_util-1.0.tar.gz"}
        assert "1 projects: 2 files copied, 0 already in the store" in named.stdout

        # a requirements file: comments, an options line (its value, a credential, never
        # repeated) and a private project, which is never mirrored
        requirements = tmp_path / "requirements.txt"
        requirements.write_text(
            "public-lib>=1  # the library\n"
            "--extra-index-url https://user:s3cret@example.com/simple/\n"
            "acme-core\n"
        )
        listed = mirror(store, "--upstream", up.url, str(requirements))
        assert listed.returncode == 0, listed.stderr
        assert "copied: public-lib/public_lib-1.0-py3-none-any.whl" in listed.stdout
        assert "skipped an options line (--extra-index-url ...)" in listed.stderr
        assert "acme-core: not mirrored: a private project" in listed.stderr
        assert "s3cret" not in listed.stdout + listed.stderr
        assert "acme_core-99.0-py3-none-any.whl" not in copies(store)

        # a real uv.lock and a pylock.toml, written by uv against the upstream
        lock = uv_lock(tmp_path / "app", up.url, tmp_path / "uv-cache")
        locked = mirror(store, "--upstream", up.url, str(lock))
        assert locked.returncode == 0, locked.stderr
        assert "copied: public-extra/public_extra-1.0-py3-none-any.whl" in locked.stdout
        # the files already copied are not copied again
        assert "copied: public-lib/" not in locked.stdout
        assert "app 0.1.0: skipped (virtual, not from an index)" in locked.stderr
        exported = run_client(
            UV,
            "export",
            "--no-config",
            "--directory",
            str(lock.parent),
            "--cache-dir",
            str(tmp_path / "uv-cache"),
            "--format",
            "pylock.toml",
            "--output-file",
            str(lock.parent / "pylock.toml"),
            "--index-url",
            up.url,
        )
        assert exported.returncode == 0, exported.stderr
        again = mirror(store, "--upstream", up.url, str(lock.parent / "pylock.toml"))
        assert again.returncode == 0, again.stderr
        assert "0 files copied" in again.stdout
        assert ", 0 failed" in again.stdout
    finally:
        stop(up.process)

    # the upstream is gone: the index serves the tree from its store, revalidation failing
    index = start_server(
        str(store),
        tmp_path,
        {"UPSTREAM_TTL": "0", "UPSTREAM_INDEX_URL": "", "UPSTREAM_MODE": ""},
        ["--upstream", up.url, "--upstream-mode", "mirror"],
    )
    try:
        assert f"upstream:   {up.url} (mirror:" in banner(index)
        pip_target, uv_target = tmp_path / "pip-target", tmp_path / "uv-target"
        installed = pip_install(index.url, pip_target, "acme-app", "public-extra")
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert "VERSION = '1.0'" in (pip_target / "acme_core.py").read_text()
        assert "VERSION = '1.0'" in (pip_target / "public_util.py").read_text()
        installed = uv_install(index.url, uv_target, "acme-app", "public-extra")
        assert installed.returncode == 0, installed.stderr
        for module in ("acme_app", "acme_core", "public_lib", "public_util", "public_extra"):
            assert (uv_target / f"{module}.py").is_file(), module
    finally:
        stop(index.process)


# -- what fails, and says why -----------------------------------------------------------------


def test_a_project_the_upstream_does_not_have_fails(
    upstream: tuple[Tree, LiveServer], tmp_path: Path
) -> None:
    tree, up = upstream
    store = index_store(tmp_path, tree)
    result = mirror(store, "--upstream", up.url, "public-util", "no-such-project")
    assert result.returncode == 1
    assert "error: no-such-project: not found at" in result.stderr
    assert "2 projects: 2 files copied" in result.stdout  # the rest is still mirrored


def test_a_lock_whose_hash_the_upstream_does_not_list_fails(
    upstream: tuple[Tree, LiveServer], tmp_path: Path
) -> None:
    tree, up = upstream
    store = index_store(tmp_path, tree)
    lock = uv_lock(tmp_path / "app", up.url, tmp_path / "uv-cache")
    text = lock.read_text()
    wheel = "public_extra-1.0-py3-none-any.whl"
    start = text.index("sha256:", text.index(wheel)) + len("sha256:")
    tampered = text[:start] + "0" * 64 + text[start + 64 :]
    lock.write_text(tampered)
    result = mirror(store, "--upstream", up.url, str(lock))
    assert result.returncode == 1
    assert f"{wheel}: hash mismatch: the lock has sha256 {'0' * 64}" in result.stderr
    assert wheel not in copies(store)
    assert "public_lib-1.0-py3-none-any.whl" in copies(store)


def test_a_malformed_lock_fetches_nothing(
    upstream: tuple[Tree, LiveServer], tmp_path: Path
) -> None:
    tree, up = upstream
    store = index_store(tmp_path, tree)
    lock = tmp_path / "uv.lock"
    lock.write_text("version = 7\n")
    result = mirror(store, "--upstream", up.url, "public-util", str(lock))
    assert result.returncode == 1
    assert f"error: {lock}: lock version 7 is not supported" in result.stderr
    assert not (store / PAGES).exists()


def test_private_projects_are_never_mirrored(
    upstream: tuple[Tree, LiveServer], tmp_path: Path
) -> None:
    tree, up = upstream
    store = index_store(tmp_path, tree)
    result = mirror(
        store, "--upstream", up.url, "public-util", env={"PRIVATE_PROJECTS": "public_util"}
    )
    assert result.returncode == 0, result.stderr
    assert "public-util: not mirrored: a private project" in result.stderr
    assert copies(store) == set()


def test_mirror_needs_an_upstream(tmp_path: Path) -> None:
    env = {"UPSTREAM_INDEX_URL": "", "FALLBACK_INDEX_URL": ""}
    result = mirror(tmp_path / "store", "requests", env=env)
    assert result.returncode == 2
    assert "no upstream: give --upstream URL or set UPSTREAM_INDEX_URL" in result.stderr


# -- serve's flags -----------------------------------------------------------------------------


def test_serve_flags_override_the_environment_and_the_banner_hides_credentials(
    tmp_path: Path,
) -> None:
    env = {"UPSTREAM_INDEX_URL": "https://other.example/simple/", "UPSTREAM_MODE": "mirror"}
    server = start_server(
        str(tmp_path / "store"),
        tmp_path,
        env,
        ["--upstream", "http://user:s3cret@127.0.0.1:9/simple/", "--upstream-mode", "proxy"],
    )
    try:
        text = banner(server)
    finally:
        stop(server.process)
    assert "upstream:   http://127.0.0.1:9/simple/ (proxy: pages served here" in text
    assert "s3cret" not in text
    assert "other.example" not in text


def test_serve_refuses_a_bad_upstream_flag(tmp_path: Path) -> None:
    result = run_client(
        SERVERLESS_PYPI, "serve", "--store", str(tmp_path), "--upstream", "ftp://x/simple/"
    )
    assert result.returncode == 2
    assert "must be an http(s) URL" in result.stderr


# -- reindex --check: cached copies nothing lists --------------------------------------------


def test_reindex_check_reports_orphaned_upstream_copies(
    upstream: tuple[Tree, LiveServer], tmp_path: Path
) -> None:
    tree, up = upstream
    store = index_store(tmp_path, tree)
    assert mirror(store, "--upstream", up.url, "public-util").returncode == 0
    clean = run_client(SERVERLESS_PYPI, "reindex", "--store", str(store), "--check")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    # a copy of a file no cached page lists (its page was dropped)
    (page,) = (store / PAGES).iterdir()
    page.unlink()
    check = run_client(SERVERLESS_PYPI, "reindex", "--store", str(store), "--check")
    assert check.returncode == 1
    assert "orphaned upstream copy: .serverless-pypi/upstream/files/public-util/" in check.stdout
    # both files (wheel and sdist), and the core metadata of each
    assert "upstream copies: 4 orphaned" in check.stdout
    assert "drift found" in check.stderr
    repaired = run_client(SERVERLESS_PYPI, "reindex", "--store", str(store))
    assert repaired.returncode == 0
    assert "upstream copies: 4 deleted" in repaired.stdout
    assert copies(store) == set()
    assert run_client(SERVERLESS_PYPI, "reindex", "--store", str(store), "--check").returncode == 0


def test_mirror_into_an_s3_store(
    upstream: tuple[Tree, LiveServer], s3_bucket: str, aws_env: dict[str, str], moto_url: str
) -> None:
    """The same copies in a bucket (multipart streaming upload, verified before it completes)."""
    tree, up = upstream
    store = f"s3://{s3_bucket}"
    result = run_client(
        SERVERLESS_PYPI,
        "mirror",
        "--store",
        store,
        "--upstream",
        up.url,
        "public-lib",
        env=aws_env,
    )
    assert result.returncode == 0, result.stderr
    assert "1 projects: 1 files copied" in result.stdout
    keys = {info.key for info in open_store(store, endpoint_url=moto_url).list(FILES)}
    assert [k.rpartition("/")[2] for k in keys] == ["public_lib-1.0-py3-none-any.whl"]
    # the copy is listed by its cached page: no orphan (the empty bucket has no project list)
    check = run_client(SERVERLESS_PYPI, "reindex", "--store", store, "--check", env=aws_env)
    assert "upstream cop" not in check.stdout, check.stdout


# -- which upstream serve and mirror use ------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "argv", "url", "mode"),
    [
        ({}, [], None, ""),
        ({"UPSTREAM_INDEX_URL": "https://a/simple/"}, [], "https://a/simple/", "mirror"),
        (
            {"UPSTREAM_INDEX_URL": "https://a/simple/", "UPSTREAM_MODE": "proxy"},
            ["--upstream", "https://b/simple/"],
            "https://b/simple/",
            "proxy",
        ),
        # the flag names the upstream: FALLBACK_INDEX_URL no longer conflicts with it
        (
            {"FALLBACK_INDEX_URL": "https://a/simple"},
            ["--upstream", "https://b/simple/"],
            "https://b/simple/",
            "mirror",
        ),
        # a mode on the command line applies to the FALLBACK_INDEX_URL upstream
        (
            {"FALLBACK_INDEX_URL": "https://a/simple"},
            ["--upstream-mode", "proxy"],
            "https://a/simple",
            "proxy",
        ),
        ({"FALLBACK_INDEX_URL": "https://a/simple"}, [], "https://a/simple", "redirect"),
    ],
)
def test_serve_upstream_flags_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    argv: list[str],
    url: str | None,
    mode: str,
) -> None:
    from serverless_pypi.adapters import cli

    for name in ("UPSTREAM_INDEX_URL", "UPSTREAM_MODE", "FALLBACK_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = cli.build_parser().parse_args(["serve", *argv])
    settings = cli._settings(args)
    assert (settings.upstream_index_url, settings.upstream_mode) == (url, mode)


def test_serve_upstream_mode_without_an_upstream_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from serverless_pypi.adapters import cli
    from serverless_pypi.core.config import ConfigError

    for name in ("UPSTREAM_INDEX_URL", "UPSTREAM_MODE", "FALLBACK_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    args = cli.build_parser().parse_args(["serve", "--upstream-mode", "proxy"])
    with pytest.raises(ConfigError, match="needs UPSTREAM_INDEX_URL"):
        cli._settings(args)
