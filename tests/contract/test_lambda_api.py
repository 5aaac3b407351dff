"""The Lambda entry point on recorded-shape events: REST API (1.0), HTTP API (2.0), function URLs.

The events in tests/events/ keep the shape API Gateway and Lambda send; each test rewrites
only the path, method, headers and query, the way the front would fill them in.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import pytest

from serverless_pypi.adapters import aws_lambda
from serverless_pypi.adapters.aws_lambda import api_handler, application
from serverless_pypi.core.config import Settings
from serverless_pypi.core.model import FileRecord, Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index.catalog import Catalog, Change
from serverless_pypi.storage.s3 import S3Store
from tests.helpers.dists import make_wheel
from tests.helpers.index import JSON, publish_file
from tests.helpers.lambda_events import (
    CONFIG,
    HTTP,
    SHAPES,
    WHEEL,
    body_bytes,
    check_shape,
    event,
    handle,
    load,
)
from tests.helpers.servers import create_bucket


def client_url(data: dict[str, Any]) -> str:
    """The URL the client asked for, as the front received it."""
    context = data["requestContext"]
    path = data["rawPath"] if data.get("version") == "2.0" else context["path"]
    return f"https://{context['domainName']}{path}"


@pytest.fixture(scope="module")
def published(
    aws_env: dict[str, str], moto_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3Store]:
    """A bucket with one published project, shared by the module's tests."""
    name = create_bucket(moto_url, "lambda")
    store = S3Store(name, endpoint_url=moto_url)
    wheel = make_wheel(tmp_path_factory.mktemp("dists"), "my_pkg", "1.0", requires_python=">=3.8")
    publish_file(Catalog(store), wheel)
    yield store
    application.cache_clear()  # leave no application built for this bucket to other modules


def _cached_application_fits(store: S3Store) -> bool:
    if application.cache_info().currsize == 0:
        return False
    app = application()
    settings = Settings.from_env(max_inline_body=aws_lambda.MAX_INLINE_BODY)
    # the repository reads the store at this location: the same bucket and prefix
    return app.repository.location == store.location and app.settings == settings


@pytest.fixture
def bucket(published: S3Store, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    """The function configured for the published bucket.

    The application of a warm execution environment is reused while the configuration stays
    the same (building one costs a boto3 session); a test that changes it clears the cache.
    """
    for name in CONFIG:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("S3_BUCKET", published.bucket)
    if not _cached_application_fits(published):
        application.cache_clear()
    return published


@pytest.mark.parametrize("shape", SHAPES)
def test_project_page(bucket: S3Store, shape: str) -> None:
    response = handle(event(shape))
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert response["isBase64Encoded"] is False
    html = response["body"]
    assert f'href="{WHEEL}#sha256=' in html  # relative: right below any stage or base path
    assert 'data-requires-python="&gt;=3.8"' in html
    as_json = handle(event(shape, headers={"Accept": JSON}))
    assert as_json["headers"]["Content-Type"] == JSON
    page = json.loads(body_bytes(as_json))
    assert [f["filename"] for f in page["files"]] == [WHEEL]
    assert json.loads(body_bytes(handle(event(shape, query={"format": "json"})))) == page


@pytest.mark.parametrize("shape", ["rest_api_root", *HTTP])
def test_root_page(bucket: S3Store, shape: str) -> None:
    data = load("rest_api_root") if shape == "rest_api_root" else event(shape, "")
    response = handle(data)
    assert response["statusCode"] == 200
    assert 'href="my-pkg/"' in response["body"]
    # the page's relative links resolve below the URL the client used
    assert urljoin(client_url(data), "my-pkg/").endswith("/simple/my-pkg/")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    ("route", "canonical_suffix"),
    [("My_Pkg/", "my-pkg/"), ("my.pkg/", "my-pkg/"), ("my-pkg", "my-pkg/"), ("MY_PKG", "my-pkg/")],
)
def test_redirects_resolve_behind_every_front(
    bucket: S3Store, shape: str, route: str, canonical_suffix: str
) -> None:
    data = event(shape, route)
    response = handle(data)
    assert response["statusCode"] == 301
    requested = client_url(data)
    expected = requested[: len(requested) - len(route)] + canonical_suffix
    assert urljoin(requested, response["headers"]["Location"]) == expected
    # and the canonical URL answers
    assert handle(event(shape, canonical_suffix))["statusCode"] == 200


@pytest.mark.parametrize("shape", HTTP)
def test_index_root_without_slash(bucket: S3Store, shape: str) -> None:
    data = event(shape, "")
    data["rawPath"] = data["rawPath"].removesuffix("/")
    response = handle(data)
    assert response["statusCode"] == 301
    assert urljoin(client_url(data), response["headers"]["Location"]) == client_url(data) + "/"


