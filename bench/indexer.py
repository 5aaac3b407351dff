"""The indexer: full reindex time and peak memory against store size; one event's cost.

Stores hold tiny but valid wheels, 100 per project, so that every file is read, hashed and
inspected (its METADATA becomes a PEP 658 file) exactly as in production. A full reindex is
`serverless-pypi reindex --store ...` in a subprocess: "fresh" on a store without derived
data (every file indexed), "no-op" on a store already indexed. Peak memory is that
process's maximum resident set size, read by a small parent (`bench/maxrss.py`).

One event: a new file in an existing project of 100 files (and a file of a new project,
which also changes the project list), indexed warm as a Lambda function would
(`reindex_handler` with an EventBridge "Object Created" event on S3; `Indexer.index_key` on
the local directory, which has no events).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import BIN, ROOT, WORK, Moto, clean_env, environment, log, moto_server, summary
from .lambda_events import CallCounter, CountingStore, silence_logs
from .populate import tiny_wheel, write_wheel_tree

SIZES = (1_000, 10_000, 100_000)
PER_PROJECT = 100
DERIVED = (".serverless-pypi", "index.html", ".locks")


def tree(files: int) -> Path:
    """A directory of `files` tiny wheels, generated once and kept in bench/.work."""
    root = WORK / "indexer" / f"tree-{files}"
    done = root.parent / f"tree-{files}.complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        started = time.perf_counter()
        write_wheel_tree(root, files, PER_PROJECT)
        done.touch()
        log(f"indexer: generated {files} wheels in {time.perf_counter() - started:.0f} s")
    return root


def strip_derived(root: Path) -> None:
    for name in DERIVED:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    # what the event benchmark added (versions 9.x, projects proj-new-*)
    for path in root.glob("proj-new-*"):
        shutil.rmtree(path)
    for path in root.glob("proj-*/*-9.*"):
        path.unlink()


def reindex(store: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run `serverless-pypi reindex`; wall seconds and peak RSS (MiB) of that process."""
    report = WORK / "maxrss.json"
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.maxrss",
            str(report),
            str(BIN / "serverless-pypi"),
            "reindex",
            "--store",
            store,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**(env or clean_env()), "PYTHONPATH": str(ROOT)},
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        errors = done.stderr.decode(errors="replace")
        raise RuntimeError(f"reindex of {store} failed ({done.returncode}):\n{errors[-3000:]}")
    peak = json.loads(report.read_text())["maxrss_kib"]
    return {"seconds": seconds, "peak_mib": peak / 1024}


def _runs(files: int, quick: bool) -> int:
    if quick:
        return 1
    return {1_000: 3, 10_000: 2}.get(files, 1)


def _event(bucket: str, key: str) -> dict[str, Any]:
    """An EventBridge "Object Created" event from S3, as the rule delivers it."""
    return {
        "version": "0",
        "id": f"bench-{key}",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2024-01-02T03:04:05Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 300, "etag": "x", "sequencer": "0"},
            "reason": "PutObject",
        },
    }


def local_events(root: Path, files: int, count: int) -> dict[str, Any]:
    """Index `count` new files of an existing project, then of new projects, locally."""
    from serverless_pypi.index.indexer import Indexer
    from serverless_pypi.storage.local import LocalStore

    store = CountingStore(LocalStore(root))
    indexer = Indexer(store)  # type: ignore[arg-type]
    results: dict[str, Any] = {}
    for kind in ("existing project", "new project"):
        samples, calls = [], []
        for i in range(count):
            name = "proj-00000" if kind == "existing project" else f"proj-new-{files}-{i}"
            filename, data = tiny_wheel(name, f"9.{i}.0")
            (root / name).mkdir(exist_ok=True)
            (root / name / filename).write_bytes(data)
            store.reset()
            started = time.perf_counter()
            outcome = indexer.index_key(f"{name}/{filename}")
            samples.append(time.perf_counter() - started)
            calls.append(store.count)
            if outcome.action != "indexed":
                raise RuntimeError(f"event for {name}/{filename}: {outcome}")
        results[kind] = {**summary(samples), "calls": max(calls)}
    return results


