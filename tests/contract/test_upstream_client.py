"""`UpstreamClient` against real HTTP servers on 127.0.0.1: the index's own `serverless-pypi
serve` (what a real upstream answers), and a small `http.server` for what a real index does
not show on demand (5xx, 429, slowness, redirects to another origin, 304, oversized bodies)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.negotiate import Format, choose_format
from serverless_pypi.core.upstream import JSON_TYPE, parse_page
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.upstream.client import (
    ACCEPT_PAGE,
    UpstreamClient,
    UpstreamError,
    UpstreamNotFound,
    UpstreamUnavailable,
)
from tests.helpers.dists import make_wheel
from tests.helpers.index import publish_file
from tests.helpers.servers import LiveServer, free_port, start_server, stop

DEMO = NormalizedName("up-demo")
SECRET = "s3cr3t-t0ken"
#: the upstream's own server has no upstream (whatever the environment of the test run says)
NO_UPSTREAM = {"FALLBACK_INDEX_URL": "", "UPSTREAM_INDEX_URL": "", "UPSTREAM_MODE": ""}


# --- the index's own server as the upstream -------------------------------------------------


@dataclass
class RealIndex:
    server: LiveServer
    wheel: Path
    token: str


@pytest.fixture(scope="module")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealIndex]:
    """`serverless-pypi serve` over a directory holding one published wheel."""
    root = tmp_path_factory.mktemp("upstream")
    store = LocalStore(root / "store")
    wheel = make_wheel(root, "Up.Demo", "1.0", requires_python=">=3.8")
    publish_file(Catalog(store), wheel)
    token, _ = TokenStore(store).create("read", ["*"])
    server = start_server(str(root / "store"), root, NO_UPSTREAM)
    try:
        yield RealIndex(server, wheel, token)
    finally:
        stop(server.process)


@pytest.fixture(scope="module")
def locked_index(
    real_index: RealIndex, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The same store behind a second server that requires credentials to read."""
    server = start_server(
        real_index.server.store,
        tmp_path_factory.mktemp("locked"),
        env={**NO_UPSTREAM, "REQUIRE_AUTH_FOR_READ": "1"},
    )
    try:
        yield server
    finally:
        stop(server.process)


@pytest.mark.slow
def test_page_metadata_and_file_from_a_real_index(real_index: RealIndex) -> None:
    client = UpstreamClient(real_index.server.url, timeout=5)
    fetched = client.project_page(DEMO)
    assert fetched is not None
    assert fetched.content_type.startswith(JSON_TYPE)  # PEP 691 JSON preferred
    assert fetched.url == real_index.server.url + "up-demo/"
    assert fetched.etag
    page = parse_page(fetched.data, fetched.content_type, fetched.url, DEMO)
    (file,) = page.files
    wheel = real_index.wheel.read_bytes()
    assert file.filename == real_index.wheel.name
    assert file.url == real_index.server.url + "up-demo/" + file.filename
    assert file.sha256 == hashlib.sha256(wheel).hexdigest()
    assert (file.size, file.requires_python) == (len(wheel), ">=3.8")
    assert file.upload_time is not None

    # revalidation: the same ETag is a 304, None
    assert client.project_page(DEMO, etag=fetched.etag) is None
    assert client.project_page(DEMO, etag='"other"') is not None

    # the core metadata the page advertises, and the distribution itself (streamed)
    assert file.metadata_sha256 is not None
    metadata = client.get(file.url + ".metadata", max_bytes=1 << 20)
    assert hashlib.sha256(metadata).hexdigest() == file.metadata_sha256
    with client.open(file.url) as stream:
        assert stream.read() == wheel
    with pytest.raises(UpstreamUnavailable, match="more than 10 bytes"):
        client.get(file.url + ".metadata", max_bytes=10)


@pytest.mark.slow
def test_real_index_unknown_project_and_file(real_index: RealIndex) -> None:
    client = UpstreamClient(real_index.server.url, timeout=5)
    with pytest.raises(UpstreamNotFound, match="404"):
        client.project_page(NormalizedName("no-such-project"))
    with pytest.raises(UpstreamNotFound):
        client.get(real_index.server.url + "up-demo/up_demo-9.0.tar.gz", max_bytes=100)


