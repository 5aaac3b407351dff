"""One page model, two renderings: PEP 503 HTML and PEP 691 JSON, with every value escaped."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypi_simple import IndexPage, ProjectPage

from serverless_pypi.core.model import FileRecord, Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.render import (
    API_VERSION,
    file_url,
    project_page,
    render_html,
    render_json,
    root_page,
)

SHA = "a" * 64
META_SHA = "b" * 64
TIME = "2024-05-06T07:08:09.123456Z"


def record(filename: str, **fields: object) -> FileRecord:
    values: dict[str, object] = {
        "filename": filename,
        "key": f"pkg/{filename}",
        "size": 123,
        "upload_time": TIME,
    }
    values.update(fields)
    return FileRecord(**values)  # type: ignore[arg-type]


def index_of(*records: FileRecord, name: str = "pkg") -> Manifest:
    return Manifest(NormalizedName(name), {r.filename: r for r in records})


class Anchors(HTMLParser):
    """Every tag and anchor of a page, with attribute values and text unescaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self.tags: list[str] = []
        self.meta: list[dict[str, str | None]] = []
        self._open: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self._open, self._text = dict(attrs), ""
        if tag == "meta":
            self.meta.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open, self._text))
            self._open = None


def parse(html: bytes) -> Anchors:
    parser = Anchors()
    parser.feed(html.decode("utf-8"))
    parser.close()
    return parser


# -- the PEP 691 shape --------------------------------------------------------------------


def test_api_version_is_at_least_1_1() -> None:
    major, minor = (int(p) for p in API_VERSION.split("."))
    assert (major, minor) >= (1, 1)  # PEP 700: versions, size, upload-time


def test_project_page_shape() -> None:
    page = project_page(
        index_of(
            record(
                "pkg-1.0-py3-none-any.whl",
                sha256=SHA,
                requires_python=">=3.8",
                metadata_sha256=META_SHA,
            ),
            record("pkg-1.0.tar.gz"),
            record("pkg-0.9.tar.gz", sha256=SHA, yanked=""),
            record("pkg-0.8.tar.gz", sha256=SHA, yanked="broken <build>"),
        )
    )
    assert page["meta"] == {"api-version": API_VERSION}
    assert page["name"] == "pkg"
    assert page["versions"] == ["0.8", "0.9", "1.0"]
    by_name = {f["filename"]: f for f in page["files"]}
    assert by_name["pkg-1.0-py3-none-any.whl"] == {
        "filename": "pkg-1.0-py3-none-any.whl",
        "url": "pkg-1.0-py3-none-any.whl",
        "hashes": {"sha256": SHA},
        "size": 123,
        "upload-time": TIME,
        "provenance": None,  # PEP 740 (api 1.3): no attestations held
        "requires-python": ">=3.8",
        "core-metadata": {"sha256": META_SHA},
    }
    # PEP 691: `hashes` is always present, possibly empty; optional keys only when known
    assert by_name["pkg-1.0.tar.gz"] == {
        "filename": "pkg-1.0.tar.gz",
        "url": "pkg-1.0.tar.gz",
        "hashes": {},
        "size": 123,
        "upload-time": TIME,
        "provenance": None,
    }
    # PEP 592 / PEP 691: yanked is true, or the reason
    assert by_name["pkg-0.9.tar.gz"]["yanked"] is True
    assert by_name["pkg-0.8.tar.gz"]["yanked"] == "broken <build>"
    # PEP 714: JSON uses `core-metadata` only
    assert "dist-info-metadata" not in json.dumps(page)


def test_files_are_listed_in_version_order() -> None:
    names = [
        "pkg-1.10.tar.gz",
        "pkg-1.9.tar.gz",
        "pkg-1.0a1.tar.gz",
        "pkg-1.0.tar.gz",
        "pkg-1.0.post1.tar.gz",
        "pkg-1.0-py3-none-any.whl",
        "pkg-2.0.dev0.tar.gz",
    ]
    page = project_page(index_of(*(record(n) for n in names)))
    assert [f["filename"] for f in page["files"]] == [
        "pkg-1.0a1.tar.gz",
        "pkg-1.0-py3-none-any.whl",
        "pkg-1.0.tar.gz",
        "pkg-1.0.post1.tar.gz",
        "pkg-1.9.tar.gz",
        "pkg-1.10.tar.gz",
        "pkg-2.0.dev0.tar.gz",
    ]
    assert page["versions"] == ["1.0a1", "1.0", "1.0.post1", "1.9", "1.10", "2.0.dev0"]


def test_root_page_is_sorted_and_unique() -> None:
    page = root_page(["b", "a", "b", "c-d"])
    assert page == {
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": n} for n in "ab"] + [{"name": "c-d"}],
    }


def test_render_json_round_trips_and_keeps_unicode() -> None:
    page = project_page(index_of(record("pkg-1.0.tar.gz", yanked="défectueux ☃")))
    body = render_json(page)
    assert json.loads(body) == page
    assert "☃".encode() in body


# -- the PEP 503 HTML ---------------------------------------------------------------------


