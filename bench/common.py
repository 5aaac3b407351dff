"""Shared helpers: statistics, subprocess servers, moto, the machine description."""

from __future__ import annotations

import base64
import contextlib
import http.client
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
CORPUS = BENCH / ".corpus"
WORK = BENCH / ".work"
DOCS = ROOT / "docs"
PLOTS = DOCS / "bench"
BIN = Path(sys.executable).parent
REGION = "us-east-1"

#: what pip 26 sends for a project page (FIELD_NOTES: "What real clients do")
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
PIP_HEADERS = {
    "Accept": PIP_ACCEPT,
    "Accept-Encoding": "gzip, deflate",
    "User-Agent": "pip/26.3 (bench)",
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- statistics ------------------------------------------------------------------------------
def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median, min, max, p50 and p99 of a sample, plus its size."""
    if not samples:
        return {"n": 0, "median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {
        "n": len(samples),
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "p50": percentile(samples, 50),
        "p99": percentile(samples, 99),
    }


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")


# -- processes -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without pip/uv configuration (the machine's pip.conf adds mirrors)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV", "AWS_", "S3_", "SERVERLESS_PYPI"))
    }
    env["PIP_CONFIG_FILE"] = os.devnull  # no pip configuration file at all
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s: {process.args!r}")


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One GET on 127.0.0.1 (no proxies, no redirects followed)."""
    without = url.removeprefix("http://")
    hostport, _, path = without.partition("/")
    host, _, port = hostport.partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=30)
    try:
        conn.request("GET", "/" + path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Server:
    name: str
    url: str  # ends in "/"
    port: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_server(
    name: str,
    argv: list[str],
    port: int,
    path: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    ready: str | None = None,
) -> Server:
    """Start a server subprocess and wait until `ready` (a path) answers 200."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        argv,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env=env if env is not None else clean_env(),
        cwd=WORK,
    )
    try:
        wait_for_port(port, process)
        if ready is not None:
            deadline = time.monotonic() + 30
            while True:
                status, _ = http_get(f"http://127.0.0.1:{port}{ready}", PIP_HEADERS)
                if status == 200:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: {ready} answers {status}")
                time.sleep(0.1)
    except Exception:
        stop_process(process)
        raise
    return Server(name, f"http://127.0.0.1:{port}{path}", port, process)


# -- moto (S3) -------------------------------------------------------------------------------
@dataclass
class Moto:
    url: str
    process: subprocess.Popen[str]

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a Lambda function would see, pointed at moto."""
        return {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_SESSION_TOKEN": "bench",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ENDPOINT_URL_S3": self.url,
            **extra,
        }

    def create_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)

    def _command(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer or not json.loads(answer).get("ok"):
            raise RuntimeError(f"moto did not load the objects: {answer!r}")

    def put_many(self, bucket: str, keys: Sequence[str], body: bytes) -> None:
        """Store `body` under every key, through moto's backend (no S3 API calls)."""
        for start in range(0, len(keys), 5_000):
            self._command(
                {
                    "op": "put_many",
                    "bucket": bucket,
                    "keys": list(keys[start : start + 5_000]),
                    "body": base64.b64encode(body).decode(),
                }
            )

    def put_each(self, bucket: str, objects: Sequence[tuple[str, bytes]]) -> None:
        """Store each (key, bytes) through moto's backend."""
        for start in range(0, len(objects), 2_000):
            chunk = objects[start : start + 2_000]
            self._command(
                {
                    "op": "put_each",
                    "bucket": bucket,
                    "objects": [(k, base64.b64encode(v).decode()) for k, v in chunk],
                }
            )


@contextlib.contextmanager
def moto_server() -> Iterator[Moto]:
    """moto's standalone S3 server in its own process (as S3 is to a Lambda function)."""
    WORK.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.motoproc"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(WORK / "moto.log").open("wb"),
        env=clean_env(),
        cwd=ROOT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"moto did not start: see {WORK / 'moto.log'}")
        yield Moto(json.loads(line)["url"], process)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables in this process for the duration of the block."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- the machine -----------------------------------------------------------------------------
def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def machine() -> dict[str, Any]:
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    wrk = shutil.which("wrk")
    wrk_version = "not installed"
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        wrk_version = (out.stdout or out.stderr).split("\n")[0].strip()
    uv = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
    uv_version = "not installed"
    if uv:
        out = subprocess.run([uv, "--version"], capture_output=True, text=True, check=False)
        uv_version = out.stdout.strip()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": {
            name: _version(name)
            for name in (
                "serverless-pypi",
                "boto3",
                "botocore",
                "packaging",
                "waitress",
                "moto",
                "pypiserver",
                "watchdog",
                "pip",
                "matplotlib",
            )
        },
        "uv": uv_version,
        "wrk": wrk_version,
    }


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
