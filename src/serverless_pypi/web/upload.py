"""The upload API: the legacy upload protocol as PyPI implements it, for twine and uv publish.

A client POSTs `multipart/form-data` (RFC 7578) to the index URL with `:action=file_upload`,
`protocol_version=1`, `name`, `version`, `filetype`, digests, the core-metadata fields and the
file as `content`. Answers follow PyPI:

- 200 on success, and 200 for an identical re-upload (nothing changes);
- 400 `File already exists ...` for other bytes under a published file name, and 400 with the
  reason for a form or a file that does not validate;
- 400 `attestation N: ...` for a PEP 740 attestation (the `attestations` field) that does not
  verify (`serverless_pypi.auth.attestations`), and for an upload without attestations to a
  project that requires them;
- 403 for missing or bad credentials, or a token that does not cover the project, and for a
  project whose status (PEP 792) is `archived` or `quarantined`;
- 409 for a project in a PEP 752 namespace with a token that does not cover the namespace;
- 413 for a file over the size bound (on Lambda the message points to `serverless-pypi
  upload`, an Upload 2.0 session whose parts go straight to S3, and to `serverless-pypi
  publish`: API Gateway and Lambda carry at most 6 MB).

Storing goes through `serverless_pypi.index.publish.publish`, which makes the file visible only once
its derived data is complete and lets exactly one of two concurrent uploads of a name win.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import multipart
from packaging.version import InvalidVersion, Version

from serverless_pypi.core.config import Settings
from serverless_pypi.core.errors import Conflict, InvalidRequest, LengthRequired, TooLarge
from serverless_pypi.core.http import Request, Response, text_response
from serverless_pypi.core.metadata import MAX_METADATA_SIZE
from serverless_pypi.core.names import (
    Distribution,
    InvalidFilename,
    InvalidProjectName,
    NormalizedName,
    normalize_project_name,
    parse_distribution_filename,
)
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.publish import (
    FileExists,
    PublishError,
    check_attestations,
    check_status,
    publish,
)
from serverless_pypi.index.records import spooled

if TYPE_CHECKING:
    from serverless_pypi.core.policy import Policy

__all__ = ["MAX_FORM_TEXT", "UploadForm", "UploadHandler", "parse_form"]

#: all text fields of one form together (a long description is the largest)
MAX_FORM_TEXT = MAX_METADATA_SIZE
#: parts in one form: twine sends one per classifier, so hundreds are normal
MAX_FORM_PARTS = 5000
#: the body is read and parsed in pieces of this size: an upload never holds it whole
_CHUNK = 1024 * 1024
#: the uploaded file stays in memory up to this size, then goes to a temporary file
UPLOAD_IN_MEMORY = 4 * 1024 * 1024
#: the fields the index reads; the other metadata fields are counted and dropped
_KEPT = frozenset(
    {
        ":action",
        "protocol_version",
        "name",
        "version",
        "filetype",
        "sha256_digest",
        "blake2_256_digest",
        "md5_digest",
        # PEP 740: a JSON array of attestation objects
        "attestations",
    }
)
_FILETYPES = {"wheel": "bdist_wheel", "sdist": "sdist"}
_DIGESTS = ("sha256_digest", "blake2_256_digest", "md5_digest")

#: checks the request's credentials for a project (None: any project): returns when the
#: request may upload, raises Forbidden when it may not
Authorize = Callable[[Request, NormalizedName | None], None]
#: verifies the PEP 740 attestations an upload carries (the request, the project, the file
#: name, its sha256, the parsed `attestations` array) against the identity the request's
#: credentials require: returns the provenance object to store, raises InvalidRequest
#: ("attestation N: why") for one that fails
Attest = Callable[[Request, NormalizedName, str, str, list[Any]], bytes]
#: checks that the request's token covers the PEP 752 namespace (the third argument) the
#: project is in: returns when it does, raises Conflict when it does not
ClaimNamespace = Callable[[Request, NormalizedName, str], None]


@dataclass
class UploadForm:
    """The parsed form: the fields the index reads, and the file with its digests."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    content: Any = None  # a spooled temporary file (seekable, binary)
    size: int = 0
    digests: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        if self.content is not None:
            self.content.close()


