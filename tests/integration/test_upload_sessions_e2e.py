"""Upload 2.0 sessions (PEP 694) end to end: the real `serverless-pypi upload` against the index.

Two fronts, as a user meets them:

- `local`: `serverless-pypi serve` over a directory (the client sends `http-post-bytes`);
- `lambda`: the API function (`api_handler`, in this process) behind a thread that speaks HTTP
  the way a function URL does, over a bucket in moto's server; the index offers the S3
  mechanism and the client PUTs every part straight to moto over presigned URLs (the front
  counts the bytes it carries, to show they did not go through it).

Then real pip and uv install from a stage, a release of four files appears at once, a version
already published is refused, a tampered part is refused at completion and the next run
publishes the right bytes, and an index without the session API (pypiserver) gets the files
through the legacy upload API.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.storage import Store
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.s3 import S3Store
from serverless_pypi.upload_client.credentials import basic_authorization
from serverless_pypi.upload_client.files import LocalFile, Release
from serverless_pypi.upload_client.protocol import (
    META,
    S3_MECHANISM,
    create_body,
    file_body,
    session_root,
)
from serverless_pypi.upload_client.s3_multipart import part_plan
from serverless_pypi.upload_client.transport import Http
from tests.helpers.clients import SERVERLESS_PYPI, pip_install, run_client, uv_install
from tests.helpers.dists import make_blob_wheel, make_sdist, make_wheel, subdir
from tests.helpers.index import publish_file
from tests.helpers.lambda_events import CONFIG, FunctionUrlFront, fresh_environment
from tests.helpers.servers import BIN, LiveServer, create_bucket, free_port, stop, wait_for_port

pytestmark = pytest.mark.slow

MB = 1000 * 1000
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


# -- the fronts -------------------------------------------------------------------------------


class FunctionUrl(FunctionUrlFront):
    """A function URL front (`tests.helpers.lambda_events`) that counts the body bytes it
    carried (all threads): a file sent through the S3 mechanism never passes it."""

    # a function URL is https only; this front is plain http on loopback and says so
    forwarded_proto = "http"
    carried = 0
    lock = threading.Lock()

    def received(self, body: bytes) -> None:
        with FunctionUrl.lock:
            FunctionUrl.carried += len(body)


@dataclass
class Index:
    """An index the client uploads to: its simple URL, a write token, its store."""

    kind: str
    url: str
    token: str
    store: Store
    carried: Callable[[], int] = field(default=lambda: 0)

    def page(self, project: str) -> dict[str, Any] | None:
        """The public JSON page, None when the project has none (404)."""
        request = urllib.request.Request(f"{self.url}{project}/", headers={"Accept": SIMPLE_JSON})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                page: dict[str, Any] = json.load(response)
                return page
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def files(self, project: str) -> dict[str, dict[str, Any]]:
        page = self.page(project)
        return {f["filename"]: f for f in (page or {}).get("files", [])}

    def upload(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return run_client(
            SERVERLESS_PYPI,
            "upload",
            "--index",
            self.url,
            "--token",
            self.token,
            *map(str, args),
            timeout=300,
        )

    def http(self) -> Http:
        return Http(self.url, basic_authorization(self.token))


def _write_token(store: Store) -> str:
    token, _ = TokenStore(store).create("write", (), None, "upload e2e")
    return token


@pytest.fixture
def local_index(live_server: Callable[..., LiveServer], tmp_path: Path) -> Index:
    directory = tmp_path / "index"
    directory.mkdir()
    store = LocalStore(directory)
    token = _write_token(store)
    server = live_server(str(directory))
    return Index("local", server.url, token, store)


@pytest.fixture
def lambda_index(
    aws_env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Index]:
    bucket = create_bucket(moto_url, "sessions")
    store = S3Store(bucket, endpoint_url=moto_url)
    token = _write_token(store)
    for variable in CONFIG:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("S3_BUCKET", bucket)
    fresh_environment()
    FunctionUrl.carried = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FunctionUrl)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Index(
            "lambda",
            f"http://127.0.0.1:{server.server_address[1]}/simple/",
            token,
            store,
            lambda: FunctionUrl.carried,
        )
    finally:
        server.shutdown()
        server.server_close()
        fresh_environment()


@pytest.fixture(params=["local", "lambda"])
def index(request: pytest.FixtureRequest) -> Index:
    return request.getfixturevalue(f"{request.param}_index")  # type: ignore[no-any-return]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _download_sha256(url: str) -> str:
    """The sha256 of what a client downloads from `url` (redirects followed, as pip does)."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=120) as response:
        while chunk := response.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _said(result: subprocess.CompletedProcess[str], prefix: str) -> str:
    """The value of the client's `prefix: value` line on stdout."""
    match = re.search(rf"^{prefix}: (\S+)", result.stdout, re.MULTILINE)
    assert match, result.stdout + result.stderr
    return match.group(1)


