"""Throughput of the local server under concurrent load, against pypiserver, peryx and a floor.

Clients request the tree's project pages in turn, as pip does (its Accept header, gzip),
over keep-alive connections, for a bounded time at 1, 8 and 64 concurrent connections.
The load generator is wrk (C, one thread) when installed, else `bench.loadgen` (Python).
Client and server share the machine's cores. Every server runs for the whole section and the
runs are interleaved (the order rotating run by run), so each ratio compares runs made
minutes apart under the same other load.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .common import PIP_HEADERS, ROOT, WORK, Server, clean_env, log, ratio, summary
from .corpus import Tree
from .servers import Stores, prepare, start

SERVERS = ("ours", "ours-1-thread", "pypiserver", "pypiserver-simple-dir", "peryx", "static")
CONCURRENCY = (1, 8, 64)

WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local i = 0
%(headers)s
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "seconds": %%f, "errors": %%d, "p50_ms": %%f, "p99_ms": %%f}\\n',
    summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def _wrk(url: str, paths: Path, connections: int, seconds: float) -> dict[str, Any]:
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in PIP_HEADERS.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", dir=WORK, delete=False) as script:
        script.write(WRK_SCRIPT % {"headers": headers})
    try:
        done = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                url,
            ],
            env={**clean_env(), "BENCH_PATHS": str(paths)},
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        Path(script.name).unlink()
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("{"))
    result: dict[str, Any] = json.loads(line)
    return result


def _python(url: str, paths: Path, connections: int, seconds: float) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.loadgen",
            url,
            str(paths),
            str(connections),
            str(seconds),
        ],
        env=clean_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _measure(
    stores: Stores, tree: Tree, load: Any, seconds: float, repeats: int
) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """Every server's runs at every concurrency."""
    samples: dict[str, dict[int, list[dict[str, Any]]]] = {}
    # every server up at once (idle ones cost nothing) and the runs interleaved, the order
    # rotating: other work on the machine then weighs on every server alike, and the
    # ratios compare runs minutes apart at most, not a whole section apart
    servers: dict[str, Server] = {}
    try:
        for kind in SERVERS:
            servers[kind] = start(kind, stores, tree.requirements[0])
        targets: dict[str, tuple[str, Path]] = {}
        for kind, server in servers.items():
            # the same pages under each server's index root (peryx: /hosted/simple/)
            root = urlsplit(server.url).path
            listed = WORK / f"paths-{kind}.txt"
            listed.write_text("".join(f"{root}{name}/\n" for name in tree.projects))
            targets[kind] = (server.url.removesuffix(root), listed)
            load(*targets[kind], 8, 1.0)  # warm-up (not recorded)
        for connections in CONCURRENCY:
            for i in range(repeats):
                order = SERVERS[i % len(SERVERS) :] + SERVERS[: i % len(SERVERS)]
                for kind in order:
                    result = load(*targets[kind], connections, seconds)
                    if result["errors"]:
                        raise RuntimeError(f"{kind}: {result['errors']} failed requests")
                    samples.setdefault(kind, {}).setdefault(connections, []).append(result)
            for kind in SERVERS:
                best = samples[kind][connections]
                log(
                    f"throughput: {kind:22} c={connections:3} "
                    + " ".join(f"{r['requests'] / r['seconds']:7.0f}/s" for r in best)
                    + f"  p99 {best[-1]['p99_ms']:.1f} ms"
                )
    finally:
        for server in servers.values():
            server.stop()
    return samples


def run(tree: Tree, quick: bool = False, stores: Stores | None = None) -> dict[str, Any]:
    stores = stores or prepare(tree)
    generator = "wrk" if shutil.which("wrk") else "python"
    load = _wrk if generator == "wrk" else _python
    seconds = 1.0 if quick else 3.0
    repeats = 1 if quick else 3
    samples = _measure(stores, tree, load, seconds, repeats)
    rows: list[dict[str, Any]] = []
    for kind in SERVERS:
        for connections in CONCURRENCY:
            runs = samples[kind][connections]
            rows.append(
                {
                    "server": kind,
                    "connections": connections,
                    "rps": summary([r["requests"] / r["seconds"] for r in runs]),
                    "p99_ms": summary([r["p99_ms"] for r in runs]),
                    "p50_ms": summary([r["p50_ms"] for r in runs]),
                }
            )

    def rps(kind: str, connections: int) -> float:
        row = next(r for r in rows if r["server"] == kind and r["connections"] == connections)
        median: float = row["rps"]["median"]
        return median

    def p99(kind: str, connections: int) -> float:
        row = next(r for r in rows if r["server"] == kind and r["connections"] == connections)
        median: float = row["p99_ms"]["median"]
        return median

    return {
        "generator": generator,
        "seconds_per_run": seconds,
        "repeats": repeats,
        "paths": len(tree.projects),
        "rows": rows,
        "ratio_vs_pypiserver": {
            str(c): ratio(rps("ours", c), rps("pypiserver", c)) for c in CONCURRENCY
        },
        "ratio_vs_static": {str(c): ratio(rps("ours", c), rps("static", c)) for c in CONCURRENCY},
        "ratio_vs_peryx": {str(c): ratio(rps("ours", c), rps("peryx", c)) for c in CONCURRENCY},
        "p99_vs_static": {str(c): ratio(p99("ours", c), p99("static", c)) for c in CONCURRENCY},
        # 16 worker threads (the default) against one: never lower with more workers
        "ratio_vs_one_thread": {
            str(c): ratio(rps("ours", c), rps("ours-1-thread", c)) for c in CONCURRENCY
        },
    }
