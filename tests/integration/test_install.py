"""`pip install serverless-pypi` and then `serverless-pypi serve` work (issue 10, item 18).

The wheel is built from a copy of the sources and installed into a new virtual environment
with its default dependencies only, as a new user would; its server answers the project list.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.clients import client_env
from tests.helpers.servers import BIN, ROOT, free_port, wait_for_port

pytestmark = pytest.mark.slow


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=client_env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_the_server_is_a_default_dependency_and_the_extra_still_exists() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]}
    assert {"waitress", "tqdm"} <= names
    assert "server" in project["optional-dependencies"]  # `[server]` keeps installing


def test_a_default_install_serves(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run(BIN / "uv", "build", "--wheel", "--out-dir", tmp_path / "dist", source)
    (wheel,) = (tmp_path / "dist").glob("serverless_pypi-*.whl")
    venv = tmp_path / "venv"
    run(BIN / "uv", "venv", "--no-config", "--quiet", venv)
    run(BIN / "uv", "pip", "install", "--no-config", "--python", venv / "bin" / "python", wheel)

    port = free_port()
    process = subprocess.Popen(
        [str(venv / "bin" / "serverless-pypi"), "serve", "--store", str(tmp_path / "store")]
        + ["--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, process, seconds=30)
        assert process.poll() is None, process.communicate()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/simple/", timeout=10) as response:
            assert response.status == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
