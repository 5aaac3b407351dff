"""One index URL for everything (issue 12): real pip and uv through a private-first upstream.

The index (`serverless-pypi serve` with UPSTREAM_INDEX_URL and UPSTREAM_MODE) holds the private
packages; the public ones they depend on live upstream, in one of two upstreams started here:

- the project's own server over a second directory: PEP 691 JSON with hashes, sizes, upload
  times and core metadata;
- pypiserver over a directory: PEP 503 HTML only, `#sha256=` and nothing else.

The tree: acme-app (private) needs acme-core (private) and public-lib (public), which needs
public-util (public). The upstream also holds acme-core 99.0, the dependency-confusion attack,
which must never reach a client. Every install runs on a fresh client cache with one index URL.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import sys
import time
import tomllib
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.utils import parse_sdist_filename, parse_wheel_filename

from serverless_pypi.index import curation
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage import Store, open_store
from tests.helpers.clients import (
    SERVERLESS_PYPI,
    UV,
    create_token,
    pip_install,
    run_client,
    uv_install,
)
from tests.helpers.dists import make_sdist, make_wheel, sha256
from tests.helpers.index import JSON, publish_file
from tests.helpers.servers import LiveServer, start_server, stop
from tests.helpers.upstream_e2e import start_pypiserver

pytestmark = pytest.mark.slow

MODES = ("redirect", "proxy", "mirror")
# the documented layout of the upstream namespace in the store (docs/upstream.md)
UPSTREAM = ".serverless-pypi/upstream/"
#: the tree's modules and the versions an install of acme-app must put in place
TREE = {"acme_app": "1.0", "acme_core": "1.0", "public_lib": "1.0", "public_util": "1.0"}


@dataclass
class Dists:
    private: list[Path]  # published to the index's store
    public: list[Path]  # published upstream

    def public_file(self, filename: str) -> Path:
        (path,) = (p for p in self.public if p.name == filename)
        return path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    private, public = tmp_path_factory.mktemp("private"), tmp_path_factory.mktemp("public")
    return Dists(
        private=[
            make_wheel(private, "acme-app", "1.0", requires=("acme-core>=1", "public-lib>=1")),
            make_wheel(private, "acme-core", "1.0"),
        ],
        public=[
            make_wheel(public, "public-lib", "1.0", requires=("public-util>=1",)),
            make_wheel(public, "public-util", "1.0"),
            make_sdist(public, "public-util", "1.0"),
            # the attack: a stranger's upload under the private name, with a higher version
            make_wheel(public, "acme-core", "99.0", payload="PWNED = True\n"),
            # a name no one published here, but PRIVATE_PROJECTS claims
            make_wheel(public, "acme-ghost", "1.0"),
        ],
    )


def json_upstream(directory: Path, log_dir: Path, files: list[Path]) -> LiveServer:
    """The project's own server over `directory`, holding `files`: a PEP 691 upstream."""
    store = open_store(str(directory))
    for path in files:
        publish_file(store, path)
    return start_server(str(directory), log_dir)


