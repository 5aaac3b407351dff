"""Publishing into a store, and reading what the index serves from it or from a live server."""

from __future__ import annotations

import gzip
import json
import urllib.request
from pathlib import Path
from typing import Any

from serverless_pypi.core.http import Response
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.publish import PublishResult, publish
from serverless_pypi.storage import Store

JSON = "application/vnd.pypi.simple.v1+json"


def publish_file(target: Store | Catalog, path: Path) -> PublishResult:
    """Publish the distribution at `path` as the upload API and `publish` do."""
    catalog = target if isinstance(target, Catalog) else Catalog(target)
    with path.open("rb") as file:
        return publish(catalog, file, path.name)


def stored_page(store: Store, name: str) -> dict[str, Any]:
    """The project's precomputed JSON page, as the store holds it."""
    key = layout.page_key(NormalizedName(name), json=True)
    page: dict[str, Any] = json.loads(gzip.decompress(store.get(key).data))
    return page


def file_hashes(page: dict[str, Any]) -> dict[str, str]:
    """filename -> sha256 of a JSON page ("" for a file listed without one)."""
    return {f["filename"]: f["hashes"].get("sha256", "") for f in page["files"]}


def stored_hashes(store: Store, name: str) -> dict[str, str]:
    return file_hashes(stored_page(store, name))


def served_page(index_url: str, name: str) -> dict[str, Any]:
    """The project's JSON page from a live server."""
    request = urllib.request.Request(f"{index_url}{name}/", headers={"Accept": JSON})
    with urllib.request.urlopen(request, timeout=10) as response:
        page: dict[str, Any] = json.load(response)
    return page


def content(response: Response) -> bytes:
    """The bytes a client receives (identity encoding): the file or the body, decompressed."""
    data = response.file.read_bytes() if response.file is not None else response.body
    return gzip.decompress(data) if response.headers.get("Content-Encoding") == "gzip" else data


def served_hashes(index_url: str, name: str) -> dict[str, str]:
    return file_hashes(served_page(index_url, name))
