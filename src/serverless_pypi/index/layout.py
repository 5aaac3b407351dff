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
    .serverless-pypi/provenance/<name>/<file>.provenance   PEP 740 provenance (attestations)
    .serverless-pypi/tokens.json             access tokens (hashed)
    .serverless-pypi/publishers.json         trusted publishers (OIDC issuers and claims)
    .serverless-pypi/oidc/used/<sha256>      one marker per OIDC JWT exchanged (used once)
    .serverless-pypi/policy.json             the policies in force (core.policy)
    .serverless-pypi/upstream/pages/<name>.json                 cached upstream page
    .serverless-pypi/upstream/files/<name>/<sha256>/<file>      pulled-through copy (verified)
    .serverless-pypi/upstream/metadata/<name>/<sha256>/<file>.metadata   its core metadata
    .serverless-pypi/sessions/<sid>.json     an upload session (PEP 694), changed by CAS
    .serverless-pypi/sessions/<sid>/files/<file>            its staged bytes
    .serverless-pypi/sessions/<sid>/files/<file>.metadata   their core metadata
    .serverless-pypi/sessions/<sid>/files/<file>.<sha256>.provenance   PEP 740, verified
    .serverless-pypi/sessions/releases/<name>/<version>.json   the live session of a release
    .serverless-pypi/publishing/<name>/<version>.json   a release being published: its files

Pulled-through copies live apart from published files, under the reserved prefix, so no
project can shadow them or be confused with them; the sha256 in a key means a copy can only
be served for the exact digest the current upstream page lists.
"""

from __future__ import annotations

import re

from serverless_pypi.core.names import NormalizedName, check_filename

__all__ = [
    "MANIFESTS",
    "METADATA",
    "OIDC_USED",
    "POLICY",
    "PROVENANCE",
    "PUBLISHERS",
    "PUBLISHING",
    "RESERVED_PREFIX",
    "ROOT_HTML",
    "ROOT_LIST",
    "SESSIONS",
    "SESSION_RELEASES",
    "TOKENS",
    "UPSTREAM",
    "UPSTREAM_FILES",
    "UPSTREAM_METADATA",
    "UPSTREAM_PAGES",
    "distribution_key",
    "is_derived",
    "manifest_key",
    "metadata_key",
    "metadata_prefix",
    "oidc_used_key",
    "page_key",
    "provenance_key",
    "publishing_key",
    "session_key",
    "session_prefix",
    "session_provenance_key",
    "session_release_key",
    "split_key",
    "upstream_file_key",
    "upstream_metadata_key",
    "upstream_page_key",
]

RESERVED_PREFIX = ".serverless-pypi/"
ROOT_HTML = "index.html"
ROOT_LIST = RESERVED_PREFIX + "projects.json"
TOKENS = RESERVED_PREFIX + "tokens.json"
#: trusted publishers (auth.publishers), changed by compare-and-swap like the tokens
PUBLISHERS = RESERVED_PREFIX + "publishers.json"
#: markers of OIDC JWTs already exchanged for a token, created with If-None-Match
OIDC_USED = RESERVED_PREFIX + "oidc/used/"
#: the policy document (core.policy), changed by compare-and-swap only
POLICY = RESERVED_PREFIX + "policy.json"
MANIFESTS = RESERVED_PREFIX + "projects/"
METADATA = RESERVED_PREFIX + "metadata/"
#: PEP 740 provenance objects of published files (verified attestations and their publisher)
PROVENANCE = RESERVED_PREFIX + "provenance/"
UPSTREAM = RESERVED_PREFIX + "upstream/"
UPSTREAM_PAGES = UPSTREAM + "pages/"
UPSTREAM_FILES = UPSTREAM + "files/"
UPSTREAM_METADATA = UPSTREAM + "metadata/"
#: upload sessions (PEP 694, index.sessions): documents, staged files, release claims
SESSIONS = RESERVED_PREFIX + "sessions/"
SESSION_RELEASES = SESSIONS + "releases/"
#: markers of releases being published (index.release): the indexer leaves their files alone
PUBLISHING = RESERVED_PREFIX + "publishing/"
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)


def manifest_key(name: NormalizedName) -> str:
    return f"{MANIFESTS}{name}.json"


def page_key(name: NormalizedName, *, json: bool) -> str:
    return f"{RESERVED_PREFIX}pages/{name}.{'json' if json else 'html'}.gz"


def metadata_prefix(name: NormalizedName) -> str:
    return f"{METADATA}{name}/"


def metadata_key(name: NormalizedName, filename: str) -> str:
    return f"{metadata_prefix(name)}{filename}.metadata"


def provenance_key(name: NormalizedName, filename: str) -> str:
    """The PEP 740 provenance object of the project's file `filename`."""
    return f"{PROVENANCE}{name}/{check_filename(filename)}.provenance"


def upstream_page_key(name: NormalizedName) -> str:
    return f"{UPSTREAM_PAGES}{name}.json"


def _digest(sha256: str) -> str:
    """A lowercase sha256 hex digest, the one path segment of a key it may be."""
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"{sha256[:80]!r} is not a lowercase sha256 hex digest")
    return sha256


def oidc_used_key(sha256: str) -> str:
    """The marker of one exchanged OIDC JWT, named by the sha256 of its identity."""
    return f"{OIDC_USED}{_digest(sha256)}"


def upstream_file_key(name: NormalizedName, sha256: str, filename: str) -> str:
    return f"{UPSTREAM_FILES}{name}/{_digest(sha256)}/{check_filename(filename)}"


def upstream_metadata_key(name: NormalizedName, metadata_sha256: str, filename: str) -> str:
    """Core metadata of the upstream file `filename`, under the sha256 of the metadata."""
    return (
        f"{UPSTREAM_METADATA}{name}/{_digest(metadata_sha256)}/{check_filename(filename)}.metadata"
    )


def session_key(sid: str) -> str:
    """The document of the upload session `sid`."""
    return f"{SESSIONS}{sid}.json"


def session_prefix(sid: str) -> str:
    """Where the session `sid` keeps its staged files (and their core metadata)."""
    return f"{SESSIONS}{sid}/"


def session_provenance_key(sid: str, filename: str, sha256: str) -> str:
    """The provenance object (PEP 740) of the staged file `filename`, whose sha256 is
    `sha256`: named by its digest, so attestations posted twice at once never mix."""
    return f"{session_prefix(sid)}files/{check_filename(filename)}.{_digest(sha256)}.provenance"


def _release(version: str) -> str:
    """One spelling for every spelling of a version that PEP 440 holds equal (`1.0` and
    `1.0.0` name one release): packaging's `canonicalize_version`."""
    from packaging.utils import canonicalize_version

    return canonicalize_version(version)


def session_release_key(name: NormalizedName, version: str) -> str:
    """The claim of the one live session of a release."""
    return f"{SESSION_RELEASES}{name}/{_release(version)}.json"


def publishing_key(name: NormalizedName, version: str) -> str:
    """The marker of a release being published."""
    return f"{PUBLISHING}{name}/{_release(version)}.json"


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
