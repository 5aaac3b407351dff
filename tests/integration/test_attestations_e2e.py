"""Real `uv publish` and `twine upload --attestations` with a real PEP 740 attestation (signed
on GitHub Actions, verified offline) to a live server, over a local directory and S3 (moto):
the page links the provenance, the linked URL serves it, and an attestation naming another
file is refused with nothing published."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.storage import Store
from tests.helpers.clients import TWINE, run_client, uv_publish
from tests.helpers.servers import LiveServer

pytestmark = pytest.mark.slow

ASSETS = Path(__file__).parent.parent / "assets" / "attestations"
MODELS = "pypi_attestation_models-0.0.4a2.tar.gz"
PROJECT = "pypi-attestation-models"
JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(params=["local", "s3"])
def served(
    request: pytest.FixtureRequest, live_server: Callable[..., LiveServer], tmp_path: Path
) -> tuple[LiveServer, str]:
    store: Store = request.getfixturevalue(f"{request.param}_store")
    location = f"s3://{request.getfixturevalue('s3_bucket')}" if request.param == "s3" else None
    server = live_server(location or str(tmp_path / "store"))
    token, _ = TokenStore(store).create("write")
    return server, token


def dist_with(tmp_path: Path, attestation: str) -> tuple[Path, Path]:
    """The sdist in a folder of its own, `attestation` beside it as uv and twine look for it
    (`<file>.<kind>.attestation`): both paths (uv takes the attestation from the files it is
    given, as `uv publish dist/*` gives it)."""
    folder = tmp_path / "dist"
    folder.mkdir()
    dist = folder / MODELS
    shutil.copyfile(ASSETS / MODELS, dist)
    beside = folder / f"{MODELS}.publish.attestation"
    shutil.copyfile(ASSETS / attestation, beside)
    return dist, beside


def get(url: str, accept: str = "*/*") -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept})) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def said(result: object) -> str:
    return " ".join((getattr(result, "stdout", "") + getattr(result, "stderr", "")).split())


def assert_provenance_served(server: LiveServer) -> None:
    status, body = get(f"{server.url}{PROJECT}/", JSON)
    assert status == 200
    (entry,) = json.loads(body)["files"]
    assert entry["provenance"] == MODELS + ".provenance"
    status, body = get(f"{server.url}{PROJECT}/{entry['provenance']}")
    assert status == 200
    (bundle,) = json.loads(body)["attestation_bundles"]
    assert bundle["publisher"]["repository"] == "trailofbits/pypi-attestation-models"
    assert bundle["publisher"]["workflow"] == "release.yml"


def test_uv_publish_sends_the_attestation(served: tuple[LiveServer, str], tmp_path: Path) -> None:
    server, token = served
    result = uv_publish(server.url, token, *dist_with(tmp_path, MODELS + ".attestation"))
    assert result.returncode == 0, said(result)
    assert_provenance_served(server)


def test_uv_publish_of_an_attestation_naming_another_file_is_refused(
    served: tuple[LiveServer, str], tmp_path: Path
) -> None:
    server, token = served
    files = dist_with(tmp_path, "pypi_attestations-0.0.19.tar.gz.publish.attestation")
    result = uv_publish(server.url, token, *files)
    assert result.returncode != 0
    assert "attestation 1: its subject is the file 'pypi_attestations-0.0.19.tar.gz'" in said(
        result
    )
    assert get(f"{server.url}{PROJECT}/", JSON)[0] == 404


def test_twine_upload_with_attestations(served: tuple[LiveServer, str], tmp_path: Path) -> None:
    server, token = served
    dist, beside = dist_with(tmp_path, MODELS + ".attestation")
    result = run_client(
        TWINE,
        "upload",
        "--repository-url",
        server.url,
        "-u",
        "__token__",
        "-p",
        token,
        "--non-interactive",
        "--disable-progress-bar",
        "--attestations",
        str(dist),
        str(beside),
        timeout=120,
    )
    assert result.returncode == 0, said(result)
    assert_provenance_served(server)
