"""The read side of the index's data, for serving: what `Catalog` writes, and the live store.

Everything a request reads from a store goes through here, so only `index/` knows the layout
keys: a project's precomputed pages, its manifest (parsed once per process and revalidated
on each use), its core metadata files, the project list, and, for a project never indexed,
a listing of its folders. The answers are storage values (Blob, ObjectInfo, Redirect,
LocalFile) and the page model (Manifest); what they mean to a client is the repository's
and the web layer's business.
"""

from __future__ import annotations

import json

from serverless_pypi.core.model import FileRecord, Manifest, format_upload_time
from serverless_pypi.core.names import (
    Distribution,
    Identity,
    InvalidFilename,
    NormalizedName,
    is_valid_project_name,
    normalize_project_name,
    parse_distribution_filename,
)
from serverless_pypi.index import layout
from serverless_pypi.storage.base import (
    Blob,
    LocalFile,
    NotFound,
    ObjectInfo,
    Redirect,
    Store,
)
from serverless_pypi.storage.cache import RevalidatingCache

__all__ = ["MANIFEST_CACHE_BYTES", "IndexReader", "project_folders"]

#: bytes of manifests (as stored) kept parsed in memory, per process
MANIFEST_CACHE_BYTES = 16 * 1024 * 1024


class IndexReader:
    """Reads of derived data and of the live store, as a request needs them.

    Safe to share between threads: the only state is the manifest cache, which is.
    """

    def __init__(self, store: Store, *, manifest_cache_bytes: int = MANIFEST_CACHE_BYTES) -> None:
        self.store = store
        # every download reads its project's manifest: parsed once, revalidated per use
        self._manifests = RevalidatingCache(store, Manifest.from_bytes, manifest_cache_bytes)

    # -- the project list -----------------------------------------------------------------
    def project_names(self) -> set[str] | None:
        """The index's project list (`projects.json`), None when the store has none yet."""
        try:
            blob = self.store.get(layout.ROOT_LIST)
        except NotFound:
            return None
        return set(json.loads(blob.data)["projects"])

    def project_folders(self) -> dict[NormalizedName, list[str]]:
        """Folders at the store's root that hold projects, by normalized name."""
        return project_folders(self.store)

    # -- pages ----------------------------------------------------------------------------
    def page(self, name: NormalizedName, *, json: bool, if_none_match: str | None) -> Blob | None:
        """The project's precomputed, gzip-compressed page; None when it has none.

        One store read: `if_none_match` is passed on for the store to compare, which raises
        NotModified when it matches.
        """
        try:
            return self.store.get(layout.page_key(name, json=json), if_none_match=if_none_match)
        except NotFound:
            return None

    def deliver_page(
        self, name: NormalizedName, *, json: bool, method: str, expires: int
    ) -> Redirect | LocalFile:
        """How the store itself serves the project's gzip-compressed page (NotFound)."""
        return self.store.deliver(layout.page_key(name, json=json), method, expires)

    def manifest(self, name: NormalizedName) -> Manifest | None:
        """The project's manifest (one conditional GET), None when it has none.

        The value is shared with other readers of this process: it must not be changed.
        """
        found = self._manifests.get(layout.manifest_key(name))
        return found[0] if found is not None else None

    def live_manifest(self, name: NormalizedName) -> Manifest | None:
        """The files of a project never indexed, from a listing of its folders; None if none.

        Without hashes: its keys that are distributions of the project, one per distribution
        identity (the first in key order), as the indexer will list them.
        """
        index = Manifest(name)
        seen: set[Identity] = set()
        for folder in self.project_folders().get(name, []):
            for info in self.store.list(folder + "/"):
                dist = _distribution_of(name, info.key)
                if dist is None or dist.identity in seen:
                    continue
                seen.add(dist.identity)
                index.files[dist.filename] = FileRecord(
                    filename=dist.filename,
                    key=info.key,
                    size=info.size,
                    upload_time=format_upload_time(info.last_modified),
                    etag=info.etag,
                )
        return index if index.files else None

    # -- files ----------------------------------------------------------------------------
    def unindexed_file(self, name: NormalizedName, filename: str) -> ObjectInfo | None:
        """Where a project never indexed keeps `filename`: its own folder (one HEAD), else
        its un-normalized folders; None when none has it."""
        if info := self.store.find(layout.distribution_key(name, filename)):
            return info
        for folder in self.project_folders().get(name, []):
            if info := self.store.find(layout.distribution_key(folder, filename)):
                return info
        return None

    def deliver(self, key: str, method: str, expires: int) -> Redirect | LocalFile:
        """How the store serves the object under `key` (a key a manifest or listing named)."""
        return self.store.deliver(key, method, expires)

    def metadata(self, name: NormalizedName, filename: str) -> Blob | None:
        """The PEP 658 core metadata of the project's `filename`, None when there is none."""
        try:
            return self.store.get(layout.metadata_key(name, filename))
        except NotFound:
            return None


def project_folders(store: Store) -> dict[NormalizedName, list[str]]:
    """Folders at the store's root that hold projects, by normalized name (one listing)."""
    folders: dict[NormalizedName, list[str]] = {}
    for folder in store.list_folders(""):
        if is_valid_project_name(folder):
            folders.setdefault(normalize_project_name(folder), []).append(folder)
    return folders


def _distribution_of(name: NormalizedName, key: str) -> Distribution | None:
    """The distribution of project `name` that `key` holds, if it holds one."""
    split = layout.split_key(key)
    if split is None:
        return None
    try:
        dist = parse_distribution_filename(split[1])
    except InvalidFilename:
        return None
    return dist if dist.project == name else None
