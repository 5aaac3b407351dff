"""Real twine and uv publish against a live server, over a local directory and over S3 (moto)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.storage import Store
from tests.helpers.clients import twine_upload, uv_publish
from tests.helpers.dists import make_sdist, make_wheel, metadata_text, sha256, subdir
from tests.helpers.forms import post, upload_body
from tests.helpers.index import served_hashes
from tests.helpers.servers import LiveServer

pytestmark = pytest.mark.slow

MAX_UPLOAD_SIZE = 20_000


@dataclass
class Served:
    server: LiveServer
    store: Store
    tokens: TokenStore


@pytest.fixture(params=["local", "s3"])
def served(
    request: pytest.FixtureRequest, live_server: Callable[..., LiveServer], tmp_path: Path
) -> Served:
    store: Store = request.getfixturevalue(f"{request.param}_store")
    location = f"s3://{request.getfixturevalue('s3_bucket')}" if request.param == "s3" else None
    server = live_server(
        location or str(tmp_path / "store"), env={"MAX_UPLOAD_SIZE": str(MAX_UPLOAD_SIZE)}
    )
    return Served(server, store, TokenStore(store))


def said(result: subprocess.CompletedProcess[str]) -> str:
    """A client's output with line wrapping undone (uv and twine wrap to the terminal)."""
    return " ".join((result.stdout + result.stderr).split())


def test_twine_and_uv_publish(served: Served, tmp_path: Path) -> None:
    server = served.server
    token, _ = served.tokens.create("write", ["demo-*"])
    other_project, _ = served.tokens.create("write", ["someone-else"])
    read_only, _ = served.tokens.create("read")
    expired, _ = TokenStore(
        served.store, clock=lambda: datetime.now(UTC) - timedelta(days=2)
    ).create("write", expires=datetime.now(UTC) - timedelta(days=1))
    revoked, revoked_record = served.tokens.create("write")
    served.tokens.revoke([revoked_record.id])

    wheel = make_wheel(tmp_path, "Demo.Pkg", "1.0")
    sdist = make_sdist(tmp_path, "Demo.Pkg", "1.0")
    result = twine_upload(server.url, token, wheel)
    assert result.returncode == 0, said(result)
    # uv sends the name as written ("Demo.Pkg"): the index normalizes it
    result = uv_publish(server.url, token, sdist)
    assert result.returncode == 0, said(result)
    assert served_hashes(server.url, "demo-pkg") == {
        wheel.name: sha256(wheel),
        sdist.name: sha256(sdist),
    }

    # identical re-uploads succeed without changing anything; uv --check-url skips them
    assert twine_upload(server.url, token, wheel).returncode == 0
    assert uv_publish(server.url, token, sdist).returncode == 0
    result = uv_publish(server.url, token, wheel, sdist, check_url=server.url)
    assert result.returncode == 0, said(result)

    # other bytes under a published name: 400 File already exists
    changed = make_wheel(subdir(tmp_path, "changed"), "Demo.Pkg", "1.0", payload="x = 1\n")
    result = twine_upload(server.url, token, changed)
    assert result.returncode != 0
    assert "400" in said(result)
    assert "File already exists" in said(result)
    result = uv_publish(server.url, token, changed)
    assert result.returncode != 0
    assert "File already exists" in said(result)
    assert served_hashes(server.url, "demo-pkg")[wheel.name] == sha256(wheel)

    # a wheel whose metadata contradicts its file name, as the clients send it
    wrong_name = make_wheel(
        subdir(tmp_path, "name"), "demo-bad", "1.0", metadata=metadata_text("demo-other", "1.0")
    )
    result = twine_upload(server.url, token, wrong_name)
    assert result.returncode != 0
    assert "does not match the file name" in said(result)
    wrong_version = make_wheel(
        subdir(tmp_path, "version"), "demo-bad", "1.0", metadata=metadata_text("demo-bad", "2.0")
    )
    result = uv_publish(server.url, token, wrong_version)
    assert result.returncode != 0
    assert "version '2.0' does not match" in said(result)

    # credentials
    fresh = make_wheel(tmp_path, "demo-pkg", "2.0")
    for bad, fragment in [
        (other_project, "may not upload to project 'demo-pkg'"),
        (read_only, "uploads need a write token"),
        (expired, "not valid"),
        (revoked, "not valid"),
        ("spypi_0123456789abcdef_guess", "not valid"),
    ]:
        result = uv_publish(server.url, bad, fresh)
        assert result.returncode != 0
        assert "403" in said(result)
        assert fragment in said(result)
    result = twine_upload(server.url, expired, fresh)
    assert result.returncode != 0
    assert "403" in said(result)
    status, message = post(server.base, *upload_body(fresh), token=None)
    assert status == 403
    assert "no credentials" in message

    # a digest that does not match the bytes (a damaged upload)
    status, message = post(server.url, *upload_body(fresh, sha256_digest="0" * 64), token=token)
    assert status == 400
    assert "sha256_digest sent" in message

    # over MAX_UPLOAD_SIZE
    big = make_wheel(
        subdir(tmp_path, "big"), "demo-pkg", "3.0", payload=f"x = '{os.urandom(30_000).hex()}'\n"
    )
    assert big.stat().st_size > MAX_UPLOAD_SIZE
    result = uv_publish(server.url, token, big)
    assert result.returncode != 0
    assert "413" in said(result)
    assert "MAX_UPLOAD_SIZE" in said(result)

    assert served_hashes(server.url, "demo-pkg") == {
        wheel.name: sha256(wheel),
        sdist.name: sha256(sdist),
    }
    # uploads to /legacy/ work as on PyPI
    status, message = post(server.base + "legacy/", *upload_body(fresh), token=token)
    assert status == 200, message
    assert fresh.name in served_hashes(server.url, "demo-pkg")
    log = server.log.read_text()
    assert token not in log
    assert " 500 " not in log


def test_concurrent_uploads_of_one_file_name(served: Served, tmp_path: Path) -> None:
    """Threads post different bytes under one file name: exactly one wins."""
    token, _ = served.tokens.create("write")
    wheels = [
        make_wheel(subdir(tmp_path, f"w{i}"), "race", "1.0", payload=f"WHO = {i}\n")
        for i in range(6)
    ]
    assert len({sha256(w) for w in wheels}) == len(wheels)
    bodies = [upload_body(w) for w in wheels]
    barrier = threading.Barrier(len(wheels))
    results: list[tuple[int, str, int]] = []
    lock = threading.Lock()

    def upload(i: int) -> None:
        barrier.wait(timeout=30)
        status, message = post(served.server.url, *bodies[i], token=token)
        with lock:
            results.append((status, message, i))

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(wheels))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] + [400] * (len(wheels) - 1), results
    winner = next(i for status, _, i in results if status == 200)
    for status, message, _ in results:
        if status == 400:
            assert message.startswith("File already exists"), message
    assert served_hashes(served.server.url, "race") == {wheels[winner].name: sha256(wheels[winner])}
    # the bytes served are the winner's
    with urllib.request.urlopen(served.server.url + f"race/{wheels[winner].name}") as response:
        assert hashlib.sha256(response.read()).hexdigest() == sha256(wheels[winner])
