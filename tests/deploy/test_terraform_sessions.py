"""The Terraform module's part of Upload 2.0 sessions (issue 16), checked offline: the grants
each function needs for the keys `index.layout` builds, the session lifetime variable, and
the lifecycle rule that aborts abandoned multipart uploads (`terraform test` runs in
tests/deploy/upstream.tftest.hcl)."""

from __future__ import annotations

from typing import Any

import pytest

from serverless_pypi.core.config import Settings
from serverless_pypi.core.names import normalize_project_name
from serverless_pypi.index import layout
from serverless_pypi.index.sessions import MAX_LIFETIME
from tests.deploy.test_terraform_upstream import BUCKET_ARN, allowed
from tests.helpers.terraform import blocks, local, resources, unquote

NAME = normalize_project_name("demo-pkg")
SID = "a" * 26
WHEEL = "demo_pkg-1.0-py3-none-any.whl"


def _object(prefix: str, key: str) -> str:
    return f"{BUCKET_ARN}/{prefix}{key}"


def _variable(name: str) -> dict[str, Any]:
    found: dict[str, dict[str, Any]] = {
        unquote(n): body for block in blocks("variable") for n, body in block.items()
    }
    return found[name]


@pytest.mark.parametrize("prefix", ["", "pypi/"])
def test_the_api_function_runs_sessions_and_publishes_them(prefix: str) -> None:
    document = _object(prefix, layout.session_key(SID))
    staged = _object(prefix, f"{layout.session_prefix(SID)}files/{WHEEL}")
    claim = _object(prefix, layout.session_release_key(NAME, "1.0"))
    marker = _object(prefix, layout.publishing_key(NAME, "1.0"))
    published = _object(prefix, layout.distribution_key(NAME, WHEEL))
    for key in (document, staged, claim, marker, published):
        # PutObject covers CreateMultipartUpload, UploadPart (the presigned part URLs are
        # signed with this role), CompleteMultipartUpload, CopyObject and UploadPartCopy
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            assert allowed("api", action, key, prefix), (action, key)
    for action in ("s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"):
        assert allowed("api", action, staged, prefix), action
        assert not allowed("api", action, published, prefix), action  # sessions' only


@pytest.mark.parametrize("prefix", ["", "pypi/"])
def test_the_indexer_sweeps_expired_sessions_but_writes_no_distribution(prefix: str) -> None:
    staged = _object(prefix, f"{layout.session_prefix(SID)}files/{WHEEL}")
    marker = _object(prefix, layout.publishing_key(NAME, "1.0"))
    for key in (staged, _object(prefix, layout.session_key(SID)), marker):
        assert allowed("reindex", "s3:DeleteObject", key, prefix), key
    assert allowed("reindex", "s3:AbortMultipartUpload", staged, prefix)
    published = _object(prefix, layout.distribution_key(NAME, WHEEL))
    assert not allowed("reindex", "s3:DeleteObject", published, prefix)


def test_the_session_lifetime_is_a_variable_the_code_reads() -> None:
    variable = _variable("upload_session_ttl")
    assert variable["default"] == Settings().upload_session_ttl == 86400
    assert local("api_environment")["UPLOAD_SESSION_TTL"] == "${tostring(var.upload_session_ttl)}"
    assert Settings.from_env({"UPLOAD_SESSION_TTL": "604800"}).upload_session_ttl == MAX_LIFETIME
    condition = unquote(variable["validation"][0]["condition"])
    assert "604800" in condition and str(MAX_LIFETIME) == "604800"


def test_unfinished_multipart_uploads_outlive_the_longest_session() -> None:
    lifecycle = resources("aws_s3_bucket_lifecycle_configuration")["pypi"]
    [rule] = [r for r in lifecycle["rule"] if unquote(r["id"]) == "housekeeping"]
    # an empty filter: every key, the sessions' staged files included
    assert [{k: v for k, v in f.items() if k != "__is_block__"} for f in rule["filter"]] == [{}]
    days = rule["abort_incomplete_multipart_upload"][0]["days_after_initiation"]
    # an upload starts once its session exists; aborted no sooner than the session must end
    assert days * 86400 >= MAX_LIFETIME
