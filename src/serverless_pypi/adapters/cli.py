"""The `serverless-pypi` command: serve, publish, and look after an index."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serverless_pypi import __version__
from serverless_pypi.core.config import UPSTREAM_MODES, ConfigError, Settings
from serverless_pypi.core.errors import DomainError, Forbidden, InvalidRequest
from serverless_pypi.storage import Store, StoreError, open_store

if TYPE_CHECKING:
    from serverless_pypi.core.wanted import Wanted
    from serverless_pypi.index.housekeeping import Sweep
    from serverless_pypi.index.indexer import Report

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


def _add_upstream_options(parser: argparse.ArgumentParser, *, modes: bool) -> None:
    parser.add_argument(
        "--upstream",
        metavar="URL",
        default=None,
        help="the upstream simple index for projects not published here, e.g. "
        "https://pypi.org/simple/ (default: $UPSTREAM_INDEX_URL)",
    )
    if modes:
        parser.add_argument(
            "--upstream-mode",
            choices=UPSTREAM_MODES,
            default=None,
            help="redirect: send clients to the upstream; proxy: serve its pages here, "
            "downloads from the upstream; mirror: also copy files into the store on first use "
            "(default: $UPSTREAM_MODE, else mirror)",
        )


def _own_command() -> str:
    """This command as another shell in the same directory runs it.

    The executable's path relative to the working directory when it is inside it (`make
    serve` runs `.venv/bin/serverless-pypi`), its bare name when it is installed on the PATH
    outside a virtual environment, else its absolute path.
    """
    argv0 = sys.argv[0] if sys.argv else ""
    path = Path(argv0).absolute() if argv0 else None
    if path is None or not path.name.startswith("serverless-pypi") or not path.is_file():
        return f"{shlex.quote(sys.executable)} -m serverless_pypi.adapters.cli"
    try:
        relative = str(path.relative_to(Path.cwd()))
    except ValueError:
        relative = ""
    if relative:
        return shlex.quote(relative if os.sep in relative else f".{os.sep}{relative}")
    found = shutil.which("serverless-pypi")
    in_venv = sys.prefix != sys.base_prefix
    if found and not in_venv and Path(found).absolute() == path:
        return "serverless-pypi"
    return shlex.quote(str(path))


def _settings(args: argparse.Namespace) -> Settings:
    """The settings from the environment, with `--upstream` / `--upstream-mode` over
    UPSTREAM_INDEX_URL / UPSTREAM_MODE (a ConfigError names what is wrong)."""
    upstream: str | None = getattr(args, "upstream", None)
    mode: str | None = getattr(args, "upstream_mode", None)
    overrides: dict[str, object] = {}
    if upstream is not None:
        # the flag names the upstream: FALLBACK_INDEX_URL in the environment is overridden too
        overrides |= {"upstream_index_url": upstream.strip() or None, "fallback_index_url": None}
    if mode is not None:
        overrides["upstream_mode"] = mode
        fallback = os.environ.get("FALLBACK_INDEX_URL", "").strip()
        if upstream is None and fallback and not os.environ.get("UPSTREAM_INDEX_URL"):
            # a mode chosen on the command line applies to the FALLBACK_INDEX_URL upstream
            overrides |= {"upstream_index_url": fallback, "fallback_index_url": None}
    return Settings.from_env(None, **overrides)


def _upstream_line(settings: Settings) -> str | None:
    """What the banner says of the upstream: its URL (never credentials) and mode."""
    from serverless_pypi.core.config import redact_url

    if not settings.upstream_index_url:
        return None
    what = {
        "redirect": "projects not published here are redirected there",
        "proxy": "pages served here, files downloaded from there",
        "mirror": "pages served here, files copied into the store on first use",
    }[settings.upstream_mode]
    private = " ".join(settings.private_projects) or "none"
    return (
        f"  upstream:   {redact_url(settings.upstream_index_url)} ({settings.upstream_mode}: "
        f"{what}; PRIVATE_PROJECTS: {private})"
    )


def _serve_banner(args: argparse.Namespace, location: str, settings: Settings) -> str:
    """What `serve` prints once it listens: commands that run as printed in another shell."""
    host = f"[{args.host}]" if ":" in args.host else args.host
    address = f"{host}:{args.port}"
    url = f"http://{address}/simple/"
    me = _own_command()
    store = shlex.quote(args.store)
    create = f"{me} token create --store {store} --scope"
    lines = [f"serverless-pypi: serving {location} at {url}"]
    upstream = _upstream_line(settings)
    if upstream is not None:
        lines.append(upstream)
    if settings.require_auth_for_read:
        token_url = f'"http://__token__:$READ@{address}/simple/"'
        lines += [
            "  reads are locked (REQUIRE_AUTH_FOR_READ): every read needs a read token",
            f"  read token: READ=$({create} read)",
            f"  install:    pip install --index-url {token_url} PROJECT",
            f"              uv pip install --index-url {token_url} PROJECT",
        ]
    else:
        lines += [
            "  reads are open to anyone who can reach this address (REQUIRE_AUTH_FOR_READ "
            "locks them)",
            f"  install:    pip install --index-url {url} PROJECT",
            f"              uv pip install --index-url {url} PROJECT",
        ]
    lines += [
        f"  publish:    {me} publish --store {store} dist/*",
        f"  or upload:  TOKEN=$({create} write)",
        f"              twine upload --repository-url http://{address}/legacy/ -u __token__ "
        f'-p "$TOKEN" dist/*',
    ]
    return "\n".join(lines) + "\n"


def cmd_serve(args: argparse.Namespace) -> int:
    from serverless_pypi.adapters.server import BindError, create_server
    from serverless_pypi.compose import build_application

    settings = _settings(args)  # a ConfigError names the setting: nothing is served
    if "://" not in args.store:
        Path(args.store).mkdir(parents=True, exist_ok=True)
    store = _store(args)
    # one request now: a missing bucket or refused credentials stop `serve` with their cause
    store.check()
    app = build_application(store, settings)
    try:
        server = create_server(app, args.host, args.port, threads=args.threads)
    except BindError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    # only now that the port is bound: a "serving" line is true when it appears
    print(_serve_banner(args, store.location, settings), flush=True)
    server.run()
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from serverless_pypi.core.names import InvalidFilename, parse_distribution_filename
    from serverless_pypi.index.catalog import Catalog
    from serverless_pypi.index.policies import PolicyReader
    from serverless_pypi.index.publish import (
        PublishError,
        check_attestations,
        check_status,
        publish,
    )

    catalog = Catalog(_store(args))
    # the project statuses in force (PEP 792): archived and quarantined projects take no
    # files. Namespaces (PEP 752) are about tokens, and this command writes with none.
    policy = PolicyReader(catalog.store).current()
    failed = 0
    for name in args.files:
        path = Path(name)
        try:
            with contextlib.suppress(InvalidFilename):  # publish() says what is wrong with it
                project = parse_distribution_filename(path.name).project
                check_status(policy, project)
                # this command sends no attestations (PEP 740): refused where they are required
                check_attestations(policy, project)
            with path.open("rb") as file:
                result = publish(catalog, file, path.name)
        except (OSError, PublishError, Forbidden, InvalidRequest) as e:
            print(f"error: {path.name}: {e}", file=sys.stderr)
            failed += 1
            continue
        verb = "published" if result.status == "created" else "already published (same bytes)"
        print(f"{verb}: {result.project}/{result.filename} sha256={result.sha256}")
    return 1 if failed else 0


def cmd_reindex(args: argparse.Namespace) -> int:
    from serverless_pypi.index.indexer import Indexer

    store = _store(args)
    indexer = Indexer(store, workers=args.workers)
    bar = _progress_bar("checking" if args.check else "reindexing")
    try:
        report = indexer.reindex(check=args.check, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    for key, reason in report.skipped:
        print(f"skipped: {key}: {reason}", file=sys.stderr)
    verb = "needs indexing" if args.check else "indexed"
    for key in report.indexed:
        print(f"{verb}: {key}")
    verb = "stale record" if args.check else "removed record"
    for key in report.removed:
        print(f"{verb}: {key}")
    verb = "orphaned" if args.check else "deleted orphan"
    for key in report.orphans:
        print(f"{verb}: {key}")
    for name in report.stale_pages:
        print(f"{'stale' if args.check else 'rewrote'} pages: {name}")
    if report.root_changed:
        print("project list: " + ("out of date" if args.check else "rewritten"))
    swept = _sweep(store, check=args.check)
    _print_totals(report, swept, check=args.check)
    if args.check and (report.drift or swept.upstream_copies):  # expired markers are no drift
        print("drift found: run `serverless-pypi reindex` to repair", file=sys.stderr)
        return 1
    return 0


def _print_totals(report: Report, swept: Sweep, *, check: bool) -> None:
    print(
        f"{report.projects} projects, {report.files} files: {len(report.indexed)} to index, "
        f"{len(report.removed)} stale, {len(report.orphans)} orphaned, "
        f"{len(report.skipped)} skipped"
    )
    if swept.upstream_copies:
        verb = "orphaned" if check else "deleted"
        print(
            f"upstream copies: {len(swept.upstream_copies)} {verb} "
            "(listed by no cached upstream page)"
        )
    if swept.oidc_markers:
        verb = "expired" if check else "deleted expired"
        print(f"OIDC token markers: {len(swept.oidc_markers)} {verb}")
    if swept.sessions:
        verb = "of dead sessions" if check else "deleted (dead sessions)"
        print(f"upload session objects: {len(swept.sessions)} {verb}")


def _sweep(store: Store, *, check: bool) -> Sweep:
    """Report (and unless `check`, delete) what the index keeps only for a while
    (`index.housekeeping`): orphaned upstream copies and expired OIDC markers."""
    from serverless_pypi.index.housekeeping import sweep

    swept = sweep(store, check=check)
    for key in swept.upstream_copies:
        print(f"{'orphaned' if check else 'deleted orphaned'} upstream copy: {key}")
    return swept


def _progress_bar(label: str, unit: str = " projects") -> Any:
    """A tqdm progress bar on a terminal, else None (tqdm is a dependency of the CLI)."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(desc=label, unit=unit, file=sys.stderr)


class _BarProgress:
    """The mirror's progress on a tqdm bar whose total grows as pages name their files."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.bar.total = 0

    def add(self, count: int) -> None:
        self.bar.total += count
        self.bar.refresh()

    def done(self) -> None:
        self.bar.update(1)


def _read_wanted(arg: str) -> Wanted:
    """What one `mirror` argument asks for: a file (by its name: uv.lock, pylock.toml, else
    a requirements file) when one exists at that path, else a project name or requirement."""
    from serverless_pypi.core import wanted

    path = Path(arg)
    if not path.is_file():
        if os.sep in arg or arg.endswith((".txt", ".in", ".lock", ".toml")):
            raise wanted.InvalidWanted(f"{arg}: no such file")
        parsed = wanted.parse_requirement(arg, arg)
        if isinstance(parsed, str):
            return wanted.Wanted(notes=(parsed,))
        return wanted.Wanted((parsed,))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise wanted.InvalidWanted(f"{arg}: cannot be read: {e}") from e
    kind = wanted.input_kind(path.name)
    if kind == "uv.lock":
        return wanted.parse_uv_lock(text, arg)
    if kind == "pylock":
        return wanted.parse_pylock(text, arg)
    return wanted.parse_requirements(text, arg)


def cmd_mirror(args: argparse.Namespace) -> int:
    from serverless_pypi.adapters.mirror import Mirror
    from serverless_pypi.compose import upstream_client
    from serverless_pypi.core.wanted import InvalidWanted, Wanted
    from serverless_pypi.index.upstream_cache import UpstreamCache
    from serverless_pypi.repository.private_first import PrivateFirstRepository
    from serverless_pypi.repository.store import StoreRepository
    from serverless_pypi.repository.upstream import UpstreamRepository

    settings = _settings(args)
    if not settings.upstream_index_url:
        print("error: no upstream: give --upstream URL or set UPSTREAM_INDEX_URL", file=sys.stderr)
        return 2
    try:
        wanted = sum(map(_read_wanted, args.inputs), Wanted())
    except InvalidWanted as e:
        # nothing is fetched for an input that says nothing clear
        print(f"error: {e}", file=sys.stderr)
        return 1
    if settings.upstream_mode == "redirect":
        print(
            "note: this index redirects to its upstream (FALLBACK_INDEX_URL or "
            "UPSTREAM_MODE=redirect) and serves nothing mirrored: set UPSTREAM_MODE=mirror",
            file=sys.stderr,
        )
    if not args.verbose:
        # a line a copy is the server's log; here the command lists them once, at the end
        logging.getLogger("serverless_pypi.index.pull").setLevel(logging.WARNING)
    store = _store(args)
    client = upstream_client(settings)
    cache = UpstreamCache(store)
    # pages as the server would serve them: revalidated once older than UPSTREAM_TTL
    repository = UpstreamRepository(client, cache, mode="mirror", ttl=settings.upstream_ttl)
    # the server's own rule: what the store owns or PRIVATE_PROJECTS names is never mirrored
    private = PrivateFirstRepository(StoreRepository(store), repository, settings.private_projects)
    bar = _progress_bar("mirroring", unit=" items")
    mirror = Mirror(
        repository,
        cache,
        client,
        private.is_private,
        all_versions=args.all_versions,
        workers=args.workers,
        progress=_BarProgress(bar) if bar is not None else None,
    )
    try:
        report = mirror.run(wanted)
    finally:
        if bar is not None:
            bar.close()
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for key in report.copied:
        print(f"copied: {key}")
    for failure in report.failures:
        print(f"error: {failure}", file=sys.stderr)
    print(f"mirrored from {client.location}: {report.summary()}")
    return 1 if report.failures else 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from serverless_pypi.auth.tokens import TokenStore, parse_expiry

    expires = parse_expiry(args.expires) if args.expires else None
    token, record = TokenStore(_store(args)).create(
        args.scope, args.project or (), expires, args.description or ""
    )
    where = ", ".join(record.projects) if record.projects else "every project"
    until = f"until {record.expires}" if record.expires else "without expiry"
    print(
        f"created {record.scope} token {record.id} for {where}, valid {until}.\n"
        "It is shown only now; the index keeps only its hash. Use it with the username "
        "__token__.",
        file=sys.stderr,
    )
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from serverless_pypi.auth.tokens import TokenStore

    records = TokenStore(_store(args)).records()
    if not records:
        print("no tokens", file=sys.stderr)
        return 0
    print(f"{'ID':16}  {'SCOPE':5}  {'CREATED':20}  {'EXPIRES':20}  PROJECTS  DESCRIPTION")
    for r in records:
        expires = (r.expires or "never") + (" (expired)" if r.expired() else "")
        print(
            f"{r.id:16}  {r.scope:5}  {r.created:20}  {expires:20}  "
            f"{r.describe_projects():8}  {r.description}".rstrip()
        )
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from serverless_pypi.auth.tokens import TokenStore

    removed = TokenStore(_store(args)).revoke(args.tokens)
    for token_id in removed:
        print(f"revoked: {token_id}")
    missing = len(set(args.tokens)) - len(removed)
    if missing > 0:
        print(f"error: {missing} of the tokens given do not exist", file=sys.stderr)
        return 1
    return 0


def cmd_curate(args: argparse.Namespace) -> int:
    from serverless_pypi.index import curation
    from serverless_pypi.index.catalog import Catalog

    catalog = Catalog(_store(args))
    try:
        if args.command == "yank":
            changed = curation.yank(catalog, args.project, args.target, args.reason or "")
        elif args.command == "unyank":
            changed = curation.unyank(catalog, args.project, args.target)
        else:
            changed = curation.remove(catalog, args.project, args.target)
    except curation.CurationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    verb = {"yank": "yanked", "unyank": "unyanked", "remove": "removed"}[args.command]
    for filename in changed:
        print(f"{verb}: {filename}")
    if not changed:
        print(f"nothing to do: already {verb}", file=sys.stderr)
    return 0


def _add_access_commands(commands: Any) -> None:
    token = commands.add_parser("token", help="create, list and revoke API tokens")
    actions = token.add_subparsers(dest="token_command", required=True)
    create = actions.add_parser("create", help="create a token (printed once on stdout)")
    _add_store_options(create)
    create.add_argument("--scope", choices=["read", "write"], required=True)
    create.add_argument(
        "--project",
        action="append",
        metavar="PATTERN",
        help="limit the token to projects matching this glob (repeatable; default: all)",
    )
    create.add_argument(
        "--expires", metavar="DURATION", help="e.g. 90m, 12h, 30d, 2w, 1y or 2030-01-31"
    )
    create.add_argument("--description", help="a note shown by `token list`")
    create.set_defaults(func=cmd_token_create)
    listing = actions.add_parser("list", help="list tokens (never the tokens themselves)")
    _add_store_options(listing)
    listing.set_defaults(func=cmd_token_list)
    revoke = actions.add_parser("revoke", help="revoke tokens by id (or by the token)")
    _add_store_options(revoke)
    revoke.add_argument("tokens", nargs="+", metavar="ID")
    revoke.set_defaults(func=cmd_token_revoke)

    helps = {
        "yank": "mark files yanked (PEP 592): installers skip them unless pinned with ==",
        "unyank": "clear the yank mark",
        "remove": "delete files with their metadata",
    }
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text)
        _add_store_options(sub)
        sub.add_argument("project", metavar="PROJECT")
        sub.add_argument("target", metavar="VERSION_OR_FILE", help="a version or a file name")
        if name == "yank":
            sub.add_argument("--reason", help="why, shown by pip and uv")
        sub.set_defaults(func=cmd_curate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="serverless-pypi", description="A private Python package index."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the index over HTTP")
    _add_store_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--threads", type=int, default=16, help="worker threads (default 16)")
    _add_upstream_options(serve, modes=True)
    serve.set_defaults(func=cmd_serve)

    publish = commands.add_parser("publish", help="validate and publish distributions")
    _add_store_options(publish)
    publish.add_argument("files", nargs="+", metavar="FILE", help="wheels and sdists")
    publish.set_defaults(func=cmd_publish)

    reindex = commands.add_parser(
        "reindex", help="rebuild hashes, metadata and pages from a listing of the store"
    )
    _add_store_options(reindex)
    reindex.add_argument(
        "--check", action="store_true", help="report drift without writing; exit 1 if any"
    )
    reindex.add_argument("--workers", type=int, default=8, help="parallel workers (default 8)")
    reindex.set_defaults(func=cmd_reindex)

    mirror = commands.add_parser(
        "mirror",
        help="copy upstream projects into the store ahead of time (names, requirements, locks)",
        description="Copy the pages, core metadata and files of upstream projects into the "
        "store, so the index serves them with the upstream down or unreachable. Each ARG is a "
        "project name or requirement (the newest matching version: `requests`, "
        "'requests>=2.30'), a requirements file, a uv.lock or a pylock.toml (exactly the files "
        "they lock, checked against their sha256). Private projects (published here or "
        "matching PRIVATE_PROJECTS) are never mirrored. Exits 1 if anything failed.",
    )
    _add_store_options(mirror)
    _add_upstream_options(mirror, modes=False)
    mirror.add_argument(
        "--all-versions",
        action="store_true",
        help="for names and requirements: every matching version, not only the newest",
    )
    mirror.add_argument("--workers", type=int, default=4, help="parallel downloads (default 4)")
    mirror.add_argument(
        "inputs",
        nargs="+",
        metavar="ARG",
        help="a project name or requirement, a requirements file, a uv.lock or a pylock.toml",
    )
    mirror.set_defaults(func=cmd_mirror)

    _add_access_commands(commands)
    from serverless_pypi.adapters import policy_cli

    policy_cli.add_commands(commands)  # policy, revoke, unrevoke, status, namespace
    from serverless_pypi.adapters import publisher_cli

    publisher_cli.add_commands(commands)  # publisher add, list, remove
    from serverless_pypi.adapters import upload_cli

    upload_cli.add_commands(commands)  # upload (PEP 694 sessions, legacy fallback)
    from serverless_pypi.adapters import attestations_cli

    attestations_cli.add_commands(commands)  # attestations require, unrequire, list (PEP 740)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from serverless_pypi.adapters.server import REQUEST_FORMAT, EscapingFormatter, GroupWriteHandler

    # requests reach the log (paths, waitress's messages): control characters are escaped
    handler = GroupWriteHandler()
    # the format names none of these: not looked up for every record (a request line each)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler.setFormatter(EscapingFormatter(REQUEST_FORMAT))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    logging.getLogger("botocore").setLevel(logging.WARNING)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except DomainError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2
    except (ConfigError, StoreError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
