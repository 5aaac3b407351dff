"""PEP 752 namespaces, the read side: what the simple API says about reserved prefixes.

PEP 752 ("Implicit namespaces for package repositories", accepted June 2026) changes the
JSON API only (PEP 833 froze HTML at 1.4), and a repository that does not support it must not
emit any of it. So everything here is emitted only while the policy reserves a namespace:

- the project detail gains a `namespace` key: null when the project matches no namespace,
  else `{"prefix", "authorized", "open"}` (`project_namespace`);
- `/namespace/<namespace>` answers the namespace detail `{"prefix", "owner", "open",
  "parent", "children"}` (`namespace_detail`);
- `/namespaces` lists them (`namespace_list`);
- those JSON responses carry api-version 1.5 (`API_VERSION`).

This index has no organizations: every namespace belongs to the team that runs it (the tokens
that cover the prefix may upload into it), so `owner` is `INDEX_OWNER` and no namespace is
open. Pure: no I/O; names are compared in normalized form (`packaging`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from packaging.utils import canonicalize_name

__all__ = [
    "API_VERSION",
    "INDEX_OWNER",
    "NoSuchNamespace",
    "annotate_project",
    "matching_namespace",
    "namespace_detail",
    "namespace_list",
    "project_namespace",
]

#: the api-version of JSON responses that carry PEP 752 data (1.4 is PEP 792's)
API_VERSION = "1.5"
#: the `owner` of every namespace: the index's own team (there are no organizations here)
INDEX_OWNER = "__index__"


class NoSuchNamespace(LookupError):
    """The namespace is not reserved on this index."""


def _normalized(namespaces: Iterable[str]) -> frozenset[str]:
    return frozenset(canonicalize_name(n) for n in namespaces)


def _covers(namespace: str, name: str) -> bool:
    # PEP 752 "Semantics": the namespace itself, and names that start with it and a hyphen
    # (`foo` covers `foo-bar`, not `foobar`), compared in normalized form
    return name == namespace or name.startswith(namespace + "-")


def matching_namespace(namespaces: Iterable[str], name: str) -> str | None:
    """The namespace `name` falls under, or None.

    PEP 752: when several match, the one "with the most number of characters" (`foo-bar`
    over `foo` for `foo-bar-baz`).
    """
    normalized = canonicalize_name(name)
    matches = [n for n in _normalized(namespaces) if _covers(n, normalized)]
    return max(matches, key=len) if matches else None


def project_namespace(
    namespaces: Iterable[str], name: str, *, authorized: bool
) -> dict[str, Any] | None:
    """The PEP 752 `namespace` value of a project detail: None, or prefix/authorized/open.

    `authorized`: the project belongs to the namespace's owner (here: it is one of the
    index's own projects, which only a token covering the namespace could create).
    """
    prefix = matching_namespace(namespaces, name)
    if prefix is None:
        return None
    return {"prefix": prefix, "authorized": authorized, "open": False}


def annotate_project(
    page: dict[str, Any], namespaces: Iterable[str], *, authorized: bool
) -> dict[str, Any]:
    """A copy of the PEP 691 project dict `page` with PEP 752's `namespace` key, api-version 1.5.

    For the JSON rendering only: the HTML form stays at 1.4 (PEP 833) and has no namespaces.
    """
    annotated = copy.copy(page)
    annotated["meta"] = {**page.get("meta", {}), "api-version": API_VERSION}
    annotated["namespace"] = project_namespace(namespaces, page["name"], authorized=authorized)
    return annotated


def namespace_detail(namespaces: Iterable[str], namespace: str) -> dict[str, Any]:
    """The PEP 752 namespace detail of the reserved `namespace` (in normalized form).

    `parent`: the longest other reserved namespace that covers it, or None; `children`:
    every reserved namespace it covers, sorted. Raises NoSuchNamespace.
    """
    reserved = _normalized(namespaces)
    prefix = canonicalize_name(namespace)
    if prefix not in reserved:
        raise NoSuchNamespace(f"{namespace!r} is not a namespace of this index.")
    parents = [n for n in reserved if n != prefix and _covers(n, prefix)]
    children = sorted(n for n in reserved if n != prefix and _covers(prefix, n))
    return {
        "meta": {"api-version": API_VERSION},
        "prefix": prefix,
        "owner": INDEX_OWNER,
        "open": False,
        "parent": max(parents, key=len) if parents else None,
        "children": children,
    }


def namespace_list(namespaces: Iterable[str]) -> dict[str, Any]:
    """Every reserved namespace, sorted, each as its detail (without its own `meta`)."""
    reserved = _normalized(namespaces)
    details = []
    for prefix in sorted(reserved):
        detail = namespace_detail(reserved, prefix)
        del detail["meta"]
        details.append(detail)
    return {"meta": {"api-version": API_VERSION}, "namespaces": details}
