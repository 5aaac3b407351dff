"""Issue 10, item 17: `?format=` with a literal "+" (a space after form decoding) works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serverless_pypi.compose import build_application
from serverless_pypi.core.http import Request
from serverless_pypi.core.negotiate import JSON_V1, Format, choose_format
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage import Store
from tests.helpers.dists import make_wheel
from tests.helpers.index import publish_file


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/vnd.pypi.simple.v1 json", Format.JSON_V1),  # "+" decoded as a space
        ("application/vnd.pypi.simple.v1+json", Format.JSON_V1),
        ("application/vnd.pypi.simple.latest json", Format.JSON_V1),
        ("application/vnd.pypi.simple.v1 html", Format.HTML_V1),
        ("text/html, application/vnd.pypi.simple.v1 json;q=0.5", Format.HTML),
        ("application/vnd.pypi.simple.v1 json, text/html;q=0.1", Format.JSON_V1),
        (" application/vnd.pypi.simple.v1 json ", Format.JSON_V1),
    ],
)
def test_a_space_in_a_format_media_type_is_a_plus(value: str, expected: Format) -> None:
    assert choose_format(None, value) is expected


@pytest.mark.parametrize(
    "query",
    [
        "format=application/vnd.pypi.simple.v1+json",  # as the PEP writes it
        "format=application/vnd.pypi.simple.v1%2Bjson",
        "format=application%2Fvnd.pypi.simple.v1+json",
        "format=application/vnd.pypi.simple.latest+json",
    ],
)
@pytest.mark.parametrize("path", ["", "pkg/"])
def test_format_with_a_literal_plus_through_the_app(
    store: Store, tmp_path: Path, query: str, path: str
) -> None:
    wheel = make_wheel(tmp_path, "pkg", "1.0")
    publish_file(Catalog(store), wheel)
    response = build_application(store).handle(Request("GET", path, query))
    assert response.status == 200
    assert response.headers["Content-Type"] == JSON_V1
    json.loads(response.body)
