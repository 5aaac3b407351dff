"""Derive a file's record (hash, size, metadata) from its bytes in the store or on disk."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import tempfile
from dataclasses import dataclass
from typing import IO

from serverless_pypi.core.metadata import (
    BadDistribution,
    Inspection,
    hash_stream,
    inspect_distribution,
)
from serverless_pypi.core.model import FileRecord
from serverless_pypi.core.names import Distribution, NormalizedName
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.storage import ObjectInfo

__all__ = [
    "Derived",
    "attested_digests",
    "derive_from_file",
    "derive_from_store",
    "record_for",
    "spooled",
    "stored_provenance",
]

#: distributions up to this size are hashed in memory, larger ones through a temporary file
SPOOL_IN_MEMORY = 32 * 1024 * 1024


def spooled(max_size: int = SPOOL_IN_MEMORY) -> tempfile.SpooledTemporaryFile[bytes]:
    """A temporary file that stays in memory up to `max_size` bytes."""
    return tempfile.SpooledTemporaryFile(max_size=max_size, mode="w+b")


@dataclass(frozen=True, slots=True)
class Derived:
    sha256: str
    size: int
    inspection: Inspection
    #: why the file cannot be served (unreadable archive, metadata contradicting its name)
    problem: str | None = None


def derive_from_file(file: IO[bytes], dist: Distribution) -> Derived:
    """Hash and inspect a seekable distribution file (raises BadDistribution)."""
    file.seek(0)
    sha256, size = hash_stream(file)
    return Derived(sha256, size, inspect_distribution(file, dist))


def derive_from_store(catalog: Catalog, info: ObjectInfo, dist: Distribution) -> Derived:
    """Hash and inspect the object `info` describes, with the bytes of exactly that version.

    A bad archive does not raise: the result says what is wrong in `problem`. Raises
    PreconditionFailed if the object changed since `info` was read.
    """
    with catalog.store.open(info.key, if_match=info.etag) as source, spooled() as copy:
        sha256, size = hash_stream(source, copy)
        try:
            inspection = inspect_distribution(copy, dist)
        except BadDistribution as e:
            return Derived(sha256, size, Inspection(None, None), str(e))
    return Derived(sha256, size, inspection)


def record_for(
    info: ObjectInfo, derived: Derived, upload_time: str, *, provenance_sha256: str | None = None
) -> FileRecord:
    split = layout.split_key(info.key)
    filename = split[1] if split else info.key
    metadata = derived.inspection.metadata
    return FileRecord(
        filename=filename,
        key=info.key,
        size=derived.size,
        upload_time=upload_time,
        etag=info.etag,
        sha256=derived.sha256,
        requires_python=derived.inspection.requires_python,
        metadata_sha256=hashlib.sha256(metadata).hexdigest() if metadata else None,
        problem=derived.problem,
        provenance_sha256=None if derived.problem else provenance_sha256,
    )


def attested_digests(provenance: bytes) -> set[str]:
    """The sha256 digests the subjects of a PEP 740 provenance object's attestations name
    (the in-toto statements are read as JSON, not verified: the upload verified them).
    Empty when the object is not a provenance object."""
    found: set[str] = set()
    try:
        document = json.loads(provenance)
        for bundle in document["attestation_bundles"]:
            for attestation in bundle["attestations"]:
                statement = json.loads(base64.b64decode(attestation["envelope"]["statement"]))
                found.update(str(s["digest"]["sha256"]) for s in statement["subject"])
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        return set()
    return found


def stored_provenance(
    catalog: Catalog, name: NormalizedName, filename: str, sha256: str
) -> str | None:
    """The sha256 of the stored provenance object of `filename` when it attests exactly these
    bytes (`sha256`), else None; one that attests other bytes (left by an upload that failed
    before its record, or of a file since replaced) is deleted."""
    data = catalog.read_provenance(name, filename)
    if data is None:
        return None
    if attested_digests(data) != {sha256}:
        catalog.delete_provenance(name, filename)
        return None
    return hashlib.sha256(data).hexdigest()
