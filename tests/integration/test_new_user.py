"""A new user's first ten minutes (issue 10, item 20): `publish` reports each file once, and
`make test` prints no stale mypy notes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.dists import make_sdist, make_wheel
from tests.helpers.servers import BIN, ROOT


def _publish(store: str, files: list[Path], env: dict[str, str]) -> list[str]:
    """Run `serverless-pypi publish` as a user would; every line it shows, stdout and stderr."""
    result = subprocess.run(
        [str(BIN / "serverless-pypi"), "publish", "--store", store, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **env},
    )
    lines = (result.stdout + result.stderr).splitlines()
    assert result.returncode == (1 if any(line.startswith("error:") for line in lines) else 0)
    return lines


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_publish_reports_each_file_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env: dict[str, str] = {}
    if kind == "s3":
        env = request.getfixturevalue("aws_env")
        store = "s3://" + request.getfixturevalue("s3_bucket")
    else:
        store = str(tmp_path / "store")
    files = [make_wheel(tmp_path, "first-run", "1.0"), make_sdist(tmp_path, "first-run", "1.0")]
    bad = tmp_path / "first_run-2.0.tar.gz"
    bad.write_bytes(b"not a tar archive")

    first = _publish(store, [*files, bad], env)
    assert len(first) == 3, first
    for path, line in zip([*files, bad], first, strict=True):
        assert path.name in line
    assert first[0].startswith("published: first-run/") and first[1].startswith("published: ")
    assert first[2].startswith(f"error: {bad.name}: ")

    again = _publish(store, files, env)
    assert len(again) == 2, again
    assert all(line.startswith("already published (same bytes): ") for line in again)


def test_mypy_prints_no_notes(tmp_path: Path) -> None:
    """pyproject.toml's mypy overrides name only modules the code imports (no stale sections)."""
    result = subprocess.run(
        [str(BIN / "mypy"), "--cache-dir", str(tmp_path / "mypy-cache")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=ROOT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not [line for line in output.splitlines() if "note:" in line], output
