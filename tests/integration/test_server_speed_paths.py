"""The local server's fast paths keep its answers and its guarantees (issue 15, item 3).

Reads over a local directory are answered in waitress's I/O loop, the request log is written
by a flusher while other requests are in flight, waitress's queue warning is rate-limited and
request headers are read from the WSGI environ when asked for. Behaviour only: speed is
judged by `make bench`, never here.
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from serverless_pypi.adapters.server import EnvironHeaders, _answers_in_loop, _QueueWarnings
from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.storage.base import Store
from serverless_pypi.storage.local import LocalStore
from tests.helpers.dists import make_wheel
from tests.helpers.index import publish_file
from tests.helpers.servers import LiveServer

Start = Callable[..., LiveServer]
JSON = "application/vnd.pypi.simple.v1+json"


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def _versions(body: bytes) -> set[str]:
    return set(json.loads(body)["versions"])


@pytest.fixture
def served(live_server: Start, tmp_path: Path) -> tuple[LiveServer, LocalStore, Path]:
    root = tmp_path / "store"
    store = LocalStore(root)
    publish_file(store, make_wheel(tmp_path, "acme", "1.0"))
    return live_server(str(root), extra=["--threads", "1"]), store, tmp_path


@pytest.mark.slow
def test_a_page_answered_in_the_loop_shows_a_new_upload_at_once(
    served: tuple[LiveServer, LocalStore, Path],
) -> None:
    server, store, tmp_path = served
    status, headers, body = _get(server.url + "acme/", Accept=JSON)
    assert status == 200 and _versions(body) == {"1.0"}
    etag = headers["etag"]
    # revalidation: 304 without a body, the same tag
    status, headers, body = _get(server.url + "acme/", Accept=JSON, **{"If-None-Match": etag})
    assert (status, body, headers["etag"]) == (304, b"", etag)
    # another process publishes: the next read (no wait) sees it, and the old tag no longer
    # matches
    publish_file(store, make_wheel(tmp_path, "acme", "1.1"))
    status, headers, body = _get(server.url + "acme/", Accept=JSON, **{"If-None-Match": etag})
    assert status == 200 and _versions(body) == {"1.0", "1.1"} and headers["etag"] != etag
    # gzip: the same page, its own tag
    status, headers, body = _get(server.url + "acme/", Accept=JSON, **{"Accept-Encoding": "gzip"})
    assert headers["content-encoding"] == "gzip" and _versions(gzip.decompress(body)) == {
        "1.0",
        "1.1",
    }


def _pipelined(port: int, requests: list[bytes]) -> list[bytes]:
    """Send `requests` in one write on one connection; the status lines, in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(requests))
        data = b""
        deadline = time.monotonic() + 5
        while data.count(b"HTTP/1.1 ") < len(requests) and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return re.findall(rb"HTTP/1\.1 (\d{3})", data)


@pytest.mark.slow
def test_pipelined_reads_and_a_refused_upload_are_answered_in_order(
    served: tuple[LiveServer, LocalStore, Path],
) -> None:
    server, _, _ = served
    page = b"GET /simple/acme/ HTTP/1.1\r\nHost: x\r\n\r\n"
    head = b"HEAD /simple/acme/ HTTP/1.1\r\nHost: x\r\n\r\n"
    missing = b"GET /simple/nothing-here/ HTTP/1.1\r\nHost: x\r\n\r\n"
    upload = b"POST /legacy/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    statuses = _pipelined(server.port, [page, head, missing, upload, page])
    assert statuses == [b"200", b"200", b"404", b"403", b"200"]


@pytest.mark.slow
def test_a_304_keeps_the_connection_open(served: tuple[LiveServer, LocalStore, Path]) -> None:
    # RFC 9112 section 6.3: a 304 ends with its header section; a revalidating client (uv,
    # pip) reuses its connection for the next request
    server, _, _ = served
    _, headers, _ = _get(server.url + "acme/", Accept=JSON)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conditional = {"Accept": JSON, "If-None-Match": headers["etag"]}
        for _ in range(3):
            connection.request("GET", "/simple/acme/", headers=conditional)
            response = connection.getresponse()
            assert response.status == 304 and response.read() == b""
            assert response.getheader("Connection") is None and not response.will_close
            sock = connection.sock
            connection.request("GET", "/simple/acme/", headers={"Accept": JSON})
            response = connection.getresponse()
            assert response.status == 200 and _versions(response.read()) == {"1.0"}
            assert connection.sock is sock  # the same connection, not a new one
        # a client that asks to close still gets its connection closed
        connection.request("GET", "/simple/acme/", headers={**conditional, "Connection": "close"})
        response = connection.getresponse()
        assert response.status == 304 and response.will_close
    finally:
        connection.close()


