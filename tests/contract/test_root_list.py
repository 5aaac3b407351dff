"""The HTML project list always agrees with the JSON one (issue 10, item 16).

A bucket written by the reference module has an `index.html` of its own, linking the folders
as they are spelled (`My_Pkg`, `my.pkg`, no trailing slash). The index never serves it: both
formats are rendered from one source, the index's project list (`projects.json`) or, before
there is one, the live project folders. The bucket's file stays as it is until the index
writes its own (after `projects.json`).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypi_simple import IndexPage

from serverless_pypi.compose import build_application
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.core.names import normalize_project_name
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.indexer import Indexer
from serverless_pypi.storage import NotFound, Store
from serverless_pypi.web.app import Application
from tests.helpers.dists import make_sdist, make_wheel
from tests.helpers.index import JSON, publish_file

#: what the reference module writes at the bucket's root: folder names as spelled, no slash
REFERENCE_INDEX_HTML = (
    b"<!DOCTYPE html><html><head><title>Simple index</title></head><body>"
    b'<a href="My_Pkg">My_Pkg</a><br><a href="my.pkg">my.pkg</a><br>'
    b'<a href="Zeta">Zeta</a><br></body></html>'
)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(value or "" for name, value in attrs if name == "href")


def _get(app: Application, accept: str | None = None, **headers: str) -> Response:
    if accept is not None:
        headers["accept"] = accept
    return app.handle(Request("GET", "", "", Headers(headers)))


def _html_projects(response: Response) -> list[str]:
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    body = response.body
    names = IndexPage.from_html(body).projects
    links = _Links()
    links.feed(body.decode())
    # PEP 503: each link is the project's page, "<normalized name>/", relative to the list
    assert links.hrefs == [name + "/" for name in names]
    return names


def _json_projects(response: Response) -> list[str]:
    assert response.status == 200
    assert response.headers["Content-Type"] == JSON
    return IndexPage.from_json_data(json.loads(response.body)).projects


def reference_bucket(store: Store, tmp_path: Path) -> None:
    """The reference layout: un-normalized folders, no derived data, its own index.html."""
    files = {
        "My_Pkg/": make_wheel(tmp_path, "my-pkg", "1.0"),
        "my.pkg/": make_sdist(tmp_path, "my-pkg", "2.0"),
        "Zeta/": make_wheel(tmp_path, "zeta", "0.1"),
    }
    for folder, path in files.items():
        store.put(folder + path.name, path.read_bytes())
    store.put(layout.ROOT_HTML, REFERENCE_INDEX_HTML)


def test_html_and_json_list_the_same_normalized_projects_on_a_reference_bucket(
    store: Store, tmp_path: Path
) -> None:
    reference_bucket(store, tmp_path)
    app = build_application(store)
    html = _html_projects(_get(app))
    assert html == _json_projects(_get(app, JSON)) == ["my-pkg", "zeta"]
    assert all(normalize_project_name(name) == name for name in html)
    # the bucket's own file is left alone: nothing was written while serving
    assert store.get(layout.ROOT_HTML).data == REFERENCE_INDEX_HTML
    with pytest.raises(NotFound):
        store.get(layout.ROOT_LIST)


def test_the_reference_index_html_is_not_rewritten_before_there_is_a_project_list(
    store: Store, tmp_path: Path
) -> None:
    reference_bucket(store, tmp_path)
    Catalog(store).refresh_root_html()
    assert store.get(layout.ROOT_HTML).data == REFERENCE_INDEX_HTML


def test_after_a_reindex_index_html_is_the_index_rendering_of_the_same_list(
    store: Store, tmp_path: Path
) -> None:
    reference_bucket(store, tmp_path)
    Indexer(store).reindex()
    app = build_application(store)
    html = _get(app)
    assert _html_projects(html) == _json_projects(_get(app, JSON)) == ["my-pkg", "zeta"]
    # the index wrote its own index.html, byte for byte the list it serves
    assert store.get(layout.ROOT_HTML).data == html.body != REFERENCE_INDEX_HTML


def test_html_and_json_follow_the_project_list_once_there_is_one(
    store: Store, tmp_path: Path
) -> None:
    reference_bucket(store, tmp_path)
    wheel = make_wheel(tmp_path, "Acme.Tool", "1.0")
    publish_file(Catalog(store), wheel)
    # an index.html that disagrees with projects.json (a stale or hand-edited copy) is not
    # what the index answers: both formats come from projects.json
    store.put(layout.ROOT_HTML, REFERENCE_INDEX_HTML)
    app = build_application(store)
    expected = ["acme-tool", "my-pkg", "zeta"]
    assert _html_projects(_get(app)) == _json_projects(_get(app, JSON)) == expected
    assert store.get(layout.ROOT_HTML).data == REFERENCE_INDEX_HTML


def test_the_etag_of_each_format_revalidates(store: Store, tmp_path: Path) -> None:
    reference_bucket(store, tmp_path)
    app = build_application(store)
    for accept in (None, JSON):
        first = _get(app, accept)
        again = _get(app, accept, **{"if-none-match": first.headers["ETag"]})
        assert again.status == 304
        assert again.headers["ETag"] == first.headers["ETag"]
    assert _get(app).headers["ETag"] != _get(app, JSON).headers["ETag"]
