"""The application over both stores: `build_application(store).handle(Request(...))`."""

from __future__ import annotations

import gzip
import hashlib
import json
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import pytest
from pypi_simple import IndexPage, ProjectPage

from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.core.model import Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.render import API_VERSION
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog, Change
from serverless_pypi.storage import Store
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.s3 import S3Store
from serverless_pypi.web.app import Application
from tests.helpers.dists import make_sdist, make_wheel
from tests.helpers.index import JSON, content, publish_file
from tests.helpers.servers import create_bucket

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)
BASE = "https://pypi.example.com/simple/"


def call(
    app: Application, path: str, method: str = "GET", query: str = "", **headers: str
) -> Response:
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return app.handle(Request(method, path, query, Headers(named)))


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request) as response:  # noqa: S310 (moto on 127.0.0.1)
        headers = {k.lower(): v for k, v in response.headers.items()}
        return response.status, headers, response.read()


def download(app: Application, path: str, method: str = "GET") -> bytes:
    """Follow the application's answer for a file to its bytes, as a client would."""
    response = call(app, path, method)
    if response.status == 302:
        status, _, data = fetch(response.headers["Location"], method)
        assert status == 200
        return data
    assert response.status == 200, response.body
    return b"" if method == "HEAD" else content(response)


# -- a populated index, shared by the read-only tests of a module -------------------------


@dataclass
class Populated:
    store: Store
    app: Application
    wheel: Path
    sdist: Path
    raw: dict[str, bytes]  # key -> bytes of the unindexed, reference-layout files


@pytest.fixture(scope="module", params=["local", "s3"])
def populated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Populated]:
    work = tmp_path_factory.mktemp("populated")
    store: Store
    if request.param == "local":
        store = LocalStore(work / "store")
    else:
        request.getfixturevalue("aws_env")
        moto_url = request.getfixturevalue("moto_url")
        bucket = create_bucket(moto_url, "app")
        store = S3Store(bucket, "", endpoint_url=moto_url)
    # the reference layout: files copied straight into un-normalized folders, no derived data
    raw = {
        "Other_Pkg/other_pkg-1.0.tar.gz": b"sdist one",
        "other.pkg/other_pkg-2.0-py3-none-any.whl": b"wheel two",
    }
    for key, data in raw.items():
        store.put(key, data)
    wheel = make_wheel(work, "my_pkg", "1.0", requires_python=">=3.8,<4")
    sdist = make_sdist(work, "my_pkg", "1.1", metadata_version="2.2")
    publish_file(store, wheel)
    publish_file(store, sdist)
    yield Populated(store, build_application(store, uploads=False), wheel, sdist, raw)


# -- the project list ---------------------------------------------------------------------


def test_root_page_html_and_json(populated: Populated) -> None:
    html = call(populated.app, "")
    assert html.status == 200
    assert html.headers["Content-Type"] == "text/html; charset=utf-8"
    assert IndexPage.from_html(content(html)).projects == ["my-pkg", "other-pkg"]
    as_json = call(populated.app, "", accept=JSON)
    assert as_json.status == 200
    assert as_json.headers["Content-Type"] == JSON
    data = json.loads(content(as_json))
    assert data["meta"]["api-version"] == API_VERSION
    assert data["projects"] == [{"name": "my-pkg"}, {"name": "other-pkg"}]
    assert json.loads(content(call(populated.app, "", query="format=json"))) == data


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_empty_index(kind: str, request: pytest.FixtureRequest) -> None:
    app = build_application(request.getfixturevalue(f"{kind}_store"))
    assert IndexPage.from_html(content(call(app, ""))).projects == []
    assert json.loads(content(call(app, "", accept=JSON)))["projects"] == []
    assert call(app, "anything/").status == 404


