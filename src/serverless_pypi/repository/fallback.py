"""The fallback: projects this index does not have are redirected to another index.

FALLBACK_INDEX_URL (e.g. https://pypi.org/simple) receives the page requests for projects
the inner repository does not know, with a temporary redirect (the project may be published
here later). Never redirected: a name matching PRIVATE_PROJECTS (a glob, compared in
normalized form), so a private name cannot be served from elsewhere, and a project the inner
repository has, even one whose manifest serves nothing. Files and metadata are not
redirected: a client only asks for them from a page it got here.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from urllib.parse import quote

from serverless_pypi.core.errors import NoSuchProject
from serverless_pypi.core.http import IfNoneMatch
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.repository.base import ProjectPage, Redirect, Repository, RepositoryWrapper

__all__ = ["FallbackRepository", "normalize_pattern"]


def normalize_pattern(pattern: str) -> str:
    """A glob normalized the way project names are (PEP 503), keeping its wildcards."""
    return re.sub(r"[-_.]+", "-", pattern).lower()


class FallbackRepository(RepositoryWrapper):
    def __init__(self, inner: Repository, url: str, private: Iterable[str] = ()) -> None:
        super().__init__(inner)
        self.url = url.rstrip("/")
        self.private = tuple(normalize_pattern(p) for p in private)

    def is_private(self, name: NormalizedName) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.private)

    def project_page(
        self, name: NormalizedName, *, json: bool, if_none_match: IfNoneMatch | None
    ) -> ProjectPage:
        try:
            return self.inner.project_page(name, json=json, if_none_match=if_none_match)
        except NoSuchProject:
            if self.is_private(name):
                raise
            return Redirect(f"{self.url}/{quote(name, safe='')}/")
