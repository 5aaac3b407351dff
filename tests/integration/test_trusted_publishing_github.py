"""A `--github` publisher end to end with real uv: the GitHub rules (the workflow file through
`job_workflow_ref`, the owner's id, the environment) against the tokens a GitHub Actions job
gets. The local issuer stands in for GitHub's through `--github-issuer` (GitHub Enterprise
Server's option: its issuer is `https://HOST/_services/token`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from serverless_pypi.storage import Store
from tests.helpers.dists import make_wheel, subdir
from tests.helpers.oidc import LocalIssuer
from tests.integration.test_trusted_publishing import (
    OWNER_ID,
    REPOSITORY,
    Front,
    add_publisher,
    descriptions,
    front,
    issuer,
    minted_records,
    refusal,
    said,
    served_files,
    trusted_publish,
)

__all__ = ["front", "issuer"]  # the fixtures, used by name

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trusted_publishing")]


def test_uv_publishes_through_a_github_publisher(
    local_store: Store, front: Callable[..., Front], issuer: LocalIssuer, tmp_path: Path
) -> None:
    location = str(tmp_path / "store")
    served = front(local_store, location)
    add_publisher(
        location,
        "--project",
        "demo-*",
        "--github",
        REPOSITORY,
        "--workflow",
        "release.yml",
        "--owner-id",
        OWNER_ID,
        "--github-issuer",
        issuer.url,
    )
    wheel = make_wheel(subdir(tmp_path, "dist"), "demo-app", "1.0")

    # another workflow file of the same repository may not publish
    issuer.github["workflow"] = "ci.yml"
    result = trusted_publish(served, issuer, wheel)
    assert result.returncode != 0, said(result)
    assert "job_workflow_ref" in descriptions(refusal(result))

    # nor the same names under a re-registered owner (account resurrection)
    issuer.github.update(workflow="release.yml", owner_id="7777777")
    result = trusted_publish(served, issuer, wheel)
    assert result.returncode != 0, said(result)
    assert "repository_owner_id" in descriptions(refusal(result))
    assert served_files(served, "demo-app") == []

    # the publisher's own workflow does, and the minted token is burnt afterwards
    issuer.github["owner_id"] = OWNER_ID
    result = trusted_publish(served, issuer, wheel)
    assert result.returncode == 0, said(result)
    assert served_files(served, "demo-app") == [wheel.name]
    assert minted_records(local_store) == []


def test_github_issuer_goes_with_github_only(tmp_path: Path) -> None:
    from tests.helpers.clients import SERVERLESS_PYPI, run_client

    result = run_client(
        SERVERLESS_PYPI,
        "publisher",
        "add",
        "--store",
        str(tmp_path / "store"),
        "--project",
        "demo-*",
        "--gitlab",
        "acme/app",
        "--github-issuer",
        "https://ghes.example.com/_services/token",
    )
    assert result.returncode == 2, said(result)
    assert "--github-issuer does not go with --gitlab" in said(result)