# -- large wheels ------------------------------------------------------------------------------


def test_a_20_mb_and_a_200_mb_wheel_publish_with_a_token(index: Index, tmp_path: Path) -> None:
    small = make_blob_wheel(tmp_path, "acme-native", "1.0", 20 * MB)
    large = make_blob_wheel(subdir(tmp_path, "large"), "acme-native", "2.0", 200 * MB)
    result = index.upload(small, large)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"published: acme-native/{small.name}" in result.stdout
    assert f"published: acme-native/{large.name}" in result.stdout
    files = index.files("acme-native")
    assert {name: f["hashes"]["sha256"] for name, f in files.items()} == {
        small.name: _sha256(small),
        large.name: _sha256(large),
    }
    assert files[large.name]["size"] == large.stat().st_size
    # what an installer downloads is the file uploaded, byte for byte
    url = urllib.parse.urljoin(f"{index.url}acme-native/", files[large.name]["url"])
    assert _download_sha256(url) == _sha256(large)
    if index.kind == "lambda":
        # the parts went straight to S3: the function carried JSON only
        assert index.carried() < 1 * MB


# -- the stage ---------------------------------------------------------------------------------


def test_a_staged_release_installs_with_pip_and_uv_and_is_gone_after_cancel(
    index: Index, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, "acme-preview", "1.0")
    result = index.upload("--stage", wheel)
    assert result.returncode == 0, result.stdout + result.stderr
    stage, session = _said(result, "stage"), _said(result, "session")
    assert f"pip install --index-url {stage} acme-preview==1.0" in result.stdout
    assert index.page("acme-preview") is None  # not public before publish
    pip = pip_install(stage, tmp_path / "pip", "acme-preview==1.0")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    uv = uv_install(stage, tmp_path / "uv", "acme-preview==1.0")
    assert uv.returncode == 0, uv.stdout + uv.stderr
    for target in ("pip", "uv"):
        assert (tmp_path / target / "acme_preview.py").is_file()

    canceled = index.http().api("DELETE", session)
    assert canceled.status == 204, canceled.body
    assert index.http().api("GET", session).status == 404
    with pytest.raises(urllib.error.HTTPError) as gone:
        urllib.request.urlopen(f"{stage}acme-preview/", timeout=30)
    assert gone.value.code == 404
    again = pip_install(stage, tmp_path / "again", "acme-preview==1.0")
    assert again.returncode != 0
    assert index.page("acme-preview") is None


def test_a_staged_release_is_published_by_running_the_command_again(
    local_index: Index, tmp_path: Path
) -> None:
    index = local_index
    files = [make_wheel(tmp_path, "acme-later", "1.0"), make_sdist(tmp_path, "acme-later", "1.0")]
    staged = index.upload("--stage", *files)
    assert staged.returncode == 0, staged.stdout + staged.stderr
    assert index.page("acme-later") is None
    # the open session is resumed (409 + Location): its stage is shown again
    again = index.upload("--stage", *files)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _said(again, "stage") == _said(staged, "stage")
    published = index.upload(*files)
    assert published.returncode == 0, published.stdout + published.stderr
    for path in files:  # complete with the same sha256: kept, not sent again
        assert f"published (kept from an earlier run): acme-later/{path.name}" in published.stdout
    assert set(index.files("acme-later")) == {f.name for f in files}


