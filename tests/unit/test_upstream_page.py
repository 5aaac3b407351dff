"""Reading an upstream's project page (PEP 691 JSON, PEP 503 HTML) and the page the index
serves for it (`core.upstream`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serverless_pypi.core import upstream
from serverless_pypi.core.model import FileRecord, Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.render import file_url, project_page, render_html, render_json
from serverless_pypi.core.upstream import (
    JSON_TYPE,
    InvalidUpstreamPage,
    UpstreamFile,
    UpstreamPage,
    page_model,
    parse_page,
)

SHA = "a" * 64
META = "b" * 64
TIME = "2024-05-06T07:08:09.123456Z"
PAGE_URL = "https://pypi.example/simple/demo/"
DEMO = NormalizedName("demo")
WHEEL = "demo-1.0-py3-none-any.whl"
SDIST = "demo-1.0.tar.gz"


def json_page(*files: dict[str, Any], **extra: Any) -> bytes:
    document = {"meta": {"api-version": "1.1"}, "name": "demo", "files": list(files), **extra}
    return json.dumps(document).encode()


def json_entry(filename: object = WHEEL, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": filename,
        "url": f"https://files.example/packages/ab/cd/{filename}",
        "hashes": {"sha256": SHA},
    }
    entry.update(fields)
    return entry


def one_json(**fields: Any) -> UpstreamFile:
    (file,) = parse_page(json_page(json_entry(**fields)), JSON_TYPE, PAGE_URL, DEMO).files
    return file


def html_page(*links: str, head: str = "") -> bytes:
    body = "\n".join(links)
    return (
        f"<!DOCTYPE html><html><head>{head}<title>Links for demo</title></head>"
        f"<body><h1>Links for demo</h1>{body}</body></html>"
    ).encode()


def one_html(link: str, head: str = "") -> UpstreamFile:
    (file,) = parse_page(html_page(link, head=head), "text/html", PAGE_URL, DEMO).files
    return file


# --- PEP 691 JSON ---------------------------------------------------------------------------


def test_pypi_shaped_json_page() -> None:
    """A page as PyPI serves it: every field is kept, upload-time exactly."""
    data = json_page(
        json_entry(
            SDIST,
            size=1234,
            **{
                "upload-time": "2024-05-06T07:08:09.123456Z",
                "requires-python": ">=3.8",
                "core-metadata": False,
                "data-dist-info-metadata": False,
                "yanked": False,
                "provenance": None,
            },
        ),
        json_entry(
            WHEEL,
            hashes={"sha256": SHA.upper(), "blake2b_256": "c" * 64},
            size=99,
            **{
                "upload-time": "2024-05-06T07:08:10Z",
                "requires-python": "<4,>=3.8",
                "core-metadata": {"sha256": META},
                "dist-info-metadata": {"sha256": META},
                "yanked": "broken build",
            },
        ),
        versions=["1.0"],
    )
    page = parse_page(data, JSON_TYPE, PAGE_URL, DEMO)
    assert page.name == "demo"
    assert page.versions == ("1.0",)
    assert page.files == (
        UpstreamFile(
            filename=SDIST,
            url=f"https://files.example/packages/ab/cd/{SDIST}",
            sha256=SHA,
            size=1234,
            upload_time="2024-05-06T07:08:09.123456Z",
            requires_python=">=3.8",
        ),
        UpstreamFile(
            filename=WHEEL,
            url=f"https://files.example/packages/ab/cd/{WHEEL}",
            sha256=SHA,  # lowercased
            size=99,
            upload_time="2024-05-06T07:08:10Z",
            requires_python="<4,>=3.8",
            yanked="broken build",
            metadata_sha256=META,
        ),
    )
    assert page.file(WHEEL) is page.files[1]
    assert page.file("demo-2.0.tar.gz") is None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, None),
        ({"yanked": False}, None),
        ({"yanked": True}, ""),
        ({"yanked": ""}, ""),
        ({"yanked": "CVE-2024-1"}, "CVE-2024-1"),
        ({"yanked": 1}, None),  # not a PEP 691 value
        ({"yanked": None}, None),
    ],
)
def test_json_yanked(fields: dict[str, Any], expected: str | None) -> None:
    assert one_json(**fields).yanked == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, None),
        ({"core-metadata": {"sha256": META}}, META),
        ({"core-metadata": {"sha256": META.upper()}}, META),
        ({"core-metadata": True}, None),  # offered without a hash: never advertised
        ({"core-metadata": {"sha512": "c" * 128}}, None),
        ({"core-metadata": {"sha256": "nothex"}}, None),
        ({"core-metadata": False}, None),
        # PEP 714: the PEP 658 name when the index sends only that
        ({"dist-info-metadata": {"sha256": META}}, META),
        # ... and `core-metadata` when there are both, even if it says less
        ({"core-metadata": False, "dist-info-metadata": {"sha256": META}}, None),
        ({"core-metadata": {"sha256": META}, "dist-info-metadata": {"sha256": SHA}}, META),
    ],
)
def test_json_core_metadata(fields: dict[str, Any], expected: str | None) -> None:
    assert one_json(**fields).metadata_sha256 == expected


@pytest.mark.parametrize(
    ("fields", "size", "upload_time", "requires_python"),
    [
        ({"size": 0}, 0, None, None),
        ({"size": -1}, None, None, None),
        ({"size": True}, None, None, None),
        ({"size": "12"}, None, None, None),
        ({"upload-time": "2024-05-06T07:08:09Z"}, None, "2024-05-06T07:08:09Z", None),
        ({"upload-time": "2024-05-06T07:08:09.1Z"}, None, "2024-05-06T07:08:09.1Z", None),
        ({"upload-time": "2024-05-06 07:08:09"}, None, None, None),
        ({"upload-time": "2024-05-06T07:08:09+00:00"}, None, None, None),
        ({"upload-time": 1714979289}, None, None, None),
        ({"requires-python": ""}, None, None, None),
        ({"requires-python": ">=3.9"}, None, None, ">=3.9"),
        ({"requires-python": 3}, None, None, None),
    ],
)
def test_json_optional_fields(
    fields: dict[str, Any], size: int | None, upload_time: str | None, requires_python: str | None
) -> None:
    """Malformed optional values are left out (the file stays), well-formed ones kept."""
    file = one_json(**fields)
    assert (file.size, file.upload_time, file.requires_python) == (
        size,
        upload_time,
        requires_python,
    )


@pytest.mark.parametrize(
    ("hashes", "expected"),
    [
        ({}, None),
        ({"md5": "0" * 32}, None),
        ({"sha256": SHA}, SHA),
        ({"sha256": "B" * 64}, "b" * 64),
    ],
)
def test_json_hashes(hashes: dict[str, str], expected: str | None) -> None:
    assert one_json(hashes=hashes).sha256 == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://files.example/p/{WHEEL}", f"https://files.example/p/{WHEEL}"),
        (f"https://files.example/p/{WHEEL}#sha256={SHA}", f"https://files.example/p/{WHEEL}"),
        (f"../../packages/{WHEEL}", f"https://pypi.example/packages/{WHEEL}"),
        (WHEEL, f"https://pypi.example/simple/demo/{WHEEL}"),
        (f"/files/{WHEEL}", f"https://pypi.example/files/{WHEEL}"),
        (f"//cdn.example/{WHEEL}", f"https://cdn.example/{WHEEL}"),
    ],
)
def test_json_urls_are_absolute(url: str, expected: str) -> None:
    assert one_json(url=url).url == expected


@pytest.mark.parametrize(
    "entry",
    [
        json_entry(url="file:///etc/passwd"),
        json_entry(url="javascript:alert(1)"),
        json_entry(url="https://[::1/x.whl"),
        json_entry(url=42),
        json_entry("../evil.whl"),
        json_entry(".hidden.whl"),
        json_entry("a/b.whl"),
        json_entry("nul\x00.whl"),
        json_entry("x" * 300 + ".whl"),
        json_entry(filename=None),
        json_entry(hashes={"sha256": "not-a-digest"}),  # a page that lies about a file
        json_entry(hashes={"sha256": SHA[:-1]}),
        "not an object",
        ["a", "list"],
    ],
)
def test_json_bad_files_are_dropped(entry: object) -> None:
    page = parse_page(json_page(entry, json_entry(SDIST)), JSON_TYPE, PAGE_URL, DEMO)  # type: ignore[arg-type]
    assert [f.filename for f in page.files] == [SDIST]


def test_json_duplicate_filenames_first_kept() -> None:
    data = json_page(json_entry(WHEEL), json_entry(WHEEL, hashes={"sha256": META}))
    page = parse_page(data, JSON_TYPE, PAGE_URL, DEMO)
    assert [(f.filename, f.sha256) for f in page.files] == [(WHEEL, SHA)]


def test_json_name_may_be_spelled_unnormalized() -> None:
    data = json.dumps({"name": "Demo_", "files": []}).encode().replace(b"Demo_", b"DeMo")
    assert parse_page(data, "application/json", PAGE_URL, DEMO).files == ()


def test_json_versions_only_when_well_formed() -> None:
    data = json_page(json_entry(), versions=["1.0", 2])
    assert parse_page(data, JSON_TYPE, PAGE_URL, DEMO).versions is None


# --- PEP 503 HTML ---------------------------------------------------------------------------


def test_html_with_every_attribute() -> None:
    link = (
        f'<a href="https://files.example/p/{WHEEL}#sha256={SHA}" '
        'data-requires-python="&gt;=3.8,&lt;4" '
        f'data-core-metadata="sha256={META}" data-dist-info-metadata="sha256={META}" '
        'data-yanked="bad &amp; &quot;old&quot;">demo-1.0-py3-none-any.whl</a><br>'
    )
    head = '<meta name="pypi:repository-version" content="1.1">'
    assert one_html(link, head) == UpstreamFile(
        filename=WHEEL,
        url=f"https://files.example/p/{WHEEL}",
        sha256=SHA,
        requires_python=">=3.8,<4",
        yanked='bad & "old"',
        metadata_sha256=META,
    )


@pytest.mark.parametrize(
    ("head", "href", "expected"),
    [
        ("", WHEEL, f"https://pypi.example/simple/demo/{WHEEL}"),
        ("", f"../../packages/{WHEEL}", f"https://pypi.example/packages/{WHEEL}"),
        ("", f"/p/{WHEEL}", f"https://pypi.example/p/{WHEEL}"),
        ("", f"//cdn.example/{WHEEL}", f"https://cdn.example/{WHEEL}"),
        ("", f"http://other.example/{WHEEL}", f"http://other.example/{WHEEL}"),
        ('<base href="https://files.example/x/">', WHEEL, f"https://files.example/x/{WHEEL}"),
        ('<base href="https://files.example/x/">', f"../{WHEEL}", f"https://files.example/{WHEEL}"),
        # a relative <base> is itself resolved against the page's URL
        ('<base href="../../files/">', WHEEL, f"https://pypi.example/files/{WHEEL}"),
        # the first <base> with an href counts
        (
            '<base target="_top"><base href="https://a.example/"><base href="https://b.example/">',
            WHEEL,
            f"https://a.example/{WHEEL}",
        ),
        ('<base href="file:///tmp/">', WHEEL, f"https://pypi.example/simple/demo/{WHEEL}"),
        ("", f"  {WHEEL}  ", f"https://pypi.example/simple/demo/{WHEEL}"),
    ],
)
def test_html_relative_links(head: str, href: str, expected: str) -> None:
    assert one_html(f'<a href="{href}">x</a>', head).url == expected


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("", None),
        ("data-yanked", ""),
        ('data-yanked=""', ""),
        ("data-yanked=''", ""),
        ('data-yanked="security: CVE-1"', "security: CVE-1"),
        ('data-yanked="&lt;b&gt;"', "<b>"),
        ('data-yanked="a" data-yanked="b"', "a"),
    ],
)
def test_html_yanked(attribute: str, expected: str | None) -> None:
    assert one_html(f'<a href="{WHEEL}" {attribute}>x</a>').yanked == expected


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("", None),
        (f'data-core-metadata="sha256={META}"', META),
        (f'data-core-metadata="sha256={META.upper()}"', META),
        ('data-core-metadata="true"', None),  # offered without a hash: never advertised
        (f'data-core-metadata="sha512={"c" * 128}"', None),
        ('data-core-metadata="sha256=zz"', None),
        ("data-core-metadata", None),
        (f'data-dist-info-metadata="sha256={META}"', META),  # PEP 658 only
        # PEP 714: data-core-metadata wins over the older name
        (f'data-core-metadata="true" data-dist-info-metadata="sha256={META}"', None),
        (f'data-core-metadata="sha256={META}" data-dist-info-metadata="sha256={SHA}"', META),
    ],
)
def test_html_core_metadata(attribute: str, expected: str | None) -> None:
    assert one_html(f'<a href="{WHEEL}" {attribute}>x</a>').metadata_sha256 == expected


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("", None),
        (f"#sha256={SHA}", SHA),
        (f"#sha256={SHA.upper()}", SHA),
        (f"#md5={'0' * 32}", None),
        ("#egg=demo", None),
    ],
)
def test_html_hash_fragment(fragment: str, expected: str | None) -> None:
    file = one_html(f'<a href="{WHEEL}{fragment}">x</a>')
    assert file.sha256 == expected
    assert "#" not in file.url


@pytest.mark.parametrize(
    ("requires", "expected"),
    [
        ('data-requires-python="&gt;=3.8"', ">=3.8"),
        ('data-requires-python="&#62;=3.8,&#x3C;4"', ">=3.8,<4"),
        ('data-requires-python=">=3.8"', ">=3.8"),  # unescaped, as some indexes write it
        ('data-requires-python=""', None),
        ("", None),
    ],
)
def test_html_requires_python(requires: str, expected: str | None) -> None:
    assert one_html(f'<a href="{WHEEL}" {requires}>x</a>').requires_python == expected


@pytest.mark.parametrize(
    ("href", "filename"),
    [
        ("demo-1.0%2Bcpu-py3-none-any.whl", "demo-1.0+cpu-py3-none-any.whl"),
        (f"https://files.example/{SDIST}?token=x", SDIST),
        ("caf%C3%A9-1.0.tar.gz", "café-1.0.tar.gz"),
    ],
)
def test_html_filename_is_the_last_path_segment(href: str, filename: str) -> None:
    """PEP 503: the file name is the URL's last path segment (the anchor text is ignored)."""
    assert one_html(f'<a href="{href}">other text</a>').filename == filename


