"""A small load generator, used when wrk is not installed.

`python -m bench.loadgen BASE_URL PATHS_FILE CONNECTIONS SECONDS` opens CONNECTIONS keep-alive
connections (one thread each), requests the paths in turn with pip's headers for SECONDS,
and prints one JSON line: requests, seconds, errors, p50_ms, p99_ms.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

from .common import PIP_HEADERS, percentile


def main() -> int:
    base, paths_file, connections, seconds = sys.argv[1:5]
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    paths = [p for p in open(paths_file).read().split() if p]  # noqa: SIM115
    latencies: list[list[float]] = []
    errors = [0]
    start = threading.Barrier(int(connections) + 1)
    deadline = [0.0]

    def client(offset: int) -> None:
        mine: list[float] = []
        latencies.append(mine)
        conn = http.client.HTTPConnection(host, port, timeout=10)
        i = offset
        start.wait()
        while (now := time.perf_counter()) < deadline[0]:
            path = paths[i % len(paths)]
            i += 1
            try:
                conn.request("GET", path, headers=PIP_HEADERS)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors[0] += 1
            except (OSError, http.client.HTTPException):
                errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
                continue
            mine.append(time.perf_counter() - now)
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(int(connections))]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + float(seconds)
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    samples = [x for mine in latencies for x in mine]
    print(
        json.dumps(
            {
                "requests": len(samples),
                "seconds": elapsed,
                "errors": errors[0],
                "p50_ms": percentile(samples, 50) * 1000 if samples else 0.0,
                "p99_ms": percentile(samples, 99) * 1000 if samples else 0.0,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
