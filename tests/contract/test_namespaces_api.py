"""PEP 752 read side over both stores: the `namespace` key on JSON project pages, the
`namespaces` and `namespace/<ns>` endpoints, all emitted only while the policy reserves a
namespace (a repository that does not support PEP 752 must not emit any of it)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
from pypi_simple import ProjectPage

from serverless_pypi.compose import build_application, build_repository
from serverless_pypi.core.config import Settings
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.core.namespaces import INDEX_OWNER
from serverless_pypi.index.policies import PolicyReader, PolicyWriter
from serverless_pypi.storage import Store
from serverless_pypi.web.app import Application
from tests.helpers.dists import make_wheel
from tests.helpers.index import JSON, content, publish_file

HTML = "text/html"


def call(app: Application, path: str, **headers: str) -> Response:
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return app.handle(Request("GET", path, "", Headers(named)))


def as_json(response: Response) -> dict[str, Any]:
    assert response.status == 200, response.body
    assert response.headers["Content-Type"] == JSON
    return json.loads(content(response))  # type: ignore[no-any-return]


def reserve(store: Store, *namespaces: str) -> None:
    PolicyWriter(store).update(lambda p: dataclasses.replace(p, namespaces=namespaces))


@pytest.fixture
def app(store: Store, tmp_path: Path) -> Application:
    """The application over `store` with two projects, one in `acme`, reading the policy
    afresh at every request."""
    for name in ("acme_lib", "demo", "namespace"):
        publish_file(store, make_wheel(tmp_path, name, "1.0"))
    settings = Settings(policy_ttl=0.001)
    reader = PolicyReader(store, ttl=0)
    return Application(build_repository(store, settings), settings, policies=reader.current)


def test_nothing_of_pep_752_without_namespaces(app: Application) -> None:
    page = as_json(call(app, "acme-lib/", accept=JSON))
    assert "namespace" not in page
    assert page["meta"]["api-version"] != "1.5"
    assert as_json(call(app, "", accept=JSON))["meta"]["api-version"] != "1.5"
    # the routes are what they always were: a redirect to a project page, a bad file name
    assert call(app, "namespaces").status == 301
    assert call(app, "namespace/acme").status in {400, 404}


def test_project_pages_carry_the_namespace_key(store: Store, app: Application) -> None:
    reserve(store, "acme")
    page = as_json(call(app, "acme-lib/", accept=JSON))
    assert page["meta"]["api-version"] == "1.5"
    assert page["namespace"] == {"prefix": "acme", "authorized": True, "open": False}
    assert [f["filename"] for f in page["files"]] == ["acme_lib-1.0-py3-none-any.whl"]
    other = as_json(call(app, "demo/", accept=JSON))
    assert other["meta"]["api-version"] == "1.5"
    assert other["namespace"] is None  # PEP 752: null outside every namespace
    assert as_json(call(app, "", accept=JSON))["meta"]["api-version"] == "1.5"


def test_html_is_frozen(store: Store, app: Application) -> None:
    reserve(store, "acme")
    response = call(app, "acme-lib/", accept=HTML)
    assert response.status == 200
    body = content(response).decode()
    parsed = ProjectPage.from_html("acme-lib", body)
    assert parsed.repository_version != "1.5"  # PEP 833: HTML stays at 1.4
    assert "namespace" not in body


def test_namespaced_page_revalidates(store: Store, app: Application) -> None:
    reserve(store, "acme")
    first = call(app, "acme-lib/", accept=JSON)
    again = call(app, "acme-lib/", accept=JSON, if_none_match=first.headers["ETag"])
    assert again.status == 304
    reserve(store, "acme", "acme-lib")  # the page changes with the policy: so does its tag
    changed = call(app, "acme-lib/", accept=JSON, if_none_match=first.headers["ETag"])
    assert as_json(changed)["namespace"]["prefix"] == "acme-lib"


def test_namespace_list(store: Store, app: Application) -> None:
    reserve(store, "acme", "acme-tools", "beta")
    listed = as_json(call(app, "namespaces", accept=HTML))  # JSON only, whatever is asked
    assert listed["meta"] == {"api-version": "1.5"}
    assert listed["namespaces"] == [
        {
            "prefix": "acme",
            "owner": INDEX_OWNER,
            "open": False,
            "parent": None,
            "children": ["acme-tools"],
        },
        {
            "prefix": "acme-tools",
            "owner": INDEX_OWNER,
            "open": False,
            "parent": "acme",
            "children": [],
        },
        {"prefix": "beta", "owner": INDEX_OWNER, "open": False, "parent": None, "children": []},
    ]


def test_namespace_detail(store: Store, app: Application) -> None:
    reserve(store, "acme", "acme-tools")
    detail = as_json(call(app, "namespace/acme-tools"))
    assert detail["prefix"] == "acme-tools"
    assert detail["parent"] == "acme"
    redirected = call(app, "namespace/Acme.Tools")
    assert redirected.status == 301
    assert redirected.headers["Location"] == "acme-tools"
    missing = call(app, "namespace/acm")
    assert missing.status == 404
    assert b"not a namespace" in content(missing)
    assert call(app, "namespace/-bad-").status == 400


def test_a_project_named_namespace_is_still_served(store: Store, app: Application) -> None:
    reserve(store, "acme")
    page = as_json(call(app, "namespace/", accept=JSON))
    assert page["name"] == "namespace"
    assert page["namespace"] is None
    download = call(app, "namespace/namespace-1.0-py3-none-any.whl")
    assert download.status in {200, 302}
    assert call(app, "namespaces/").status == 404  # a project page: there is none


def test_namespaces_follow_the_policy(store: Store, app: Application) -> None:
    reserve(store, "acme")
    assert call(app, "namespace/acme").status == 200
    PolicyWriter(store).update(lambda p: dataclasses.replace(p, namespaces=()))
    assert call(app, "namespaces").status == 301  # gone with the last namespace
    assert "namespace" not in as_json(call(app, "acme-lib/", accept=JSON))


def test_every_front_serves_pep_752(store: Store, tmp_path: Path) -> None:
    """The composed application (the local server's and the Lambda function's) reads the
    namespaces from the policy layer's own reader."""
    publish_file(store, make_wheel(tmp_path, "acme_lib", "1.0"))
    app = build_application(store, Settings(policy_ttl=0.001), uploads=False)
    assert "namespace" not in as_json(call(app, "acme-lib/", accept=JSON))
    reserve(store, "acme")
    time.sleep(0.01)
    assert as_json(call(app, "acme-lib/", accept=JSON))["namespace"]["prefix"] == "acme"
    assert as_json(call(app, "namespace/acme"))["prefix"] == "acme"
