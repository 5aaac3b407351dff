"""Warm handler latency: the root and project pages of 10 to 10,000 files.

Our Lambda handler (`api_handler`) over the local directory and over S3 (moto's standalone
server, in its own process), against the reference module's behaviour (list + presign every
file per request) on the same bucket. Every call is in-process, as in a warm Lambda.

The floor of a precomputed page is one bare GET of the stored page object through the same
store client the application uses: each project page is timed against it, calls alternating
in one loop, so both see the same S3 server at the same moment.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

from .common import WORK, Moto, environment, log, ratio, summary
from .lambda_events import (
    CallCounter,
    CountingStore,
    Handler,
    StoreCounter,
    rest_event,
    silence_logs,
)
from .populate import filenames, fill, project_name
from .reference import ReferenceHandler

SIZES = (10, 100, 1_000, 10_000)
FILLERS = 50
BUCKET = "bench-pages"


def populate(moto: Moto) -> dict[str, Any]:
    """The pages bucket in moto and the same projects in a local directory."""
    from serverless_pypi.storage.local import LocalStore
    from serverless_pypi.storage.s3 import S3Store

    moto.create_bucket(BUCKET)
    started = time.perf_counter()
    with environment(moto.env()):
        fill(S3Store(BUCKET), SIZES, FILLERS, moto)
    s3_seconds = time.perf_counter() - started
    local_root = WORK / "pages-local"
    shutil.rmtree(local_root, ignore_errors=True)
    started = time.perf_counter()
    fill(LocalStore(local_root), SIZES, FILLERS)
    return {
        "populate_s3_s": s3_seconds,
        "populate_local_s": time.perf_counter() - started,
        "local_root": str(local_root),
    }


def _runs(files: int | None, quick: bool, reference: bool) -> tuple[int, float]:
    """(requests, time budget in seconds) for one page: fewer for slow pages."""
    if reference:
        count = {None: 200, 10: 200, 100: 100, 1_000: 30, 10_000: 3}[files]
        budget = 20.0
    else:
        count = {None: 300, 10: 300, 100: 300, 1_000: 200, 10_000: 60}[files]
        budget = 10.0
    if quick:
        count, budget = max(5, count // 10), budget / 4
    return count, budget


def measure(
    handler: Handler, event: dict[str, Any], count: int, budget: float, counter: Any
) -> dict[str, Any]:
    """Time `count` calls (fewer if over `budget`) after warm-up calls; count store calls.

    The first warm-up call counts the store calls of one request; the timed calls give the
    time spent inside store calls per request (where the counter can time them).
    """
    for attempt in range(3):
        counter.reset()
        started = time.perf_counter()
        response = handler(event)
        if response["statusCode"] != 200:
            raise RuntimeError(
                f"{event['path']}: {response['statusCode']} {response['body'][:200]}"
            )
        if attempt == 0:
            calls, operations = counter.count, dict(counter.operations)
            if time.perf_counter() - started > 0.5:
                break  # a slow page: one warm-up call is enough
    counter.reset()
    samples = []
    deadline = time.perf_counter() + budget
    for _ in range(count):
        started = time.perf_counter()
        handler(event)
        samples.append(time.perf_counter() - started)
        if time.perf_counter() > deadline and len(samples) >= 3:
            break
    return {
        "calls": calls,
        "operations": operations,
        "response_bytes": len(response["body"]),
        "store_seconds": counter.seconds / len(samples),
        **summary(samples),
    }


def store_repository(app: Any) -> Any:
    """The store's repository under the stack's wrappers (the policy layer on top)."""
    from serverless_pypi.repository.base import RepositoryWrapper

    repository = app.repository
    while isinstance(repository, RepositoryWrapper):
        repository = repository.inner
    return repository


def run(moto: Moto, quick: bool = False) -> dict[str, Any]:
    from serverless_pypi.adapters import aws_lambda
    from serverless_pypi.compose import build_application
    from serverless_pypi.repository.store import StoreRepository
    from serverless_pypi.storage.local import LocalStore

    results: dict[str, Any] = {"sizes": list(SIZES), "fillers": FILLERS, "rows": []}
    original = aws_lambda.application
    with environment(moto.env(S3_BUCKET=BUCKET)):
        silence_logs()
        s3_app = aws_lambda.application()  # built as on Lambda: S3Store from the environment
        # the store under the repository stack (no fallback is configured here)
        assert isinstance(store_repository(s3_app), StoreRepository)
        # the store's requests, counted on the instance: whatever client it uses
        s3_calls = StoreCounter(store_repository(s3_app).reader.store)
        local_store = CountingStore(LocalStore(WORK / "pages-local"))
        local_app = build_application(local_store, s3_app.settings)  # type: ignore[arg-type]
        reference = ReferenceHandler(BUCKET)
        ref_calls = CallCounter(reference.client)

        def ours(app: Any) -> Handler:
            def call(event: dict[str, Any]) -> dict[str, Any]:
                # api_handler looks the application up on each call: serve `app` through it
                aws_lambda.application = lambda: app  # type: ignore[assignment]
                return aws_lambda.api_handler(event)

            return call

        handlers: list[tuple[str, Handler, Any, bool]] = [
            ("ours-local", ours(local_app), local_store, False),
            ("ours-s3", ours(s3_app), s3_calls, False),
            ("reference-s3", reference, ref_calls, True),
        ]
        for files in (None, *SIZES):
            route = "" if files is None else f"{project_name(files)}/"
            event = rest_event(route)
            for name, handler, counter, is_reference in handlers:
                count, budget = _runs(files, quick, is_reference)
                row = {
                    "handler": name,
                    "files": files,
                    **measure(handler, event, count, budget, counter),
                }
                results["rows"].append(row)
                log(
                    f"pages: {name:13} {files or 'root'!s:>6} files: "
                    f"p50 {row['p50'] * 1000:8.2f} ms  p99 {row['p99'] * 1000:8.2f} ms  "
                    f"{row['calls']} calls  n={row['n']}"
                )
        results["bare"] = [
            {"files": n, **_against_bare(ours(s3_app), s3_app, n, quick)} for n in SIZES
        ]
        results["per_install"] = _per_install(ours(s3_app), s3_app, s3_calls)
        log(f"pages: S3 requests of one warm install: {results['per_install']}")
        aws_lambda.application = original

    def p50(handler: str, files: int) -> float:
        return float(
            next(
                r["p50"] for r in results["rows"] if r["handler"] == handler and r["files"] == files
            )
        )

    results["bare_ratio_max"] = max(row["ratio"] for row in results["bare"])
    for row in results["bare"]:
        log(
            f"pages: ours-s3 vs one bare GET {row['files']:>6} files: "
            f"{row['app_p50'] * 1000:.2f} ms vs {row['bare_p50'] * 1000:.2f} ms "
            f"= {row['ratio']:.2f}x"
        )
    results["speedup_1000"] = ratio(p50("reference-s3", 1_000), p50("ours-s3", 1_000))
    results["speedups"] = {str(n): ratio(p50("reference-s3", n), p50("ours-s3", n)) for n in SIZES}
    results["growth_s3"] = ratio(p50("ours-s3", 10_000), p50("ours-s3", 10))
    results["growth_local"] = ratio(p50("ours-local", 10_000), p50("ours-local", 10))
    return results


def _per_install(handler: Handler, app: Any, counter: StoreCounter) -> dict[str, Any]:
    """The S3 requests of one warm install of one wheel through the function: its project
    page, its core metadata file and its download (a redirect to a presigned URL), as pip
    and uv ask for them; the client's download from S3 is one more GET, outside the function.

    Counted on the second install of the same file (the first warms the function up). The
    pages bucket holds no core metadata files: the one the wheel's record names is written
    first, bytes whose sha256 is the record's `metadata_sha256` (`populate.fake_record`), as
    a published wheel's are: the function keeps in memory only bytes that match the record.
    """
    import hashlib

    from serverless_pypi.index import layout

    name = project_name(SIZES[0])
    wheel = next(f for f in filenames(name, SIZES[0]) if f.endswith(".whl"))
    store = store_repository(app).reader.store
    metadata = hashlib.sha256(wheel.encode()).hexdigest().encode()
    store.put(layout.metadata_key(name, wheel), metadata)
    steps = {
        "page": rest_event(f"{name}/"),
        "metadata": rest_event(f"{name}/{wheel}.metadata"),
        "download": rest_event(f"{name}/{wheel}"),
    }
    calls: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for attempt in range(2):
        for step, event in steps.items():
            counter.reset()
            statuses[step] = handler(event)["statusCode"]
            if attempt == 1:
                calls[step] = counter.count
    function = sum(calls.values())
    return {
        "calls": calls,
        "statuses": statuses,
        "function_requests": function,
        # the client then downloads the file from S3 with the presigned URL: one GET
        "with_download": function + (1 if statuses["download"] in (301, 302, 307) else 0),
    }


def _against_bare(handler: Handler, app: Any, files: int, quick: bool) -> dict[str, float]:
    """The warm page through the handler, against one bare GET of the stored object (the
    JSON page pip and uv ask for) through the application's own store client, alternating."""
    from serverless_pypi.index import layout

    store = store_repository(app).reader.store
    key = layout.page_key(project_name(files), json=True)
    event = rest_event(f"{project_name(files)}/")
    count = max(10, 300 // (1 + files // 1000)) // (10 if quick else 1)
    app_samples: list[float] = []
    bare_samples: list[float] = []
    for attempt in range(count + 3):
        started = time.perf_counter()
        store.get(key)
        bare = time.perf_counter() - started
        started = time.perf_counter()
        handler(event)
        served = time.perf_counter() - started
        if attempt >= 3:  # warm-up
            bare_samples.append(bare)
            app_samples.append(served)
    app_p50, bare_p50 = summary(app_samples)["p50"], summary(bare_samples)["p50"]
    return {"app_p50": app_p50, "bare_p50": bare_p50, "ratio": ratio(app_p50, bare_p50)}
