"""`serverless-pypi mirror`: copy what names, requirements and lock files ask for into the store.

The pages come through `UpstreamRepository.current_page` and the core metadata through
`UpstreamRepository.metadata`, so the store then holds exactly what the server serves from
it; the files are copied by `index.pull.pull_file`, verified against the upstream's sha256
before they are kept (and a lock file's files against the lock's sha256 first). Projects are
fetched in parallel by a few threads, each task reporting its outcome to the one thread that
keeps the tally (no shared mutable state).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from serverless_pypi.core.errors import DomainError, NoSuchProject
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.wanted import LockedFile, Wanted, WantedProject, select_files
from serverless_pypi.storage.base import StoreError

if TYPE_CHECKING:
    from serverless_pypi.core.upstream import UpstreamFile, UpstreamPage
    from serverless_pypi.index.upstream_cache import UpstreamCache
    from serverless_pypi.repository.upstream import UpstreamRepository
    from serverless_pypi.upstream.client import UpstreamClient

__all__ = ["Mirror", "MirrorReport", "Progress"]


class Progress(Protocol):
    """What the mirror tells a progress bar: more work found, one piece done."""

    def add(self, count: int) -> None: ...
    def done(self) -> None: ...


class _NoProgress:
    def add(self, count: int) -> None:
        pass

    def done(self) -> None:
        pass


@dataclass
class MirrorReport:
    """What a run did, for the summary; `failures` make the command exit 1."""

    projects: int = 0
    copied: list[str] = field(default_factory=list)
    present: int = 0
    metadata: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.projects} projects: {len(self.copied)} files copied, {self.present} "
            f"already in the store, {self.metadata} metadata files, {len(self.failures)} failed"
        )


@dataclass(frozen=True, slots=True)
class _PageOutcome:
    name: NormalizedName
    files: tuple[UpstreamFile, ...] = ()
    failures: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _FileOutcome:
    key: str  # project/filename
    copied: bool = False
    present: bool = False
    metadata: bool = False
    failures: tuple[str, ...] = ()


def _reason(error: Exception) -> str:
    return error.message if isinstance(error, DomainError) else str(error) or type(error).__name__


class Mirror:
    """Pulls pages, core metadata and files of what a `Wanted` names into the store.

    `is_private` is the server's own rule (`PrivateFirstRepository.is_private`): a project
    the store owns or PRIVATE_PROJECTS names is never taken from the upstream.
    """

    def __init__(
        self,
        repository: UpstreamRepository,
        cache: UpstreamCache,
        client: UpstreamClient,
        is_private: Callable[[NormalizedName], bool],
        *,
        all_versions: bool = False,
        workers: int = 4,
        progress: Progress | None = None,
    ) -> None:
        self.repository = repository
        self.cache = cache
        self.client = client
        self.is_private = is_private
        self.all_versions = all_versions
        self.workers = workers
        self.progress = progress or _NoProgress()

    def run(self, wanted: Wanted) -> MirrorReport:
        report = MirrorReport(notes=list(wanted.notes))
        projects: dict[NormalizedName, list[WantedProject]] = {}
        locked: dict[NormalizedName, list[LockedFile]] = {}
        for project in wanted.projects:
            projects.setdefault(project.name, []).append(project)
        for lock in wanted.files:
            locked.setdefault(lock.name, []).append(lock)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="mirror") as pool:
            pending: set[Future[_PageOutcome | _FileOutcome]] = set()
            for name in wanted.names():
                if self.is_private(name):
                    # the dependency-confusion rule: the index never serves it from upstream
                    report.notes.append(
                        f"{name}: not mirrored: a private project (published here or "
                        "matching PRIVATE_PROJECTS) is never taken from the upstream"
                    )
                    continue
                report.projects += 1
                task = self._page(name, projects.get(name, []), locked.get(name, []))
                pending.add(pool.submit(task))
            self.progress.add(len(pending))
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    outcome = future.result()
                    self.progress.done()
                    report.failures += outcome.failures
                    if isinstance(outcome, _PageOutcome):
                        for file in outcome.files:
                            pending.add(pool.submit(self._file(outcome.name, file)))
                        self.progress.add(len(outcome.files))
                    else:
                        report.copied += [outcome.key] if outcome.copied else []
                        report.present += outcome.present
                        report.metadata += outcome.metadata
        report.copied.sort()
        return report

    def _page(
        self, name: NormalizedName, projects: list[WantedProject], locked: list[LockedFile]
    ) -> Callable[[], _PageOutcome]:
        def task() -> _PageOutcome:
            try:
                page = self.repository.current_page(name)
            except NoSuchProject:
                failure = (
                    f"{name}: not found at {self.client.location} (a project it does not have, "
                    "or it cannot be reached and no page of the project is cached)"
                )
                return _PageOutcome(name, failures=(failure,))
            except (DomainError, StoreError, ValueError) as e:
                return _PageOutcome(name, failures=(f"{name}: {_reason(e)}",))
            chosen, failures = self._choose(page, projects, locked)
            return _PageOutcome(name, tuple(chosen), tuple(failures))

        return task

    def _choose(
        self, page: UpstreamPage, projects: list[WantedProject], locked: list[LockedFile]
    ) -> tuple[list[UpstreamFile], list[str]]:
        """The page's files that are asked for (each once), and what cannot be had."""
        chosen: dict[str, UpstreamFile] = {}
        failures: list[str] = []
        for wanted in projects:
            files = select_files(page.files, wanted, all_versions=self.all_versions)
            if not files:
                what = "the --hash digests" if wanted.hashes else str(wanted.specifier or "any")
                failures.append(f"{wanted.source}: no file of {page.name} matches ({what})")
            chosen.update((f.filename, f) for f in files)
        for lock in locked:
            file = page.file(lock.filename)
            if file is None:
                failures.append(f"{lock.source}: {lock.filename} is not listed upstream")
            elif file.sha256 != lock.sha256:
                failures.append(
                    f"{lock.source}: {lock.filename}: hash mismatch: the lock has sha256 "
                    f"{lock.sha256}, the upstream lists {file.sha256 or 'no sha256'}"
                )
            else:
                chosen[file.filename] = file
        return list(chosen.values()), failures

    def _file(self, name: NormalizedName, file: UpstreamFile) -> Callable[[], _FileOutcome]:
        from serverless_pypi.index.pull import PullRefused, pull_file
        from serverless_pypi.upstream.client import UpstreamError

        key = f"{name}/{file.filename}"

        def task() -> _FileOutcome:
            failures: list[str] = []
            metadata = False
            if file.metadata_sha256 is not None:
                try:
                    self.repository.metadata(name, file.filename)  # verified, then cached
                    metadata = True
                except (DomainError, UpstreamError, StoreError) as e:
                    failures.append(f"{key}: core metadata: {_reason(e)}")
            if file.sha256 is None:
                failures.append(
                    f"{key}: the upstream lists it without a sha256: it cannot be verified, "
                    "so it is never copied"
                )
                return _FileOutcome(key, metadata=metadata, failures=tuple(failures))
            try:
                copied = pull_file(self.cache, self.client, name, file.filename)
            except (PullRefused, UpstreamError, StoreError, DomainError) as e:
                failures.append(f"{key}: {_reason(e)}")
                return _FileOutcome(key, metadata=metadata, failures=tuple(failures))
            return _FileOutcome(key, copied, not copied, metadata, tuple(failures))

        return task