def test_reference_layout_is_listed_live(store: Store) -> None:
    """A store filled by copying files (no derived data at all) is served as it is."""
    store.put("My_Pkg/my_pkg-1.0.tar.gz", b"a")
    store.put("my.pkg/my_pkg-2.0.tar.gz", b"bb")
    store.put("my.pkg/notes.txt", b"ccc")
    store.put("zeta/zeta-1.0.tar.gz", b"z")
    app = build_application(store)
    assert IndexPage.from_html(content(call(app, ""))).projects == ["my-pkg", "zeta"]
    assert json.loads(content(call(app, "", accept=JSON)))["projects"] == [
        {"name": "my-pkg"},
        {"name": "zeta"},
    ]
    page = json.loads(content(call(app, "my-pkg/", accept=JSON)))
    assert page["name"] == "my-pkg"
    files = {f["filename"]: f for f in page["files"]}
    # only distributions of the project are listed (and served): not notes.txt
    assert set(files) == {"my_pkg-1.0.tar.gz", "my_pkg-2.0.tar.gz"}
    assert call(app, "my-pkg/notes.txt").status == 404
    assert files["my_pkg-2.0.tar.gz"]["size"] == 2
    assert files["my_pkg-2.0.tar.gz"]["hashes"] == {}
    assert "core-metadata" not in files["my_pkg-2.0.tar.gz"]
    assert page["versions"] == ["1.0", "2.0"]
    # both folders serve their files under the normalized name
    assert download(app, "my-pkg/my_pkg-1.0.tar.gz") == b"a"
    assert download(app, "my-pkg/my_pkg-2.0.tar.gz") == b"bb"
    # the un-normalized folder name is not a second project
    assert call(app, "My_Pkg/").status == 301


# -- project pages ------------------------------------------------------------------------


def test_project_page_html_and_json_agree(populated: Populated) -> None:
    html = call(populated.app, "my-pkg/")
    as_json = call(populated.app, "my-pkg/", accept=PIP_ACCEPT)
    assert html.status == as_json.status == 200
    assert html.headers["Content-Type"] == "text/html; charset=utf-8"
    assert as_json.headers["Content-Type"] == JSON
    base = BASE + "my-pkg/"
    from_html = ProjectPage.from_html("my-pkg", content(html), base_url=base)
    from_json = ProjectPage.from_json_data(json.loads(content(as_json)), base_url=base)

    def summary(page: ProjectPage) -> list[tuple[object, ...]]:
        return [
            (p.filename, p.url, p.digests, p.requires_python, p.metadata_digests, p.is_yanked)
            for p in page.packages
        ]

    assert summary(from_html) == summary(from_json)
    wheel_sha = hashlib.sha256(populated.wheel.read_bytes()).hexdigest()
    wheel = from_json.packages[0]
    assert wheel.filename == populated.wheel.name
    assert wheel.url == base + populated.wheel.name  # a stable URL on the index
    assert wheel.digests == {"sha256": wheel_sha}
    assert wheel.requires_python == ">=3.8,<4"
    assert wheel.has_metadata
    assert from_json.versions == ["1.0", "1.1"]
    assert from_html.repository_version == from_json.repository_version == API_VERSION
    data = json.loads(content(as_json))
    assert data["files"][0]["size"] == populated.wheel.stat().st_size
    assert data["files"][0]["upload-time"].endswith("Z")
    # pages link to the index, never to presigned store URLs
    assert b"X-Amz" not in content(html) and b"X-Amz" not in content(as_json)


def test_unindexed_project_merges_folders(populated: Populated) -> None:
    response = call(populated.app, "other-pkg/")
    assert response.status == 200
    page = ProjectPage.from_html("other-pkg", content(response), base_url=BASE + "other-pkg/")
    assert [p.filename for p in page.packages] == [
        "other_pkg-1.0.tar.gz",
        "other_pkg-2.0-py3-none-any.whl",
    ]
    assert download(populated.app, "other-pkg/other_pkg-1.0.tar.gz") == b"sdist one"
    assert download(populated.app, "other-pkg/other_pkg-2.0-py3-none-any.whl") == b"wheel two"


