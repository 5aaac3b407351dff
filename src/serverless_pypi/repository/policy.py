"""Policies: one layer over every source, so every front applies them the same way.

`PolicyRepository` sits on top of the stack (`serverless_pypi.compose`) and asks the current
policy (`serverless_pypi.core.policy.Policy`, read from the store's policy document) about
each question:

- No rule can change the project's page (an empty policy, a private project while the
  cooldown covers upstream projects only): the question passes through untouched, so a
  private page stays one read of its precomputed rendering (the fast path).
- An upstream project refused by name (deny or allow list, a PEP 752 namespace): its page,
  files and metadata answer 404 with the reason. Private projects (`owns`) are never refused.
- Otherwise the page is filtered, whatever its source: the store's precomputed page or the
  upstream layer's (StoredPage), a manifest, never a redirect (`redirect` mode: the client
  fetches the upstream itself, so only the refusals apply; cooldowns on upstream files need
  `proxy` or `mirror`). Hidden files are left out (revoked digests, a quarantined project,
  files younger than the cooldown or uploaded after the cutoff), `versions` recomputed and
  the PEP 792 `project-status` added. Both renderings are made once and kept in memory,
  keyed by the source page's version, the policy's bytes and the moment the next hidden file
  comes of age: the page (and its ETag) changes exactly when one of them does, and
  `StoredPage.expires` lets the web layer cap Cache-Control at that moment.
- A download or a metadata file of a hidden file answers 404 with the reason ("hidden by the
  cooldown until ...", "revoked: ..."), so a lockfile URL cannot walk past the page.

Cost under a policy: a page is its source page (one conditional read of the store's page, or
the upstream layer's copy in memory), rendered again only when the source, the policy or the
time bucket changed, plus `owns` (memory for a private project, one read of its absent
manifest for an upstream one); a download or a metadata file right after its page reuses the
page's file entries (FILE_TRUST_SECONDS), so a warm install is still one store read.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from serverless_pypi.core.errors import NoSuchFile, NoSuchProject
from serverless_pypi.core.http import IfNoneMatch, compress, make_etag
from serverless_pypi.core.model import Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.policy import Policy, apply_to_page, file_verdict, parse_upload_time
from serverless_pypi.core.render import project_page, render_html, render_json
from serverless_pypi.repository.base import (
    CoreMetadata,
    Download,
    ProjectList,
    ProjectPage,
    ProvenanceObject,
    Redirect,
    Repository,
    RepositoryWrapper,
    StoredPage,
)

__all__ = ["FILE_TRUST_SECONDS", "MEMORY_BYTES", "PolicyRepository"]

#: bytes of filtered pages kept in memory, per process
MEMORY_BYTES = 16 * 1024 * 1024
#: how long the file entries of a page read are used for the verdicts on its downloads and
#: metadata files without reading the page again (as the reader trusts a manifest copy); the
#: policy itself is always the current one, so a revocation is never delayed by it
FILE_TRUST_SECONDS = 15.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Source:
    """The inner repository's page, as the PEP 691 project dict."""

    #: names this version of it: the store's etag, or the digest of the rendered manifest
    key: str
    page: dict[str, Any]
    last_modified: datetime | None


@dataclass(slots=True)
class _Filtered:
    """A page filtered by one policy, valid until `expires` (None: until the source or the
    policy changes)."""

    source: str
    policy: str
    private: bool
    expires: datetime | None
    html: StoredPage
    json: StoredPage
    #: the source's file entries by file name, for the verdict on a download
    files: Mapping[str, dict[str, Any]]
    size: int
    #: when the source was last read and found to be this one (time.monotonic())
    checked: float

    def current(self, source: str, policy: str, private: bool, now: datetime) -> bool:
        return (self.source, self.policy, self.private) == (source, policy, private) and (
            self.expires is None or now < self.expires
        )


def _no_redirect(method: str) -> Redirect | None:
    # the store holds the unfiltered page only: never send a client to it
    return None


