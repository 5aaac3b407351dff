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
from typing import TYPE_CHECKING, Literal, NewType

if TYPE_CHECKING:
    from packaging.utils import NormalizedName
    from packaging.version import Version
else:
    # the same NewType as packaging's: the identity at run time
    NormalizedName = NewType("NormalizedName", str)


__all__ = [
    "MAX_FILENAME_LENGTH",
    "MAX_PROJECT_NAME_LENGTH",
    "Distribution",
    "InvalidFilename",
    "InvalidProjectName",
    "NormalizedName",
    "check_filename",
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
            name, version, _build, _tags = parse_wheel_filename(filename)
            return Distribution(filename, name, version, "wheel")
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            return Distribution(filename, name, version, "sdist")
    except (InvalidWheelFilename, InvalidSdistFilename) as e:
        raise InvalidFilename(f"{filename!r} is not a valid distribution file name: {e}") from e
    raise InvalidFilename(
        f"{filename!r} is not a distribution: expected a .whl, .tar.gz or .zip file"
    )
