"""Real clients (pip, uv, twine, the `serverless-pypi` command) run against a test index.

Every run captures its output as text and never raises on failure: the test asserts the
return code it expects.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.servers import BIN

PIP = (sys.executable, "-m", "pip")
UV = str(BIN / "uv")
TWINE = str(BIN / "twine")
SERVERLESS_PYPI = str(BIN / "serverless-pypi")


def client_env(**extra: str) -> dict[str, str]:
    """The environment for pip and uv: no machine-wide indexes, links or config files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull, **extra}


def run_client(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run a client in `client_env()` (plus `env`)."""
    return subprocess.run(
        argv,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=client_env(**(env or {})),
    )


def pip_install(
    index_url: str, target: Path, *requirements: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`pip install --target target` from `index_url` alone, with no cache and no prompts."""
    return run_client(
        *PIP,
        "install",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--no-input",
        "--target",
        str(target),
        "--index-url",
        index_url,
        *requirements,
        env=env,
    )


def uv_install(
    index_url: str, target: Path, *requirements: str, cache: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`uv pip install --target target` from `index_url` alone (no cache unless `cache`)."""
    caching = ["--cache-dir", str(cache)] if cache is not None else ["--no-cache"]
    return run_client(
        UV,
        "pip",
        "install",
        "--no-config",
        *caching,
        "--python",
        sys.executable,
        "--target",
        str(target),
        "--index-url",
        index_url,
        *requirements,
    )


def twine_upload(repository_url: str, token: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return run_client(
        TWINE,
        "upload",
        "--repository-url",
        repository_url,
        "-u",
        "__token__",
        "-p",
        token,
        "--non-interactive",
        "--disable-progress-bar",
        "--verbose",
        *map(str, files),
        env={"TWINE_CONFIG_FILE": os.devnull},
        timeout=120,
    )


def uv_publish(
    publish_url: str, token: str, *files: Path, check_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    checking = ["--check-url", check_url] if check_url is not None else []
    return run_client(
        UV,
        "publish",
        "--no-config",
        "--publish-url",
        publish_url,
        "--trusted-publishing",
        "never",
        "-t",
        token,
        *checking,
        *map(str, files),
        timeout=120,
    )


def create_token(store: str, *options: str, env: dict[str, str] | None = None) -> str:
    """`serverless-pypi token create --store store *options`; the token it prints last."""
    created = run_client(
        SERVERLESS_PYPI, "token", "create", "--store", store, *options, env=env, timeout=60
    )
    assert created.returncode == 0, created.stdout + created.stderr
    return created.stdout.strip().splitlines()[-1]