@pytest.mark.parametrize(
    "link",
    [
        "<a>no href</a>",
        '<a href="">empty</a>',
        '<a href="https://files.example/dir/">a directory</a>',
        '<a href="https://files.example/..%2Fevil.whl">x</a>',
        '<a href="https://files.example/%2Ehidden.whl">x</a>',
        '<a href="https://files.example/a%2Fb.whl">x</a>',
        '<a href="https://files.example/nul%00.whl">x</a>',
        '<a href="https://files.example/bad%FF.whl">x</a>',
        f'<a href="file:///srv/{WHEEL}">x</a>',
        f'<a href="ftp://files.example/{WHEEL}">x</a>',
        f'<a href="mailto:{WHEEL}">x</a>',
        f'<a href="{WHEEL}#sha256=short">a hash that is not one</a>',
        '<a href="http://[::1/x.whl">x</a>',
    ],
)
def test_html_bad_links_are_dropped(link: str) -> None:
    page = parse_page(html_page(link, f'<a href="{SDIST}">ok</a>'), "text/html", PAGE_URL, DEMO)
    assert [f.filename for f in page.files] == [SDIST]


def test_html_charset_from_content_type() -> None:
    data = html_page('<a href="caf\xe9-1.0.tar.gz">x</a>').decode().encode("latin-1")
    page = parse_page(data, "text/html; charset=ISO-8859-1", PAGE_URL, DEMO)
    assert [f.filename for f in page.files] == ["café-1.0.tar.gz"]


