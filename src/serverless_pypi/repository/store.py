"""The repository of the index's own store: precomputed pages, manifests, metadata files.

Reads go through `serverless_pypi.index.reader`, the only reader of the layout. A page of an
indexed project is one store read of its precomputed rendering; a project with a manifest but
no pages (a writer failed in between) is rendered from the manifest; a project never indexed
(a store filled by copying files) is listed live from its folders.
"""

from __future__ import annotations

import time
from functools import partial

from serverless_pypi.core.errors import NoSuchFile, NoSuchProject
from serverless_pypi.core.http import IfNoneMatch
from serverless_pypi.core.model import Manifest
from serverless_pypi.core.names import InvalidFilename, NormalizedName, parse_distribution_filename
from serverless_pypi.index.reader import IndexReader
from serverless_pypi.repository.base import (
    CoreMetadata,
    Download,
    PageUnchanged,
    ProjectList,
    ProjectPage,
    ProvenanceObject,
    Redirect,
    Repository,
    StoredPage,
)
from serverless_pypi.storage.base import NotFound, NotModified, Store

__all__ = ["FOLDERS_TRUST_SECONDS", "StoreRepository"]

#: how long the listing of the store's project folders is used to tell which names it owns
#: (for the projects never indexed: a published project has a manifest, always read afresh)
FOLDERS_TRUST_SECONDS = 5.0
#: names remembered as owned, per process
_OWNED_KEPT = 65536


class StoreRepository(Repository):
    """What the store holds, served as the index: `url_ttl` is the lifetime of the store's
    download URLs (presigned S3 URLs), seconds."""

    def __init__(self, store: Store, *, url_ttl: int = 900) -> None:
        self.reader = IndexReader(store)
        self.url_ttl = url_ttl
        self.location = store.location
        # (when listed: time.monotonic(), the names of the project folders)
        self._folders: tuple[float, frozenset[NormalizedName]] | None = None
        # names found owned: a project stays the store's (bounded)
        self._owned: dict[NormalizedName, None] = {}

    def owns(self, name: NormalizedName) -> bool:
        """Whether the store has, or had, files of the project: it has a manifest (even one
        that serves nothing any more), or, never indexed, a folder with a distribution of it.

        Until a name is found owned, the manifest is read every time (one GET): a name never
        becomes the store's later than its first upload; once owned it is remembered (a
        project stays private). The folder listing (one request per page of folders) is
        reused for FOLDERS_TRUST_SECONDS.
        """
        if name in self._owned:
            return True
        if self.reader.manifest(name) is None and not self._live(name):
            return False
        if len(self._owned) >= _OWNED_KEPT:
            self._owned.clear()  # atomic (threads): they are found again
        self._owned[name] = None
        return True

    def _live(self, name: NormalizedName) -> bool:
        """Whether a folder of the store (never indexed) holds a distribution of `name`."""
        return self._may_have_folder(name) and self.reader.live_manifest(name) is not None

    def _may_have_folder(self, name: NormalizedName) -> bool:
        """Whether the store's root has a folder of `name`, from a listing at most
        FOLDERS_TRUST_SECONDS old: a name absent from it costs no request (a project unknown
        here, the common case behind an upstream or a fallback), a name in it is listed
        afresh."""
        listed = self._folders
        now = time.monotonic()
        if listed is None or now - listed[0] > FOLDERS_TRUST_SECONDS:
            listed = (now, frozenset(self.reader.project_folders()))
            self._folders = listed
        return name in listed[1]

    def project_list(self) -> ProjectList:
        """The index's project list (`projects.json`), else the live project folders.

        The store's `index.html` is never served: one left by the reference module links
        un-normalized folders (`My_Pkg`, `my.pkg`) where the JSON list names `my-pkg`.
        """
        found = self.reader.project_names()
        if found is None:
            return ProjectList(frozenset(self.reader.project_folders()))
        return ProjectList(frozenset(found[0]), found[1])

    def project_page(
        self, name: NormalizedName, *, json: bool, if_none_match: IfNoneMatch | None
    ) -> ProjectPage:
        # only one bounded, well-formed ASCII tag is passed on for the store to compare (S3
        # answers 400 to an oversized or odd one); a list or `*` is compared by the web layer
        store_etag = if_none_match.single_tag() if if_none_match is not None else None
        try:
            blob = self.reader.page(name, json=json, if_none_match=store_etag)
        except NotModified:
            return PageUnchanged(store_etag or '""')
        if blob is not None:
            return StoredPage(
                blob.data, blob.etag, partial(self._page_redirect, name, json), blob.last_modified
            )
        index = self._manifest(name)
        if index is None:
            raise NoSuchProject(f"No project named {name!r} on this index.")
        # a manifest that serves nothing is still this index's project: the web layer says
        # so, and no wrapper sends it elsewhere
        return index

    def _page_redirect(self, name: NormalizedName, json: bool, method: str) -> Redirect | None:
        try:
            served = self.reader.deliver_page(name, json=json, method=method, expires=self.url_ttl)
        except NotFound:
            return None
        return served if isinstance(served, Redirect) else None

    def _manifest(self, name: NormalizedName) -> Manifest | None:
        """The project's files when it has no precomputed page: its manifest, else a listing.

        A project with a manifest is served from it alone, even when it lists nothing: a
        publisher writes the manifest before any bytes, so a file is never listed before its
        record (or after the indexer refused it). Only a project never indexed at all is
        listed live; a folder copied into a store never indexed appears within
        FOLDERS_TRUST_SECONDS (the root listing is reused that long; the indexer's manifest,
        written on the copy's event, is read at once).
        """
        index = self.reader.manifest(name)
        if index is not None or not self._may_have_folder(name):
            return index
        return self.reader.live_manifest(name)

    def locate(self, name: NormalizedName, filename: str, method: str) -> Download:
        """Where a served distribution of the project lives, as the store serves it.

        Only a wheel or sdist of this project is ever served (never `credentials.json` or
        other objects in its folders). For a project with a manifest: its record, unless the
        indexer refused the file (the manifest from memory while the reader trusts it, else
        one conditional GET of it; no HEAD of the file).
        For a project never indexed: its own folder (one HEAD), else its un-normalized ones.
        """
        missing = NoSuchFile(f"No file {filename!r} in project {name!r}.")
        try:
            dist = parse_distribution_filename(filename)
        except InvalidFilename:
            raise missing from None
        if dist.project != name:
            raise missing
        index = self.reader.manifest(name, having=filename)
        if index is not None:
            record = index.files.get(filename)
            if record is None or record.problem is not None:
                raise missing
            key = record.key
        else:
            info = self.reader.unindexed_file(name, filename)
            if info is None:
                raise missing
            key = info.key
        try:
            # a redirect (S3), or the file as it is now: its size and etag (a directory)
            return self.reader.deliver(key, method, self.url_ttl)
        except NotFound:
            raise missing from None

    def metadata(self, name: NormalizedName, filename: str) -> CoreMetadata:
        blob = self.reader.metadata(name, filename)
        if blob is None:
            raise NoSuchFile(f"No core metadata for {filename!r} in project {name!r}.")
        return CoreMetadata(blob.data, blob.etag, blob.last_modified)

    def provenance(self, name: NormalizedName, filename: str) -> ProvenanceObject:
        blob = self.reader.provenance(name, filename)
        if blob is None:
            raise NoSuchFile(f"No provenance (PEP 740) for {filename!r} in project {name!r}.")
        return ProvenanceObject(blob.data, blob.etag, blob.last_modified)
