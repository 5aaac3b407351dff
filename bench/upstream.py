"""Upstream projects (proxy and mirror modes) against private ones, and against the upstream.

The upstream is the index's own server over a second directory (PEP 691 JSON, strong ETags,
304s), holding a project of `FILES` wheels; this index holds a private project of the same
shape. One wheel of each carries a 1 MiB payload: the download.

Local server: `serverless-pypi serve` processes on 127.0.0.1, each request a GET on one
kept-alive connection with pip's headers (no If-None-Match: a fresh client), the cases of a
group alternating in one loop so all see the machine at the same moment:

- pages: the private page; the upstream page served from the cache (a server with a long
  UPSTREAM_TTL); the upstream page revalidated (a server with UPSTREAM_TTL=0: every request
  asks the upstream with If-None-Match and gets a 304); the same page from the upstream itself
- core metadata: private; upstream (cached in the store); from the upstream itself
- downloads: private; pulled through (the copy in the store, made by the first download);
  from the upstream itself

Lambda path: `api_handler`'s application in-process over moto's S3 (as `pages.py`), the
upstream the same local server; the S3 requests of one warm request of each case, counted on
the store (the cost model of docs/deploy.md uses them), and the handler's latency.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import shutil
import subprocess
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import (
    BIN,
    PIP_HEADERS,
    WORK,
    Moto,
    Server,
    clean_env,
    environment,
    free_port,
    log,
    ratio,
    start_server,
    summary,
)

FILES = 100
PAYLOAD = 1024 * 1024
UPSTREAM = "bench-upstream"
PRIVATE = "bench-private"
BUCKET = "bench-upstream"
ROOT = WORK / "upstream"


# -- the stores ----------------------------------------------------------------------------------
def _wheel(name: str, version: str, payload: bytes) -> tuple[str, bytes]:
    """A valid wheel with `payload` as a data file (stored, so its size is the payload's)."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    metadata = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Python: >=3.9\n\n"
    ).encode()
    wheel = b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{dist}/payload.bin", payload)
        archive.writestr(f"{info}/METADATA", metadata)
        archive.writestr(f"{info}/WHEEL", wheel)
        archive.writestr(
            f"{info}/RECORD",
            f"{dist}/payload.bin,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n",
        )
    return f"{dist}-{version}-py3-none-any.whl", buffer.getvalue()


def _project(folder: Path, name: str) -> str:
    """`FILES` wheels of `name` in `folder/name/`; the name of the big one."""
    (folder / name).mkdir(parents=True, exist_ok=True)
    big = ""
    for i in range(FILES):
        payload = bytes(PAYLOAD) if i == 0 else b""
        filename, data = _wheel(name, f"1.{i}.0", payload)
        (folder / name / filename).write_bytes(data)
        big = big or filename
    return big


def _reindex(store: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [str(BIN / "serverless-pypi"), "reindex", "--store", store],
        env=env or clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"reindex of {store} failed:\n{done.stdout}\n{done.stderr}")


def prepare() -> dict[str, Any]:
    """The upstream's directory and ours, written and indexed afresh."""
    shutil.rmtree(ROOT, ignore_errors=True)
    upstream, ours = ROOT / "upstream", ROOT / "ours"
    big = _project(upstream, UPSTREAM)
    private_big = _project(ours, PRIVATE)
    for store in (upstream, ours):
        _reindex(str(store))
    return {"upstream": upstream, "ours": ours, "file": big, "private_file": private_big}


# -- servers -------------------------------------------------------------------------------------
def _serve(kind: str, store: Path, probe: str, *extra: str, **env: str) -> Server:
    port = free_port()
    argv = [
        str(BIN / "serverless-pypi"),
        "serve",
        "--store",
        str(store),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *extra,
    ]
    logs = WORK / "logs" / f"upstream-{kind}-{port}.log"
    return start_server(kind, argv, port, "/simple/", logs, clean_env(**env), ready=probe)


