"""Reading what a distribution says about itself: core metadata, hashed and bounded.

Wheels carry `<name>-<version>.dist-info/METADATA` (PEP 427); sdists carry `PKG-INFO`, which
is trusted as PEP 658 metadata only from Metadata-Version 2.2 on with no field marked
`Dynamic` (PEP 643). Archives are read with bounds, so a zip bomb costs nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, Any

from packaging.metadata import parse_email
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from serverless_pypi.core.names import Distribution

__all__ = [
    "MAX_MEMBERS",
    "MAX_METADATA_SIZE",
    "MAX_SDIST_SCAN",
    "BadDistribution",
    "Inspection",
    "hash_stream",
    "inspect_distribution",
]

#: the largest METADATA / PKG-INFO accepted (long descriptions can reach a few MB)
MAX_METADATA_SIZE = 16 * 1024 * 1024
#: the most members a wheel or a zip sdist may have, and a .tar.gz sdist may show before its
#: PKG-INFO (PyPI's largest wheels have a few tens of thousands)
MAX_MEMBERS = 100_000
#: the most bytes decompressed from a .tar.gz sdist while looking for its PKG-INFO
MAX_SDIST_SCAN = 256 * 1024 * 1024
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


class _ScanLimit(Exception):
    """More was decompressed than MAX_SDIST_SCAN allows."""


class _BoundedGzip(io.RawIOBase):
    """The decompressed stream of a .tar.gz for `tarfile` (mode "r:"), failing with
    _ScanLimit once more than `limit` bytes were decompressed, however tarfile moves.

    Skipping a member of a compressed tar means decompressing it: every byte passed over
    (read, or sought past) counts, so a gigabyte of zeros costs `limit` bytes of work at most.
    """

    def __init__(self, file: IO[bytes], limit: int) -> None:
        super().__init__()
        self._gzip = gzip.GzipFile(fileobj=file, mode="rb")
        self._limit = limit
        self.decompressed = 0

    def _count(self, amount: int) -> None:
        self.decompressed += amount
        if self.decompressed > self._limit:
            raise _ScanLimit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        wanted = self._limit - self.decompressed + 1
        if size is not None and size >= 0:
            wanted = min(wanted, size)
        data = self._gzip.read(wanted)
        self._count(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._gzip.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._gzip.tell() + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR):
            raise OSError("a compressed stream cannot seek from its end")
        position = self._gzip.tell()
        if target < position:
            # gzip rewinds and decompresses from the start again: that work counts too
            self._count(target)
            return self._gzip.seek(target)
        while position < target:
            chunk = self.read(min(_CHUNK, target - position))
            if not chunk:
                break
            position += len(chunk)
        return position

    def close(self) -> None:
        self._gzip.close()
        super().close()


def _zip_member_count(file: IO[bytes]) -> int | None:
    """The entry count a zip file's end of central directory declares (APPNOTE 4.3.16,
    4.3.14 for zip64), read before zipfile builds one object per entry; None if not found."""
    size = file.seek(0, io.SEEK_END)
    tail_size = min(size, 22 + 0xFFFF)  # the record, and a comment of up to 64 KiB
    file.seek(size - tail_size)
    tail = file.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    count = int.from_bytes(tail[at + 10 : at + 12], "little")
    if count != 0xFFFF or at < 20 or tail[at - 20 : at - 16] != b"PK\x06\x07":
        return count
    # zip64: the locator before the record gives the offset of the zip64 record
    record_offset = int.from_bytes(tail[at - 12 : at - 4], "little")
    file.seek(record_offset)
    record = file.read(56)
    if len(record) < 56 or record[:4] != b"PK\x06\x06":
        return None
    return int.from_bytes(record[32:40], "little")


def _open_zip(file: IO[bytes], dist: Distribution) -> zipfile.ZipFile:
    """A zip archive with at most MAX_MEMBERS members."""
    try:
        declared = _zip_member_count(file)
        file.seek(0)
        if declared is not None and declared > MAX_MEMBERS:
            raise BadDistribution(f"{dist.filename} has over {MAX_MEMBERS} members")
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise BadDistribution(f"{dist.filename} is not a readable zip file: {e}") from e
    if len(archive.infolist()) > MAX_MEMBERS:
        archive.close()
        raise BadDistribution(f"{dist.filename} has over {MAX_MEMBERS} members")
    return archive


def _wheel_metadata(file: IO[bytes], dist: Distribution) -> bytes:
    try:
        archive = _open_zip(file, dist)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise BadDistribution(f"{dist.filename} is not a readable zip file: {e}") from e
    with archive:
        names = archive.namelist()
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
    """PKG-INFO at the top of an sdist, or None if it has none.

    Raises _ScanLimit when a .tar.gz shows no PKG-INFO within MAX_SDIST_SCAN bytes.
    """
    if dist.filename.endswith(".zip"):
        return _zip_sdist_pkg_info(file, dist)
    return _tar_sdist_pkg_info(file, dist)


def _zip_sdist_pkg_info(file: IO[bytes], dist: Distribution) -> bytes | None:
    """PKG-INFO at the top of a .zip sdist, or None."""
    with _open_zip(file, dist) as archive:
        try:
            names = [n for n in archive.namelist() if n.count("/") == 1]
            entry = next((n for n in names if n.endswith("/PKG-INFO")), None)
            if entry is None:
                return None
            info = archive.getinfo(entry)
            if info.file_size > MAX_METADATA_SIZE:
                raise BadDistribution(f"{entry} is larger than {MAX_METADATA_SIZE} bytes")
            with archive.open(info) as handle:
                return _read_bounded(handle, entry)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as e:
            raise BadDistribution(f"{dist.filename} is not a readable archive: {e}") from e


def _tar_sdist_pkg_info(file: IO[bytes], dist: Distribution) -> bytes | None:
    """PKG-INFO at the top of a .tar.gz sdist, or None; _ScanLimit past MAX_SDIST_SCAN."""
    try:
        with (
            _BoundedGzip(file, MAX_SDIST_SCAN) as stream,
            tarfile.open(fileobj=stream, mode="r:") as archive,
        ):
            for count, member in enumerate(archive):
                if count >= MAX_MEMBERS:
                    raise BadDistribution(
                        f"{dist.filename} has no PKG-INFO among its first {MAX_MEMBERS} members"
                    )
                parts = member.name.strip("/").split("/")
                if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                    if member.size > MAX_METADATA_SIZE:
                        raise BadDistribution(f"{member.name} is larger than the bound")
                    extracted = archive.extractfile(member)
                    if extracted is None:
                        return None
                    return _read_bounded(extracted, member.name)
        return None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
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
    try:
        pkg_info = _sdist_pkg_info(file, dist)
    except _ScanLimit:
        # served without metadata, as an sdist without PKG-INFO: inspection stops here
        return Inspection(
            None, None, f"no PKG-INFO within the first {MAX_SDIST_SCAN} decompressed bytes"
        )
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
