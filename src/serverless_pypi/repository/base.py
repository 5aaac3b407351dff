"""The repository interface: the four questions the web layer asks, and their answers.

In the spirit of simple-repository: a repository answers the project list, a project's page,
where a file is served and a file's core metadata (and its PEP 740 provenance, which only the
store has). Features are repositories that wrap
another one (`RepositoryWrapper`) and change only the answers they are about, so a stack
reads top to bottom in `serverless_pypi.compose`.

A page comes back in the cheapest form that is right: the store's precomputed rendering
(`StoredPage`, passed through every layer untouched: the fast path), the store's "not
modified" (`PageUnchanged`), a model for the web layer to render (`Manifest`), or a
`Redirect` elsewhere. Failures are exceptions: NoSuchProject, NoSuchFile (and the store's
own errors).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from serverless_pypi.core.errors import NoSuchFile
from serverless_pypi.core.http import IfNoneMatch
from serverless_pypi.core.model import Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.storage.base import LocalFile, Redirect

__all__ = [
    "CoreMetadata",
    "Download",
    "LocalFile",
    "Manifest",
    "PageUnchanged",
    "ProjectList",
    "ProjectPage",
    "ProvenanceObject",
    "Redirect",
    "Repository",
    "RepositoryWrapper",
    "StoredPage",
]


@dataclass(frozen=True, slots=True)
class ProjectList:
    """The normalized names of the projects to list."""

    names: frozenset[str]
    #: when the list last changed, where the source says (the stored `projects.json`)
    last_modified: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class StoredPage:
    """A precomputed rendering of the page, gzip-compressed, as the store holds it."""

    data: bytes
    etag: str
    #: a URL where the store serves these bytes itself (gzip-encoded) for `method`, for a
    #: front that cannot carry them inline; None when the store has none
    redirect: Callable[[str], Redirect | None] = field(compare=False, repr=False)
    #: when the store last wrote it
    last_modified: datetime | None = field(default=None, compare=False)
    #: the moment these bytes stop being the page by themselves (a file comes of age under
    #: a policy's cooldown): no cache may keep them past it; None: only a write changes them
    expires: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class PageUnchanged:
    """The store found the page unchanged: the client's copy, tagged `etag`, is current."""

    etag: str


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    """A distribution's PEP 658 core metadata file."""

    data: bytes
    etag: str
    last_modified: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ProvenanceObject:
    """A distribution's PEP 740 provenance object (JSON), as the index stores it."""

    data: bytes
    etag: str
    last_modified: datetime | None = field(default=None, compare=False)


#: a project page: the fast path, the store's 304, a model to render (shared between
#: requests: never change it, copy it), or a redirect to another index
ProjectPage = StoredPage | PageUnchanged | Manifest | Redirect
#: how a file is served: a redirect (a presigned URL), or a local file
Download = Redirect | LocalFile


class Repository(ABC):
    """The source of everything the web layer serves."""

    #: where it reads from, for logs (e.g. the store's location)
    location: str

    @abstractmethod
    def project_list(self) -> ProjectList:
        """The projects to list at the index root."""

    @abstractmethod
    def project_page(
        self, name: NormalizedName, *, json: bool, if_none_match: IfNoneMatch | None
    ) -> ProjectPage:
        """The project's page (`json`: the PEP 691 JSON rendering); raises NoSuchProject.

        `if_none_match` is the request's, for a store that can answer "not modified" itself.
        """

    @abstractmethod
    def locate(self, name: NormalizedName, filename: str, method: str) -> Download:
        """How the project's file `filename` is served for `method`; raises NoSuchFile."""

    @abstractmethod
    def metadata(self, name: NormalizedName, filename: str) -> CoreMetadata:
        """The core metadata of the project's distribution `filename`; raises NoSuchFile."""

    def provenance(self, name: NormalizedName, filename: str) -> ProvenanceObject:
        """The PEP 740 provenance object of the project's distribution `filename`; raises
        NoSuchFile. A source that takes no uploads holds none (the default)."""
        raise NoSuchFile(f"No provenance for {filename!r} in project {name!r}.")

    @abstractmethod
    def owns(self, name: NormalizedName) -> bool:
        """Whether the project is this repository's own: it has, or had, files here.

        A project another source may never add to (the dependency-confusion rule of
        `PrivateFirstRepository`): a store failure raises, it never means "not owned".
        """


class RepositoryWrapper(Repository):
    """A repository that passes every question to `inner`: a feature overrides its own."""

    def __init__(self, inner: Repository) -> None:
        self.inner = inner
        self.location = inner.location

    def project_list(self) -> ProjectList:
        return self.inner.project_list()

    def project_page(
        self, name: NormalizedName, *, json: bool, if_none_match: IfNoneMatch | None
    ) -> ProjectPage:
        return self.inner.project_page(name, json=json, if_none_match=if_none_match)

    def locate(self, name: NormalizedName, filename: str, method: str) -> Download:
        return self.inner.locate(name, filename, method)

    def metadata(self, name: NormalizedName, filename: str) -> CoreMetadata:
        return self.inner.metadata(name, filename)

    def provenance(self, name: NormalizedName, filename: str) -> ProvenanceObject:
        return self.inner.provenance(name, filename)

    def owns(self, name: NormalizedName) -> bool:
        return self.inner.owns(name)
