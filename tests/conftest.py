"""Shared fixtures: stores (local directory and S3 in moto's standalone server), live servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage import Store
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.s3 import S3Store

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class AtomicConditionalWrites:
    """Make moto's conditional writes atomic, as S3's are.

    moto checks `If-Match` / `If-None-Match` and then writes, without a lock: two racing
    writers can both pass the check, which real S3 never allows. Serializing conditional
    requests closes that gap, so the race tests exercise our code, not the emulator's.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        conditional = environ.get("REQUEST_METHOD") in {"PUT", "POST", "DELETE"} and (
            "HTTP_IF_MATCH" in environ or "HTTP_IF_NONE_MATCH" in environ
        )
        if not conditional:
            return self.app(environ, start_response)
        with self.lock:
            # consume the whole answer inside the lock: the write happens while it is built
            return list(self.app(environ, start_response))


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's standalone S3 server over HTTP on 127.0.0.1 (a real HTTP S3 API, not patching)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    assert server._server is not None
    server._server.app = AtomicConditionalWrites(server._server.app)  # type: ignore[assignment]
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def aws_env(moto_url: str) -> dict[str, str]:
    """Environment for processes (and boto3 in this one) that talk to moto."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ENDPOINT_URL": moto_url,
    }
    os.environ.update(env)
    return env


@pytest.fixture
def s3_bucket(aws_env: dict[str, str], moto_url: str) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_url, region_name=REGION).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store(s3_bucket: str, moto_url: str) -> S3Store:
    return S3Store(s3_bucket, "", endpoint_url=moto_url)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> Store:
    """Every contract test runs over both stores."""
    name = "local_store" if request.param == "local" else "s3_store"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def catalog(store: Store) -> Catalog:
    return Catalog(store)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str  # the index URL, ending in /simple/
    store: str  # the --store argument
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return self.url.removesuffix("simple/")


def start_server(
    store: str, log_dir: Path, env: dict[str, str] | None = None, extra: list[str] | None = None
) -> LiveServer:
    port = free_port()
    log = log_dir / f"server-{port}.log"
    process = subprocess.Popen(
        [
            str(BIN / "serverless-pypi"),
            "serve",
            "--store",
            store,
            "--port",
            str(port),
            *(extra or []),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError(f"server did not start: {log.read_text()}")
    return LiveServer(f"http://127.0.0.1:{port}/simple/", store, process, log)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start `serverless-pypi serve` as a subprocess; stopped at the end of the test."""
    started: list[LiveServer] = []

    def start(
        store: str, env: dict[str, str] | None = None, extra: list[str] | None = None
    ) -> LiveServer:
        server = start_server(store, tmp_path, env, extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
