"""Real installs: pip and uv install the tree through our server, pypiserver and peryx.

Each run installs `requests flask rich attrs pydantic` (and their dependencies) into a new
virtual environment, with a client cache that is either new (cold) or filled by an earlier
install of the same tree from the same source (warm); "resolve" is `--dry-run` with a new
cache (pages and metadata only: the part of an install an index serves). The floor is no
index at all: the same files from a local directory (`--no-index --find-links DIR`), which
is what the client itself costs. The order of the sources rotates run by run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import BIN, WORK, Server, clean_env, log, ratio, summary
from .corpus import Tree
from .servers import Stores, prepare, start

#: ours with pages fresh for 60 s (`CACHE_CONTROL=max-age=60`, as peryx): measured warm only,
#: the one state where a page's freshness lifetime can spare the client a request
SHORT = "ours-max-age-60"
SERVERS = ("ours", "pypiserver", "peryx", SHORT)
SOURCES = (*SERVERS, "no-index")
CLIENTS = ("pip", "uv")
STATES = ("cold", "warm", "resolve")


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
    client: str, python: Path, index: str | None, cache: Path, tree: Tree, dry_run: bool
) -> list[str]:
    """The client's install command; `index=None` installs from the corpus directory."""
    source = (
        ["--index-url", index] if index else ["--no-index", "--find-links", str(tree.directory)]
    )
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
            *source,
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
        *source,
        "--cache-dir",
        str(cache),
        *tree.requirements,
    ]


def installed(python: Path) -> list[str]:
    site = next(python.parent.parent.glob("lib/python*/site-packages"))
    return sorted(p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info"))


def install(
    client: str, index: str | None, cache: Path, tree: Tree, where: Path, dry_run: bool = False
) -> tuple[float, list[str]]:
    python = new_venv(where)
    command = install_command(client, python, index, cache, tree, dry_run)
    started = time.perf_counter()
    done = subprocess.run(command, env=clean_env(), capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{client} install from {index} failed:\n{done.stderr[-3000:]}")
    return seconds, installed(python)


def scratch() -> Path:
    """Where client caches and virtual environments go: memory (tmpfs) when there is one.

    On this machine's disk a cold uv install spends most of its time writing (about 1.5 s
    against 0.3 s in memory, whatever the index), which would bury what the index does.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 << 30:
        return Path(tempfile.mkdtemp(prefix="serverless-pypi-bench-", dir=shm))
    root = WORK / "installs"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


def _timed_round(
    client: str,
    i: int,
    urls: dict[str, str | None],
    root: Path,
    tree: Tree,
    samples: dict[str, list[float]],
    sets: dict[str, list[str]],
) -> None:
    """Run `i` of `client`: every state, every source in this run's rotated order."""
    order = SOURCES[i % len(SOURCES) :] + SOURCES[: i % len(SOURCES)]
    for state in STATES:
        if state == "resolve" and i >= 3:
            continue  # resolution alone: three runs are enough
        for name in order:
            if name == SHORT and state != "warm":
                continue  # a new cache holds no page that could still be fresh
            if state == "warm":
                cache = root / f"cache-{client}-{name}"
            else:
                cache = root / f"cold-{client}-{name}-{i}"
            seconds, dists = install(
                client, urls[name], cache, tree, root / "venv", state == "resolve"
            )
            if state != "warm":
                shutil.rmtree(cache, ignore_errors=True)
            samples.setdefault(f"{client}/{state}/{name}", []).append(seconds)
            if state != "resolve":
                sets.setdefault(f"{client}/{name}", dists)
            log(f"installs: {client} {state:7} {name:10} {seconds:6.2f} s")


def _rows(samples: dict[str, list[float]]) -> list[dict[str, Any]]:
    """One row a client and state: each source's summary and the ratios against pypiserver."""
    rows = []
    for client in CLIENTS:
        for state in STATES:
            found = {
                name: summary(samples[f"{client}/{state}/{name}"])
                for name in SOURCES
                if f"{client}/{state}/{name}" in samples
            }
            short = found.get(SHORT)
            if short is not None:
                variant = {
                    SHORT: short,
                    "ratio_short_vs_no_index": ratio(short["median"], found["no-index"]["median"]),
                    "ratio_short_vs_peryx": ratio(short["median"], found["peryx"]["median"]),
                    "ratio_short_vs_ours": ratio(short["median"], found["ours"]["median"]),
                }
            else:
                variant = {}
            rows.append(
                {
                    **variant,
                    "client": client,
                    "cache": state,
                    "ours": found["ours"],
                    "pypiserver": found["pypiserver"],
                    "peryx": found["peryx"],
                    "no-index": found["no-index"],
                    "ratio": ratio(found["ours"]["median"], found["pypiserver"]["median"]),
                    "ratio_vs_peryx": ratio(found["ours"]["median"], found["peryx"]["median"]),
                    "ratio_vs_no_index": ratio(
                        found["ours"]["median"], found["no-index"]["median"]
                    ),
                    # what an index that cost nothing would achieve against pypiserver
                    "best_possible": ratio(
                        found["no-index"]["median"], found["pypiserver"]["median"]
                    ),
                }
            )
    return rows


def run(tree: Tree, quick: bool = False, stores: Stores | None = None) -> dict[str, Any]:
    stores = stores or prepare(tree)
    repeats = {"pip": 2 if quick else 3, "uv": 2 if quick else 9}
    root = scratch()
    servers: dict[str, Server] = {}
    samples: dict[str, list[float]] = {}
    sets: dict[str, list[str]] = {}
    try:
        for name in SERVERS:
            servers[name] = start(name, stores, tree.requirements[0])
        urls: dict[str, str | None] = {name: server.url for name, server in servers.items()}
        urls["no-index"] = None
        for client in CLIENTS:
            # warm caches: one untimed install per source fills them (the variant's pages
            # are then fresh for 60 s, and again after each revalidation)
            for name, url in urls.items():
                install(client, url, root / f"cache-{client}-{name}", tree, root / "venv")
            for i in range(repeats[client]):
                _timed_round(client, i, urls, root, tree, samples, sets)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
    rows = _rows(samples)
    same = all(sets[f"{c}/ours"] == sets[f"{c}/{n}"] for c in CLIENTS for n in SOURCES)
    return {
        "rows": rows,
        "installed": sets,
        "same_distributions": same,
        "publish_seconds": stores.publish_seconds,
        "files": tree.files,
        "projects": len(tree.projects),
        "requirements": list(tree.requirements),
        "repeats": repeats,
        "scratch": "memory (tmpfs)" if str(root).startswith("/dev/shm") else "disk",
    }
