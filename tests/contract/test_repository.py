"""The repository layers: the store repository, the fallback wrapper, the composition root."""

from __future__ import annotations

from pathlib import Path

import pytest

from serverless_pypi.compose import build_application, build_repository
from serverless_pypi.core.config import Settings
from serverless_pypi.core.errors import NoSuchFile, NoSuchProject
from serverless_pypi.core.http import IfNoneMatch, parse_if_none_match
from serverless_pypi.core.model import Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.repository.base import (
    CoreMetadata,
    PageUnchanged,
    ProjectList,
    ProjectPage,
    Repository,
    RepositoryWrapper,
    StoredPage,
)
from serverless_pypi.repository.fallback import FallbackRepository
from serverless_pypi.repository.store import StoreRepository
from serverless_pypi.storage import Blob, LocalFile, Redirect, Store
from serverless_pypi.storage.local import LocalStore
from tests.helpers.dists import make_wheel
from tests.helpers.index import publish_file

ACME = NormalizedName("acme")


def published(store: Store, tmp_path: Path, name: str = "acme") -> Path:
    wheel = make_wheel(tmp_path, name, "1.0")
    publish_file(Catalog(store), wheel)
    return wheel


# -- the store repository -----------------------------------------------------------------


def test_an_indexed_page_is_one_store_read_of_its_rendering(store: Store, tmp_path: Path) -> None:
    published(store, tmp_path)
    repository = StoreRepository(store)
    calls: list[str] = []
    original = store.get

    def counted(key: str, *, if_none_match: str | None = None) -> Blob:
        calls.append(key)
        return original(key, if_none_match=if_none_match)

    store.get = counted  # type: ignore[method-assign]
    page = repository.project_page(ACME, json=False, if_none_match=None)
    assert isinstance(page, StoredPage)
    assert calls == [".serverless-pypi/pages/acme.html.gz"]
    # the store compares one plain tag itself: "not modified" passes through as it is
    again = repository.project_page(
        ACME, json=False, if_none_match=IfNoneMatch(False, (page.etag,))
    )
    assert again == PageUnchanged(page.etag)
    # a list of tags is compared by the web layer: the store gets no condition
    listed = parse_if_none_match(f'"x", {page.etag}')
    assert isinstance(repository.project_page(ACME, json=True, if_none_match=listed), StoredPage)


def test_without_pages_the_manifest_is_the_model(store: Store, tmp_path: Path) -> None:
    wheel = published(store, tmp_path)
    for key in [i.key for i in store.list(".serverless-pypi/pages/")]:
        store.delete(key)
    page = StoreRepository(store).project_page(ACME, json=True, if_none_match=None)
    assert isinstance(page, Manifest)
    assert list(page.files) == [wheel.name]


def test_a_project_never_indexed_is_listed_live(store: Store) -> None:
    store.put("Acme/acme-1.0.tar.gz", b"sdist")
    store.put("Acme/notes.txt", b"not a distribution")
    repository = StoreRepository(store)
    page = repository.project_page(ACME, json=False, if_none_match=None)
    assert isinstance(page, Manifest) and list(page.files) == ["acme-1.0.tar.gz"]
    assert repository.project_list() == ProjectList(frozenset({"acme"}))
    assert isinstance(repository.locate(ACME, "acme-1.0.tar.gz", "GET"), LocalFile | Redirect)
    with pytest.raises(NoSuchFile):
        repository.locate(ACME, "notes.txt", "GET")


def test_unknown_projects_and_files_raise(store: Store, tmp_path: Path) -> None:
    wheel = published(store, tmp_path)
    repository = StoreRepository(store)
    with pytest.raises(NoSuchProject):
        repository.project_page(NormalizedName("other"), json=False, if_none_match=None)
    for name, filename in [
        (ACME, "acme-9.0.tar.gz"),  # not published
        (NormalizedName("other"), wheel.name),  # another project's file
        (ACME, "credentials.json"),  # not a distribution
    ]:
        with pytest.raises(NoSuchFile):
            repository.locate(name, filename, "GET")
    with pytest.raises(NoSuchFile):
        repository.metadata(ACME, "acme-9.0.tar.gz")
    metadata = repository.metadata(ACME, wheel.name)
    assert isinstance(metadata, CoreMetadata) and metadata.data.startswith(b"Metadata-Version")


def test_locate_is_what_the_store_delivers(store: Store, tmp_path: Path) -> None:
    wheel = published(store, tmp_path)
    found = StoreRepository(store, url_ttl=77).locate(ACME, wheel.name, "HEAD")
    if isinstance(store, LocalStore):
        assert isinstance(found, LocalFile)
        assert found.path.read_bytes() == wheel.read_bytes()
        assert found.size == wheel.stat().st_size
    else:
        assert isinstance(found, Redirect) and "X-Amz-Expires=77" in found.url


