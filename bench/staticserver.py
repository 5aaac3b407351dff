"""The throughput floor: pre-rendered pages served from memory by the same WSGI server.

`python -m bench.staticserver --port P --pages DIR` serves every `DIR/<name>.json.gz` (our
own rendered pages) at `/simple/<name>/` as the JSON page, gzip-encoded when the client
accepts it, on waitress with the thread count `serverless-pypi serve` uses. Nothing is
looked up but one dict entry: what any index on this server stack costs at the least.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

CONTENT_TYPE = "application/vnd.pypi.simple.v1+json"


def application(pages: dict[str, bytes]) -> Callable[..., Iterable[bytes]]:
    plain = {path: gzip.decompress(body) for path, body in pages.items()}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        body = pages.get(path)
        if body is None:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        headers = [("Content-Type", CONTENT_TYPE), ("Vary", "Accept, Accept-Encoding")]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            headers.append(("Content-Encoding", "gzip"))
        else:
            body = plain[path]
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    return app


def main() -> int:
    import waitress

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pages", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    pages = {
        f"/simple/{path.name.removesuffix('.json.gz')}/": path.read_bytes()
        for path in args.pages.glob("*.json.gz")
    }
    waitress.serve(application(pages), host="127.0.0.1", port=args.port, threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
