"""Cold start: a fresh interpreter that imports the Lambda handler and answers one page.

The floor is `import boto3; boto3.client("s3")`, which any Python function on S3 pays. Both
run in a new process each time, with the same environment (region, dummy credentials, the
moto endpoint), alternating so that drift in the machine's load hits both alike.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

from .common import Moto, clean_env, log, ratio, summary
from .lambda_events import rest_event
from .pages import BUCKET
from .populate import project_name

FLOOR = """
import json, time
t0 = time.perf_counter()
import boto3
t1 = time.perf_counter()
boto3.client("s3")
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t2 - t1}))
"""

OURS = """
import json, sys, time
t0 = time.perf_counter()
from serverless_pypi.aws_lambda import api_handler
t1 = time.perf_counter()
response = api_handler(json.loads(sys.argv[1]))
t2 = time.perf_counter()
assert response["statusCode"] == 200, response
print(json.dumps({"import": t1 - t0, "first": t2 - t1}))
"""

EMPTY = "pass"


def _once(code: str, env: dict[str, str], *args: str) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"cold start run failed: {done.stderr[-2000:]}")
    phases = json.loads(done.stdout) if done.stdout.strip() else {}
    return wall, phases


def _importtime(code: str, env: dict[str, str], *args: str) -> dict[str, tuple[int, int]]:
    """module -> (self us, cumulative us) from `python -X importtime`."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found: dict[str, tuple[int, int]] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            found[match.group(4)] = (int(match.group(1)), int(match.group(2)))
    return found


def profile(env: dict[str, str], event: str, runs: int) -> dict[str, Any]:
    """What our handler imports beyond the floor, by top-level package (median of runs)."""
    extra: dict[str, list[float]] = defaultdict(list)
    ours_total: list[float] = []
    floor_total: list[float] = []
    top: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        floor = _importtime(FLOOR, env)
        ours = _importtime(OURS, env, event)
        floor_total.append(sum(s for s, _ in floor.values()) / 1000)
        ours_total.append(sum(s for s, _ in ours.values()) / 1000)
        groups: dict[str, float] = defaultdict(float)
        for module, (self_us, _) in ours.items():
            if module not in floor:
                groups[module.split(".")[0]] += self_us / 1000
        for group, ms in groups.items():
            extra[group].append(ms)
        for module in (
            "serverless_pypi.aws_lambda",
            "serverless_pypi.app",
            "serverless_pypi.upload",
            "serverless_pypi.access",
            "serverless_pypi.tokens",
            "serverless_pypi.indexer",
            "serverless_pypi.storage.s3",
            "serverless_pypi.core.inspect",
            "serverless_pypi.core.names",
            "packaging.metadata",
            "multipart",
            "boto3",
        ):
            if module in ours:
                top[module].append(ours[module][1] / 1000)
    return {
        "floor_import_ms": statistics.median(floor_total),
        "ours_import_ms": statistics.median(ours_total),
        "extra_by_package_ms": {
            group: statistics.median(values + [0.0] * (runs - len(values)))
            for group, values in sorted(extra.items(), key=lambda kv: -statistics.median(kv[1]))
        },
        "cumulative_ms": {module: statistics.median(values) for module, values in top.items()},
    }


def run(moto: Moto, quick: bool = False) -> dict[str, Any]:
    runs = 5 if quick else 21
    env = clean_env(**moto.env(S3_BUCKET=BUCKET))
    event = json.dumps(rest_event(f"{project_name(10)}/"))
    # warm the file system cache and the bytecode caches first (not measured)
    for _ in range(2):
        _once(FLOOR, env)
        _once(OURS, env, event)
        _once(EMPTY, env)
    walls: dict[str, list[float]] = {"floor": [], "ours": [], "interpreter": []}
    phases: dict[str, dict[str, list[float]]] = {
        "floor": {"import": [], "first": []},
        "ours": {"import": [], "first": []},
    }
    for _ in range(runs):
        for name, code, args in (
            ("floor", FLOOR, ()),
            ("ours", OURS, (event,)),
            ("interpreter", EMPTY, ()),
        ):
            wall, parts = _once(code, env, *args)
            walls[name].append(wall)
            for phase, seconds in parts.items():
                phases[name][phase].append(seconds)
    results: dict[str, Any] = {
        "runs": runs,
        "wall": {name: summary(samples) for name, samples in walls.items()},
        "phases": {
            name: {phase: summary(samples) for phase, samples in parts.items()}
            for name, parts in phases.items()
        },
    }
    results["ratio"] = ratio(results["wall"]["ours"]["median"], results["wall"]["floor"]["median"])
    # the part each program adds to a bare interpreter
    base = results["wall"]["interpreter"]["median"]
    results["ratio_above_interpreter"] = ratio(
        results["wall"]["ours"]["median"] - base, results["wall"]["floor"]["median"] - base
    )
    results["profile"] = profile(env, event, 3 if quick else 7)
    log(
        f"cold start: ours {results['wall']['ours']['median'] * 1000:.0f} ms, floor "
        f"{results['wall']['floor']['median'] * 1000:.0f} ms, ratio {results['ratio']:.2f}"
    )
    return results