def test_a_large_page_can_be_redirected_to_the_store(store: Store, tmp_path: Path) -> None:
    published(store, tmp_path)
    page = StoreRepository(store).project_page(ACME, json=False, if_none_match=None)
    assert isinstance(page, StoredPage)
    elsewhere = page.redirect("GET")
    # S3 serves the gzip object itself; a directory has no URL of its own
    assert (elsewhere is None) is isinstance(store, LocalStore)


# -- the fallback wrapper -----------------------------------------------------------------


class Answers(Repository):
    """A repository with canned pages, recording what it was asked."""

    location = "canned"

    def __init__(self, pages: dict[str, ProjectPage]) -> None:
        self.pages = pages
        self.asked: list[str] = []

    def project_list(self) -> ProjectList:
        return ProjectList(frozenset(self.pages))

    def project_page(
        self, name: NormalizedName, *, json: bool, if_none_match: IfNoneMatch | None
    ) -> ProjectPage:
        self.asked.append(name)
        if name not in self.pages:
            raise NoSuchProject(f"No project named {name!r} on this index.")
        return self.pages[name]

    def locate(self, name: NormalizedName, filename: str, method: str) -> Redirect | LocalFile:
        raise NoSuchFile(f"No file {filename!r} in project {name!r}.")

    def metadata(self, name: NormalizedName, filename: str) -> CoreMetadata:
        raise NoSuchFile(f"No core metadata for {filename!r} in project {name!r}.")

    def owns(self, name: NormalizedName) -> bool:
        return name in self.pages


def page_of(repository: Repository, name: str) -> ProjectPage:
    return repository.project_page(NormalizedName(name), json=False, if_none_match=None)


def test_fallback_redirects_unknown_projects_only() -> None:
    stored = StoredPage(b"gz", '"e"', lambda method: None)
    empty = Manifest(NormalizedName("refused"))  # in the index, but serves nothing
    inner = Answers({"ours": stored, "refused": empty})
    fallback = FallbackRepository(inner, "https://pypi.org/simple/", ["acme-*", "corp_*"])
    assert page_of(fallback, "requests") == Redirect("https://pypi.org/simple/requests/")
    # a project of the inner repository passes through untouched, even one serving nothing
    assert page_of(fallback, "ours") is stored
    assert page_of(fallback, "refused") is empty
    # private names are never sent elsewhere (patterns compared in normalized form)
    for name in ("acme-tools", "corp-x"):
        with pytest.raises(NoSuchProject):
            page_of(fallback, name)
    assert inner.asked == ["requests", "ours", "refused", "acme-tools", "corp-x"]


def test_fallback_passes_everything_else_through() -> None:
    inner = Answers({"ours": Manifest(NormalizedName("ours"))})
    fallback = FallbackRepository(inner, "https://pypi.org/simple")
    assert isinstance(fallback, RepositoryWrapper)
    assert fallback.location == "canned"
    assert fallback.project_list() == ProjectList(frozenset({"ours"}))
    # files are never redirected: a client asks for them from a page it got here
    with pytest.raises(NoSuchFile):
        fallback.locate(NormalizedName("requests"), "requests-2.0.tar.gz", "GET")
    with pytest.raises(NoSuchFile):
        fallback.metadata(NormalizedName("requests"), "requests-2.0.tar.gz")


# -- the composition root -----------------------------------------------------------------


def test_the_stack_has_a_layer_per_feature(local_store: LocalStore) -> None:
    from serverless_pypi.repository.policy import PolicyRepository

    plain = build_repository(local_store)
    # the policies on top of every stack (issue 13)
    assert isinstance(plain, PolicyRepository)
    assert isinstance(plain.inner, StoreRepository)
    stacked = build_repository(local_store, Settings(fallback_index_url="https://pypi.org/simple"))
    assert isinstance(stacked, PolicyRepository)
    assert isinstance(stacked.inner, FallbackRepository)
    assert isinstance(stacked.inner.inner, StoreRepository)
    assert stacked.location == local_store.location


def test_the_front_limits_are_parameters(local_store: LocalStore) -> None:
    app = build_application(local_store, max_inline_body=300)
    assert app.settings.max_inline_body == 300
    assert app.access is None  # an open index reads without tokens
    locked = build_application(local_store, Settings(require_auth_for_read=True))
    assert locked.access is not None
    assert build_application(local_store, uploads=False).upload is None
