"""Trusted publishers: which CI identities may exchange their OIDC token for a short token.

A publisher names an OIDC issuer (GitHub Actions, GitLab CI, or any issuer with a discovery
document), the claims its JWT must carry, the projects the minted token covers (normalized
globs, as a token's) and its scope (`write` to upload, `read` for a locked index). They are
kept in one document changed by compare-and-swap, like the tokens
(`serverless_pypi.index.tokens.TokenDocument.publishers`), so they are managed without a
redeploy and two administrators never lose each other's changes.

A claim matches exactly (`claims`), or by its beginning (`prefixes`): GitHub names the
workflow file only inside `job_workflow_ref` (`<owner>/<repo>/.github/workflows/<file>@<ref>`),
which PyPI checks the same way.
"""

from __future__ import annotations

import builtins
import ipaddress
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

from serverless_pypi.auth.tokens import SCOPES, TokenError, normalize_pattern
from serverless_pypi.index.change import Change
from serverless_pypi.index.tokens import TokenDocument
from serverless_pypi.storage import Store

__all__ = [
    "GITHUB_ISSUER",
    "KINDS",
    "Publisher",
    "PublisherError",
    "PublisherStore",
    "check_issuer",
    "github_publisher",
    "gitlab_publisher",
    "oidc_publisher",
]

Scope = Literal["read", "write"]
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_URL = "https://gitlab.com"
KINDS = ("github", "gitlab", "oidc")

_ID = re.compile(r"^[0-9a-f]{16}$")
# GitHub: owner and repository names (letters, digits, '-', '_', '.')
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")
# a workflow file name under .github/workflows/ (no directories)
_WORKFLOW = re.compile(r"^[A-Za-z0-9._-]{1,200}\.ya?ml$")
# GitLab: a project path is a namespace (groups may nest) and a project
_GITLAB_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
_CLAIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,99}$")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class PublisherError(ValueError):
    """A publisher that cannot be added or removed; the message says why."""


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_issuer(url: str) -> str:
    """An issuer URL as its tokens' `iss` claim names it: https with a host, no query or
    fragment; `http://` for loopback hosts only (a test issuer on this machine)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as e:
        raise PublisherError(f"issuer {url[:200]!r} is not a URL: {e}") from None
    if parts.scheme not in {"https", "http"} or not host:
        raise PublisherError(f"issuer {url[:200]!r}: use an https:// URL with a host name")
    if parts.scheme == "http" and not _loopback(host):
        raise PublisherError(
            f"issuer {url[:200]!r}: an http:// issuer is accepted on loopback addresses only; "
            "use https://"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise PublisherError(f"issuer {url[:200]!r}: no query, fragment or credentials")
    return url


def _claims(values: Mapping[str, str], what: str) -> Mapping[str, str]:
    for name, value in values.items():
        if not _CLAIM_NAME.match(name) or name in {"iss", "aud", "exp", "nbf", "iat", "jti"}:
            raise PublisherError(f"{what} {name[:100]!r}: not a claim a publisher can require")
        if not isinstance(value, str) or not value or len(value) > 1000:
            raise PublisherError(f"{what} {name}: the required value must be non-empty text")
    return MappingProxyType(dict(sorted(values.items())))


@dataclass(frozen=True, slots=True)
class Publisher:
    """One trusted publisher: an issuer, the claims its JWTs must carry, what they get."""

    id: str
    issuer: str
    #: claim name -> required value (exact match)
    claims: Mapping[str, str]
    #: normalized project globs: the minted token's project patterns
    projects: tuple[str, ...]
    scope: Scope
    created: str
    kind: str
    #: claim name -> required beginning of its value (GitHub's job_workflow_ref)
    prefixes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def mismatch(self, claims: Mapping[str, Any]) -> str | None:
        """The first claim that does not match, named with what was expected (never the
        JWT, nor the value it carried); None when every claim matches."""
        for name, expected in self.claims.items():
            if claims.get(name) != expected:
                return f"{name}: expected {expected}"
        for name, beginning in self.prefixes.items():
            value = claims.get(name)
            if not isinstance(value, str) or not value.startswith(beginning):
                return f"{name}: expected {beginning}..."
        return None

    def matching(self, claims: Mapping[str, Any]) -> int:
        """How many of the required claims `claims` carries (to name the closest publisher)."""
        exact = sum(1 for n, v in self.claims.items() if claims.get(n) == v)
        begun = sum(1 for n, v in self.prefixes.items() if str(claims.get(n, "")).startswith(v))
        return exact + begun

    def describe(self) -> str:
        """The required claims, for `publisher list` and messages."""
        parts = [f"{n}={v}" for n, v in self.claims.items()]
        parts += [f"{n}={v}*" for n, v in self.prefixes.items()]
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "issuer": self.issuer,
            "claims": dict(self.claims),
            "projects": list(self.projects),
            "scope": self.scope,
            "created": self.created,
            "kind": self.kind,
        }
        if self.prefixes:
            data["prefixes"] = dict(self.prefixes)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Publisher:
        scope = data["scope"]
        if scope not in SCOPES:
            raise ValueError(f"unknown publisher scope {scope!r}")
        return cls(
            id=str(data["id"]),
            issuer=str(data["issuer"]),
            claims=MappingProxyType({str(k): str(v) for k, v in data["claims"].items()}),
            projects=tuple(str(p) for p in data["projects"]),
            scope=scope,
            created=str(data["created"]),
            kind=str(data.get("kind", "oidc")),
            prefixes=MappingProxyType(
                {str(k): str(v) for k, v in data.get("prefixes", {}).items()}
            ),
        )

    def _same_rule(self, other: Publisher) -> bool:
        return (
            self.issuer == other.issuer
            and dict(self.claims) == dict(other.claims)
            and dict(self.prefixes) == dict(other.prefixes)
            and self.projects == other.projects
            and self.scope == other.scope
        )


def _projects(projects: Iterable[str]) -> tuple[str, ...]:
    try:
        patterns = tuple(dict.fromkeys(normalize_pattern(p) for p in projects))
    except TokenError as e:
        raise PublisherError(str(e)) from None
    if not patterns:
        raise PublisherError(
            "name the projects the publisher may publish (--project NAME or a glob such as "
            "'acme-*')"
        )
    return patterns


def _scope(scope: str) -> Scope:
    for known in SCOPES:
        if scope == known:
            return known
    raise PublisherError(f"scope {scope!r}: use 'read' or 'write'")


def _publisher(
    kind: str,
    issuer: str,
    claims: Mapping[str, str],
    *,
    projects: Iterable[str],
    scope: str,
    prefixes: Mapping[str, str] | None = None,
) -> Publisher:
    return Publisher(
        id=secrets.token_hex(8),
        issuer=check_issuer(issuer),
        claims=_claims(claims, "claim"),
        projects=_projects(projects),
        scope=_scope(scope),
        created=_now_iso(),
        kind=kind,
        prefixes=_claims(prefixes or {}, "claim"),
    )


def github_publisher(
    repository: str,
    workflow: str,
    *,
    owner_id: str | None = None,
    environment: str | None = None,
    projects: Iterable[str],
    scope: str = "write",
    issuer: str = GITHUB_ISSUER,
) -> Publisher:
    """GitHub Actions: the repository (`owner/repo`), its workflow file (checked through
    `job_workflow_ref`, as PyPI does), the owner's numeric id when given (a deleted account
    whose name someone else takes gets another id: "account resurrection"), and the
    deployment environment when given. `issuer`: GitHub Enterprise Server's
    (`https://HOST/_services/token`) instead of github.com's."""
    if not _GITHUB_REPO.match(repository):
        raise PublisherError(f"--github {repository[:200]!r}: use OWNER/REPOSITORY")
    workflow = workflow.removeprefix(".github/workflows/")
    if not _WORKFLOW.match(workflow):
        raise PublisherError(
            f"--workflow {workflow[:200]!r}: use the workflow's file name, such as release.yml"
        )
    claims = {"repository": repository}
    if owner_id is not None:
        if not owner_id.isdigit():
            raise PublisherError(f"--owner-id {owner_id[:40]!r}: the owner's numeric id")
        claims["repository_owner_id"] = owner_id
    if environment:
        claims["environment"] = environment
    prefixes = {"job_workflow_ref": f"{repository}/.github/workflows/{workflow}@"}
    return _publisher("github", issuer, claims, projects=projects, scope=scope, prefixes=prefixes)


