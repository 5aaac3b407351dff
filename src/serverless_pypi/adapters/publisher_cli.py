"""The trusted publisher commands of `serverless-pypi`: who may exchange an OIDC token.

    publisher add --project PATTERN [--scope read|write]
        --github OWNER/REPO --workflow FILE [--owner-id ID] [--environment ENV]
                 [--github-issuer URL]
      | --gitlab NAMESPACE/PROJECT [--gitlab-url URL] [--ref REF] [--environment ENV]
      | --issuer URL --claim NAME=VALUE...
    publisher list
    publisher remove ID...

Publishers live in the store (`auth.publishers.PublisherStore`, compare-and-swap) and are
read by the mint endpoint at each exchange: a change needs no redeploy. A CI job whose OIDC
token matches one gets a token for exactly its projects, valid 15 minutes
(`serverless_pypi.web.oidc`). Bad input exits 2 with the reason (`cli.main`).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from serverless_pypi.adapters.cli import _add_store_options, _store

if TYPE_CHECKING:
    from serverless_pypi.auth.publishers import Publisher

__all__ = ["add_commands", "parse_claims"]

_KIND_OPTIONS = {
    "github": ("--workflow", "--owner-id", "--github-issuer"),
    "gitlab": ("--gitlab-url", "--ref"),
    "oidc": ("--claim",),
}


def parse_claims(values: list[str]) -> dict[str, str]:
    """`NAME=VALUE` arguments as a mapping; ValueError (exit 2) naming a malformed one or a
    claim given twice."""
    claims: dict[str, str] = {}
    for value in values:
        name, sep, required = value.partition("=")
        name = name.strip()
        if not sep or not name or not required:
            raise ValueError(f"--claim {value[:200]!r}: use NAME=VALUE, such as sub=repo:acme/app")
        if name in claims:
            raise ValueError(f"--claim {name}: given twice (a claim has one required value)")
        claims[name] = required
    return claims


def _kind(args: argparse.Namespace) -> str:
    """Which of --github, --gitlab and --issuer was given (exactly one), with only the
    options that go with it; ValueError otherwise."""
    given = [
        k for k, v in (("github", args.github), ("gitlab", args.gitlab), ("oidc", args.issuer)) if v
    ]
    if len(given) != 1:
        raise ValueError(
            "give exactly one of --github OWNER/REPO, --gitlab NAMESPACE/PROJECT or --issuer URL"
        )
    kind = given[0]
    used = {
        "--workflow": args.workflow,
        "--owner-id": args.owner_id,
        "--github-issuer": args.github_issuer,
        "--gitlab-url": args.gitlab_url,
        "--ref": args.ref,
        "--claim": args.claim,
    }
    for option, value in used.items():
        if value and option not in _KIND_OPTIONS[kind]:
            flag = {"github": "--github", "gitlab": "--gitlab", "oidc": "--issuer"}[kind]
            raise ValueError(f"{option} does not go with {flag}")
    if args.environment and kind == "oidc":
        raise ValueError(
            "--environment goes with --github or --gitlab; use --claim environment=ENV"
        )
    return kind


def _publisher(args: argparse.Namespace) -> Publisher:
    from serverless_pypi.auth import publishers

    kind = _kind(args)
    projects, scope = args.project, args.scope
    if kind == "github":
        if not args.workflow:
            raise ValueError("--github needs --workflow FILE (the workflow file that publishes)")
        return publishers.github_publisher(
            args.github,
            args.workflow,
            owner_id=args.owner_id,
            environment=args.environment,
            projects=projects,
            scope=scope,
            issuer=args.github_issuer or publishers.GITHUB_ISSUER,
        )
    if kind == "gitlab":
        return publishers.gitlab_publisher(
            args.gitlab,
            gitlab_url=args.gitlab_url or publishers.GITLAB_URL,
            ref=args.ref,
            environment=args.environment,
            projects=projects,
            scope=scope,
        )
    return publishers.oidc_publisher(
        args.issuer, parse_claims(args.claim or []), projects=projects, scope=scope
    )


def _describe(publisher: Publisher) -> str:
    projects = ",".join(publisher.projects)
    return (
        f"{publisher.id}  {publisher.kind:6}  {publisher.scope:5}  {projects}  "
        f"{publisher.issuer}  {publisher.describe()}"
    )


def cmd_publisher_add(args: argparse.Namespace) -> int:
    from serverless_pypi.auth.publishers import PublisherStore

    wanted = _publisher(args)
    stored = PublisherStore(_store(args)).add(wanted)
    verb = "added" if stored.id == wanted.id else "already there"
    what = "upload" if stored.scope == "write" else "read"
    print(
        f"{verb}: publisher {stored.id} ({stored.kind}): OIDC tokens from {stored.issuer} with "
        f"{stored.describe()} get a 15-minute {what} token for {', '.join(stored.projects)}.",
        file=sys.stderr,
    )
    print(stored.id)
    return 0


def cmd_publisher_list(args: argparse.Namespace) -> int:
    from serverless_pypi.auth.publishers import PublisherStore

    found = PublisherStore(_store(args)).list()
    if not found:
        print("no trusted publishers", file=sys.stderr)
        return 0
    print(f"{'ID':16}  {'KIND':6}  {'SCOPE':5}  PROJECTS  ISSUER  CLAIMS")
    for publisher in found:
        print(_describe(publisher))
    return 0


def cmd_publisher_remove(args: argparse.Namespace) -> int:
    from serverless_pypi.auth.publishers import PublisherStore

    removed = PublisherStore(_store(args)).remove(args.ids)
    for publisher_id in removed:
        print(f"removed: {publisher_id}")
    missing = len({i.strip() for i in args.ids}) - len(removed)
    if missing > 0:
        print(f"error: {missing} of the publishers given do not exist", file=sys.stderr)
        return 1
    return 0


def add_commands(commands: Any) -> None:
    """Register `publisher add`, `publisher list` and `publisher remove` on the CLI."""
    publisher = commands.add_parser(
        "publisher", help="trusted publishers: CI jobs that exchange their OIDC token"
    )
    actions = publisher.add_subparsers(dest="publisher_command", required=True)
    add = actions.add_parser(
        "add",
        help="let a CI identity mint 15-minute tokens for some projects",
        description="Add a trusted publisher: a CI job whose OIDC token carries these claims "
        "exchanges it at /_/oidc/mint-token for a token valid 15 minutes, for exactly the "
        "projects given. Give one of --github, --gitlab or --issuer.",
    )
    _add_store_options(add)
    add.add_argument(
        "--project",
        action="append",
        required=True,
        metavar="PATTERN",
        help="a project name or glob the minted token covers (repeatable)",
    )
    add.add_argument(
        "--scope",
        choices=["read", "write"],
        default="write",
        help="write: upload (default); read: install from a locked index",
    )
    add.add_argument("--github", metavar="OWNER/REPO", help="GitHub Actions: the repository")
    add.add_argument(
        "--workflow", metavar="FILE", help="GitHub: the workflow file, e.g. release.yml"
    )
    add.add_argument(
        "--owner-id",
        metavar="ID",
        help="GitHub: the owner's numeric id (refuses a re-registered owner name)",
    )
    add.add_argument(
        "--github-issuer",
        metavar="URL",
        help="GitHub Enterprise Server's OIDC issuer, https://HOST/_services/token "
        "(default https://token.actions.githubusercontent.com)",
    )
    add.add_argument("--gitlab", metavar="NAMESPACE/PROJECT", help="GitLab CI: the project path")
    add.add_argument(
        "--gitlab-url",
        metavar="URL",
        help="GitLab: a self-hosted instance (default https://gitlab.com)",
    )
    add.add_argument("--ref", metavar="REF", help="GitLab: the branch or tag that may publish")
    add.add_argument("--environment", metavar="ENV", help="GitHub or GitLab: the environment")
    add.add_argument(
        "--issuer",
        metavar="URL",
        help="any OIDC issuer with a discovery document (http:// on loopback only)",
    )
    add.add_argument(
        "--claim",
        action="append",
        metavar="NAME=VALUE",
        help="--issuer: a claim the token must carry (repeatable)",
    )
    add.set_defaults(func=cmd_publisher_add)
    listing = actions.add_parser("list", help="list the trusted publishers")
    _add_store_options(listing)
    listing.set_defaults(func=cmd_publisher_list)
    remove = actions.add_parser("remove", help="remove trusted publishers by id")
    _add_store_options(remove)
    remove.add_argument("ids", nargs="+", metavar="ID")
    remove.set_defaults(func=cmd_publisher_remove)
