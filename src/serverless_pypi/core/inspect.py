"""Reading what a distribution says about itself: core metadata, hashed and bounded.

Wheels carry `<name>-<version>.dist-info/METADATA` (PEP 427); sdists carry `PKG-INFO`, which
is trusted as PEP 658 metadata only from Metadata-Version 2.2 on with no field marked
`Dynamic` (PEP 643). Archives are read with bounds, so a zip bomb costs nothing.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from dataclasses import dataclass
from typing import IO

from packaging.metadata import parse_email
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .names import Distribution

__all__ = [
    "MAX_METADATA_SIZE",
    "BadDistribution",
    "Inspection",
    "hash_stream",
    "inspect_distribution",
]

#: the largest METADATA / PKG-INFO accepted (long descriptions can reach a few MB)
MAX_METADATA_SIZE = 16 * 1024 * 1024
_MAX_MEMBERS = 100_000
_CHUNK = 1024 * 1024


class BadDistribution(ValueError):
    """The file is not a usable distribution; the message says why."""


@dataclass(frozen=True, slots=True)
class Inspection:
    """What the index derives from a distribution's contents."""

    #: PEP 658 core metadata file, byte for byte, or None when none can be served
    metadata: bytes | None
    requires_python: str | None
    #: why no metadata is served, when it is not (for logs)
    note: str | None = None


def hash_stream(source: IO[bytes], sink: IO[bytes] | None = None) -> tuple[str, int]:
    """sha256 and size of a stream, copying it to `sink` on the way."""
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest(), size


def _read_bounded(handle: IO[bytes], what: str) -> bytes:
    data = handle.read(MAX_METADATA_SIZE + 1)
    if len(data) > MAX_METADATA_SIZE:
        raise BadDistribution(f"{what} is larger than {MAX_METADATA_SIZE} bytes")
    return data


def _wheel_metadata(file: IO[bytes], dist: Distribution) -> bytes:
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise BadDistribution(f"{dist.filename} is not a readable zip file: {e}") from e
    with archive:
        names = archive.namelist()
        if len(names) > _MAX_MEMBERS:
            raise BadDistribution(f"{dist.filename} has over {_MAX_MEMBERS} members")
        # PEP 427: exactly one top-level `{name}-{version}.dist-info` directory
        candidates = [n for n in names if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        matching = [
            n
            for n in candidates
            if canonicalize_name(n.split("/")[0].removesuffix(".dist-info").rpartition("-")[0])
            == dist.project
        ]
        chosen = matching or candidates
        if len(chosen) != 1:
            raise BadDistribution(
                f"{dist.filename} has no .dist-info/METADATA"
                if not chosen
                else f"{dist.filename} has several .dist-info/METADATA files"
            )
        info = archive.getinfo(chosen[0])
        if info.file_size > MAX_METADATA_SIZE:
            raise BadDistribution(f"{chosen[0]} is larger than {MAX_METADATA_SIZE} bytes")
        try:
            with archive.open(info) as handle:
                return _read_bounded(handle, chosen[0])
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as e:
            raise BadDistribution(f"{dist.filename}: cannot read {chosen[0]}: {e}") from e


def _sdist_pkg_info(file: IO[bytes], dist: Distribution) -> bytes | None:
    """PKG-INFO at the top of an sdist, or None if it has none."""
    try:
        if dist.filename.endswith(".zip"):
            with zipfile.ZipFile(file) as archive:
                names = [n for n in archive.namelist() if n.count("/") == 1]
                entry = next((n for n in names if n.endswith("/PKG-INFO")), None)
                if entry is None:
                    return None
                info = archive.getinfo(entry)
                if info.file_size > MAX_METADATA_SIZE:
                    raise BadDistribution(f"{entry} is larger than {MAX_METADATA_SIZE} bytes")
                with archive.open(info) as handle:
                    return _read_bounded(handle, entry)
        with tarfile.open(fileobj=file, mode="r:gz") as archive:
            for count, member in enumerate(archive):
                if count > _MAX_MEMBERS:
                    raise BadDistribution(f"{dist.filename} has over {_MAX_MEMBERS} members")
                parts = member.name.strip("/").split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                    if member.size > MAX_METADATA_SIZE:
                        raise BadDistribution(f"{member.name} is larger than the bound")
                    extracted = archive.extractfile(member)
                    if extracted is None:
                        return None
                    return _read_bounded(extracted, member.name)
        return None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise BadDistribution(f"{dist.filename} is not a readable archive: {e}") from e


def _check_identity(raw_name: object, raw_version: object, dist: Distribution) -> None:
    if not isinstance(raw_name, str) or canonicalize_name(raw_name) != dist.project:
        raise BadDistribution(
            f"{dist.filename}: its metadata names project {raw_name!r}, "
            f"but the file name says {dist.project!r}"
        )
    try:
        version = Version(str(raw_version))
    except InvalidVersion as e:
        raise BadDistribution(
            f"{dist.filename}: invalid version {raw_version!r} in metadata"
        ) from e
    if version != dist.version:
        raise BadDistribution(
            f"{dist.filename}: its metadata says version {raw_version}, "
            f"but the file name says {dist.version}"
        )


def inspect_distribution(file: IO[bytes], dist: Distribution) -> Inspection:
    """Core metadata and Requires-Python of a seekable distribution file.

    Raises BadDistribution when the archive is unreadable or contradicts its file name.
    """
    file.seek(0)
    if dist.kind == "wheel":
        metadata = _wheel_metadata(file, dist)
        raw, _ = parse_email(metadata)
        _check_identity(raw.get("name"), raw.get("version"), dist)
        return Inspection(metadata, raw.get("requires_python"))
    pkg_info = _sdist_pkg_info(file, dist)
    if pkg_info is None:
        return Inspection(None, None, "the sdist has no PKG-INFO")
    raw, _ = parse_email(pkg_info)
    _check_identity(raw.get("name"), raw.get("version"), dist)
    dynamic = {d.lower() for d in raw.get("dynamic", [])}
    requires_python = None if "requires-python" in dynamic else raw.get("requires_python")
    try:
        metadata_version = Version(raw.get("metadata_version", "1.0"))
    except InvalidVersion:
        metadata_version = Version("1.0")
    # PEP 643: sdist metadata is reliable from 2.2 on, for fields not marked Dynamic
    if metadata_version < Version("2.2"):
        return Inspection(None, requires_python, "PKG-INFO is older than Metadata-Version 2.2")
    if dynamic:
        return Inspection(None, requires_python, "PKG-INFO marks fields as Dynamic")
    return Inspection(pkg_info, requires_python)


def describe_bytes(data: bytes, dist: Distribution) -> tuple[str, Inspection]:
    """sha256 and inspection of a distribution held in memory."""
    return hashlib.sha256(data).hexdigest(), inspect_distribution(io.BytesIO(data), dist)
