"""Upload forms as twine and uv build them, for tests that post without a real client."""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from packaging.utils import parse_sdist_filename, parse_wheel_filename


def basic_auth(token: str, username: str = "__token__") -> str:
    return "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()


def upload_fields(filename: str, data: bytes, **overrides: str | None) -> list[tuple[str, str]]:
    """The fields twine sends for a file (values of None are left out)."""
    if filename.endswith(".whl"):
        name, version, _, _ = parse_wheel_filename(filename)
        filetype = "bdist_wheel"
    else:
        name, version = parse_sdist_filename(filename)
        filetype = "sdist"
    fields: dict[str, str | None] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "metadata_version": "2.1",
        "name": str(name),
        "version": str(version),
        "filetype": filetype,
        "pyversion": "py3" if filetype == "bdist_wheel" else "source",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
        "summary": "a test package",
    }
    fields.update(overrides)
    return [(k, v) for k, v in fields.items() if v is not None]


def encode_form(
    fields: list[tuple[str, str]], file: tuple[str, bytes] | None, boundary: str | None = None
) -> tuple[bytes, str]:
    """A multipart/form-data body (RFC 7578) and its Content-Type."""
    boundary = boundary or uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    if file is not None:
        filename, data = file
        parts.append(
            (
                f"--{boundary}\r\nContent-Disposition: form-data; "
                f'name="content"; filename="{filename}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def upload_body(path: Path, **overrides: str | None) -> tuple[bytes, str]:
    data = path.read_bytes()
    return encode_form(upload_fields(path.name, data, **overrides), (path.name, data))


def post(url: str, body: bytes, content_type: str, token: str | None) -> tuple[int, str]:
    """POST a form to a live server; the status and the body text."""
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = basic_auth(token)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
