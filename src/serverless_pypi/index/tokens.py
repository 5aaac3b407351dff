"""The token list in a store: one JSON document under `layout.TOKENS`, changed by
compare-and-swap like the catalog's documents, so two administrators never lose each other's
changes.

What a token is, how it is hashed and checked, and what its record holds belong to
`serverless_pypi.auth.tokens`: this module only keeps the records (anything with an `id`, a
`created` time and a JSON form, parsed back by the function it is given) and reads them
conditionally for the server's cache.

The trusted publishers (`serverless_pypi.auth.publishers`) are kept the same way, in their
own document (`TokenDocument.publishers`), and each OIDC JWT exchanged for a token leaves a
marker created with If-None-Match (`mark_once`): the one writer that creates it wins, in every
process and on every instance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from serverless_pypi.index import layout
from serverless_pypi.index.change import Change
from serverless_pypi.storage import NotFound, NotModified, PreconditionFailed, Store, StoreError
from serverless_pypi.storage.swap import swap

__all__ = ["FORMAT_VERSION", "StoredToken", "TokenDocument", "TokenList", "mark_once"]

FORMAT_VERSION = 1


class StoredToken(Protocol):
    """What the document needs of a token's record."""

    @property
    def id(self) -> str: ...

    @property
    def created(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=StoredToken)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TokenList(Generic[R]):
    """One read of the document: the records by id, and its etag (None: no document yet)."""

    records: dict[str, R]
    etag: str | None


class TokenDocument(Generic[R]):
    """`tokens.json`: read it, read it again only if it changed, change it atomically.

    `key` and `field` (the document's list of records) name another document of the same
    shape: `publishers` gives the trusted publishers' one.
    """

    def __init__(
        self,
        store: Store,
        parse: Callable[[dict[str, Any]], R],
        *,
        key: str = layout.TOKENS,
        field: str = "tokens",
    ) -> None:
        self.store = store
        self._parse = parse
        self.key = key
        self._field = field

    @classmethod
    def publishers(cls, store: Store, parse: Callable[[dict[str, Any]], R]) -> TokenDocument[R]:
        """`publishers.json`: the trusted publishers, changed by compare-and-swap."""
        return cls(store, parse, key=layout.PUBLISHERS, field="publishers")

    def read(self) -> TokenList[R]:
        found = self.read_if_changed(None)
        assert found is not None  # an unconditional read always answers
        return found

    def read_if_changed(self, etag: str | None) -> TokenList[R] | None:
        """The document, unless it still has `etag` (None: it did not change; one
        conditional read, cheap when nothing changed)."""
        try:
            blob = self.store.get(self.key, if_none_match=etag)
        except NotModified:
            return None
        except NotFound:
            return TokenList({}, None)
        return TokenList(self._decode(blob.data), blob.etag)

    def update(self, change: Callable[[dict[str, R]], Change[T]]) -> T:
        """Apply `change` to the records (by id, edited in place) atomically; return what it
        computed. It may run several times (once per attempt), like `Catalog.update_project`."""

        def apply(data: bytes | None) -> tuple[bytes | None, T]:
            records = self._decode(data) if data is not None else {}
            outcome = change(records)
            if not outcome.write:
                return None, outcome.result
            return _encode(records.values(), self._field), outcome.result

        return swap(self.store, self.key, apply)[0]

    def _decode(self, data: bytes) -> dict[str, R]:
        try:
            document = json.loads(data)
            if document.get("format") != FORMAT_VERSION:
                raise ValueError(f"unsupported format {document.get('format')!r}")
            records = [self._parse(t) for t in document[self._field]]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise StoreError(f"{self.key} is not a list this version can read: {e}") from e
        return {r.id: r for r in records}


def _encode(records: Iterable[StoredToken], field: str) -> bytes:
    document = {
        "format": FORMAT_VERSION,
        field: [r.to_json() for r in sorted(records, key=lambda r: (r.created, r.id))],
    }
    return json.dumps(document, indent=1, sort_keys=True).encode()


def mark_once(store: Store, identity: str, record: dict[str, Any]) -> bool:
    """Create the marker of `identity` (an exchanged OIDC JWT) unless it exists: True for
    the first caller only, in every process, since the write is conditional (If-None-Match).

    The marker is named by the sha256 of `identity` and holds `record` (the JWT's issuer and
    `exp`, never the JWT), so an expired one can be recognised and deleted.
    """
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()
    body = json.dumps(record, sort_keys=True).encode()
    try:
        store.put(
            layout.oidc_used_key(digest),
            body,
            content_type="application/json",
            if_none_match=True,
        )
    except PreconditionFailed:
        return False
    return True
