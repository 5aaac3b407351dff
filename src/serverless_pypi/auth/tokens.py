"""API tokens: created and revoked with the CLI, checked by the server on every request.

A token is `spypi_<id>_<secret>`: 16 hex digits that name it and 256 random bits. The store
keeps only its SHA-256 (a fast hash suffices for 256 random bits, as for GitHub's tokens) in
its `TokenRecord`, in the index's token list (`serverless_pypi.index.tokens`: one document
changed by compare-and-swap, so two administrators never lose each other's changes).
Presented tokens are compared with `hmac.compare_digest`, in constant time.

Each token has a scope (`read`, or `write`, which also reads), optional project glob patterns
(matched against normalized names) and an optional expiry. The server reads the document
through `TokenCache`, which keeps it for a few seconds and revalidates with a conditional read.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from serverless_pypi.index.change import Change
from serverless_pypi.index.tokens import TokenDocument
from serverless_pypi.storage import Store

__all__ = [
    "SCOPES",
    "TOKEN_PREFIX",
    "TokenCache",
    "TokenError",
    "TokenRecord",
    "TokenStore",
    "parse_expiry",
]

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
TOKEN_PREFIX = "spypi_"  # noqa: S105 (a prefix, not a secret)
#: how long the server trusts its copy of the token list (revocations take this long)
CACHE_TTL = 15.0
#: how long an unknown token id is refused without asking the store again (see TokenCache)
NEGATIVE_TTL = 1.0

_ID = re.compile(r"^[0-9a-f]{16}$")
_PATTERN = re.compile(r"^[A-Za-z0-9._\-*?\[\]!]{1,200}$")
_DURATION = re.compile(r"^(\d{1,6})\s*([mhdwy])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
# compared against when no token has the presented id, so a miss costs as much as a hit
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


class TokenError(ValueError):
    """A token request that cannot be honoured; the message says why."""


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """`30d`, `12h`, `90m`, `2w`, `1y`, or an ISO 8601 date or time (UTC unless it says)."""
    now = now or _now()
    raw = text.strip().lower()
    match = _DURATION.match(raw)
    if match:
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
        if seconds <= 0:
            raise TokenError(f"--expires {text!r}: the duration must be positive")
        return now + timedelta(seconds=seconds)
    try:
        moment = _parse_iso(text.strip())
    except ValueError:
        raise TokenError(
            f"--expires {text!r}: use a duration such as 90m, 12h, 30d, 2w, 1y "
            "or a date such as 2030-01-31"
        ) from None
    if moment <= now:
        raise TokenError(f"--expires {text!r} is in the past")
    return moment


def normalize_pattern(pattern: str) -> str:
    """A project glob in the normalized form of names (PEP 503), wildcards kept."""
    if not _PATTERN.match(pattern):
        raise TokenError(
            f"project pattern {pattern!r}: use a project name or a glob of letters, digits, "
            "'.', '_', '-' and the wildcards * ? [...]"
        )
    return re.sub(r"[-_.]+", "-", pattern).lower()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """`(id, secret)` of a well-formed token, else None."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = token.removeprefix(TOKEN_PREFIX).partition("_")
    if not sep or not _ID.match(token_id) or not secret:
        return None
    return token_id, secret


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the store keeps of a token: never the token itself."""

    id: str
    hash: str
    scope: Scope
    created: str
    #: normalized glob patterns; empty means every project
    projects: tuple[str, ...] = ()
    expires: str | None = None
    description: str = ""
    #: the trusted publisher (auth.publishers) whose OIDC token minted it; None: the CLI's
    publisher: str | None = None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and _parse_iso(self.expires) <= (now or _now())

    def allows(self, scope: Scope, project: str | None) -> bool:
        """Whether the token grants `scope` on `project` (None: the whole index).

        A `write` token also reads. A token limited to some projects reads only their pages,
        not the project list (which names every project).
        """
        if scope == "write" and self.scope != "write":
            return False
        if not self.projects:
            return True
        if project is None:
            return False
        return any(fnmatch.fnmatchcase(project, p) for p in self.projects)

    def covers_namespace(self, namespace: str) -> bool:
        """Whether the token may write every project of a PEP 752 namespace: it is a write
        token for every project, or one of its patterns matches every name `<namespace>-*`
        (`*`, `acme-*`, `acme*` for the namespace `acme`; `acme-core` does not).

        A pattern `Q*` matches every `acme-<anything>` when `Q` matches a beginning of
        `acme-` (the trailing `*` takes the rest); patterns of other shapes are not counted.
        """
        if self.scope != "write":
            return False
        if not self.projects:
            return True
        stem = f"{namespace}-"
        return any(
            p.endswith("*")
            and any(fnmatch.fnmatchcase(stem[:k], p[:-1]) for k in range(len(stem) + 1))
            for p in self.projects
        )

    def describe_projects(self) -> str:
        return ",".join(self.projects) if self.projects else "*"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "hash": self.hash,
            "scope": self.scope,
            "created": self.created,
            "projects": list(self.projects),
        }
        if self.expires is not None:
            data["expires"] = self.expires
        if self.description:
            data["description"] = self.description
        if self.publisher is not None:
            data["publisher"] = self.publisher
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenRecord:
        scope = data["scope"]
        if scope not in SCOPES:
            raise ValueError(f"unknown token scope {scope!r}")
        return cls(
            id=str(data["id"]),
            hash=str(data["hash"]),
            scope=scope,
            created=str(data["created"]),
            projects=tuple(str(p) for p in data.get("projects", ())),
            expires=data.get("expires"),
            description=str(data.get("description", "")),
            publisher=str(data["publisher"]) if data.get("publisher") is not None else None,
        )


def _minted_and_expired(record: TokenRecord, now: datetime) -> bool:
    return record.publisher is not None and record.expired(now)


def _document(store: Store) -> TokenDocument[TokenRecord]:
    return TokenDocument(store, TokenRecord.from_json)


def verify(
    records: dict[str, TokenRecord], token: str, now: datetime | None = None
) -> TokenRecord | None:
    """The record of a presented token if it is known and not expired, in constant time."""
    parts = split_token(token)
    record = records.get(parts[0]) if parts else None
    expected = record.hash if record is not None else _DUMMY_HASH
    if not hmac.compare_digest(expected, hash_token(token)) or record is None:
        return None
    return None if record.expired(now) else record


@dataclass
class TokenStore:
    """Create, list and revoke tokens in a store (what the CLI uses)."""

    store: Store
    clock: Callable[[], datetime] = field(default=_now)

    def read(self) -> tuple[dict[str, TokenRecord], str | None]:
        found = _document(self.store).read()
        return found.records, found.etag

    def create(
        self,
        scope: str,
        projects: Iterable[str] = (),
        expires: datetime | None = None,
        description: str = "",
        publisher: str | None = None,
    ) -> tuple[str, TokenRecord]:
        """A new token (shown once, never stored) and its record.

        `publisher` marks a token minted for a trusted publisher's OIDC token; such a mint
        also deletes the minted tokens that have expired, in the same compare-and-swap, so
        the list does not grow by one record per CI run.
        """
        if scope not in SCOPES:
            raise TokenError(f"scope {scope!r}: use 'read' or 'write'")
        patterns = tuple(dict.fromkeys(normalize_pattern(p) for p in projects))
        now = self.clock()
        if expires is not None and expires <= now:
            raise TokenError("the expiry is in the past")
        token_id = secrets.token_hex(8)
        token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        record = TokenRecord(
            id=token_id,
            hash=hash_token(token),
            scope=scope,
            created=_iso(now),
            projects=patterns,
            expires=_iso(expires) if expires is not None else None,
            description=description.strip()[:200],
            publisher=publisher,
        )

        def add(records: dict[str, TokenRecord]) -> Change[None]:
            if publisher is not None:
                for stale in [r.id for r in records.values() if _minted_and_expired(r, now)]:
                    del records[stale]
            records[token_id] = record
            return Change(None)

        _document(self.store).update(add)
        return token, record

    def records(self) -> list[TokenRecord]:
        records, _ = self.read()
        return sorted(records.values(), key=lambda r: (r.created, r.id))

    def revoke(self, ids: Iterable[str]) -> list[str]:
        """Delete tokens, named by id or by the token itself; returns the ids removed."""
        wanted = set()
        for value in ids:
            parts = split_token(value.strip())
            token_id = parts[0] if parts else value.strip()
            if not _ID.match(token_id):
                raise TokenError(f"{value!r} is neither a token id (16 hex digits) nor a token")
            wanted.add(token_id)

        def drop(records: dict[str, TokenRecord]) -> Change[list[str]]:
            removed = sorted(wanted & records.keys())
            for token_id in removed:
                del records[token_id]
            return Change(removed, write=bool(removed))

        return _document(self.store).update(drop)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One read of the token list: replaced whole, so readers never see half an update."""

    records: dict[str, TokenRecord]
    etag: str | None
    #: when the read that made it started (the monotonic clock)
    read_at: float