class Client:
    """GETs on one kept-alive connection to a server on 127.0.0.1."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def get(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        self.connection.request("GET", path, headers=PIP_HEADERS)
        response = self.connection.getresponse()
        body = response.read()
        return response.status, body, {k.lower(): v for k, v in response.getheaders()}

    def close(self) -> None:
        self.connection.close()


Case = tuple[str, Client, str, int]  # (label, client, path, expected status)


def _alternate(cases: list[Case], count: int, budget: float) -> dict[str, dict[str, Any]]:
    """Time the cases in turn, `count` rounds (fewer past `budget` seconds), after warm-up."""
    samples: dict[str, list[float]] = {label: [] for label, *_ in cases}
    sizes: dict[str, int] = {}
    for label, client, path, status in cases:  # warm-up, and a check of each answer
        for _ in range(3):
            got, body, _ = client.get(path)
            if got != status:
                raise RuntimeError(f"upstream: {label} {path}: {got}, expected {status}")
        sizes[label] = len(body)
    deadline = time.perf_counter() + budget
    for _ in range(count):
        for label, client, path, _status in cases:
            started = time.perf_counter()
            client.get(path)
            samples[label].append(time.perf_counter() - started)
        if time.perf_counter() > deadline:
            break
    return {label: {"bytes": sizes[label], **summary(values)} for label, values in samples.items()}


def _wait_for_copy(store: Path, filename: str, timeout: float = 60) -> float:
    """Seconds until the pulled-through copy of `filename` is in the store."""
    started = time.perf_counter()
    folder = store / ".serverless-pypi" / "upstream" / "files" / UPSTREAM
    while time.perf_counter() - started < timeout:
        if any(folder.glob(f"*/{filename}")):
            return time.perf_counter() - started
        time.sleep(0.02)
    raise RuntimeError(f"upstream: no copy of {filename} in {folder} after {timeout} s")


def local_server(setup: dict[str, Any], quick: bool) -> dict[str, Any]:
    """The three comparisons over `serverless-pypi serve`."""
    up_page, priv_page = f"/simple/{UPSTREAM}/", f"/simple/{PRIVATE}/"
    upstream = _serve("upstream", setup["upstream"], up_page)
    servers = [upstream]
    try:
        url = upstream.url  # http://127.0.0.1:<port>/simple/
        cached = _serve(
            "cached", setup["ours"], priv_page, "--upstream", url, "--upstream-mode", "mirror",
            UPSTREAM_TTL="86400",
        )  # fmt: skip
        servers.append(cached)
        # proxy: the same pages, and this one never copies (the mirror server does)
        revalidating = _serve(
            "revalidating", setup["ours"], priv_page, "--upstream", url, "--upstream-mode",
            "proxy", UPSTREAM_TTL="0",
        )  # fmt: skip
        servers.append(revalidating)
        clients = {s.name: Client(s) for s in servers}
        ours, again, direct = clients["cached"], clients["revalidating"], clients["upstream"]
        rounds, budget = (30, 5.0) if quick else (400, 20.0)

        pages = _alternate(
            [
                ("private", ours, priv_page, 200),
                ("upstream-cached", ours, up_page, 200),
                ("upstream-revalidated", again, up_page, 200),
                ("direct", direct, up_page, 200),
            ],
            rounds,
            budget,
        )
        up_file, priv_file = setup["file"], setup["private_file"]
        metadata = _alternate(
            [
                ("private", ours, f"{priv_page}{priv_file}.metadata", 200),
                ("upstream-cached", ours, f"{up_page}{up_file}.metadata", 200),
                ("direct", direct, f"{up_page}{up_file}.metadata", 200),
            ],
            rounds,
            budget,
        )
        # the first download: a redirect to the upstream, and a copy asked for
        started = time.perf_counter()
        status, _, headers = ours.get(f"{up_page}{up_file}")
        first = time.perf_counter() - started
        if status != 302 or not headers.get("location", "").startswith(url.rstrip("/")):
            raise RuntimeError(f"upstream: first download answered {status} {headers}")
        copied_after = _wait_for_copy(setup["ours"], up_file)
        downloads = _alternate(
            [
                ("private", ours, f"{priv_page}{priv_file}", 200),
                ("pulled-through", ours, f"{up_page}{up_file}", 200),
                ("direct", direct, f"{up_page}{up_file}", 200),
            ],
            max(10, rounds // 4),
            budget,
        )
        for client in clients.values():
            client.close()
    finally:
        for server in servers:
            server.stop()
    return {
        "pages": pages,
        "metadata": metadata,
        "downloads": downloads,
        "first_download_s": first,
        "copied_after_s": copied_after,
    }


# -- the Lambda path -------------------------------------------------------------------------------
class CountingPuller:
    """Stands for the API function's QueuePuller: one SQS SendMessage per request."""

    def __init__(self) -> None:
        self.requests = 0

    def request(self, name: Any, filename: str) -> None:
        self.requests += 1


