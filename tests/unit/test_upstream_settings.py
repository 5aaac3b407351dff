"""Issue 12, item 1: the upstream settings, their defaults, and clear refusals."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from serverless_pypi.compose import build_repository
from serverless_pypi.core.config import ConfigError, Settings
from serverless_pypi.repository.fallback import FallbackRepository
from serverless_pypi.repository.policy import PolicyRepository
from serverless_pypi.repository.private_first import PrivateFirstRepository
from serverless_pypi.repository.store import StoreRepository
from serverless_pypi.repository.upstream import UpstreamRepository
from serverless_pypi.storage.local import LocalStore

PYPI = "https://pypi.org/simple/"
SECRET = "s3cr3t-t0ken"


def test_no_upstream_by_default() -> None:
    settings = Settings.from_env({})
    assert settings.upstream_index_url is None
    assert settings.upstream_mode == ""
    assert settings.fallback_index_url is None
    assert settings.upstream_ttl == 300


def test_an_upstream_url_alone_means_mirror_mode() -> None:
    settings = Settings.from_env({"UPSTREAM_INDEX_URL": PYPI})
    assert (settings.upstream_index_url, settings.upstream_mode) == (PYPI, "mirror")
    # nothing is redirected in mirror mode: code reading the old field sees no fallback
    assert settings.fallback_index_url is None


@pytest.mark.parametrize("mode", ["redirect", "proxy", "mirror", "PROXY", " mirror "])
def test_the_modes(mode: str) -> None:
    settings = Settings.from_env({"UPSTREAM_INDEX_URL": PYPI, "UPSTREAM_MODE": mode})
    assert settings.upstream_mode == mode.strip().lower()
    expected = PYPI.rstrip("/") if mode == "redirect" else None
    assert settings.fallback_index_url == expected


def test_fallback_index_url_keeps_meaning_redirect() -> None:
    settings = Settings.from_env({"FALLBACK_INDEX_URL": PYPI})
    assert settings.upstream_mode == "redirect"
    assert settings.upstream_index_url == PYPI
    assert settings.fallback_index_url == PYPI.rstrip("/")
    # as constructed by code (the old keyword)
    direct = Settings(fallback_index_url="https://pypi.org/simple")
    assert (direct.upstream_mode, direct.upstream_index_url) == (
        "redirect",
        direct.fallback_index_url,
    )


def test_the_same_url_in_both_is_accepted() -> None:
    settings = Settings.from_env(
        {"FALLBACK_INDEX_URL": PYPI, "UPSTREAM_INDEX_URL": PYPI.rstrip("/")}
    )
    assert settings.upstream_mode == "redirect"


def test_ttl_and_timeout() -> None:
    settings = Settings.from_env(
        {"UPSTREAM_INDEX_URL": PYPI, "UPSTREAM_TTL": "0", "UPSTREAM_TIMEOUT": "2.5"}
    )
    assert (settings.upstream_ttl, settings.upstream_timeout) == (0, 2.5)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"UPSTREAM_INDEX_URL": "pypi.org/simple"},
            "UPSTREAM_INDEX_URL='pypi.org/simple' must be an http(s) URL",
        ),
        ({"UPSTREAM_INDEX_URL": "ftp://pypi.org/"}, "must be an http(s) URL"),
        ({"UPSTREAM_INDEX_URL": "https://h:port/"}, "is not a valid URL"),
        (
            {"FALLBACK_INDEX_URL": "pypi.org"},
            "FALLBACK_INDEX_URL='pypi.org' must be an http(s) URL",
        ),
        (
            {"UPSTREAM_INDEX_URL": PYPI, "UPSTREAM_MODE": "cache"},
            "UPSTREAM_MODE='cache' is not one of redirect, proxy, mirror",
        ),
        ({"UPSTREAM_MODE": "proxy"}, "UPSTREAM_MODE='proxy' needs UPSTREAM_INDEX_URL"),
        ({"UPSTREAM_INDEX_URL": PYPI, "UPSTREAM_TTL": "-1"}, "UPSTREAM_TTL=-1 must be at least 0"),
        (
            {"UPSTREAM_INDEX_URL": PYPI, "UPSTREAM_TTL": "5m"},
            "UPSTREAM_TTL='5m' is not a whole number",
        ),
        (
            {"UPSTREAM_INDEX_URL": PYPI, "UPSTREAM_TIMEOUT": "0"},
            "UPSTREAM_TIMEOUT='0' must be more than 0",
        ),
        (
            {"UPSTREAM_INDEX_URL": PYPI, "UPSTREAM_TIMEOUT": "soon"},
            "UPSTREAM_TIMEOUT='soon' is not a number",
        ),
        (
            {"FALLBACK_INDEX_URL": PYPI, "UPSTREAM_INDEX_URL": "https://mirror.example/simple/"},
            "FALLBACK_INDEX_URL and UPSTREAM_INDEX_URL name different indexes",
        ),
        (
            {"FALLBACK_INDEX_URL": PYPI, "UPSTREAM_MODE": "mirror"},
            "FALLBACK_INDEX_URL always redirects",
        ),
        ({"UPSTREAM_USERNAME": "me"}, "need UPSTREAM_INDEX_URL"),
        (
            {"UPSTREAM_INDEX_URL": PYPI, "UPSTREAM_MODE": "redirect", "UPSTREAM_PASSWORD": SECRET},
            "cannot be used in redirect mode",
        ),
        (
            {"UPSTREAM_INDEX_URL": PYPI, "UPSTREAM_PASSWORD": SECRET},
            "UPSTREAM_PASSWORD needs UPSTREAM_USERNAME",
        ),
        (
            {
                "UPSTREAM_INDEX_URL": f"https://me:{SECRET}@pypi.example/simple/",
                "UPSTREAM_USERNAME": "me",
            },
            "give them in one place only",
        ),
    ],
)
def test_refusals_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert message in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_url_with_credentials_in_an_error_is_redacted() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"UPSTREAM_INDEX_URL": f"ftp://me:{SECRET}@pypi.example/"})
    assert SECRET not in str(raised.value) and "***@pypi.example" in str(raised.value)


def test_credentials_in_the_url_are_moved_out_of_it_and_never_shown() -> None:
    settings = Settings.from_env(
        {"UPSTREAM_INDEX_URL": f"https://me:{SECRET}%40x@pypi.example/simple/"}
    )
    assert settings.upstream_index_url == "https://pypi.example/simple/"
    assert (settings.upstream_username, settings.upstream_password) == ("me", SECRET + "@x")
    assert SECRET not in repr(settings)
    # resolving again (dataclasses.replace, as build_application does) changes nothing
    assert dataclasses.replace(settings, max_inline_body=10).upstream_password == SECRET + "@x"


def test_separate_credentials_are_never_shown() -> None:
    settings = Settings.from_env(
        {"UPSTREAM_INDEX_URL": PYPI, "UPSTREAM_USERNAME": "me", "UPSTREAM_PASSWORD": SECRET}
    )
    assert (settings.upstream_username, settings.upstream_password) == ("me", SECRET)
    assert SECRET not in repr(settings) and "'me'" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({}, StoreRepository),
        ({"FALLBACK_INDEX_URL": PYPI}, FallbackRepository),
        ({"UPSTREAM_INDEX_URL": PYPI, "UPSTREAM_MODE": "redirect"}, FallbackRepository),
        ({"UPSTREAM_INDEX_URL": PYPI, "UPSTREAM_MODE": "proxy"}, PrivateFirstRepository),
    ],
)
def test_the_stack_each_mode_builds(env: dict[str, str], kind: type, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    top = build_repository(store, Settings.from_env(env))
    assert isinstance(top, PolicyRepository)  # the policies, on top of every stack
    repository = top.inner
    assert type(repository) is kind
    if isinstance(repository, PrivateFirstRepository):
        assert isinstance(repository.private, StoreRepository)
        assert isinstance(repository.upstream, UpstreamRepository)
        assert repository.upstream.mode == "proxy" and repository.upstream.puller is None
        assert repository.upstream.location == PYPI


def test_mirror_mode_is_given_a_puller(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")

    class Recorder:
        def request(self, name: str, filename: str) -> None: ...

    puller = Recorder()
    top = build_repository(store, Settings.from_env({"UPSTREAM_INDEX_URL": PYPI}), puller=puller)
    assert isinstance(top, PolicyRepository)
    repository = top.inner
    assert isinstance(repository, PrivateFirstRepository)
    assert isinstance(repository.upstream, UpstreamRepository)
    assert repository.upstream.mode == "mirror" and repository.upstream.puller is puller
