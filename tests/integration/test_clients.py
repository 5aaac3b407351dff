"""Real clients against a live `serverless-pypi serve`: pip, uv and pypi-simple.

Each test starts the server as a subprocess over a local directory or over S3 in moto's
standalone server, and runs the real client binaries from the test environment.
"""

from __future__ import annotations

import base64
import http.client
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from pypi_simple import ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY, PyPISimple

from serverless_pypi.core.model import Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.render import API_VERSION
from serverless_pypi.index.catalog import Catalog, Change
from serverless_pypi.storage import Store, open_store
from tests.helpers.clients import UV
from tests.helpers.dists import make_sdist, make_wheel, sha256
from tests.helpers.index import publish_file
from tests.helpers.servers import BIN, LiveServer

pytestmark = pytest.mark.slow

PYTHON = sys.executable
SECRET = "n0t-a-real-t0ken"
CLIENT_ENV = {
    # no user or site configuration, no keyring, no version check, no prompts
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "PIP_KEYRING_PROVIDER": "disabled",
    "UV_NO_CONFIG": "1",
    "UV_PYTHON_DOWNLOADS": "never",
    "UV_KEYRING_PROVIDER": "disabled",
    "NO_COLOR": "1",
}

Start = Callable[..., LiveServer]


def run(*args: str, ok: bool = True, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **CLIENT_ENV},
        check=False,
    )
    output = f"$ {' '.join(args)}\n{result.stdout}\n{result.stderr}"
    if ok:
        assert result.returncode == 0, output
    else:
        assert result.returncode != 0, output
    return result


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://__token__:{SECRET}@")


def server_log(server: LiveServer) -> str:
    return server.log.read_text(errors="replace")


def assert_no_credentials_logged(server: LiveServer) -> None:
    log = server_log(server)
    encoded = base64.b64encode(f"__token__:{SECRET}".encode()).decode()
    for leaked in (SECRET, encoded, "Authorization", "X-Amz-Signature"):
        assert leaked not in log


def installed_version(target: Path, module: str) -> str:
    namespace: dict[str, object] = {}
    exec((target / f"{module}.py").read_text(), namespace)  # noqa: S102 (our own test wheel)
    return str(namespace["VERSION"])


@pytest.fixture(params=["local", "s3"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Store]:
    """`(--store argument, store)`: a directory, or a bucket in moto."""
    if request.param == "local":
        location = str(tmp_path / "packages")
        return location, open_store(location)
    request.getfixturevalue("aws_env")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}", open_store(f"s3://{bucket}")


def publish_all(store: Store, *paths: Path) -> None:
    for path in paths:
        publish_file(store, path)


def dependency_set(work: Path) -> dict[str, Path]:
    """acme-lib needs acme-util; acme-util 2.0 refuses this Python, so 1.0 must be chosen."""
    work.mkdir(exist_ok=True)
    return {
        "lib": make_wheel(work, "acme-lib", "1.0", requires=("acme-util>=1",)),
        "util1": make_wheel(work, "acme-util", "1.0", requires_python=">=3.8"),
        "util2": make_wheel(work, "acme-util", "2.0", requires_python="<3"),
        "util_sdist": make_sdist(work, "acme-util", "1.0", metadata_version="2.2"),
    }


# -- pip ----------------------------------------------------------------------------------


def test_pip_install_and_download(
    index: tuple[str, Store], live_server: Start, tmp_path: Path
) -> None:
    location, store = index
    dists = dependency_set(tmp_path / "dists")
    # publish with the command line, the way a release job would
    run(
        str(BIN / "serverless-pypi"),
        "publish",
        "--store",
        location,
        *(str(p) for p in dists.values()),
    )
    server = live_server(location)
    url = with_credentials(server.url)
    target = tmp_path / "target"
    run(
        PYTHON,
        "-m",
        "pip",
        "install",
        "--no-cache-dir",
        "--index-url",
        url,
        "--target",
        str(target),
        "acme-lib",
    )
    assert installed_version(target, "acme_lib") == "1.0"
    assert installed_version(target, "acme_util") == "1.0"  # data-requires-python honoured
    log = server_log(server)
    # metadata first (PEP 658), and only the chosen wheels downloaded
    assert f"GET /simple/acme-util/{dists['util1'].name}.metadata 200" in log
    # the download itself: the bytes, or a redirect to a presigned S3 URL
    download_status = "302" if location.startswith("s3://") else "200"
    assert f"GET /simple/acme-util/{dists['util1'].name} {download_status} " in log
    assert f"GET /simple/acme-util/{dists['util2'].name} " not in log

    dest = tmp_path / "downloads"
    run(
        PYTHON,
        "-m",
        "pip",
        "download",
        "--no-cache-dir",
        "--index-url",
        url,
        "--dest",
        str(dest),
        "--no-deps",
        "--only-binary",
        ":all:",
        "acme-lib==1.0",
    )
    (downloaded,) = dest.iterdir()
    assert downloaded.name == dists["lib"].name
    assert downloaded.read_bytes() == dists["lib"].read_bytes()
    assert_no_credentials_logged(server)


