"""UPLOAD_SESSION_TTL and UPLOAD_SESSION_MAX_FILE_SIZE (PEP 694 sessions), and the base path
of the index root that session links are built from (`web.paths.index_base`)."""

from __future__ import annotations

import pytest

from serverless_pypi.core.config import ConfigError, Settings
from serverless_pypi.web.paths import index_base


def test_defaults_and_environment() -> None:
    settings = Settings.from_env({})
    assert settings.upload_session_ttl == 86400
    assert settings.upload_session_max_file_size == 5 * 1024**3
    assert settings.max_upload_size == 100 * 1024 * 1024  # legacy uploads: their own bound
    chosen = Settings.from_env(
        {"UPLOAD_SESSION_TTL": "600", "UPLOAD_SESSION_MAX_FILE_SIZE": str(50 * 1024**3)}
    )
    assert (chosen.upload_session_ttl, chosen.upload_session_max_file_size) == (600, 50 * 1024**3)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"UPLOAD_SESSION_TTL": "59"}, "UPLOAD_SESSION_TTL=59"),
        ({"UPLOAD_SESSION_TTL": str(7 * 86400 + 1)}, "UPLOAD_SESSION_TTL"),
        ({"UPLOAD_SESSION_TTL": "a day"}, "UPLOAD_SESSION_TTL"),
        ({"UPLOAD_SESSION_MAX_FILE_SIZE": "0"}, "UPLOAD_SESSION_MAX_FILE_SIZE"),
        ({"UPLOAD_SESSION_MAX_FILE_SIZE": str(5 * 1024**4 + 1)}, "5 TiB"),
    ],
)
def test_bad_values_are_refused_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("raw", "route", "base"),
    [
        ("/simple/_upload/", "_upload/", "/simple/"),
        ("/prod/simple/_upload/abc/", "_upload/abc/", "/prod/simple/"),
        ("/prod/_upload/abc/files/x.whl", "_upload/abc/files/x.whl", "/prod/"),
        ("/_upload/abc/", "_upload/abc/", "/"),  # a custom domain mapping its root to a stage
        # the raw path may spell a character the route percent-encodes
        ("/pypi/_upload/a/files/d-1.0+x-py3-none-any.whl", "_upload/a/files/d-1.0%2Bx", "/pypi/"),
        ("relative", "_upload/", "/simple/"),
        ("/x", "_upload/a/b/", "/simple/"),
    ],
)
def test_the_index_base_is_the_raw_path_without_the_route(raw: str, route: str, base: str) -> None:
    assert index_base(raw, route) == base