@pytest.mark.slow
def test_html_from_a_real_index(real_index: RealIndex) -> None:
    """An index that answers HTML to what the client asks is read as HTML."""
    client = UpstreamClient(real_index.server.url, timeout=5)
    fetched = client.project_page(DEMO)
    assert fetched is not None
    response = client.get(fetched.url + "?format=html", max_bytes=1 << 20)
    page = parse_page(response, "text/html", fetched.url, DEMO)
    json_page = parse_page(fetched.data, fetched.content_type, fetched.url, DEMO)
    assert [(f.filename, f.sha256, f.metadata_sha256) for f in page.files] == [
        (f.filename, f.sha256, f.metadata_sha256) for f in json_page.files
    ]


@pytest.mark.slow
def test_credentials_for_a_locked_index(real_index: RealIndex, locked_index: LiveServer) -> None:
    token = real_index.token
    anonymous = UpstreamClient(locked_index.url, timeout=5)
    with pytest.raises(UpstreamUnavailable, match="401.*credentials"):
        anonymous.project_page(DEMO)

    host = locked_index.url.removeprefix("http://")
    for client in (
        UpstreamClient(f"http://__token__:{token}@{host}", timeout=5),
        UpstreamClient(locked_index.url, username="__token__", password=token, timeout=5),
    ):
        assert client.location == locked_index.url
        assert token not in repr(client)
        fetched = client.project_page(DEMO)
        assert fetched is not None
        assert token not in fetched.url
        (file,) = parse_page(fetched.data, fetched.content_type, fetched.url, DEMO).files
        with client.open(file.url) as stream:  # the index's own origin: credentials sent
            assert stream.read() == real_index.wheel.read_bytes()
        with pytest.raises(UpstreamNotFound) as missing:
            client.project_page(NormalizedName("no-such-project"))
        assert token not in str(missing.value)

    wrong = UpstreamClient(f"http://__token__:{token}x@{host}", timeout=5)
    with pytest.raises(UpstreamUnavailable) as refused:
        wrong.project_page(DEMO)
    assert token not in str(refused.value)
    assert token not in locked_index.log.read_text()


@pytest.mark.slow
def test_keep_alive_with_a_real_index(real_index: RealIndex) -> None:
    client = UpstreamClient(real_index.server.url, timeout=5)
    client.project_page(DEMO)
    (connection,) = client._connections.idle.values()
    sock = connection.sock
    for _ in range(3):
        client.project_page(DEMO)
    assert client._connections.idle[client.origin].sock is sock


# --- a small server for what a real index does not show -------------------------------------

Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    peer: tuple[str, int]


@dataclass
class Fake:
    url: str  # http://127.0.0.1:<port>/
    routes: dict[str, Route]
    seen: list[Seen] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


