"""The policy commands of `serverless-pypi`: change and show the policy document in a store.

    policy set cooldown DURATION [--private] | off     policy set uploaded-before DATE | off
    policy exempt / unexempt PROJECT[==VERSION]        policy allow / deny GLOB [--remove]
    policy show                                        policy preview PROJECT
    revoke sha256:HEX --reason TEXT | revoke list      unrevoke sha256:HEX
    status PROJECT active|archived|deprecated|quarantined [--reason TEXT]
    namespace add PREFIX | list | remove PREFIX

Every change goes through `PolicyWriter` (compare-and-swap: concurrent runs all land, none
is lost) and reaches every front within POLICY_TTL seconds, without a redeploy. Names, globs,
versions and digests are normalized by `Policy` itself, so what is printed is what is stored.
Bad input (a duration, a date, a name, a digest) exits 2 with the reason (`cli.main`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from serverless_pypi.adapters.cli import (
    _add_store_options,
    _add_upstream_options,
    _settings,
    _store,
)
from serverless_pypi.core.names import NormalizedName, normalize_project_name
from serverless_pypi.core.policy import (
    STATUSES,
    Cooldown,
    Policy,
    ProjectStatus,
    Revocation,
    file_verdict,
    format_time,
    parse_cutoff,
    parse_duration,
)
from serverless_pypi.storage import Store

__all__ = ["add_commands", "format_duration", "parse_digest", "read_policy"]

#: what `status` does to uploads and files (PEP 792)
_STATUS_EFFECTS = {
    "active": "uploads and files as usual",
    "archived": "uploads refused, files served",
    "deprecated": "uploads and files as usual, installers warn",
    "quarantined": "uploads refused, no files offered",
}
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_HEX = frozenset("0123456789abcdef")


def read_policy(store: Store) -> Policy:
    """The stored policy now, the empty one when there is none; InvalidPolicy (a ValueError:
    exit 2) when the document does not parse, rather than showing rules not in force."""
    from serverless_pypi.index.policies import PolicyWriter

    return PolicyWriter(store).read()


def _update(args: argparse.Namespace, change: Callable[[Policy], Policy]) -> tuple[Policy, Policy]:
    """Apply `change` to the stored policy (compare-and-swap, retried); the policy it was
    applied to in the attempt that settled, and the policy in force after it."""
    from serverless_pypi.index.policies import PolicyWriter

    seen: list[Policy] = []

    def recorded(policy: Policy) -> Policy:
        seen.append(policy)
        return change(policy)

    after = PolicyWriter(_store(args)).update(recorded)
    return seen[-1], after


def _note(text: str) -> None:
    print(f"nothing to do: {text}", file=sys.stderr)


def format_duration(seconds: int) -> str:
    """`7d`, `36h`, `90m`, `5s`: the largest unit that divides the duration."""
    for unit, size in _UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"  # pragma: no cover (the last unit divides every duration)


def parse_digest(text: str) -> str:
    """The hex of `sha256:HEX` (or of a bare 64-digit hex), lowercase; ValueError else."""
    value = text.strip()
    algorithm, sep, digest = value.partition(":")
    if not sep:
        algorithm, digest = "sha256", value
    digest = digest.lower()
    if algorithm.lower() != "sha256":
        raise ValueError(f"{text[:80]!r}: only sha256 digests are revoked (sha256:<64 hex>)")
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise ValueError(f"{text[:80]!r} is not a sha256 digest: give sha256:<64 hex digits>")
    return digest


def _name(text: str) -> NormalizedName:
    from serverless_pypi.core.names import InvalidProjectName

    try:
        return normalize_project_name(text.strip())
    except InvalidProjectName as e:
        raise ValueError(str(e)) from None


# -- policy set ------------------------------------------------------------------------------


def _describe_cooldown(cooldown: Cooldown | None) -> str:
    if cooldown is None:
        return "off"
    scope = "upstream and private projects" if cooldown.private else "upstream projects only"
    return f"{format_duration(cooldown.seconds)} ({scope})"


def cmd_set_cooldown(args: argparse.Namespace) -> int:
    if args.duration.strip().lower() == "off":
        if args.private:
            raise ValueError("--private goes with a duration, not with off")
        cooldown = None
    else:
        cooldown = Cooldown(parse_duration(args.duration), private=args.private)
    before, after = _update(args, lambda p: replace(p, cooldown=cooldown))
    if before == after:
        _note(f"the cooldown is already {_describe_cooldown(cooldown)}")
    print(f"cooldown: {_describe_cooldown(after.cooldown)}")
    return 0


def cmd_set_uploaded_before(args: argparse.Namespace) -> int:
    raw = args.date.strip()
    cutoff = None if raw.lower() == "off" else parse_cutoff(raw)
    before, after = _update(args, lambda p: replace(p, uploaded_before=cutoff))
    if before == after:
        _note(f"the cutoff is already {format_time(cutoff) if cutoff is not None else 'off'}")
    if after.uploaded_before is None:
        print("uploaded-before: off")
    else:
        print(
            f"uploaded-before: {format_time(after.uploaded_before)} (files uploaded at or "
            "after it are hidden)"
        )
    return 0


# -- exemptions, allow and deny lists ----------------------------------------------------------


def _exemption(text: str) -> str:
    """`project` or `project==version` as the policy stores it (normalized)."""
    (item,) = Policy(exempt=frozenset({text.strip()})).exempt
    return item


def _same_exemption(a: str, b: str) -> bool:
    """Whether two stored exemptions are one (PEP 440: `x==1.0` is `x==1.0.0`)."""
    from packaging.version import Version

    name_a, _, version_a = a.partition("==")
    name_b, _, version_b = b.partition("==")
    if name_a != name_b or bool(version_a) != bool(version_b):
        return False
    return not version_a or Version(version_a) == Version(version_b)


def cmd_exempt(args: argparse.Namespace) -> int:
    item = _exemption(args.target)
    remove = args.policy_command == "unexempt"

    def change(policy: Policy) -> Policy:
        others = frozenset(e for e in policy.exempt if not _same_exemption(e, item))
        if not remove and len(others) < len(policy.exempt):
            return policy  # already exempt, under this or another spelling of the version
        return replace(policy, exempt=others if remove else others | {item})

    before, after = _update(args, change)
    if before == after:
        _note(f"{item} is {'not' if remove else 'already'} exempt")
    elif remove:
        print(f"unexempted: {item}")
    else:
        print(f"exempted: {item} (the cooldown and the cutoff do not hide it)")
    return 0


def cmd_list_rule(args: argparse.Namespace) -> int:
    which: str = args.policy_command  # "allow" or "deny"
    parsed = Policy(allow=(args.glob,)) if which == "allow" else Policy(deny=(args.glob,))
    (glob,) = parsed.allow or parsed.deny

    def change(policy: Policy) -> Policy:
        current = policy.allow if which == "allow" else policy.deny
        globs = tuple(g for g in current if g != glob) if args.remove else (*current, glob)
        return replace(policy, allow=globs) if which == "allow" else replace(policy, deny=globs)

    before, after = _update(args, change)
    if before == after:
        _note(f"{glob} is {'not' if args.remove else 'already'} on the {which} list")
    else:
        print(f"{which} list: {'removed' if args.remove else 'added'} {glob}")
    if which == "allow" and not after.allow:
        print("allow list: empty (every upstream project not denied is served)")
    return 0


# -- revocation, status, namespaces ------------------------------------------------------------


def cmd_revoke(args: argparse.Namespace) -> int:
    if args.target == "list":
        if args.reason is not None:
            raise ValueError("revoke list takes no --reason")
        return _list_revoked(read_policy(_store(args)))
    digest = parse_digest(args.target)
    reason = (args.reason or "").strip()
    if not reason:
        raise ValueError("revoke needs --reason TEXT: it is shown in every refusal of the file")
    revoked_at = format_time(datetime.now(UTC).replace(microsecond=0))

    def change(policy: Policy) -> Policy:
        held = policy.revoked.get(digest)
        if held is not None and held.reason == reason:
            return policy
        return replace(policy, revoked={**policy.revoked, digest: Revocation(reason, revoked_at)})

    before, _ = _update(args, change)
    held = before.revoked.get(digest)
    if held is not None and held.reason == reason:
        _note(f"sha256:{digest} is already revoked, since {held.revoked_at}")
    else:
        print(f"revoked: sha256:{digest} ({reason})")
    return 0


def _list_revoked(policy: Policy) -> int:
    if not policy.revoked:
        print("no revoked digests", file=sys.stderr)
        return 0
    for digest, revocation in sorted(policy.revoked.items(), key=lambda i: i[1].revoked_at):
        print(f"sha256:{digest}  {revocation.revoked_at}  {revocation.reason}")
    return 0


def cmd_unrevoke(args: argparse.Namespace) -> int:
    digest = parse_digest(args.digest)

    def change(policy: Policy) -> Policy:
        revoked = {d: r for d, r in policy.revoked.items() if d != digest}
        return replace(policy, revoked=revoked)

    before, _ = _update(args, change)
    if digest not in before.revoked:
        _note(f"sha256:{digest} is not revoked")
    else:
        print(f"unrevoked: sha256:{digest}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    name = _name(args.project)
    reason = args.reason.strip() if args.reason else None
    if args.status == "active" and reason:
        raise ValueError("active is the default status: it takes no --reason")
    status = None if args.status == "active" else ProjectStatus(args.status, reason or None)

    def change(policy: Policy) -> Policy:
        statuses = {n: s for n, s in policy.statuses.items() if n != name}
        if status is not None:
            statuses[name] = status
        return replace(policy, statuses=statuses)

    before, after = _update(args, change)
    if before == after:
        _note(f"{name} is already {args.status}")
    why = f" ({reason})" if reason else ""
    print(f"status: {name} is {args.status}{why}: {_STATUS_EFFECTS[args.status]}")
    return 0


def update_members(args: argparse.Namespace, field: str, member: str, *, remove: bool) -> bool:
    """Add `member` to the policy's tuple `field` (last), or remove it, by compare-and-swap;
    whether the policy changed."""

    def change(policy: Policy) -> Policy:
        kept = tuple(m for m in getattr(policy, field) if m != member)
        changes: dict[str, Any] = {field: kept if remove else (*kept, member)}
        return replace(policy, **changes)

    before, after = _update(args, change)
    return before != after


def _namespace(text: str) -> str:
    """A namespace as the policy stores it: `acme-` (the prefix as written) is `acme`."""
    value = text.strip().rstrip("-_.")
    if not value:
        raise ValueError(f"{text[:80]!r} is not a namespace: give a prefix such as acme")
    (namespace,) = Policy(namespaces=(value,)).namespaces
    return namespace


def cmd_namespace(args: argparse.Namespace) -> int:
    if args.namespace_command == "list":
        namespaces = read_policy(_store(args)).namespaces
        if not namespaces:
            print("no namespaces", file=sys.stderr)
        for namespace in namespaces:
            print(f"{namespace}  (the project {namespace} and every {namespace}-*)")
        return 0
    namespace = _namespace(args.prefix)
    remove = args.namespace_command == "remove"
    if not update_members(args, "namespaces", namespace, remove=remove):
        _note(f"{namespace} is {'not' if remove else 'already'} a namespace")
    elif remove:
        print(f"namespace removed: {namespace}")
    else:
        print(
            f"namespace added: {namespace} (uploads to {namespace} and {namespace}-* need a "
            f"token covering {namespace}-*; no upstream project in it is served)"
        )
    return 0


# -- show and preview ---------------------------------------------------------------------------


def describe(policy: Policy) -> list[str]:
    """What `policy show` prints: every rule in force, one line (or block) each."""
    cutoff = policy.uploaded_before
    lines = [
        f"cooldown:        {_describe_cooldown(policy.cooldown)}",
        f"uploaded-before: {format_time(cutoff) if cutoff is not None else 'off'}",
        f"exempt:          {', '.join(sorted(policy.exempt)) or 'none'}",
        f"allow:           {', '.join(policy.allow) or 'every upstream project (no allow list)'}",
        f"deny:            {', '.join(policy.deny) or 'none'}",
        f"namespaces:      {', '.join(policy.namespaces) or 'none'}",
        f"statuses:        {'none' if not policy.statuses else ''}".rstrip(),
    ]
    for name, status in sorted(policy.statuses.items()):
        why = f" ({status.reason})" if status.reason else ""
        lines.append(f"  {name}: {status.status}{why}")
    lines.append(f"revoked:         {'none' if not policy.revoked else ''}".rstrip())
    for digest, revocation in sorted(policy.revoked.items()):
        lines.append(f"  sha256:{digest}  {revocation.revoked_at}  {revocation.reason}")
    return lines


def cmd_show(args: argparse.Namespace) -> int:
    print("\n".join(describe(read_policy(_store(args)))))
    return 0


def _page_dict(name: NormalizedName, found: Any) -> dict[str, Any] | None:
    """The PEP 691 dict of a page the repository answered; None for a redirect."""
    from serverless_pypi.core.render import project_page
    from serverless_pypi.repository.base import Manifest, StoredPage

    if isinstance(found, StoredPage):
        page: dict[str, Any] = json.loads(gzip.decompress(found.data))
        return page
    if isinstance(found, Manifest):
        return project_page(found)
    return None


def cmd_preview(args: argparse.Namespace) -> int:
    """Each file of the project and whether the server serves it, and why not: the same
    repository stack as `serve` (from the same settings, over the same store) answers the
    page the server serves, and the policy code gives the reason for each file it hides."""
    from serverless_pypi.compose import build_repository
    from serverless_pypi.core.errors import NoSuchProject
    from serverless_pypi.repository.policy import PolicyRepository

    name = _name(args.project)
    store = _store(args)
    policy = read_policy(store)  # a broken document is an error here, not an empty policy
    top = build_repository(store, _settings(args), background_pulls=False)
    inner = top.inner if isinstance(top, PolicyRepository) else top
    private = inner.owns(name)
    refusal = None if private else policy.upstream_refusal(name)
    source = _page_dict(name, inner.project_page(name, json=True, if_none_match=None))
    if source is None:
        print(
            f"{name}: redirected to the upstream index (redirect mode): policies on upstream "
            "files need UPSTREAM_MODE=proxy or mirror"
        )
        return 0
    try:
        served_page = _page_dict(name, top.project_page(name, json=True, if_none_match=None))
    except NoSuchProject:
        served_page = None
    served = {f["filename"] for f in (served_page or {}).get("files", [])}
    print(f"{name}: {'private' if private else 'upstream'} project")
    status = policy.status_of(name)
    if status is not None:
        why = f" ({status.reason})" if status.reason else ""
        print(f"status: {status.status}{why}: {_STATUS_EFFECTS[status.status]}")
    if refusal is not None:
        print(f"not served: {refusal}")
    now = datetime.now(UTC)
    files = source.get("files", [])
    for entry in files:
        filename = entry["filename"]
        if filename in served:
            print(f"served  {filename}")
            continue
        reason = refusal or file_verdict(policy, name, entry, private=private, now=now).reason
        print(f"hidden  {filename}  {reason or 'hidden by the policy'}")
    hidden = sum(1 for f in files if f["filename"] not in served)
    count = f"{len(files)} file{'' if len(files) == 1 else 's'}"
    print(f"{count}: {len(files) - hidden} served, {hidden} hidden")
    return 0


# -- the parsers --------------------------------------------------------------------------------


def _with_store(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    _add_store_options(parser)
    return parser


def _add_policy(commands: Any) -> None:
    policy = commands.add_parser(
        "policy", help="the supply-chain policy: cooldown, exemptions, allow and deny lists"
    )
    actions = policy.add_subparsers(dest="policy_command", required=True)
    setting = actions.add_parser("set", help="set the cooldown or the hard cutoff")
    settings = setting.add_subparsers(dest="setting", required=True)
    cooldown = _with_store(
        settings.add_parser(
            "cooldown", help="hide files younger than DURATION (7d, 24h, PT5S) or `off`"
        )
    )
    cooldown.add_argument("duration", metavar="DURATION", help="7d, 24h, 90m, PT24H, P7D or off")
    cooldown.add_argument("--private", action="store_true", help="apply it to private projects too")
    cooldown.set_defaults(func=cmd_set_cooldown)
    cutoff = _with_store(
        settings.add_parser(
            "uploaded-before", help="hide files uploaded at or after DATE, or `off`"
        )
    )
    cutoff.add_argument("date", metavar="DATE", help="2026-11-01, an ISO 8601 time, or off")
    cutoff.set_defaults(func=cmd_set_uploaded_before)
    for verb, text in (
        ("exempt", "lift the cooldown and cutoff for a project or one version (break glass)"),
        ("unexempt", "take an exemption back"),
    ):
        sub = _with_store(actions.add_parser(verb, help=text))
        sub.add_argument("target", metavar="PROJECT[==VERSION]")
        sub.set_defaults(func=cmd_exempt)
    for verb, text in (
        ("allow", "serve only upstream projects matching an allow glob"),
        ("deny", "never serve upstream projects matching a deny glob"),
    ):
        sub = _with_store(actions.add_parser(verb, help=text))
        sub.add_argument("glob", metavar="GLOB", help="a glob over normalized project names")
        sub.add_argument("--remove", action="store_true", help="take the glob off the list")
        sub.set_defaults(func=cmd_list_rule)
    show = _with_store(actions.add_parser("show", help="print the policy in force"))
    show.set_defaults(func=cmd_show)
    preview = _with_store(
        actions.add_parser("preview", help="each file of a project: served, or why not")
    )
    _add_upstream_options(preview, modes=True)
    preview.add_argument("project", metavar="PROJECT")
    preview.set_defaults(func=cmd_preview)


def add_commands(commands: Any) -> None:
    """Register `policy`, `revoke`, `unrevoke`, `status` and `namespace` on the CLI."""
    _add_policy(commands)
    revoke = _with_store(
        commands.add_parser(
            "revoke", help="block a file by its digest everywhere (`revoke list`: the list)"
        )
    )
    revoke.add_argument("target", metavar="sha256:HEX|list")
    revoke.add_argument("--reason", metavar="TEXT", help="why: shown in every refusal")
    revoke.set_defaults(func=cmd_revoke)
    unrevoke = _with_store(commands.add_parser("unrevoke", help="lift a digest revocation"))
    unrevoke.add_argument("digest", metavar="sha256:HEX")
    unrevoke.set_defaults(func=cmd_unrevoke)
    status = _with_store(commands.add_parser("status", help="set a project's status (PEP 792)"))
    status.add_argument("project", metavar="PROJECT")
    status.add_argument("status", choices=STATUSES)
    status.add_argument("--reason", metavar="TEXT", help="shown to installers with the status")
    status.set_defaults(func=cmd_status)
    namespace = commands.add_parser("namespace", help="reserve project-name prefixes (PEP 752)")
    actions = namespace.add_subparsers(dest="namespace_command", required=True)
    for verb, text in (("add", "reserve a namespace"), ("remove", "release a namespace")):
        sub = _with_store(actions.add_parser(verb, help=text))
        sub.add_argument("prefix", metavar="PREFIX", help="e.g. acme (covers acme and acme-*)")
        sub.set_defaults(func=cmd_namespace)
    listing = _with_store(actions.add_parser("list", help="list the namespaces"))
    listing.set_defaults(func=cmd_namespace)
