"""The session protocol's names and request bodies (PEP 694 Upload 2.0), pure.

The media type, the mechanisms the client knows (and which it chooses), the session root below
an index URL, and the JSON bodies that create a publishing session and a file upload session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from serverless_pypi.upload_client.errors import UploadError
from serverless_pypi.upload_client.files import LocalFile, Release

__all__ = [
    "HTTP_POST_BYTES",
    "MEDIA_TYPE",
    "META",
    "S3_MECHANISM",
    "choose_mechanism",
    "create_body",
    "file_body",
    "session_root",
]

#: PEP 694 "Versioning and Content Types": the media type of every JSON request and answer
MEDIA_TYPE = "application/vnd.pypi.upload.v2+json"
META = {"api-version": "2.0"}
HTTP_POST_BYTES = "http-post-bytes"  # PEP 694: the mechanism every index implements
#: this index's S3 mechanism (docs/upload-sessions.md): presigned multipart part URLs
S3_MECHANISM = "vnd-serverlesspypi-s3multipart-presigned-v1"
#: the mechanisms the client can run, in the order it prefers them when the index has no order
KNOWN_MECHANISMS = (S3_MECHANISM, HTTP_POST_BYTES)
#: answers to `POST <root>` that mean "no Upload 2.0 here": the legacy API is used
NO_SESSION_API = frozenset({404, 405, 406, 415})


def session_root(index_url: str) -> str:
    """The session root below the index's simple URL: `<URL>/_upload/` (docs/upload-sessions.md)."""
    return index_url.rstrip("/") + "/_upload/"


def create_body(release: Release) -> dict[str, Any]:
    """PEP 694 "Create a Publishing Session": meta, name and version."""
    return {"meta": META, "name": release.project, "version": release.version}


def file_body(local: LocalFile, mechanism: str) -> dict[str, Any]:
    """PEP 694 "Create a File Upload Session": the file's name, size, sha256 and mechanism."""
    return {
        "meta": META,
        "filename": local.filename,
        "size": local.size,
        "hashes": {"sha256": local.sha256},
        "mechanism": mechanism,
    }


def choose_mechanism(offered: Sequence[str]) -> str:
    """The first mechanism the index offers (its order of preference) that the client runs."""
    for mechanism in offered:
        if mechanism in KNOWN_MECHANISMS:
            return mechanism
    raise UploadError(
        f"the index offers no upload mechanism this client knows ({', '.join(offered) or 'none'};"
        f" known: {', '.join(KNOWN_MECHANISMS)})"
    )