def answer(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def fake() -> Iterator[Callable[[], Fake]]:
    """Start small HTTP/1.1 servers with per-test routes; stopped at the end of the test."""
    servers: list[ThreadingHTTPServer] = []

    def start() -> Fake:
        port = free_port()
        state = Fake(f"http://127.0.0.1:{port}/", {})

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive

            def do_GET(self) -> None:
                state.seen.append(Seen(self.path, dict(self.headers), self.client_address))
                route = state.routes.get(self.path.partition("?")[0])
                if route is None:
                    answer(self, 404, b"not here")
                else:
                    route(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


PAGE = json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": []}).encode()
JSON_HEADERS = {"Content-Type": JSON_TYPE, "ETag": '"v1"'}


def page_route(handler: BaseHTTPRequestHandler) -> None:
    answer(handler, 200, PAGE, JSON_HEADERS)


def test_accept_header_prefers_json_then_html(fake: Callable[[], Fake]) -> None:
    """PEP 691: JSON first, then the versioned HTML type, then text/html (q-values)."""
    upstream = fake()
    upstream.routes["/simple/demo/"] = page_route
    fetched = UpstreamClient(upstream.url + "simple").project_page(NormalizedName("demo"))
    assert fetched is not None
    assert (fetched.data, fetched.content_type, fetched.etag) == (PAGE, JSON_TYPE, '"v1"')
    (seen,) = upstream.seen
    assert seen.path == "/simple/demo/"  # a final "/" is added to the index URL
    assert seen.headers["Accept"] == ACCEPT_PAGE
    assert choose_format(ACCEPT_PAGE) is Format.JSON_V1
    accept = ACCEPT_PAGE.replace("application/vnd.pypi.simple.v1+json, ", "")
    assert choose_format(accept) is Format.HTML_V1
    assert "Authorization" not in seen.headers
    assert seen.headers["User-Agent"].startswith("serverless-pypi/")


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (500, UpstreamUnavailable, "500: unavailable"),
        (502, UpstreamUnavailable, "502: unavailable"),
        (503, UpstreamUnavailable, "503: unavailable"),
        (429, UpstreamUnavailable, "429: unavailable"),
        (401, UpstreamUnavailable, "401: it refuses access"),
        (403, UpstreamUnavailable, "403: it refuses access"),
        (400, UpstreamUnavailable, "400"),
        (404, UpstreamNotFound, "404: not found"),
        (410, UpstreamNotFound, "410: not found"),
    ],
)
def test_error_statuses(
    fake: Callable[[], Fake], status: int, error: type[UpstreamError], message: str
) -> None:
    upstream = fake()
    upstream.routes["/demo/"] = lambda h: answer(h, status, b"<html>no</html>")
    upstream.routes["/demo/f.whl"] = upstream.routes["/demo/"]
    client = UpstreamClient(upstream.url.replace("//", f"//user:{SECRET}@"))
    with pytest.raises(error, match=message) as raised:
        client.project_page(NormalizedName("demo"))
    assert SECRET not in str(raised.value)
    assert str(raised.value).startswith(upstream.url + "demo/")
    with pytest.raises(error, match=message):
        client.get(upstream.url + "demo/f.whl?X-Amz-Signature=abc", max_bytes=100)
    with pytest.raises(error) as raised, client.open(upstream.url + "demo/f.whl?sig=abc"):
        pass
    assert "sig=abc" not in str(raised.value)  # a query may hold a signature
    # the error's body was read: the connection serves the next request
    assert len({s.peer for s in upstream.seen}) == 1


def test_a_slow_answer_times_out(fake: Callable[[], Fake]) -> None:
    upstream = fake()
    release = threading.Event()

    def slow(handler: BaseHTTPRequestHandler) -> None:
        release.wait(10)
        answer(handler, 200, PAGE, JSON_HEADERS)

    def stalls_in_body(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b"x" * 10)
        handler.wfile.flush()
        release.wait(10)

    upstream.routes["/demo/"] = slow
    upstream.routes["/file.whl"] = stalls_in_body
    client = UpstreamClient(upstream.url, timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable, match="did not answer"):
            client.project_page(NormalizedName("demo"))
        assert time.monotonic() - started < 3
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable, match="broke off"):
            client.get(upstream.url + "file.whl", max_bytes=10_000)
        with client.open(upstream.url + "file.whl") as stream:
            with pytest.raises(UpstreamUnavailable, match="broke off"):
                stream.read()
        assert time.monotonic() - started < 5
    finally:
        release.set()


def test_unreachable_and_not_http(fake: Callable[[], Fake]) -> None:
    closed = UpstreamClient(f"http://127.0.0.1:{free_port()}/simple/", timeout=2)
    with pytest.raises(UpstreamUnavailable, match="did not answer"):
        closed.project_page(NormalizedName("demo"))

    # a server that answers something that is not HTTP
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def garbage() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")

        threading.Thread(target=garbage, daemon=True).start()
        with pytest.raises(UpstreamUnavailable, match="did not answer.*not an HTTP"):
            UpstreamClient(f"http://127.0.0.1:{port}/", timeout=2).project_page(
                NormalizedName("demo")
            )

    for url in ("ftp://127.0.0.1/x", "file:///etc/passwd", "http:///x", "http://a b/x"):
        with pytest.raises(UpstreamUnavailable, match="not an http"):
            closed.get(url, max_bytes=10)
    with pytest.raises(ValueError, match="http"):
        UpstreamClient("ftp://example.org/simple/")