def _boundary(content_type: str | None) -> str:
    if not content_type:
        raise InvalidRequest(
            "An upload is a multipart/form-data POST (the upload API of twine and uv publish); "
            "this request has no Content-Type."
        )
    kind, options = multipart.parse_options_header(content_type)
    if kind != "multipart/form-data":
        raise InvalidRequest(
            f"An upload is a multipart/form-data POST (the upload API of twine and uv publish), "
            f"not {kind!r}."
        )
    boundary = options.get("boundary")
    if not boundary or len(boundary) > 200:
        raise InvalidRequest("The multipart/form-data Content-Type has no usable boundary.")
    return str(boundary)


class _FormReader:
    """Receives the parser's events for one form: keeps the fields read, spools the file."""

    def __init__(self, max_file_size: int, max_text: int, too_large_hint: str) -> None:
        self.form = UploadForm()
        self.max_file_size = max_file_size
        self.max_text = max_text
        self.too_large_hint = too_large_hint
        self.hashers: dict[str, Any] = {}
        self.text_size = 0
        self.current: str | None = None  # the part being read: a field name, or "content"
        self.buffer = bytearray()

    def start(self, segment: Any) -> None:
        name = segment.name or ""
        if segment.disposition != "form-data":
            raise InvalidRequest("Every part of the upload form must be form-data.")
        if name == "content":
            if self.form.content is not None:
                raise InvalidRequest("The form carries more than one file ('content').")
            if not segment.filename:
                raise InvalidRequest("The 'content' part of the form has no file name.")
            self.form.filename = segment.filename
            self.form.content = spooled(UPLOAD_IN_MEMORY)  # closed by form.close()
            self.hashers = {
                "sha256_digest": hashlib.sha256(),
                "blake2_256_digest": hashlib.blake2b(digest_size=32),
                "md5_digest": hashlib.md5(usedforsecurity=False),
            }
        elif name in _KEPT and name in self.form.fields:
            raise InvalidRequest(f"The form carries the field {name!r} more than once.")
        self.current = name
        self.buffer.clear()

    def data(self, chunk: bytes) -> None:
        form = self.form
        if self.current == "content":
            form.size += len(chunk)
            if form.size > self.max_file_size:
                raise TooLarge(
                    f"The file is larger than this index accepts "
                    f"({self.max_file_size} bytes, MAX_UPLOAD_SIZE).{self.too_large_hint}",
                )
            form.content.write(chunk)
            for hasher in self.hashers.values():
                hasher.update(chunk)
            return
        self.text_size += len(chunk)
        if self.text_size > self.max_text:
            raise InvalidRequest(
                f"The form's text fields are larger than {self.max_text} bytes "
                f"(the field {self.current!r} went over)."
            )
        if self.current in _KEPT:
            self.buffer += chunk

    def end(self) -> None:
        if self.current is not None and self.current != "content" and self.current in _KEPT:
            try:
                self.form.fields[self.current] = self.buffer.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise InvalidRequest(f"The form field {self.current!r} is not UTF-8.") from None
        self.current = None
        self.buffer.clear()


def _chunks(body: bytes | IO[bytes], length: int) -> Iterator[bytes]:
    """The body in pieces of at most `_CHUNK` bytes, then b"" (the end of the input).

    A stream is read up to `length` bytes, and no further (InvalidRequest if it ends early).
    """
    if isinstance(body, bytes | bytearray | memoryview):
        view = memoryview(body)
        yield from (bytes(view[i : i + _CHUNK]) for i in range(0, len(view), _CHUNK))
    else:
        remaining = length
        while remaining > 0:
            chunk = body.read(min(_CHUNK, remaining))
            if not chunk:
                raise InvalidRequest(
                    f"The request body ends {remaining} bytes before its Content-Length: "
                    "it was cut short."
                )
            remaining -= len(chunk)
            yield chunk
    yield b""


def parse_form(
    body: bytes | IO[bytes],
    content_type: str | None,
    max_file_size: int,
    max_text: int = MAX_FORM_TEXT,
    too_large_hint: str = "",
    *,
    content_length: int | None = None,
) -> UploadForm:
    """Parse an upload form (RFC 7578), hashing the file into a spooled file as it streams.

    `body` is the whole body, or a stream of `content_length` bytes, read in pieces: the form
    holds at most `UPLOAD_IN_MEMORY` bytes of the file in memory, the rest is on disk.

    Raises InvalidRequest for a malformed or incomplete form, TooLarge for a file over
    `max_file_size` bytes.
    """
    boundary = _boundary(content_type)
    if isinstance(body, bytes | bytearray | memoryview):
        length = len(body)
    elif content_length is None:
        raise ValueError("parse_form: a stream needs its content_length")
    else:
        length = content_length
    reader = _FormReader(max_file_size, max_text, too_large_hint)
    try:
        _feed(reader, _chunks(body, length), boundary, length)
    except multipart.ParserLimitReached as e:
        reader.form.close()
        raise InvalidRequest(f"The upload form goes over a limit: {e}.") from None
    except multipart.MultipartError as e:
        reader.form.close()
        raise InvalidRequest(f"The upload form is not valid multipart/form-data: {e}.") from None
    except BaseException:
        reader.form.close()
        raise
    reader.form.digests = {name: h.hexdigest() for name, h in reader.hashers.items()}
    return reader.form


