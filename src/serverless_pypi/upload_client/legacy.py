"""The legacy upload API, for an index without Upload 2.0 sessions: the form twine sends.

The file is streamed inside the multipart form (`multipart/form-data`), never held in memory.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Sequence
from typing import IO, Any

from serverless_pypi.core.names import parse_distribution_filename
from serverless_pypi.upload_client.errors import UploadError
from serverless_pypi.upload_client.files import LocalFile
from serverless_pypi.upload_client.progress import CountingReader, Progress
from serverless_pypi.upload_client.transport import LONG_TIMEOUT, Http, error_text

__all__ = ["legacy_form", "legacy_upload"]


class _Concat(io.RawIOBase):
    """Several streams read as one (a form around a file, without holding the file)."""

    def __init__(self, parts: Sequence[IO[bytes] | io.RawIOBase]) -> None:
        self.parts = list(parts)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self.parts:
            data = self.parts[0].read(len(buffer))
            if data:
                buffer[: len(data)] = data
                return len(data)
            self.parts.pop(0).close()
        return 0


def _core_metadata_version(local: LocalFile) -> str:
    """The file's Metadata-Version (PyPI's form requires it), 2.1 when it cannot be read."""
    from packaging.metadata import parse_email

    from serverless_pypi.core.metadata import BadDistribution, inspect_distribution

    try:
        with local.path.open("rb") as file:
            metadata = inspect_distribution(file, parse_distribution_filename(local.filename))
        if metadata.metadata is not None:
            raw, _ = parse_email(metadata.metadata)
            return str(raw.get("metadata_version") or "2.1")
    except (BadDistribution, OSError, ValueError):
        pass
    return "2.1"


def legacy_form(local: LocalFile, boundary: str) -> tuple[bytes, bytes]:
    """The legacy upload form twine sends, as the bytes before and after the file's."""
    pyversion = "source" if local.kind == "sdist" else local.filename.split("-")[-3]
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": _core_metadata_version(local),
        "name": local.project,
        "version": local.version,
        "filetype": "sdist" if local.kind == "sdist" else "bdist_wheel",
        "pyversion": pyversion,
        "sha256_digest": local.sha256,
    }
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{local.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def legacy_upload(http: Http, url: str, local: LocalFile, progress: Progress) -> None:
    """POST the file to the legacy upload API at `url` (raises UploadError)."""
    boundary = secrets.token_hex(16)
    head, tail = legacy_form(local, boundary)
    progress.expect(local.size)
    reader = CountingReader(local.path, 0, local.size, progress)
    body = _Concat([io.BytesIO(head), reader, io.BytesIO(tail)])
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + local.size + len(tail)),
    }
    try:
        answer = http.send("POST", url, data=body, headers=headers, timeout=LONG_TIMEOUT)
    finally:
        body.close()
    if not 200 <= answer.status < 300:
        raise UploadError(error_text(answer))
