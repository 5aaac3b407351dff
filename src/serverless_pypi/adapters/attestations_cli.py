"""The `attestations` commands: the projects whose uploads must carry PEP 740 attestations.

    attestations require PATTERN     uploads to matching projects need verified attestations
    attestations unrequire PATTERN   take the rule back
    attestations list                the patterns in force

The patterns are globs over normalized project names, kept in the policy document
(`core.policy.Policy.attestations`, changed by compare-and-swap like every policy rule), so
every front applies a change within POLICY_TTL seconds, without a redeploy. An upload without
attestations to a matching project is refused (400), and so is `serverless-pypi publish`,
which sends none.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from serverless_pypi.adapters.cli import _add_store_options, _store
from serverless_pypi.adapters.policy_cli import _note, read_policy, update_members
from serverless_pypi.core.policy import Policy

__all__ = ["add_commands"]


def _glob(text: str) -> str:
    """The pattern as the policy stores it (normalized; InvalidPolicy, exit 2, if invalid)."""
    (glob,) = Policy(attestations=(text,)).attestations
    return glob


def cmd_attestations(args: argparse.Namespace) -> int:
    if args.attestations_command == "list":
        globs = read_policy(_store(args)).attestations
        if not globs:
            print("no project requires attestations", file=sys.stderr)
        for glob in globs:
            print(f"{glob}  (uploads need PEP 740 attestations)")
        return 0
    glob = _glob(args.pattern)
    remove = args.attestations_command == "unrequire"
    if not update_members(args, "attestations", glob, remove=remove):
        _note(f"{glob} is {'not' if remove else 'already'} required to carry attestations")
    elif remove:
        print(f"attestations no longer required: {glob}")
    else:
        print(
            f"attestations required: {glob} (uploads without verified PEP 740 attestations "
            "are refused, `serverless-pypi publish` too)"
        )
    return 0


def add_commands(commands: Any) -> None:
    """Register `attestations require | unrequire | list` on the CLI."""
    parser = commands.add_parser(
        "attestations", help="projects whose uploads must carry attestations (PEP 740)"
    )
    actions = parser.add_subparsers(dest="attestations_command", required=True)
    for verb, text in (
        ("require", "refuse uploads without attestations to matching projects"),
        ("unrequire", "take a requirement back"),
    ):
        sub = actions.add_parser(verb, help=text)
        _add_store_options(sub)
        sub.add_argument("pattern", metavar="PATTERN", help="a project name or a glob (acme-*)")
        sub.set_defaults(func=cmd_attestations)
    listing = actions.add_parser("list", help="the patterns in force")
    _add_store_options(listing)
    listing.set_defaults(func=cmd_attestations)
