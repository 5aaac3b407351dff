"""The index's derived data in a store, and the only code that writes it.

Every read-modify-write of a source-of-truth document (a project's manifest, the project
list) is a compare-and-swap: read with its etag, change, write with `If-Match` (or
`If-None-Match: *` for a new one), and start over when another writer got there first.
Nothing is ever dropped by two writers racing.

Rendered objects (pages, `index.html`) are caches of a document. After writing them, the
writer checks that the document still has the etag it rendered; if not, it renders again.
The last writer of a rendering therefore always saw the newest document. And every write
path, even one that changed nothing (an identical re-upload, a repeated event), ends by
comparing the renderings with what the documents render now (`Catalog.converge`): a writer
that failed between the document and its renderings is repaired by the next one, or by its
own retry.

Nothing else in the index writes derived data: the indexer, publish and curation change a
manifest through `update_project` (whose `change` returns a `Change`: what it computed, and
whether to write), and delete what derives from a file through the methods below. The read
side used for serving is `serverless_pypi.index.reader`; tokens are `serverless_pypi.index.tokens`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from serverless_pypi.core.http import compress
from serverless_pypi.core.model import Manifest
from serverless_pypi.core.names import NormalizedName, is_valid_project_name, normalize_project_name
from serverless_pypi.core.negotiate import Format
from serverless_pypi.core.render import project_page, render_html, render_json, root_page
from serverless_pypi.index import layout
from serverless_pypi.index.change import Change
from serverless_pypi.index.reader import project_folders
from serverless_pypi.storage import NotFound, Store
from serverless_pypi.storage.swap import MAX_ATTEMPTS, Contention, compare_and_swap, swap

__all__ = ["Catalog", "Change", "Contention", "rendered_pages"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def rendered_pages(index: Manifest) -> dict[str, tuple[bytes | None, Format]]:
    """The project's page objects, gzip-compressed, by key (None: the page must not exist)."""
    page = project_page(index) if index.served() else None
    pages: dict[str, tuple[bytes | None, Format]] = {}
    for fmt in (Format.JSON_V1, Format.HTML):
        key = layout.page_key(index.name, json=fmt.is_json)
        if page is None:
            pages[key] = (None, fmt)
        else:
            body = render_json(page) if fmt.is_json else render_html(page)
            pages[key] = (compress(body), fmt)
    return pages


