"""The local server under attack and in a new user's hands (issue 10, items 8, 13-15, 19).

Every test drives `serverless-pypi serve` as a subprocess on 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.clients import client_env
from tests.helpers.dists import make_wheel
from tests.helpers.servers import BIN, ROOT, LiveServer, free_port, stop, wait_for_port

pytestmark = pytest.mark.slow

SERVE = str(BIN / "serverless-pypi")


def serve_until_ready(
    store: Path, port: int, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start `serve`, and return it with the lines of its banner (up to the empty line)."""
    process = subprocess.Popen(
        [SERVE, "serve", "--store", str(store), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line or (not line.strip() and lines):
            break
        lines.append(line.rstrip("\n"))
    return process, lines


def run_serve(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SERVE, "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


# -- item 8: stalled connections -------------------------------------------------------------

STALLED = 300
DRIP_EVERY = 20.0


@pytest.fixture
def stalled(live_server: Callable[..., LiveServer], tmp_path: Path) -> Iterator[LiveServer]:
    """A live server with STALLED connections held open: idle, partial headers, partial bodies
    (with and without plausible credentials) and one byte every DRIP_EVERY seconds."""
    server = live_server(str(tmp_path / "store"))
    port = server.port
    token = base64.b64encode(b"__token__:spypi_0123456789abcdef_unknown").decode()
    partial_body = (
        "POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        "Content-Length: 1000000\r\n{auth}\r\n"
    )
    openings = [
        b"",  # idle
        b"GET /simple/ HTTP/1.1\r\nHost: x\r\nUser-Agent: sl",  # headers never finished
        partial_body.format(auth="").encode() + b"x" * 5000,
        partial_body.format(auth=f"Authorization: Basic {token}\r\n").encode() + b"x" * 5000,
        b"G",  # dripping
    ]
    drip = b"ET /simple/ HTTP/1.1\r\nHost: x\r\n"
    sockets: list[tuple[int, socket.socket]] = []
    done = threading.Event()

    def dripper() -> None:
        position = 0
        while not done.wait(DRIP_EVERY):
            for kind, sock in sockets:
                if kind == len(openings) - 1:
                    try:
                        sock.send(drip[position % len(drip) : position % len(drip) + 1])
                    except OSError:
                        pass
            position += 1

    thread = threading.Thread(target=dripper, daemon=True)
    try:
        for i in range(STALLED):
            kind = i % len(openings)
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sockets.append((kind, sock))
            if openings[kind]:
                sock.sendall(openings[kind])
        thread.start()
        time.sleep(0.5)  # let the server accept them all
        yield server
        # the server held them all: none was answered or closed while the test ran
        for _, sock in sockets:
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
        assert server.process.poll() is None
    finally:
        done.set()
        for _, sock in sockets:
            sock.close()
        thread.join(timeout=5)


def test_stalled_connections_leave_normal_requests_answered_within_a_second(
    stalled: LiveServer,
) -> None:
    for path in ["", "demo/", ""] * 4:
        started = time.monotonic()
        request = urllib.request.Request(stalled.url + path)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                status = response.status
        except urllib.error.HTTPError as e:
            status = e.code
        elapsed = time.monotonic() - started
        assert status in {200, 404}
        assert elapsed < 1.0, f"GET {path or '/'} took {elapsed:.2f} s"


# -- item 19: the banner, and a port in use -------------------------------------------------


def banner_command(lines: list[str], label: str) -> str:
    for line in lines:
        if line.strip().startswith(label):
            return line.split(label, 1)[1].strip()
    raise AssertionError(f"no {label!r} line in {lines}")


def test_port_in_use_is_one_line_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve("--store", str(tmp_path / "store"), "--port", str(port))
    assert result.returncode != 0
    assert "serving" not in result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(port) in lines[0]
    assert "PORT=" in lines[0]
    assert "--port" in lines[0]


def test_banner_commands_run_as_printed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    wheel = make_wheel(tmp_path, "banner-demo", "1.0")
    port = free_port()
    process, lines = serve_until_ready(store, port)
    try:
        assert lines and lines[0].startswith("serverless-pypi: serving")
        assert "reads are open" in lines[1]
        publish = banner_command(lines, "publish:")
        executable = os.path.relpath(SERVE, ROOT)
        if not executable.startswith(".."):  # the venv is inside the checkout, as `make serve`
            assert publish.startswith(executable + " publish")
        # the printed command, in another shell (without the venv on the PATH)
        shell = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        result = subprocess.run(
            ["bash", "-c", publish.replace("dist/*", str(wheel))],
            cwd=ROOT,
            env=shell,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        install = banner_command(lines, "install:").replace("PROJECT", "banner-demo")
        assert install.startswith("pip install --index-url")
        result = subprocess.run(
            [sys.executable, "-m", *install.split(), "--dry-run", "--no-deps", "--quiet"],
            capture_output=True,
            text=True,
            timeout=120,
            env=client_env(),
            check=False,
        )
        assert result.returncode == 0, result.stderr
    finally:
        stop(process)


def test_locked_reads_banner_shows_the_token_form_and_it_works(tmp_path: Path) -> None:
    store = tmp_path / "store"
    wheel = make_wheel(tmp_path, "locked-demo", "1.0")
    port = free_port()
    process, lines = serve_until_ready(store, port, env={"REQUIRE_AUTH_FOR_READ": "1"})
    try:
        text = "\n".join(lines)
        assert "reads are locked" in text and "REQUIRE_AUTH_FOR_READ" in text
        create = banner_command(lines, "read token:")
        install = banner_command(lines, "install:")
        assert f"__token__:$READ@127.0.0.1:{port}/simple/" in install
        publish = banner_command(lines, "publish:").replace("dist/*", str(wheel))
        pip = install.replace("PROJECT", "locked-demo").replace(
            "pip install", f"{sys.executable} -m pip install", 1
        )
        script = f"set -e\n{publish}\n{create}\n{pip} --dry-run --no-deps --quiet\n"
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env={**client_env(), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        # and without the token, reads are refused
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/simple/locked-demo/", timeout=5)
        assert refused.value.code == 401
    finally:
        stop(process)


# -- items 13 and 14: a configuration or a store that cannot work ---------------------------


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "serving" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_invalid_boolean_setting_stops_serve(tmp_path: Path) -> None:
    result = run_serve(
        "--store", str(tmp_path / "store"), "--port", str(free_port()),
        env={"REQUIRE_AUTH_FOR_READ": "y"},
    )  # fmt: skip
    assert "REQUIRE_AUTH_FOR_READ" in one_line_error(result)


def test_a_missing_bucket_stops_serve_naming_it(aws_env: dict[str, str]) -> None:
    result = run_serve("--store", "s3://no-such-bucket-here", "--port", str(free_port()))
    line = one_line_error(result)
    assert "no-such-bucket-here" in line
    assert "does not exist" in line


def test_missing_credentials_stop_serve_naming_the_bucket(
    aws_env: dict[str, str], s3_bucket: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL_S3=aws_env["AWS_ENDPOINT_URL_S3"],
        AWS_REGION=aws_env["AWS_REGION"],
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    result = subprocess.run(
        [SERVE, "serve", "--store", f"s3://{s3_bucket}", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    line = one_line_error(result)
    assert s3_bucket in line
    assert "credentials" in line


# -- item 15: control characters from requests never reach the log as such -----------------

RAW_REQUESTS = [
    b"GET /simple/\x1b[31mred\x00nul/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /simple/%1b[31m%00/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /\x1b]0;title\x07\x1b[2J HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"POST /\x1b[31m HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
]


def test_log_lines_escape_control_characters(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server(str(tmp_path / "store"))
    port = server.port
    for raw in RAW_REQUESTS:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(raw)
            assert sock.recv(100).startswith(b"HTTP/1.")
    # a client that leaves before its answer: waitress logs the path itself
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(RAW_REQUESTS[0])
    time.sleep(0.5)
    log = server.log.read_bytes()
    assert re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", log) is None, log
    assert rb"/simple/\x1b[31mred\x00nul/ 400" in log
    assert rb"/simple/%1b[31m%00/ 400" in log
    assert rb"/\x1b]0;title\x07\x1b[2J 404" in log


def test_denied_access_stops_serve_naming_the_bucket(tmp_path: Path) -> None:
    """moto's server enforcing IAM: a user without any policy may not list the bucket."""
    import boto3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # the three set-up calls below go unauthenticated, every later call is checked
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"},
    )
    try:
        wait_for_port(port)
        admin: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1"}
        admin_keys: dict[str, Any] = {
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        boto3.client("s3", **admin, **admin_keys).create_bucket(Bucket="locked-bucket")
        iam = boto3.client("iam", **admin, **admin_keys)
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ACCESS_KEY_ID=key["AccessKeyId"],
            AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"],
            AWS_REGION="us-east-1",
            AWS_ENDPOINT_URL_S3=url,
            AWS_CONFIG_FILE=str(tmp_path / "none"),
            AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        )
        result = subprocess.run(
            [SERVE, "serve", "--store", "s3://locked-bucket", "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        line = one_line_error(result)
        assert "locked-bucket" in line
        assert "access denied" in line.lower()
    finally:
        moto.terminate()
        moto.wait(timeout=10)


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="needs /proc")
def test_serve_raises_a_low_open_file_limit(tmp_path: Path) -> None:
    """Started with `ulimit -n 256`, the server raises its own limit to hold its connections."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 2 * 1000 + 64:
        pytest.skip(f"the hard limit ({hard}) is below what the server asks for")
    port = free_port()
    process = subprocess.Popen(
        ["bash", "-c", f'ulimit -Sn 256 && exec "{SERVE}" serve --store "$1" --port {port}']
        + ["serve", str(tmp_path / "store")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        limits = Path(f"/proc/{process.pid}/limits").read_text()
        (line,) = [x for x in limits.splitlines() if x.startswith("Max open files")]
        assert int(line.split()[3]) >= 2 * 1000 + 64
    finally:
        process.terminate()
        process.wait(timeout=10)
