"""Real installs: pip and uv install the tree through our server and through pypiserver.

Each run installs `requests flask rich attrs pydantic` (and their dependencies) into a new
virtual environment, with a client cache that is either new (cold) or filled by an earlier
install of the same tree from the same server (warm). Servers alternate run by run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import BIN, WORK, clean_env, log, ratio, summary
from .corpus import Tree
from .servers import Stores, prepare, start

SERVERS = ("ours", "pypiserver")
CLIENTS = ("pip", "uv")


def _uv() -> str:
    found = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
    if found is None:
        raise RuntimeError("uv is not installed (pip install -e '.[bench]')")
    return found


def new_venv(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run(
        [_uv(), "venv", "--no-config", "--quiet", "--python", sys.executable, str(path)],
        env=clean_env(),
        check=True,
    )
    return path / "bin" / "python"


def install_command(
    client: str, python: Path, index: str, cache: Path, tree: Tree, dry_run: bool = False
) -> list[str]:
    extra = ["--dry-run"] if dry_run else []
    if client == "pip":
        return [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            *extra,
            "--quiet",
            "--no-input",
            "--index-url",
            index,
            "--cache-dir",
            str(cache),
            *tree.requirements,
        ]
    return [
        _uv(),
        "pip",
        "install",
        *extra,
        "--no-config",
        "--quiet",
        "--python",
        str(python),
        "--index-url",
        index,
        "--cache-dir",
        str(cache),
        *tree.requirements,
    ]


def installed(python: Path) -> list[str]:
    site = next(python.parent.parent.glob("lib/python*/site-packages"))
    return sorted(p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info"))


def install(
    client: str, index: str, cache: Path, tree: Tree, where: Path, dry_run: bool = False
) -> tuple[float, list[str]]:
    python = new_venv(where)
    command = install_command(client, python, index, cache, tree, dry_run)
    started = time.perf_counter()
    done = subprocess.run(command, env=clean_env(), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{client} install from {index} failed:\n{done.stderr[-3000:]}")
    return seconds, installed(python)


def run(tree: Tree, quick: bool = False, stores: Stores | None = None) -> dict[str, Any]:
    stores = stores or prepare(tree)
    repeats = {"pip": 2 if quick else 4, "uv": 2 if quick else 7}
    root = WORK / "installs"
    shutil.rmtree(root, ignore_errors=True)
    servers = {name: start(name, stores, tree.requirements[0]) for name in SERVERS}
    samples: dict[str, list[float]] = {}
    sets: dict[str, list[str]] = {}
    try:
        for client in CLIENTS:
            # warm caches: one untimed install per server fills them
            for name, server in servers.items():
                install(client, server.url, root / f"cache-{client}-{name}", tree, root / "venv")
            for i in range(repeats[client]):
                for state in ("cold", "warm", "resolve"):
                    if state == "resolve" and i >= max(2, repeats[client] - 2):
                        continue  # resolution alone: fewer runs
                    for name, server in servers.items():
                        if state == "warm":
                            cache = root / f"cache-{client}-{name}"
                        else:
                            cache = root / f"cold-{client}-{name}-{i}"
                        seconds, dists = install(
                            client, server.url, cache, tree, root / "venv", state == "resolve"
                        )
                        if state != "warm":
                            shutil.rmtree(cache, ignore_errors=True)
                        samples.setdefault(f"{client}/{state}/{name}", []).append(seconds)
                        if state != "resolve":
                            sets.setdefault(f"{client}/{name}", dists)
                        log(f"installs: {client} {state:7} {name:10} {seconds:6.2f} s")
    finally:
        for server in servers.values():
            server.stop()
    rows = []
    for client in CLIENTS:
        for state in ("cold", "warm", "resolve"):
            ours = summary(samples[f"{client}/{state}/ours"])
            theirs = summary(samples[f"{client}/{state}/pypiserver"])
            rows.append(
                {
                    "client": client,
                    "cache": state,
                    "ours": ours,
                    "pypiserver": theirs,
                    "ratio": ratio(ours["median"], theirs["median"]),
                }
            )
    same = all(sets[f"{c}/ours"] == sets[f"{c}/pypiserver"] for c in CLIENTS)
    return {
        "rows": rows,
        "installed": sets,
        "same_distributions": same,
        "publish_seconds": stores.publish_seconds,
        "files": tree.files,
        "projects": len(tree.projects),
        "requirements": list(tree.requirements),
    }