def test_http_api_stage_named_simple(bucket: S3Store) -> None:
    """A stage named like the index (as in the reference module) is the index root."""
    data = event("http_api_named_stage")
    data["rawPath"] = "/simple/my-pkg/"
    data["requestContext"]["stage"] = "simple"
    assert handle(data)["statusCode"] == 200


def test_console_test_event_with_null_fields(bucket: S3Store) -> None:
    data = load("console_test")
    assert data["headers"] is None and data["queryStringParameters"] is None
    response = handle(data)
    assert response["statusCode"] == 200
    assert WHEEL in response["body"]
    bare = {k: v for k, v in data.items() if k not in {"headers", "multiValueHeaders"}}
    assert handle(bare)["statusCode"] == 200


@pytest.mark.parametrize("shape", SHAPES)
def test_download_redirects_to_a_presigned_url(bucket: S3Store, shape: str) -> None:
    response = handle(event(shape, f"my-pkg/{WHEEL}"))
    assert response["statusCode"] == 302
    location = response["headers"]["Location"]
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=900" in location
    with urllib.request.urlopen(location) as answer:  # noqa: S310 (moto on 127.0.0.1)
        assert answer.read()[:2] == b"PK"
    head = handle(event(shape, f"my-pkg/{WHEEL}", method="HEAD"))
    assert head["statusCode"] == 302 and head["body"] == ""