def test_html_page_without_links_is_an_empty_project() -> None:
    page = parse_page(html_page(), "text/html", PAGE_URL, DEMO)
    assert page == UpstreamPage(DEMO, ())


# --- content types and what is not a page -------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        (JSON_TYPE, json_page(json_entry())),
        ("application/json", json_page(json_entry())),
        ("Application/VND.pypi.simple.v1+JSON; charset=utf-8", json_page(json_entry())),
        ("text/html", html_page(f'<a href="{WHEEL}">x</a>')),
        ("text/html; charset=utf-8", html_page(f'<a href="{WHEEL}">x</a>')),
        ("application/vnd.pypi.simple.v1+html", html_page(f'<a href="{WHEEL}">x</a>')),
    ],
)
def test_content_types_read(content_type: str, data: bytes) -> None:
    assert [f.filename for f in parse_page(data, content_type, PAGE_URL, DEMO).files] == [WHEEL]


@pytest.mark.parametrize(
    ("content_type", "data", "message"),
    [
        ("application/octet-stream", html_page(), "not a simple API page"),
        ("", html_page(), "not a simple API page"),
        ("text/plain", json_page(), "not a simple API page"),
        (JSON_TYPE, b"<html></html>", "not valid JSON"),
        (JSON_TYPE, b"\xff\xfe\x00garbage", "not valid JSON"),
        (JSON_TYPE, b"[1, 2]", "not a JSON object"),
        (JSON_TYPE, b'"files"', "not a JSON object"),
        (JSON_TYPE, b"{}", "no `files` list"),
        (JSON_TYPE, b'{"files": {}}', "no `files` list"),
        (JSON_TYPE, b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (JSON_TYPE, json.dumps({"name": "other", "files": []}).encode(), "got one of 'other'"),
        (JSON_TYPE, json.dumps({"name": "!!", "files": []}).encode(), "got one of '!!'"),
        (JSON_TYPE, json_page(meta={"api-version": "2.0"}), "version '2.0'"),
        (
            "text/html",
            html_page(head='<meta name="pypi:repository-version" content="2.1">'),
            "version '2.1'",
        ),
        ("text/html", b"<html>\xff\xfe</html>", "not valid utf-8"),
        ("text/html", b"<![foo[ x ]]>", "not HTML a parser reads"),
    ],
)
def test_not_a_page(content_type: str, data: bytes, message: str) -> None:
    with pytest.raises(InvalidUpstreamPage, match="demo") as raised:
        parse_page(data, content_type, PAGE_URL, DEMO)
    assert message in str(raised.value)


def test_an_over_long_page_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upstream, "MAX_PAGE_BYTES", 1000)
    data = json_page(*(json_entry(f"demo-{i}.tar.gz") for i in range(20)))
    with pytest.raises(InvalidUpstreamPage, match="over the limit of 1000"):
        parse_page(data, JSON_TYPE, PAGE_URL, DEMO)
    monkeypatch.setattr(upstream, "MAX_PAGE_BYTES", len(data))
    assert len(parse_page(data, JSON_TYPE, PAGE_URL, DEMO).files) == 20


