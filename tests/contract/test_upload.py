"""The upload API through the application: validation, answers, atomicity, the Lambda edge."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serverless_pypi.adapters import aws_lambda
from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.core.errors import InvalidRequest
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage import Store
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.s3 import S3Store
from serverless_pypi.web.errors import status_of
from serverless_pypi.web.upload import MAX_FORM_TEXT, parse_form
from tests.helpers.dists import make_sdist, make_wheel, subdir
from tests.helpers.forms import basic_auth, encode_form, upload_body, upload_fields


class Index:
    """An application with uploads enabled, and a write token for it."""

    def __init__(self, store: Store, settings: Settings | None = None) -> None:
        self.store = store
        self.settings = settings or Settings()
        self.app = build_application(store, self.settings)
        self.token, _ = TokenStore(store).create("write")

    def post(
        self,
        body: bytes,
        content_type: str | None,
        token: str | None = "default",
        path: str = "",
    ) -> Response:
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        token = self.token if token == "default" else token
        if token is not None:
            headers["Authorization"] = basic_auth(token)
        return self.app.handle(Request("POST", path, headers=Headers(headers), body=body))

    def upload(self, path: Path, token: str | None = "default", **fields: str | None) -> Response:
        return self.post(*upload_body(path, **fields), token=token)

    def files(self, project: str) -> dict[str, str | None]:
        index, _ = Catalog(self.store).read_project(NormalizedName(project))
        return {name: record.sha256 for name, record in index.files.items()}


@pytest.fixture
def index(local_store: LocalStore) -> Index:
    return Index(local_store)


def text(response: Response) -> str:
    return response.body.decode()


def test_upload_wheel_and_sdist(store: Store, tmp_path: Path) -> None:
    index = Index(store)
    wheel = make_wheel(tmp_path, "Demo.Pkg", "1.0", requires_python=">=3.9")
    sdist = make_sdist(tmp_path, "Demo.Pkg", "1.0")
    # uv sends the name as written, twine sends it as in the metadata
    response = index.upload(wheel, name="Demo.Pkg")
    assert response.status == 200, text(response)
    assert "published demo-pkg/" in text(response)
    assert index.upload(sdist, name="demo_pkg").status == 200
    files = index.files("demo-pkg")
    assert files == {
        wheel.name: hashlib.sha256(wheel.read_bytes()).hexdigest(),
        sdist.name: hashlib.sha256(sdist.read_bytes()).hexdigest(),
    }
    page = index.app.handle(
        Request(
            "GET", "demo-pkg/", headers=Headers({"Accept": "application/vnd.pypi.simple.v1+json"})
        )
    )
    data = json.loads(page.body)
    assert [f["filename"] for f in data["files"]] == [wheel.name, sdist.name]
    assert data["files"][0]["requires-python"] == ">=3.9"
    metadata = index.app.handle(Request("GET", f"demo-pkg/{wheel.name}.metadata"))
    assert metadata.status == 200
    assert b"Name: Demo.Pkg" in metadata.body


@pytest.mark.parametrize("path", ["", "legacy/", "legacy"])
def test_upload_paths(index: Index, tmp_path: Path, path: str) -> None:
    wheel = make_wheel(tmp_path, "paths", "1.0")
    assert index.post(*upload_body(wheel), path=path).status == 200
    assert wheel.name in index.files("paths")


def test_identical_reupload_is_a_no_op(index: Index, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "same", "1.0")
    assert index.upload(wheel).status == 200
    manifest = index.store.head(layout.manifest_key(NormalizedName("same")))
    again = index.upload(wheel)
    assert again.status == 200
    assert "already published with the same contents" in text(again)
    assert index.store.head(layout.manifest_key(NormalizedName("same"))).etag == manifest.etag


def test_other_bytes_under_a_published_name(index: Index, tmp_path: Path) -> None:
    first = make_wheel(subdir(tmp_path, "a"), "dup", "1.0")
    second = make_wheel(subdir(tmp_path, "b"), "dup", "1.0", payload="x = 1\n")
    assert index.upload(first).status == 200
    response = index.upload(second)
    assert response.status == 400
    assert text(response).startswith("File already exists")
    assert index.files("dup") == {first.name: hashlib.sha256(first.read_bytes()).hexdigest()}
    key = layout.distribution_key("dup", first.name)
    assert index.store.get(key).data == first.read_bytes()


def bad_upload_cases(tmp_path: Path) -> Iterator[tuple[str, bytes, str | None, str]]:
    """(case, body, content type, expected message fragment): each answered 400."""
    wheel = make_wheel(tmp_path, "valid", "1.0")
    data = wheel.read_bytes()

    def form(
        file: tuple[str, bytes] | None = (wheel.name, data), **fields: str | None
    ) -> tuple[bytes, str]:
        return encode_form(upload_fields(wheel.name, data, **fields), file)

    yield "name mismatch", *form(name="other"), "does not match the file name"
    yield "invalid name", *form(name="bad name!"), "Invalid project name"
    yield "version mismatch", *form(version="2.0"), "version '2.0' does not match"
    yield "invalid version", *form(version="one"), "Invalid version"
    yield "missing name", *form(name=None), "no 'name' field"
    yield "missing version", *form(version=None), "no 'version' field"
    yield "bad sha256", *form(sha256_digest="0" * 64), "sha256_digest sent"
    yield "bad blake2", *form(blake2_256_digest="f" * 64), "blake2_256_digest sent"
    yield "bad md5", *form(md5_digest="0" * 32), "md5_digest sent"
    yield "filetype", *form(filetype="sdist"), "filetype 'sdist' does not match"
    yield "missing action", *form(**{":action": None}), "no ':action'"
    wrong_action: dict[str, Any] = {":action": "submit"}  # a field name that is no identifier
    yield "wrong action", *form(**wrong_action), "Unsupported ':action'"
    yield "protocol", *form(protocol_version="2"), "Unknown protocol_version"
    yield "no file", *form(file=None), "has no file"
    yield "empty file", *form(file=(wheel.name, b"")), "is empty"
    yield "egg", *form(file=("valid-1.0-py3.11.egg", data)), "expected a .whl, .tar.gz or .zip"
    yield "exe", *form(file=("valid-1.0.exe", data)), "expected a .whl, .tar.gz or .zip"
    yield (
        "path in file name",
        *form(file=("../valid-1.0-py3-none-any.whl", data)),
        "Invalid file name",
    )
    yield "bad wheel name", *form(file=("valid-1.0.whl", data)), "Invalid file name"
    yield (
        "not a zip",
        *encode_form(upload_fields(wheel.name, b"not a zip"), (wheel.name, b"not a zip")),
        "cannot be published",
    )
    yield "no content type", form()[0], None, "no Content-Type"
    yield (
        "urlencoded",
        b":action=file_upload",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    )
    yield "no boundary", data, "multipart/form-data", "boundary"
    body, content_type = form()
    yield "truncated", body[: len(body) // 2], content_type, "not valid multipart"
    yield "garbage", b"\x00" * 100, content_type, "not valid multipart"
    twice = encode_form([(":action", "file_upload"), ("name", "a"), ("name", "b")], None)
    yield "field twice", *twice, "more than once"
    two_files = body.replace(
        f"--{content_type.split('=')[1]}--".encode(),
        body.split(b"\r\n", 1)[0]
        + b'\r\nContent-Disposition: form-data; name="content"; filename="x.whl"\r\n\r\nxx\r\n'
        + f"--{content_type.split('=')[1]}--".encode(),
    )
    yield "two files", two_files, content_type, "more than one file"
    yield "non-utf8 field", *encode_form([("name", "x")], None), "not UTF-8"


def test_bad_uploads_get_400_and_write_nothing(index: Index, tmp_path: Path) -> None:
    for case, raw, content_type, fragment in bad_upload_cases(tmp_path):
        body = raw
        if case == "non-utf8 field":
            body = raw.replace(b"\r\n\r\nx\r\n", b"\r\n\r\n\xff\xfe\r\n")
        response = index.post(body, content_type)
        assert response.status == 400, (case, text(response))
        assert fragment in text(response), (case, text(response))
        assert response.headers["Content-Type"].startswith("text/plain")
    names = {info.key for info in index.store.list("")}
    assert names <= {layout.TOKENS}, names


def test_huge_text_field_is_refused(index: Index, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "huge", "1.0")
    data = wheel.read_bytes()
    fields = upload_fields(wheel.name, data, description="x" * (MAX_FORM_TEXT + 1))
    response = index.post(*encode_form(fields, (wheel.name, data)))
    assert response.status == 400
    assert "larger than" in text(response)
    assert index.files("huge") == {}


def test_many_parts_are_refused(index: Index) -> None:
    fields = [("classifiers", "Topic :: X")] * 6000
    response = index.post(*encode_form(fields, None))
    assert response.status == 400
    assert "limit" in text(response)


def test_oversized_file_gets_413(local_store: LocalStore, tmp_path: Path) -> None:
    index = Index(local_store, Settings(max_upload_size=2000))
    small = make_wheel(tmp_path, "size", "1.0")
    big = make_wheel(tmp_path, "size", "2.0", payload="x = '" + os.urandom(3000).hex() + "'\n")
    assert small.stat().st_size < 2000 < big.stat().st_size
    assert index.upload(small).status == 200
    response = index.upload(big)
    assert response.status == 413
    assert "MAX_UPLOAD_SIZE" in text(response)
    assert list(index.files("size")) == [small.name]


def test_credentials_are_checked_before_the_form(index: Index, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "auth", "1.0")
    tokens = TokenStore(index.store)
    read, _ = tokens.create("read")
    other, _ = tokens.create("write", ["someone-else"])
    revoked, revoked_record = tokens.create("write")
    tokens.revoke([revoked_record.id])
    for token, fragment in [
        (None, "no credentials"),
        ("spypi_0000000000000000_wrong", "not valid"),
        (read, "uploads need a write token"),
        (other, "may not upload to project 'auth'"),
        (revoked, "not valid"),
    ]:
        response = index.upload(wheel, token=token)
        assert response.status == 403, token
        assert fragment in text(response)
    # a bad form from a stranger is refused for the credentials, not the form
    assert index.post(b"garbage", "text/plain", token=None).status == 403
    assert index.files("auth") == {}


def test_uploads_disabled_without_the_hook(local_store: LocalStore, tmp_path: Path) -> None:
    app = build_application(local_store, uploads=False)
    wheel = make_wheel(tmp_path, "off", "1.0")
    body, content_type = upload_body(wheel)
    response = app.handle(
        Request("POST", "", headers=Headers({"Content-Type": content_type}), body=body)
    )
    assert response.status == 405


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=2000), boundary=st.text(min_size=0, max_size=80))
def test_any_body_gets_a_4xx(index: Index, body: bytes, boundary: str) -> None:
    response = index.post(body, f"multipart/form-data; boundary={boundary}")
    assert 400 <= response.status < 500, text(response)


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(min_value=0, max_value=1_400))
def test_any_truncation_is_a_400(cut: int) -> None:
    fields = [(":action", "file_upload"), ("name", "x"), ("version", "1")]
    body, content_type = encode_form(fields, ("x-1-py3-none-any.whl", b"PK" * 500))
    # the CRLF after the closing delimiter is optional (RFC 2046): any shorter body is cut
    if cut >= len(body) - 2:
        parse_form(body[:cut], content_type, 10_000).close()
        return
    with pytest.raises(InvalidRequest) as raised:
        parse_form(body[:cut], content_type, 10_000).close()
    assert status_of(raised.value)[0] == 400


# -- the Lambda edge ----------------------------------------------------------------------


@pytest.fixture
def lambda_env(s3_store: S3Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Store]:
    monkeypatch.setenv("S3_BUCKET", s3_store.bucket)
    monkeypatch.setenv("S3_PREFIX", "")
    aws_lambda.application.cache_clear()
    yield s3_store
    aws_lambda.application.cache_clear()


def _event(body: bytes, content_type: str, token: str | None, path: str = "/simple/") -> dict:  # type: ignore[type-arg]
    headers = {"content-type": content_type}
    if token:
        headers["authorization"] = basic_auth(token)
    return {
        "version": "2.0",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": path}, "stage": "$default"},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def _rest_event(body: bytes, content_type: str, token: str) -> dict:  # type: ignore[type-arg]
    return {
        "resource": "/",
        "path": "/",
        "httpMethod": "POST",
        "headers": {"Content-Type": content_type, "Authorization": basic_auth(token)},
        "multiValueHeaders": None,
        "queryStringParameters": None,
        "pathParameters": None,
        "requestContext": {"stage": "simple", "path": "/simple/"},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def _lambda_text(answer: dict) -> str:  # type: ignore[type-arg]
    body = answer["body"]
    return base64.b64decode(body).decode() if answer["isBase64Encoded"] else body


def test_upload_through_api_handler(lambda_env: S3Store, tmp_path: Path) -> None:
    token, _ = TokenStore(lambda_env).create("write", ["lambda-*"])
    wheel = make_wheel(tmp_path, "lambda-pkg", "1.0")
    sdist = make_sdist(tmp_path, "lambda-pkg", "1.0")
    answer = aws_lambda.api_handler(_event(*upload_body(wheel), token))
    assert answer["statusCode"] == 200, _lambda_text(answer)
    assert isinstance(answer["body"], str)
    # a REST API (payload 1.0) event at the stage root
    answer = aws_lambda.api_handler(_rest_event(*upload_body(sdist), token))
    assert answer["statusCode"] == 200, _lambda_text(answer)
    index, _ = Catalog(lambda_env).read_project(NormalizedName("lambda-pkg"))
    assert sorted(index.files) == sorted([wheel.name, sdist.name])
    page = lambda_env.get(layout.page_key(NormalizedName("lambda-pkg"), json=False)).data
    assert wheel.name.encode() in gzip.decompress(page)
    # refused without credentials, and with other bytes under the same name
    answer = aws_lambda.api_handler(_event(*upload_body(wheel), None))
    assert answer["statusCode"] == 403
    other = make_wheel(subdir(tmp_path, "other"), "lambda-pkg", "1.0", payload="y = 2\n")
    answer = aws_lambda.api_handler(_event(*upload_body(other), token))
    assert answer["statusCode"] == 400
    assert _lambda_text(answer).startswith("File already exists")


def test_too_large_for_lambda_points_to_publish(
    lambda_env: S3Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_UPLOAD_SIZE", "1000")
    aws_lambda.application.cache_clear()
    token, _ = TokenStore(lambda_env).create("write")
    wheel = make_wheel(tmp_path, "big", "1.0", payload="x = '" + os.urandom(2000).hex() + "'\n")
    answer = aws_lambda.api_handler(_event(*upload_body(wheel), token))
    assert answer["statusCode"] == 413
    message = _lambda_text(answer)
    assert f"serverless-pypi publish --store s3://{lambda_env.bucket}" in message
    assert "6 MB" in message


def test_lambda_bound_is_below_the_payload_limit() -> None:
    # base64 of the largest accepted file, plus the form, fits Lambda's 6 MB request payload
    assert aws_lambda.MAX_UPLOAD_THROUGH_LAMBDA * 4 / 3 + 64 * 1024 < 6 * 1024 * 1024
    assert aws_lambda.MAX_UPLOAD_THROUGH_LAMBDA > 4 * 1024 * 1024
