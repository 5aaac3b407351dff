"""The pure parts of Upload 2.0 sessions (`index.sessions`): part layout, declared hashes,
times, the session document, and presigned part URLs signed as botocore signs them."""

from __future__ import annotations

import calendar
import datetime
import hashlib
import itertools
from typing import Any

import boto3
import botocore.auth
import pytest
from botocore.config import Config

from serverless_pypi.core.errors import InvalidRequest
from serverless_pypi.index import layout
from serverless_pypi.index.session_documents import new_session_id
from serverless_pypi.index.session_verification import check_hashes
from serverless_pypi.index.sessions import (
    MAX_LIFETIME,
    StagedFile,
    UploadSession,
    format_time,
    parse_time,
    part_layout,
)
from serverless_pypi.storage import sigv4
from serverless_pypi.storage.s3_light import LightS3Store

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("size", "part_size", "count"),
    [
        (1, 16 * MiB, 1),
        (16 * MiB, 16 * MiB, 1),
        (16 * MiB + 1, 16 * MiB, 2),
        (200 * 1000 * 1000, 16 * MiB, 12),
        (10_000 * 16 * MiB, 16 * MiB, 10_000),
        (10_000 * 16 * MiB + 1, 32 * MiB, 5001),
        (5 * 1024**4, 1024 * MiB, 5120),  # S3's largest object
    ],
)
def test_parts_are_the_smallest_power_of_two_mib_within_ten_thousand(
    size: int, part_size: int, count: int
) -> None:
    assert part_layout(size) == (part_size, count)
    assert part_size * count >= size > part_size * (count - 1)


GOOD_SHA = hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize(
    ("hashes", "expected"),
    [
        ({"sha256": GOOD_SHA}, {"sha256": GOOD_SHA}),
        ({"SHA256": GOOD_SHA.upper()}, {"sha256": GOOD_SHA}),
        (
            {"sha256": GOOD_SHA, "blake2b": hashlib.blake2b(b"x").hexdigest()},
            {"sha256": GOOD_SHA, "blake2b": hashlib.blake2b(b"x").hexdigest()},
        ),
    ],
)
def test_declared_hashes_accepted(hashes: dict[str, str], expected: dict[str, str]) -> None:
    assert check_hashes(hashes) == expected


@pytest.mark.parametrize(
    ("hashes", "message"),
    [
        ({}, "sha256 is required"),
        ({"md5": hashlib.md5(b"x").hexdigest()}, "sha256 is required"),  # noqa: S324
        ({"sha256": GOOD_SHA[:-1]}, "64 hexadecimal"),
        ({"sha256": "g" * 64}, "64 hexadecimal"),
        ({"sha256": GOOD_SHA, "whirlpool": "00"}, "not one of"),
        ({"sha256": GOOD_SHA, "shake_128": "00"}, "not one of"),  # takes a length parameter
    ],
)
def test_declared_hashes_refused(hashes: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check_hashes(hashes)


def test_times_are_rfc_3339_utc_seconds() -> None:
    moment = datetime.datetime(2026, 12, 1, 15, 4, 5, 999, tzinfo=datetime.UTC)
    assert format_time(moment) == "2026-12-01T15:04:05Z"
    assert parse_time("2026-12-01T15:04:05Z") == moment.replace(microsecond=0)
    assert MAX_LIFETIME == 7 * 86400


def test_session_ids_are_26_lowercase_base32_characters() -> None:
    ids = {new_session_id() for _ in range(200)}
    assert len(ids) == 200
    for sid in ids:
        assert len(sid) == 26 and set(sid) <= set("abcdefghijklmnopqrstuvwxyz234567")


def test_the_session_document_round_trips() -> None:
    file = StagedFile(
        filename="demo_pkg-1.0-py3-none-any.whl",
        size=10,
        hashes={"sha256": GOOD_SHA},
        mechanism="http-post-bytes",
        status="complete",
        created="2026-12-01T12:00:00Z",
        expires="2026-12-02T12:00:00Z",
        completed="2026-12-01T12:01:00Z",
        metadata_sha256=GOOD_SHA,
        requires_python=">=3.9",
    )
    session = UploadSession(
        id=new_session_id(),
        name="demo-pkg",  # type: ignore[arg-type]
        version="1.0",
        status="pending",
        created="2026-12-01T12:00:00Z",
        expires="2026-12-02T12:00:00Z",
        secret="s3cret",
        files={file.filename: file},
    )
    assert UploadSession.from_bytes(session.to_bytes()) == session
    now = parse_time("2026-12-01T13:00:00Z")
    assert session.alive(now)
    assert not session.alive(parse_time("2026-12-02T12:00:01Z"))
    assert not UploadSession(**{**session.__dict__, "status": "complete"}).alive(now)


@pytest.mark.parametrize(
    ("spelling", "canonical"), [("1.0", "1"), ("1.0.0", "1"), ("2.1rc1", "2.1rc1")]
)
def test_one_release_key_for_every_spelling_of_a_version(spelling: str, canonical: str) -> None:
    assert layout.publishing_key("p", spelling) == f".serverless-pypi/publishing/p/{canonical}.json"  # type: ignore[arg-type]
    assert layout.session_release_key("p", spelling).endswith(f"/p/{canonical}.json")  # type: ignore[arg-type]


# -- presigned part URLs: the API function signs them without boto3 ---------------------------

FROZEN = datetime.datetime(2026, 3, 4, 5, 6, 7)
NOW = float(calendar.timegm(FROZEN.timetuple()))


@pytest.mark.parametrize(
    ("region", "endpoint", "bucket"),
    [
        ("us-east-1", None, "my-bucket"),
        ("eu-west-1", None, "my.dotted.bucket"),
        ("us-east-1", "http://127.0.0.1:5000", "test-bucket"),
    ],
)
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzE" + "t0k/en+=" * 10])
def test_part_urls_are_botocores(
    monkeypatch: pytest.MonkeyPatch,
    region: str,
    endpoint: str | None,
    bucket: str,
    token: str | None,
) -> None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)
    monkeypatch.setattr(sigv4, "clock", lambda: NOW)
    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    if token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    else:
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    boto: Any = boto3.session.Session().client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        config=Config(
            signature_version="s3v4", s3={"addressing_style": "path" if endpoint else "virtual"}
        ),
    )
    store = LightS3Store(bucket, endpoint_url=endpoint)
    keys = [".serverless-pypi/sessions/abc/files/demo_pkg-1.0-py3-none-any.whl", "a/b c+d.whl"]
    uploads = ["2~ExampleUploadId/with+chars=", "plain"]
    for key, upload, number, expires in itertools.product(keys, uploads, [1, 10_000], [1, 3600]):
        expected = boto.generate_presigned_url(
            "upload_part",
            Params={"Bucket": bucket, "Key": key, "UploadId": upload, "PartNumber": number},
            ExpiresIn=expires,
        )
        assert store.presign_part(key, upload, number, expires) == expected
