"""Paths, moto's environment and live `serverless-pypi serve` processes, shared by the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def moto_env(url: str) -> dict[str, str]:
    """The environment for processes (and boto3) that talk to the moto server at `url`."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": url,
        "AWS_ENDPOINT_URL": url,
    }


def create_bucket(moto_url: str, prefix: str = "test") -> str:
    """A new bucket in the moto server at `moto_url`; its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=name)
    return name


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

    @property
    def port(self) -> int:
        return int(self.url.split(":")[2].split("/")[0])


def wait_for_port(
    port: int, process: subprocess.Popen[Any] | None = None, seconds: float = 20
) -> bool:
    """Whether 127.0.0.1:`port` accepts a connection within `seconds` (and before `process`
    exits)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop(process: subprocess.Popen[Any]) -> None:
    """Stop a server process: terminated, killed if it is still there after 10 seconds."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


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
    if not wait_for_port(port, process):
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        process.kill()
        raise RuntimeError(f"server did not start: {log.read_text()}")
    return LiveServer(f"http://127.0.0.1:{port}/simple/", store, process, log)


def start_moto(wrap: Callable[[Any], Any] = AtomicConditionalWrites) -> tuple[Any, str]:
    """moto's standalone server on 127.0.0.1 with its WSGI app wrapped; the server and its URL.

    A real HTTP S3 API, not patching; the wrapper makes its conditional writes atomic (and may
    inject faults). Stop it with `server.stop()`.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    assert server._server is not None
    server._server.app = wrap(server._server.app)
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"