@pytest.mark.slow
def test_a_client_that_never_reads_its_answers_does_not_hold_up_others(
    served: tuple[LiveServer, LocalStore, Path],
) -> None:
    server, _, _ = served
    greedy = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        # thousands of pipelined reads whose answers are never read: they fill the socket
        # buffers, and the rest wait for the one worker thread, never the loop
        request = b"GET /simple/acme/ HTTP/1.1\r\nHost: x\r\n\r\n"
        greedy.setblocking(False)
        sent = 0
        for _ in range(20_000):
            try:
                sent += greedy.send(request)
            except BlockingIOError:
                break
        assert sent > 100 * len(request)
        time.sleep(0.3)
        for _ in range(5):
            started = time.monotonic()
            status, _, body = _get(server.url + "acme/", Accept=JSON)
            assert status == 200 and _versions(body) == {"1.0"}
            assert time.monotonic() - started < 1.0
        assert server.process.poll() is None
    finally:
        greedy.close()


@pytest.mark.slow
def test_every_request_of_concurrent_clients_is_in_the_log(
    live_server: Start, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    publish_file(LocalStore(root), make_wheel(tmp_path, "acme", "1.0"))
    server = live_server(str(root))
    clients, each = 8, 40
    failures: list[int] = []

    def client(n: int) -> None:
        for i in range(each):
            status, _, _ = _get(f"{server.url}acme/?c={n}&i={i}")
            if status != 200:
                failures.append(status)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    # lines left to the flusher while others were in flight are written within its interval
    deadline = time.monotonic() + 2
    while True:
        lines = re.findall(r"GET /simple/acme/ 200 ", server.log.read_text(errors="replace"))
        if len(lines) >= clients * each or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(lines) == clients * each


@pytest.mark.slow
def test_a_single_request_is_in_the_log_when_its_answer_arrives(
    served: tuple[LiveServer, LocalStore, Path],
) -> None:
    server, _, _ = served
    for i in range(20):
        status, _, _ = _get(f"{server.url}acme/?n={i}")
        assert status == 200
        # read at once: written before the answer was sent
        assert server.log.read_text(errors="replace").count("GET /simple/acme/ 200 ") == i + 1


def test_reads_are_answered_in_the_loop_only_over_a_local_directory(
    tmp_path: Path, store: Store
) -> None:
    local = isinstance(store, LocalStore)
    assert _answers_in_loop(build_application(store)) is local
    # an upstream index behind the store: its reads wait on the network, never in the loop
    fallback = Settings(fallback_index_url="https://pypi.org/simple/")
    assert _answers_in_loop(build_application(LocalStore(tmp_path / "s"), fallback)) is False


def test_queue_warnings_are_one_line_an_interval_naming_the_deepest_queue() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    target = logging.getLogger("test.waitress.queue")
    target.propagate = False
    target.addHandler(Keep())
    warnings = _QueueWarnings(target)
    for depth in (1, 5, 3, 64, 2) * 200:
        warnings.warning("Task queue depth is %d", depth)
    assert len(records) == 1
    assert records[0].getMessage().startswith("1 requests waited")
    # the next line, once the interval is over, counts what waited since the last one
    warnings._next = 0.0
    warnings.warning("Task queue depth is %d", 7)
    assert len(records) == 2
    assert records[1].getMessage().startswith("1000 requests waited")
    assert "deepest queue: 64" in records[1].getMessage()


def test_environ_headers_are_the_request_headers() -> None:
    environ = {
        "HTTP_ACCEPT": JSON,
        "HTTP_ACCEPT_ENCODING": "gzip, br",
        "HTTP_IF_NONE_MATCH": '"a", "b"',
        "HTTP_X_CUSTOM_THING": "1",
        "CONTENT_TYPE": "",
        "CONTENT_LENGTH": "12",
        "PATH_INFO": "/simple/",
    }
    headers = EnvironHeaders(environ)
    assert headers.get("Accept") == headers.get("accept") == JSON
    assert headers.get("if-none-match") == '"a", "b"'
    assert headers.get("X-Custom-Thing") == "1"
    assert headers.get("content-type") is None and "content-type" not in headers
    assert headers.get("content-length") == "12" and "Content-Length" in headers
    assert headers.get("authorization") is None and headers.get("authorization", "-") == "-"
    assert "path-info" not in headers
