"""Cold start: a fresh interpreter that imports the Lambda handler and answers one page.

The floor is `import boto3; boto3.client("s3")`, which any Python function on S3 pays. Both
run in a new process each time, with the same environment (region, dummy credentials, the
moto endpoint), alternating so that drift in the machine's load hits both alike.

moto answers over plain HTTP, and the API function's S3 client (storage.s3_light) imports
`ssl` only for an https endpoint, as every AWS one is: "ours-tls" adds what that costs on
this machine (`ssl` and a default context with the system's CA certificates, not the
handshake), so the ratio that holds on AWS is measured too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

from .common import ROOT, WORK, Moto, clean_env, log, ratio, summary
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

#: ours, plus what an https endpoint adds before the first request (not the handshake)
OURS_TLS = OURS.replace(
    "from serverless_pypi.aws_lambda import api_handler\n",
    "from serverless_pypi.aws_lambda import api_handler\n"
    "import ssl; ssl.create_default_context()\n",
)

EMPTY = "pass"


def _once(code: str, env: dict[str, str], *args: str) -> tuple[float, dict[str, float]]:
    """Wall seconds of a fresh interpreter running `code`, and what it reports.

    The phases include "cpu": the process's user + system CPU seconds (from `wait4`), which
    other work on the machine disturbs less than wall time.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", code, *args], env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"cold start run failed: {stderr[-2000:]}")
    phases = json.loads(stdout) if stdout.strip() else {}
    phases["cpu"] = usage.ru_utime + usage.ru_stime
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
    modules: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        floor = _importtime(FLOOR, env)
        ours = _importtime(OURS, env, event)
        floor_total.append(sum(s for s, _ in floor.values()) / 1000)
        ours_total.append(sum(s for s, _ in ours.values()) / 1000)
        groups: dict[str, float] = defaultdict(float)
        for module, (self_us, _) in ours.items():
            if module not in floor:
                groups[module.split(".")[0]] += self_us / 1000
                modules[module].append(self_us / 1000)
        for group, ms in groups.items():
            extra[group].append(ms)
        for module in (
            "serverless_pypi.adapters.aws_lambda",
            "serverless_pypi.web.app",
            "serverless_pypi.web.upload",
            "serverless_pypi.auth.access",
            "serverless_pypi.auth.tokens",
            "serverless_pypi.index.indexer",
            "serverless_pypi.storage.s3",
            "serverless_pypi.storage.s3_light",
            "serverless_pypi.storage.http1",
            "serverless_pypi.storage.sigv4",
            "serverless_pypi.core.http",
            "dataclasses",
            "logging",
            "botocore",
            "serverless_pypi.core.metadata",
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
        "extra_modules_self_ms": dict(
            sorted(
                (
                    (module, statistics.median(values + [0.0] * (runs - len(values))))
                    for module, values in modules.items()
                ),
                key=lambda kv: -kv[1],
            )[:15]
        ),
    }


def environments(moto: Moto) -> tuple[dict[str, str], dict[str, str]]:
    """(with bytecode caches for every module, without them for ours).

    The first is the fair comparison: boto3 is installed with its bytecode, and so is our
    package here (in a cache of its own, written by the warm-up runs). The second is what
    a Lambda zip without `__pycache__` gets: /var/task is read-only, so Python compiles our
    modules from source in every cold start (boto3 in the runtime keeps its bytecode).
    """
    base = clean_env(**moto.env(S3_BUCKET=BUCKET))
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    cache = WORK / "pycache"
    shutil.rmtree(cache, ignore_errors=True)
    cached = {**base, "PYTHONPYCACHEPREFIX": str(cache)}
    source = WORK / "coldstart-src"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(
        ROOT / "src" / "serverless_pypi",
        source / "serverless_pypi",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    uncached = {**base, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(source)}
    return cached, uncached


def run(moto: Moto, quick: bool = False) -> dict[str, Any]:
    runs = 5 if quick else 31
    env, no_bytecode = environments(moto)
    event = json.dumps(rest_event(f"{project_name(10)}/"))
    programs = (
        ("floor", FLOOR, (), env),
        ("ours", OURS, (event,), env),
        ("ours-tls", OURS_TLS, (event,), env),
        ("interpreter", EMPTY, (), env),
        ("ours-no-bytecode", OURS, (event,), no_bytecode),
    )
    # write the bytecode caches and warm the file system cache first (not measured)
    for _ in range(2):
        for _, code, args, environment in programs:
            _once(code, environment, *args)
    walls: dict[str, list[float]] = {name: [] for name, *_ in programs}
    phases: dict[str, dict[str, list[float]]] = {
        name: {"import": [], "first": [], "cpu": []} for name, *_ in programs
    }
    for _ in range(runs):
        for name, code, args, environment in programs:
            wall, parts = _once(code, environment, *args)
            walls[name].append(wall)
            for phase, seconds in parts.items():
                phases[name].setdefault(phase, []).append(seconds)
    results: dict[str, Any] = {
        "runs": runs,
        "wall": {name: summary(samples) for name, samples in walls.items()},
        "phases": {
            name: {phase: summary(samples) for phase, samples in parts.items() if samples}
            for name, parts in phases.items()
        },
    }
    floor = results["wall"]["floor"]["median"]
    results["ratio"] = ratio(results["wall"]["ours"]["median"], floor)
    results["ratio_no_bytecode"] = ratio(results["wall"]["ours-no-bytecode"]["median"], floor)
    results["ratio_tls"] = ratio(results["wall"]["ours-tls"]["median"], floor)
    cpu = {name: results["phases"][name]["cpu"]["median"] for name in results["phases"]}
    results["ratio_cpu"] = ratio(cpu["ours"], cpu["floor"])
    results["ratio_cpu_no_bytecode"] = ratio(cpu["ours-no-bytecode"], cpu["floor"])
    # the part each program adds to a bare interpreter
    base = results["wall"]["interpreter"]["median"]
    results["ratio_above_interpreter"] = ratio(
        results["wall"]["ours"]["median"] - base, floor - base
    )
    results["profile"] = profile(env, event, 3 if quick else 7)
    log(
        f"cold start: ours {results['wall']['ours']['median'] * 1000:.0f} ms "
        f"(without bytecode {results['wall']['ours-no-bytecode']['median'] * 1000:.0f} ms), "
        f"floor {floor * 1000:.0f} ms, ratio {results['ratio']:.2f} "
        f"(with TLS set up {results['ratio_tls']:.2f})"
    )
    return results