class TokenCache:
    """The server's copy of the token list, shared by every thread.

    - The copy is trusted for `ttl` seconds; after that one request re-reads it (a conditional
      read, cheap when nothing changed) while the others go on with the copy, so a revoked
      token stops working within about `ttl` seconds and no reader waits for the store.
    - A well-formed token whose id the copy does not know re-reads the list, unless the copy
      was read less than `negative_ttl` seconds ago: a flood of made-up ids costs at most one
      store read per `negative_ttl`, and a token works at the latest `negative_ttl` seconds
      after it was created (at once when the list was not read in between). A request that
      needs a re-read already under way waits for that one instead of starting another.
    - Only the very first load makes every request wait.
    """

    def __init__(
        self,
        store: Store,
        ttl: float = CACHE_TTL,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = _now,
        negative_ttl: float = NEGATIVE_TTL,
    ) -> None:
        self.store = store
        self._document = _document(store)
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._monotonic = monotonic
        self._clock = clock
        # held by the one thread that reads the store; readers of the copy never take it
        self._reading = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def _read(self) -> _Snapshot:
        """Read the list from the store (the caller holds `_reading`)."""
        started = self._monotonic()
        current = self._snapshot
        found = self._document.read_if_changed(current.etag if current is not None else None)
        if found is None:
            assert current is not None  # a conditional read needs a copy to compare
            snapshot = _Snapshot(current.records, current.etag, started)
        else:
            snapshot = _Snapshot(found.records, found.etag, started)
        self._snapshot = snapshot
        return snapshot

    def _read_since(self, moment: float, *, wait: bool) -> _Snapshot | None:
        """A copy read after `moment`: re-read unless one is. Without `wait`, a re-read
        already under way in another thread is left to it (None: use the copy you have)."""
        snapshot = self._snapshot
        if snapshot is not None and snapshot.read_at > moment:
            return snapshot
        if not self._reading.acquire(blocking=wait):
            return None
        try:
            snapshot = self._snapshot  # another thread may have read it while we waited
            if snapshot is not None and snapshot.read_at > moment:
                return snapshot
            return self._read()
        finally:
            self._reading.release()

    def reload(self) -> None:
        """Read the list again now (one conditional read): after this process changed it,
        e.g. minted a token for a trusted publisher that uploads right after, the token
        works at once instead of up to `negative_ttl` seconds later."""
        self._read_since(self._monotonic(), wait=True)

    def verify(self, token: str) -> TokenRecord | None:
        """The record of a valid, unexpired token, else None."""
        now = self._monotonic()
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._read_since(float("-inf"), wait=True)  # the first load: all wait
        elif now - snapshot.read_at >= self.ttl:
            snapshot = self._read_since(now - self.ttl, wait=False) or snapshot
        assert snapshot is not None
        parts = split_token(token)
        if parts is not None and parts[0] not in snapshot.records:
            # created since the copy was read? Ask again, at most once per negative_ttl
            snapshot = self._read_since(now - self.negative_ttl, wait=True) or snapshot
        return verify(snapshot.records, token, self._clock())
