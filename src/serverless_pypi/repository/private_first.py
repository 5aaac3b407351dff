"""Private first, never mixed: the store's projects from the store, every other from upstream.

The dependency-confusion rule: a project the private repository owns (any file published
in the store, now or before) or whose name matches a PRIVATE_PROJECTS glob (compared in
normalized form) is answered by the private repository alone, page, files and metadata, so a
public `acme-core 99.0` never reaches a client asking for the private `acme-core`; such a
name the store does not have is a 404, never the upstream's. No page ever combines the two
sources. The project list is both lists together (the upstream's is what the store caches,
never the upstream's whole list).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from serverless_pypi.core.http import IfNoneMatch
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.repository.base import (
    CoreMetadata,
    Download,
    ProjectList,
    ProjectPage,
    ProvenanceObject,
    Repository,
)
from serverless_pypi.repository.fallback import normalize_pattern

__all__ = ["PrivateFirstRepository"]


class PrivateFirstRepository(Repository):
    """`private` for its own projects and the `private_patterns` names, `upstream` else."""

    def __init__(
        self, private: Repository, upstream: Repository, private_patterns: Iterable[str] = ()
    ) -> None:
        self.private = private
        self.upstream = upstream
        self.patterns = tuple(normalize_pattern(p) for p in private_patterns)
        self.location = private.location

    def is_private(self, name: NormalizedName) -> bool:
        """Whether the name is the private repository's alone (a store error raises: it never
        sends a name to the upstream)."""
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns) or self.private.owns(name)

    def _source(self, name: NormalizedName) -> Repository:
        return self.private if self.is_private(name) else self.upstream

    def project_list(self) -> ProjectList:
        private = self.private.project_list()
        return ProjectList(private.names | self.upstream.project_list().names)

    def project_page(
        self, name: NormalizedName, *, json: bool, if_none_match: IfNoneMatch | None
    ) -> ProjectPage:
        return self._source(name).project_page(name, json=json, if_none_match=if_none_match)

    def locate(self, name: NormalizedName, filename: str, method: str) -> Download:
        return self._source(name).locate(name, filename, method)

    def metadata(self, name: NormalizedName, filename: str) -> CoreMetadata:
        return self._source(name).metadata(name, filename)

    def provenance(self, name: NormalizedName, filename: str) -> ProvenanceObject:
        return self._source(name).provenance(name, filename)

    def owns(self, name: NormalizedName) -> bool:
        return self.private.owns(name)