def test_derived_data_is_never_a_project_or_a_file(populated: Populated) -> None:
    projects = ["my-pkg", "other-pkg"]
    assert IndexPage.from_html(content(call(populated.app, ""))).projects == projects
    as_json = json.loads(content(call(populated.app, "", accept=JSON)))
    assert [p["name"] for p in as_json["projects"]] == projects
    for accept in ("text/html", JSON):
        assert b"serverless-pypi" not in content(call(populated.app, "", accept=accept))
        page = content(call(populated.app, "my-pkg/", accept=accept))
        assert b".metadata" not in page and b"projects" not in page
    html = ProjectPage.from_html("my-pkg", content(call(populated.app, "my-pkg/")))
    assert sorted(p.filename for p in html.packages) == sorted(
        [populated.wheel.name, populated.sdist.name]
    )
    # the reserved prefix cannot be reached through the index
    for path in (
        ".serverless-pypi/",
        ".serverless-pypi/projects.json",
        ".serverless-pypi/projects/my-pkg.json",
        ".serverless-pypi/pages/my-pkg.html.gz",
        "my-pkg/.serverless-pypi",
        "%2Eserverless-pypi/projects.json",
    ):
        response = call(populated.app, path)
        assert 400 <= response.status < 500, path
    # index.html is the root page's store object, never a project
    assert call(populated.app, "index-html/").status == 404


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("My_Pkg/", "../my-pkg/"),
        ("my_pkg/", "../my-pkg/"),
        ("MY.PKG/", "../my-pkg/"),
        ("my--pkg/", "../my-pkg/"),
        ("my-pkg", "my-pkg/"),  # PEP 503: page URLs end in "/"
        ("My_Pkg", "my-pkg/"),
        ("other_pkg/", "../other-pkg/"),
        ("unknown_Project", "unknown-project/"),
    ],
)
def test_redirects_to_the_canonical_url(populated: Populated, path: str, location: str) -> None:
    response = call(populated.app, path)
    assert response.status == 301
    assert response.headers["Location"] == location
    # relative, so it is right below any base path or custom domain
    canonical = location.removeprefix("../")
    for base in (BASE, "https://abc.execute-api.us-east-1.amazonaws.com/prod/simple/"):
        assert urljoin(base + path, response.headers["Location"]) == base + canonical
    assert call(populated.app, path, "HEAD").status == 301


@pytest.mark.parametrize(
    "path",
    [
        "unknown/",
        "my-pkg/unknown-1.0.tar.gz",
        "my-pkg/my_pkg-9.9.tar.gz",
        "my-pkg/my_pkg-1.0-py3-none-any.whl.metadata.metadata",
        "unknown/unknown-1.0.tar.gz",
        "unknown/unknown-1.0.tar.gz.metadata",
        "my-pkg/a/b",
        "my-pkg/a/",
        "other-pkg/other_pkg-1.0.tar.gz.metadata",  # unindexed: no metadata to serve
    ],
)
def test_not_found(populated: Populated, path: str) -> None:
    response = call(populated.app, path)
    assert response.status == 404
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.body.strip()


# -- downloads and metadata ---------------------------------------------------------------


def test_downloads(populated: Populated) -> None:
    path = "my-pkg/" + populated.wheel.name
    response = call(populated.app, path)
    if isinstance(populated.store, S3Store):
        assert response.status == 302
        location = response.headers["Location"]
        assert "X-Amz-Signature=" in location and "X-Amz-Expires=900" in location
        assert response.headers["Cache-Control"] == "no-store"
    else:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(populated.wheel.stat().st_size)
        assert response.headers["Content-Type"] == "application/octet-stream"
    assert download(populated.app, path) == populated.wheel.read_bytes()
    assert download(populated.app, "my-pkg/" + populated.sdist.name) == populated.sdist.read_bytes()
    # any spelling of the project finds the file
    assert download(populated.app, "My_Pkg/" + populated.wheel.name) == populated.wheel.read_bytes()
    assert call(populated.app, path, "HEAD").status in {200, 302}
    download(populated.app, path, "HEAD")


