"""Keeping derived data current: one key at a time (events) or the whole store (reindex).

Both paths are level-triggered: an event only names a key, and the indexer looks at what the
store holds *now*. Duplicated, reordered, late or stale events therefore converge on what a
full reindex writes. Every change to a manifest goes through `Catalog.update_project`
(compare-and-swap), and merges with what is there: a record is replaced only by a record of
the bytes the store holds, and dropped only when its object is gone.

A full reindex first plans each project (`ProjectPlan`: the files to index, the records to
drop, the orphaned metadata files, whether its pages are stale) and then applies the plan;
`reindex(check=True)` is the plan alone, so it never writes.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

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
from serverless_pypi.index.catalog import Catalog, Change
from serverless_pypi.index.records import derive_from_store, record_for, stored_provenance
from serverless_pypi.storage import NotFound, ObjectInfo, PreconditionFailed, Store

__all__ = [
    "Indexer",
    "Outcome",
    "ProjectPlan",
    "Renderings",
    "Report",
    "being_published",
    "classify_key",
]

log = logging.getLogger(__name__)

_MAX_ROUNDS = 10
_BEING_PUBLISHED = "its release is being published"


@dataclass(frozen=True, slots=True)
class Outcome:
    key: str
    action: Literal["indexed", "removed", "unchanged", "skipped"]
    reason: str = ""


def classify_key(key: str) -> tuple[NormalizedName, Distribution] | str:
    """The project and distribution a key holds, or why it is not indexed."""
    if layout.is_derived(key):
        return "derived data written by the index itself"
    split = layout.split_key(key)
    if split is None:
        return "not a <project>/<file> key one level deep"
    folder, filename = split
    if not is_valid_project_name(folder):
        return f"folder {folder!r} is not a valid project name"
    try:
        dist = parse_distribution_filename(filename)
    except InvalidFilename as e:
        return str(e)
    name = normalize_project_name(folder)
    if dist.project != name:
        return f"the file names project {dist.project!r} but lies in folder {folder!r}"
    return name, dist


def being_published(store: Store, name: NormalizedName, dists: Iterable[Distribution]) -> set[str]:
    """The file names of `dists` that a publish marker names (`index.release`): a release
    being published appears in one manifest update, so no record is added for its copies
    one by one (and no other upload takes one of its names: PEP 694's reservation). Read
    after the object was seen: its marker was written before the copy."""
    markers: dict[str, list[object]] = {}
    found: set[str] = set()
    for dist in dists:
        version = str(dist.version)
        if version not in markers:
            try:
                document = json.loads(store.get(layout.publishing_key(name, version)).data)
                files = document.get("files") if isinstance(document, dict) else None
                markers[version] = files if isinstance(files, list) else []
            except NotFound:
                markers[version] = []
            except ValueError:
                log.warning("unreadable publish marker of %s %s", name, version)
                markers[version] = []
        if dist.filename in markers[version]:
            found.add(dist.filename)
    return found


def _merge(current: FileRecord | None, record: FileRecord) -> FileRecord:
    """`record` with what only the index knows: yank state, and the first upload time."""
    if current is None:
        return record
    changes: dict[str, object] = {"yanked": current.yanked}
    if current.sha256 == record.sha256:
        changes["upload_time"] = current.upload_time
    return record.with_changes(**changes)


@dataclass
class Report:
    """What a full reindex found (and, unless checking, fixed)."""

    projects: int = 0
    files: int = 0
    indexed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    stale_pages: list[str] = field(default_factory=list)
    root_changed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def drift(self) -> bool:
        return bool(
            self.indexed or self.removed or self.orphans or self.stale_pages or self.root_changed
        )

    def add(self, other: Report) -> None:
        with self._lock:
            self.projects += other.projects
            self.files += other.files
            self.indexed += other.indexed
            self.removed += other.removed
            self.skipped += other.skipped
            self.orphans += other.orphans
            self.stale_pages += other.stale_pages


@dataclass(frozen=True, slots=True)
class Renderings:
    """What derives from a project's records and differs from them in the store."""

    #: core metadata files (keys) that no record of the manifest promises
    orphans: list[str]
    #: whether the stored pages differ from what the manifest renders
    stale_pages: bool


@dataclass(frozen=True, slots=True)
class ProjectPlan:
    """What a full reindex finds to do for one project, before it does any of it."""

    #: the project's manifest, as read when planning
    index: Manifest
    #: its distributions in the store (one per distribution identity)
    files: int
    #: the files to (re)index, by file name: new, changed, or promising a lost metadata file
    to_index: dict[str, tuple[ObjectInfo, Distribution]]
    #: records of objects that are gone (file name -> key)
    stale: dict[str, str]
    #: records that lose to a rival holding the same distribution (file name -> key)
    demoted: dict[str, str]
    #: keys not indexed, and why (including files recorded with a problem)
    skipped: list[tuple[str, str]]
    #: the project's core metadata files in the store, as listed when the reindex began
    metadata_keys: list[str]
    #: the metadata files and pages out of line with `index`
    renderings: Renderings

    @property
    def name(self) -> NormalizedName:
        return self.index.name

    @property
    def changes_records(self) -> bool:
        return bool(self.to_index or self.stale or self.demoted)

    def report(self) -> Report:
        return Report(
            projects=1,
            files=self.files,
            indexed=[info.key for info, _dist in self.to_index.values()],
            removed=list(self.stale.values()) + list(self.demoted.values()),
            skipped=list(self.skipped),
            orphans=list(self.renderings.orphans),
            stale_pages=[self.name] if self.renderings.stale_pages else [],
        )

    def listed(self) -> bool:
        """Whether the project belongs in the project list once the plan is applied."""
        return bool(self.index.served() or self.files)


class Indexer:
    def __init__(self, store: Store, *, workers: int = 8) -> None:
        self.store = store
        self.catalog = Catalog(store)
        self.workers = max(1, workers)

    # -- one key (events) -----------------------------------------------------------------
    def index_key(self, key: str) -> Outcome:
        """Bring the derived data of one key in line with the store."""
        classified = classify_key(key)
        if isinstance(classified, str):
            if not layout.is_derived(key):
                log.warning("skipped %r: %s", key, classified)
                self._converge_folder(key)
            return Outcome(key, "skipped", classified)
        name, dist = classified
        for _ in range(_MAX_ROUNDS):
            info = self.store.find(key)
            if info is None:
                outcome = self._remove(name, dist.filename, key)
            else:
                try:
                    outcome = self._index(name, dist, info)
                except PreconditionFailed:
                    continue  # the object changed while we read it: look again
            # the object may have changed while we worked: done only if it still matches
            now = self.store.find(key)
            if (now.etag if now else None) == (info.etag if info else None):
                return outcome
        return Outcome(key, "skipped", "the object kept changing; the next event or reindex will")

    def _converge_folder(self, key: str) -> None:
        """Every event ends with its project's renderings in line, even for a key not indexed."""
        split = layout.split_key(key)
        if split is not None and is_valid_project_name(split[0]):
            self.catalog.converge(normalize_project_name(split[0]))

    def _remove(self, name: NormalizedName, filename: str, key: str) -> Outcome:
        def drop(project: Manifest) -> Change[bool]:
            current = project.files.get(filename)
            if current is None or current.key != key:
                return Change(False, write=False)
            del project.files[filename]
            return Change(True)

        if self.catalog.update_project(name, drop):
            self.catalog.delete_metadata(name, filename)
            self.catalog.delete_provenance(name, filename)
            return Outcome(key, "removed")
        return Outcome(key, "unchanged", "no such object and no record of it")

    def _rival(self, index: Manifest, dist: Distribution, key: str) -> FileRecord | None:
        """The file served instead of `key`: the same distribution under another name."""
        return next((r for r in index.rivals(dist.filename, key) if self.store.find(r.key)), None)

    def _conflict(self, name: NormalizedName, dist: Distribution, key: str, rival: str) -> Outcome:
        """Serve `rival`, not `key`: one file per distribution identity (drop a record of `key`)."""
        reason = f"conflict: the same distribution as {rival!r}, which the index lists"
        log.warning("not serving %r: %s", key, reason)
        self._remove(name, dist.filename, key)
        return Outcome(key, "skipped", reason)

    def _index(self, name: NormalizedName, dist: Distribution, info: ObjectInfo) -> Outcome:
        if being_published(self.store, name, [dist]):
            return Outcome(info.key, "skipped", _BEING_PUBLISHED)
        index, _ = self.catalog.read_project(name)
        if listed := self._rival(index, dist, info.key):
            return self._conflict(name, dist, info.key, listed.key)
        if settled := self._settled(name, index.files.get(dist.filename), info):
            return settled
        record = self._derive(name, dist, info)

        def put(project: Manifest) -> Change[FileRecord | None]:
            """The rival listed meanwhile under another name, if any (then nothing changes)."""
            if rival := self._rival(project, dist, info.key):
                return Change(rival, write=False)
            existing = project.files.get(dist.filename)
            merged = _merge(existing, record)
            if existing == merged:
                return Change(None, write=False)
            project.files[dist.filename] = merged
            return Change(None)

        rival = self.catalog.update_project(name, put)
        if rival is not None:
            if dist.filename not in self.catalog.read_project(name)[0].files:
                self.catalog.delete_metadata(name, dist.filename)  # _derive wrote it
            return self._conflict(name, dist, info.key, rival.key)
        if record.problem:
            return Outcome(info.key, "skipped", record.problem)
        return Outcome(info.key, "indexed")

    def _settled(
        self, name: NormalizedName, current: FileRecord | None, info: ObjectInfo
    ) -> Outcome | None:
        """The outcome when the record of the file name (`current`) leaves nothing to derive."""
        if current is None:
            return None
        if current.key != info.key:
            # the same file name in two folders of one project: the listed one stays
            if self.store.find(current.key) is None:
                return None
            reason = f"duplicate of {current.key!r}, which the index already lists"
            log.warning("skipped %r: %s", info.key, reason)
            self.catalog.converge(name)
            return Outcome(info.key, "skipped", reason)
        if current.etag == info.etag and current.sha256:
            # a repeated event: the record is current, its renderings may not be
            self.catalog.converge(name)
            return Outcome(info.key, "unchanged")
        return None

    def _derive(self, name: NormalizedName, dist: Distribution, info: ObjectInfo) -> FileRecord:
        """Hash and inspect the object, and store its core metadata file (or drop a stale one);
        a PEP 740 provenance object stored for these bytes is kept in the record."""
        derived = derive_from_store(self.catalog, info, dist)
        if derived.problem:
            log.warning("not serving %r: %s", info.key, derived.problem)
        elif derived.inspection.note:
            log.info("listing %r without core metadata: %s", info.key, derived.inspection.note)
        metadata = derived.inspection.metadata
        if metadata is not None:
            self.catalog.write_metadata(name, dist.filename, metadata)
        else:
            self.catalog.delete_metadata(name, dist.filename)
        provenance = stored_provenance(self.catalog, name, dist.filename, derived.sha256)
        return record_for(
            info, derived, format_upload_time(info.last_modified), provenance_sha256=provenance
        )

    # -- the whole store ------------------------------------------------------------------
    def reindex(
        self, *, check: bool = False, progress: Callable[[int], None] | None = None
    ) -> Report:
        """Rebuild every project's derived data, or with `check` only plan it: the report of
        what the plans found, and nothing written.

        Memory stays bounded: projects are planned and applied a few at a time, each from its
        own listing, and no file's bytes are held beyond the one being hashed.
        """
        report = Report()
        folders = self.catalog.project_folders()
        names = set(folders) | self.catalog.manifest_names()
        listed: set[str] = set()
        listed_lock = threading.Lock()
        metadata = self.catalog.metadata_files()
        pending: list[Future[None]] = []
        limit = threading.BoundedSemaphore(self.workers * 2)

        def work(name: NormalizedName, metadata_keys: list[str]) -> None:
            try:
                plan = self.plan_project(name, folders.get(name, []), metadata_keys)
                project_report, served = (
                    (plan.report(), plan.listed()) if check else self.apply_plan(plan)
                )
                report.add(project_report)
                if served:
                    with listed_lock:
                        listed.add(name)
                if progress is not None:
                    progress(1)
            finally:
                limit.release()

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for name in sorted(names | set(metadata), key=lambda n: n + "/"):
                limit.acquire()
                pending.append(pool.submit(work, name, metadata.get(name, [])))
                for future in [f for f in pending if f.done()]:
                    future.result()  # a failed project stops the reindex with its error
                pending = [f for f in pending if not f.done()]
        for future in pending:
            future.result()
        current, etag = self.catalog.read_project_names()
        report.root_changed = etag is None or current != listed
        if check:
            return report
        self.catalog.write_root(listed)
        return report

    def _listing(
        self,
        folders: Iterable[str],
        current: Manifest,
        skipped: list[tuple[str, str]],
    ) -> tuple[dict[str, tuple[ObjectInfo, Distribution]], dict[str, str]]:
        """The project's distributions in the store, by file name, and the listed records
        (file name -> key) to drop as conflicts; keys not indexed go to `skipped`.

        One key per distribution identity is served (see `Identity`: the same file name in two
        folders, or `Acme_X-5.0-...` beside `acme_x-5.0-...`): the one the index already
        lists (the first in key order when it lists several), else the first in key order,
        as `index_key` decides.
        """
        found: dict[Identity, list[tuple[ObjectInfo, Distribution]]] = {}
        for folder in sorted(folders):
            for info in self.store.list(folder + "/"):
                classified = classify_key(info.key)
                if isinstance(classified, str):
                    skipped.append((info.key, classified))
                    log.warning("skipped %r: %s", info.key, classified)
                    continue
                found.setdefault(classified[1].identity, []).append((info, classified[1]))
        chosen: dict[str, tuple[ObjectInfo, Distribution]] = {}
        demoted: dict[str, str] = {}
        for candidates in found.values():

            def listed(candidate: tuple[ObjectInfo, Distribution]) -> bool:
                record = current.files.get(candidate[1].filename)
                return record is not None and record.key == candidate[0].key

            keep = next(filter(listed, candidates), candidates[0])
            chosen[keep[1].filename] = keep
            for info, dist in candidates:
                if info is keep[0]:
                    continue
                if dist.filename == keep[1].filename:
                    reason = f"duplicate of {keep[0].key!r}"
                else:
                    reason = f"conflict: the same distribution as {keep[0].key!r}"
                    log.warning("not serving %r: %s", info.key, reason)
                    if listed((info, dist)):
                        demoted[dist.filename] = info.key
                skipped.append((info.key, reason))
        return chosen, demoted

    def plan_project(
        self, name: NormalizedName, folders: list[str], metadata_keys: list[str]
    ) -> ProjectPlan:
        """What a reindex of the project would do, from its folders' listing, its manifest and
        its metadata files (`metadata_keys`); reads only (no file's bytes), writes nothing."""
        index, _ = self.catalog.read_project(name)
        skipped: list[tuple[str, str]] = []
        listing, demoted = self._listing(folders, index, skipped)
        have_metadata = set(metadata_keys)
        to_index: dict[str, tuple[ObjectInfo, Distribution]] = {}
        for filename, (info, dist) in listing.items():
            current = index.files.get(filename)
            if (
                current is not None
                and current.key == info.key
                and current.etag == info.etag
                and current.sha256
                # a record that promises a metadata file the store lost is rebuilt
                and (
                    not current.metadata_sha256
                    or layout.metadata_key(name, filename) in have_metadata
                )
            ):
                if current.problem:
                    skipped.append((info.key, current.problem))
                continue
            to_index[filename] = (info, dist)
        for filename in being_published(self.store, name, [d for _i, d in to_index.values()]):
            skipped.append((to_index.pop(filename)[0].key, _BEING_PUBLISHED))
        stale = {
            filename: record.key
            for filename, record in index.files.items()
            if filename not in listing and self.store.find(record.key) is None
        }
        return ProjectPlan(
            index=index,
            files=len(listing),
            to_index=to_index,
            stale=stale,
            demoted=demoted,
            skipped=skipped,
            metadata_keys=metadata_keys,
            renderings=self._renderings(index, metadata_keys),
        )

    def _renderings(self, index: Manifest, metadata_keys: list[str]) -> Renderings:
        wanted = {
            layout.metadata_key(index.name, r.filename)
            for r in index.files.values()
            if r.metadata_sha256
        }
        orphans = [key for key in metadata_keys if key not in wanted]
        return Renderings(orphans, bool(self.catalog.stale_pages(index)))

    def apply_plan(self, plan: ProjectPlan) -> tuple[Report, bool]:
        """Carry out `plan`: index its files, drop its stale records, then bring the metadata
        files and pages in line. Returns what was done, and whether the project is served.

        The metadata files and pages derive from the records: when the records change, they
        are planned again from the manifest as written (a file indexed again may have gained
        or lost its metadata; a dropped record leaves its metadata file orphaned).
        """
        name = plan.name
        report = plan.report()
        index, renderings = plan.index, plan.renderings
        if plan.changes_records:
            fresh: dict[str, FileRecord] = {}
            for filename, (info, dist) in plan.to_index.items():
                try:
                    fresh[filename] = record = self._derive(name, dist, info)
                except (PreconditionFailed, NotFound):
                    # replaced (or deleted) while we hashed it: its own event indexes it
                    report.indexed.remove(info.key)
                    continue
                if record.problem:
                    report.skipped.append((info.key, record.problem))
            if fresh or plan.stale or plan.demoted:
                # the root lists are settled once, at the end of the reindex (write_root)
                change = _reconcile(self.store, fresh, plan.stale, plan.demoted)
                self.catalog.update_project(name, change, root=False)
            index, _ = self.catalog.read_project(name)
            renderings = self._renderings(index, plan.metadata_keys)
            report.orphans = list(renderings.orphans)
            report.stale_pages = [name] if renderings.stale_pages else []
        self.catalog.delete_metadata_files(renderings.orphans)
        if renderings.stale_pages:
            self.catalog.refresh_pages(name)
        return report, bool(index.served())


def _reconcile(
    store: Store,
    fresh: dict[str, FileRecord],
    stale: dict[str, str],
    demoted: dict[str, str] | None = None,
) -> Callable[[Manifest], Change[None]]:
    """A manifest change that applies a reindex without undoing concurrent updates.

    `demoted` records (file name -> key) are dropped while a rival still holds their
    distribution (`Manifest.rivals`).
    """

    def etag_now(key: str) -> str | None:
        info = store.find(key)
        return info.etag if info else None

    def change(project: Manifest) -> Change[None]:
        changed = False
        for filename, record in fresh.items():
            current = project.files.get(filename)
            if (
                current is not None
                and current.etag != record.etag
                and current.key == record.key
                and etag_now(record.key) != record.etag
            ):
                continue  # somebody indexed newer bytes than ours
            merged = _merge(current, record)
            if merged != current:
                project.files[filename] = merged
                changed = True
        for filename, key in stale.items():
            current = project.files.get(filename)
            if current is not None and current.key == key and etag_now(key) is None:
                del project.files[filename]
                changed = True
        for filename, key in (demoted or {}).items():
            current = project.files.get(filename)
            rivals = project.rivals(filename, key) if current and current.key == key else []
            if any(store.find(r.key) for r in rivals):
                del project.files[filename]
                changed = True
        return Change(None, write=changed)

    return change
