"""One page model, two renderings.

`project_page` / `root_page` build a dict in the PEP 691 JSON shape; `render_json` and
`render_html` both render that dict, so the HTML (PEP 503) and JSON (PEP 691) forms of a page
cannot disagree (the approach of pypi/warehouse).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from serverless_pypi.core.model import FileRecord, Manifest

__all__ = [
    "API_VERSION",
    "HTML_API_VERSION",
    "file_url",
    "project_page",
    "render_html",
    "render_json",
    "root_page",
]

# PEP 629 / PEP 691 api-version. 1.1: PEP 700 `versions`, `size` and `upload-time`; 1.2 (PEP
# 708) was rejected; 1.3: PEP 740 `provenance`; 1.4: PEP 792 `project-status`.
API_VERSION = "1.4"
# PEP 833 froze the HTML form at 1.4: newer data (PEP 752's 1.5) is served in JSON only.
HTML_API_VERSION = "1.4"


def escape(text: str, quote: bool = True) -> str:
    """`html.escape`, without importing `html` (its entity table) on the Lambda cold path."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if quote:
        text = text.replace('"', "&quot;").replace("'", "&#x27;")
    return text


def file_url(filename: str) -> str:
    """Link from a project page to one of its files: relative, so any base path works."""
    return quote(filename, safe="")


def _file_entry(record: FileRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": record.filename,
        "url": file_url(record.filename),
        # PEP 691: `hashes` is always present, possibly empty
        "hashes": {"sha256": record.sha256} if record.sha256 else {},
        "size": record.size,  # PEP 700
        "upload-time": record.upload_time,  # PEP 700
        # PEP 740 (api 1.3): the URL of the file's provenance object, next to the file's;
        # `null` when the index holds no attestations of it
        "provenance": file_url(record.filename + ".provenance")
        if record.provenance_sha256
        else None,
    }
    if record.requires_python:
        entry["requires-python"] = record.requires_python
    if record.metadata_sha256:
        # PEP 714: JSON uses `core-metadata` only
        entry["core-metadata"] = {"sha256": record.metadata_sha256}
    if record.yanked is not None:
        # PEP 592 / PEP 691: true, or the reason as a non-empty string
        entry["yanked"] = record.yanked or True
    return entry


def project_page(index: Manifest) -> dict[str, Any]:
    """The PEP 691 project page of `index`."""
    return {
        "meta": {"api-version": API_VERSION},
        "name": index.name,
        "versions": index.versions(),
        "files": [_file_entry(r) for r in index.sorted_files()],
    }


def root_page(names: Iterable[str]) -> dict[str, Any]:
    """The PEP 691 project list, names in normalized form and sorted."""
    return {
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": n} for n in sorted(set(names))],
    }


def render_json(page: dict[str, Any]) -> bytes:
    return json.dumps(page, separators=(",", ":"), ensure_ascii=False).encode()


def _attr(value: str) -> str:
    return escape(value, quote=True)


def _html_file_link(entry: dict[str, Any]) -> str:
    href = entry["url"]
    sha256 = entry["hashes"].get("sha256")
    if sha256:
        href += "#sha256=" + sha256  # PEP 503 hash fragment
    attrs = [f'href="{_attr(href)}"']
    if "requires-python" in entry:
        # PEP 503: the specifier, HTML-escaped (`<` and `>` become entities)
        attrs.append(f'data-requires-python="{_attr(entry["requires-python"])}"')
    metadata = entry.get("core-metadata")
    if metadata:
        value = _attr(f"sha256={metadata['sha256']}")
        # PEP 714 name, and the PEP 658 name older clients still read
        attrs.append(f'data-core-metadata="{value}" data-dist-info-metadata="{value}"')
    if "yanked" in entry:
        reason = entry["yanked"]
        attrs.append(f'data-yanked="{_attr(reason) if isinstance(reason, str) else ""}"')
    provenance = entry.get("provenance")
    if isinstance(provenance, str):
        attrs.append(f'data-provenance="{_attr(provenance)}"')  # PEP 740; none when null
    return f"    <a {' '.join(attrs)}>{escape(entry['filename'], quote=False)}</a><br>\n"


def render_html(page: dict[str, Any]) -> bytes:
    """PEP 503 HTML of a project page or of the project list (at HTML_API_VERSION)."""
    meta = f'  <meta name="pypi:repository-version" content="{HTML_API_VERSION}">\n'
    status = page.get("project-status")
    if isinstance(status, dict) and isinstance(status.get("status"), str):
        # PEP 792: the status and its reason as meta tags
        meta += f'  <meta name="pypi:project-status" content="{_attr(status["status"])}">\n'
        if isinstance(status.get("reason"), str):
            reason = _attr(status["reason"])
            meta += f'  <meta name="pypi:project-status-reason" content="{reason}">\n'
    if "projects" in page:
        title = "Simple index"
        links = "".join(
            f'    <a href="{_attr(quote(p["name"], safe=""))}/">{escape(p["name"])}</a><br>\n'
            for p in page["projects"]
        )
    else:
        title = f"Links for {escape(page['name'])}"
        links = "".join(_html_file_link(f) for f in page["files"])
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '  <meta charset="utf-8">\n'
        f"{meta}"
        f"  <title>{title}</title>\n"
        "</head>\n<body>\n"
        f"  <h1>{title}</h1>\n"
        f"{links}"
        "</body>\n</html>\n"
    ).encode()
