"""What to mirror, as data: the projects and files that names, requirements and lock files ask for.

`serverless-pypi mirror ARG...` reads each ARG as one of four kinds of input, parsed here
without any I/O (the command reads the files):

- a project name or a PEP 508 requirement (`requests`, `requests>=2.30`): its page and the
  files of the newest version that matches (every matching version on request);
- a requirements file (pip's format: one requirement a line, comments, `\\` continuations,
  `--hash=sha256:...` pins; option lines such as `-r` or `--index-url` are skipped with a note);
- a `uv.lock`: the sdist and wheels of every package whose source is a registry;
- a `pylock.toml` (PEP 751): the sdist and wheels of every package.

A lock file names exact files with their sha256: those files and nothing else are mirrored,
and each must be listed upstream with the same digest. Whatever a lock file holds, a malformed
one is refused with an `InvalidWanted` that names the file, the entry and what is wrong.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from serverless_pypi.core.names import (
    InvalidFilename,
    InvalidProjectName,
    NormalizedName,
    normalize_project_name,
    parse_distribution_filename,
)

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

__all__ = [
    "InvalidWanted",
    "LockedFile",
    "Wanted",
    "WantedProject",
    "input_kind",
    "parse_pylock",
    "parse_requirement",
    "parse_requirements",
    "parse_uv_lock",
    "select_files",
]

InputKind = Literal["uv.lock", "pylock", "requirements"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
# PEP 751: `pylock.toml`, or `pylock.<name>.toml` with a name of its own
_PYLOCK = re.compile(r"pylock\.([^.\s]+\.)?toml")
# pip: a comment starts with `#` at the start of a line or after whitespace
_COMMENT = re.compile(r"(^|\s+)#.*$")
# a lock file beyond this many entries is not a lock file (a bound for hostile input)
MAX_ENTRIES = 100_000


class InvalidWanted(ValueError):
    """An input that does not say what to mirror; the message names it and what is wrong."""


@dataclass(frozen=True, slots=True)
class WantedProject:
    """A project asked for by name or requirement: which of its versions to mirror."""

    name: NormalizedName
    #: the versions that match (an empty set: any)
    specifier: SpecifierSet
    #: where it was asked for (the argument, or `file:line`), for messages
    source: str
    #: sha256 digests a requirements file pins with `--hash`: only those files are wanted
    hashes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class LockedFile:
    """A distribution file a lock file names, with the sha256 it records."""

    name: NormalizedName
    filename: str
    sha256: str
    #: where it is named, for messages (`uv.lock: package requests 2.32.3`)
    source: str


@dataclass(frozen=True, slots=True)
class Wanted:
    """What one or more inputs ask to mirror, and the notes about what they skipped."""

    projects: tuple[WantedProject, ...] = ()
    files: tuple[LockedFile, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __add__(self, other: Wanted) -> Wanted:
        return Wanted(
            self.projects + other.projects, self.files + other.files, self.notes + other.notes
        )

    def names(self) -> list[NormalizedName]:
        """Every project named, once each, in the order first named."""
        seen = dict.fromkeys([p.name for p in self.projects] + [f.name for f in self.files])
        return list(seen)


def input_kind(filename: str) -> InputKind:
    """How a file is read, from its name: `uv.lock`, a PEP 751 `pylock.toml` (or
    `pylock.<name>.toml`), else a requirements file."""
    if filename == "uv.lock":
        return "uv.lock"
    if _PYLOCK.fullmatch(filename):
        return "pylock"
    return "requirements"


# --- names and requirements -------------------------------------------------------------------


def parse_requirement(text: str, source: str, hashes: Iterable[str] = ()) -> WantedProject | str:
    """The project a PEP 508 requirement asks for, or a note saying why it is skipped (a direct
    URL is not fetched from an index); raises InvalidWanted if it is not a requirement.

    Extras and environment markers are ignored: a mirror serves every environment.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(text)
    except InvalidRequirement as e:
        raise InvalidWanted(f"{source}: {text!r} is not a project name or requirement: {e}") from e
    try:
        name = normalize_project_name(requirement.name)
    except InvalidProjectName as e:
        raise InvalidWanted(f"{source}: {e}") from e
    if requirement.url:
        return f"{source}: skipped {requirement.name}: a direct URL is not fetched from an index"
    return WantedProject(name, requirement.specifier, source, frozenset(hashes))


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """pip's requirements-file lines: `\\` at the end joins the next line; comments removed."""
    start, parts = 0, list[str]()
    for number, line in enumerate(text.splitlines(), 1):
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        joined = _COMMENT.sub("", " ".join(parts)).strip()
        parts = []
        if joined:
            yield start, joined
    if parts:
        joined = _COMMENT.sub("", " ".join(parts)).strip()
        if joined:
            yield start, joined