# -- atomic publish ------------------------------------------------------------------------------


def test_a_release_of_four_files_appears_at_once(index: Index, tmp_path: Path) -> None:
    tags = ["py3-none-any", "py3-none-manylinux_2_17_x86_64", "py3-none-macosx_11_0_arm64"]
    files = [make_blob_wheel(tmp_path, "acme-atomic", "1.0", 2 * MB, tag=tag) for tag in tags]
    files.append(make_sdist(tmp_path, "acme-atomic", "1.0"))
    seen: list[int] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            seen.append(len(index.files("acme-atomic")))

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        result = index.upload(*files)
    finally:
        done.set()
        reader.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(index.files("acme-atomic")) == 4
    assert 0 in seen, "the reader never read the page before the release was published"
    assert set(seen) <= {0, 4}, f"a reader saw part of the release: {sorted(set(seen))}"


# -- refusals ----------------------------------------------------------------------------------


def test_a_session_for_a_published_version_is_refused(index: Index, tmp_path: Path) -> None:
    publish_file(index.store, make_wheel(tmp_path, "acme-done", "1.0"))
    sdist = make_sdist(tmp_path, "acme-done", "1.0")
    result = index.upload(sdist)
    assert result.returncode == 1
    assert "already published" in result.stderr, result.stderr
    assert sdist.name not in index.files("acme-done")


def test_a_tampered_part_is_refused_and_the_next_run_publishes(
    lambda_index: Index, tmp_path: Path
) -> None:
    index = lambda_index
    wheel = make_blob_wheel(tmp_path, "acme-tamper", "1.0", 1 * MB)
    local = LocalFile.read(wheel)
    http = index.http()
    release = Release(local.project, local.version, (local,))
    session = http.api("POST", session_root(index.url), create_body(release))
    assert session.status == 201, session.body
    links = session.json()["links"]
    created = http.api("POST", links["upload"], file_body(local, S3_MECHANISM))
    assert created.status == 202, created.body
    file_session = created.json()
    parts_url = file_session["mechanism"]["parts_url"]
    (part,) = part_plan(local.size, file_session["mechanism"]["part-size"])
    urls = http.api("POST", parts_url, {"meta": META, "parts": [1]}).json()["parts"]
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed on the way: same size, other sha256
    put = http.send("PUT", urls[0]["url"], data=bytes(data))  # straight to S3, no token
    assert put.status == 200, put.body

    refused = http.api("POST", file_session["links"]["complete"], {"meta": META})
    assert refused.status == 400, refused.body
    assert "sha256" in refused.body.decode()
    status = http.api("GET", file_session["links"]["file-upload-session"]).json()
    assert status["status"] == "error"
    assert http.api("POST", links["publish"], {"meta": META}).status == 409

    # the next run resumes the session: the file in error is deleted and sent again
    result = index.upload(wheel)
    assert result.returncode == 0, result.stdout + result.stderr
    assert index.files("acme-tamper")[wheel.name]["hashes"]["sha256"] == local.sha256


