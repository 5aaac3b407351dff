"""Project names and distribution file names.

Normalization and file-name parsing come from `packaging`; this module only adds the
checks an index needs at its edge (length bounds, path-segment safety).

`packaging` is imported when first needed, not with this module: the page a client asks for
is almost always already normalized (pip and uv request normalized URLs), and serving it then
needs no import at all, which keeps the Lambda cold start low (`packaging.utils` pulls in
`packaging.tags`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, NewType

if TYPE_CHECKING:
    from packaging.tags import Tag
    from packaging.utils import BuildTag, NormalizedName
    from packaging.version import Version
else:
    # the same NewType as packaging's: the identity at run time
    NormalizedName = NewType("NormalizedName", str)


__all__ = [
    "MAX_FILENAME_LENGTH",
    "MAX_PROJECT_NAME_LENGTH",
    "Distribution",
    "Identity",
    "InvalidFilename",
    "InvalidProjectName",
    "NonCanonicalFilename",
    "NormalizedName",
    "check_filename",
    "check_publishable_filename",
    "distribution_identity",
    "is_valid_project_name",
    "normalize_project_name",
    "parse_distribution_filename",
]

# PEP 508 / core metadata "Name": ASCII letters and digits, with ".", "_", "-" inside.
# Matched with fullmatch and re.ASCII: `$` would accept a trailing newline, and IGNORECASE
# alone lets U+212A (Kelvin sign) or U+017F match [A-Z] (packaging validates the same way).
_VALID_NAME = re.compile(r"([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])", re.IGNORECASE | re.ASCII)
# Bounds keep hostile requests cheap; no real project comes near them.
MAX_PROJECT_NAME_LENGTH = 200
MAX_FILENAME_LENGTH = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# PEP 503 normalized form: lowercase, runs of "-", "_", "." as one "-"
_NORMALIZED = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*", re.ASCII)


class InvalidProjectName(ValueError):
    """A string that is not a valid project name."""


class InvalidFilename(ValueError):
    """A file name that is unsafe as a path segment or is not a distribution."""


class NonCanonicalFilename(InvalidFilename):
    """A distribution's file name not spelled as the specifications require for new files."""

    def __init__(self, message: str, canonical: str | None = None) -> None:
        super().__init__(message)
        #: the spelling to publish the file under, when there is one
        self.canonical = canonical


def is_valid_project_name(name: str) -> bool:
    return len(name) <= MAX_PROJECT_NAME_LENGTH and _VALID_NAME.fullmatch(name) is not None


def normalize_project_name(name: str) -> NormalizedName:
    """PEP 503 normalized form of a valid project name; raises InvalidProjectName."""
    if len(name) > MAX_PROJECT_NAME_LENGTH:
        raise InvalidProjectName(
            f"project name is {len(name)} characters long, over {MAX_PROJECT_NAME_LENGTH}"
        )
    if not _VALID_NAME.fullmatch(name):
        raise InvalidProjectName(
            f"{name!r} is not a valid project name: use ASCII letters, digits and "
            "'.', '_', '-', starting and ending with a letter or digit"
        )
    if _NORMALIZED.fullmatch(name):
        return NormalizedName(name)  # what canonicalize_name would return: no work to do
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def check_filename(filename: str) -> str:
    """Return `filename` if it is safe as one path segment of a store key."""
    if not filename or filename in {".", ".."}:
        raise InvalidFilename(f"{filename!r} is not a file name")
    if len(filename.encode("utf-8", "surrogatepass")) > MAX_FILENAME_LENGTH:
        raise InvalidFilename(f"file name is longer than {MAX_FILENAME_LENGTH} bytes")
    if "/" in filename or "\\" in filename:
        raise InvalidFilename(f"{filename!r} contains a path separator")
    if _CONTROL.search(filename):
        raise InvalidFilename(f"{filename!r} contains a control character")
    if filename.startswith("."):
        raise InvalidFilename(f"{filename!r} starts with a dot")
    return filename


@dataclass(frozen=True, slots=True)
class Distribution:
    """What a distribution's file name says about it."""

    filename: str
    project: NormalizedName
    version: Version
    kind: Literal["wheel", "sdist"]
    #: wheels only: the build tag (PEP 427; `()` when there is none) and the expanded tag set
    build: BuildTag = ()
    tags: frozenset[Tag] = frozenset()

    @property
    def identity(self) -> Identity:
        return Identity(self.project, self.version, self.kind, self.build, self.tags)


