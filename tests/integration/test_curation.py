"""Curation: yank, unyank and remove, seen at once on the pages and by pip and uv."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pypi_simple import ProjectPage

from serverless_pypi.adapters.cli import main
from serverless_pypi.compose import build_application
from serverless_pypi.core.http import Headers, Request
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index import curation, layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage import NotFound
from serverless_pypi.storage.local import LocalStore
from tests.helpers.clients import pip_install, uv_install
from tests.helpers.dists import make_sdist, make_wheel
from tests.helpers.index import JSON, publish_file
from tests.helpers.servers import LiveServer


def published(catalog: Catalog, tmp_path: Path, name: str, *versions: str) -> list[Path]:
    paths = []
    for version in versions:
        for path in (make_wheel(tmp_path, name, version), make_sdist(tmp_path, name, version)):
            publish_file(catalog, path)
            paths.append(path)
    return paths


def pages(catalog: Catalog, name: str) -> tuple[ProjectPage, ProjectPage]:
    """The project's HTML and JSON pages as the application serves them, parsed strictly."""
    app = build_application(catalog.store)
    html = app.handle(Request("GET", f"{name}/"))
    data = app.handle(Request("GET", f"{name}/", headers=Headers({"Accept": JSON})))
    assert html.status == 200
    assert data.status == 200
    return (
        ProjectPage.from_html(name, html.body.decode(), base_url=f"http://x/simple/{name}/"),
        ProjectPage.from_json_data(json.loads(data.body), base_url=f"http://x/simple/{name}/"),
    )


def yanked(page: ProjectPage) -> dict[str, str | None]:
    return {p.filename: p.yanked_reason for p in page.packages if p.is_yanked}


def test_yank_a_version_with_a_reason(catalog: Catalog, tmp_path: Path) -> None:
    published(catalog, tmp_path, "Curated", "1.0", "2.0")
    changed = curation.yank(catalog, "CURATED", "2.0", reason="broken <b>\n build")
    assert changed == ["curated-2.0-py3-none-any.whl", "curated-2.0.tar.gz"]
    html, data = pages(catalog, "curated")
    expected = dict.fromkeys(changed, "broken <b> build")
    assert yanked(html) == expected
    assert yanked(data) == expected
    # yanking again changes nothing
    assert curation.yank(catalog, "curated", "2.0", reason="broken <b> build") == []


def test_yank_one_file_without_a_reason_and_unyank(catalog: Catalog, tmp_path: Path) -> None:
    published(catalog, tmp_path, "curated", "1.0")
    assert curation.yank(catalog, "curated", "curated-1.0.tar.gz") == ["curated-1.0.tar.gz"]
    html, data = pages(catalog, "curated")
    # PEP 592: yanked without a reason is an empty data-yanked / `"yanked": true`
    assert {p.filename: p.is_yanked for p in html.packages} == {
        "curated-1.0-py3-none-any.whl": False,
        "curated-1.0.tar.gz": True,
    }
    assert [p.is_yanked for p in data.packages] == [False, True]
    app = build_application(catalog.store)
    raw = json.loads(app.handle(Request("GET", "curated/", headers=Headers({"Accept": JSON}))).body)
    assert [f.get("yanked") for f in raw["files"]] == [None, True]
    assert 'data-yanked=""' in app.handle(Request("GET", "curated/")).body.decode()
    assert curation.unyank(catalog, "curated", "1.0") == ["curated-1.0.tar.gz"]
    html, data = pages(catalog, "curated")
    assert yanked(html) == yanked(data) == {}


def test_version_match_follows_pep_440(catalog: Catalog, tmp_path: Path) -> None:
    published(catalog, tmp_path, "curated", "1.0")
    assert len(curation.yank(catalog, "curated", "1.0.0")) == 2


def test_remove_a_file(catalog: Catalog, tmp_path: Path) -> None:
    published(catalog, tmp_path, "curated", "1.0", "2.0")
    name = NormalizedName("curated")
    removed = curation.remove(catalog, "curated", "curated-2.0-py3-none-any.whl")
    assert removed == ["curated-2.0-py3-none-any.whl"]
    with pytest.raises(NotFound):
        catalog.store.head("curated/curated-2.0-py3-none-any.whl")
    with pytest.raises(NotFound):
        catalog.store.head(layout.metadata_key(name, "curated-2.0-py3-none-any.whl"))
    html, data = pages(catalog, "curated")
    remaining = ["curated-1.0-py3-none-any.whl", "curated-1.0.tar.gz", "curated-2.0.tar.gz"]
    assert [p.filename for p in html.packages] == remaining
    assert [p.filename for p in data.packages] == remaining
    app = build_application(catalog.store)
    gone = app.handle(Request("GET", "curated/curated-2.0-py3-none-any.whl"))
    assert gone.status == 404


