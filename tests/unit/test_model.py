"""The page model: file records, project manifests, upload times (PEP 700), version order."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serverless_pypi.core.model import FileRecord, Manifest, format_upload_time
from serverless_pypi.core.names import NormalizedName

# PEP 700: `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, UTC
UPLOAD_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "2024-01-02T03:04:05.678901Z"),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05.000000Z"),  # naive means UTC
        (
            datetime(2024, 1, 2, 1, 0, 0, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-01T23:00:00.000000Z",
        ),
        (
            datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
            "2000-01-01T04:59:59.000000Z",
        ),
    ],
)
def test_format_upload_time(moment: datetime, expected: str) -> None:
    assert format_upload_time(moment) == expected


@settings(deadline=None)
@given(st.datetimes(min_value=datetime(1970, 1, 2), timezones=st.timezones()))
def test_upload_time_format_and_value(moment: datetime) -> None:
    text = format_upload_time(moment)
    assert UPLOAD_TIME.fullmatch(text)
    back = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert back == moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


records = st.builds(
    FileRecord,
    filename=st.text(min_size=1, max_size=40),
    key=st.text(min_size=1, max_size=60),
    size=st.integers(min_value=0, max_value=2**40),
    upload_time=st.just("2024-01-02T03:04:05.000000Z"),
    etag=st.text(max_size=40),
    sha256=st.one_of(st.none(), st.from_regex(r"[0-9a-f]{64}", fullmatch=True)),
    requires_python=st.one_of(st.none(), st.text(max_size=20)),
    metadata_sha256=st.one_of(st.none(), st.from_regex(r"[0-9a-f]{64}", fullmatch=True)),
    yanked=st.one_of(st.none(), st.text(max_size=20)),
)


@settings(deadline=None)
@given(records)
def test_record_json_round_trip(record: FileRecord) -> None:
    assert FileRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_record_json_omits_unknown_values() -> None:
    record = FileRecord("pkg-1.0.tar.gz", "pkg/pkg-1.0.tar.gz", 10, "2024-01-02T03:04:05.000000Z")
    data = record.to_json()
    assert set(data) == {"filename", "key", "size", "upload_time", "etag"}
    # "" (yanked without a reason) is not "not yanked"
    assert FileRecord.from_json(record.with_changes(yanked="").to_json()).yanked == ""


@settings(deadline=None)
@given(st.lists(records, max_size=8))
def test_manifest_round_trip_is_deterministic(items: list[FileRecord]) -> None:
    index = Manifest(NormalizedName("pkg"), {r.filename: r for r in items})
    data = index.to_bytes()
    back = Manifest.from_bytes(data)
    assert back.name == "pkg"
    assert back.files == index.files
    assert back.to_bytes() == data
    # the same files inserted in another order give the same bytes
    reordered = Manifest(NormalizedName("pkg"), dict(reversed(list(index.files.items()))))
    assert reordered.to_bytes() == data


@pytest.mark.parametrize(
    "document",
    [
        b'{"format": 99, "name": "pkg", "files": []}',
        b'{"name": "pkg", "files": []}',
    ],
)
def test_unknown_manifest_format_is_refused(document: bytes) -> None:
    with pytest.raises(ValueError, match="format"):
        Manifest.from_bytes(document)


def _index(*filenames: str) -> Manifest:
    return Manifest(
        NormalizedName("pkg"),
        {f: FileRecord(f, f"pkg/{f}", 1, "2024-01-01T00:00:00.000000Z") for f in filenames},
    )


def test_versions_ordering_and_uniqueness() -> None:
    index = _index(
        "pkg-10.0.tar.gz",
        "pkg-9.0.tar.gz",
        "pkg-1.0rc1.tar.gz",
        "pkg-1.0.tar.gz",
        "pkg-1.0-py3-none-any.whl",
        "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
        "pkg-1!0.5.tar.gz",  # an epoch sorts after every version without one
        "README.txt",  # not a distribution: listed, but has no version
    )
    assert index.versions() == ["1.0rc1", "1.0", "9.0", "10.0", "1!0.5"]
    files = [r.filename for r in index.sorted_files()]
    assert files[0] == "README.txt"
    assert files[1:3] == ["pkg-1.0rc1.tar.gz", "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"]
    assert files[-1] == "pkg-1!0.5.tar.gz"
    # within one version, by file name: stable output, stable ETags
    assert files[2:5] == sorted(files[2:5])


def test_empty_index() -> None:
    index = Manifest(NormalizedName("pkg"))
    assert index.versions() == []
    assert index.sorted_files() == []