def gitlab_publisher(
    project_path: str,
    *,
    gitlab_url: str = GITLAB_URL,
    ref: str | None = None,
    environment: str | None = None,
    projects: Iterable[str],
    scope: str = "write",
) -> Publisher:
    """GitLab CI (gitlab.com or a self-hosted GitLab, whose URL is its issuer): the project
    path (`namespace/project`), the ref (a branch or tag name) and the environment when
    given."""
    if not _GITLAB_PATH.match(project_path):
        raise PublisherError(f"--gitlab {project_path[:200]!r}: use NAMESPACE/PROJECT")
    claims = {"project_path": project_path}
    if ref:
        claims["ref"] = ref
    if environment:
        claims["environment"] = environment
    return _publisher("gitlab", gitlab_url.rstrip("/"), claims, projects=projects, scope=scope)


def oidc_publisher(
    issuer: str, claims: Mapping[str, str], *, projects: Iterable[str], scope: str = "write"
) -> Publisher:
    """Any issuer with an OIDC discovery document; at least one claim must be required (else
    every identity the issuer vouches for would match)."""
    if not claims:
        raise PublisherError(
            "name at least one claim the tokens must carry (--claim NAME=VALUE), such as sub"
        )
    return _publisher("oidc", issuer, claims, projects=projects, scope=scope)


class PublisherStore:
    """Add, list and remove trusted publishers in a store (the CLI's and the mint's view)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._document = TokenDocument.publishers(store, Publisher.from_json)

    def add(self, publisher: Publisher) -> Publisher:
        """Store `publisher`; the one already stored when an identical rule exists."""

        def put(records: dict[str, Publisher]) -> Change[Publisher]:
            for existing in records.values():
                if existing._same_rule(publisher):
                    return Change(existing, write=False)
            records[publisher.id] = publisher
            return Change(publisher)

        return self._document.update(put)

    def list(self) -> list[Publisher]:
        records = self._document.read().records
        return sorted(records.values(), key=lambda p: (p.created, p.id))

    def remove(self, ids: Iterable[str]) -> builtins.list[str]:
        """Delete publishers by id; returns the ids removed (unknown ones are not)."""
        wanted = set()
        for value in ids:
            if not _ID.match(value.strip()):
                raise PublisherError(f"{value[:100]!r} is not a publisher id (16 hex digits)")
            wanted.add(value.strip())

        def drop(records: dict[str, Publisher]) -> Change[builtins.list[str]]:
            removed = sorted(wanted & records.keys())
            for publisher_id in removed:
                del records[publisher_id]
            return Change(removed, write=bool(removed))

        return self._document.update(drop)
