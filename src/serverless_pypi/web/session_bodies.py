"""The answers' bodies of the Upload 2.0 session API (PEP 694): the publishing session body,
the file upload session body, and the absolute links in them.

Every URL a client follows comes from the `links` of an answer, and every link is absolute:
the scheme and Host the client sent the request to, plus the index's base path (`Links`).
The routes are `web.sessions`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from serverless_pypi.core.errors import InvalidRequest
from serverless_pypi.core.http import Request
from serverless_pypi.web.paths import SESSION_ROOT, STAGE_ROOT
from serverless_pypi.web.session_wire import MAX_URL_LIFETIME, META, POST_BYTES, S3_MECHANISM

if TYPE_CHECKING:
    from serverless_pypi.index.sessions import StagedFile, UploadSession

__all__ = ["Links", "file_body", "seconds_left", "session_body"]


def _origin(request: Request) -> str:
    """`scheme://host` the client sent the request to (RFC 9110 section 7.2: Host)."""
    host = (request.headers.get("host") or "").strip().lower()
    try:
        parts = urlsplit("//" + host)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if not host or parts is None or not parts.hostname or parts.netloc != host:
        raise InvalidRequest("The request has no usable Host header: links name it.")
    if any(c in host for c in "/?#@\\ "):
        raise InvalidRequest("The request has no usable Host header: links name it.")
    return f"{request.scheme}://{host}"


class Links:
    """The absolute URLs of one request's sessions: scheme, host and the index's base path."""

    def __init__(self, request: Request) -> None:
        base = request.base if request.base.endswith("/") else request.base + "/"
        self.index = _origin(request) + base

    def session(self, sid: str) -> str:
        return f"{self.index}{SESSION_ROOT}/{sid}/"

    def stage(self, token: str) -> str:
        # the stage URL is calculable from the session token (PEP 694), documented
        return f"{self.index}{STAGE_ROOT}/{quote(token, safe='')}/"

    def file(self, sid: str, filename: str) -> str:
        return f"{self.session(sid)}files/{quote(filename, safe='')}"


def seconds_left(expires: str) -> int:
    try:
        moment = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(int((moment - datetime.now(UTC)).total_seconds()), 0)


def session_body(links: Links, session: UploadSession, mechanisms: list[str]) -> dict[str, Any]:
    """PEP 694's publishing session body. The session token and the stage link are in
    it while the session is open (pending or processing), to every request authorized
    for the project: PEP 694 has another publisher learn the stage by repeating the
    create (409, Location, this body); a published session has no stage."""
    own = links.session(session.id)
    body: dict[str, Any] = {
        "meta": META,
        "links": {
            "upload": own + "files/",
            "session": own,
            "publish": own + "publish",
            "extend": own + "extend",
        },
        "mechanisms": mechanisms,
        "expires-at": session.expires,
        "status": session.status,
        "files": {
            name: {
                "status": staged.status,
                "link": links.file(session.id, name),
                **({"notices": [staged.problem]} if staged.problem else {}),
            }
            for name, staged in sorted(session.files.items())
        },
        "notices": [],
    }
    if session.alive(datetime.now(UTC)):
        body["session-token"] = session.token
        body["links"]["stage"] = links.stage(session.token)
    return body


def file_body(
    links: Links, session: UploadSession, staged: StagedFile, *, attestations: bool = False
) -> dict[str, Any]:
    """PEP 694's file upload session body; with `attestations`, each mechanism offers its
    `attestations_url` (PEP 740 attestations, posted before completion)."""
    own = links.file(session.id, staged.filename)
    mechanism: dict[str, Any] = {"identifier": staged.mechanism}
    if attestations:
        mechanism["attestations_url"] = own + "/attestations"
    if staged.mechanism == POST_BYTES:
        mechanism["file_url"] = own + "/bytes"
    elif staged.mechanism == S3_MECHANISM:
        mechanism.update(
            {
                "part-size": staged.part_size,
                "part-count": staged.part_count,
                "parts_url": own + "/parts",
                "url-expires-in": min(MAX_URL_LIFETIME, seconds_left(session.expires)),
            }
        )
    return {
        "meta": META,
        "links": {
            "publishing-session": links.session(session.id),
            "file-upload-session": own,
            "complete": own + "/complete",
            "extend": own + "/extend",
        },
        "status": staged.status,
        "expires-at": session.expires,
        "mechanism": mechanism,
        "notices": [staged.problem] if staged.problem else [],
        # what the create request declared (members of ours): a client resuming compares
        "filename": staged.filename,
        "size": staged.size,
        "hashes": dict(staged.hashes),
        # whether verified attestations (PEP 740) are staged with it (a member of ours)
        **({"attestations": staged.provenance_sha256 is not None} if attestations else {}),
    }