@pytest.fixture(scope="module")
def upstreams(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """kind -> simple index URL: "json" (our own server) and "html" (pypiserver)."""
    logs = tmp_path_factory.mktemp("upstream-logs")
    ours = json_upstream(tmp_path_factory.mktemp("json-upstream"), logs, dists.public)
    flat = tmp_path_factory.mktemp("html-upstream")
    for path in dists.public:
        (flat / path.name).write_bytes(path.read_bytes())
    theirs = start_pypiserver(flat, logs)
    yield {"json": ours.url, "html": theirs.url}
    stop(ours.process)
    theirs.stop()


Index = Callable[..., LiveServer]


@pytest.fixture
def start_index(dists: Dists, tmp_path: Path) -> Iterator[Index]:
    """Start the index over a store holding the private packages, with an upstream."""
    started: list[LiveServer] = []
    location = tmp_path / "index-store"
    store = open_store(str(location))
    for path in dists.private:
        publish_file(store, path)

    def start(
        upstream: str, mode: str, ttl: int = 300, private: str = "", **extra: str
    ) -> LiveServer:
        env = {
            "UPSTREAM_INDEX_URL": upstream,
            "UPSTREAM_MODE": mode,
            "UPSTREAM_TTL": str(ttl),
            "PRIVATE_PROJECTS": private,
            **extra,
        }
        server = start_server(str(location), tmp_path, env)
        started.append(server)
        return server

    yield start
    for server in started:
        stop(server.process)


# -- helpers -------------------------------------------------------------------------------


def fetch(url: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET without following redirects: status, headers (lower-case names), body."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request("GET", parts.path, headers={"Accept": accept} if accept else {})
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


def json_page(url: str) -> dict[str, dict[str, object]]:
    """filename -> file entry of the PEP 691 page at `url`."""
    status, _, body = fetch(url, JSON)
    assert status == 200, (url, status, body[:300])
    return {f["filename"]: f for f in json.loads(body)["files"]}


def versions(site: Path) -> dict[str, str]:
    """module -> VERSION of the test wheels installed in `site`."""
    found = {}
    for path in site.glob("*.py"):
        match = re.search(r"VERSION = '([^']+)'", path.read_text())
        if match:
            found[path.stem] = match.group(1)
    return found


def assert_ok(result: object) -> None:
    assert result.returncode == 0, result.stdout + result.stderr  # type: ignore[attr-defined]


def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


def project_of(path: Path) -> str:
    """The normalized project name of the distribution at `path`."""
    if path.name.endswith(".whl"):
        return parse_wheel_filename(path.name)[0]
    return parse_sdist_filename(path.name)[0]


def copy_key(name: str, path: Path) -> str:
    """Where the pulled-through copy of the upstream file `path` lives in the index's store."""
    return f"{UPSTREAM}files/{name}/{sha256(path)}/{path.name}"


def copies(store: Store, name: str) -> set[str]:
    return {info.key for info in store.list(f"{UPSTREAM}files/{name}/")}


def wait_for_copies(store: Store, dists: Dists, *filenames: str) -> None:
    for filename in filenames:
        path = dists.public_file(filename)
        name = project_of(path)
        wait_until(lambda: copy_key(name, path) in copies(store, name), 30, f"a copy of {filename}")


def request_lines(server: LiveServer) -> list[str]:
    return [line for line in server.log.read_text(errors="replace").splitlines() if "GET /" in line]


def outage_lines(server: LiveServer, upstream: str) -> list[str]:
    """The logged records, other than requests, that name the upstream: what an outage
    logged (the banner, which names it too, is not a record)."""
    lines = server.log.read_text(errors="replace").splitlines()
    records = [line for line in lines if re.match(r"\d{4}-\d\d-\d\d ", line)]
    return [line for line in records if upstream in line and "GET /" not in line]


def assert_no_server_errors(server: LiveServer) -> None:
    failed = [line for line in request_lines(server) if re.search(r" 5\d\d ", line)]
    assert not failed, failed


PYPROJECT = """\
[project]
name = "consumer"
version = "0.1"
requires-python = ">=3.11"
dependencies = ["acme-app"]

[[tool.uv.index]]
name = "company"
url = "{index}"
default = true
"""


def uv(command: str, project: Path, cache: str, *args: str) -> None:
    """`uv <command>` in `project` on the cache `project/<cache>` (fresh unless reused)."""
    # no user configuration: uv reads the project's pyproject.toml and nothing else
    env = {"UV_PYTHON_DOWNLOADS": "never", "XDG_CONFIG_HOME": str(project / ".config")}
    where = ("--directory", str(project), "--python", sys.executable)
    assert_ok(run_client(UV, command, *args, *where, "--cache-dir", str(project / cache), env=env))


def uv_lock(index: str, project: Path) -> dict[str, object]:
    """`uv lock` of a project that needs acme-app, from `index` alone; the parsed uv.lock."""
    project.mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT.format(index=index))
    uv("lock", project, ".lock-cache")
    return tomllib.loads((project / "uv.lock").read_text())


def uv_sync(project: Path, cache: str) -> None:
    """`uv sync --locked` on a fresh cache: the tree is installed, exactly."""
    uv("sync", project, cache, "--locked")
    (site,) = (project / ".venv").glob("lib/python*/site-packages")
    assert versions(site) == TREE


def uv_lock_and_sync(index: str, project: Path) -> dict[str, object]:
    lock = uv_lock(index, project)
    uv_sync(project, ".sync-cache")
    return lock


def locked_urls(lock: dict[str, object]) -> list[str]:
    urls = []
    for package in lock["package"]:  # type: ignore[attr-defined]
        urls += [w["url"] for w in package.get("wheels", [])]
        if "sdist" in package:
            urls.append(package["sdist"]["url"])
    return urls


# -- one index URL, every mode, every client --------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["json", "html"])
def test_one_index_url_installs_private_and_public(
    kind: str,
    mode: str,
    upstreams: dict[str, str],
    start_index: Index,
    dists: Dists,
    tmp_path: Path,
) -> None:
    upstream = upstreams[kind]
    index = start_index(upstream, mode)
    store = open_store(index.store)

    # pip and uv, one index URL, no cache: the private package and its public dependencies,
    # and the private acme-core 1.0, never the upstream's 99.0
    assert_ok(pip_install(index.url, tmp_path / "pip", "acme-app"))
    assert versions(tmp_path / "pip") == TREE
    assert_ok(uv_install(index.url, tmp_path / "uv", "acme-app"))
    assert versions(tmp_path / "uv") == TREE
    lock = uv_lock_and_sync(index.url, tmp_path / "project")

    wheel = dists.public_file("public_lib-1.0-py3-none-any.whl")
    if mode == "redirect":
        # today's fallback: the upstream's own page, so its own file URLs
        status, headers, _ = fetch(f"{index.url}public-lib/")
        assert status == 302
        assert headers["location"].startswith(upstream.rstrip("/"))
        return
    # the lockfile records this index only: every file URL is a stable URL on it
    assert all(url.startswith(index.url) for url in locked_urls(lock)), locked_urls(lock)
    # the project list: the private projects and the upstream ones the store holds, never the
    # upstream's whole list (acme-ghost is there, nobody asked for it)
    status, _, body = fetch(index.url, JSON)
    assert status == 200
    listed = {p["name"] for p in json.loads(body)["projects"]}
    assert listed == {"acme-app", "acme-core", "public-lib", "public-util"}
    if mode == "proxy":
        status, headers, _ = fetch(f"{index.url}public-lib/{wheel.name}")
        assert status == 302
        location = headers["location"]
        assert location.startswith(upstream.removesuffix("simple/")), location
        assert not copies(store, "public-lib")
    else:
        # mirror: pulled into the store by the first downloads, served from it since
        wait_for_copies(
            store, dists, "public_lib-1.0-py3-none-any.whl", "public_util-1.0-py3-none-any.whl"
        )
        status, _, body = fetch(f"{index.url}public-lib/{wheel.name}")
        assert (status, body) == (200, wheel.read_bytes())
        # the sdist nobody downloaded is not copied
        assert copies(store, "public-util") == {
            copy_key("public-util", dists.public_file("public_util-1.0-py3-none-any.whl"))
        }
    # the page keeps what the upstream says about each file, with links on the index
    served = json_page(f"{index.url}public-util/")
    assert set(served) == {"public_util-1.0-py3-none-any.whl", "public_util-1.0.tar.gz"}
    for filename, entry in served.items():
        assert entry["url"] == filename  # `<project>/<file>` relative to the page
        assert entry["hashes"] == {"sha256": sha256(dists.public_file(filename))}
    if kind == "json":
        original = json_page(f"{upstream}public-util/")
        for filename, entry in served.items():
            for field in ("size", "upload-time", "core-metadata", "yanked", "requires-python"):
                assert entry.get(field) == original[filename].get(field), (filename, field)
        assert "core-metadata" in served["public_util-1.0-py3-none-any.whl"]
        # pip read the core metadata from the index, verified and cached in the store
        log = "\n".join(request_lines(index))
        assert f"GET /simple/public-lib/{wheel.name}.metadata 200" in log
        assert list(store.list(f"{UPSTREAM}metadata/public-lib/"))
    else:
        # an HTML-only upstream has no upload times, no sizes and no metadata files
        for entry in served.values():
            assert "upload-time" not in entry
            assert "size" not in entry
            assert not entry.get("core-metadata")
    assert_no_server_errors(index)


# -- private first: the dependency-confusion rule --------------------------------------------


@pytest.mark.parametrize("mode", ["proxy", "mirror"])
def test_a_public_version_never_reaches_a_private_project(
    mode: str, upstreams: dict[str, str], start_index: Index, dists: Dists, tmp_path: Path
) -> None:
    # acme-core has files in the store: private, whatever PRIVATE_PROJECTS says
    index = start_index(upstreams["json"], mode, private="acme-ghost")
    attack = "acme_core-99.0-py3-none-any.whl"
    for accept in (JSON, "text/html"):
        status, _, body = fetch(f"{index.url}acme-core/", accept)
        assert status == 200
        assert b"acme_core-1.0-py3-none-any.whl" in body
        assert b"99.0" not in body
    for path in (attack, f"{attack}.metadata"):
        assert fetch(f"{index.url}acme-core/{path}")[0] == 404
    # a name PRIVATE_PROJECTS claims is never taken from the upstream, even absent here
    assert fetch(f"{index.url}acme-ghost/", JSON)[0] == 404
    assert fetch(f"{index.url}acme-ghost/acme_ghost-1.0-py3-none-any.whl")[0] == 404

    # real clients: 1.0 is what they get, and asking for more finds nothing
    assert_ok(pip_install(index.url, tmp_path / "pip", "acme-core"))
    assert versions(tmp_path / "pip") == {"acme_core": "1.0"}
    assert_ok(uv_install(index.url, tmp_path / "uv", "acme-core"))
    assert versions(tmp_path / "uv") == {"acme_core": "1.0"}
    assert pip_install(index.url, tmp_path / "pip2", "acme-core>1").returncode != 0
    assert uv_install(index.url, tmp_path / "uv2", "acme-core>1").returncode != 0
    assert uv_install(index.url, tmp_path / "uv3", "acme-ghost").returncode != 0
    assert not copies(open_store(index.store), "acme-core")


# -- availability: the upstream stopped mid-run -----------------------------------------------


def test_installs_again_with_the_upstream_down(
    start_index: Index, dists: Dists, tmp_path: Path
) -> None:
    upstream = json_upstream(tmp_path / "upstream", tmp_path, dists.public)
    try:
        index = start_index(upstream.url, "mirror", ttl=1)
        assert_ok(pip_install(index.url, tmp_path / "first", "acme-app"))
        store = open_store(index.store)
        wait_for_copies(
            store, dists, "public_lib-1.0-py3-none-any.whl", "public_util-1.0-py3-none-any.whl"
        )
    finally:
        stop(upstream.process)
    time.sleep(1.2)  # past the TTL: every cached page is due for revalidation, which fails

    # the same process: the last good pages (stale) and the copies
    assert_ok(pip_install(index.url, tmp_path / "pip", "acme-app"))
    assert versions(tmp_path / "pip") == TREE
    assert_ok(uv_install(index.url, tmp_path / "uv", "acme-app"))
    assert versions(tmp_path / "uv") == TREE
    # a project never cached: a quick 404, not a client timeout
    started = time.monotonic()
    assert fetch(f"{index.url}never-cached/", JSON)[0] == 404
    assert time.monotonic() - started < 5
    # the outage is logged once, not per request
    assert len(outage_lines(index, upstream.url)) == 1, outage_lines(index, upstream.url)

    # a new process over the same store: everything it needs comes from the store
    stop(index.process)
    again = start_index(upstream.url, "mirror", ttl=1)
    assert_ok(uv_install(again.url, tmp_path / "uv-again", "acme-app"))
    assert versions(tmp_path / "uv-again") == TREE
    started = time.monotonic()
    assert fetch(f"{again.url}never-cached/", JSON)[0] == 404
    assert time.monotonic() - started < 5
    assert_no_server_errors(again)


def test_a_silent_upstream_costs_seconds_not_a_client_timeout(start_index: Index) -> None:
    # an upstream that accepts connections and never answers (the kernel completes them)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        upstream = f"http://127.0.0.1:{silent.getsockname()[1]}/simple/"
        index = start_index(upstream, "mirror", UPSTREAM_TIMEOUT="1")
        started = time.monotonic()
        assert fetch(f"{index.url}public-lib/", JSON)[0] == 404
        assert time.monotonic() - started < 4  # UPSTREAM_TIMEOUT, not the client's
        # while it is down, other names are not even asked for: at once
        started = time.monotonic()
        assert fetch(f"{index.url}public-util/", JSON)[0] == 404
        assert time.monotonic() - started < 0.5
        # and the private projects are served as ever
        assert fetch(f"{index.url}acme-core/", JSON)[0] == 200
        assert_no_server_errors(index)


def test_mirror_a_uv_lock_then_sync_with_the_upstream_down(
    start_index: Index, dists: Dists, tmp_path: Path
) -> None:
    upstream = json_upstream(tmp_path / "upstream", tmp_path, dists.public)
    try:
        index = start_index(upstream.url, "mirror")
        project = tmp_path / "project"
        uv_lock(index.url, project)  # metadata only: nothing is downloaded, nothing copied
        store = open_store(index.store)
        assert not list(store.list(f"{UPSTREAM}files/"))
        mirrored = run_client(
            SERVERLESS_PYPI,
            "mirror",
            "--store",
            index.store,
            "--upstream",
            upstream.url,
            str(project / "uv.lock"),
        )
        assert_ok(mirrored)
    finally:
        stop(upstream.process)
    # exactly the public files the lock names, copied ahead of any download
    public = [p for p in dists.public if p.name.startswith("public_")]
    expected = {copy_key(project_of(p), p) for p in public}
    assert {i.key for i in store.list(f"{UPSTREAM}files/")} == expected
    uv_sync(project, ".offline-cache")
    assert_no_server_errors(index)


# -- credentials: a locked index, an upstream that needs them ---------------------------------


def fetch_as(url: str, token: str) -> int:
    """The status of a GET of `url` with the token as HTTP Basic credentials."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    basic = base64.b64encode(f"__token__:{token}".encode()).decode()
    try:
        connection.request("GET", parts.path, headers={"Authorization": f"Basic {basic}"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def assert_not_logged(log: str, token: str) -> None:
    encoded = base64.b64encode(f"__token__:{token}".encode()).decode()
    assert token not in log
    assert encoded not in log


def test_a_locked_index_locks_upstream_projects_too(
    upstreams: dict[str, str], start_index: Index, tmp_path: Path
) -> None:
    index = start_index(upstreams["json"], "mirror", REQUIRE_AUTH_FOR_READ="1")
    token = create_token(index.store, "--scope", "read")
    wheel = "public_lib-1.0-py3-none-any.whl"
    for path in ("public-lib/", f"public-lib/{wheel}", f"public-lib/{wheel}.metadata", ""):
        assert fetch(f"{index.url}{path}")[0] == 401, path
        assert fetch_as(f"{index.url}{path}", "spypi_0000000000000000_wrong") == 401, path
    assert fetch_as(f"{index.url}public-lib/", token) == 200
    url = index.url.replace("http://", f"http://__token__:{token}@")
    assert_ok(pip_install(url, tmp_path / "pip", "acme-app"))
    assert versions(tmp_path / "pip") == TREE
    assert_not_logged(index.log.read_text(errors="replace"), token)


def test_an_upstream_that_needs_credentials(
    start_index: Index, dists: Dists, tmp_path: Path
) -> None:
    # the upstream is a locked index of its own: pages and files need its read token
    location = tmp_path / "upstream"
    store = open_store(str(location))
    for path in dists.public:
        publish_file(store, path)
    secret = create_token(str(location), "--scope", "read")
    upstream = start_server(str(location), tmp_path, {"REQUIRE_AUTH_FOR_READ": "1"})
    try:
        assert fetch(f"{upstream.url}public-lib/")[0] == 401
        with_secret = upstream.url.replace("http://", f"http://__token__:{secret}@")
        index = start_index(with_secret, "mirror")
        # clients never get the upstream's credentials: its files are copied ahead (a
        # download redirected to the upstream would be refused to the client)
        mirrored = run_client(
            SERVERLESS_PYPI,
            "mirror",
            "--store",
            index.store,
            "--upstream",
            with_secret,
            "public-lib",
            "public-util",
        )
        assert_ok(mirrored)
        assert_ok(pip_install(index.url, tmp_path / "pip", "acme-app"))
        assert versions(tmp_path / "pip") == TREE
        assert_ok(uv_install(index.url, tmp_path / "uv", "acme-app"))
        assert versions(tmp_path / "uv") == TREE
        # the credentials appear nowhere: not in the index's log, its pages, the command's
        # output; the upstream saw them (its own origin) and answered
        for text in (
            index.log.read_text(errors="replace"),
            mirrored.stdout + mirrored.stderr,
            fetch(f"{index.url}public-lib/", JSON)[2].decode(),
            fetch(f"{index.url}public-lib/", "text/html")[2].decode(),
        ):
            assert_not_logged(text, secret)
        # the one refusal is this test's own request without credentials
        assert [line for line in request_lines(upstream) if " 401 " in line] == [
            request_lines(upstream)[0]
        ]
        assert_no_server_errors(index)
    finally:
        stop(upstream.process)


# -- upstream changes win ---------------------------------------------------------------------


def test_yanked_and_removed_upstream(start_index: Index, tmp_path: Path) -> None:
    files = tmp_path / "churn"
    files.mkdir()
    old, new = (make_wheel(files, "public-churn", v) for v in ("1.0", "2.0"))
    upstream = json_upstream(tmp_path / "upstream", tmp_path, [old, new])
    upstream_catalog = Catalog(open_store(upstream.store))
    try:
        index = start_index(upstream.url, "mirror", ttl=1)
        store = open_store(index.store)
        assert_ok(pip_install(index.url, tmp_path / "before", "public-churn"))
        assert versions(tmp_path / "before") == {"public_churn": "2.0"}
        key = copy_key("public-churn", new)
        wait_until(lambda: key in copies(store, "public-churn"), 30, "a copy of 2.0")

        # yanked upstream: yanked here after the TTL, so clients skip it
        curation.yank(upstream_catalog, "public-churn", "2.0", reason="broken build")
        page = f"{index.url}public-churn/"
        wait_until(lambda: json_page(page)[new.name].get("yanked") == "broken build", 10, "yank")
        assert b'data-yanked="broken build"' in fetch(page, "text/html")[2]
        assert_ok(pip_install(index.url, tmp_path / "pip", "public-churn"))
        assert versions(tmp_path / "pip") == {"public_churn": "1.0"}
        assert_ok(uv_install(index.url, tmp_path / "uv", "public-churn"))
        assert versions(tmp_path / "uv") == {"public_churn": "1.0"}

        # removed upstream: no longer listed nor served here, although a copy was cached
        curation.remove(upstream_catalog, "public-churn", "2.0")
        wait_until(lambda: new.name not in json_page(page), 10, "the removal")
        assert new.name.encode() not in fetch(page, "text/html")[2]
        assert fetch(f"{page}{new.name}")[0] == 404
        assert fetch(f"{page}{new.name}.metadata")[0] == 404
        # and the copy is kept only as long as something lists it
        wait_until(lambda: key not in copies(store, "public-churn"), 10, "the copy deleted")
        assert pip_install(index.url, tmp_path / "pip2", "public-churn==2.0").returncode != 0
        assert_ok(uv_install(index.url, tmp_path / "uv2", "public-churn"))
        assert versions(tmp_path / "uv2") == {"public_churn": "1.0"}
        assert_no_server_errors(index)
    finally:
        stop(upstream.process)


# -- an upstream that serves other bytes than its hash says -----------------------------------


def test_bytes_that_do_not_match_the_upstream_hash(start_index: Index, tmp_path: Path) -> None:
    files, other = tmp_path / "files", tmp_path / "other"
    files.mkdir()
    other.mkdir()
    good = make_wheel(files, "public-good", "1.0")
    bad = make_wheel(files, "public-bad", "1.0")
    upstream = json_upstream(tmp_path / "upstream", tmp_path, [good, bad])
    # the upstream's page keeps the published hash; its file now holds other bytes
    tampered = make_wheel(other, "public-bad", "1.0", payload="TAMPERED = True\n")
    (tmp_path / "upstream" / "public-bad" / bad.name).write_bytes(tampered.read_bytes())
    try:
        index = start_index(upstream.url, "mirror")
        store = open_store(index.store)
        for result in (
            pip_install(index.url, tmp_path / "pip", "public-bad"),
            uv_install(index.url, tmp_path / "uv", "public-bad"),
        ):
            assert result.returncode != 0
            assert "hash" in (result.stdout + result.stderr).lower()
        assert not (tmp_path / "pip" / "public_bad.py").exists()
        # a good file from the same upstream is copied: the puller runs, and refuses the bad one
        assert_ok(pip_install(index.url, tmp_path / "good", "public-good"))
        wait_until(
            lambda: copy_key("public-good", good) in copies(store, "public-good"), 30, "good"
        )
        wait_until(
            lambda: any(
                bad.name in line and "GET /" not in line
                for line in index.log.read_text(errors="replace").splitlines()
            ),
            10,
            "the refusal logged",
        )
        assert not copies(store, "public-bad")
        # the index still sends clients to the upstream for it, never to a copy
        status, headers, _ = fetch(f"{index.url}public-bad/{bad.name}")
        assert status == 302
        assert headers["location"].startswith(upstream.url.removesuffix("simple/"))
        # `.serverless-pypi/upstream/files/<name>/...`: public-good's copy only
        assert {i.key.split("/")[3] for i in store.list(f"{UPSTREAM}files/")} == {"public-good"}
    finally:
        stop(upstream.process)
