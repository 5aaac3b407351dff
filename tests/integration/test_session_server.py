"""The Upload 2.0 session API on the local server (`serverless-pypi serve`): links name the
server's own URL, and a session's http-post-bytes body is bounded by
UPLOAD_SESSION_MAX_FILE_SIZE, not by MAX_UPLOAD_SIZE (which still bounds legacy uploads)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import select
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serverless_pypi.adapters.server import body_limit, is_upload_target
from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.core.config import Settings
from serverless_pypi.storage.local import LocalStore
from tests.helpers.dists import make_wheel
from tests.helpers.forms import basic_auth, upload_body
from tests.helpers.servers import LiveServer

MEDIA_TYPE = "application/vnd.pypi.upload.v2+json"
META = {"api-version": "2.0"}
MIB = 1024 * 1024


def call(
    url: str, data: bytes | None, content_type: str | None, token: str | None, method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": basic_auth(token)} if token else {}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - local
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def post_json(url: str, body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
    status, _, data = call(url, json.dumps(body).encode(), MEDIA_TYPE, token)
    return status, json.loads(data) if data else {}


def test_a_session_upload_is_not_bounded_by_max_upload_size(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    root = tmp_path / "store"
    store = LocalStore(root)
    token, _ = TokenStore(store).create("write")
    server = live_server(str(root), {"MAX_UPLOAD_SIZE": str(MIB)})
    noise = base64.b64encode(os.urandom(2 * MIB)).decode()
    wheel = make_wheel(tmp_path, "demo", "1.0", payload=f"# {noise}\n")
    data = wheel.read_bytes()
    assert len(data) > 2 * MIB
    # the legacy upload is refused: MAX_UPLOAD_SIZE bounds it, before its body is sent (a
    # client still sending when the 413 comes may see its connection closed instead, so the
    # head alone is sent here)
    form, content_type = upload_body(wheel)
    head = (
        f"POST /simple/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: {basic_auth(token)}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(form)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(head.encode())
        answer = b""
        while chunk := connection.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    status, session = post_json(
        server.url + "_upload/", {"meta": META, "name": "demo", "version": "1.0"}, token
    )
    assert status == 201, session
    assert session["links"]["session"].startswith(server.url + "_upload/")
    status, file = post_json(
        session["links"]["upload"],
        {
            "meta": META,
            "filename": wheel.name,
            "size": len(data),
            "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
            "mechanism": "http-post-bytes",
        },
        token,
    )
    assert status == 202, file
    assert file["mechanism"]["file_url"].startswith(server.url)
    sent = call(file["mechanism"]["file_url"], data, "application/octet-stream", token)
    assert sent[0] == 204, sent
    assert post_json(file["links"]["complete"], {"meta": META}, token)[0] == 201
    assert post_json(session["links"]["publish"], {"meta": META}, token)[0] == 201
    status, _, page = call(server.url + "demo/", None, None, None, method="GET")
    assert status == 200
    assert wheel.name in page.decode()
    # without credentials, a body to the session routes is refused (and dropped)
    assert call(file["mechanism"]["file_url"], data, "application/octet-stream", None)[0] == 403


def test_the_body_bound_depends_on_the_route() -> None:
    settings = Settings(max_upload_size=MIB, upload_session_max_file_size=50 * MIB)
    assert body_limit(settings, "/simple/") == 2 * MIB
    assert body_limit(settings, "/legacy/") == 2 * MIB
    assert body_limit(settings, "/simple/demo/") == 2 * MIB
    assert body_limit(settings, "/simple/_upload/abc/files/x.whl/bytes") == 51 * MIB
    assert is_upload_target("/simple/_upload/")
    assert is_upload_target("/simple/_upload/abc/files/x.whl/bytes")
    assert not is_upload_target("/simple/_stage/abc/")
    assert not is_upload_target("/simple/demo/")


def test_a_chunked_legacy_upload_is_still_bounded_by_max_upload_size(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    root = tmp_path / "store"
    store = LocalStore(root)
    token, _ = TokenStore(store).create("write")
    server = live_server(str(root), {"MAX_UPLOAD_SIZE": str(MIB)})
    head = (
        f"POST /simple/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: {basic_auth(token)}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"%x\r\n%s\r\n" % (256 * 1024, b"a" * 256 * 1024)
    answer = b""
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(head)
        try:
            # up to 64 MiB, stopping as soon as the server answers: it refuses once the body
            # has grown past MAX_UPLOAD_SIZE plus 1 MiB, not after receiving all of it
            while sent < 64 * MIB and not select.select([connection], [], [], 0)[0]:
                connection.sendall(chunk)
                sent += 256 * 1024
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed: the answer is waiting
        with contextlib.suppress(ConnectionResetError):
            answer = connection.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 32 * MIB
