"""The upstream's data kept in the store: cached pages, pulled-through files, core metadata.

The one owner of the upstream namespace (`layout.UPSTREAM`, under the reserved prefix no
project can take): everything else asks here, so a pulled-through copy can never be confused
with a published file. A copy's key holds the sha256 the upstream listed for it, so a copy is
only ever found for the exact digest the current page lists, and a copy is only ever written
after its bytes were checked against that digest (`index.pull`); a metadata file likewise
under the sha256 of its bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from serverless_pypi.core.names import NormalizedName, is_valid_project_name, normalize_project_name
from serverless_pypi.core.upstream import InvalidUpstreamPage, UpstreamFile, UpstreamPage
from serverless_pypi.index import layout
from serverless_pypi.storage.base import LocalFile, NotFound, ObjectInfo, Redirect, Store

__all__ = ["CachedPage", "UpstreamCache"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CachedPage:
    """An upstream page as fetched: `etag` is the upstream's (for If-None-Match, RFC 9110
    section 13.1.2), `fetched_at` the time of the fetch (seconds since the epoch)."""

    page: UpstreamPage
    etag: str | None
    fetched_at: float

    def to_bytes(self) -> bytes:
        document: dict[str, Any] = {
            "page": self.page.to_json(),
            "etag": self.etag,
            "fetched_at": self.fetched_at,
        }
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> CachedPage:
        """The page `to_bytes` wrote; InvalidUpstreamPage when `data` is not one."""
        try:
            document = json.loads(data)
            etag, fetched_at = document["etag"], document["fetched_at"]
            if not (etag is None or isinstance(etag, str)):
                raise TypeError("`etag` is not a string")
            if isinstance(fetched_at, bool) or not isinstance(fetched_at, int | float):
                raise TypeError("`fetched_at` is not a number")
            return cls(UpstreamPage.from_json(document["page"]), etag, float(fetched_at))
        except InvalidUpstreamPage:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidUpstreamPage(f"not a cached upstream page: {e}") from e


class UpstreamCache:
    """The upstream namespace of `store`. Stateless: safe to share between threads."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- pages ----------------------------------------------------------------------------
    def page(self, name: NormalizedName) -> CachedPage | None:
        """The project's cached upstream page; None when there is none (or it is unreadable:
        then it is fetched again, as if never cached)."""
        key = layout.upstream_page_key(name)
        try:
            blob = self.store.get(key)
        except NotFound:
            return None
        try:
            cached = CachedPage.from_bytes(blob.data)
        except InvalidUpstreamPage as e:
            log.warning("ignoring the unreadable cached upstream page %s: %s", key, e)
            return None
        return cached if cached.page.name == name else None

    def save_page(self, name: NormalizedName, cached: CachedPage) -> None:
        self.store.put(
            layout.upstream_page_key(name), cached.to_bytes(), content_type="application/json"
        )

    def delete_page(self, name: NormalizedName) -> None:
        """Forget the project (the upstream no longer has it): its page, copies and metadata."""
        cached = self.page(name)
        if cached is not None:
            self.forget(name, cached.page.files)
        self.store.delete(layout.upstream_page_key(name))

    def names(self) -> list[NormalizedName]:
        """The projects with a cached page, sorted (one listing)."""
        found = []
        for info in self.store.list(layout.UPSTREAM_PAGES):
            stem = info.key.removeprefix(layout.UPSTREAM_PAGES).removesuffix(".json")
            if "/" in stem or not is_valid_project_name(stem):
                continue
            name = normalize_project_name(stem)
            if name == stem:
                found.append(name)
        return sorted(found)

    # -- pulled-through files -------------------------------------------------------------
    def file_key(self, name: NormalizedName, file: UpstreamFile) -> str:
        """Where the verified copy of `file` lives; ValueError for a file without sha256
        (it cannot be verified, so it is never copied)."""
        if file.sha256 is None:
            raise ValueError(f"{file.filename!r} is listed without a sha256: never copied")
        return layout.upstream_file_key(name, file.sha256, file.filename)

    def find_file(self, name: NormalizedName, file: UpstreamFile) -> ObjectInfo | None:
        """The verified copy of `file` (its digest is in the key), or None (one HEAD)."""
        if file.sha256 is None:
            return None
        info = self.store.find(self.file_key(name, file))
        if info is None or (file.size is not None and info.size != file.size):
            return None
        return info

    def deliver(
        self, name: NormalizedName, file: UpstreamFile, method: str, expires: int
    ) -> Redirect | LocalFile:
        """How the store serves the copy of `file` (see `Store.deliver`); NotFound."""
        if file.sha256 is None:
            raise NotFound(file.filename)
        return self.store.deliver(self.file_key(name, file), method, expires)

    # -- core metadata --------------------------------------------------------------------
    def metadata(self, name: NormalizedName, file: UpstreamFile) -> bytes | None:
        """The cached core metadata of `file` when it matches the sha256 the page lists."""
        if file.metadata_sha256 is None:
            return None
        key = layout.upstream_metadata_key(name, file.metadata_sha256, file.filename)
        try:
            data = self.store.get(key).data
        except NotFound:
            return None
        return data if hashlib.sha256(data).hexdigest() == file.metadata_sha256 else None

    def save_metadata(self, name: NormalizedName, file: UpstreamFile, data: bytes) -> None:
        """Keep `data`, which the caller checked against `file.metadata_sha256`."""
        if file.metadata_sha256 is None:
            raise ValueError(f"{file.filename!r} has no core metadata sha256 to keep it under")
        key = layout.upstream_metadata_key(name, file.metadata_sha256, file.filename)
        self.store.put(key, data, content_type="application/octet-stream")

    def metadata_held(self, name: NormalizedName) -> set[tuple[str, str]]:
        """`(metadata sha256, filename)` of the project's cached metadata files (one listing)."""
        prefix = f"{layout.UPSTREAM_METADATA}{name}/"
        held = set()
        for info in self.store.list(prefix):
            digest, slash, rest = info.key.removeprefix(prefix).partition("/")
            if slash and rest.endswith(".metadata") and "/" not in rest:
                held.add((digest, rest.removesuffix(".metadata")))
        return held

    # -- forgetting -----------------------------------------------------------------------
    def forget(self, name: NormalizedName, files: Iterable[UpstreamFile]) -> None:
        """Delete the copies and metadata files of `files` (no longer listed upstream)."""
        for file in files:
            if file.sha256 is not None:
                self.store.delete(self.file_key(name, file))
            if file.metadata_sha256 is not None:
                self.store.delete(
                    layout.upstream_metadata_key(name, file.metadata_sha256, file.filename)
                )

    def orphans(self) -> Iterator[ObjectInfo]:
        """Cached copies and metadata files that no cached page lists (for `reindex --check`):
        left by a failed clean-up, a copy finished after its page changed, or by hand."""
        pages: dict[str, UpstreamPage | None] = {}

        def listed(project: str, digest: str, filename: str, *, metadata: bool) -> bool:
            if project not in pages:
                valid = (
                    is_valid_project_name(project) and normalize_project_name(project) == project
                )
                cached = self.page(NormalizedName(project)) if valid else None
                pages[project] = cached.page if cached is not None else None
            page = pages[project]
            file = page.file(filename) if page is not None else None
            if file is None:
                return False
            return (file.metadata_sha256 if metadata else file.sha256) == digest

        for prefix, metadata in ((layout.UPSTREAM_FILES, False), (layout.UPSTREAM_METADATA, True)):
            for info in self.store.list(prefix):
                parts = info.key.removeprefix(prefix).split("/")
                if len(parts) == 3 and metadata and parts[2].endswith(".metadata"):
                    parts[2] = parts[2].removesuffix(".metadata")
                elif len(parts) != 3 or metadata:
                    yield info
                    continue
                if not listed(parts[0], parts[1], parts[2], metadata=metadata):
                    yield info
