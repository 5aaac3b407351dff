"""The servers compared on the real tree, each a subprocess bound to 127.0.0.1.

- ours: `serverless-pypi serve --store DIR` over files published with `serverless-pypi publish`
- pypiserver: `pypi-server run` over a directory holding the same files (pypiserver 2, on
  waitress, its automatic choice when waitress is installed; its cached backend, its
  automatic choice when watchdog is installed; `--cache-control` on downloads, as its
  documentation advises for pip's cache)
- peryx: `peryx serve` (a Rust index, PyPI package `peryx`) with its default hosted index
  (`/hosted/simple/`) filled by `peryx import-dir` from the same files
- static: pre-rendered pages from memory on the same WSGI server (the floor; throughput only)
- ours-1-thread: ours with one worker thread instead of 16 (throughput only: shows what
  threads contending for the GIL cost)
- ours-max-age-60: ours with `CACHE_CONTROL=max-age=60` (installs only): pages fresh in the
  client's cache for 60 s, as peryx sends them, instead of revalidated on every use
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .common import BIN, ROOT, WORK, Server, clean_env, free_port, log, start_server
from .corpus import Tree

STORES = WORK / "stores"
#: the Cache-Control of the `ours-max-age-60` variant (peryx's `max-age=60`)
SHORT_MAX_AGE = "max-age=60"


@dataclass(frozen=True)
class Stores:
    ours: Path
    pypiserver: Path
    peryx: Path | None  # peryx's data directory (None: peryx is not installed)
    pages: Path  # our pre-rendered pages (gzip JSON), for the static floor
    publish_seconds: float


def prepare(tree: Tree) -> Stores:
    """Publish the tree into our store, lay the same files out for pypiserver, and import
    them into peryx's hosted index; `tree` holds only files every server accepts
    (`corpus.accepted_everywhere`)."""
    ours, theirs = STORES / "ours", STORES / "pypiserver"
    shutil.rmtree(STORES, ignore_errors=True)
    theirs.mkdir(parents=True)
    for path in sorted(tree.directory.iterdir()):
        os.link(path, theirs / path.name)
    peryx = _peryx_import(theirs, STORES / "peryx") if PERYX.exists() else None
    files = _publishable(tree.directory, STORES / "publishable")
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "serverless-pypi"), "publish", "--store", str(ours), *files],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"serverless-pypi publish failed:\n{done.stdout}\n{done.stderr}")
    log(f"stores: published {len(files)} files in {seconds:.1f} s")
    return Stores(ours, theirs, peryx, ours / ".serverless-pypi" / "pages", seconds)


PERYX = BIN / "peryx"


def _peryx_import(files: Path, data: Path) -> Path:
    """A peryx data directory whose hosted index holds every file of `files`."""
    for argv in (["init"], ["import-dir", "hosted", str(files)]):
        done = subprocess.run(
            [str(PERYX), *argv, "--data-dir", str(data)],
            env=clean_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"peryx {argv[0]} failed:\n{done.stdout}\n{done.stderr}")
    refused = [line for line in done.stdout.splitlines() if line.startswith("rejected")]
    if refused:
        raise RuntimeError("peryx refused files the corpus kept:\n" + "\n".join(refused))
    return data


def _publishable(corpus: Path, into: Path) -> list[str]:
    """The corpus's files under the names an upload accepts (docs/publishing.md, "File names").

    Older releases on PyPI carry legacy spellings (`MarkupSafe-2.1.5-...`), which the index
    refuses for new uploads and names the canonical spelling of: a team publishing such a file
    renames it, and so does the benchmark (hard links, no copies).
    """
    from serverless_pypi.core.names import InvalidFilename, check_publishable_filename

    into.mkdir(parents=True)
    files = []
    for path in sorted(corpus.iterdir()):
        name = path.name
        try:
            check_publishable_filename(name)
        except InvalidFilename as e:
            canonical = getattr(e, "canonical", None)
            if canonical is None:
                log(f"stores: not publishing {name}: {e}")
                continue
            name = canonical
        os.link(path, into / name)
        files.append(str(into / name))
    return files


def start(kind: str, stores: Stores, probe: str) -> Server:
    """Start one server; `probe` is a project name that must answer 200."""
    port = free_port()
    logs = WORK / "logs" / f"{kind}-{port}.log"
    env = clean_env(PYTHONPATH=str(ROOT))
    if kind in ("ours", "ours-1-thread", "ours-max-age-60"):
        argv = [
            str(BIN / "serverless-pypi"),
            "serve",
            "--store",
            str(stores.ours),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        if kind == "ours-1-thread":
            argv += ["--threads", "1"]
        if kind == "ours-max-age-60":
            env["CACHE_CONTROL"] = SHORT_MAX_AGE
    elif kind in ("pypiserver", "pypiserver-simple-dir"):
        backend = "simple-dir" if kind == "pypiserver-simple-dir" else "auto"
        argv = [
            str(BIN / "pypi-server"),
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend",
            backend,
            "--disable-fallback",
            "--cache-control",
            "31536000",
            str(stores.pypiserver),
        ]
    elif kind == "peryx":
        if stores.peryx is None:
            raise RuntimeError("peryx is not installed (pip install -e '.[bench]')")
        argv = [
            str(PERYX),
            "serve",
            "--data-dir",
            str(stores.peryx),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warn",
        ]
        env = clean_env()
        return start_server(
            kind, argv, port, "/hosted/simple/", logs, env, ready=f"/hosted/simple/{probe}/"
        )
    elif kind == "static":
        argv = [
            sys.executable,
            "-m",
            "bench.staticserver",
            "--port",
            str(port),
            "--pages",
            str(stores.pages),
        ]
    else:
        raise ValueError(kind)
    return start_server(kind, argv, port, "/simple/", logs, env, ready=f"/simple/{probe}/")
