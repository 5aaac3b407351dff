"""An upstream index's project page, read from PEP 691 JSON or PEP 503 HTML, and the page
the index serves for it.

`parse_page` reads what an upstream (PyPI, or any simple index) answered into an
`UpstreamPage`: the files with their absolute upstream URLs and everything a client relies
on (hashes, sizes, `upload-time` exactly as given, `requires-python`, yanked state, the core
metadata hash). Links whose file name is unsafe as a store key, or that do not point at an
http(s) URL, are dropped; a body that is not a page at all raises InvalidUpstreamPage.

`page_model` turns an `UpstreamPage` into the PEP 691 dict `serverless_pypi.core.render`
renders, with links to the index's own stable `<project>/<file>` URLs.

Pure: no I/O; `html.parser` and `packaging` are imported when first needed.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from serverless_pypi.core.names import (
    InvalidFilename,
    InvalidProjectName,
    NormalizedName,
    check_filename,
    normalize_project_name,
)
from serverless_pypi.core.render import API_VERSION, file_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = [
    "HTML_TYPES",
    "JSON_TYPE",
    "JSON_TYPES",
    "MAX_PAGE_BYTES",
    "InvalidUpstreamPage",
    "UpstreamFile",
    "UpstreamPage",
    "page_model",
    "parse_page",
]

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
#: PEP 691 JSON; plain `application/json` as some indexes label it
JSON_TYPES = frozenset({JSON_TYPE, "application/json"})
#: PEP 503 / PEP 691 HTML (pip and uv accept nothing else as HTML)
HTML_TYPES = frozenset({"text/html", "application/vnd.pypi.simple.v1+html"})
#: the largest page read (PyPI's largest pages are a few tens of MB of JSON)
MAX_PAGE_BYTES = 64 * 1024 * 1024

_SHA256 = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
# PEP 700 `upload-time`: ISO 8601 in UTC, `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`
_UPLOAD_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z", re.ASCII)
_URL_SCHEMES = frozenset({"http", "https"})


class InvalidUpstreamPage(ValueError):
    """What an upstream answered is not a project page; the message says why."""


@dataclass(frozen=True, slots=True)
class UpstreamFile:
    """One file an upstream page lists."""

    filename: str  # passes core.names.check_filename (else the link is dropped)
    url: str  # absolute URL at the upstream, fragment removed
    sha256: str | None  # lowercase hex (PEP 691 hashes / PEP 503 #sha256= fragment)
    size: int | None = None  # PEP 700 (JSON only)
    upload_time: str | None = None  # exactly the upstream's string (cooldowns depend on it)
    requires_python: str | None = None
    yanked: str | None = None  # PEP 592: None not yanked, "" no reason, else the reason
    # PEP 658/714 core metadata sha256; None if not offered or offered without a sha256
    # (then never advertised: the index could not verify what it fetched)
    metadata_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"filename": self.filename, "url": self.url}
        for name in (
            "sha256",
            "size",
            "upload_time",
            "requires_python",
            "yanked",
            "metadata_sha256",
        ):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UpstreamFile:
        """The file `to_json` wrote; InvalidUpstreamPage if `data` is not one."""
        try:
            size = data.get("size")
            file = cls(
                filename=_str(data["filename"]),
                url=_str(data["url"]),
                sha256=_opt_str(data.get("sha256")),
                size=None if size is None else _size(size),
                upload_time=_opt_str(data.get("upload_time")),
                requires_python=_opt_str(data.get("requires_python")),
                yanked=_opt_str(data.get("yanked")),
                metadata_sha256=_opt_str(data.get("metadata_sha256")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InvalidUpstreamPage(f"not a stored upstream file: {e}") from e
        return file


@dataclass(frozen=True, slots=True)
class UpstreamPage:
    """An upstream's project page: its files in the upstream's order."""

    name: NormalizedName
    files: tuple[UpstreamFile, ...]  # upstream order; duplicate filenames: first kept
    versions: tuple[str, ...] | None = None  # PEP 700 `versions` when the upstream gave them
    #: PEP 792 project status and reason, as the upstream gave them (JSON or HTML meta tags)
    status: tuple[str, str | None] | None = None
    _by_name: dict[str, UpstreamFile] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, UpstreamFile] = {}
        for file in self.files:
            by_name.setdefault(file.filename, file)
        object.__setattr__(self, "_by_name", by_name)

    def file(self, filename: str) -> UpstreamFile | None:
        """The file the page lists under `filename`, if any."""
        return self._by_name.get(filename)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "files": [f.to_json() for f in self.files]}
        if self.versions is not None:
            data["versions"] = list(self.versions)
        if self.status is not None:
            data["status"] = list(self.status)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UpstreamPage:
        """The page `to_json` wrote; InvalidUpstreamPage if `data` is not one."""
        try:
            files = data["files"]
            versions = data.get("versions")
            if not isinstance(files, list) or not (versions is None or isinstance(versions, list)):
                raise TypeError("`files` or `versions` is not a list")
            status = data.get("status")  # absent in pages stored before it was kept
            return cls(
                name=normalize_project_name(_str(data["name"])),
                files=tuple(UpstreamFile.from_json(f) for f in files),
                versions=None if versions is None else tuple(_str(v) for v in versions),
                status=None if status is None else _stored_status(status),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            if isinstance(e, InvalidUpstreamPage):
                raise
            raise InvalidUpstreamPage(f"not a stored upstream page: {e}") from e


def _stored_status(value: object) -> tuple[str, str | None]:
    if not isinstance(value, list) or len(value) != 2:
        raise TypeError("`status` is not a [status, reason] pair")
    status = _project_status(value[0], value[1])
    if status is None:
        raise ValueError(f"{value[0]!r:.80} is not a PEP 792 status")
    return status


def _project_status(status: object, reason: object) -> tuple[str, str | None] | None:
    """A PEP 792 status and reason (a string, else None); None for an unknown status."""
    from serverless_pypi.core.policy import STATUSES

    if not isinstance(status, str) or status not in STATUSES:
        return None
    return status, reason if isinstance(reason, str) and reason else None


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt_str(value: object) -> str | None:
    return None if value is None else _str(value)


def _size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a size: {value!r}")
    return value


# --- reading a page -------------------------------------------------------------------------


def _media_type(content_type: str) -> tuple[str, str | None]:
    """The media type of a Content-Type header, in lower case, and its charset parameter."""
    media, *params = content_type.split(";")
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return media.strip().lower(), charset


def parse_page(data: bytes, content_type: str, page_url: str, name: NormalizedName) -> UpstreamPage:
    """The project page `name` an upstream answered with `data` at `page_url`.

    PEP 691 JSON when `content_type` is JSON (`application/vnd.pypi.simple.v1+json`, or
    `application/json`), PEP 503 HTML when it is `text/html` or the PEP 691 HTML type; any
    other type, a body that does not parse, a page of another project or of an API major
    version this index does not know (PEP 629) raises InvalidUpstreamPage.
    """
    if len(data) > MAX_PAGE_BYTES:
        raise InvalidUpstreamPage(
            f"the page of {name} is {len(data)} bytes long, over the limit of {MAX_PAGE_BYTES}"
        )
    media, charset = _media_type(content_type)
    if media in JSON_TYPES:
        files, versions, status = _parse_json(data, page_url, name)
    elif media in HTML_TYPES:
        (files, status), versions = _parse_html(data, charset, page_url, name), None
    else:
        raise InvalidUpstreamPage(
            f"the page of {name} is of type {content_type[:100]!r}, not a simple API page "
            f"({JSON_TYPE} or text/html)"
        )
    return UpstreamPage(name, _first_of_each(files), versions, status)


def _first_of_each(files: Iterable[UpstreamFile]) -> tuple[UpstreamFile, ...]:
    seen: dict[str, UpstreamFile] = {}
    for file in files:
        seen.setdefault(file.filename, file)
    return tuple(seen.values())


def _check_api_version(version: object, name: NormalizedName) -> None:
    """PEP 629: a client must refuse a page of a major version it does not know."""
    if not isinstance(version, str):
        return  # absent or malformed: PEP 629 says to assume version 1.0
    major = version.partition(".")[0].strip()
    if major.isdigit() and int(major) != 1:
        raise InvalidUpstreamPage(
            f"the page of {name} is of simple API version {version[:20]!r}: only 1.x is read"
        )


def _absolute(base: str, href: str) -> tuple[str, str] | None:
    """The link `href` resolved against `base`, without fragment, and its fragment; None
    unless it is an http(s) URL."""
    try:
        parts = urlsplit(urljoin(base, href.strip()))
    except ValueError:  # a malformed IPv6 netloc, a port out of range
        return None
    if parts.scheme not in _URL_SCHEMES or not parts.netloc:
        return None
    return urlunsplit(parts._replace(fragment="")), parts.fragment


def _filename_of(url: str) -> str | None:
    """PEP 503: the file name is the last path segment of the URL (what installers use)."""
    segment = urlsplit(url).path.rsplit("/", 1)[-1]
    try:
        return check_filename(unquote(segment, errors="strict"))
    except (InvalidFilename, UnicodeDecodeError):
        return None


def _sha256(value: object) -> str | None:
    """A sha256 hex digest, lowercased; None for anything else."""
    if isinstance(value, str) and _SHA256.fullmatch(value):
        return value.lower()
    return None


class _Dropped(Exception):
    """A link that is kept off the page (unsafe name, non-http URL, malformed hash)."""


# PEP 691 JSON


def _parse_json(
    data: bytes, page_url: str, name: NormalizedName
) -> tuple[list[UpstreamFile], tuple[str, ...] | None, tuple[str, str | None] | None]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise InvalidUpstreamPage(f"the page of {name} is not valid JSON: {e}") from None
    if not isinstance(document, dict):
        raise InvalidUpstreamPage(f"the page of {name} is not a JSON object")
    meta = document.get("meta")
    if isinstance(meta, dict):
        _check_api_version(meta.get("api-version"), name)
    _check_name(document.get("name"), name)
    entries = document.get("files")
    if not isinstance(entries, list):
        raise InvalidUpstreamPage(f"the page of {name} has no `files` list (PEP 691)")
    files = []
    for entry in entries:
        try:
            files.append(_json_file(entry, page_url))
        except _Dropped:
            continue
    # PEP 792 `project-status: {"status", "reason"?}`; an unknown status is not passed on
    found = document.get("project-status")
    status = (
        _project_status(found.get("status"), found.get("reason"))
        if isinstance(found, dict)
        else None
    )
    versions = document.get("versions")
    if isinstance(versions, list) and all(isinstance(v, str) for v in versions):
        return files, tuple(versions), status
    return files, None, status


def _check_name(value: object, name: NormalizedName) -> None:
    """PEP 691 `name` is the normalized name: a page of another project is refused."""
    if not isinstance(value, str):
        return
    try:
        found = normalize_project_name(value)
    except InvalidProjectName:
        found = None
    if found != name:
        raise InvalidUpstreamPage(f"asked for the page of {name}, got one of {value[:200]!r}")


def _json_file(entry: object, page_url: str) -> UpstreamFile:
    if not isinstance(entry, dict):
        raise _Dropped
    filename, href = entry.get("filename"), entry.get("url")
    if not isinstance(filename, str) or not isinstance(href, str):
        raise _Dropped
    try:
        check_filename(filename)
    except InvalidFilename:
        raise _Dropped from None
    resolved = _absolute(page_url, href)
    if resolved is None:
        raise _Dropped
    hashes = entry.get("hashes")
    sha256 = None
    if isinstance(hashes, dict) and "sha256" in hashes:
        sha256 = _sha256(hashes["sha256"])
        if sha256 is None:
            raise _Dropped  # a hash that is not one: the page lies about this file
    size = entry.get("size")
    upload_time = entry.get("upload-time")
    requires_python = entry.get("requires-python")
    # PEP 714: `core-metadata`, and the PEP 658 name when an index sends only that
    metadata = (
        entry["core-metadata"] if "core-metadata" in entry else entry.get("dist-info-metadata")
    )
    return UpstreamFile(
        filename=filename,
        url=resolved[0],
        sha256=sha256,
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
        upload_time=upload_time
        if isinstance(upload_time, str) and _UPLOAD_TIME.fullmatch(upload_time)
        else None,
        requires_python=requires_python
        if isinstance(requires_python, str) and requires_python
        else None,
        yanked=_json_yanked(entry.get("yanked")),
        metadata_sha256=_sha256(metadata.get("sha256")) if isinstance(metadata, dict) else None,
    )


def _json_yanked(value: object) -> str | None:
    """PEP 592 / PEP 691: `true` or a reason string means yanked; `false` or absent not."""
    if value is True:
        return ""
    if isinstance(value, str):
        return value
    return None


# PEP 503 HTML


def _parse_html(
    data: bytes, charset: str | None, page_url: str, name: NormalizedName
) -> tuple[list[UpstreamFile], tuple[str, str | None] | None]:
    import codecs

    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = "utf-8"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as e:
        raise InvalidUpstreamPage(f"the page of {name} is not valid {codec}: {e}") from None
    parser = _link_parser()()
    try:
        parser.feed(text)
        parser.close()
    except (AssertionError, ValueError) as e:  # html.parser's few refusals
        raise InvalidUpstreamPage(f"the page of {name} is not HTML a parser reads: {e}") from None
    if parser.api_version is not None:
        _check_api_version(parser.api_version, name)
    base = page_url
    if parser.base is not None:
        resolved = _absolute(page_url, parser.base)
        if resolved is not None:
            base = resolved[0]
    # PEP 792: `pypi:project-status` and `pypi:project-status-reason` meta tags
    status = _project_status(parser.status, parser.status_reason)
    return list(_html_files(parser.links, base)), status


def _html_files(links: list[dict[str, str | None]], base: str) -> Iterator[UpstreamFile]:
    for attrs in links:
        try:
            yield _html_file(attrs, base)
        except _Dropped:
            continue


def _html_file(attrs: dict[str, str | None], base: str) -> UpstreamFile:
    href = attrs.get("href")
    if not href:
        raise _Dropped
    resolved = _absolute(base, href)
    if resolved is None:
        raise _Dropped
    url, fragment = resolved
    filename = _filename_of(url)
    if filename is None:
        raise _Dropped
    # PEP 503: the URL may carry `#<hashname>=<hashvalue>`; only sha256 is kept
    hash_name, _, hash_value = fragment.partition("=")
    sha256 = None
    if hash_name == "sha256":
        sha256 = _sha256(hash_value)
        if sha256 is None:
            raise _Dropped
    # PEP 714: `data-core-metadata`, else the PEP 658 `data-dist-info-metadata`
    metadata = (
        attrs["data-core-metadata"]
        if "data-core-metadata" in attrs
        else attrs.get("data-dist-info-metadata")
    )
    metadata_sha256 = None
    if metadata is not None:
        key, _, value = metadata.partition("=")
        metadata_sha256 = _sha256(value) if key.strip() == "sha256" else None
    # html.parser has already unescaped the attribute values (`&lt;` is `<` again)
    requires_python = attrs.get("data-requires-python")
    yanked = None
    if "data-yanked" in attrs:  # PEP 592: present means yanked, its value is the reason
        yanked = attrs["data-yanked"] or ""
    return UpstreamFile(
        filename=filename,
        url=url,
        sha256=sha256,
        requires_python=requires_python or None,
        yanked=yanked,
        metadata_sha256=metadata_sha256,
    )


class _Links(Protocol):
    """What `_parse_html` reads of the parser `_link_parser` makes."""

    links: list[dict[str, str | None]]
    base: str | None
    api_version: str | None
    status: str | None
    status_reason: str | None

    def feed(self, data: str) -> None: ...

    def close(self) -> None: ...


#: the meta tags read, by name: the parser attribute each sets
_META = {
    "pypi:repository-version": "api_version",  # PEP 629
    "pypi:project-status": "status",  # PEP 792
    "pypi:project-status-reason": "status_reason",
}


def _read_meta(parser: _Links, values: dict[str, str | None]) -> None:
    """Keep the content of a meta tag `_META` names (the first of each; the last
    `pypi:repository-version`, as before)."""
    attribute = _META.get(values.get("name") or "")
    if attribute is None:
        return
    if attribute == "api_version" or getattr(parser, attribute) is None:
        setattr(parser, attribute, values.get("content"))


@functools.cache
def _link_parser() -> Callable[[], _Links]:
    """The HTMLParser subclass that reads links, built at the first HTML page: `html.parser`
    (and its entity table) is not imported on the way to serving a JSON page."""
    from html.parser import HTMLParser

    class LinkParser(HTMLParser):
        """Collects the attributes of every `<a>`, the first `<base href>`, the PEP 629
        `pypi:repository-version` and the PEP 792 `pypi:project-status(-reason)`."""

        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.links: list[dict[str, str | None]] = []
            self.base: str | None = None
            self.api_version: str | None = None
            self.status: str | None = None
            self.status_reason: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                found: dict[str, str | None] = {}
                for key, value in attrs:
                    found.setdefault(key, value)  # the first of a repeated attribute
                self.links.append(found)
            elif tag == "base" and self.base is None:
                # HTML: the document's base URL is that of the first <base> with an href
                href = dict(attrs).get("href")
                if href:
                    self.base = href
            elif tag == "meta":
                _read_meta(self, dict(attrs))

    return LinkParser


# --- the page the index serves --------------------------------------------------------------


def _versions(files: Iterable[UpstreamFile]) -> list[str]:
    """PEP 700 `versions` from file names (packaging), ascending."""
    from packaging.version import InvalidVersion

    from serverless_pypi.core.names import parse_distribution_filename

    found = set()
    for file in files:
        try:
            found.add(parse_distribution_filename(file.filename).version)
        except (InvalidFilename, InvalidVersion):
            continue
    return [str(v) for v in sorted(found)]


def _entry(file: UpstreamFile, *, metadata: bool) -> dict[str, Any]:
    """One file of the page, keyed in the order `core.render` writes them."""
    entry: dict[str, Any] = {
        "filename": file.filename,
        # the index's own stable URL, relative to the page: lockfiles record the index
        "url": file_url(file.filename),
        # PEP 691: `hashes` is always present, possibly empty
        "hashes": {"sha256": file.sha256} if file.sha256 else {},
    }
    if file.size is not None:
        entry["size"] = file.size  # PEP 700
    if file.upload_time is not None:
        entry["upload-time"] = file.upload_time  # PEP 700: the upstream's string, exactly
    # PEP 740: the upstream's provenance is not relayed (it names the upstream's files)
    entry["provenance"] = None
    if file.requires_python:
        entry["requires-python"] = file.requires_python
    if metadata and file.metadata_sha256:
        # PEP 714: JSON uses `core-metadata` only; advertised only when the index serves it
        entry["core-metadata"] = {"sha256": file.metadata_sha256}
    if file.yanked is not None:
        # PEP 592 / PEP 691: true, or the reason as a non-empty string
        entry["yanked"] = file.yanked or True
    return entry


def page_model(page: UpstreamPage, *, metadata: bool) -> dict[str, Any]:
    """The PEP 691 project page the index serves for `page` (the shape of
    `core.render.project_page`, so `render_json` and `render_html` render it).

    `metadata`: whether the index serves the `.metadata` files the upstream offers with a
    sha256 (only then is `core-metadata` advertised: PEP 658 clients fail hard on a 404).
    """
    model: dict[str, Any] = {
        "meta": {"api-version": API_VERSION},
        "name": page.name,
        "versions": list(page.versions) if page.versions is not None else _versions(page.files),
        "files": [_entry(f, metadata=metadata) for f in page.files],
    }
    if page.status is not None:
        # PEP 792: an upstream project's status passes through
        status, reason = page.status
        model["project-status"] = {"status": status, **({"reason": reason} if reason else {})}
    return model
