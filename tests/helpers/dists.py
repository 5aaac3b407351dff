"""Build real, installable distributions for tests, without a build backend."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def metadata_text(
    name: str,
    version: str,
    *,
    requires_python: str | None = None,
    requires: tuple[str, ...] = (),
    metadata_version: str = "2.1",
    dynamic: tuple[str, ...] = (),
) -> str:
    lines = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    lines += [f"Dynamic: {d}" for d in dynamic]
    return "\n".join(lines) + "\n\n"


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires_python: str | None = None,
    requires: tuple[str, ...] = (),
    metadata: str | None = None,
    payload: str = "",
) -> Path:
    """A pure-Python wheel with one module `<name>.py` that pip and uv can install."""
    dist_name = canonicalize_name(name).replace("-", "_")
    dist_info = f"{dist_name}-{version}.dist-info"
    module = f"{dist_name}.py"
    files = {
        module: f"VERSION = {version!r}\n{payload}".encode(),
        f"{dist_info}/METADATA": (
            metadata
            or metadata_text(name, version, requires_python=requires_python, requires=requires)
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n"
        ),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = directory / f"{dist_name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in files.items():
            info = zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0))
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    return path


def make_sdist(
    directory: Path,
    name: str,
    version: str,
    *,
    metadata_version: str = "2.2",
    requires_python: str | None = None,
    dynamic: tuple[str, ...] = (),
) -> Path:
    """A `.tar.gz` sdist with PKG-INFO and a setuptools-free pyproject (flit_core-like)."""
    dist_name = canonicalize_name(name).replace("-", "_")
    top = f"{dist_name}-{version}"
    pkg_info = metadata_text(
        name,
        version,
        requires_python=requires_python,
        metadata_version=metadata_version,
        dynamic=dynamic,
    ).encode()
    members = {
        f"{top}/PKG-INFO": pkg_info,
        f"{top}/{dist_name}.py": f"VERSION = {version!r}\n".encode(),
    }
    path = directory / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return path


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file, as pages and records give it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def subdir(parent: Path, name: str) -> Path:
    """A new folder below `parent`: for a second build under a file name already made."""
    path = parent / name
    path.mkdir()
    return path


def make_blob_wheel(
    directory: Path, name: str, version: str, size: int, *, tag: str = "py3-none-any"
) -> Path:
    """An installable wheel of about `size` bytes: `make_wheel`'s module plus a data file of
    random (incompressible) bytes, stored uncompressed; `tag` names a platform's wheel."""
    import os

    dist_name = canonicalize_name(name).replace("-", "_")
    dist_info = f"{dist_name}-{version}.dist-info"
    files = {
        f"{dist_name}.py": f"VERSION = {version!r}\n".encode(),
        f"{dist_name}_blob.bin": os.urandom(max(0, size - 2048)),
        f"{dist_info}/METADATA": metadata_text(name, version).encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: {tag}\n\n"
        ).encode(),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = directory / f"{dist_name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for member, data in files.items():
            archive.writestr(zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return path