def test_presigned_ttl_from_the_environment(
    bucket: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3_PRESIGNED_URL_TTL", "120")
    application.cache_clear()
    response = handle(event("rest_api_proxy", f"my-pkg/{WHEEL}"))
    assert "X-Amz-Expires=120&" in response["headers"]["Location"]


@pytest.mark.parametrize("shape", SHAPES)
def test_binary_and_gzip_bodies_are_base64(bucket: S3Store, shape: str) -> None:
    plain = handle(event(shape, headers={"Accept": JSON}))
    zipped = handle(event(shape, headers={"Accept": JSON, "Accept-Encoding": "gzip"}))
    assert zipped["headers"]["Content-Encoding"] == "gzip"
    assert zipped["isBase64Encoded"] is True
    assert body_bytes(zipped) == body_bytes(plain)
    metadata = handle(event(shape, f"my-pkg/{WHEEL}.metadata"))
    assert metadata["statusCode"] == 200
    assert metadata["isBase64Encoded"] is True
    assert body_bytes(metadata).startswith(b"Metadata-Version: 2.1\nName: my_pkg\n")


@pytest.mark.parametrize("shape", SHAPES)
def test_head_has_no_body(bucket: S3Store, shape: str) -> None:
    get = handle(event(shape))
    head = handle(event(shape, method="HEAD"))
    assert head["statusCode"] == 200
    assert head["body"] == ""
    assert head["headers"]["ETag"] == get["headers"]["ETag"]


@pytest.mark.parametrize("shape", SHAPES)
def test_etag_revalidation(bucket: S3Store, shape: str) -> None:
    etag = handle(event(shape))["headers"]["ETag"]
    response = handle(event(shape, headers={"If-None-Match": etag}))
    assert response["statusCode"] == 304 and response["body"] == ""
    assert "Accept" in response["headers"]["Vary"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods(bucket: S3Store, shape: str, method: str) -> None:
    assert handle(event(shape, method=method))["statusCode"] == 405


BAD_ROUTES = [
    "../",
    "my-pkg/..",
    "%2e%2e/",
    "my-pkg%2F/",
    "my-pkg/a%5Cb",
    "my-pkg%00/",
    "my-pkg/x%0Ay",
    "%ff/",
    "x" * 201 + "/",
    "x" * 3000,
    "my-pkg/" + "b" * 300,
    "caf%C3%A9/",
    ".serverless-pypi/projects.json",
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("route", BAD_ROUTES)
def test_bad_input_is_a_4xx(bucket: S3Store, shape: str, route: str) -> None:
    response = handle(event(shape, route))
    assert 400 <= response["statusCode"] < 500, (route, response)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "headers",
    [{"Accept": "text/html;level=1"}, {"Accept": ";;;"}, {"Accept": "x;q=abc" * 5000}],
)
def test_malformed_accept_is_not_an_error(
    bucket: S3Store, shape: str, headers: dict[str, str]
) -> None:
    assert handle(event(shape, headers=headers))["statusCode"] == 200


@pytest.mark.parametrize("path", ["/", "/other/", "/simplex/my-pkg/", "/favicon.ico"])
def test_http_paths_outside_the_index(bucket: S3Store, path: str) -> None:
    data = event("function_url")
    data["rawPath"] = path
    response = handle(data)
    assert response["statusCode"] in {200, 404}  # "/" answers the project list
    assert response["statusCode"] < 500


@pytest.mark.parametrize("shape", SHAPES)
def test_the_log_line_never_carries_credentials(
    bucket: S3Store, shape: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_REQUESTS", "true")
    application.cache_clear()
    secret = "s3cr3t-t0k3n"
    auth = "Basic " + base64.b64encode(f"__token__:{secret}".encode()).decode()
    caplog.set_level(logging.INFO, logger="serverless_pypi")
    response = handle(
        event(
            shape,
            f"my-pkg/{WHEEL}",
            headers={"Authorization": auth},
            query={"token": secret},
        )
    )
    assert response["statusCode"] == 302
    signature = response["headers"]["Location"].split("X-Amz-Signature=")[1]
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("serverless_pypi")]
    assert lines, "one line per request"
    logged = "\n".join(lines)
    for leaked in (secret, auth, base64.b64encode(secret.encode()).decode(), signature, "X-Amz"):
        assert leaked not in logged
    entry = json.loads(lines[-1])
    assert entry["method"] == "GET"
    assert entry["status"] == 302
    assert entry["path"] == f"/my-pkg/{WHEEL}"
    application.cache_clear()


@pytest.mark.parametrize(("value", "lines"), [("", 0), ("off", 0), ("yes", 1), ("TRUE", 1)])
def test_a_line_per_request_only_when_asked(
    bucket: S3Store,
    value: str,
    lines: int,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LOG_REQUESTS: a line per request when on; off (the default), only failures."""
    monkeypatch.setenv("LOG_REQUESTS", value)
    application.cache_clear()
    caplog.set_level(logging.INFO, logger="serverless_pypi")
    assert handle(event("function_url", f"my-pkg/{WHEEL}"))["statusCode"] == 302
    assert handle(event("function_url", "my-pkg/nope-1.0.tar.gz"))["statusCode"] == 404
    logged = [r for r in caplog.records if r.name.startswith("serverless_pypi")]
    assert len(logged) == 2 * lines
    application.cache_clear()


def test_failures_are_logged_whatever_log_requests_says(
    bucket: S3Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_REQUESTS", "false")
    monkeypatch.setenv("MAX_UPLOAD_SIZE", "not a number")  # every request: a 500
    application.cache_clear()
    caplog.set_level(logging.INFO, logger="serverless_pypi")
    assert handle(event("function_url", "my-pkg/"))["statusCode"] == 500
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("serverless_pypi")]
    assert any('"status": 500' in m for m in messages)
    application.cache_clear()


def test_every_response_fits_the_lambda_limit(bucket: S3Store) -> None:
    """A project page of any size stays under 6 MB: a large one is served by S3 itself."""
    catalog = Catalog(bucket)
    template = FileRecord(
        filename="",
        key="",
        size=123456,
        upload_time="2024-01-01T00:00:00.000000Z",
        sha256="a" * 64,
        requires_python=">=3.8, <4",
        metadata_sha256="b" * 64,
    )

    def many(index: Manifest) -> Change[None]:
        for i in range(12_000):
            name = f"huge_project-1.{i}-cp311-cp311-manylinux_2_17_x86_64.whl"
            index.files[name] = template.with_changes(filename=name, key=f"huge-project/{name}")
        return Change(None)

    catalog.update_project(NormalizedName("huge-project"), many)
    for accept in ("text/html", JSON):
        plain = handle(event("rest_api_proxy", "huge-project/", headers={"Accept": accept}))
        assert plain["statusCode"] == 302, "over 4 MiB uncompressed"
        with urllib.request.urlopen(plain["headers"]["Location"]) as answer:  # noqa: S310
            page = gzip.decompress(answer.read())
        assert len(page) > aws_lambda.MAX_INLINE_BODY
        assert page.count(b"huge_project-1.") >= 12_000
        zipped = handle(
            event(
                "rest_api_proxy",
                "huge-project/",
                headers={"Accept": accept, "Accept-Encoding": "gzip"},
            )
        )
        assert len(json.dumps(zipped)) < 6_000_000
        if zipped["statusCode"] == 200:
            assert gzip.decompress(base64.b64decode(zipped["body"])) == page


def test_missing_bucket_configuration_is_a_clean_500(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S3_BUCKET", raising=False)
    application.cache_clear()
    try:
        response = handle(event("rest_api_proxy"))
    finally:
        application.cache_clear()
    assert response["statusCode"] == 500
    assert "Traceback" not in response["body"]


@pytest.mark.parametrize("junk", [None, {}, [], "text", {"requestContext": None}])
def test_junk_events_do_not_crash_the_handler(bucket: S3Store, junk: Any) -> None:
    response = api_handler(junk, None)
    check_shape(response)
    assert response["statusCode"] < 500
