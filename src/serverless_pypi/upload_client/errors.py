"""The exceptions of the upload client (`serverless_pypi.upload_client`)."""

from __future__ import annotations

__all__ = ["NoSessionApi", "UploadError"]


class UploadError(Exception):
    """A step that failed; the message says which and why (one line)."""


class NoSessionApi(Exception):
    """The index answered the session root as one without the Upload 2.0 API."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status
