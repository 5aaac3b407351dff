"""Shared fixtures: stores (local directory and S3 in moto's standalone server), live servers.

Helpers that are not fixtures live in `tests/helpers/`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage import Store
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.s3 import S3Store
from serverless_pypi.storage.s3_light import LightS3Store
from tests.helpers.servers import (
    LiveServer,
    create_bucket,
    moto_env,
    start_moto,
    start_server,
    stop,
)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's standalone S3 server over HTTP on 127.0.0.1 (a real HTTP S3 API, not patching)."""
    server, url = start_moto()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def aws_env(moto_url: str) -> dict[str, str]:
    """Environment for processes (and boto3 in this one) that talk to moto."""
    env = moto_env(moto_url)
    os.environ.update(env)
    return env


@pytest.fixture
def s3_bucket(aws_env: dict[str, str], moto_url: str) -> str:
    return create_bucket(moto_url)


@pytest.fixture
def s3_store(s3_bucket: str, moto_url: str) -> S3Store:
    return S3Store(s3_bucket, "", endpoint_url=moto_url)


@pytest.fixture
def light_s3_store(s3_bucket: str, moto_url: str) -> LightS3Store:
    """The API function's store: reads over the standard library, writes through boto3."""
    return LightS3Store(s3_bucket, "", endpoint_url=moto_url)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture(params=["local", "s3", "s3-light"])
def store(request: pytest.FixtureRequest) -> Store:
    """Every contract test runs over both stores, S3 through both clients (boto3, and the
    standard-library one of the API function)."""
    name = {"local": "local_store", "s3": "s3_store", "s3-light": "light_s3_store"}
    return request.getfixturevalue(name[request.param])  # type: ignore[no-any-return]


@pytest.fixture
def catalog(store: Store) -> Catalog:
    return Catalog(store)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Start `serverless-pypi serve` as a subprocess; stopped at the end of the test."""
    started: list[LiveServer] = []

    def start(
        store: str, env: dict[str, str] | None = None, extra: list[str] | None = None
    ) -> LiveServer:
        server = start_server(store, tmp_path, env, extra)
        started.append(server)
        return server

    yield start
    for server in started:
        stop(server.process)