def _split_options(line: str, source: str) -> tuple[str, list[str]]:
    """A requirement line's requirement and its `--hash` sha256 digests (other options of the
    line are ignored; a hash of another algorithm cannot be checked against an index)."""
    words = line.split()
    first_option = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
    requirement = " ".join(words[:first_option])
    hashes: list[str] = []
    options = words[first_option:]
    for i, word in enumerate(options):
        if word == "--hash" and i + 1 < len(options):
            value = options[i + 1]
        elif word.startswith("--hash="):
            value = word.removeprefix("--hash=")
        else:
            continue
        algorithm, _, digest = value.partition(":")
        if algorithm == "sha256":
            if not _SHA256.fullmatch(digest.lower()):
                raise InvalidWanted(f"{source}: --hash={value!r} is not a sha256 digest")
            hashes.append(digest.lower())
    return requirement, hashes


def parse_requirements(text: str, source: str) -> Wanted:
    """The projects a requirements file asks for (pip's format); `source` names the file."""
    projects: list[WantedProject] = []
    notes: list[str] = []
    for number, line in _logical_lines(text):
        where = f"{source}:{number}"
        if line.startswith("-"):
            # never the option's value: an --index-url can carry credentials
            option = line.split()[0].partition("=")[0]
            notes.append(f"{where}: skipped an options line ({option} ...)")
            continue
        requirement, hashes = _split_options(line, where)
        parsed = parse_requirement(requirement, where, hashes)
        if isinstance(parsed, str):
            notes.append(parsed)
        else:
            projects.append(parsed)
    return Wanted(tuple(projects), (), tuple(notes))


# --- lock files -------------------------------------------------------------------------------


def _load_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidWanted(f"{source}: not a valid TOML file: {e}") from e


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidWanted(f"{where} is not a table")
    return value