def test_minor_api_versions_are_read() -> None:
    """PEP 629: only a new major version is refused."""
    data = json_page(json_entry(), meta={"api-version": "1.9"})
    assert parse_page(data, JSON_TYPE, PAGE_URL, DEMO).files


HOSTILE = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from(
            [
                "<a href=",
                '"',
                "'",
                "<base href=",
                "<meta name=pypi:repository-version content=",
                "</a>",
                "<!--",
                "-->",
                "<![",
                "<![CDATA[",
                "]]>",
                "<!",
                "<?",
                "&#",
                "&#x",
                "&",
                ";",
                "=",
                "#sha256=",
                SHA,
                "data-yanked",
                "data-core-metadata=",
                "sha256=",
                "..%2F",
                "%",
                "\x00",
                "\ud800",
                "http://",
                "https://[",
                ":99999",
                "/",
                ">",
                "<",
                " ",
                "x.whl",
                "demo-1.0.tar.gz",
                "<script>",
                "</script>",
                "{",
                "}",
                "[",
                "]",
                '"files":',
                '"url":',
                '"filename":',
                '"hashes":',
                "null",
                "true",
                "1e999",
                "2.0",
            ]
        ),
        max_size=40,
    ).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass")),
)


@settings(max_examples=400, deadline=None)
@given(
    data=HOSTILE,
    content_type=st.sampled_from([JSON_TYPE, "text/html", "text/html; charset=latin-1", "x/y"]),
    page_url=st.sampled_from([PAGE_URL, "http://[::1]:8080/simple/demo/", "not a url"]),
)
def test_hostile_input_is_a_page_or_invalid(data: bytes, content_type: str, page_url: str) -> None:
    """Whatever the bytes: a page whose every link is safe, or InvalidUpstreamPage."""
    try:
        page = parse_page(data, content_type, page_url, DEMO)
    except InvalidUpstreamPage:
        return
    for file in page.files:
        assert file.url.startswith(("http://", "https://"))
        assert "/" not in file.filename and not file.filename.startswith(".")
        assert file.sha256 is None or len(file.sha256) == 64
    page_model(page, metadata=True)


