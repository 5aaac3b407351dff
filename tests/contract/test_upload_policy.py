"""Uploads under the policy in force, through the application on both stores: project
statuses (PEP 792: archived and quarantined take no uploads, a 403) and namespaces (PEP 752:
a token that does not cover the namespace gets a 409)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from serverless_pypi.auth.tokens import TokenRecord, TokenStore
from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.policy import Policy, ProjectStatus
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.policies import PolicyWriter
from serverless_pypi.storage import Store
from tests.helpers.dists import make_wheel, subdir
from tests.helpers.forms import basic_auth, upload_body

#: the policy is read again at once: each change is seen by the next upload
SETTINGS = Settings(policy_ttl=0.001)


def change(store: Store, how: Callable[[Policy], Policy]) -> None:
    PolicyWriter(store).update(how)


def upload(store: Store, token: str, path: Path) -> Response:
    app = build_application(store, SETTINGS)
    body, content_type = upload_body(path)
    headers = Headers({"Content-Type": content_type, "Authorization": basic_auth(token)})
    return app.handle(Request("POST", "", headers=headers, body=body))


def files(store: Store, project: str) -> set[str]:
    return set(Catalog(store).read_project(NormalizedName(project))[0].files)


@pytest.mark.parametrize("status", ["archived", "quarantined"])
def test_closed_statuses_refuse_uploads(store: Store, tmp_path: Path, status: str) -> None:
    token, _ = TokenStore(store).create("write")
    first = make_wheel(subdir(tmp_path, "a"), "Demo", "1.0")
    second = make_wheel(subdir(tmp_path, "b"), "Demo", "2.0")
    assert upload(store, token, first).status == 200
    change(
        store,
        lambda p: Policy(statuses={NormalizedName("demo"): ProjectStatus(status, "frozen")}),
    )
    response = upload(store, token, second)
    assert response.status == 403
    assert response.body.decode().strip() == (
        f"The project 'demo' is {status} (frozen): it takes no new uploads (PEP 792)."
    )
    # an identical re-upload is refused as well: the project takes nothing
    assert upload(store, token, first).status == 403
    assert files(store, "demo") == {first.name}
    for open_status in ("deprecated", "active"):
        change(
            store,
            lambda p, s=open_status: Policy(  # type: ignore[misc]
                statuses={NormalizedName("demo"): ProjectStatus(s)}
            ),
        )
        assert upload(store, token, second).status == 200
    assert files(store, "demo") == {first.name, second.name}


def test_namespace_uploads_need_a_covering_token(store: Store, tmp_path: Path) -> None:
    tokens = TokenStore(store)
    narrow, _ = tokens.create("write", ["acme-core"])
    other, _ = tokens.create("write", ["other-*"])
    covering, _ = tokens.create("write", ["acme-*"])
    everything, _ = tokens.create("write")
    change(store, lambda p: Policy(namespaces=("acme",)))
    core = make_wheel(subdir(tmp_path, "a"), "Acme.Core", "1.0")
    # a token for the project alone: valid for it, but the namespace is not its own (409)
    response = upload(store, narrow, core)
    assert response.status == 409
    message = response.body.decode()
    assert "'acme-core' is in the namespace 'acme' (PEP 752)" in message
    assert "acme-*" in message
    # a token that does not cover the project at all is a 403, as before
    assert upload(store, other, core).status == 403
    assert files(store, "acme-core") == set()
    assert upload(store, covering, core).status == 200
    tools = make_wheel(subdir(tmp_path, "b"), "acme-tools", "1.0")
    assert upload(store, everything, tools).status == 200
    # names outside the namespace are not concerned: `acmesoft` is not `acme-*`
    outside = make_wheel(subdir(tmp_path, "c"), "acmesoft", "1.0")
    assert upload(store, tokens.create("write", ["acmesoft"])[0], outside).status == 200
    # without the namespace, the narrow token uploads as any other
    change(store, lambda p: Policy())
    later = make_wheel(subdir(tmp_path, "d"), "acme-core", "2.0")
    assert upload(store, narrow, later).status == 200


def _record(*projects: str, scope: str = "write") -> TokenRecord:
    return TokenRecord("0" * 16, "h", scope, "2026-01-01T00:00:00Z", projects)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("projects", "covers"),
    [
        ((), True),
        (("*",), True),
        (("acme-*",), True),
        (("acme*",), True),
        (("a*",), True),
        (("ac?e-*",), True),
        (("acme-core",), False),
        (("acme",), False),
        (("acme-c*",), False),
        (("acme-*-x",), False),
        (("other-*", "acme-core"), False),
        (("other-*", "acme-*"), True),
        (("acme-tools-*",), False),
    ],
)
def test_token_covers_namespace(projects: tuple[str, ...], covers: bool) -> None:
    assert _record(*projects).covers_namespace("acme") is covers


def test_read_tokens_cover_no_namespace() -> None:
    assert not _record(scope="read").covers_namespace("acme")