def s3_events(moto: Moto, bucket: str, files: int, count: int) -> dict[str, Any]:
    """The same on S3 (moto), through `reindex_handler` with EventBridge events."""
    from serverless_pypi.adapters import aws_lambda
    from serverless_pypi.index.indexer import Indexer
    from serverless_pypi.storage.s3 import S3Store

    results: dict[str, Any] = {}
    original = aws_lambda.indexer
    with environment(moto.env(S3_BUCKET=bucket)):
        silence_logs()
        worker = Indexer(S3Store(bucket))
        counter = CallCounter(worker.store.client)  # type: ignore[attr-defined]
        aws_lambda.indexer = lambda: worker  # type: ignore[assignment]
        try:
            for kind in ("existing project", "new project"):
                samples, calls = [], []
                for i in range(count):
                    name = "proj-00000" if kind == "existing project" else f"proj-new-{i}"
                    filename, data = tiny_wheel(name, f"9.{i}.0")
                    key = f"{name}/{filename}"
                    moto.put_each(bucket, [(key, data)])
                    counter.reset()
                    started = time.perf_counter()
                    answer = aws_lambda.reindex_handler(_event(bucket, key))
                    samples.append(time.perf_counter() - started)
                    calls.append(counter.count)
                    if answer.get("indexed") != 1:
                        raise RuntimeError(f"event for {key}: {answer}")
                results[kind] = {**summary(samples), "calls": max(calls)}
        finally:
            aws_lambda.indexer = original
    return results


def load_tree_into_moto(moto: Moto, bucket: str, root: Path) -> None:
    """Copy a directory store (files and derived data) into a bucket, key for key."""
    moto.create_bucket(bucket)
    objects = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not relative.startswith(".locks"):
            objects.append((relative, path.read_bytes()))
    moto.put_each(bucket, objects)


def run(quick: bool = False) -> dict[str, Any]:
    sizes = SIZES[:2] if quick else SIZES
    events = 3 if quick else 10
    rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    for files in sizes:
        root = tree(files)
        fresh, noop = [], []
        for _ in range(_runs(files, quick)):
            strip_derived(root)
            fresh.append(reindex(str(root)))
            noop.append(reindex(str(root)))
        for kind, runs in (("fresh", fresh), ("no-op", noop)):
            row: dict[str, Any] = {
                "store": "local",
                "files": files,
                "kind": kind,
                "seconds": summary([r["seconds"] for r in runs]),
                "peak_mib": summary([r["peak_mib"] for r in runs]),
            }
            rows.append(row)
            log(
                f"indexer: local {files:>7} {kind:5}: {row['seconds']['median']:7.2f} s, "
                f"peak {row['peak_mib']['max']:.0f} MiB"
            )
        event_rows.append({"store": "local", "files": files, **local_events(root, files, events)})
    # S3 (moto): a full reindex at 1,000 files; events at 1,000 and 10,000 files
    with moto_server() as moto:
        env = clean_env(**moto.env())
        fresh, noop = [], []
        source = tree(1_000)
        for i in range(_runs(1_000, quick)):
            bucket = f"bench-reindex-{i}"
            moto.create_bucket(bucket)
            wheels = [
                (p.relative_to(source).as_posix(), p.read_bytes())
                for p in sorted(source.glob("proj-*/*.whl"))
                if "-9." not in p.name
            ]
            moto.put_each(bucket, wheels)
            fresh.append(reindex(f"s3://{bucket}", env))
            noop.append(reindex(f"s3://{bucket}", env))
        for kind, runs in (("fresh", fresh), ("no-op", noop)):
            row = {
                "store": "s3",
                "files": 1_000,
                "kind": kind,
                "seconds": summary([r["seconds"] for r in runs]),
                "peak_mib": summary([r["peak_mib"] for r in runs]),
            }
            rows.append(row)
            log(f"indexer: s3 1000 {kind}: {row['seconds']['median']:.2f} s")
        event_rows.append(
            {"store": "s3", "files": 1_000, **s3_events(moto, "bench-reindex-0", 1_000, events)}
        )
        if not quick:
            # an indexed 10,000-file store: the local one, copied key for key
            root = tree(10_000)
            strip_derived(root)
            reindex(str(root))
            load_tree_into_moto(moto, "bench-events-10k", root)
            event_rows.append(
                {
                    "store": "s3",
                    "files": 10_000,
                    **s3_events(moto, "bench-events-10k", 10_000, events),
                }
            )
    for row in event_rows:
        log(
            f"indexer: event {row['store']} {row['files']:>7}: existing "
            f"{row['existing project']['median'] * 1000:.1f} ms, new "
            f"{row['new project']['median'] * 1000:.1f} ms"
        )
    largest = max(r["peak_mib"]["max"] for r in rows if r["files"] == max(sizes))
    return {
        "per_project": PER_PROJECT,
        "rows": rows,
        "events": event_rows,
        "largest_files": max(sizes),
        "largest_peak_mib": largest,
    }
