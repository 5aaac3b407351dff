"""Domain errors: raised where a request goes wrong, each with a message for a person.

They say what went wrong, not how to answer it: the web layer's one table
(`serverless_pypi.web.errors`) maps each class to its HTTP status and headers, and the CLI prints
the message. Store failures are not here: they are `serverless_pypi.storage.base.StoreError`
and its subclasses, translated at the storage boundary.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "DomainError",
    "FileAlreadyExists",
    "Forbidden",
    "InvalidRequest",
    "LengthRequired",
    "MethodNotAllowed",
    "NoSuchFile",
    "NoSuchPath",
    "NoSuchProject",
    "PathTooLong",
    "TooLarge",
    "Unauthenticated",
]


class DomainError(Exception):
    """A request the index refuses or cannot answer; `message` is for the person who sent it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(DomainError):
    """A malformed request: a bad path, header, form field, file or name."""


class FileAlreadyExists(InvalidRequest):
    """The distribution file (or one with its identity) is already in the index."""


class LengthRequired(InvalidRequest):
    """A streamed request body without the Content-Length it needs."""


class PathTooLong(DomainError):
    """The request path is longer than any path the index serves."""


class Unauthenticated(DomainError):
    """The request needs credentials and carries none that are valid.

    `realm` names the protection space for the `WWW-Authenticate: Basic` challenge that makes
    pip and uv look up credentials and retry (RFC 7617, RFC 9110 section 11.6.1).
    """

    def __init__(self, message: str, realm: str) -> None:
        super().__init__(message)
        self.realm = realm


class Forbidden(DomainError):
    """The credentials are valid but do not cover this request."""


class Conflict(DomainError):
    """The request conflicts with the state of the index: an upload into a PEP 752 namespace
    with a token that does not cover the namespace (the PEP answers 409)."""


class NoSuchPath(DomainError):
    """Nothing is served at this path."""


class NoSuchProject(NoSuchPath):
    """No project by that name is served here."""


class NoSuchFile(NoSuchPath):
    """No such file (or metadata file) is served here."""


class MethodNotAllowed(DomainError):
    """The path exists but does not answer this method; `allow` lists the ones it does."""

    def __init__(self, message: str, allow: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allow = allow


class TooLarge(DomainError):
    """The request body is larger than the index accepts."""