class PolicyRepository(RepositoryWrapper):
    """`inner` under the policy `policies()` answers now (a revalidating read of the policy
    document); `clock` is the time files come of age by (tests move it)."""

    def __init__(
        self,
        inner: Repository,
        policies: Callable[[], Policy],
        *,
        clock: Callable[[], datetime] = utc_now,
        memory_bytes: int = MEMORY_BYTES,
    ) -> None:
        super().__init__(inner)
        self.policies = policies
        self.clock = clock
        self.memory_bytes = memory_bytes
        self._pages: OrderedDict[NormalizedName, _Filtered] = OrderedDict()
        self._bytes = 0
        self._digest: tuple[Policy, str] | None = None
        self._lock = threading.Lock()  # guards the table above, never held during I/O

    # -- which rules apply -----------------------------------------------------------------
    def _governed(self, policy: Policy, name: NormalizedName) -> tuple[bool, str | None] | None:
        """None when no rule of `policy` can change what the project serves (the question
        passes through, ownership not even asked); else whether the project is private, and
        why it is refused (an upstream project only), or None."""
        if not (
            policy.applies_to(name, private=True)
            or policy.applies_to(name, private=False)
            or policy.upstream_refusal(name) is not None
        ):
            return None
        private = self.inner.owns(name)
        refusal = None if private else policy.upstream_refusal(name)
        if refusal is None and not policy.applies_to(name, private=private):
            return None
        return private, refusal

    # -- the repository ----------------------------------------------------------------------
    def project_list(self) -> ProjectList:
        """The inner list without the upstream projects the policy refuses by name."""
        listed = self.inner.project_list()
        policy = self.policies()
        if not (policy.allow or policy.deny or policy.namespaces):
            return listed  # no rule refuses a name: not one name is asked about
        refused = {
            n
            for n in listed.names
            if policy.upstream_refusal(NormalizedName(n)) is not None
            and not self.inner.owns(NormalizedName(n))
        }
        if not refused:
            return listed
        return ProjectList(listed.names - refused, listed.last_modified)

    def project_page(
        self, name: NormalizedName, *, json: bool, if_none_match: IfNoneMatch | None
    ) -> ProjectPage:
        policy = self.policies()
        scope = self._governed(policy, name)
        if scope is None:
            return self.inner.project_page(name, json=json, if_none_match=if_none_match)
        private, refusal = scope
        if refusal is not None:
            raise NoSuchProject(f"Project {name!r} is not served by this index: {refusal}.")
        filtered = self._filtered(name, policy, private)
        if isinstance(filtered, Redirect):
            return filtered
        return filtered.json if json else filtered.html

    def locate(self, name: NormalizedName, filename: str, method: str) -> Download:
        self._check_file(name, filename)
        return self.inner.locate(name, filename, method)

    def metadata(self, name: NormalizedName, filename: str) -> CoreMetadata:
        self._check_file(name, filename)
        return self.inner.metadata(name, filename)

    def provenance(self, name: NormalizedName, filename: str) -> ProvenanceObject:
        # the file's own verdict: a hidden or revoked file's provenance is not served either
        self._check_file(name, filename)
        return self.inner.provenance(name, filename)

    def _check_file(self, name: NormalizedName, filename: str) -> None:
        """Refuse (NoSuchFile, with the reason) a file the policy hides: the verdict on the
        file as its project's page lists it now. A file the page does not list is refused
        while a rule applies (its digest and upload time are unknown: fail closed)."""
        policy = self.policies()
        scope = self._governed(policy, name)
        if scope is None:
            return
        private, refusal = scope
        if refusal is not None:
            raise NoSuchFile(f"File {filename!r} is not served by this index: {refusal}.")
        entry = self._trusted_entry(name, filename)
        if entry is None:
            try:
                filtered = self._filtered(name, policy, private)
            except NoSuchProject:
                raise NoSuchFile(f"No file {filename!r} in project {name!r}.") from None
            if isinstance(filtered, Redirect):
                return  # redirect mode: not a file of this index (the inner one says so)
            entry = filtered.files.get(filename)
        if entry is None:
            raise NoSuchFile(f"No file {filename!r} in project {name!r}.")
        verdict = file_verdict(policy, name, entry, private=private, now=self.clock())
        if not verdict.served:
            raise NoSuchFile(f"File {filename!r} is not served by this index: {verdict.reason}.")

    # -- filtered pages ----------------------------------------------------------------------
    def _filtered(
        self, name: NormalizedName, policy: Policy, private: bool
    ) -> _Filtered | Redirect:
        """The project's page under `policy` now: from memory while the source page, the
        policy and the time bucket are the same, else filtered and rendered again."""
        # the source page unconditionally: the client's tag is of the filtered page
        found = self.inner.project_page(name, json=True, if_none_match=None)
        if isinstance(found, Redirect):
            return found
        key, rendered = _source_key(name, found)
        digest = self._policy_digest(policy)
        now = self.clock()
        with self._lock:
            held = self._pages.get(name)
            if held is not None and held.source == key:
                held.checked = time.monotonic()
                if held.current(key, digest, private, now):
                    self._pages.move_to_end(name)
                    return held
        source = _source(found, key, rendered)
        filtered, expires = apply_to_page(policy, source.page, private=private, now=now)
        last_modified = _last_changed(policy, name, source, private=private, now=now)
        html, json_page = render_html(filtered), render_json(filtered)
        files = MappingProxyType({f["filename"]: f for f in source.page["files"]})
        entry = _Filtered(
            source.key,
            digest,
            private,
            expires,
            _stored(html, last_modified, expires),
            _stored(json_page, last_modified, expires),
            files,
            # the renderings, and about as much again for the parsed entries
            2 * (len(html) + len(json_page)),
            time.monotonic(),
        )
        self._keep(name, entry)
        return entry

    def _trusted_entry(self, name: NormalizedName, filename: str) -> dict[str, Any] | None:
        """The file's entry on the project's page as read less than FILE_TRUST_SECONDS ago
        (a download right after its page: no second read); None when it is older or does
        not list the file (a new upload: the page is read)."""
        with self._lock:
            held = self._pages.get(name)
            if held is None or time.monotonic() - held.checked >= FILE_TRUST_SECONDS:
                return None
            return held.files.get(filename)

    def _policy_digest(self, policy: Policy) -> str:
        """What names the policy's content (the reader hands out one object while the
        document is unchanged: hashed once per version)."""
        held = self._digest
        if held is not None and held[0] is policy:
            return held[1]
        digest = hashlib.sha256(policy.to_bytes()).hexdigest()
        self._digest = (policy, digest)
        return digest

    def _keep(self, name: NormalizedName, entry: _Filtered) -> None:
        with self._lock:
            old = self._pages.pop(name, None)
            if old is not None:
                self._bytes -= old.size
            if entry.size > self.memory_bytes:
                return
            self._pages[name] = entry
            self._bytes += entry.size
            while self._bytes > self.memory_bytes:
                _, evicted = self._pages.popitem(last=False)
                self._bytes -= evicted.size


