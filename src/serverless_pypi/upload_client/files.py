"""The files to upload: a distribution file read and hashed, and the files grouped by release.

The project and version come from the file's name (`serverless_pypi.core.names`, over
`packaging`); each release (name and version) is one publishing session (PEP 694). A file's
PEP 740 attestations are the `<file>.*.attestation` files beside it (as `uv publish` finds
them, e.g. `<file>.publish.attestation` from pypa/gh-action-pypi-publish).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serverless_pypi.core.names import InvalidFilename, parse_distribution_filename
from serverless_pypi.upload_client.errors import UploadError

__all__ = ["LocalFile", "Release", "attestation_files", "group_releases", "read_attestations"]

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LocalFile:
    """A distribution file to upload: its name says its project and version."""

    path: Path
    filename: str
    project: str  # normalized (packaging)
    version: str  # PEP 440 normalized
    kind: str  # "wheel" or "sdist"
    size: int
    sha256: str

    @classmethod
    def read(cls, path: Path) -> LocalFile:
        """The file at `path`, hashed (raises UploadError for a bad name or unreadable file)."""
        try:
            dist = parse_distribution_filename(path.name)
        except InvalidFilename as e:
            raise UploadError(str(e)) from None
        try:
            digest, size = _sha256(path)
        except OSError as e:
            raise UploadError(f"cannot be read: {e.strerror or e}") from None
        if size == 0:
            raise UploadError("the file is empty")
        return cls(path, path.name, dist.project, str(dist.version), dist.kind, size, digest)


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def attestation_files(local: LocalFile) -> list[Path]:
    """The `<file>.*.attestation` files beside the distribution, sorted by name."""
    prefix = local.filename + "."
    try:
        found = [
            p
            for p in local.path.parent.iterdir()
            if p.name.startswith(prefix)
            and p.name.endswith(".attestation")
            and p.is_file()
            and len(p.name) > len(prefix) + len(".attestation")
        ]
    except OSError:
        return []
    return sorted(found)


def read_attestations(paths: Iterable[Path]) -> list[Any]:
    """The attestation objects (PEP 740) in the files, each one JSON object (raises
    UploadError naming the file that is not)."""
    items = []
    for path in paths:
        try:
            item = json.loads(path.read_bytes())
        except OSError as e:
            raise UploadError(f"{path.name} cannot be read: {e.strerror or e}") from None
        except ValueError as e:
            raise UploadError(f"{path.name} is not JSON: {e}") from None
        if not isinstance(item, dict):
            raise UploadError(f"{path.name} is not an attestation object (PEP 740)")
        items.append(item)
    return items


@dataclass(frozen=True)
class Release:
    """The files of one (project, version): one publishing session."""

    project: str
    version: str
    files: tuple[LocalFile, ...]


def group_releases(files: Iterable[LocalFile]) -> list[Release]:
    """The files by release, in the order the releases are first named."""
    groups: dict[tuple[str, str], list[LocalFile]] = {}
    for local in files:
        groups.setdefault((local.project, local.version), []).append(local)
    return [Release(name, version, tuple(group)) for (name, version), group in groups.items()]
