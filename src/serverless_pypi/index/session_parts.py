"""Upload 2.0 (PEP 694) sessions: the part layout of the S3 mechanism.

`vnd-serverlesspypi-s3multipart-presigned-v1` stages a file as an S3 multipart upload whose
parts the client PUTs through presigned URLs: here are the parts a file of a given size is
cut into, the check that the uploaded parts make the declared file, and their joining into
the staged object. The service that uses them is `index.sessions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from serverless_pypi.core.errors import InvalidRequest
from serverless_pypi.storage import NotFound, Store, UploadedPart

if TYPE_CHECKING:
    from serverless_pypi.index.session_documents import StagedFile

__all__ = ["MAX_PARTS", "MAX_PART_URLS", "join_parts", "part_layout", "part_problem"]

#: part numbers one request for part URLs may ask for
MAX_PART_URLS = 1000
#: S3: at most 10,000 parts; a part is 5 MiB to 5 GiB (the last one may be smaller)
MAX_PARTS = 10_000
_MIN_PART = 16 * 1024 * 1024
_MAX_PART = 5 * 1024**3


def part_layout(size: int) -> tuple[int, int]:
    """(part size, part count) of the S3 mechanism for a file of `size` bytes: the smallest
    of 16, 32, 64, ... MiB that keeps the count within S3's 10,000 parts."""
    part = _MIN_PART
    while -(-size // part) > MAX_PARTS and part < _MAX_PART:
        part *= 2
    return part, max(1, -(-size // part))


def part_problem(parts: Sequence[UploadedPart], file: StagedFile) -> str | None:
    """Why the uploaded parts cannot make the declared file (None: they can)."""
    if len(parts) != file.part_count:
        return f"{len(parts)} parts uploaded, {file.part_count} expected"
    size, count = file.part_size, file.part_count
    for part in parts:
        wanted = size if part.number < count else file.size - size * (count - 1)
        if part.size != wanted:
            return f"size: part {part.number} has {part.size} bytes, {wanted} expected"
    return None


def join_parts(store: Store, key: str, file: StagedFile) -> str | None:
    """Complete the multipart upload if its parts make the declared size; a problem (the
    file fails), or InvalidRequest while parts are missing (the client uploads them)."""
    assert file.upload_id is not None
    try:
        parts = list(store.list_parts(key, file.upload_id))
    except NotFound:  # S3: a completed (or aborted) upload is no more
        parts = []
    if not parts and store.find(key) is not None:
        return None  # joined by an earlier attempt that stopped before its end
    numbers = {p.number for p in parts}
    missing = [n for n in range(1, file.part_count + 1) if n not in numbers]
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (", ..." if len(missing) > 20 else "")
        raise InvalidRequest(
            f"{file.filename!r}: parts {shown} of {file.part_count} are not uploaded yet"
        )
    problem = part_problem(parts, file)
    if problem is None:
        try:
            store.complete_multipart(key, file.upload_id, [(p.number, p.etag) for p in parts])
        except NotFound:
            if store.find(key) is None:  # else a concurrent complete joined them
                raise InvalidRequest(
                    f"{file.filename!r}: its multipart upload is gone: delete the file "
                    "upload session and upload the file again"
                ) from None
    return problem
