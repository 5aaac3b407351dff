"""Issue 10, item 11: inspecting an sdist or a wheel does bounded work, whatever it holds."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.core import metadata as inspect_module
from serverless_pypi.core.metadata import BadDistribution, Inspection, inspect_distribution
from serverless_pypi.core.names import parse_distribution_filename
from tests.helpers.dists import make_sdist, make_wheel, metadata_text

MiB = 1024 * 1024


class Zeros(io.RawIOBase):
    """`size` zero bytes, produced as they are read (a bomb costs no memory to build)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def inspect_path(path: Path) -> Inspection:
    with path.open("rb") as file:
        return inspect_distribution(file, parse_distribution_filename(path.name))


def tar_gz(path: Path, members: list[tuple[str, int | bytes]], **tar_args: Any) -> Path:
    """A .tar.gz of members given as bytes or as a count of zero bytes."""
    with (
        gzip.GzipFile(path, "wb", compresslevel=1) as compressed,
        tarfile.open(fileobj=compressed, mode="w:", **tar_args) as archive,
    ):
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, bytes):
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
            else:
                info.size = content
                archive.addfile(info, Zeros(content))
    return path


@pytest.fixture
def decompressed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes decompressed from gzip streams during the test, counted at the source."""
    counted = [0]
    original = gzip.GzipFile.read

    def read(self: gzip.GzipFile, size: int = -1) -> bytes:
        data = original(self, size)
        counted[0] += len(data)
        return data

    monkeypatch.setattr(gzip.GzipFile, "read", read)
    return counted


def test_a_tar_gz_of_zeros_is_decompressed_only_up_to_the_bound(
    tmp_path: Path, decompressed: list[int]
) -> None:
    # 300 MiB of zeros in about 1 MB; the default bound stops the search at 256 MiB
    bomb = tar_gz(tmp_path / "bomb-1.0.tar.gz", [("bomb-1.0/zeros", 300 * MiB)])
    assert bomb.stat().st_size < 2 * MiB
    decompressed[0] = 0
    inspection = inspect_path(bomb)
    assert inspection.metadata is None
    assert inspection.note is not None and "decompressed bytes" in inspection.note
    assert decompressed[0] <= inspect_module.MAX_SDIST_SCAN + 1


def test_the_scan_bound_counts_skipped_members(
    tmp_path: Path, decompressed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inspect_module, "MAX_SDIST_SCAN", 4 * MiB)
    pkg_info = metadata_text("late", "1.0", metadata_version="2.2").encode()
    late = tar_gz(
        tmp_path / "late-1.0.tar.gz",
        [("late-1.0/zeros", 64 * MiB), ("late-1.0/PKG-INFO", pkg_info)],
    )
    decompressed[0] = 0
    inspection = inspect_path(late)
    assert inspection.metadata is None
    assert inspection.note == f"no PKG-INFO within the first {4 * MiB} decompressed bytes"
    assert decompressed[0] <= 4 * MiB + 1
    # under the bound, a PKG-INFO after a large member is still found
    monkeypatch.setattr(inspect_module, "MAX_SDIST_SCAN", 128 * MiB)
    assert inspect_path(late).metadata == pkg_info


def test_a_huge_pax_header_is_bounded_too(
    tmp_path: Path, decompressed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # tarfile reads an extended header whole: the bound must apply inside tarfile as well
    monkeypatch.setattr(inspect_module, "MAX_SDIST_SCAN", 2 * MiB)
    path = tmp_path / "pax-1.0.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo("pax-1.0/PKG-INFO")
        info.pax_headers = {"comment": "x" * (16 * MiB)}
        data = metadata_text("pax", "1.0").encode()
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    decompressed[0] = 0
    inspection = inspect_path(path)
    assert inspection.metadata is None and inspection.note is not None
    assert decompressed[0] <= 2 * MiB + 1


def test_a_tar_gz_with_too_many_members_before_pkg_info_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inspect_module, "MAX_MEMBERS", 10)
    members: list[tuple[str, int | bytes]] = [(f"many-1.0/f{i}", b"x") for i in range(11)]
    path = tar_gz(tmp_path / "many-1.0.tar.gz", [*members, ("many-1.0/PKG-INFO", b"")])
    with pytest.raises(BadDistribution, match="first 10 members"):
        inspect_path(path)


def zip_sdist(path: Path, count: int, pkg_info: bytes | None = None) -> Path:
    top = path.name.removesuffix(".zip")
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(count):
            archive.writestr(f"{top}/f{i}.py", b"")
        if pkg_info is not None:
            archive.writestr(f"{top}/PKG-INFO", pkg_info)
    return path


def test_a_zip_sdist_with_too_many_members_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inspect_module, "MAX_MEMBERS", 50)
    built: list[int] = []
    original = zipfile.ZipFile.__init__

    def spy(self: zipfile.ZipFile, *args: Any, **kwargs: Any) -> None:
        built.append(1)
        original(self, *args, **kwargs)

    pkg_info = metadata_text("wide", "1.0", metadata_version="2.2").encode()
    path = zip_sdist(tmp_path / "wide-1.0.zip", 60, pkg_info)
    monkeypatch.setattr(zipfile.ZipFile, "__init__", spy)
    with pytest.raises(BadDistribution, match="over 50 members"):
        inspect_path(path)
    assert built == []  # refused from the end record, before zipfile read the directory
    monkeypatch.setattr(inspect_module, "MAX_MEMBERS", 61)
    assert inspect_path(path).metadata == pkg_info


def test_a_wheel_with_too_many_members_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(tmp_path, "wide", "1.0")
    monkeypatch.setattr(inspect_module, "MAX_MEMBERS", 2)  # the wheel has 4
    with pytest.raises(BadDistribution, match="over 2 members"):
        inspect_path(wheel)


def test_the_zip64_member_count_is_read(tmp_path: Path) -> None:
    # 0xFFFF entries or more: the count lives in the zip64 end of central directory record
    path = zip_sdist(tmp_path / "huge-1.0.zip", 0x10000 + 5)
    with path.open("rb") as file:
        assert inspect_module._zip_member_count(file) == 0x10000 + 5
    with zip_sdist(tmp_path / "small-1.0.zip", 3).open("rb") as file:
        assert inspect_module._zip_member_count(file) == 3
    assert inspect_module._zip_member_count(io.BytesIO(b"not a zip")) is None


def test_normal_sdists_still_yield_pkg_info(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "plain", "1.0")
    inspection = inspect_path(sdist)
    assert inspection.metadata is not None and b"Name: plain" in inspection.metadata
    pkg_info = metadata_text("zipped", "2.0", metadata_version="2.2").encode()
    assert inspect_path(zip_sdist(tmp_path / "zipped-2.0.zip", 3, pkg_info)).metadata == pkg_info


def test_a_corrupt_gzip_stream_is_a_bad_distribution(tmp_path: Path) -> None:
    good = make_sdist(tmp_path, "broken", "1.0").read_bytes()
    path = tmp_path / "broken-1.0.tar.gz"
    path.write_bytes(good[:20] + b"\xff" * 200 + good[220:])
    with pytest.raises(BadDistribution, match="not a readable archive"):
        inspect_path(path)
