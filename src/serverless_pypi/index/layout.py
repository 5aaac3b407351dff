"""Where things live in a store.

Distributions keep the reference layout: `<project folder>/<file>` one level deep, with the
project list as `index.html` at the root. Everything the index derives lives under
`.serverless-pypi/`, a name no valid project can take (project names cannot start with a dot),
so derived data never shows up as a project or a file.

    index.html                               project list (HTML), as the reference serves it
    .serverless-pypi/projects.json           project list (source of truth)
    .serverless-pypi/projects/<name>.json    a project's files and derived data (truth)
    .serverless-pypi/pages/<name>.html.gz    its rendered pages, gzip-compressed
    .serverless-pypi/pages/<name>.json.gz
    .serverless-pypi/metadata/<name>/<file>.metadata    PEP 658 core metadata
    .serverless-pypi/tokens.json             access tokens (hashed)
"""

from __future__ import annotations

from serverless_pypi.core.names import NormalizedName

__all__ = [
    "MANIFESTS",
    "METADATA",
    "RESERVED_PREFIX",
    "ROOT_HTML",
    "ROOT_LIST",
    "TOKENS",
    "distribution_key",
    "is_derived",
    "manifest_key",
    "metadata_key",
    "metadata_prefix",
    "page_key",
    "split_key",
]

RESERVED_PREFIX = ".serverless-pypi/"
ROOT_HTML = "index.html"
ROOT_LIST = RESERVED_PREFIX + "projects.json"
TOKENS = RESERVED_PREFIX + "tokens.json"
MANIFESTS = RESERVED_PREFIX + "projects/"
METADATA = RESERVED_PREFIX + "metadata/"


def manifest_key(name: NormalizedName) -> str:
    return f"{MANIFESTS}{name}.json"


def page_key(name: NormalizedName, *, json: bool) -> str:
    return f"{RESERVED_PREFIX}pages/{name}.{'json' if json else 'html'}.gz"


def metadata_prefix(name: NormalizedName) -> str:
    return f"{METADATA}{name}/"


def metadata_key(name: NormalizedName, filename: str) -> str:
    return f"{metadata_prefix(name)}{filename}.metadata"


def distribution_key(folder: str, filename: str) -> str:
    return f"{folder}/{filename}"


def is_derived(key: str) -> bool:
    """Keys the index writes itself (never distributions, never indexed)."""
    return key.startswith(RESERVED_PREFIX) or key == ROOT_HTML


def split_key(key: str) -> tuple[str, str] | None:
    """`(folder, filename)` for a key one level deep, else None."""
    folder, slash, filename = key.partition("/")
    if not slash or not folder or not filename or "/" in filename:
        return None
    return folder, filename