def _feed(reader: _FormReader, chunks: Iterator[bytes], boundary: str, length: int) -> None:
    """Run the parser over the body's chunks (the last, empty one ends the input)."""
    parser = multipart.PushMultipartParser(
        boundary, content_length=length, max_segment_count=MAX_FORM_PARTS
    )
    for chunk in chunks:
        for event in parser.parse(chunk):
            if isinstance(event, multipart.MultipartSegment):
                reader.start(event)
            elif event is None:  # the end of a part
                reader.end()
            else:
                reader.data(event)
    if not parser.closed:
        raise InvalidRequest("The multipart/form-data body ends early: it was cut short.")


def _validate(form: UploadForm) -> Distribution:
    """Check the form against the file name (raises InvalidRequest)."""
    _check_action(form.fields)
    dist = _distribution(form)
    _check_name_and_version(form, dist)
    _check_filetype_and_digests(form, dist)
    return dist


def _check_action(fields: dict[str, str]) -> None:
    action = fields.get(":action")
    if action is None:
        raise InvalidRequest(
            "The form has no ':action' field: this is the legacy upload API "
            "(twine upload, uv publish), which sends ':action=file_upload'."
        )
    if action != "file_upload":
        raise InvalidRequest(
            f"Unsupported ':action' {action!r}: this index only takes 'file_upload'."
        )
    # PyPI: a missing protocol_version counts as "1"
    if fields.get("protocol_version", "1") != "1":
        raise InvalidRequest(
            f"Unknown protocol_version {fields['protocol_version']!r}: only '1' exists."
        )


def _distribution(form: UploadForm) -> Distribution:
    """The distribution the form's file is, by its name."""
    if form.content is None or form.filename is None:
        raise InvalidRequest(
            "The upload has no file: the form needs a 'content' part with a file name."
        )
    if form.size == 0:
        raise InvalidRequest(f"The file {form.filename!r} is empty.")
    try:
        return parse_distribution_filename(form.filename)
    except InvalidFilename as e:
        raise InvalidRequest(f"Invalid file name: {e}.") from None


def _check_name_and_version(form: UploadForm, dist: Distribution) -> None:
    fields = form.fields
    for required in ("name", "version"):
        if not fields.get(required):
            raise InvalidRequest(f"The form has no {required!r} field (the project's {required}).")
    try:
        name = normalize_project_name(fields["name"])
    except InvalidProjectName as e:
        raise InvalidRequest(f"Invalid project name in the form: {e}.") from None
    if name != dist.project:
        raise InvalidRequest(
            f"The form's name {fields['name']!r} does not match the file name "
            f"{form.filename!r} (project {dist.project!r})."
        )
    try:
        version = Version(fields["version"])
    except InvalidVersion:
        raise InvalidRequest(
            f"Invalid version {fields['version']!r} in the form (PEP 440)."
        ) from None
    if version != dist.version:
        raise InvalidRequest(
            f"The form's version {fields['version']!r} does not match the file name "
            f"{form.filename!r} (version {dist.version})."
        )


def _check_filetype_and_digests(form: UploadForm, dist: Distribution) -> None:
    filetype = form.fields.get("filetype")
    if filetype and filetype != _FILETYPES[dist.kind]:
        raise InvalidRequest(
            f"The form's filetype {filetype!r} does not match {form.filename!r} "
            f"(a {dist.kind}: {_FILETYPES[dist.kind]!r})."
        )
    for digest in _DIGESTS:
        sent = form.fields.get(digest)
        if sent and not hmac.compare_digest(sent.lower(), form.digests[digest]):
            raise InvalidRequest(
                f"The {digest} sent ({sent}) does not match the file received "
                f"({form.digests[digest]}): the upload was damaged on the way."
            )