def test_s3_download_presigns_per_method_with_the_configured_ttl(
    s3_store: S3Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(tmp_path, "pkg", "1.0")
    publish_file(s3_store, wheel)
    signed: list[tuple[str, str, int]] = []
    original = s3_store.presign

    def spy(key: str, method: str, expires: int) -> str | None:
        signed.append((key, method, expires))
        return original(key, method, expires)

    monkeypatch.setattr(s3_store, "presign", spy)
    app = build_application(s3_store, Settings.from_env({"S3_PRESIGNED_URL_TTL": "60"}))
    get = call(app, "pkg/" + wheel.name)
    head = call(app, "pkg/" + wheel.name, "HEAD")
    assert get.status == head.status == 302
    assert "X-Amz-Expires=60&" in get.headers["Location"]
    assert signed == [(f"pkg/{wheel.name}", "GET", 60), (f"pkg/{wheel.name}", "HEAD", 60)]
    status, headers, _ = fetch(head.headers["Location"], "HEAD")
    assert status == 200 and headers["content-length"] == str(wheel.stat().st_size)
    # a fresh URL each time, so the redirect itself must never be cached
    assert get.headers["Cache-Control"] == head.headers["Cache-Control"] == "no-store"


def test_metadata_files_byte_for_byte(populated: Populated) -> None:
    with zipfile.ZipFile(populated.wheel) as archive:
        expected = archive.read("my_pkg-1.0.dist-info/METADATA")
    path = f"my-pkg/{populated.wheel.name}.metadata"
    response = call(populated.app, path)
    assert response.status == 200
    assert content(response) == expected
    # the page advertises exactly these bytes (PEP 658 / PEP 714)
    page = json.loads(content(call(populated.app, "my-pkg/", accept=JSON)))
    wheel = next(f for f in page["files"] if f["filename"] == populated.wheel.name)
    assert wheel["core-metadata"] == {"sha256": hashlib.sha256(expected).hexdigest()}
    assert call(populated.app, path, "HEAD").status == 200
    # an sdist with Metadata-Version 2.2 serves its PKG-INFO
    sdist = call(populated.app, f"my-pkg/{populated.sdist.name}.metadata")
    assert sdist.status == 200 and content(sdist).startswith(b"Metadata-Version: 2.2")


# -- caching ------------------------------------------------------------------------------

PAGES = [("", "text/html"), ("", JSON), ("my-pkg/", "text/html"), ("my-pkg/", JSON)]
PAGES += [("other-pkg/", "text/html"), ("other-pkg/", JSON)]  # listed live


@pytest.mark.parametrize(("path", "accept"), PAGES)
def test_etag_and_304(populated: Populated, path: str, accept: str) -> None:
    app = populated.app
    first = call(app, path, accept=accept)
    assert first.status == 200
    etag = first.headers["ETag"]
    assert etag.removeprefix("W/").startswith('"') and etag.endswith('"')
    assert first.headers["Vary"].startswith("Accept")
    assert "Accept" in [v.strip() for v in first.headers["Vary"].split(",")]
    assert first.headers["Cache-Control"] == "max-age=0, must-revalidate"
    again = call(app, path, accept=accept)
    assert again.headers["ETag"] == etag  # stable while nothing changes
    strong = etag.removeprefix("W/")
    for value in (etag, strong, "W/" + strong, f'"nope", {etag}', "*"):
        revalidated = call(app, path, accept=accept, if_none_match=value)
        assert revalidated.status == 304, value
        assert revalidated.body == b""
        assert revalidated.headers["ETag"] == etag
        assert "Accept" in revalidated.headers["Vary"]
    assert call(app, path, accept=accept, if_none_match='"nope"').status == 200
    head = call(app, path, "HEAD", accept=accept)
    assert head.status == 200 and head.headers["ETag"] == etag


def test_html_and_json_have_different_etags(populated: Populated) -> None:
    html = call(populated.app, "my-pkg/").headers["ETag"]
    as_json = call(populated.app, "my-pkg/", accept=JSON).headers["ETag"]
    assert html != as_json
    assert call(populated.app, "my-pkg/", accept=JSON, if_none_match=html).status == 200


def test_etag_changes_when_the_page_changes(store: Store, tmp_path: Path) -> None:
    app = build_application(store)
    publish_file(store, make_wheel(tmp_path, "pkg", "1.0"))
    for path in ("pkg/", ""):
        etag = call(app, path, accept=JSON).headers["ETag"]
        assert call(app, path, accept=JSON, if_none_match=etag).status == 304
    before = {p: call(app, p, accept=JSON).headers["ETag"] for p in ("pkg/", "")}
    publish_file(store, make_wheel(tmp_path, "pkg", "2.0"))
    publish_file(store, make_wheel(tmp_path, "newcomer", "1.0"))
    for path, etag in before.items():
        response = call(app, path, accept=JSON, if_none_match=etag)
        assert response.status == 200, path
        assert response.headers["ETag"] != etag


def test_cache_control_is_configurable(populated: Populated) -> None:
    app = build_application(
        populated.store, Settings.from_env({"CACHE_CONTROL": "max-age=60, public"})
    )
    for path in ("", "my-pkg/", "other-pkg/"):
        assert call(app, path).headers["Cache-Control"] == "max-age=60, public"


GZIP_PAGES = [(p, a) for p in ("", "my-pkg/", "many/") for a in ("text/html", JSON)]


def test_gzip_when_accepted(store: Store, tmp_path: Path) -> None:
    # enough files and projects for every page to be worth compressing (live and stored)
    for i in range(60):
        store.put(f"many/many-{i}.0.tar.gz", b"x")
        store.put(f"project-{i:02d}/project_{i:02d}-1.0.tar.gz", b"x")
    publish_file(store, make_wheel(tmp_path, "my_pkg", "1.0"))
    app = build_application(store)
    for path, accept in GZIP_PAGES:
        plain = call(app, path, accept=accept)
        zipped = call(app, path, accept=accept, accept_encoding="gzip, deflate, br")
        assert plain.status == zipped.status == 200
        assert "Content-Encoding" not in plain.headers, (path, accept)
        assert zipped.headers["Content-Encoding"] == "gzip", (path, accept)
        assert gzip.decompress(zipped.body) == plain.body
        assert "Accept-Encoding" in zipped.headers["Vary"]
        refused = call(app, path, accept=accept, accept_encoding="gzip;q=0, br")
        assert "Content-Encoding" not in refused.headers and refused.body == plain.body


# -- fallback to another index ------------------------------------------------------------


def fallback_app(store: Store) -> Application:
    settings = Settings.from_env(
        {"FALLBACK_INDEX_URL": "https://pypi.org/simple/", "PRIVATE_PROJECTS": "acme-* corp_*,x"}
    )
    return build_application(store, settings)


@pytest.mark.parametrize("name", ["requests", "numpy", "acme", "acmex", "corpx", "x-y"])
def test_fallback_redirects_unknown_projects(populated: Populated, name: str) -> None:
    response = call(fallback_app(populated.store), f"{name}/")
    assert response.status == 302  # temporary: the project may be published here later
    assert response.headers["Location"] == f"https://pypi.org/simple/{name}/"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("name", ["my-pkg", "other-pkg"])
def test_fallback_never_redirects_present_projects(populated: Populated, name: str) -> None:
    app = fallback_app(populated.store)
    assert call(app, f"{name}/").status == 200
    assert call(app, f"{name}/", accept=JSON).status == 200


@pytest.mark.parametrize(
    "name", ["acme-internal", "acme-", "acme-x-y", "acme_internal", "corp-tools", "x"]
)
def test_fallback_never_redirects_private_names(populated: Populated, name: str) -> None:
    app = fallback_app(populated.store)
    response = call(app, f"{name}/")
    if response.status == 301:  # un-normalized spelling: first the canonical URL
        response = call(app, urljoin(name + "/", response.headers["Location"]))
    assert 400 <= response.status < 500, name
    assert "Location" not in response.headers


def test_fallback_is_for_project_pages_only(populated: Populated) -> None:
    app = fallback_app(populated.store)
    assert call(app, "requests/requests-2.0.tar.gz").status == 404
    assert call(app, "my-pkg/my_pkg-9.0.tar.gz").status == 404


def test_no_fallback_by_default(populated: Populated) -> None:
    assert call(populated.app, "requests/").status == 404


# -- methods and bad input ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"])
@pytest.mark.parametrize("path", ["", "my-pkg/", "my-pkg/my_pkg-1.1.tar.gz", "legacy/"])
def test_other_methods_are_not_allowed(populated: Populated, method: str, path: str) -> None:
    response = call(populated.app, path, method)
    assert response.status == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


BAD_PATHS = [
    # dot segments, plain and percent-encoded
    "..",
    "../",
    "../etc/passwd",
    "./",
    "my-pkg/..",
    "my-pkg/../",
    "my-pkg/./",
    "my-pkg/.",
    "%2e%2e/",
    "%2E%2E/my-pkg/",
    "my-pkg/%2e%2e",
    "my-pkg/%2e",
    # percent-encoded separators and backslashes
    "my-pkg%2F/",
    "my-pkg%2f..%2f/",
    "my-pkg/a%2Fb.tar.gz",
    "my-pkg/..%2F..%2Fsecret",
    "my-pkg%5C/",
    "my-pkg/a%5cb.tar.gz",
    "my-pkg\\/",
    "my-pkg/..\\..\\x",
    # control characters, encoded and raw
    "my-pkg%00/",
    "my-pkg/x%00.tar.gz",
    "my-pkg%0A/",
    "my-pkg%0d%0aSet-Cookie:x/",
    "my-pkg%7F/",
    "my-pkg/x%09y.whl",
    "my-pkg\x01/",
    "my-pkg/\x00",
    "my-pkg/x\ny.whl",
    # invalid UTF-8 in percent-encoding
    "%ff/",
    "%c3%28/",
    "my-pkg/%80.whl",
    "my-pkg/%ed%a0%80.whl",  # an encoded surrogate
    "my-pkg/%C0%AE%C0%AE",  # over-long "..", rejected by strict UTF-8
    # over-long names and paths
    "x" * 201 + "/",
    "x" * 5000,
    "x" * 5000 + "/",
    "my-pkg/" + "b" * 256,
    "my-pkg/" + "%C3%A9" * 128,  # 256 bytes once decoded
    # not project names
    "-a/",
    "a_/",
    "caf%C3%A9/",
    "café/",
    "a%20b/",
    "%20/",
    "%/",
    "a+b/",
    "/",
    "//",
    "/my-pkg/",
    "my-pkg/.hidden",
    "my-pkg/.serverless-pypi",
]


@pytest.mark.parametrize("path", BAD_PATHS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_bad_paths_get_a_4xx(populated: Populated, path: str, method: str) -> None:
    response = call(populated.app, path, method)
    assert 400 <= response.status < 500, (path, response.status, response.body)
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.body.strip(), "a message a person can act on"
    assert "Location" not in response.headers


def test_over_long_path_is_414(populated: Populated) -> None:
    assert call(populated.app, "x" * 5000 + "/").status == 414


BAD_HEADERS: list[dict[str, str]] = [
    {"accept": "text/html;level=1"},
    {"accept": ";;;"},
    {"accept": "q=abc"},
    {"accept": "application/vnd.pypi.simple.v1+json;q=abc"},
    {"accept": "*/*;q=1e999"},
    {"accept": "\x00\x01\x02"},
    {"accept": ",,,,"},
    {"accept": "text/plain;q=0.5, " * 20_000},
    {"accept": "é/ü; q=ä"},
    {"if-none-match": ",,,"},  # an empty list (RFC 9110 5.6.1); malformed ones get a 400
    {"accept-encoding": ";;;"},
    {"accept-encoding": "gzip;q=abc"},
    {"accept-encoding": "gzip;q=1e999, *;q=-1"},
    {"accept-encoding": "x" * 100_000},
]


@pytest.mark.parametrize("headers", BAD_HEADERS)
@pytest.mark.parametrize("path", ["", "my-pkg/", "other-pkg/"])
def test_malformed_headers_never_fail(
    populated: Populated, headers: dict[str, str], path: str
) -> None:
    response = populated.app.handle(Request("GET", path, "", Headers(headers)))
    assert response.status == 200, (headers, response.body)
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"  # the default


def test_only_well_formed_etags_reach_the_store(
    populated: Populated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile If-None-Match is compared here, never sent on to S3 (which may answer 400)."""
    asked: list[str | None] = []
    original = populated.store.get

    def spy(key: str, *, if_none_match: str | None = None) -> Any:
        asked.append(if_none_match)
        return original(key, if_none_match=if_none_match)

    monkeypatch.setattr(populated.store, "get", spy)
    etag = call(populated.app, "my-pkg/").headers["ETag"]
    for value in ('"', "W/", "\x00", '"a"b"', '"x\ny"', "*", f"{etag}, {etag}", '"é"', etag):
        response = call(populated.app, "my-pkg/", if_none_match=value)
        assert response.status in {200, 304, 400}  # malformed ones: 400 (issue 10, item 10)
    sent = [v for v in asked if v is not None]
    # the store compares the tag of the page this process holds (identity: the store's own)
    assert sent and set(sent) == {etag}


@pytest.mark.parametrize(
    "query",
    ["format=", "format=%ff", "format=xml", "format=json&format=html", "%", "&&&", "a=" * 5000],
)
def test_odd_queries_never_fail(populated: Populated, query: str) -> None:
    response = call(populated.app, "my-pkg/", query=query)
    assert response.status == 200


@pytest.mark.parametrize(
    ("accept", "query", "content_type"),
    [
        (None, "", "text/html; charset=utf-8"),
        (PIP_ACCEPT, "", JSON),
        ("application/vnd.pypi.simple.latest+json", "", JSON),
        (
            "application/vnd.pypi.simple.v1+html",
            "",
            "application/vnd.pypi.simple.v1+html; charset=utf-8",
        ),
        ("application/json", "", "text/html; charset=utf-8"),
        (PIP_ACCEPT, "format=html", "text/html; charset=utf-8"),
        (None, "format=json", JSON),
        (None, "format=application/vnd.pypi.simple.v1%2Bjson", JSON),
    ],
)
def test_negotiation(
    populated: Populated, accept: str | None, query: str, content_type: str
) -> None:
    for path in ("", "my-pkg/", "other-pkg/"):
        headers = {} if accept is None else {"accept": accept}
        response = call(populated.app, path, query=query, **headers)
        assert response.status == 200
        assert response.headers["Content-Type"] == content_type, path
        if content_type == JSON:
            json.loads(content(response))


# -- values written into pages ------------------------------------------------------------


def test_values_from_the_manifest_are_escaped(store: Store, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg", "1.0", requires_python=">=3.8")
    publish_file(store, wheel)
    reason = '"><script>alert(1)</script><a href="'

    def yank(index: Manifest) -> Change[None]:
        index.files[wheel.name] = index.files[wheel.name].with_changes(yanked=reason)
        return Change(None)

    Catalog(store).update_project(NormalizedName("pkg"), yank)
    app = build_application(store)
    html = content(call(app, "pkg/"))
    assert b"<script>" not in html
    page = ProjectPage.from_html("pkg", html)
    assert page.packages[0].yanked_reason == reason
    assert page.packages[0].requires_python == ">=3.8"
    data = json.loads(content(call(app, "pkg/", accept=JSON)))
    assert data["files"][0]["yanked"] == reason


def test_file_names_with_odd_characters_round_trip(store: Store) -> None:
    odd = 'pkg-1.0 <b>&"quoted" #1?.tar.gz'
    store.put(f"pkg/{odd}", b"odd bytes")
    # an epoch and a local version: the characters a distribution's name may hold
    valid = "pkg-1!1.0+local.7.tar.gz"
    store.put(f"pkg/{valid}", b"valid bytes")
    app = build_application(store)
    page = ProjectPage.from_html("pkg", content(call(app, "pkg/")), base_url=BASE + "pkg/")
    (package,) = page.packages  # not a distribution: the odd name is neither listed nor served
    assert call(app, "pkg/" + quote(odd)).status == 404
    assert package.filename == valid
    assert package.url.startswith(BASE + "pkg/")
    # follow the page's link exactly as a client would: the percent-encoded href
    href = package.url.removeprefix(BASE)
    assert download(app, href) == b"valid bytes"


# -- pages too large for the front --------------------------------------------------------


def test_large_page_is_served_by_the_store(store: Store, tmp_path: Path) -> None:
    publish_file(store, make_wheel(tmp_path, "pkg", "1.0", requires_python=">=3.8"))
    publish_file(store, make_wheel(tmp_path, "pkg", "2.0", requires_python=">=3.9"))
    inline = build_application(store)
    expected = {
        accept: content(call(inline, "pkg/", accept=accept)) for accept in ("text/html", JSON)
    }
    lambda_like = build_application(store, Settings(max_inline_body=300))
    for accept, body in expected.items():
        for encoding in ("", "gzip"):
            response = call(lambda_like, "pkg/", accept=accept, accept_encoding=encoding)
            if isinstance(store, LocalStore):
                assert response.status == 200  # no presigned URLs: nothing to redirect to
                assert content(response) == body
                continue
            assert response.status == 302, (accept, encoding)
            location = response.headers["Location"]
            assert "X-Amz-Signature=" in location
            status, headers, data = fetch(location)
            assert status == 200
            assert headers.get("content-encoding") == "gzip"  # clients decode it
            assert gzip.decompress(data) == body
            head = call(lambda_like, "pkg/", "HEAD", accept=accept, accept_encoding=encoding)
            assert head.status == 302
            assert fetch(head.headers["Location"], "HEAD")[0] == 200
    # small pages stay inline
    assert call(lambda_like, "", accept=JSON).status == 200


def test_store_failure_is_a_502_not_a_404(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serverless_pypi.storage import StoreError

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("AccessDenied")

    app = build_application(s3_store)
    monkeypatch.setattr(s3_store, "get", broken)
    monkeypatch.setattr(s3_store, "list_folders", broken)
    for path in ("", "pkg/"):
        response = call(app, path)
        assert response.status == 502, path
        assert b"AccessDenied" not in response.body


def test_layout_keys_are_not_project_names() -> None:
    from serverless_pypi.core.names import is_valid_project_name

    for key in (layout.ROOT_LIST, layout.manifest_key(NormalizedName("x")), layout.TOKENS):
        assert not is_valid_project_name(key.split("/")[0])