# --- the page the index serves --------------------------------------------------------------


def test_page_model_has_the_shape_of_a_private_page() -> None:
    """With everything known, the model is exactly what `render.project_page` builds."""
    records = [
        # in the order a private page lists them (version, then file name)
        FileRecord(WHEEL, "demo/" + WHEEL, 20, TIME, sha256=META, metadata_sha256=META, yanked=""),
        FileRecord(SDIST, "demo/" + SDIST, 10, TIME, sha256=SHA, requires_python=">=3.8"),
        FileRecord("demo-2.0.tar.gz", "x", 30, TIME, yanked="why"),
    ]
    files = tuple(
        UpstreamFile(
            r.filename,
            "https://files.example/" + r.filename,
            r.sha256,
            size=r.size,
            upload_time=r.upload_time,
            requires_python=r.requires_python,
            yanked=r.yanked,
            metadata_sha256=r.metadata_sha256,
        )
        for r in records
    )
    expected = project_page(Manifest(DEMO, {r.filename: r for r in records}))
    assert page_model(UpstreamPage(DEMO, files), metadata=True) == expected
    assert json.dumps(page_model(UpstreamPage(DEMO, files), metadata=True)) == json.dumps(expected)


def test_page_model_leaves_out_what_is_unknown() -> None:
    file = UpstreamFile("demo-1.0+local-py3-none-any.whl", "https://f.example/x.whl", None)
    model = page_model(UpstreamPage(DEMO, (file,)), metadata=True)
    assert model["files"] == [
        {
            "filename": file.filename,
            "url": "demo-1.0%2Blocal-py3-none-any.whl",
            "hashes": {},
            "provenance": None,  # PEP 740: always present from api 1.3 on
        }
    ]
    assert model["versions"] == ["1.0+local"]


