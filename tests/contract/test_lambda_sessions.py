"""The Upload 2.0 session API through the Lambda handler (`api_handler`) on every front's
event shape: absolute links carry the base path the client sees, http-post-bytes bodies
arrive base64-encoded, and a file too large for the front is sent to the S3 mechanism."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from serverless_pypi.adapters.aws_lambda import MAX_UPLOAD_THROUGH_LAMBDA
from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage.s3 import S3Store
from tests.helpers.dists import make_wheel
from tests.helpers.forms import basic_auth, upload_body
from tests.helpers.lambda_events import CONFIG, SHAPES, body_bytes, event, fresh_environment, handle
from tests.helpers.servers import create_bucket

MEDIA_TYPE = "application/vnd.pypi.upload.v2+json"
META = {"api-version": "2.0"}
S3_MECHANISM = "vnd-serverlesspypi-s3multipart-presigned-v1"
#: the index root each front's client sees (tests/events/*.json and `event`)
BASES = {
    "rest_api_proxy": "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/simple/",
    "rest_api_custom_domain": "https://pypi.example.com/pypi/",
    "http_api_default_stage": "https://{host}/simple/",
    "http_api_named_stage": "https://k9j8h7g6f5.execute-api.eu-west-1.amazonaws.com/prod/simple/",
    "function_url": "https://u7t6s5r4q3p2o1n0m9l8k7j6i5h4g3f2.lambda-url.us-east-1.on.aws/simple/",
}


@pytest.fixture
def bucket(
    aws_env: dict[str, str], moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[S3Store]:
    for name in CONFIG:
        monkeypatch.delenv(name, raising=False)
    name = create_bucket(moto_url)
    monkeypatch.setenv("S3_BUCKET", name)
    fresh_environment()
    yield S3Store(name, endpoint_url=moto_url)
    fresh_environment()


def large_wheel(directory: Path) -> Path:
    """A wheel larger than a request through Lambda carries (random bytes do not compress)."""
    noise = base64.b64encode(os.urandom(MAX_UPLOAD_THROUGH_LAMBDA)).decode()
    wheel = make_wheel(directory, "demo", "1.0", payload=f"# {noise}\n")
    assert wheel.stat().st_size > MAX_UPLOAD_THROUGH_LAMBDA
    return wheel


class Front:
    """Requests to `api_handler` in the event shape `shape`, with a write token."""

    def __init__(self, shape: str, store: S3Store) -> None:
        self.shape = shape
        self.token, _ = TokenStore(store).create("write")
        self.host = event(shape)["requestContext"]["domainName"]
        self.base = BASES[shape].format(host=self.host)

    def call(
        self,
        method: str,
        url: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = MEDIA_TYPE,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        route = url.removeprefix(self.base) if url.startswith("https://") else url
        assert not route.startswith("https://"), (url, self.base)
        sent = {
            "Host": self.host,
            "Authorization": basic_auth(self.token),
            "Accept": "*/*",
            "X-Forwarded-Proto": "https",
            **(headers or {}),
        }
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        if data:
            sent["Content-Type"] = content_type
        request = event(self.shape, route, method=method, headers=sent)
        if data:
            request["body"] = base64.b64encode(data).decode()
            request["isBase64Encoded"] = True
        answer = handle(request)
        return answer["statusCode"], answer["headers"], body_bytes(answer)

    def json(self, method: str, url: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        status, headers, data = self.call(method, url, body)
        assert headers["Content-Type"] == MEDIA_TYPE, (status, data)
        return status, json.loads(data)


@pytest.mark.parametrize("shape", SHAPES)
def test_links_carry_the_base_path_of_each_front(
    bucket: S3Store, tmp_path: Path, shape: str
) -> None:
    front = Front(shape, bucket)
    status, session = front.json(
        "POST", "_upload/", {"meta": META, "name": "demo", "version": "1.0"}
    )
    assert status == 201, session
    for link in session["links"].values():
        assert link.startswith(front.base + "_"), (shape, link)
    assert session["links"]["session"].startswith(front.base + "_upload/")
    assert session["links"]["stage"] == f"{front.base}_stage/{session['session-token']}/"
    assert session["mechanisms"] == [S3_MECHANISM, "http-post-bytes"]
    # a file through http-post-bytes: the body arrives base64-encoded in the event
    wheel = make_wheel(tmp_path, "demo", "1.0")
    data = wheel.read_bytes()
    status, file = front.json(
        "POST",
        session["links"]["upload"],
        {
            "meta": META,
            "filename": wheel.name,
            "size": len(data),
            "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
            "mechanism": "http-post-bytes",
        },
    )
    assert status == 202, file
    assert file["mechanism"]["file_url"].startswith(front.base + "_upload/")
    sent, _, _ = front.call(
        "POST", file["mechanism"]["file_url"], raw=data, content_type="application/octet-stream"
    )
    assert sent == 204
    assert front.json("POST", file["links"]["complete"], {"meta": META})[0] == 201
    # the stage answers through the same front
    status, headers, page = front.call(
        "GET", session["links"]["stage"] + "demo/", headers={"Accept": "text/html"}
    )
    assert status == 200
    assert wheel.name in page.decode()
    assert front.json("POST", session["links"]["publish"], {"meta": META})[0] == 201
    index, _ = Catalog(bucket).read_project(NormalizedName("demo"))
    assert set(index.files) == {wheel.name}


def test_a_file_too_large_for_the_front_uses_the_s3_mechanism(
    bucket: S3Store, tmp_path: Path
) -> None:
    front = Front("function_url", bucket)
    _, session = front.json("POST", "_upload/", {"meta": META, "name": "demo", "version": "1.0"})
    wheel = large_wheel(tmp_path)
    data = wheel.read_bytes()
    declared = {
        "meta": META,
        "filename": wheel.name,
        "size": len(data),
        "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
    }
    status, refused = front.json(
        "POST", session["links"]["upload"], {**declared, "mechanism": "http-post-bytes"}
    )
    assert status == 422
    assert S3_MECHANISM in refused["message"] and "serverless-pypi upload" in refused["message"]
    status, file = front.json(
        "POST", session["links"]["upload"], {**declared, "mechanism": S3_MECHANISM}
    )
    assert status == 202, file
    mechanism = file["mechanism"]
    status, urls = front.json("POST", mechanism["parts_url"], {"meta": META, "parts": [1]})
    assert status == 200, urls
    [part] = urls["parts"]
    # the bytes go to S3, not through the function
    assert urlsplit(part["url"]).netloc != urlsplit(front.base).netloc
    put = urllib.request.Request(
        part["url"], data=data, method="PUT", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(put) as answer:  # noqa: S310 - moto's http URL
        assert answer.status == 200
    assert front.json("POST", file["links"]["complete"], {"meta": META})[0] == 201
    assert front.json("POST", session["links"]["publish"], {"meta": META})[0] == 201
    index, _ = Catalog(bucket).read_project(NormalizedName("demo"))
    assert index.files[wheel.name].size == len(data)


def test_links_follow_the_scheme_the_front_reports(bucket: S3Store) -> None:
    front = Front("function_url", bucket)
    status, _, body = front.call(
        "POST",
        "_upload/",
        {"meta": META, "name": "demo", "version": "1.0"},
        headers={"X-Forwarded-Proto": "http"},
    )
    assert status == 201
    session = json.loads(body)
    assert session["links"]["session"].startswith("http://" + front.host + "/simple/_upload/")


def test_the_legacy_413_names_the_session_client(bucket: S3Store, tmp_path: Path) -> None:
    front = Front("function_url", bucket)
    wheel = large_wheel(tmp_path)
    form, content_type = upload_body(wheel)
    status, _, body = front.call("POST", "", raw=form, content_type=content_type)
    assert status == 413
    message = body.decode()
    assert "serverless-pypi upload --index" in message
    assert "Upload 2.0" in message
