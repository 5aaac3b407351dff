"""Core metadata extraction (PEP 427 wheels, PEP 643 sdists, PEP 658 files), with bounds."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from serverless_pypi.core import metadata as inspect_module
from serverless_pypi.core.metadata import BadDistribution, hash_stream, inspect_distribution
from serverless_pypi.core.names import parse_distribution_filename
from tests.helpers.dists import make_sdist, make_wheel, metadata_text


def inspect_file(path: Path, filename: str | None = None) -> inspect_module.Inspection:
    dist = parse_distribution_filename(filename or path.name)
    with path.open("rb") as file:
        return inspect_distribution(file, dist)


def zip_with(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def tar_with(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_wheel_metadata_is_byte_for_byte(tmp_path: Path) -> None:
    text = metadata_text("My_Pkg", "1.0", requires_python=">=3.9", requires=("other>=1",))
    wheel = make_wheel(tmp_path, "My_Pkg", "1.0", metadata=text + "A long description\r\n")
    result = inspect_file(wheel)
    with zipfile.ZipFile(wheel) as archive:
        assert result.metadata == archive.read("my_pkg-1.0.dist-info/METADATA")
    assert result.requires_python == ">=3.9"


def test_wheel_without_requires_python(tmp_path: Path) -> None:
    result = inspect_file(make_wheel(tmp_path, "pkg", "1.0"))
    assert result.metadata is not None
    assert result.requires_python is None


@pytest.mark.parametrize(
    ("meta_name", "meta_version"),
    [("My.Pkg", "1.0"), ("my-pkg", "1.0.0"), ("MY_PKG", "1.0")],
)
def test_wheel_metadata_may_spell_name_and_version_differently(
    tmp_path: Path, meta_name: str, meta_version: str
) -> None:
    wheel = make_wheel(tmp_path, "my_pkg", "1.0", metadata=metadata_text(meta_name, meta_version))
    assert inspect_file(wheel).metadata is not None


@pytest.mark.parametrize(
    ("meta_name", "meta_version", "message"),
    [
        ("other", "1.0", "names project"),
        ("pkg", "2.0", "says version"),
        ("pkg", "not a version", "invalid version"),
    ],
)
def test_wheel_contradicting_its_name(
    tmp_path: Path, meta_name: str, meta_version: str, message: str
) -> None:
    wheel = make_wheel(tmp_path, "pkg", "1.0", metadata=metadata_text(meta_name, meta_version))
    with pytest.raises(BadDistribution, match=message):
        inspect_file(wheel)


def test_wheel_metadata_without_a_name(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "pkg", "1.0", metadata="Metadata-Version: 2.1\nVersion: 1.0\n\n")
    with pytest.raises(BadDistribution):
        inspect_file(wheel)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"pkg.py": b""}, "no .dist-info/METADATA"),
        ({"deep/pkg-1.0.dist-info/METADATA": b""}, "no .dist-info/METADATA"),
        (
            {
                "a-1.0.dist-info/METADATA": metadata_text("a", "1.0").encode(),
                "b-1.0.dist-info/METADATA": metadata_text("b", "1.0").encode(),
            },
            "several",
        ),
    ],
)
def test_wheel_without_one_metadata_file(
    tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    wheel = zip_with(tmp_path / "pkg-1.0-py3-none-any.whl", members)
    with pytest.raises(BadDistribution, match=message):
        inspect_file(wheel)


def test_wheel_picks_its_own_dist_info(tmp_path: Path) -> None:
    # a vendored package's .dist-info next to the wheel's own
    wheel = zip_with(
        tmp_path / "pkg-1.0-py3-none-any.whl",
        {
            "other-2.0.dist-info/METADATA": metadata_text("other", "2.0").encode(),
            "pkg-1.0.dist-info/METADATA": metadata_text("pkg", "1.0").encode(),
        },
    )
    assert inspect_file(wheel).metadata == metadata_text("pkg", "1.0").encode()


@pytest.mark.parametrize(
    "content", [b"", b"not a zip", b"PK\x03\x04" + b"\x00" * 100, b"\x1f\x8b" + b"x" * 50]
)
def test_unreadable_wheel(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "pkg-1.0-py3-none-any.whl"
    path.write_bytes(content)
    with pytest.raises(BadDistribution, match="not a readable zip"):
        inspect_file(path)


def test_oversized_metadata_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspect_module, "MAX_METADATA_SIZE", 100)
    big = metadata_text("pkg", "1.0") + "x" * 200
    with pytest.raises(BadDistribution, match="larger than"):
        inspect_file(make_wheel(tmp_path, "pkg", "1.0", metadata=big))
    with pytest.raises(BadDistribution, match="larger than"):
        inspect_file(tar_with(tmp_path / "pkg-1.0.tar.gz", {"pkg-1.0/PKG-INFO": big.encode()}))


def test_zip_bomb_metadata_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspect_module, "MAX_METADATA_SIZE", 64 * 1024)
    path = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg-1.0.dist-info/METADATA", b"\n" * (8 * 1024 * 1024))
    assert path.stat().st_size < 64 * 1024
    with pytest.raises(BadDistribution, match="larger than"):
        inspect_file(path)


# -- sdists -------------------------------------------------------------------------------


def test_sdist_metadata_2_2_is_served(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "pkg", "1.0", metadata_version="2.2", requires_python=">=3.10")
    result = inspect_file(sdist)
    with tarfile.open(sdist) as archive:
        member = archive.extractfile("pkg-1.0/PKG-INFO")
        assert member is not None
        assert result.metadata == member.read()
    assert result.requires_python == ">=3.10"


def test_sdist_metadata_before_2_2_is_not_trusted(tmp_path: Path) -> None:
    # PEP 643: only Metadata-Version 2.2+ PKG-INFO is reliable
    sdist = make_sdist(tmp_path, "pkg", "1.0", metadata_version="2.1", requires_python=">=3.10")
    result = inspect_file(sdist)
    assert result.metadata is None
    assert result.requires_python == ">=3.10"
    assert result.note


def test_sdist_with_dynamic_fields(tmp_path: Path) -> None:
    sdist = make_sdist(
        tmp_path,
        "pkg",
        "1.0",
        metadata_version="2.2",
        requires_python=">=3.10",
        dynamic=("Requires-Python",),
    )
    result = inspect_file(sdist)
    assert result.metadata is None
    assert result.requires_python is None  # a Dynamic value is not the package's value


def test_sdist_without_pkg_info(tmp_path: Path) -> None:
    sdist = tar_with(tmp_path / "pkg-1.0.tar.gz", {"pkg-1.0/setup.py": b""})
    result = inspect_file(sdist)
    assert result == inspect_module.Inspection(None, None, result.note)
    assert result.note


def test_sdist_contradicting_its_name(tmp_path: Path) -> None:
    sdist = tar_with(
        tmp_path / "pkg-1.0.tar.gz",
        {"pkg-1.0/PKG-INFO": metadata_text("other", "1.0", metadata_version="2.2").encode()},
    )
    with pytest.raises(BadDistribution, match="names project"):
        inspect_file(sdist)


def test_zip_sdist(tmp_path: Path) -> None:
    pkg_info = metadata_text("pkg", "1.0", metadata_version="2.4").encode()
    sdist = zip_with(tmp_path / "pkg-1.0.zip", {"pkg-1.0/PKG-INFO": pkg_info, "pkg-1.0/x.py": b""})
    assert inspect_file(sdist).metadata == pkg_info


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x1f\x8b\x08\x00" + b"\xff" * 40])
def test_unreadable_sdist(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "pkg-1.0.tar.gz"
    path.write_bytes(content)
    with pytest.raises(BadDistribution):
        inspect_file(path)


def test_hash_stream(tmp_path: Path) -> None:
    data = b"x" * (3 * 1024 * 1024 + 17)
    sink = io.BytesIO()
    digest, size = hash_stream(io.BytesIO(data), sink)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert sink.getvalue() == data
    assert hash_stream(io.BytesIO(b"")) == (hashlib.sha256(b"").hexdigest(), 0)
