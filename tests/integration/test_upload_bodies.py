"""Unauthenticated bodies (issue 10, item 9): credentials before the body, bounded memory.

The upload handler checks `Authorization` and the token before it reads a byte of the body,
reads a streamed body in pieces, and keeps at most `UPLOAD_IN_MEMORY` bytes of the file in
memory. On the local server, waitress drops the body of a POST without plausible credentials
as it arrives, so many large anonymous POSTs cost neither memory nor disk.
"""

from __future__ import annotations

import base64
import io
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from serverless_pypi.adapters.server import is_upload_target, plausible_upload_credentials
from serverless_pypi.auth.access import AccessControl
from serverless_pypi.auth.tokens import TokenCache, TokenStore
from serverless_pypi.compose import build_repository
from serverless_pypi.core.config import Settings
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.web.app import Application
from serverless_pypi.web.upload import _CHUNK, UPLOAD_IN_MEMORY, UploadHandler, parse_form
from tests.helpers.clients import twine_upload
from tests.helpers.dists import make_wheel
from tests.helpers.forms import basic_auth, upload_body
from tests.helpers.servers import LiveServer


class RecordingStream(io.BytesIO):
    """A body stream that remembers how it was read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.reads.append(len(chunk))
        return chunk


def handler(store: LocalStore) -> Callable[[Request], Response]:
    """The upload handler, answered as the application answers it."""
    settings = Settings()
    access = AccessControl(TokenCache(store), settings)
    upload = UploadHandler(Catalog(store), settings, access.check_upload)
    return Application(build_repository(store, settings), settings, upload=upload).handle


def streamed(body: bytes, content_type: str, authorization: str | None) -> Request:
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    if authorization is not None:
        headers["Authorization"] = authorization
    return Request("POST", "", headers=Headers(headers), stream=RecordingStream(body))


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer x",
        basic_auth("spypi_0123456789abcdef_secret", username="someone"),
        basic_auth("pypi-AgEIcHlwaS5vcmc"),
        basic_auth("spypi_0123456789abcdef_not-a-known-token"),
    ],
)
def test_refused_credentials_read_no_byte_of_the_body(
    local_store: LocalStore, tmp_path: Path, authorization: str | None
) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0")
    body, content_type = upload_body(wheel)
    request = streamed(body, content_type, authorization)
    response = handler(local_store)(request)
    assert response.status == 403
    assert isinstance(request.stream, RecordingStream)
    assert sum(request.stream.reads) == 0


def test_a_streamed_upload_is_read_in_pieces_and_spooled_to_disk(
    local_store: LocalStore, tmp_path: Path
) -> None:
    payload = f"DATA = {base64.b85encode(os.urandom(UPLOAD_IN_MEMORY + 2_000_000))!r}\n"
    wheel = make_wheel(tmp_path, "big-demo", "1.0", payload=payload)
    assert wheel.stat().st_size > UPLOAD_IN_MEMORY
    body, content_type = upload_body(wheel)
    stream = RecordingStream(body)
    form = parse_form(stream, content_type, 100_000_000, content_length=len(body))
    try:
        assert max(stream.reads) <= _CHUNK
        assert sum(stream.reads) == len(body)
        assert form.content._rolled  # past UPLOAD_IN_MEMORY the file is on disk
        form.content.seek(0)
        assert form.content.read() == wheel.read_bytes()
    finally:
        form.close()

    token, _ = TokenStore(local_store).create("write", (), None, "")
    request = streamed(body, content_type, basic_auth(token))
    response = handler(local_store)(request)
    assert response.status == 200, response.body
    assert local_store.find(f"big-demo/{wheel.name}") is not None


def test_a_stream_that_ends_early_is_cut_short(tmp_path: Path) -> None:
    body, content_type = upload_body(make_wheel(tmp_path, "demo", "1.0"))
    with pytest.raises(Exception, match="cut short"):
        parse_form(io.BytesIO(body[:-100]), content_type, 10_000_000, content_length=len(body))


@pytest.mark.parametrize(
    ("authorization", "plausible"),
    [
        (None, False),
        ("", False),
        ("Basic", False),
        ("Basic !!!", False),
        ("Bearer spypi_0123456789abcdef_secret", False),
        (basic_auth("spypi_0123456789abcdef_secret", username="user"), False),
        (basic_auth("pypi-AgEIcHlwaS5vcmc"), False),
        (basic_auth("spypi_nothex_secret"), False),
        (basic_auth("spypi_0123456789abcdef_secret"), True),
        ("basic " + basic_auth("spypi_0123456789abcdef_secret").split()[1], True),
    ],
)
def test_plausible_upload_credentials(authorization: str | None, plausible: bool) -> None:
    """The header-time check refuses only what the token check refuses too."""
    assert plausible_upload_credentials(authorization) is plausible


@pytest.mark.parametrize(
    ("path", "upload"),
    [
        ("/", True),
        ("/legacy/", True),
        ("/legacy", True),
        ("/simple/", True),
        ("/simple/legacy/", True),
        ("/simple/demo/", False),
        ("/_/oidc/mint-token", False),
        ("/other", False),
    ],
)
def test_is_upload_target(path: str, upload: bool) -> None:
    assert is_upload_target(path) is upload


# -- the live server ------------------------------------------------------------------------

BODY_SIZE = 64 * 1024 * 1024
POSTS = 12
#: the server's peak resident memory may grow by at most this much while refusing them
RSS_GROWTH = 48 * 1024 * 1024


def memory(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def raw_post(port: int, authorization: str | None, size: int) -> str:
    """POST `size` bytes to the upload URL and return the status line."""
    head = (
        "POST /legacy/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {size}\r\nConnection: close\r\n"
    )
    if authorization is not None:
        head += f"Authorization: {authorization}\r\n"
    chunk = b"\0" * (1024 * 1024)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode() + b"\r\n")
        sent = 0
        while sent < size:
            piece = chunk[: size - sent]
            sock.sendall(piece)
            sent += len(piece)
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    return answer.split(b"\r\n", 1)[0].decode("latin-1")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_many_large_unauthenticated_posts_keep_memory_bounded(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server(str(tmp_path / "store"))
    port = server.port
    assert raw_post(port, None, 10).startswith("HTTP/1.1 403")  # warm up
    before = memory(server.process.pid, "VmHWM")
    # half carry no credentials at all, half a well-formed token the index does not know
    kinds = [None, basic_auth("spypi_0123456789abcdef_not-a-known-token")] * (POSTS // 2)
    started = time.monotonic()
    with ThreadPoolExecutor(POSTS) as pool:
        statuses = list(pool.map(lambda a: raw_post(port, a, BODY_SIZE), kinds))
    assert all(s.startswith("HTTP/1.1 403") for s in statuses), statuses
    growth = memory(server.process.pid, "VmHWM") - before
    assert growth < RSS_GROWTH, f"peak RSS grew by {growth >> 20} MiB"
    assert time.monotonic() - started < 120


def temporary_files(pid: int) -> int:
    """How many unlinked temporary files the process holds open (waitress's body buffers)."""
    links = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            links.append(os.readlink(fd))
        except OSError:
            continue
    return sum(link.endswith("(deleted)") for link in links)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_the_body_of_a_post_without_credentials_is_not_kept(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """While a large body arrives, waitress keeps it (in a temporary file) only when the
    request carries credentials that could be valid."""
    server = live_server(str(tmp_path / "store"))
    port, pid = server.port, server.process.pid

    def held(authorization: str | None) -> int:
        head = (
            "POST /legacy/ HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 10000000\r\n"
        )
        if authorization is not None:
            head += f"Authorization: {authorization}\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head.encode() + b"\r\n" + b"\0" * 2_000_000)
            time.sleep(0.5)
            return temporary_files(pid)

    idle = temporary_files(pid)
    assert held(basic_auth("spypi_0123456789abcdef_not-a-known-token")) == idle + 1
    assert held(None) == idle
    assert held(basic_auth("pypi-AgEIcHlwaS5vcmc")) == idle


@pytest.mark.slow
def test_an_upload_larger_than_the_memory_threshold_works_with_twine(
    live_server: Callable[..., LiveServer], tmp_path: Path, local_store: LocalStore
) -> None:
    server = live_server(str(local_store.root))
    token, _ = TokenStore(local_store).create("write", (), None, "")
    payload = f"DATA = {base64.b85encode(os.urandom(UPLOAD_IN_MEMORY + 2_000_000))!r}\n"
    wheel = make_wheel(tmp_path, "large-demo", "1.0", payload=payload)
    assert wheel.stat().st_size > UPLOAD_IN_MEMORY
    result = twine_upload(server.base + "legacy/", token, wheel)
    assert result.returncode == 0, result.stdout + result.stderr
    stored = local_store.find(f"large-demo/{wheel.name}")
    assert stored is not None and stored.size == wheel.stat().st_size


@pytest.mark.slow
def test_an_over_long_content_length_is_refused_before_the_body(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    max_upload = 20_000
    server = live_server(str(tmp_path / "store"), env={"MAX_UPLOAD_SIZE": str(max_upload)})
    # just over what the index accepts (the file plus 1 MiB of form): nothing of it is sent
    length = max_upload + 1024 * 1024 + 1000
    head = (
        "POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode())
        # the whole answer, up to the close (the head and the body may come in two reads)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"MAX_UPLOAD_SIZE" in answer