def _source_key(name: NormalizedName, found: ProjectPage) -> tuple[str, dict[str, Any] | None]:
    """What names this version of the inner repository's page (not a redirect), without
    parsing a stored page: its etag; a manifest's page dict (rendered to be named) with it.
    NoSuchProject for a manifest that serves nothing, as the web layer answers it."""
    if isinstance(found, StoredPage):
        return found.etag, None
    if isinstance(found, Manifest):
        if not found.served():
            raise NoSuchProject(f"Project {name!r} has no files this index serves.")
        page = project_page(found)
        return make_etag(render_json(page)), page
    # asked without If-None-Match: no repository answers "not modified"
    raise TypeError(f"an unconditional page request answered {found!r}")


def _source(found: ProjectPage, key: str, rendered: dict[str, Any] | None) -> _Source:
    """The PEP 691 dict of the inner page `_source_key` named `key`."""
    if rendered is not None:
        return _Source(key, rendered, getattr(found, "last_modified", None))
    assert isinstance(found, StoredPage)
    page: dict[str, Any] = json.loads(gzip.decompress(found.data))
    return _Source(key, page, found.last_modified)


def _stored(body: bytes, last_modified: datetime | None, expires: datetime | None) -> StoredPage:
    # a strong tag of the identity bytes; `encoding_tag` derives the gzip one (web layer)
    return StoredPage(compress(body), make_etag(body), _no_redirect, last_modified, expires)


def _last_changed(
    policy: Policy, name: NormalizedName, source: _Source, *, private: bool, now: datetime
) -> datetime | None:
    """When the filtered page last changed by itself: the source's Last-Modified, or later
    the last moment one of its files came of age under the cooldown (PEP 700 `upload-time`
    plus the cooldown, when that has passed)."""
    latest = source.last_modified
    cooldown = policy.cooldown
    if cooldown is None or not policy.time_rules_apply(name, private=private):
        return latest
    age = timedelta(seconds=cooldown.seconds)
    for entry in source.page["files"]:
        uploaded = parse_upload_time(entry.get("upload-time"))
        if uploaded is None:
            continue
        came_of_age = uploaded + age
        if came_of_age <= now and (latest is None or came_of_age > latest):
            latest = came_of_age
    return latest