@pytest.mark.parametrize(("metadata", "advertised"), [(True, True), (False, False)])
def test_page_model_advertises_metadata_only_when_served(metadata: bool, advertised: bool) -> None:
    with_hash = UpstreamFile(WHEEL, "https://f.example/" + WHEEL, SHA, metadata_sha256=META)
    without = UpstreamFile(SDIST, "https://f.example/" + SDIST, SHA)
    model = page_model(UpstreamPage(DEMO, (with_hash, without)), metadata=metadata)
    assert ("core-metadata" in model["files"][0]) is advertised
    assert "core-metadata" not in model["files"][1]
    html = render_html(model).decode()
    assert ("data-core-metadata" in html) is advertised


def test_page_model_versions() -> None:
    files = tuple(
        UpstreamFile(n, "https://f.example/" + n, None)
        for n in ["demo-2.0.tar.gz", "demo-1.0-py3-none-any.whl", "demo-10.0.zip", "junk.txt"]
    )
    assert page_model(UpstreamPage(DEMO, files), metadata=False)["versions"] == [
        "1.0",
        "2.0",
        "10.0",
    ]
    given_versions = UpstreamPage(DEMO, files, versions=("0.1", "2.0"))
    assert page_model(given_versions, metadata=False)["versions"] == ["0.1", "2.0"]


def test_page_model_keeps_upstream_order() -> None:
    files = tuple(
        UpstreamFile(n, "https://f.example/" + n, None)
        for n in ["demo-2.0.tar.gz", "demo-1.0.tar.gz"]
    )
    model = page_model(UpstreamPage(DEMO, files), metadata=False)
    assert [f["filename"] for f in model["files"]] == ["demo-2.0.tar.gz", "demo-1.0.tar.gz"]


# --- round trips ----------------------------------------------------------------------------

DIGEST = st.text("0123456789abcdef", min_size=64, max_size=64)
TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("<>&\"' =#"),
    max_size=30,
)


@st.composite
def upstream_files(draw: st.DrawFn) -> UpstreamFile:
    project = draw(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True))
    version = draw(st.sampled_from(["1.0", "2.0.post1", "1!3.0", "1.0+cpu.x", "0.1rc2"]))
    suffix = draw(st.sampled_from(["-py3-none-any.whl", "-cp312-cp312-manylinux_2_17_x86_64.whl"]))
    filename = project + "-" + version + draw(st.sampled_from([suffix, ".tar.gz", ".zip"]))
    return UpstreamFile(
        filename=filename,
        url="https://files.example/p/" + filename,
        sha256=draw(st.none() | DIGEST),
        size=draw(st.none() | st.integers(0, 2**40)),
        upload_time=draw(st.none() | st.just(TIME)),
        requires_python=draw(st.none() | st.sampled_from([">=3.8", "<4,>=3.9", "!=3.0.*"])),
        yanked=draw(st.none() | TEXT),
        metadata_sha256=draw(st.none() | DIGEST),
    )