def _s3_store(moto: Moto) -> None:
    """The private project in the bucket (uploaded, then indexed as the indexer would)."""
    import boto3

    moto.create_bucket(BUCKET)
    client = boto3.client(
        "s3",
        endpoint_url=moto.url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    for path in sorted((ROOT / "ours" / PRIVATE).iterdir()):
        client.put_object(Bucket=BUCKET, Key=f"{PRIVATE}/{path.name}", Body=path.read_bytes())
    _reindex(f"s3://{BUCKET}", clean_env(**moto.env()))


def _handler(app: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from serverless_pypi.adapters import aws_lambda

    def call(event: dict[str, Any]) -> dict[str, Any]:
        aws_lambda.application = lambda: app  # type: ignore[assignment]
        return aws_lambda.api_handler(event)

    return call


def _lambda_app(settings_env: dict[str, str], puller: CountingPuller) -> Any:
    from serverless_pypi.adapters.aws_lambda import MAX_INLINE_BODY, MAX_UPLOAD_THROUGH_LAMBDA
    from serverless_pypi.compose import build_application
    from serverless_pypi.core.config import Settings
    from serverless_pypi.storage.s3_light import LightS3Store

    return build_application(
        LightS3Store(BUCKET),
        Settings.from_env(settings_env),
        max_inline_body=MAX_INLINE_BODY,
        max_upload_size=MAX_UPLOAD_THROUGH_LAMBDA,
        puller=puller,
        background_pulls=False,
    )


def _stores_of(app: Any) -> list[Any]:
    """The store instances under the application's repositories (counted on each)."""
    from serverless_pypi.repository.policy import PolicyRepository

    repository = app.repository
    while isinstance(repository, PolicyRepository):  # the policy layer, on top of every stack
        repository = repository.inner
    if hasattr(repository, "upstream"):  # proxy, mirror: PrivateFirstRepository
        found = [repository.private.reader.store, repository.upstream.cache.store]
    else:  # redirect: FallbackRepository over the store's
        found = [repository.inner.reader.store]
    unique: list[Any] = []
    for store in found:
        if all(store is not s for s in unique):
            unique.append(store)
    return unique


def _pull(upstream_url: str, filename: str) -> None:
    """The indexer's copy of `filename` (what the pull queue's message asks for)."""
    from serverless_pypi.core.names import NormalizedName
    from serverless_pypi.index.pull import pull_file
    from serverless_pypi.index.upstream_cache import UpstreamCache
    from serverless_pypi.storage.s3 import S3Store
    from serverless_pypi.upstream.client import UpstreamClient

    pull_file(
        UpstreamCache(S3Store(BUCKET)), UpstreamClient(upstream_url), NormalizedName(UPSTREAM),
        filename,
    )  # fmt: skip


def lambda_path(moto: Moto, setup: dict[str, Any], quick: bool) -> dict[str, Any]:
    """S3 requests and handler latency per request, warm, on the Lambda path."""
    from .lambda_events import rest_event, silence_logs

    _s3_store(moto)
    upstream = _serve("upstream-lambda", setup["upstream"], f"/simple/{UPSTREAM}/")
    try:
        env = {
            **moto.env(S3_BUCKET=BUCKET),
            "UPSTREAM_INDEX_URL": upstream.url,
            "UPSTREAM_MODE": "mirror",
        }
        rows: list[dict[str, Any]] = []
        with environment(env):
            silence_logs()
            puller = CountingPuller()
            cached = _lambda_app({**env, "UPSTREAM_TTL": "86400"}, puller)
            again = _lambda_app({**env, "UPSTREAM_TTL": "0"}, CountingPuller())
            proxy = _lambda_app({**env, "UPSTREAM_MODE": "proxy"}, CountingPuller())
            redirect = _lambda_app({**env, "UPSTREAM_MODE": "redirect"}, CountingPuller())
            apps = (cached, again, proxy, redirect)
            counters = {id(app): _counted(app) for app in apps}
            up, priv = f"{UPSTREAM}/", f"{PRIVATE}/"
            up_file, priv_file, other = setup["file"], setup["private_file"], _other(setup)
            handler, handler_again = _handler(cached), _handler(again)
            handler_proxy, handler_redirect = _handler(proxy), _handler(redirect)
            handler(rest_event(up))  # the page into the bucket's cache
            _pull(upstream.url, up_file)
            cases = [
                ("page", "private", handler, cached, priv, 200),
                ("page", "upstream-cached", handler, cached, up, 200),
                ("page", "upstream-revalidated", handler_again, again, up, 200),
                ("metadata", "private", handler, cached, f"{priv}{priv_file}.metadata", 200),
                ("metadata", "upstream-cached", handler, cached, f"{up}{up_file}.metadata", 200),
                ("download", "private", handler, cached, f"{priv}{priv_file}", 302),
                ("download", "pulled-through", handler, cached, f"{up}{up_file}", 302),
                ("download", "not-yet-copied", handler, cached, f"{up}{other}", 302),
                ("download", "proxy", handler_proxy, proxy, f"{up}{up_file}", 302),
                ("page", "redirect", handler_redirect, redirect, up, 302),
            ]
            count = 30 if quick else 300
            for kind, label, call, app, route, status in cases:
                rows.append(
                    {
                        "kind": kind,
                        "case": label,
                        **_measure(
                            call, counters[id(app)], puller, rest_event(route), status, count
                        ),
                    }
                )
                row = rows[-1]
                log(
                    f"upstream: lambda {kind:8} {label:21} p50 {row['p50'] * 1000:7.2f} ms  "
                    f"{row['s3_requests']} S3 requests {row['operations']}  "
                    f"{row['pull_requests']} pull messages"
                )
    finally:
        upstream.stop()
    return {"rows": rows}


def _other(setup: dict[str, Any]) -> str:
    """A small upstream wheel that is never copied here (the counting puller copies nothing)."""
    filename, _ = _wheel(UPSTREAM, "1.1.0", b"")
    return filename


def _counted(app: Any) -> list[Any]:
    from .lambda_events import StoreCounter

    return [StoreCounter(store) for store in _stores_of(app)]


def _measure(
    handler: Callable[[dict[str, Any]], dict[str, Any]],
    counters: list[Any],
    puller: CountingPuller,
    event: dict[str, Any],
    status: int,
    count: int,
) -> dict[str, Any]:
    for attempt in range(3):
        for counter in counters:
            counter.reset()
        before = puller.requests
        response = handler(event)
        if response["statusCode"] != status:
            raise RuntimeError(f"{event['path']}: {response['statusCode']}, expected {status}")
        if attempt == 2:  # warm: the third call
            requests = sum(c.count for c in counters)
            operations: dict[str, int] = {}
            for counter in counters:
                for name, n in counter.operations.items():
                    operations[name] = operations.get(name, 0) + n
            pulls = puller.requests - before
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        handler(event)
        samples.append(time.perf_counter() - started)
    return {
        "s3_requests": requests,
        "operations": operations,
        "pull_requests": pulls,
        **summary(samples),
    }


# -- the section ---------------------------------------------------------------------------------
def _ratios(data: dict[str, Any]) -> dict[str, float]:
    def p50(group: str, label: str) -> float:
        return float(data[group][label]["p50"])

    return {
        "cached_vs_private": ratio(p50("pages", "upstream-cached"), p50("pages", "private")),
        "cached_vs_direct": ratio(p50("pages", "upstream-cached"), p50("pages", "direct")),
        "revalidated_vs_private": ratio(
            p50("pages", "upstream-revalidated"), p50("pages", "private")
        ),
        "revalidated_vs_direct": ratio(
            p50("pages", "upstream-revalidated"), p50("pages", "direct")
        ),
        "metadata_vs_private": ratio(
            p50("metadata", "upstream-cached"), p50("metadata", "private")
        ),
        "metadata_vs_direct": ratio(p50("metadata", "upstream-cached"), p50("metadata", "direct")),
        "download_vs_private": ratio(
            p50("downloads", "pulled-through"), p50("downloads", "private")
        ),
        "download_vs_direct": ratio(p50("downloads", "pulled-through"), p50("downloads", "direct")),
    }


def run(quick: bool = False) -> dict[str, Any]:
    from .common import moto_server

    started = time.perf_counter()
    setup = prepare()
    log(f"upstream: stores written and indexed in {time.perf_counter() - started:.1f} s")
    local = local_server(setup, quick)
    for group in ("pages", "metadata", "downloads"):
        for label, stats in local[group].items():
            log(
                f"upstream: local {group:9} {label:21} p50 {stats['p50'] * 1000:7.2f} ms  "
                f"p99 {stats['p99'] * 1000:7.2f} ms  n={stats['n']}"
            )
    ratios = _ratios(local)
    for name, value in ratios.items():
        log(f"upstream: {name} = {value:.2f}x")
    with moto_server() as moto:
        lambda_data = lambda_path(moto, setup, quick)
    digest = hashlib.sha256((setup["upstream"] / UPSTREAM / setup["file"]).read_bytes())
    return {
        "files": FILES,
        "payload_bytes": PAYLOAD,
        "file": setup["file"],
        "file_sha256": digest.hexdigest(),
        "local": local,
        "ratios": ratios,
        "lambda": lambda_data,
    }
