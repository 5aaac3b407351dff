"""The upstream index (PyPI, or any PEP 691 / PEP 503 index) served as this index's own.

`proxy` and `mirror` modes. A project's page is the upstream's, fetched as PEP 691 JSON when
the upstream offers it, cached in the store with the upstream's ETag and the fetch time, and
served as this index renders pages: the upstream's hashes, sizes, `upload-time` (exactly),
`requires-python`, yanked state and core metadata hashes, with links to this index's own
`<project>/<file>` URLs, so lockfiles record this index and every download passes through it.

- Revalidation: a page is served from memory (else the store) for `ttl` seconds after the
  upstream last confirmed it, then revalidated with a conditional request (If-None-Match with
  the upstream's ETag, RFC 9110 section 13.1.2). A 304 only moves the confirmation time, in
  memory (no store write); a 200 replaces the cached page, and the copies and metadata of
  files it no longer lists are deleted: a file removed upstream (malware) is no longer listed
  nor served, a file yanked upstream is yanked here (PEP 592).
- Availability: with the upstream unreachable or failing, the last good page is served (stale
  if error, RFC 5861's idea); a project never cached answers 404 at once. While the upstream
  is down it is asked again at most every `retry` seconds, by one request; the outage is
  logged once when it starts and once when it ends, not per request.
- Downloads: `proxy` redirects to the upstream's file URL; `mirror` serves the verified copy
  in the store when there is one, else redirects and asks the `Puller` to copy the file (a
  file listed without a sha256 is never copied: it could not be verified).
- Core metadata (PEP 658 / PEP 714) is advertised only when the index can serve it: fetched
  from the upstream at the first request, checked against the sha256 the page lists (a
  mismatch is refused and logged), kept in the store and served from it after. A page served
  stale during an outage advertises only the metadata files the store holds.

Concurrent requests for one stale page wait for one upstream request (a lock per project);
rendered pages are kept in memory, least recently used out, within `memory_bytes`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from serverless_pypi.core.errors import NoSuchFile, NoSuchProject
from serverless_pypi.core.http import IfNoneMatch, compress, make_etag
from serverless_pypi.core.metadata import MAX_METADATA_SIZE
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.render import render_html, render_json
from serverless_pypi.core.upstream import (
    InvalidUpstreamPage,
    UpstreamFile,
    UpstreamPage,
    page_model,
    parse_page,
)
from serverless_pypi.index.upstream_cache import CachedPage, UpstreamCache
from serverless_pypi.repository.base import (
    CoreMetadata,
    Download,
    ProjectList,
    ProjectPage,
    Redirect,
    Repository,
    StoredPage,
)
from serverless_pypi.storage.base import NotFound, StoreError
from serverless_pypi.upstream.client import UpstreamClient, UpstreamError, UpstreamNotFound

__all__ = ["MODES", "Puller", "UpstreamRepository"]

log = logging.getLogger(__name__)

#: the modes this repository serves (`redirect` is `FallbackRepository`)
MODES = ("proxy", "mirror")
#: seconds between two attempts to reach an upstream that is down
RETRY_SECONDS = 5.0
#: bytes of rendered pages kept in memory, per process
MEMORY_BYTES = 32 * 1024 * 1024
#: pulled-through copies known to be in the store (they never change: the key holds the digest)
_COPIES_KNOWN = 16384


class Puller(Protocol):
    """Copies an upstream file into the store, later (mirror mode).

    The message names only the project and the file: the copier reads the URL and the
    sha256 from the cached page itself, so nothing a request could inject is trusted.
    """

    def request(self, name: NormalizedName, filename: str) -> None:
        """Ask for a copy of `filename`; never blocks long, never raises."""


@dataclass(slots=True)
class _Entry:
    """A page held in memory, rendered in both formats."""

    cached: CachedPage
    #: when the upstream last confirmed the page (a 200 or a 304), `clock()` seconds
    checked: float
    html: StoredPage
    json: StoredPage
    size: int
    #: rendered while the upstream was down (metadata limited to what the store holds)
    degraded: bool = False


def _stored(body: bytes, last_modified: datetime) -> StoredPage:
    # a strong tag of the identity bytes; `encoding_tag` derives the gzip one (web layer)
    return StoredPage(compress(body), make_etag(body), _no_redirect, last_modified)


def _no_redirect(method: str) -> Redirect | None:
    return None


def _unlisted(old: UpstreamPage, new: UpstreamPage) -> list[UpstreamFile]:
    """The files of `old` whose copy or core metadata `new` no longer lists (removed, or
    replaced under another digest): what to forget. A part still listed is cleared from the
    file (its digest set to None), so forgetting the file leaves that part alone."""
    dropped = []
    for file in old.files:
        current = new.file(file.filename)
        keep_copy = current is not None and current.sha256 == file.sha256
        keep_metadata = current is not None and current.metadata_sha256 == file.metadata_sha256
        if keep_copy and keep_metadata:
            continue
        dropped.append(
            dataclasses.replace(
                file,
                sha256=None if keep_copy else file.sha256,
                metadata_sha256=None if keep_metadata else file.metadata_sha256,
            )
        )
    return dropped


@dataclass(slots=True)
class _Outage:
    """The upstream's state, shared by every project (guarded by the repository's lock)."""

    since: float | None = None  # when it went down; None while it answers
    next_try: float = 0.0
    reason: str = ""
    probing: set[str] = field(default_factory=set)


class UpstreamRepository(Repository):
    """The upstream index through `client`, cached in the store through `cache`.

    `mode` is `proxy` or `mirror`, `ttl` the seconds a page is served before revalidation,
    `url_ttl` the lifetime of the store's download URLs, `puller` what copies files (mirror
    mode; None: copies only come from `serverless-pypi mirror`), `clock` the time (tests).
    """

    def __init__(
        self,
        client: UpstreamClient,
        cache: UpstreamCache,
        *,
        mode: str,
        ttl: int,
        url_ttl: int = 900,
        puller: Puller | None = None,
        clock: Callable[[], float] = time.time,
        retry: float = RETRY_SECONDS,
        memory_bytes: int = MEMORY_BYTES,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        self.client = client
        self.cache = cache
        self.mode = mode
        self.ttl = ttl
        self.url_ttl = url_ttl
        self.puller = puller
        self.clock = clock
        self.retry = retry
        self.memory_bytes = memory_bytes
        self.location = client.location
        self._entries: OrderedDict[NormalizedName, _Entry] = OrderedDict()
        self._bytes = 0
        self._copies: OrderedDict[str, None] = OrderedDict()
        self._outage = _Outage()
        self._lock = threading.Lock()  # guards the tables above, never held during I/O
        self._project_locks: dict[NormalizedName, tuple[threading.Lock, int]] = {}
        #: projects whose upstream answer was not a page and nothing is cached: until when
        #: they answer 404 without asking again (one upstream request and one log line a TTL)
        self._unusable: OrderedDict[NormalizedName, float] = OrderedDict()
        #: core metadata files read before, by digest (immutable: the page names the digest)
        self._metadata: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._metadata_bytes = 0

    # -- the repository -------------------------------------------------------------------
    def project_list(self) -> ProjectList:
        """The projects whose upstream page the store holds: never the upstream's own list."""
        return ProjectList(frozenset(self.cache.names()))

    def project_page(
        self, name: NormalizedName, *, json: bool, if_none_match: IfNoneMatch | None
    ) -> ProjectPage:
        entry = self._current(name)
        return entry.json if json else entry.html

    def owns(self, name: NormalizedName) -> bool:
        return False  # nothing is published here: the store's repository owns projects

    def current_page(self, name: NormalizedName) -> UpstreamPage:
        """The project's upstream page as this index serves it now; NoSuchProject."""
        return self._current(name).cached.page

    def locate(self, name: NormalizedName, filename: str, method: str) -> Download:
        file = self._file(name, filename)
        if self.mode != "mirror" or file.sha256 is None:
            return Redirect(file.url)
        served = self._copy(name, file, method)
        if served is not None:
            return served
        if self.puller is not None:
            self.puller.request(name, filename)
        # the first download does not wait for the copy: the client fetches the upstream's
        return Redirect(file.url)

    def metadata(self, name: NormalizedName, filename: str) -> CoreMetadata:
        """PEP 658 core metadata of an upstream file: from the store, else the upstream's,
        checked against the sha256 its page lists before it is kept or served."""
        file = self._file(name, filename)
        digest = file.metadata_sha256
        missing = NoSuchFile(f"No core metadata for {filename!r} in project {name!r}.")
        if digest is None:
            raise missing
        data = self._held_metadata(file.filename, digest)
        if data is None:
            data = self.cache.metadata(name, file)
            if data is None:
                data = self._fetch_metadata(name, file)
                if data is None:
                    raise missing
            self._hold_metadata(file.filename, digest, data)
        return CoreMetadata(data, make_etag(data))

    def _held_metadata(self, filename: str, digest: str) -> bytes | None:
        with self._lock:
            data = self._metadata.get((filename, digest))
            if data is not None:
                self._metadata.move_to_end((filename, digest))
            return data

    def _hold_metadata(self, filename: str, digest: str, data: bytes) -> None:
        """Keep a verified core metadata file in memory (a tenth of `memory_bytes`)."""
        limit = self.memory_bytes // 10
        with self._lock:
            if (filename, digest) in self._metadata or len(data) > limit:
                return
            self._metadata[(filename, digest)] = data
            self._metadata_bytes += len(data)
            while self._metadata_bytes > limit:
                _, evicted = self._metadata.popitem(last=False)
                self._metadata_bytes -= len(evicted)

    # -- files ----------------------------------------------------------------------------
    def _file(self, name: NormalizedName, filename: str) -> UpstreamFile:
        """The file the project's current page lists; NoSuchFile (a file removed upstream is
        not served, whatever copy the store holds)."""
        try:
            page = self.current_page(name)
        except NoSuchProject:
            raise NoSuchFile(f"No file {filename!r} in project {name!r}.") from None
        file = page.file(filename)
        if file is None:
            raise NoSuchFile(f"No file {filename!r} in project {name!r}.")
        return file

    def _copy(self, name: NormalizedName, file: UpstreamFile, method: str) -> Download | None:
        """How the store serves its verified copy of `file`; None when it has none."""
        key = self.cache.file_key(name, file)
        with self._lock:
            known = key in self._copies
        if not known and self.cache.find_file(name, file) is None:
            return None
        try:
            served = self.cache.deliver(name, file, method, self.url_ttl)
        except NotFound:
            self._forget_copy(key)
            return None
        with self._lock:
            self._copies[key] = None
            self._copies.move_to_end(key)
            while len(self._copies) > _COPIES_KNOWN:
                self._copies.popitem(last=False)
        return served

    def _forget_copy(self, key: str) -> None:
        with self._lock:
            self._copies.pop(key, None)

    def _fetch_metadata(self, name: NormalizedName, file: UpstreamFile) -> bytes | None:
        with self._lock:
            if self._outage.since is not None and self.clock() < self._outage.next_try:
                return None  # down: answer at once (the page served does not advertise it)
        # PEP 658: the metadata file is at the distribution's URL with `.metadata` appended
        try:
            data = self.client.get(file.url + ".metadata", max_bytes=MAX_METADATA_SIZE)
        except UpstreamNotFound:
            log.warning("the upstream lists core metadata of %s but has none", file.filename)
            return None
        except UpstreamError as e:
            self._went_down(e)
            return None
        if hashlib.sha256(data).hexdigest() != file.metadata_sha256:
            log.warning(
                "refused the core metadata of %s from %s: its sha256 is not the one the page lists",
                file.filename,
                self.location,
            )
            return None
        try:
            self.cache.save_metadata(name, file, data)
        except StoreError as e:
            log.warning("could not keep the core metadata of %s: %s", file.filename, e)
        return data

    # -- pages ----------------------------------------------------------------------------
    def _current(self, name: NormalizedName) -> _Entry:
        """The page to serve now: from memory or the store while fresh, else revalidated."""
        entry = self._held(name)
        if entry is not None and self._fresh(entry):
            return entry
        with self._project_lock(name):
            # another request may have revalidated it while this one waited
            entry = self._held(name)
            if entry is None:
                entry = self._load(name)
            if entry is not None and self._fresh(entry):
                return entry
            return self._revalidate(name, entry)

    def _fresh(self, entry: _Entry) -> bool:
        return self.clock() - entry.checked < self.ttl

    def _load(self, name: NormalizedName) -> _Entry | None:
        """The page the store holds (fetched by this or another process), into memory."""
        cached = self.cache.page(name)
        if cached is None:
            return None
        return self._keep(name, self._render(cached, cached.fetched_at))

    def _revalidate(self, name: NormalizedName, entry: _Entry | None) -> _Entry:
        """Ask the upstream (conditionally when a page is held), or serve the held page
        while the upstream is down; NoSuchProject."""
        if (entry is None and self._backing_off(name)) or not self._may_try(name):
            return self._stale(name, entry)
        try:
            try:
                fetched = self.client.project_page(
                    name, etag=entry.cached.etag if entry is not None else None
                )
            except UpstreamNotFound:
                self._came_back()
                self._gone(name, entry)
                raise NoSuchProject(f"No project named {name!r} on this index.") from None
            except UpstreamError as e:
                self._went_down(e)
                return self._stale(name, entry)
            self._came_back()
            now = self.clock()
            if fetched is None and entry is not None:
                # 304: the held page is current; only the confirmation time moves
                if entry.degraded:
                    entry = self._render(entry.cached, now)
                else:
                    entry.checked = now
                return self._keep(name, entry)
            if fetched is None:
                raise InvalidUpstreamPage("a 304 to an unconditional request")
            page = parse_page(fetched.data, fetched.content_type, fetched.url, name)
        except InvalidUpstreamPage as e:
            log.warning("the upstream's page of %s cannot be used: %s", name, e)
            if entry is not None:
                # the last good page, for another TTL: not asked (nor logged) per request
                entry.checked = self.clock()
            else:
                self._back_off(name)
            return self._stale(name, entry)
        finally:
            self._done_trying(name)
        return self._replace(name, entry, CachedPage(page, fetched.etag, now))

    def _replace(self, name: NormalizedName, entry: _Entry | None, cached: CachedPage) -> _Entry:
        """Keep the page the upstream answered; forget the files it no longer lists."""
        try:
            self.cache.save_page(name, cached)
        except StoreError as e:
            log.warning("could not keep the upstream page of %s in the store: %s", name, e)
        if entry is not None:
            dropped = _unlisted(entry.cached.page, cached.page)
            if dropped:
                log.info(
                    "%s: %d file(s) changed or removed upstream, copies forgotten",
                    name,
                    len(dropped),
                )
                self._forget_files(name, dropped)
        return self._keep(name, self._render(cached, cached.fetched_at))

    def _forget_files(self, name: NormalizedName, files: list[UpstreamFile]) -> None:
        for file in files:
            if file.sha256 is not None:
                self._forget_copy(self.cache.file_key(name, file))
        try:
            self.cache.forget(name, files)
        except StoreError as e:
            # no longer listed, so never served; `reindex --check` reports what is left
            log.warning("could not delete the copies of %s no longer listed: %s", name, e)

    def _gone(self, name: NormalizedName, entry: _Entry | None) -> None:
        """The upstream has no such project (any more): forget it here too."""
        with self._lock:
            self._drop(name)
        if entry is None:
            return  # nothing was cached (`_current` read the store first)
        for file in entry.cached.page.files:
            if file.sha256 is not None:
                self._forget_copy(self.cache.file_key(name, file))
        log.info("%s: no longer on the upstream index, its cached page and copies forgotten", name)
        try:
            self.cache.delete_page(name)
        except StoreError as e:
            log.warning("could not forget the upstream page of %s: %s", name, e)

    def _stale(self, name: NormalizedName, entry: _Entry | None) -> _Entry:
        """The held page while the upstream cannot be asked, else NoSuchProject at once."""
        if entry is None:
            raise NoSuchProject(
                f"No project named {name!r} on this index (the upstream index is unavailable "
                "and no copy of its page is cached)."
            )
        if not entry.degraded and self._outage.since is not None:
            # advertise only the core metadata the store can serve without the upstream
            entry = self._keep(name, self._render(entry.cached, entry.checked, degraded=True))
        return entry

    def _render(self, cached: CachedPage, checked: float, *, degraded: bool = False) -> _Entry:
        page = cached.page
        if degraded:
            held = self.cache.metadata_held(page.name)
            page = dataclasses.replace(
                page,
                files=tuple(
                    f
                    if f.metadata_sha256 is None or (f.metadata_sha256, f.filename) in held
                    else dataclasses.replace(f, metadata_sha256=None)
                    for f in page.files
                ),
            )
        model = page_model(page, metadata=True)
        modified = datetime.fromtimestamp(cached.fetched_at, UTC)
        html = _stored(render_html(model), modified)
        json = _stored(render_json(model), modified)
        # the rendered bytes, and about as much again for the parsed page
        size = 2 * (len(html.data) + len(json.data)) + 200 * len(page.files)
        return _Entry(cached, checked, html, json, size, degraded)

    # -- memory ---------------------------------------------------------------------------
    def _held(self, name: NormalizedName) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                self._entries.move_to_end(name)
            return entry

    def _keep(self, name: NormalizedName, entry: _Entry) -> _Entry:
        with self._lock:
            self._drop(name)
            if entry.size <= self.memory_bytes:
                self._entries[name] = entry
                self._bytes += entry.size
                while self._bytes > self.memory_bytes:
                    _, evicted = self._entries.popitem(last=False)
                    self._bytes -= evicted.size
        return entry

    def _drop(self, name: NormalizedName) -> None:
        # with the lock held
        old = self._entries.pop(name, None)
        if old is not None:
            self._bytes -= old.size

    @contextmanager
    def _project_lock(self, name: NormalizedName) -> Iterator[None]:
        """One lock per project while requests use it (the table holds no idle locks)."""
        with self._lock:
            lock, users = self._project_locks.get(name, (threading.Lock(), 0))
            self._project_locks[name] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._project_locks[name]
                if users <= 1:
                    del self._project_locks[name]
                else:
                    self._project_locks[name] = (lock, users - 1)

    # -- the upstream's state -------------------------------------------------------------
    def _may_try(self, name: NormalizedName) -> bool:
        """Whether to ask the upstream now: always while it answers; while it is down, one
        request at a time, at most every `retry` seconds."""
        with self._lock:
            outage = self._outage
            if outage.since is None:
                return True
            if outage.probing or self.clock() < outage.next_try:
                return False
            outage.probing.add(name)
            outage.next_try = self.clock() + self.retry
            return True

    def _backing_off(self, name: NormalizedName) -> bool:
        with self._lock:
            until = self._unusable.get(name)
            if until is not None and self.clock() >= until:
                del self._unusable[name]
                until = None
            return until is not None

    def _back_off(self, name: NormalizedName) -> None:
        with self._lock:
            self._unusable[name] = self.clock() + max(self.ttl, self.retry)
            self._unusable.move_to_end(name)
            while len(self._unusable) > _COPIES_KNOWN:
                self._unusable.popitem(last=False)

    def _done_trying(self, name: NormalizedName) -> None:
        with self._lock:
            self._outage.probing.discard(name)

    def _went_down(self, error: Exception) -> None:
        with self._lock:
            outage = self._outage
            first = outage.since is None
            if first:
                outage.since = self.clock()
                outage.reason = str(error)
            outage.next_try = self.clock() + self.retry
        if first:
            log.warning(
                "the upstream index %s is unavailable (%s): serving cached pages, asking again "
                "every %g s",
                self.location,
                error,
                self.retry,
            )

    def _came_back(self) -> None:
        with self._lock:
            outage = self._outage
            since = outage.since
            outage.since = None
        if since is not None:
            log.warning(
                "the upstream index %s answers again, after %.0f s",
                self.location,
                self.clock() - since,
            )
