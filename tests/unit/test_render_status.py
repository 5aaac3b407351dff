"""API 1.4 pages: PEP 740 `provenance`, PEP 792 `project-status` (JSON and HTML meta tags),
HTML frozen at 1.4 (PEP 833), and upstream statuses passed through."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from typing import Any

import pytest
from pypi_simple import ProjectPage, UnexpectedRepoVersionWarning

from serverless_pypi.core.model import FileRecord, Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.policy import Policy, ProjectStatus, apply_to_page
from serverless_pypi.core.render import (
    API_VERSION,
    HTML_API_VERSION,
    project_page,
    render_html,
    render_json,
    root_page,
)
from serverless_pypi.core.upstream import (
    JSON_TYPE,
    InvalidUpstreamPage,
    UpstreamFile,
    UpstreamPage,
    page_model,
    parse_page,
)

DEMO = NormalizedName("demo")
SHA = "a" * 64
URL = "https://upstream.example/simple/demo/"
FILE = UpstreamFile("demo-1.0.tar.gz", "https://files.example/demo-1.0.tar.gz", SHA)


def manifest() -> Manifest:
    record = FileRecord("demo-1.0.tar.gz", "demo/demo-1.0.tar.gz", 10, "2026-01-01T00:00:00Z")
    return Manifest(DEMO, {record.filename: record})


def with_status(page: dict[str, Any], status: str, reason: str | None) -> dict[str, Any]:
    policy = Policy(statuses={DEMO: ProjectStatus(status, reason)})
    return apply_to_page(policy, page, private=True, now=datetime.now(UTC))[0]


def test_pages_are_at_api_version_1_4_with_null_provenance() -> None:
    assert API_VERSION == HTML_API_VERSION == "1.4"
    page = project_page(manifest())
    assert page["meta"] == {"api-version": "1.4"}
    assert [f["provenance"] for f in page["files"]] == [None]  # PEP 740: key present, null
    assert json.loads(render_json(page))["files"][0]["provenance"] is None
    assert b'<meta name="pypi:repository-version" content="1.4">' in render_html(page)
    assert b"data-provenance" not in render_html(page)  # no attribute for null
    assert root_page(["demo"])["meta"] == {"api-version": "1.4"}
    upstream = page_model(UpstreamPage(DEMO, (FILE,)), metadata=False)
    assert upstream["meta"] == {"api-version": "1.4"}
    assert upstream["files"][0]["provenance"] is None
    assert "project-status" not in upstream and "project-status" not in page


def test_html_stays_at_1_4_when_json_moves_on() -> None:
    page = {**project_page(manifest()), "meta": {"api-version": "1.5"}}  # PEP 752 JSON
    assert b'content="1.4"' in render_html(page) and b"1.5" not in render_html(page)


def test_a_provenance_url_is_an_html_attribute() -> None:
    page = project_page(manifest())
    page["files"][0]["provenance"] = "demo-1.0.tar.gz.provenance?a=1&b=2"
    assert b'data-provenance="demo-1.0.tar.gz.provenance?a=1&amp;b=2"' in render_html(page)


@pytest.mark.parametrize("status", ["active", "archived", "deprecated", "quarantined"])
def test_project_status_in_json_and_html_as_pypi_simple_reads_it(status: str) -> None:
    page = with_status(project_page(manifest()), status, 'moved <to> "new"')
    assert page["project-status"] == {"status": status, "reason": 'moved <to> "new"'}
    html = render_html(page)
    assert f'<meta name="pypi:project-status" content="{status}">'.encode() in html
    assert (
        b'<meta name="pypi:project-status-reason" content="moved &lt;to&gt; &quot;new&quot;">'
        in html
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnexpectedRepoVersionWarning)
        from_json = ProjectPage.from_json_data(json.loads(render_json(page)), URL)
        from_html = ProjectPage.from_html("demo", html, URL)
    for parsed in (from_json, from_html):
        assert parsed.repository_version == "1.4"
        assert parsed.status == status
        assert parsed.status_reason == 'moved <to> "new"'
        assert len(parsed.packages) == (0 if status == "quarantined" else 1)


def test_a_status_without_reason_has_no_reason_tag() -> None:
    page = with_status(project_page(manifest()), "archived", None)
    assert page["project-status"] == {"status": "archived"}
    assert b"project-status-reason" not in render_html(page)


# -- upstream statuses pass through ---------------------------------------------------------


def json_page(**extra: Any) -> bytes:
    entry = {"filename": FILE.filename, "url": FILE.url, "hashes": {"sha256": SHA}}
    return json.dumps(
        {"meta": {"api-version": "1.4"}, "name": "demo", "files": [entry], **extra}
    ).encode()


def html_page(head: str) -> bytes:
    return (
        f"<!DOCTYPE html><html><head>{head}</head><body>"
        f'<a href="{FILE.url}#sha256={SHA}">{FILE.filename}</a></body></html>'
    ).encode()


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        (json_page(), JSON_TYPE, None),
        (json_page(**{"project-status": {"status": "archived"}}), JSON_TYPE, ("archived", None)),
        (
            json_page(**{"project-status": {"status": "deprecated", "reason": "use x"}}),
            JSON_TYPE,
            ("deprecated", "use x"),
        ),
        (json_page(**{"project-status": {"status": "gone"}}), JSON_TYPE, None),  # unknown
        (json_page(**{"project-status": "archived"}), JSON_TYPE, None),  # malformed
        (
            json_page(**{"project-status": {"status": "archived", "reason": 3}}),
            JSON_TYPE,
            ("archived", None),
        ),
        (html_page(""), "text/html", None),
        (
            html_page('<meta name="pypi:project-status" content="quarantined">'),
            "text/html",
            ("quarantined", None),
        ),
        (
            html_page(
                '<meta name="pypi:project-status" content="archived">'
                '<meta name="pypi:project-status-reason" content="read &amp; only">'
            ),
            "text/html",
            ("archived", "read & only"),
        ),
        (html_page('<meta name="pypi:project-status" content="nope">'), "text/html", None),
    ],
)
def test_upstream_project_status_is_read(
    data: bytes, content_type: str, status: tuple[str, str | None] | None
) -> None:
    page = parse_page(data, content_type, URL, DEMO)
    assert page.status == status
    model = page_model(page, metadata=False)
    if status is None:
        assert "project-status" not in model
    else:
        expected = {"status": status[0], **({"reason": status[1]} if status[1] else {})}
        assert model["project-status"] == expected


def test_the_status_is_kept_in_the_stored_form() -> None:
    page = UpstreamPage(DEMO, (FILE,), status=("deprecated", "use x"))
    assert UpstreamPage.from_json(json.loads(json.dumps(page.to_json()))) == page
    old = {"name": "demo", "files": [FILE.to_json()]}  # stored before statuses were kept
    assert UpstreamPage.from_json(old).status is None
    with pytest.raises(InvalidUpstreamPage):
        UpstreamPage.from_json({**old, "status": ["gone", None]})
    with pytest.raises(InvalidUpstreamPage):
        UpstreamPage.from_json({**old, "status": "archived"})


def test_the_policy_status_overrides_the_upstream_one() -> None:
    model = page_model(UpstreamPage(DEMO, (FILE,), status=("deprecated", None)), metadata=False)
    assert with_status(model, "quarantined", "review")["project-status"] == {
        "status": "quarantined",
        "reason": "review",
    }