def test_an_interrupted_s3_upload_sends_only_the_missing_parts(
    lambda_index: Index, tmp_path: Path
) -> None:
    index = lambda_index
    wheel = make_blob_wheel(tmp_path, "acme-resume", "1.0", 20 * MB)  # 16 MiB + 3 MiB parts
    local = LocalFile.read(wheel)
    http = index.http()
    release = Release(local.project, local.version, (local,))
    links = http.api("POST", session_root(index.url), create_body(release)).json()["links"]
    file_session = http.api("POST", links["upload"], file_body(local, S3_MECHANISM)).json()
    mechanism = file_session["mechanism"]
    first = part_plan(local.size, mechanism["part-size"])[0]
    urls = http.api("POST", mechanism["parts_url"], {"meta": META, "parts": [1]}).json()["parts"]
    with wheel.open("rb") as file:
        assert http.send("PUT", urls[0]["url"], data=file.read(first.length)).status == 200
    # interrupted here; the next run finds the open session and the part S3 holds
    result = index.upload(wheel)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"published (resumed): acme-resume/{wheel.name}" in result.stdout
    assert index.files("acme-resume")[wheel.name]["hashes"]["sha256"] == local.sha256


# -- the legacy fallback -------------------------------------------------------------------------


@pytest.fixture
def pypiserver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """pypiserver taking anonymous uploads: an index with the legacy API only."""
    directory = tmp_path / "pypiserver"
    directory.mkdir()
    port = free_port()
    log = tmp_path / "pypiserver.log"
    process = subprocess.Popen(
        [str(BIN / "pypi-server"), "run", "--host", "127.0.0.1", "--port", str(port)]
        + ["--disable-fallback", "-P", ".", "-a", ".", str(directory)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    if not wait_for_port(port, process, seconds=30):
        process.kill()
        raise RuntimeError(f"pypiserver did not start: {log.read_text()}")
    try:
        yield f"http://127.0.0.1:{port}", directory
    finally:
        stop(process)


def test_an_index_without_sessions_gets_the_legacy_upload(
    pypiserver: tuple[str, Path], tmp_path: Path
) -> None:
    base, directory = pypiserver
    files = [make_wheel(tmp_path, "acme-old", "1.0"), make_sdist(tmp_path, "acme-old", "1.0")]
    result = run_client(
        SERVERLESS_PYPI,
        "upload",
        "--index",
        f"{base}/simple/",
        "--legacy-url",
        f"{base}/",
        "--token",
        "unused",
        *map(str, files),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no Upload 2.0 session API" in result.stderr
    assert "legacy API" in result.stderr
    for path in files:
        assert (directory / path.name).read_bytes() == path.read_bytes()
    staged = run_client(
        SERVERLESS_PYPI, "upload", "--index", f"{base}/simple/", "--token", "x", "--stage",
        str(files[0]),
    )  # fmt: skip
    assert staged.returncode == 1
    assert "--stage needs one" in staged.stderr


# -- trusted publishing ----------------------------------------------------------------------------


def test_trusted_publishing_uploads_through_a_session(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """A GitHub Actions job: the OIDC token exchanged for a token that opens the session, then
    burnt."""
    from tests.helpers.oidc import LocalIssuer

    directory = tmp_path / "index"
    directory.mkdir()
    server = live_server(str(directory))
    with LocalIssuer(github={"repository": "acme/app", "workflow": "release.yml"}) as issuer:
        added = run_client(
            SERVERLESS_PYPI, "publisher", "add", "--store", str(directory),
            "--project", "acme-ci", "--issuer", issuer.url, "--claim", "repository=acme/app",
        )  # fmt: skip
        assert added.returncode == 0, added.stdout + added.stderr
        wheel = make_wheel(tmp_path, "acme-ci", "1.0")
        result = run_client(
            SERVERLESS_PYPI, "upload", "--index", server.url, "--trusted-publishing", str(wheel),
            env=issuer.github_env(),
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"published: acme-ci/{wheel.name}" in result.stdout
    log = server.log.read_text()
    for line in ("POST /_/oidc/mint-token 200", "POST /simple/_upload/ 201"):
        assert line in log, log
    assert re.search(r"POST /_/oidc/burn-token 20\d", log), log
    records = TokenStore(LocalStore(directory)).records()
    assert [r for r in records if r.publisher is not None] == []  # burnt once done