def test_credentials_only_to_the_index_origin(fake: Callable[[], Fake]) -> None:
    """A redirect to another port is another origin (RFC 6454): no Authorization there."""
    index, files = fake(), fake()
    index.routes["/simple/demo/"] = lambda h: answer(h, 302, headers={"Location": files.url + "p"})
    files.routes["/p"] = lambda h: answer(h, 307, headers={"Location": index.url + "back"})
    index.routes["/back"] = page_route
    files.routes["/f.whl"] = lambda h: answer(h, 200, b"wheel")
    index.routes["/own.whl"] = lambda h: answer(h, 200, b"own")

    client = UpstreamClient(index.url + "simple/", username="__token__", password=SECRET)
    fetched = client.project_page(NormalizedName("demo"))
    assert fetched is not None
    assert fetched.url == index.url + "back"  # the final URL
    expected = "Basic " + base64.b64encode(f"__token__:{SECRET}".encode()).decode()
    assert [s.headers.get("Authorization") for s in index.seen] == [expected, expected]
    assert [s.headers.get("Authorization") for s in files.seen] == [None]

    assert client.get(files.url + "f.whl", max_bytes=100) == b"wheel"
    with client.open(files.url + "f.whl") as stream:
        assert stream.read() == b"wheel"
    assert all("Authorization" not in s.headers for s in files.seen)
    assert client.get(index.url + "own.whl", max_bytes=100) == b"own"
    assert index.seen[-1].headers["Authorization"] == expected
    # userinfo in a link is never used
    assert client.get(files.url.replace("//", "//u:p@") + "f.whl", max_bytes=100) == b"wheel"
    assert "Authorization" not in files.seen[-1].headers


def test_redirects_are_bounded(fake: Callable[[], Fake]) -> None:
    upstream = fake()
    for hop in range(8):
        upstream.routes[f"/{hop}"] = lambda h, hop=hop: answer(  # type: ignore[misc]
            h, 301 if hop % 2 else 308, headers={"Location": f"/{hop + 1}"}
        )
    upstream.routes["/8"] = lambda h: answer(h, 200, b"end")
    client = UpstreamClient(upstream.url)
    assert client.get(upstream.url + "3", max_bytes=10) == b"end"  # 5 redirects: followed
    with pytest.raises(UpstreamUnavailable, match="more than 5 times"):
        client.get(upstream.url + "2", max_bytes=10)
    upstream.routes["/loop"] = lambda h: answer(h, 302, headers={"Location": "/loop"})
    with pytest.raises(UpstreamUnavailable, match="more than 5 times"):
        client.get(upstream.url + "loop", max_bytes=10)
    upstream.routes["/away"] = lambda h: answer(h, 302, headers={"Location": "file:///etc/x"})
    with pytest.raises(UpstreamUnavailable, match="not an http"):
        client.get(upstream.url + "away", max_bytes=10)