def _tables(value: object, where: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidWanted(f"{where} is not an array of tables")
    if len(value) > MAX_ENTRIES:
        raise InvalidWanted(f"{where} has {len(value)} entries, more than {MAX_ENTRIES}")
    return [_table(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidWanted(f"{where}: `{key}` is missing or not a string")
    return value


def _package_name(table: Mapping[str, Any], where: str) -> NormalizedName:
    raw = _string(table, "name", where)
    try:
        return normalize_project_name(raw)
    except InvalidProjectName as e:
        raise InvalidWanted(f"{where}: {e}") from e


def _filename(
    entry: Mapping[str, Any], name: NormalizedName, where: str, *, explicit: str | None = None
) -> str:
    """The distribution file name of a lock entry: `explicit` (PEP 751 `name`), else the last
    segment of its `url` or `path`; it must be a distribution of project `name`."""
    filename = explicit
    if filename is None:
        location = entry.get("url", entry.get("path"))
        if not isinstance(location, str) or not location:
            raise InvalidWanted(f"{where}: has neither a file name, a `url` nor a `path`")
        path = urlsplit(location).path if "url" in entry else location
        filename = unquote(path.replace("\\", "/").rpartition("/")[2])
    try:
        dist = parse_distribution_filename(filename)
    except InvalidFilename as e:
        raise InvalidWanted(f"{where}: {e}") from e
    if dist.project != name:
        raise InvalidWanted(f"{where}: {filename!r} is not a distribution of {name!r}")
    return filename


def _sha256(digest: object, where: str) -> str:
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
        raise InvalidWanted(f"{where}: {digest!r} is not a sha256 digest (64 hex digits)")
    return digest.lower()


def parse_uv_lock(text: str, source: str = "uv.lock") -> Wanted:
    """The files a `uv.lock` locks: the sdist and wheels of each package from a registry.

    uv's format: `version = 1`; `[[package]]` tables with `name`, `version`, a `source` table
    (`registry = URL` for an index; `editable`, `virtual`, `git`, `url`, `path` or `directory`
    otherwise, skipped with a note), `sdist = {url, hash = "sha256:<hex>", ...}` and
    `wheels = [{url, hash, ...}]`.
    """
    lock = _load_toml(text, source)
    version = lock.get("version")
    if version != 1:
        raise InvalidWanted(f"{source}: lock version {version!r} is not supported (1 is)")
    files: list[LockedFile] = []
    notes: list[str] = []
    for i, package in enumerate(_tables(lock.get("package"), f"{source}: [[package]]")):
        where = f"{source}: [[package]] {i + 1}"
        name = _package_name(package, where)
        where = f"{source}: package {name} {package.get('version', '')}".rstrip()
        origin = _table(package.get("source", {}), f"{where}: `source`")
        if "registry" not in origin:
            kind = next(iter(origin), "no source")
            notes.append(f"{where}: skipped ({kind}, not from an index)")
            continue
        for entry, label in _distributions(package, where):
            at = f"{where}: {label}"
            digest = _string(entry, "hash", at)
            algorithm, _, hexdigest = digest.partition(":")
            if algorithm != "sha256":
                raise InvalidWanted(f"{at}: hash {digest!r} is not a sha256 digest")
            # uv writes `filename` for a file of a flat index, else a `url` or `path`
            explicit = entry.get("filename")
            if explicit is not None and not isinstance(explicit, str):
                raise InvalidWanted(f"{at}: `filename` is not a string")
            filename = _filename(entry, name, at, explicit=explicit)
            files.append(LockedFile(name, filename, _sha256(hexdigest, at), where))
    return Wanted((), tuple(files), tuple(notes))


def _distributions(package: Mapping[str, Any], where: str) -> list[tuple[Mapping[str, Any], str]]:
    """A locked package's `sdist` and `wheels` tables (uv.lock and PEP 751 alike), labelled
    for messages."""
    found = [(_table(package["sdist"], f"{where}: `sdist`"), "sdist")] if "sdist" in package else []
    wheels = _tables(package.get("wheels"), where)
    return found + [(wheel, f"wheels[{j}]") for j, wheel in enumerate(wheels)]


def parse_pylock(text: str, source: str = "pylock.toml") -> Wanted:
    """The files a PEP 751 `pylock.toml` locks: each package's `sdist` and `wheels`.

    PEP 751: `lock-version = "1.0"` (a tool must refuse another major version);
    `[[packages]]` with `name`, and `sdist` / `wheels` entries with an optional `name` (else
    the file name is the last segment of `url` or `path`) and a `hashes` table; packages from
    `vcs`, `directory` or `archive` are not from an index and are skipped with a note.
    """
    lock = _load_toml(text, source)
    version = lock.get("lock-version")
    if not isinstance(version, str) or version.partition(".")[0] != "1":
        raise InvalidWanted(f"{source}: lock-version {version!r} is not supported (1.x is)")
    files: list[LockedFile] = []
    notes: list[str] = []
    for i, package in enumerate(_tables(lock.get("packages"), f"{source}: [[packages]]")):
        where = f"{source}: [[packages]] {i + 1}"
        name = _package_name(package, where)
        where = f"{source}: package {name} {package.get('version', '')}".rstrip()
        other = next((k for k in ("vcs", "directory", "archive") if k in package), None)
        if other is not None:
            notes.append(f"{where}: skipped ({other}, not from an index)")
            continue
        for entry, label in _distributions(package, where):
            at = f"{where}: {label}"
            explicit = entry.get("name")
            if explicit is not None and not isinstance(explicit, str):
                raise InvalidWanted(f"{at}: `name` is not a string")
            hashes = _table(entry.get("hashes"), f"{at}: `hashes`")
            if "sha256" not in hashes:
                raise InvalidWanted(f"{at}: has no sha256 hash (an index is checked by sha256)")
            filename = _filename(entry, name, at, explicit=explicit)
            files.append(LockedFile(name, filename, _sha256(hashes["sha256"], at), where))
    return Wanted((), tuple(files), tuple(notes))


# --- choosing the files of a page -------------------------------------------------------------


class Listed(Protocol):
    """A file as a page lists it (core.upstream.UpstreamFile is one)."""

    @property
    def filename(self) -> str: ...
    @property
    def sha256(self) -> str | None: ...
    @property
    def yanked(self) -> str | None: ...


F = TypeVar("F", bound=Listed)


def _pins(specifier: SpecifierSet, version: Version) -> bool:
    """Whether `specifier` pins `version` exactly (`==1.0` or `===1.0`, no wildcard)."""
    return any(
        s.operator in ("==", "===") and not s.version.endswith(".*") and s.contains(version)
        for s in specifier
    )


def select_files(files: Sequence[F], wanted: WantedProject, *, all_versions: bool) -> list[F]:
    """The files of `files` (a page's, in its order) that `wanted` asks for.

    With `--hash` pins: exactly the files with those digests. Otherwise every file of the
    newest version the specifier allows (of every allowed version with `all_versions`), as
    an installer chooses: pre-releases only when the specifier names one or nothing else
    matches (PEP 440, as packaging filters), yanked files only when pinned with `==` (PEP 592).
    Files whose names are not distributions are left out.
    """
    by_version: dict[Version, list[F]] = {}
    for file in files:
        try:
            version = parse_distribution_filename(file.filename).version
        except InvalidFilename:
            continue
        if wanted.hashes and file.sha256 not in wanted.hashes:
            continue
        if file.yanked is not None and not _pins(wanted.specifier, version):
            continue
        by_version.setdefault(version, []).append(file)
    if wanted.hashes:
        return [f for version in by_version for f in by_version[version]]
    matching = sorted(wanted.specifier.filter(by_version))
    chosen = matching if all_versions else matching[-1:]
    return [f for version in chosen for f in by_version[version]]