def _content_length(request: Request) -> int | None:
    """The declared length of a streamed body (raises InvalidRequest or LengthRequired)."""
    if request.stream is None:
        return None
    raw = request.headers.get("content-length")
    if raw is None:
        raise LengthRequired("An upload needs a Content-Length header.")
    # RFC 9110 section 8.6: Content-Length = 1*DIGIT
    if not raw.strip().isdigit() or not raw.strip().isascii():
        raise InvalidRequest(f"The Content-Length {raw[:40]!r} is not a number.")
    return int(raw)


class UploadHandler:
    """The application's upload hook: authenticate, parse, validate, publish.

    Refusals are raised (Forbidden, InvalidRequest, FileAlreadyExists, TooLarge, ...) and
    answered by the application through its error table.
    """

    def __init__(
        self,
        catalog: Catalog,
        settings: Settings,
        authorize: Authorize,
        *,
        max_file_size: int | None = None,
        too_large_hint: str = "",
        policies: Callable[[], Policy] | None = None,
        claim_namespace: ClaimNamespace | None = None,
        attest: Attest | None = None,
    ) -> None:
        self.catalog = catalog
        #: verifies attestations; None: an upload that carries some is refused
        self.attest = attest
        self.authorize = authorize
        #: the policy in force (statuses, namespaces), asked at every upload; None: no policy
        self.policies = policies
        self.claim_namespace = claim_namespace
        self.max_file_size = max_file_size or settings.max_upload_size
        self.too_large_hint = too_large_hint

    def __call__(self, request: Request) -> Response:
        # credentials first, as PyPI: a stranger learns nothing about the form or the index
        self.authorize(request, None)
        form = parse_form(
            request.body if request.stream is None else request.stream,
            request.headers.get("content-type"),
            self.max_file_size,
            too_large_hint=self.too_large_hint,
            content_length=_content_length(request),
        )
        try:
            return self._publish(request, form)
        finally:
            form.close()

    def _publish(self, request: Request, form: UploadForm) -> Response:
        dist = _validate(form)
        self.authorize(request, dist.project)
        self._check_policy(request, dist.project)
        # verified before any byte is stored: a refused attestation publishes nothing
        provenance = self._provenance(request, form, dist)
        try:
            result = publish(self.catalog, form.content, dist.filename, provenance=provenance)
        except FileExists:
            # a FileAlreadyExists: twine --skip-existing and uv look for "File already exists"
            # in a 400, so its message is passed on as it is
            raise
        except PublishError as e:
            raise InvalidRequest(f"The file cannot be published: {e.message}.") from None
        if result.status == "exists":
            message = f"OK: {result.filename} is already published with the same contents."
        else:
            message = f"OK: published {result.project}/{result.filename} sha256={result.sha256}"
        return text_response(200, message)

    def _provenance(self, request: Request, form: UploadForm, dist: Distribution) -> bytes | None:
        """The PEP 740 provenance object of the upload's verified attestations; None when it
        carries none (refused when the policy requires them)."""
        field = form.fields.get("attestations", "")
        if not field.strip():
            items: list[Any] = []
        else:
            # imported by an upload that carries attestations only (it loads pydantic)
            from serverless_pypi.auth.attestations import parse_attestations

            items = parse_attestations(field)
        if not items:
            if self.policies is not None:
                check_attestations(self.policies(), dist.project)
            return None
        if self.attest is None:
            raise InvalidRequest("This index does not verify attestations (PEP 740).")
        return self.attest(
            request, dist.project, dist.filename, form.digests["sha256_digest"], items
        )

    def _check_policy(self, request: Request, project: NormalizedName) -> None:
        if self.policies is not None:
            check_upload_policy(self.policies(), self.claim_namespace, request, project)


def check_upload_policy(
    policy: Policy,
    claim_namespace: ClaimNamespace | None,
    request: Request,
    project: NormalizedName,
) -> None:
    """Refuse an upload (legacy, or an Upload 2.0 session's) when `policy` closes the
    project: its status (PEP 792, a 403) or a namespace (PEP 752) the request's token does
    not cover (a 409)."""
    check_status(policy, project)
    namespace = policy.namespace_of(project)
    if namespace is None:
        return
    if claim_namespace is None:  # nothing to check the token with: fail closed
        raise Conflict(f"The project {project!r} is in the namespace {namespace!r} (PEP 752).")
    claim_namespace(request, project, namespace)