def test_html_project_page() -> None:
    index = index_of(
        record(
            "pkg-1.0-py3-none-any.whl",
            sha256=SHA,
            requires_python=">=3.8,<4",
            metadata_sha256=META_SHA,
        ),
        record("pkg-0.9.tar.gz", yanked=""),
    )
    html = render_html(project_page(index))
    assert html.startswith(b"<!DOCTYPE html>")
    parsed = parse(html)
    # PEP 629: the repository version on every page
    assert {"name": "pypi:repository-version", "content": API_VERSION} in parsed.meta
    assert len(parsed.anchors) == 2
    (old, old_text), (new, new_text) = parsed.anchors
    assert new["href"] == f"pkg-1.0-py3-none-any.whl#sha256={SHA}"
    assert new["data-requires-python"] == ">=3.8,<4"
    assert new["data-core-metadata"] == f"sha256={META_SHA}"
    assert new["data-dist-info-metadata"] == f"sha256={META_SHA}"
    assert "data-yanked" not in new
    assert new_text == "pkg-1.0-py3-none-any.whl"
    assert old["href"] == "pkg-0.9.tar.gz"  # no hash known: no fragment
    assert old["data-yanked"] == ""
    assert "data-core-metadata" not in old and "data-requires-python" not in old
    assert old_text == "pkg-0.9.tar.gz"
    # the specifier's < and > are written as entities (PEP 503)
    assert b'data-requires-python="&gt;=3.8,&lt;4"' in html


def test_html_root_page() -> None:
    html = render_html(root_page(["my-pkg", "other"]))
    parsed = parse(html)
    assert parsed.anchors == [({"href": "my-pkg/"}, "my-pkg"), ({"href": "other/"}, "other")]
    assert {"name": "pypi:repository-version", "content": API_VERSION} in parsed.meta


HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='x",
    "a&b&amp;c",
    "&lt;not-an-entity&gt;",
    "</a><a href=evil>",
    "x\"y'z<>&",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_every_value_is_escaped(value: str) -> None:
    filename = f"pkg-1.0{value}.tar.gz"
    html = render_html(
        project_page(
            index_of(
                record(filename, requires_python=value, yanked=value, sha256=SHA),
                name="pkg",
            )
        )
    )
    parsed = parse(html)
    assert parsed.tags.count("a") == 1
    assert "script" not in parsed.tags and "img" not in parsed.tags
    (attrs, text) = parsed.anchors[0]
    assert text == filename
    assert attrs["data-requires-python"] == value
    assert attrs["data-yanked"] == value
    href = attrs["href"]
    assert href is not None
    assert unquote(href.split("#")[0]) == filename
    # the href stays one relative path segment: a quoted file name cannot add a scheme or dir
    assert "/" not in href.split("#")[0] and ":" not in href.split("#")[0]


@pytest.mark.parametrize("value", HOSTILE)
def test_root_page_names_are_escaped(value: str) -> None:
    parsed = parse(render_html(root_page([value])))
    assert parsed.tags.count("a") == 1
    (attrs, text) = parsed.anchors[0]
    assert text == value
    assert attrs["href"] is not None and unquote(attrs["href"]) == value + "/"


printable = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30
)


@settings(deadline=None)
@given(
    filename=printable,
    requires_python=printable,
    reason=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30),
)
def test_html_round_trips_any_value(filename: str, requires_python: str, reason: str) -> None:
    html = render_html(
        project_page(
            index_of(record(filename, requires_python=requires_python, yanked=reason, sha256=SHA))
        )
    )
    parsed = parse(html)
    assert len(parsed.anchors) == 1
    attrs, text = parsed.anchors[0]
    assert text == filename
    assert attrs["data-requires-python"] == requires_python
    assert attrs["data-yanked"] == reason
    assert attrs["href"] == file_url(filename) + f"#sha256={SHA}"
    assert unquote(file_url(filename)) == filename


def test_html_and_json_say_the_same() -> None:
    """pypi-simple, a strict client, reads the same files from both renderings."""
    index = index_of(
        record(
            "pkg-1.0-py3-none-any.whl",
            sha256=SHA,
            requires_python=">=3.8,<4",
            metadata_sha256=META_SHA,
        ),
        record("pkg-1.0.tar.gz", sha256=SHA),
        record("pkg-0.9.tar.gz", yanked="bad <release>"),
        record("pkg-0.8.tar.gz", yanked=""),
    )
    page = project_page(index)
    base = "https://example.com/simple/pkg/"
    from_html = ProjectPage.from_html("pkg", render_html(page), base_url=base)
    from_json = ProjectPage.from_json_data(json.loads(render_json(page)), base_url=base)

    def summary(p: ProjectPage) -> list[tuple[object, ...]]:
        return [
            (
                f.filename,
                f.url,
                f.digests,
                f.requires_python,
                f.has_metadata,
                f.metadata_digests,
                f.is_yanked,
                f.yanked_reason or None,
            )
            for f in p.packages
        ]

    assert summary(from_html) == summary(from_json)
    assert from_json.packages[0].url == base + "pkg-0.8.tar.gz"
    assert from_html.repository_version == from_json.repository_version == API_VERSION
    assert from_json.versions == ["0.8", "0.9", "1.0"]
    assert [p.size for p in from_json.packages] == [123] * 4
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", f["upload-time"])
        for f in page["files"]
    )


def test_root_html_parses_with_pypi_simple() -> None:
    page = IndexPage.from_html(render_html(root_page(["a", "my-pkg"])))
    assert page.projects == ["a", "my-pkg"]
    assert page.repository_version == API_VERSION
