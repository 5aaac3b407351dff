"""PEP 752 read side, pure: matching, the project key, the namespace detail and list."""

from __future__ import annotations

from typing import Any

import pytest

from serverless_pypi.core.namespaces import (
    API_VERSION,
    INDEX_OWNER,
    NoSuchNamespace,
    annotate_project,
    matching_namespace,
    namespace_detail,
    namespace_list,
    project_namespace,
)
from serverless_pypi.web.paths import namespace_route

NAMESPACES = ("acme", "acme-tools", "other")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("acme", "acme"),  # the namespace itself (PEP 752 "Semantics" 1)
        ("acme-lib", "acme"),  # the namespace and a hyphen (2)
        ("Acme.Lib", "acme"),  # matched in normalized form
        ("acme_lib", "acme"),
        ("acme-tools", "acme-tools"),  # the longest match wins
        ("acme-tools-cli", "acme-tools"),
        ("acme-toolsx", "acme"),  # `acme-tools` covers `acme-tools-*` only
        ("acmelib", None),  # no hyphen: not in the namespace
        ("notacme", None),
        ("others", None),
    ],
)
def test_matching_namespace(name: str, expected: str | None) -> None:
    assert matching_namespace(NAMESPACES, name) == expected


def test_project_namespace_is_null_outside_every_namespace() -> None:
    assert project_namespace(NAMESPACES, "requests", authorized=False) is None


def test_project_namespace_shape() -> None:
    assert project_namespace(NAMESPACES, "acme-tools-cli", authorized=True) == {
        "prefix": "acme-tools",
        "authorized": True,
        "open": False,
    }


def _page(name: str) -> dict[str, Any]:
    return {"meta": {"api-version": "1.4"}, "name": name, "versions": [], "files": []}


def test_annotate_project_sets_the_key_and_version_on_a_copy() -> None:
    page = _page("acme-lib")
    annotated = annotate_project(page, NAMESPACES, authorized=True)
    assert annotated["meta"]["api-version"] == API_VERSION == "1.5"
    assert annotated["namespace"] == {"prefix": "acme", "authorized": True, "open": False}
    assert page == _page("acme-lib")  # the shared model is never changed


def test_annotate_project_outside_a_namespace_says_null() -> None:
    annotated = annotate_project(_page("requests"), NAMESPACES, authorized=False)
    assert "namespace" in annotated
    assert annotated["namespace"] is None


def test_namespace_detail_with_children() -> None:
    assert namespace_detail(NAMESPACES, "acme") == {
        "meta": {"api-version": "1.5"},
        "prefix": "acme",
        "owner": INDEX_OWNER,
        "open": False,
        "parent": None,
        "children": ["acme-tools"],
    }


def test_namespace_detail_with_a_parent() -> None:
    detail = namespace_detail(("a", "a-b", "a-b-c"), "a-b-c")
    assert detail["parent"] == "a-b"  # the nearest one
    assert detail["children"] == []
    assert namespace_detail(("a", "a-b", "a-b-c"), "a")["children"] == ["a-b", "a-b-c"]


def test_namespace_detail_of_an_unreserved_name() -> None:
    with pytest.raises(NoSuchNamespace, match="'acm'"):
        namespace_detail(NAMESPACES, "acm")


def test_namespace_list() -> None:
    listed = namespace_list(NAMESPACES)
    assert listed["meta"] == {"api-version": "1.5"}
    assert [n["prefix"] for n in listed["namespaces"]] == ["acme", "acme-tools", "other"]
    assert all("meta" not in n for n in listed["namespaces"])


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        (["namespace", "acme"], "acme"),
        (["namespace", "Acme.Tools"], "Acme.Tools"),  # the app redirects it
        (["namespace", ""], None),  # the page of a project named "namespace"
        (["namespace", "namespace-1.0.tar.gz"], None),  # its files
        (["namespace", "namespace-1.0-py3-none-any.whl"], None),
        (["namespace", "namespace-1.0-py3-none-any.whl.metadata"], None),
        (["namespace", "acme", ""], None),
        (["namespaces"], None),
        (["acme", "acme"], None),
    ],
)
def test_namespace_route(segments: list[str], expected: str | None) -> None:
    assert namespace_route(segments) == expected
