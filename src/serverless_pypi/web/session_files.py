"""The file upload sessions of the Upload 2.0 session API (PEP 694): the routes below a
publishing session's `<sid>/files/`.

    POST   "<sid>/files/"                    create a file upload session (202)
    GET    "<sid>/files/<file>"              its status (200); DELETE: remove the file (204)
    POST   "<sid>/files/<file>/complete"     verify the uploaded file (201)
    POST   "<sid>/files/<file>/extend"       extend its session (200)
    POST   "<sid>/files/<file>/bytes"        http-post-bytes: the file's bytes (204)
    POST   "<sid>/files/<file>/parts"        the S3 mechanism: presigned part URLs (200)
    GET    "<sid>/files/<file>/parts"        the parts S3 holds (200)
    POST   "<sid>/files/<file>/attestations" either mechanism's `attestations_url` (204)

`web.sessions.SessionRoutes` dispatches to them once the request is accepted and authorized;
what is stored and how is `serverless_pypi.index.sessions`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from packaging.version import Version

from serverless_pypi.core.errors import Conflict, InvalidRequest, NoSuchPath, TooLarge
from serverless_pypi.core.http import Request, Response
from serverless_pypi.core.names import (
    InvalidFilename,
    check_publishable_filename,
)
from serverless_pypi.web.session_bodies import Links, file_body, seconds_left
from serverless_pypi.web.session_requests import (
    allow_method,
    body_parts,
    content_length,
    extend_for,
    hashes_of,
    integer_of,
    read_body,
    read_json,
    string_of,
)
from serverless_pypi.web.session_wire import (
    MAX_URL_LIFETIME,
    META,
    POST_BYTES,
    RETRY_AFTER,
    S3_MECHANISM,
    Problem,
    Unprocessable,
    UnsupportedMediaType,
    json_answer,
)
from serverless_pypi.web.upload import Attest  # verifies as a legacy upload's attestations

if TYPE_CHECKING:
    from serverless_pypi.index.sessions import Sessions, StagedFile, UploadSession

__all__ = ["Attest", "FileSessionRoutes"]

#: the largest attestations body taken (PEP 740 allows one attestation of each of two
#: types; a real one is some 10 kB)
MAX_ATTESTATIONS_BODY = 256 * 1024


class FileSessionRoutes:
    """The file upload sessions: `create` answers `POST <sid>/files/`, `route` the URLs
    below `<sid>/files/<file>`.

    `session(request, sid)`: the publishing session `sid`, once the request may upload to its
    project (`SessionRoutes._session`). `front_limit`: the largest body the front carries
    (Lambda's 6 MB payload, base64): a file larger than it cannot use http-post-bytes there.
    `attest`: verifies attestations; None: no mechanism offers an `attestations_url`.
    """

    def __init__(
        self,
        sessions: Callable[[], Sessions],
        session: Callable[[Request, str], UploadSession],
        *,
        max_file_size: int,
        front_limit: int | None = None,
        attest: Attest | None = None,
    ) -> None:
        self.sessions = sessions
        self._session = session
        self.max_file_size = max_file_size
        self.front_limit = front_limit
        self.attest = attest

    def _body(self, links: Links, session: UploadSession, staged: StagedFile) -> dict[str, Any]:
        return file_body(links, session, staged, attestations=self.attest is not None)

    def _mechanisms(self) -> list[str]:
        # the server's preference first: the S3 mechanism carries any size on any front
        return self.sessions().mechanisms()

    def route(  # noqa: PLR0917 - the parts of one route
        self,
        request: Request,
        links: Links,
        sid: str,
        filename: str,
        action: list[str],
        method: str,
    ) -> Response:
        if not action:
            allow_method(method, ("GET", "DELETE"))
            if method == "GET":
                return self._file_status(request, links, sid, filename)
            return self._remove_file(request, sid, filename)
        handlers = {
            "complete": self._complete,
            "extend": self._extend_file,
            "bytes": self._bytes,
            "attestations": self._attestations,
        }
        if action[0] in handlers:
            allow_method(method, ("POST",))
            return handlers[action[0]](request, links, sid, filename)
        if action[0] == "parts":
            allow_method(method, ("GET", "POST"))
            if method == "GET":
                return self._parts(request, sid, filename)
            return self._part_urls(request, sid, filename)
        raise NoSuchPath("Not found: no such file upload session URL.")

    def create(self, request: Request, links: Links, sid: str) -> Response:
        session = self._session(request, sid)
        body = read_json(request)
        filename = string_of(body, "filename")
        self._check_filename(session, filename)
        size = integer_of(body, "size")
        if size <= 0:
            raise Problem(InvalidRequest("The size must be more than 0 bytes."), "size")
        if size > self.max_file_size:
            raise Problem(
                TooLarge(
                    f"The file is larger than this index takes ({self.max_file_size} bytes, "
                    "UPLOAD_SESSION_MAX_FILE_SIZE)."
                ),
                "size",
            )
        hashes = hashes_of(body)
        mechanism = string_of(body, "mechanism")
        self._check_mechanism(mechanism, size)
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, str):
            raise Problem(InvalidRequest("The metadata must be a string."), "metadata")
        staged = self.sessions().add_file(sid, filename, size, hashes, mechanism)
        answer = self._body(links, session, staged)
        return json_answer(
            202,
            answer,
            {"Location": links.file(sid, filename), "Retry-After": RETRY_AFTER},
        )

    @staticmethod
    def _check_filename(session: UploadSession, filename: str) -> None:
        """The legacy upload's rules (`check_publishable_filename`), and a file of the
        session's release."""
        try:
            dist = check_publishable_filename(filename)
        except InvalidFilename as e:
            raise Problem(InvalidRequest(f"Invalid file name: {e}."), "filename") from None
        if dist.project != session.name or dist.version != Version(session.version):
            raise Problem(
                InvalidRequest(
                    f"{filename!r} is not a file of this session's release "
                    f"({session.name} {session.version})."
                ),
                "filename",
            )

    def _check_mechanism(self, mechanism: str, size: int) -> None:
        offered = self._mechanisms()
        if mechanism not in offered:
            raise Problem(
                Unprocessable(
                    f"The mechanism {mechanism!r} is not offered here: use one of "
                    f"{', '.join(offered)}."
                ),
                "mechanism",
            )
        if mechanism == POST_BYTES and self.front_limit is not None and size > self.front_limit:
            raise Problem(
                Unprocessable(
                    f"http-post-bytes carries at most {self.front_limit} bytes through this "
                    f"front (API Gateway and Lambda: a 6 MB payload, base64): use {S3_MECHANISM}"
                    " (`serverless-pypi upload` does)."
                ),
                "mechanism",
            )

    def _staged(self, session: UploadSession, filename: str) -> StagedFile:
        staged = session.files.get(filename)
        if staged is None:
            raise NoSuchPath(f"The session has no file {filename!r}.")
        return staged

    def _file_status(self, request: Request, links: Links, sid: str, filename: str) -> Response:
        session = self._session(request, sid)
        body = self._body(links, session, self._staged(session, filename))
        return json_answer(200, body, {"Retry-After": RETRY_AFTER})

    def _remove_file(self, request: Request, sid: str, filename: str) -> Response:
        self._staged(self._session(request, sid), filename)
        self.sessions().remove_file(sid, filename)
        return Response(204, {"Cache-Control": "no-store"})

    def _complete(self, request: Request, links: Links, sid: str, filename: str) -> Response:
        session = self._session(request, sid)
        self._staged(session, filename)
        read_json(request, optional=True)
        try:
            staged = self.sessions().complete_file(sid, filename)
        except InvalidRequest as e:
            raise Problem(e, "file") from None
        body = self._body(links, session, staged)
        return json_answer(201, body, {"Location": links.file(sid, filename)})

    def _extend_file(self, request: Request, links: Links, sid: str, filename: str) -> Response:
        """A file upload session lives as long as its publishing session: extending one
        extends the other."""
        self._staged(self._session(request, sid), filename)
        seconds = extend_for(read_json(request))
        staged = self.sessions().extend_file(sid, filename, seconds)
        return json_answer(200, self._body(links, self.sessions().get(sid), staged))

    def _bytes(self, request: Request, links: Links, sid: str, filename: str) -> Response:
        """http-post-bytes (PEP 694): the file's bytes as the body, in one request."""
        session = self._session(request, sid)
        staged = self._staged(session, filename)
        if staged.mechanism != POST_BYTES:
            raise Conflict(f"{filename!r} is uploaded with {staged.mechanism}, not {POST_BYTES}.")
        _require_media_type(
            request,
            "application/octet-stream",
            "http-post-bytes sends the file as application/octet-stream",
        )
        stream: IO[bytes]
        if request.stream is None:
            length, stream = len(request.body), io.BytesIO(request.body)
        else:
            length, stream = content_length(request), request.stream
        if length != staged.size:
            raise Problem(
                InvalidRequest(
                    f"The body is {length} bytes; the file upload session declared {staged.size}."
                ),
                "size",
            )
        self.sessions().put_bytes(sid, filename, stream, length)
        return Response(204, {"Cache-Control": "no-store"})

    def _attestations(self, request: Request, links: Links, sid: str, filename: str) -> Response:
        """PEP 694 `attestations_url`: a JSON array of PEP 740 attestation objects, before
        completion. Verified at once as a legacy upload's (`auth.attestations`: the subject
        is this file and the sha256 its session declared, which completion checks against
        the bytes; the signer is the identity the request's token requires); the resulting
        provenance object replaces any posted before (204). 400 says why one fails, and
        stores nothing; 409 once the file is complete."""
        session = self._session(request, sid)
        staged = self._staged(session, filename)
        if self.attest is None:
            raise NoSuchPath("This index does not verify attestations (PEP 740).")
        if staged.status != "pending":
            raise Conflict(
                f"{filename!r} is {staged.status}: attestations are posted before completing "
                "the file (PEP 694); delete its file upload session to upload it again."
            )
        _require_media_type(
            request,
            "application/json",
            "Attestations are sent as application/json (a JSON array of PEP 740 attestation "
            "objects)",
        )
        # imported by a request that carries attestations only (it loads pydantic)
        from serverless_pypi.auth.attestations import parse_attestations

        raw = read_body(request, MAX_ATTESTATIONS_BODY)
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise Problem(InvalidRequest("The body is not UTF-8 JSON."), "body") from None
        try:
            items = parse_attestations(text)
        except InvalidRequest as e:
            # its messages name the legacy upload's field: here it is the body
            message = e.message.replace("The 'attestations' field", "The body")
            raise Problem(InvalidRequest(message), "body") from None
        if not items:
            raise Problem(
                InvalidRequest("The body holds no attestation: send a JSON array of them."),
                "body",
            )
        try:
            provenance = self.attest(request, session.name, filename, staged.sha256, items)
        except InvalidRequest as e:
            raise Problem(e, "attestations") from None
        self.sessions().put_provenance(sid, filename, provenance)
        return Response(204, {"Cache-Control": "no-store"})

    def _check_s3(self, staged: StagedFile) -> None:
        if staged.mechanism != S3_MECHANISM:
            raise Conflict(
                f"{staged.filename!r} is uploaded with {staged.mechanism}, not {S3_MECHANISM}."
            )

    def _part_urls(self, request: Request, sid: str, filename: str) -> Response:
        session = self._session(request, sid)
        staged = self._staged(session, filename)
        self._check_s3(staged)
        numbers = body_parts(read_json(request), staged.part_count)
        expires = min(MAX_URL_LIFETIME, seconds_left(session.expires))
        if expires <= 0:
            raise NoSuchPath("The session has expired.")
        urls = self.sessions().part_urls(sid, filename, numbers, expires)
        parts = [{"number": number, "url": url} for number, url in urls]
        return json_answer(200, {"meta": META, "parts": parts})

    def _parts(self, request: Request, sid: str, filename: str) -> Response:
        session = self._session(request, sid)
        self._check_s3(self._staged(session, filename))
        held = self.sessions().parts(sid, filename)
        parts = [{"number": n, "size": size, "etag": etag} for n, size, etag in held]
        return json_answer(200, {"meta": META, "parts": parts})


def _require_media_type(request: Request, expected: str, what: str) -> None:
    """415 (as a PEP 694 problem naming Content-Type) unless the body is of `expected` type;
    `what` says what the route takes."""
    content_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip()
    if content_type.lower() != expected:
        raise Problem(
            UnsupportedMediaType(f"{what}, not {content_type or 'untyped'!r}."), "Content-Type"
        )
