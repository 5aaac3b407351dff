"""The read side of the index's data, for serving: what `Catalog` writes, and the live store.

Everything a request reads from a store goes through here, so only `index/` knows the layout
keys: a project's precomputed pages, its manifest (parsed once per process and revalidated
on each use), its core metadata files, the project list, and, for a project never indexed,
a listing of its folders.

What a download and a metadata file need (is the file published, where are its bytes, its
metadata) is answered from memory when it can be without going stale: the manifest copy is
trusted for MANIFEST_TRUST_SECONDS after the store confirmed it, and again each time the
project's page is read unchanged since before that confirmation (a page that changed, e.g. a
removal made visible, makes the next use ask the store); a file the copy does not list (a new
upload) is always asked for. Core metadata files never change once written: they are kept by
the sha256 the manifest records for them, so a removed or replaced file's record no longer
leads to them. The answers are storage values (Blob, ObjectInfo, Redirect,
LocalFile) and the page model (Manifest); what they mean to a client is the repository's
and the web layer's business.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from datetime import datetime

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
    NotModified,
    ObjectInfo,
    Redirect,
    Store,
)
from serverless_pypi.storage.cache import BlobCache, RevalidatingCache

__all__ = [
    "MANIFEST_CACHE_BYTES",
    "MANIFEST_TRUST_SECONDS",
    "METADATA_CACHE_BYTES",
    "PAGE_CACHE_BYTES",
    "IndexReader",
    "project_folders",
]

#: bytes of manifests (as stored) kept parsed in memory, per process
MANIFEST_CACHE_BYTES = 16 * 1024 * 1024
#: bytes of core metadata files kept in memory, per process
METADATA_CACHE_BYTES = 8 * 1024 * 1024
#: bytes of precomputed pages (gzip, as stored) kept in memory, per process: each use is
#: still one conditional read, answered 304 without a body while the page is unchanged
PAGE_CACHE_BYTES = 16 * 1024 * 1024
#: how long a manifest copy is used for downloads and metadata without asking the store: the
#: longest a removal takes to reach a process that does not read the project's page
MANIFEST_TRUST_SECONDS = 15.0
#: projects whose last page tags a process remembers
_PAGES_SEEN = 4096


class IndexReader:
    """Reads of derived data and of the live store, as a request needs them.

    Safe to share between threads: the only state is the manifest cache, which is.
    """

    def __init__(
        self,
        store: Store,
        *,
        manifest_cache_bytes: int = MANIFEST_CACHE_BYTES,
        metadata_cache_bytes: int = METADATA_CACHE_BYTES,
        page_cache_bytes: int = PAGE_CACHE_BYTES,
        manifest_trust: float = MANIFEST_TRUST_SECONDS,
    ) -> None:
        self.store = store
        self.manifest_trust = manifest_trust
        # every download reads its project's manifest: parsed once, revalidated or trusted
        self._manifests = RevalidatingCache(store, Manifest.from_bytes, manifest_cache_bytes)
        self._metadata = BlobCache(metadata_cache_bytes)
        self._pages: RevalidatingCache[bytes] = RevalidatingCache(
            store, _unchanged, page_cache_bytes
        )
        # (project, json) -> (page tag, when it was first seen with that tag: monotonic)
        self._pages_seen: OrderedDict[tuple[str, bool], tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    # -- the project list -----------------------------------------------------------------
    def project_names(self) -> tuple[set[str], datetime] | None:
        """The index's project list (`projects.json`) and when it was written; None when the
        store has none yet."""
        try:
            blob = self.store.get(layout.ROOT_LIST)
        except NotFound:
            return None
        return set(json.loads(blob.data)["projects"]), blob.last_modified

    def project_folders(self) -> dict[NormalizedName, list[str]]:
        """Folders at the store's root that hold projects, by normalized name."""
        return project_folders(self.store)

    # -- pages ----------------------------------------------------------------------------
    def page(self, name: NormalizedName, *, json: bool, if_none_match: str | None) -> Blob | None:
        """The project's precomputed, gzip-compressed page; None when it has none.

        One store read, conditional: with the etag of the copy this process holds (the store
        answers 304 without a body while the page is unchanged), else with `if_none_match`.
        Raises NotModified when `if_none_match` names the current page.
        """
        key = layout.page_key(name, json=json)
        if self._pages.holds(key):
            found = self._pages.lookup(key)
            if found is None:
                return None
            self._page_seen(name, json, found.etag)
            if if_none_match == found.etag:
                raise NotModified(key)
            return Blob(found.value, found.etag, found.last_modified)
        try:
            blob = self.store.get(key, if_none_match=if_none_match)
        except NotModified:
            if if_none_match is not None:
                self._page_seen(name, json, if_none_match)
            raise
        except NotFound:
            return None
        self._pages.keep(key, blob)
        self._page_seen(name, json, blob.etag)
        return blob

    def _page_seen(self, name: NormalizedName, json: bool, tag: str) -> None:
        """The project's page is now `tag`: trust the manifest copy again if the page has not
        changed since before the store last confirmed the copy, else ask the store next time."""
        now = time.monotonic()
        with self._lock:
            seen = self._pages_seen.get((name, json))
            unchanged = seen is not None and seen[0] == tag
            if not unchanged:
                seen = (tag, now)
                self._pages_seen[(name, json)] = seen
            self._pages_seen.move_to_end((name, json))
            while len(self._pages_seen) > _PAGES_SEEN:
                self._pages_seen.popitem(last=False)
        key = layout.manifest_key(name)
        if unchanged and seen is not None:
            self._manifests.trust(key, self.manifest_trust, if_checked_since=seen[1])
        else:
            self._manifests.distrust(key)

    def deliver_page(
        self, name: NormalizedName, *, json: bool, method: str, expires: int
    ) -> Redirect | LocalFile:
        """How the store itself serves the project's gzip-compressed page (NotFound)."""
        return self.store.deliver(layout.page_key(name, json=json), method, expires)

    def manifest(self, name: NormalizedName, *, having: str | None = None) -> Manifest | None:
        """The project's manifest (one conditional GET), None when it has none.

        `having`: a file name the caller looks for (a download, a metadata file): a trusted
        copy that lists it is answered from memory; one that does not is asked for again.
        The value is shared with other readers of this process: it must not be changed.
        """
        key = layout.manifest_key(name)
        trust = self.manifest_trust if having is not None else 0.0
        asked = time.monotonic()
        found = self._manifests.lookup(key, trust=trust)
        if found is not None and found.checked < asked and having not in found.value.files:
            # answered from memory, without the file: it may be new, so ask the store
            found = self._manifests.lookup(key, trust=trust, fresh=True)
        if found is None:
            return None
        if found.value.last_modified is None:
            found.value.last_modified = found.last_modified  # of these bytes, whoever sets it
        return found.value

    def live_manifest(self, name: NormalizedName) -> Manifest | None:
        """The files of a project never indexed, from a listing of its folders; None if none.

        Without hashes: its keys that are distributions of the project, one per distribution
        identity (the first in key order), as the indexer will list them.
        """
        index = Manifest(name)
        seen: set[Identity] = set()
        newest: datetime | None = None
        for folder in self.project_folders().get(name, []):
            for info in self.store.list(folder + "/"):
                dist = _distribution_of(name, info.key)
                if dist is None or dist.identity in seen:
                    continue
                seen.add(dist.identity)
                newest = info.last_modified if newest is None else max(newest, info.last_modified)
                index.files[dist.filename] = FileRecord(
                    filename=dist.filename,
                    key=info.key,
                    size=info.size,
                    upload_time=format_upload_time(info.last_modified),
                    etag=info.etag,
                )
        if not index.files:
            return None
        index.last_modified = newest
        return index

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
        """The PEP 658 core metadata of the project's `filename`, None when there is none.

        From memory when the manifest (trusted, see the module) records its sha256 and this
        process has read those bytes before; else one GET, kept when it matches the record.
        """
        key = layout.metadata_key(name, filename)
        index = self.manifest(name, having=filename)
        record = index.files.get(filename) if index is not None else None
        digest = record.metadata_sha256 if record is not None and not record.problem else None
        if digest is not None and (held := self._metadata.get((key, digest))) is not None:
            return held
        try:
            blob = self.store.get(key)
        except NotFound:
            return None
        if digest is not None and hashlib.sha256(blob.data).hexdigest() == digest:
            self._metadata.put((key, digest), blob)
        return blob

    def provenance(self, name: NormalizedName, filename: str) -> Blob | None:
        """The PEP 740 provenance object of the project's `filename`, None when the manifest
        lists no provenance for it (a file with none, refused, removed, or never indexed)."""
        index = self.manifest(name, having=filename)
        record = index.files.get(filename) if index is not None else None
        if record is None or record.problem is not None or not record.provenance_sha256:
            return None
        try:
            return self.store.get(layout.provenance_key(name, filename))
        except NotFound:
            return None


def _unchanged(data: bytes) -> bytes:
    return data


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
