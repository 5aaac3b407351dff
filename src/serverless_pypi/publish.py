"""Publishing a distribution: validate it, store it, and list it with its derived data.

The order makes a file visible only when complete: the bytes are written with
`If-None-Match: *` (of two publishers of one file name exactly one wins), then the core
metadata file, and only then the manifest record that puts the file on the page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Literal

from . import layout
from .catalog import Catalog
from .core.inspect import BadDistribution, hash_stream
from .core.model import ProjectIndex, format_upload_time
from .core.names import InvalidFilename, parse_distribution_filename
from .derive import derive_from_file, record_for
from .storage import NotFound, PreconditionFailed

__all__ = ["FileExists", "PublishError", "PublishResult", "publish"]

log = logging.getLogger(__name__)


class PublishError(ValueError):
    """The distribution cannot be published; the message says why."""


class FileExists(PublishError):
    """Other bytes are already published under this file name."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    filename: str
    project: str
    sha256: str
    status: Literal["created", "exists"]


def _same_bytes(catalog: Catalog, key: str, sha256: str) -> bool:
    try:
        with catalog.store.open(key) as existing:
            return hash_stream(existing)[0] == sha256
    except NotFound:
        return False


def publish(catalog: Catalog, file: IO[bytes], filename: str) -> PublishResult:
    """Publish the seekable distribution `file` under `filename`.

    Identical bytes under an existing name are a no-op ("exists"); other bytes raise
    FileExists; an invalid file raises PublishError. Nothing is written for either.
    """
    try:
        dist = parse_distribution_filename(filename)
        derived = derive_from_file(file, dist)
    except (InvalidFilename, BadDistribution) as e:
        raise PublishError(str(e)) from e
    name = dist.project
    exists = FileExists(
        f"File already exists: {filename!r} is published with other contents. "
        "A published file never changes; publish a new version instead."
    )
    index, _ = catalog.read_project(name)
    known = index.files.get(filename)
    if known is not None and known.sha256 not in (None, derived.sha256):
        raise exists
    key = known.key if known is not None else layout.distribution_key(name, filename)
    file.seek(0)
    try:
        catalog.store.put(key, file, content_type="application/octet-stream", if_none_match=True)
        created = True
    except PreconditionFailed:
        # somebody stored this name first: fine if they stored the same bytes
        if not _same_bytes(catalog, key, derived.sha256):
            raise exists from None
        created = False
    info = catalog.store.head(key)
    metadata = derived.inspection.metadata
    if metadata is not None:
        catalog.write_metadata(name, filename, metadata)
    record = record_for(info, derived, format_upload_time(datetime.now(UTC)))

    def add(project: ProjectIndex) -> bool:
        current = project.files.get(filename)
        if current is None:
            project.files[filename] = record
            return True
        if current.sha256 not in (None, record.sha256):
            raise exists
        if current.sha256 == record.sha256 and current.etag == record.etag:
            return False
        # the same bytes: keep the upload time and yank state the index already has
        project.files[filename] = record.with_changes(
            upload_time=current.upload_time, yanked=current.yanked
        )
        return True

    try:
        catalog.update_project(name, add)
    except FileExists:
        if created:
            catalog.store.delete(key)
        raise
    log.info("published %s (%s)", filename, "new" if created else "already there")
    return PublishResult(filename, name, derived.sha256, "created" if created else "exists")