def test_removing_the_last_files_drops_the_project(catalog: Catalog, tmp_path: Path) -> None:
    published(catalog, tmp_path, "curated", "1.0")
    published(catalog, tmp_path, "kept", "1.0")
    assert len(curation.remove(catalog, "curated", "1.0")) == 2
    names, _ = catalog.read_project_names()
    assert names == {"kept"}
    app = build_application(catalog.store)
    assert app.handle(Request("GET", "curated/")).status == 404
    assert "curated" not in app.handle(Request("GET", "")).body.decode()
    assert list(catalog.store.list("curated/")) == []


@pytest.mark.parametrize(
    ("project", "target", "fragment"),
    [
        ("missing", "1.0", "lists no files"),
        ("curated", "3.0", "no version or file '3.0' (versions: 1.0)"),
        ("curated", "curated-9.whl", "no version or file"),
        ("curated", "not a version", "no version or file"),
        ("bad name!", "1.0", "not a valid project name"),
    ],
)
def test_errors(
    local_store: LocalStore, tmp_path: Path, project: str, target: str, fragment: str
) -> None:
    catalog = Catalog(local_store)
    published(catalog, tmp_path, "curated", "1.0")
    for action in (curation.yank, curation.unyank, curation.remove):
        with pytest.raises(curation.CurationError) as raised:
            action(catalog, project, target)
        assert fragment in str(raised.value)


def test_cli(local_store: LocalStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = Catalog(local_store)
    published(catalog, tmp_path, "curated", "1.0", "2.0")
    store = ["--store", str(local_store.root)]
    assert main(["yank", "curated", "2.0", "--reason", "security fix in 2.1", *store]) == 0
    out = capsys.readouterr().out
    assert "yanked: curated-2.0-py3-none-any.whl" in out
    html, _ = pages(catalog, "curated")
    assert set(yanked(html).values()) == {"security fix in 2.1"}
    assert main(["yank", "curated", "2.0", "--reason", "security fix in 2.1", *store]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert main(["unyank", "curated", "curated-2.0.tar.gz", *store]) == 0
    assert capsys.readouterr().out == "unyanked: curated-2.0.tar.gz\n"
    assert main(["remove", "curated", "1.0", *store]) == 0
    assert capsys.readouterr().out.count("removed: ") == 2
    assert main(["remove", "curated", "1.0", *store]) == 1
    assert "no version or file" in capsys.readouterr().err


def test_publish_keeps_the_yank_of_a_reuploaded_file(catalog: Catalog, tmp_path: Path) -> None:
    wheel, _ = published(catalog, tmp_path, "curated", "1.0")
    curation.yank(catalog, "curated", wheel.name, "bad")
    assert publish_file(catalog, wheel).status == "exists"
    index, _ = catalog.read_project(NormalizedName("curated"))
    assert index.files[wheel.name].yanked == "bad"


# -- real installers ----------------------------------------------------------------------


def _installed_version(target: Path) -> str:
    return (target / "curated.py").read_text().split("'")[1]


@pytest.mark.slow
def test_pip_and_uv_skip_yanked_files_unless_pinned(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    catalog = Catalog(store)
    for version in ("1.0", "2.0"):
        wheel = make_wheel(tmp_path, "curated", version)
        publish_file(catalog, wheel)
    server = live_server(str(tmp_path / "store"))
    curation.yank(catalog, "curated", "2.0", "broken")  # while the server runs: seen at once

    def pip(requirement: str, target: Path) -> str:
        result = pip_install(server.url, target, requirement)
        assert result.returncode == 0, result.stdout + result.stderr
        return _installed_version(target)

    def uv(requirement: str, target: Path) -> str:
        result = uv_install(server.url, target, requirement)
        assert result.returncode == 0, result.stdout + result.stderr
        return _installed_version(target)

    assert pip("curated", tmp_path / "pip") == "1.0"
    assert pip("curated==2.0", tmp_path / "pip-pinned") == "2.0"
    assert uv("curated", tmp_path / "uv") == "1.0"
    assert uv("curated==2.0", tmp_path / "uv-pinned") == "2.0"
    curation.unyank(catalog, "curated", "2.0")
    assert pip("curated", tmp_path / "pip-after") == "2.0"