def test_pip_installs_from_a_copied_reference_layout(live_server: Start, tmp_path: Path) -> None:
    """Files copied into `<folder>/<file>` with no derived data, folder un-normalized."""
    packages = tmp_path / "packages"
    wheel = make_wheel(tmp_path, "Acme.Tool", "3.1")
    (packages / "Acme_Tool").mkdir(parents=True)
    (packages / "Acme_Tool" / wheel.name).write_bytes(wheel.read_bytes())
    server = live_server(str(packages))
    target = tmp_path / "target"
    run(
        PYTHON,
        "-m",
        "pip",
        "install",
        "--no-cache-dir",
        "--index-url",
        server.url,
        "--target",
        str(target),
        "acme.tool",
    )
    assert installed_version(target, "acme_tool") == "3.1"
    assert "GET /simple/acme-tool/ 200" in server_log(server)


# -- uv -----------------------------------------------------------------------------------


def uv_venv(path: Path) -> Path:
    run(UV, "venv", "--no-config", "--python", PYTHON, "--quiet", str(path))
    return path / "bin" / "python"


def uv_install(python: Path, cache: Path, url: str, *args: str, ok: bool = True) -> str:
    result = run(
        UV,
        "pip",
        "install",
        "--no-config",
        "--python",
        str(python),
        "--cache-dir",
        str(cache),
        "--index-url",
        url,
        *args,
        ok=ok,
    )
    return result.stdout + result.stderr


def site_packages(python: Path) -> Path:
    (path,) = python.parent.parent.glob("lib/python*/site-packages")
    return path


def test_uv_install_fetches_metadata_and_checks_hashes(
    index: tuple[str, Store], live_server: Start, tmp_path: Path
) -> None:
    location, store = index
    dists = dependency_set(tmp_path / "dists")
    publish_all(store, *dists.values())
    server = live_server(location)
    url = with_credentials(server.url)
    python = uv_venv(tmp_path / "venv")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        f"acme-lib==1.0 --hash=sha256:{sha256(dists['lib'])}\n"
        f"acme-util==1.0 --hash=sha256:{sha256(dists['util1'])}\n"
    )
    uv_install(python, tmp_path / "cache1", url, "--require-hashes", "-r", str(requirements))
    assert installed_version(site_packages(python), "acme_util") == "1.0"
    log = server_log(server)
    assert f"GET /simple/acme-lib/{dists['lib'].name}.metadata 200" in log
    assert f"GET /simple/acme-util/{dists['util1'].name}.metadata 200" in log

    # a pinned hash that does not match is refused
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(f"acme-util==1.0 --hash=sha256:{'0' * 64}\n")
    output = uv_install(
        uv_venv(tmp_path / "venv2"),
        tmp_path / "cache2",
        url,
        "--require-hashes",
        "-r",
        str(wrong),
        ok=False,
    )
    assert "hash mismatch" in output.lower()

    # and so is a file whose bytes disagree with the hash the page advertises
    def corrupt(project: Manifest) -> Change[None]:
        record = project.files[dists["util1"].name]
        project.files[record.filename] = record.with_changes(sha256="1" * 64)
        return Change(None)

    Catalog(store).update_project(NormalizedName("acme-util"), corrupt)
    output = uv_install(
        uv_venv(tmp_path / "venv3"), tmp_path / "cache3", url, "acme-util==1.0", ok=False
    )
    assert "hash mismatch" in output.lower()
    assert_no_credentials_logged(server)


def test_uv_exclude_newer_honours_upload_time(live_server: Start, tmp_path: Path) -> None:
    location = str(tmp_path / "packages")
    store = open_store(location)
    old = make_wheel(tmp_path, "timely", "1.0")
    new = make_wheel(tmp_path, "timely", "2.0")
    publish_all(store, old)

    def backdate(project: Manifest) -> Change[None]:
        record = project.files[old.name]
        project.files[old.name] = record.with_changes(upload_time="2024-03-01T12:00:00.000000Z")
        return Change(None)

    Catalog(store).update_project(NormalizedName("timely"), backdate)
    publish_all(store, new)
    server = live_server(location)
    python = uv_venv(tmp_path / "venv")
    uv_install(
        python, tmp_path / "cache1", server.url, "--exclude-newer", "2025-01-01T00:00:00Z", "timely"
    )
    assert installed_version(site_packages(python), "timely") == "1.0"
    python2 = uv_venv(tmp_path / "venv2")
    uv_install(python2, tmp_path / "cache2", server.url, "--exclude-newer", "2099-01-01", "timely")
    assert installed_version(site_packages(python2), "timely") == "2.0"
    # nothing was published before the first upload time: nothing to install
    output = uv_install(
        uv_venv(tmp_path / "venv3"),
        tmp_path / "cache3",
        server.url,
        "--exclude-newer",
        "2024-01-01T00:00:00Z",
        "timely",
        ok=False,
    )
    assert "exclude-newer" in output  # uv says why


# -- pypi-simple --------------------------------------------------------------------------