FILES = st.lists(upstream_files(), max_size=6, unique_by=lambda f: f.filename)


def essentials(file: UpstreamFile) -> tuple[object, ...]:
    return (file.filename, file.sha256, file.requires_python, file.yanked, file.metadata_sha256)


@settings(max_examples=200, deadline=None)
@given(files=FILES)
def test_round_trip_through_html(files: list[UpstreamFile]) -> None:
    """page -> page_model -> render_html -> parse_page keeps what a client relies on."""
    page = UpstreamPage(DEMO, tuple(files))
    html = render_html(page_model(page, metadata=True))
    index = "https://mirror.example/simple/demo/"
    again = parse_page(html, "text/html; charset=utf-8", index, DEMO)
    assert [essentials(f) for f in again.files] == [essentials(f) for f in files]
    assert [f.url for f in again.files] == [index + file_url(f.filename) for f in files]


@settings(max_examples=200, deadline=None)
@given(files=FILES)
def test_round_trip_through_json(files: list[UpstreamFile]) -> None:
    page = UpstreamPage(DEMO, tuple(files))
    data = render_json(page_model(page, metadata=True))
    again = parse_page(data, JSON_TYPE, "https://mirror.example/simple/demo/", DEMO)
    assert [(essentials(f), f.size, f.upload_time) for f in again.files] == [
        (essentials(f), f.size, f.upload_time) for f in files
    ]


@settings(max_examples=100, deadline=None)
@given(files=FILES, versions=st.none() | st.lists(st.sampled_from(["1.0", "2.0"])).map(tuple))
def test_stored_form_round_trip(
    files: list[UpstreamFile], versions: tuple[str, ...] | None
) -> None:
    page = UpstreamPage(DEMO, tuple(files), versions)
    assert UpstreamPage.from_json(json.loads(json.dumps(page.to_json()))) == page


@pytest.mark.parametrize(
    "stored",
    [
        {},
        {"name": "demo"},
        {"name": "demo", "files": {}},
        {"name": "demo", "files": [{"filename": "x"}]},
        {"name": "demo", "files": [{"filename": 1, "url": "u"}]},
        {"name": "demo", "files": [{"filename": "x", "url": "u", "size": -1}]},
        {"name": "demo", "files": ["x"]},
        {"name": "!!", "files": []},
        {"name": "demo", "files": [], "versions": [1]},
    ],
)
def test_stored_form_refused(stored: dict[str, Any]) -> None:
    with pytest.raises(InvalidUpstreamPage, match="not a stored upstream"):
        UpstreamPage.from_json(stored)


# --- where upstream data lives in the store (index.layout) ----------------------------------


def test_upstream_keys_are_under_the_reserved_prefix() -> None:
    from serverless_pypi.index import layout

    assert layout.upstream_page_key(DEMO) == ".serverless-pypi/upstream/pages/demo.json"
    assert layout.upstream_file_key(DEMO, SHA, WHEEL) == (
        f".serverless-pypi/upstream/files/demo/{SHA}/{WHEEL}"
    )
    assert layout.upstream_metadata_key(DEMO, META, WHEEL) == (
        f".serverless-pypi/upstream/metadata/demo/{META}/{WHEEL}.metadata"
    )
    for key in (layout.UPSTREAM_PAGES, layout.UPSTREAM_FILES, layout.UPSTREAM_METADATA):
        assert key.startswith(layout.UPSTREAM) and layout.is_derived(key)
    assert layout.split_key(layout.upstream_file_key(DEMO, SHA, WHEEL)) is None


@pytest.mark.parametrize(
    ("sha256", "filename"),
    [("A" * 64, WHEEL), ("a" * 63, WHEEL), ("../" + "a" * 61, WHEEL), (SHA, "../x.whl"), (SHA, "")],
)
def test_upstream_keys_refuse_what_is_not_a_digest_or_a_file_name(
    sha256: str, filename: str
) -> None:
    from serverless_pypi.index import layout

    with pytest.raises(ValueError):
        layout.upstream_file_key(DEMO, sha256, filename)
    with pytest.raises(ValueError):
        layout.upstream_metadata_key(DEMO, sha256, filename)
