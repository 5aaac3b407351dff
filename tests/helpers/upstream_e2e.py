"""Upstream indexes for the end-to-end upstream tests: pypiserver over a directory.

pypiserver serves PEP 503 HTML only, with `#sha256=` fragments and nothing else (no upload
times, no sizes, no core metadata): the poorest upstream an index may meet. The richer one,
PEP 691 JSON with upload times and metadata, is the project's own server over a second store
(`tests.helpers.servers.start_server`).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.servers import BIN, free_port, stop, wait_for_port


@dataclass
class Pypiserver:
    url: str  # its simple index URL, ending in /simple/
    directory: Path
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop(self.process)


def start_pypiserver(directory: Path, log_dir: Path) -> Pypiserver:
    """`pypi-server run` over the distributions in `directory` (no fallback to PyPI)."""
    port = free_port()
    log = log_dir / f"pypiserver-{port}.log"
    process = subprocess.Popen(
        [
            str(BIN / "pypi-server"),
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--disable-fallback",
            "--hash-algo",
            "sha256",
            str(directory),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))},
    )
    if not wait_for_port(port, process, seconds=30):
        process.kill()
        raise RuntimeError(f"pypiserver did not start: {log.read_text()}")
    return Pypiserver(f"http://127.0.0.1:{port}/simple/", directory, process, log)