def test_pypi_simple_reads_the_same_from_html_and_json(
    index: tuple[str, Store], live_server: Start, tmp_path: Path
) -> None:
    location, store = index
    wheel = make_wheel(tmp_path, "Strict_Pkg", "1.0", requires_python=">=3.8, <4")
    sdist = make_sdist(tmp_path, "Strict_Pkg", "1.0", metadata_version="2.2")
    legacy = make_sdist(tmp_path, "Strict_Pkg", "0.9", metadata_version="2.1")
    publish_all(store, wheel, sdist, legacy)

    def yank(project: Manifest) -> Change[None]:
        record = project.files[legacy.name]
        project.files[legacy.name] = record.with_changes(yanked='broken <build> & "quotes"')
        return Change(None)

    Catalog(store).update_project(NormalizedName("strict-pkg"), yank)
    server = live_server(location)
    with PyPISimple(server.url) as client:
        pages = {
            accept: client.get_project_page("Strict_Pkg", accept=accept)
            for accept in (ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY)
        }
        html, as_json = pages[ACCEPT_HTML_ONLY], pages[ACCEPT_JSON_ONLY]

        def summary(page: object) -> list[tuple[object, ...]]:
            return [
                (
                    p.filename,
                    p.url,
                    p.version,
                    p.package_type,
                    p.digests,
                    p.requires_python,
                    p.has_metadata,
                    p.metadata_digests,
                    p.is_yanked,
                    p.yanked_reason,
                )
                for p in page.packages  # type: ignore[attr-defined]
            ]

        assert summary(html) == summary(as_json)
        assert html.repository_version == as_json.repository_version == API_VERSION
        by_name = {p.filename: p for p in as_json.packages}
        assert by_name[wheel.name].digests == {"sha256": sha256(wheel)}
        assert by_name[wheel.name].requires_python == ">=3.8, <4"
        assert by_name[wheel.name].has_metadata and by_name[sdist.name].has_metadata
        assert not by_name[legacy.name].has_metadata  # PKG-INFO 2.1 is not trusted (PEP 643)
        assert by_name[legacy.name].yanked_reason == 'broken <build> & "quotes"'
        assert by_name[wheel.name].size == wheel.stat().st_size
        assert by_name[wheel.name].upload_time is not None
        assert as_json.versions == ["0.9", "1.0"]
        for page_url in (p.url for p in as_json.packages):
            assert page_url.startswith(server.url + "strict-pkg/")  # stable index URLs

        # the root page, both ways
        roots = [
            client.get_index_page(accept=accept) for accept in (ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY)
        ]
        assert roots[0].projects == roots[1].projects == ["strict-pkg"]

        # downloads and metadata verify against the advertised digests
        client.download_package(by_name[wheel.name], tmp_path / "dl" / wheel.name, verify=True)
        assert (tmp_path / "dl" / wheel.name).read_bytes() == wheel.read_bytes()
        metadata = client.get_package_metadata(by_name[wheel.name], verify=True)
        with zipfile.ZipFile(wheel) as archive:
            assert metadata == archive.read("strict_pkg-1.0.dist-info/METADATA").decode()


# -- the real HTTP server on hostile requests ---------------------------------------------


def test_live_server_answers_bad_requests_with_4xx(live_server: Start, tmp_path: Path) -> None:
    location = str(tmp_path / "packages")
    publish_all(open_store(location), make_wheel(tmp_path, "pkg", "1.0"))
    server = live_server(location)
    port = int(server.url.split(":")[2].split("/")[0])
    cases = {
        "/simple/pkg%2F/": 400,
        "/simple/pkg/%2e%2e%2f%2e%2e%2fetc%2fpasswd": 400,
        "/simple/%2e%2e/": 400,
        "/simple/../pkg/": 400,
        "/simple/pkg%00/": 400,
        "/simple/pkg%5c/": 400,
        "/simple/pkg\\x/": 400,
        "/simple/%ff/": 400,
        "/simple/" + "x" * 3000: 414,
        "/simple/" + "x" * 201 + "/": 400,
        "/simple/pkg/a/b": 404,
        "/elsewhere": 404,
    }
    for path, status in cases.items():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == status, (path, response.read())
        connection.close()
    for headers in ({"Accept": "text/html;level=1"}, {"Accept": ";;;, q=abc" * 2000}):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/simple/pkg/", headers=headers)
        assert connection.getresponse().status == 200
        connection.close()
    # credentials in a query or a header never reach the request log
    auth = "Basic " + base64.b64encode(f"__token__:{SECRET}".encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", f"/simple/pkg/?token={SECRET}", headers={"Authorization": auth})
    assert connection.getresponse().status == 200
    connection.close()
    assert "GET /simple/pkg/ 200" in server_log(server)
    assert_no_credentials_logged(server)
    # the server is still healthy, and logged every request with its status
    with PyPISimple(server.url) as client:
        assert [p.filename for p in client.get_project_page("pkg").packages] == [
            "pkg-1.0-py3-none-any.whl"
        ]
    assert " 500 " not in server_log(server)
