"""The `serverless-pypi` command: serve, publish, and look after an index."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import ConfigError, Settings
from .storage import Store, StoreError, open_store

__all__ = ["main"]

DEFAULT_STORE = "packages"


def _store(args: argparse.Namespace) -> Store:
    return open_store(args.store, endpoint_url=args.endpoint_url)


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=os.environ.get("SERVERLESS_PYPI_STORE", DEFAULT_STORE),
        help="a directory or s3://bucket[/prefix] (default: $SERVERLESS_PYPI_STORE or ./packages)",
    )
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint (default: $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL, else AWS)",
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import Application
    from .server import serve

    if "://" not in args.store:
        Path(args.store).mkdir(parents=True, exist_ok=True)
    store = _store(args)
    settings = Settings.from_env()
    app = Application(store, settings)
    url = f"http://{args.host}:{args.port}/simple/"
    print(
        f"serverless-pypi: serving {store.location} at {url}\n"
        f"  pip install --index-url {url} <project>\n"
        f"  uv pip install --index-url {url} <project>\n"
        f"  serverless-pypi publish --store {args.store} dist/*\n",
        flush=True,
    )
    serve(app, args.host, args.port, threads=args.threads)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from .catalog import Catalog
    from .publish import PublishError, publish

    catalog = Catalog(_store(args))
    failed = 0
    for name in args.files:
        path = Path(name)
        try:
            with path.open("rb") as file:
                result = publish(catalog, file, path.name)
        except (OSError, PublishError) as e:
            print(f"error: {path.name}: {e}", file=sys.stderr)
            failed += 1
            continue
        verb = "published" if result.status == "created" else "already published (same bytes)"
        print(f"{verb}: {result.project}/{result.filename} sha256={result.sha256}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="serverless-pypi", description="A private Python package index."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the index over HTTP")
    _add_store_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--threads", type=int, default=16, help="worker threads (default 16)")
    serve.set_defaults(func=cmd_serve)

    publish = commands.add_parser("publish", help="validate and publish distributions")
    _add_store_options(publish)
    publish.add_argument("files", nargs="+", metavar="FILE", help="wheels and sdists")
    publish.set_defaults(func=cmd_publish)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ConfigError, StoreError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