class Catalog:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reads ------------------------------------------------------------------------
    def read_project(self, name: NormalizedName) -> tuple[Manifest, str | None]:
        """The project's manifest and its etag (None when there is none yet)."""
        try:
            blob = self.store.get(layout.manifest_key(name))
        except NotFound:
            return Manifest(name), None
        return Manifest.from_bytes(blob.data), blob.etag

    def read_project_names(self) -> tuple[set[str], str | None]:
        """The project list and its etag (None when the store has none yet)."""
        try:
            blob = self.store.get(layout.ROOT_LIST)
        except NotFound:
            return set(), None
        return set(json.loads(blob.data)["projects"]), blob.etag

    def manifest_names(self) -> set[NormalizedName]:
        """The projects that have a manifest."""
        names: set[NormalizedName] = set()
        for info in self.store.list(layout.MANIFESTS):
            stem = info.key.removeprefix(layout.MANIFESTS).removesuffix(".json")
            if is_valid_project_name(stem):
                names.add(normalize_project_name(stem))
        return names

    def metadata_files(self) -> dict[NormalizedName, list[str]]:
        """The keys of the core metadata files in the store, by project (key names only:
        small even at 100,000 files)."""
        found: dict[NormalizedName, list[str]] = {}
        for info in self.store.list(layout.METADATA):
            project, _, rest = info.key.removeprefix(layout.METADATA).partition("/")
            if rest and is_valid_project_name(project):
                found.setdefault(normalize_project_name(project), []).append(info.key)
        return found

    def project_folders(self) -> dict[NormalizedName, list[str]]:
        """Folders at the store's root that hold projects, by normalized name."""
        return project_folders(self.store)

    # -- compare-and-swap -------------------------------------------------------------
    def update_project(
        self,
        name: NormalizedName,
        change: Callable[[Manifest], Change[T]],
        *,
        root: bool = True,
    ) -> T:
        """Apply `change` to the project's manifest atomically and refresh what derives from it;
        return what the change computed (`Change.result`, of the attempt that settled).

        `change` edits the manifest it is given in place and says in its `Change` whether to
        write it. It may run several times (once per attempt, each with the manifest as read
        then), so it must depend only on its argument and on reads of the store. Whether or
        not it wrote anything, the pages and root lists end in line with the manifest
        (`converge`).
        """

        def apply(data: bytes | None) -> tuple[bytes | None, T]:
            index = Manifest.from_bytes(data) if data is not None else Manifest(name)
            outcome = change(index)
            return (index.to_bytes() if outcome.write else None), outcome.result

        result, written = swap(self.store, layout.manifest_key(name), apply)
        # written or not: an earlier writer may have failed before its renderings were done
        self.converge(name, rewrite=written, root=root)
        return result

    def create_project(self, name: NormalizedName) -> bool:
        """Write an empty manifest for a project that has none (`If-None-Match: *`).

        A publisher does this before it writes any bytes: a project with a manifest is listed
        from it alone, so its bytes never show on a page before their record.
        """

        def apply(data: bytes | None) -> bytes | None:
            return Manifest(name).to_bytes() if data is None else None

        return compare_and_swap(self.store, layout.manifest_key(name), apply)

    def converge(self, name: NormalizedName, *, rewrite: bool = False, root: bool = True) -> None:
        """Bring the project's pages and the root lists in line with its manifest.

        Every write path ends here, so a retry (or a repeated event) repairs what a failed
        store write left behind. The renderings are deterministic, so the check is a
        comparison of what is stored with what the manifest renders; only what differs is
        written. `rewrite` writes the pages without comparing (the manifest just changed);
        `root=False` leaves the root lists to the caller (a full reindex settles them once).
        """
        index, etag = self.refresh_pages(name, compare=not rewrite)
        if root:
            self._converge_root(name, index, manifest_exists=etag is not None)

    def _converge_root(
        self, name: NormalizedName, index: Manifest, *, manifest_exists: bool
    ) -> None:
        """Membership of `name` in `projects.json`, and `index.html` rendered from that list."""
        names, etag = self.read_project_names()
        served = bool(index.served())
        # the same rule as refresh_root: listed when served, dropped only if it has a manifest
        if (served and name not in names) or (not served and manifest_exists and name in names):
            self.refresh_root([name])
            return
        if etag is None:
            return  # no list of ours yet, and nothing to add to one
        try:
            current = self.store.get(layout.ROOT_HTML).data == render_html(root_page(names))
        except NotFound:
            current = False
        if not current:
            self.refresh_root_html()

    def _swap_root(self, names: Callable[[set[str] | None], set[str]]) -> None:
        """Set the project list to `names(current list or None)`; rewrite index.html after."""

        def apply(data: bytes | None) -> bytes | None:
            current = set(json.loads(data)["projects"]) if data is not None else None
            wanted = names(current)
            if wanted == current:
                return None
            return json.dumps({"projects": sorted(wanted)}, separators=(",", ":")).encode()

        compare_and_swap(self.store, layout.ROOT_LIST, apply)
        self.refresh_root_html()

    def refresh_root(self, touched: Iterable[NormalizedName]) -> None:
        """Bring the project list up to date for the projects in `touched`."""
        touched = list(touched)

        def names(current: set[str] | None) -> set[str]:
            # first list in this store: start from every project folder already there
            wanted: set[str] = set(current if current is not None else self.project_folders())
            # the manifests are read after the list, so a concurrent change retries the swap
            for name in touched:
                index, manifest_etag = self.read_project(name)
                if index.served():
                    wanted.add(name)
                elif manifest_etag is not None:
                    wanted.discard(name)
            return wanted

        self._swap_root(names)

    def write_root(self, names: Iterable[str]) -> None:
        """Set the project list to what a full reindex found, without undoing concurrent work.

        The reindex listed the store a while ago: a project it saw empty may have gained a file
        since, and one it saw may have lost its last. Each name where the list and the
        reindex disagree is settled by reading its manifest now.
        """
        found = {NormalizedName(n) for n in names}

        def settle(current: set[str] | None) -> set[str]:
            current = current or set()
            wanted = current & found
            for name in current ^ found:
                index, etag = self.read_project(NormalizedName(name))
                if index.served() or (etag is None and name in found):
                    wanted.add(name)
            return wanted

        self._swap_root(settle)

    # -- renderings -------------------------------------------------------------------
    def _render_until_current(self, source: str, render: Callable[[], str | None]) -> None:
        """Run `render` (which returns the source etag it rendered) until it saw the newest."""
        for _ in range(MAX_ATTEMPTS):
            rendered = render()
            current = self.store.find(source)
            if (current.etag if current else None) == rendered:
                return
        raise Contention(f"{source!r} kept changing while its renderings were written")

    def refresh_pages(
        self, name: NormalizedName, *, compare: bool = False
    ) -> tuple[Manifest, str | None]:
        """Rewrite the project's HTML and JSON pages from its manifest; return the manifest
        (and its etag) they were rendered from.

        With `compare`, a page is written only when the stored one differs (one GET each);
        when none differs, nothing is written and no re-check is needed.
        """
        for _ in range(MAX_ATTEMPTS):
            index, etag = self.read_project(name)
            if not self._write_pages(index, compare=compare):
                return index, etag
            current = self.store.find(layout.manifest_key(name))
            if (current.etag if current else None) == etag:
                return index, etag
        raise Contention(f"the manifest of {name!r} kept changing while its pages were written")

    def stale_pages(self, index: Manifest) -> dict[str, tuple[bytes | None, Format]]:
        """The pages of `index` whose stored object differs from what it renders now (one GET
        each), by key, with what `refresh_pages` would write there."""
        stale: dict[str, tuple[bytes | None, Format]] = {}
        for key, (body, fmt) in rendered_pages(index).items():
            try:
                stored: bytes | None = self.store.get(key).data
            except NotFound:
                stored = None
            if stored != body:
                stale[key] = (body, fmt)
        return stale

    def _write_pages(self, index: Manifest, *, compare: bool) -> bool:
        """Write (or delete) the pages of `index`; returns whether anything was written."""
        pages = self.stale_pages(index) if compare else rendered_pages(index)
        for key, (body, fmt) in pages.items():
            if body is None:
                self.store.delete(key)
            else:
                self.store.put(key, body, content_type=fmt.content_type, content_encoding="gzip")
        return bool(pages)

    def refresh_root_html(self) -> None:
        """Rewrite `index.html` at the store's root (the reference layout's project list)."""

        def render() -> str | None:
            names, etag = self.read_project_names()
            if etag is None:
                return None  # no list of ours yet: a reference module's index.html stays as it is
            body = render_html(root_page(names))
            try:
                unchanged = self.store.get(layout.ROOT_HTML).data == body
            except NotFound:
                unchanged = False
            if not unchanged:
                self.store.put(layout.ROOT_HTML, body, content_type=Format.HTML.content_type)
            return etag

        self._render_until_current(layout.ROOT_LIST, render)

    # -- core metadata files ----------------------------------------------------------
    def write_metadata(self, name: NormalizedName, filename: str, data: bytes) -> None:
        self.store.put(
            layout.metadata_key(name, filename), data, content_type="application/octet-stream"
        )

    def delete_metadata(self, name: NormalizedName, filename: str) -> None:
        self.store.delete(layout.metadata_key(name, filename))

    # -- PEP 740 provenance objects ---------------------------------------------------
    def write_provenance(self, name: NormalizedName, filename: str, data: bytes) -> None:
        self.store.put(layout.provenance_key(name, filename), data, content_type="application/json")

    def read_provenance(self, name: NormalizedName, filename: str) -> bytes | None:
        """The stored provenance object of the project's file, None when there is none."""
        try:
            return self.store.get(layout.provenance_key(name, filename)).data
        except NotFound:
            return None

    def delete_provenance(self, name: NormalizedName, filename: str) -> None:
        self.store.delete(layout.provenance_key(name, filename))

    def delete_metadata_files(self, keys: Iterable[str]) -> None:
        """Delete core metadata files by key (orphans `metadata_files` listed)."""
        for key in keys:
            if not key.startswith(layout.METADATA):
                raise ValueError(f"{key!r} is not a core metadata file")
            self.store.delete(key)