def test_if_none_match_and_304(fake: Callable[[], Fake]) -> None:
    upstream = fake()

    def conditional(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("If-None-Match") == '"v1"':
            handler.send_response(304)
            handler.send_header("ETag", '"v1"')
            handler.end_headers()
        else:
            answer(handler, 200, PAGE, JSON_HEADERS)

    upstream.routes["/demo/"] = conditional
    client = UpstreamClient(upstream.url)
    assert client.project_page(NormalizedName("demo"), etag='"v1"') is None
    fetched = client.project_page(NormalizedName("demo"), etag='"v0"')
    assert fetched is not None and fetched.data == PAGE
    assert [s.headers.get("If-None-Match") for s in upstream.seen] == ['"v1"', '"v0"']
    assert client.project_page(NormalizedName("demo"), etag='"v1"') is None
    assert len({s.peer for s in upstream.seen}) == 1  # a 304 keeps the connection

    upstream.routes["/other/"] = lambda h: answer(h, 304)
    with pytest.raises(UpstreamUnavailable, match="unconditional"):
        client.project_page(NormalizedName("other"))


def chunked(handler: BaseHTTPRequestHandler, parts: list[bytes]) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", JSON_TYPE)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for part in parts:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
    handler.wfile.write(b"0\r\n\r\n")


def test_oversized_answers_are_refused(fake: Callable[[], Fake]) -> None:
    upstream = fake()
    big = b"x" * 5000
    upstream.routes["/demo/"] = lambda h: answer(h, 200, big, JSON_HEADERS)
    upstream.routes["/chunked/"] = lambda h: chunked(h, [b"y" * 600] * 5)
    upstream.routes["/bomb/"] = lambda h: answer(
        h, 200, gzip.compress(b"z" * 1_000_000), {"Content-Encoding": "gzip", **JSON_HEADERS}
    )
    client = UpstreamClient(upstream.url, max_page_bytes=1000)
    for name in ("demo", "chunked", "bomb"):
        with pytest.raises(UpstreamUnavailable, match="more than 1000 bytes"):
            client.project_page(NormalizedName(name))
    with pytest.raises(UpstreamUnavailable, match="more than 4999 bytes"):
        client.get(upstream.url + "demo/", max_bytes=4999)
    assert client.get(upstream.url + "demo/", max_bytes=5000) == big
    assert (
        UpstreamClient(upstream.url, max_page_bytes=3000).project_page(NormalizedName("chunked"))
        is not None
    )


def test_gzip_pages_are_decoded(fake: Callable[[], Fake]) -> None:
    upstream = fake()
    upstream.routes["/demo/"] = lambda h: answer(
        h, 200, gzip.compress(PAGE), {"Content-Encoding": "gzip", **JSON_HEADERS}
    )
    upstream.routes["/broken/"] = lambda h: answer(
        h, 200, gzip.compress(PAGE)[:-8], {"Content-Encoding": "gzip", **JSON_HEADERS}
    )
    upstream.routes["/br/"] = lambda h: answer(h, 200, PAGE, {"Content-Encoding": "br"})
    client = UpstreamClient(upstream.url)
    fetched = client.project_page(NormalizedName("demo"))
    assert fetched is not None and fetched.data == PAGE
    assert upstream.seen[0].headers["Accept-Encoding"] == "gzip"
    with pytest.raises(UpstreamUnavailable, match="gzip"):
        client.project_page(NormalizedName("broken"))
    with pytest.raises(UpstreamUnavailable, match="unknown encoding 'br'"):
        client.project_page(NormalizedName("br"))
    upstream.routes["/f.metadata"] = lambda h: answer(h, 200, b"Metadata-Version: 2.1\n")
    client.get(upstream.url + "f.metadata", max_bytes=100)
    assert upstream.seen[-1].headers["Accept-Encoding"] == "identity"  # digests: bytes as-is


def test_streamed_download(fake: Callable[[], Fake]) -> None:
    upstream = fake()
    data = bytes(range(256)) * 4096  # 1 MiB
    upstream.routes["/f.whl"] = lambda h: chunked(
        h, [data[i : i + 70_000] for i in range(0, len(data), 70_000)]
    )

    def short(handler: BaseHTTPRequestHandler) -> None:
        """Promises 100 bytes, sends 10 and closes."""
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(b"x" * 10)
        handler.close_connection = True

    upstream.routes["/short.whl"] = short
    client = UpstreamClient(upstream.url)
    with client.open(upstream.url + "f.whl") as stream:
        assert hashlib.sha256(stream.read()).digest() == hashlib.sha256(data).digest()
    # read to its end: the connection is kept for the next request
    with client.open(upstream.url + "f.whl") as stream:
        stream.read(10)  # not to its end: the connection is closed, not reused
    assert client.get(upstream.url + "f.whl", max_bytes=len(data)) == data
    assert len({s.peer for s in upstream.seen}) == 2
    with client.open(upstream.url + "short.whl") as stream:
        with pytest.raises(UpstreamUnavailable, match="broke off"):
            stream.read()


def test_one_connection_per_thread(fake: Callable[[], Fake]) -> None:
    upstream = fake()
    upstream.routes["/demo/"] = page_route
    client = UpstreamClient(upstream.url)
    for _ in range(3):
        client.project_page(NormalizedName("demo"))
    assert len({s.peer for s in upstream.seen}) == 1

    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(5)
            for _ in range(3):
                client.project_page(NormalizedName("demo"))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert len(upstream.seen) == 12
    assert len({s.peer for s in upstream.seen}) == 4  # this thread's and one per thread


def test_a_stale_kept_alive_connection_is_replaced(fake: Callable[[], Fake]) -> None:
    upstream = fake()

    def once(handler: BaseHTTPRequestHandler) -> None:
        answer(handler, 200, PAGE, JSON_HEADERS)
        handler.close_connection = True  # closed after the answer, without saying so

    upstream.routes["/demo/"] = once
    client = UpstreamClient(upstream.url)
    for _ in range(3):
        assert client.project_page(NormalizedName("demo")) is not None
    assert len({s.peer for s in upstream.seen}) == 3
