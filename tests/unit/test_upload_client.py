"""`serverless-pypi upload`: the requests the client builds, checked without an index.

The end-to-end runs (sessions over both stores, resuming, the legacy fallback) are in
tests/integration/test_upload_sessions_e2e.py.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.adapters.cli import build_parser
from serverless_pypi.upload_client.credentials import basic_authorization, split_credentials
from serverless_pypi.upload_client.errors import UploadError
from serverless_pypi.upload_client.files import LocalFile, group_releases
from serverless_pypi.upload_client.legacy import legacy_form
from serverless_pypi.upload_client.protocol import (
    HTTP_POST_BYTES,
    MEDIA_TYPE,
    S3_MECHANISM,
    choose_mechanism,
    create_body,
    file_body,
    session_root,
)
from serverless_pypi.upload_client.s3_multipart import Part, missing_parts, part_plan
from serverless_pypi.upload_client.transport import Answer, Http, error_text
from serverless_pypi.web.upload import _validate, parse_form
from tests.helpers.dists import make_sdist, make_wheel, subdir

MiB = 1024 * 1024


def test_files_are_grouped_by_release_with_normalized_names_and_versions(tmp_path: Path) -> None:
    files = [
        LocalFile.read(make_wheel(tmp_path, "Acme.App", "1.0")),
        LocalFile.read(make_sdist(tmp_path, "acme_app", "1.0")),
        LocalFile.read(make_wheel(subdir(tmp_path, "b"), "acme-app", "1.1")),
    ]
    releases = group_releases(files)
    assert [(r.project, r.version, len(r.files)) for r in releases] == [
        ("acme-app", "1.0", 2),
        ("acme-app", "1.1", 1),
    ]
    assert create_body(releases[0]) == {
        "meta": {"api-version": "2.0"},
        "name": "acme-app",
        "version": "1.0",
    }


def test_a_file_is_read_with_its_size_and_sha256(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, "acme", "2.0")
    local = LocalFile.read(path)
    assert (local.size, local.sha256) == (
        path.stat().st_size,
        hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    assert file_body(local, S3_MECHANISM) == {
        "meta": {"api-version": "2.0"},
        "filename": path.name,
        "size": local.size,
        "hashes": {"sha256": local.sha256},
        "mechanism": S3_MECHANISM,
    }


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("notes.txt", b"x", "not a distribution"),
        ("acme-1.0-py3-none-any.whl", b"", "empty"),
    ],
)
def test_a_file_the_client_cannot_upload_is_named(
    tmp_path: Path, name: str, data: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(UploadError, match=reason):
        LocalFile.read(path)


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("https://pypi.example.com/simple/", "https://pypi.example.com/simple/_upload/"),
        ("https://pypi.example.com/simple", "https://pypi.example.com/simple/_upload/"),
        (
            "https://x.execute-api.eu-west-1.amazonaws.com/prod/",
            "https://x.execute-api.eu-west-1.amazonaws.com/prod/_upload/",
        ),
    ],
)
def test_the_session_root_is_below_the_index_url(url: str, root: str) -> None:
    assert session_root(url) == root


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ([S3_MECHANISM, HTTP_POST_BYTES], S3_MECHANISM),
        ([HTTP_POST_BYTES, S3_MECHANISM], HTTP_POST_BYTES),  # the index's order of preference
        (["vnd-acmecorp-postal", HTTP_POST_BYTES], HTTP_POST_BYTES),
    ],
)
def test_the_first_offered_mechanism_the_client_knows_is_chosen(
    offered: list[str], chosen: str
) -> None:
    assert choose_mechanism(offered) == chosen


def test_no_known_mechanism_is_an_error_naming_what_was_offered() -> None:
    with pytest.raises(UploadError, match="vnd-acmecorp-postal"):
        choose_mechanism(["vnd-acmecorp-postal"])


@pytest.mark.parametrize(
    ("size", "part_size", "lengths"),
    [
        (1, 16 * MiB, [1]),
        (16 * MiB, 16 * MiB, [16 * MiB]),
        (16 * MiB + 1, 16 * MiB, [16 * MiB, 1]),
        (40 * MiB, 16 * MiB, [16 * MiB, 16 * MiB, 8 * MiB]),
    ],
)
def test_a_file_is_cut_into_numbered_parts(size: int, part_size: int, lengths: list[int]) -> None:
    plan = part_plan(size, part_size)
    assert [p.length for p in plan] == lengths
    assert [p.number for p in plan] == list(range(1, len(lengths) + 1))
    assert [p.offset for p in plan] == [i * part_size for i in range(len(lengths))]
    assert sum(lengths) == size


def test_resuming_sends_only_the_parts_s3_does_not_hold_with_these_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes: parts of 4,096, 4,096, 2,048
    path = tmp_path / "file.whl"
    path.write_bytes(data)
    plan = part_plan(len(data), 4096)

    def md5(part: Part) -> str:
        return hashlib.md5(data[part.offset : part.offset + part.length]).hexdigest()

    held = [
        {"number": 1, "size": 4096, "etag": f'"{md5(plan[0])}"'},  # held: skipped
        {"number": 2, "size": 4096, "etag": '"' + "0" * 32 + '"'},  # other bytes: sent again
    ]
    assert [p.number for p in missing_parts(path, plan, held)] == [2, 3]
    held.append({"number": 3, "size": 1, "etag": md5(plan[2])})  # cut short: sent again
    assert [p.number for p in missing_parts(path, plan, held)] == [2, 3]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # the PEP's error body with the RFC 9457 members this index adds
        (
            {
                "meta": {"api-version": "2.0"},
                "message": "Upload refused",
                "errors": [{"source": "hashes", "message": "sha256 does not match"}],
                "type": "about:blank",
                "title": "Bad Request",
                "status": 400,
                "detail": "Upload refused",
            },
            "HTTP 400: Upload refused (sha256 does not match)",
        ),
        (
            {"type": "about:blank", "title": "Bad Request", "detail": "size is 0"},
            "HTTP 400: size is 0",
        ),
    ],
)
def test_error_answers_are_told_in_one_line(body: dict[str, Any], expected: str) -> None:
    answer = Answer(400, {"content-type": MEDIA_TYPE}, json.dumps(body).encode())
    assert error_text(answer) == expected


def test_an_error_that_is_not_json_is_told_by_its_first_line() -> None:
    answer = Answer(502, {}, b"Bad Gateway\nupstream closed\n")
    assert error_text(answer) == "HTTP 502: Bad Gateway"
    assert error_text(Answer(500, {}, b"")) == "HTTP 500: no explanation given"


@pytest.mark.parametrize(
    ("raw", "seconds"), [("3", 3.0), ("600", 30.0), ("soon", 1.0), (None, 1.0)]
)
def test_retry_after_is_read_in_seconds_and_bounded(raw: str | None, seconds: float) -> None:
    headers = {} if raw is None else {"retry-after": raw}
    assert Answer(202, headers, b"").retry_after() == seconds


def test_a_token_is_sent_as_twine_sends_it() -> None:
    header = basic_authorization("spypi_abc")
    assert header == "Basic " + base64.b64encode(b"__token__:spypi_abc").decode()


def test_a_token_in_the_index_url_is_taken_out_of_it() -> None:
    url, token = split_credentials("https://__token__:spypi_a%2Fb@pypi.example.com/simple/")
    assert (url, token) == ("https://pypi.example.com/simple/", "spypi_a/b")
    assert split_credentials("https://pypi.example.com/simple/") == (
        "https://pypi.example.com/simple/",
        None,
    )


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_the_legacy_form_is_one_the_index_takes(tmp_path: Path, kind: str) -> None:
    """The fallback's form, parsed and validated by the index's own legacy upload code."""
    path = (
        make_wheel(tmp_path, "acme", "1.0")
        if kind == "wheel"
        else make_sdist(tmp_path, "acme", "1.0")
    )
    local = LocalFile.read(path)
    head, tail = legacy_form(local, "b0undary")
    form = parse_form(
        head + path.read_bytes() + tail, "multipart/form-data; boundary=b0undary", 10 * MiB
    )
    try:
        dist = _validate(form)  # name, version, filetype and sha256 agree with the file
        assert (dist.project, str(dist.version), form.filename) == ("acme", "1.0", path.name)
        assert form.digests["sha256_digest"] == local.sha256
        metadata_version = "2.1" if kind == "wheel" else "2.2"  # read from the archive
        assert f'name="metadata_version"\r\n\r\n{metadata_version}\r\n'.encode() in head
    finally:
        form.close()


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_PUT(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        _Recorder.seen.append(
            {**{k.lower(): v for k, v in self.headers.items()}, "body": body.decode()}
        )
        self.send_response(200)
        self.send_header("ETag", '"e"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_go_to_the_index_origin_only(recorder: str) -> None:
    """A presigned S3 URL (another origin) never sees the index token."""
    index = Http(recorder + "/simple/", "Basic secret")
    other = Http("http://127.0.0.1:1/simple/", "Basic secret")
    index.send(
        "PUT", recorder + "/simple/x", data=io.BytesIO(b"abc"), headers={"Content-Length": "3"}
    )
    other.send("PUT", recorder + "/bucket/part?X-Amz-Signature=s", data=b"abc")
    first, second = _Recorder.seen
    assert first["authorization"] == "Basic secret"
    assert first["body"] == "abc"
    assert "authorization" not in second
    # never urllib's default application/x-www-form-urlencoded for a body of bytes
    assert second["content-type"] == "application/octet-stream"


def test_upload_is_a_command_with_the_documented_options() -> None:
    args = build_parser().parse_args(
        ["upload", "--index", "https://i/simple/", "--stage", "--jobs", "8", "a.whl", "b.whl"]
    )
    assert (args.index, args.stage, args.jobs, args.files) == (
        "https://i/simple/",
        True,
        8,
        ["a.whl", "b.whl"],
    )
    with pytest.raises(SystemExit):  # a token and trusted publishing exclude each other
        build_parser().parse_args(
            ["upload", "--index", "https://i/", "--token", "t", "--trusted-publishing", "a.whl"]
        )