@dataclass(frozen=True, slots=True)
class Identity:
    """What makes two file names one distribution: for `==<version>` an installer may take
    either, so an index holds at most one file per identity.

    Wheels: normalized project, version (compared as PEP 440 versions: `5.0` is `5.0.0`),
    build tag, and the set of tags the compressed tag set expands to (packaging lowercases
    tags, so `py3.py2-none-ANY` is `py2.py3-none-any`). Sdists: project and version.
    """

    project: NormalizedName
    version: Version
    kind: Literal["wheel", "sdist"]
    build: BuildTag = ()
    tags: frozenset[Tag] = frozenset()


def parse_distribution_filename(filename: str) -> Distribution:
    """Parse a wheel (PEP 427) or sdist (PEP 625; `.tar.gz` and legacy `.zip`) file name."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    check_filename(filename)
    try:
        if filename.endswith(".whl"):
            name, version, build, tags = parse_wheel_filename(filename)
            return Distribution(filename, name, version, "wheel", build, tags)
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return Distribution(filename, name, version, "sdist")
    except (InvalidWheelFilename, InvalidSdistFilename) as e:
        raise InvalidFilename(f"{filename!r} is not a valid distribution file name: {e}") from e
    raise InvalidFilename(
        f"{filename!r} is not a distribution: expected a .whl, .tar.gz or .zip file"
    )


@lru_cache(maxsize=65536)
def distribution_identity(filename: str) -> Identity:
    """The identity of the distribution `filename` names (raises InvalidFilename).

    Cached: the indexer and publishing compare a file with every file of its project.
    """
    return parse_distribution_filename(filename).identity


def _canonical_spelling(dist: Distribution) -> str:
    """The file name the specifications give `dist`, with `dist`'s own build tag and tag order.

    Binary distribution format, "Escaping and Unicode" (PEP 427 as amended): the project is
    its normalized name with `-` replaced by `_`, the version is in PEP 440 normalized form.
    Source distribution format (PEP 625): `{name}-{version}.tar.gz`, the same two parts.
    Tags are written lowercase, as every tool writes them (packaging compares them so).
    """
    name = dist.project.replace("-", "_")
    if dist.kind == "sdist":
        return f"{name}-{dist.version}.tar.gz"
    # already parsed by packaging: 5 or 6 dash-separated parts, tags the last three
    parts = dist.filename.removesuffix(".whl").split("-")
    build = [parts[2]] if len(parts) == 6 else []
    return "-".join([name, str(dist.version), *build, *(t.lower() for t in parts[-3:])]) + ".whl"


def check_publishable_filename(filename: str) -> Distribution:
    """The distribution `filename` names, if a new file may be published under it.

    Stricter than `parse_distribution_filename`, which also reads files already in a store:
    the name must be ASCII (no look-alikes such as U+212A KELVIN SIGN for "K"), an sdist must
    be a `.tar.gz` (PEP 625), and the name must be spelled canonically (see
    `_canonical_spelling`); NonCanonicalFilename names the spelling to use.
    """
    check_filename(filename)
    if not filename.isascii():
        odd = ", ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(filename) if not c.isascii())
        raise InvalidFilename(
            f"{filename!r} contains non-ASCII characters ({odd}): distribution file names are ASCII"
        )
    dist = parse_distribution_filename(filename)
    if dist.kind == "sdist" and not filename.endswith(".tar.gz"):
        raise NonCanonicalFilename(
            f"{filename!r} is a .zip sdist: source distributions are published as .tar.gz "
            "(PEP 625); build it with a current build backend (python -m build, uv build)"
        )
    canonical = _canonical_spelling(dist)
    if canonical != filename:
        rules = "project name normalized with '_' for '-', version normalized"
        rules = f"PEP 427: {rules}, tags lowercase" if dist.kind == "wheel" else f"PEP 625: {rules}"
        raise NonCanonicalFilename(
            f"{filename!r} is not spelled as the packaging specifications require: publish it "
            f"as {canonical!r} ({rules})",
            canonical,
        )
    return dist
