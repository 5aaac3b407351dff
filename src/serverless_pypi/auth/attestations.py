"""PEP 740 attestations: verify the ones an upload carries, and make the file's provenance.

The legacy upload's `attestations` field is a JSON array of attestation objects (PEP 740;
`uv publish` sends the `<file>.*.attestation` files beside a distribution, `twine upload
--attestations` the same). The upload is refused (400, "attestation N: why") unless every
one of them:

- is an attestation object (`pypi_attestations.Attestation`: version 1, a certificate, at
  least one transparency log entry, a DSSE envelope);
- verifies with `sigstore` against Sigstore's production trust root as the installed sigstore
  package embeds it (offline: no network at upload, no TUF refresh; a newer sigstore package
  brings a newer root): the certificate chains to Fulcio, the DSSE signature over the
  statement is the certificate's, and the Rekor entry proves the signature was logged while
  the certificate was valid;
- is an in-toto v1 statement whose single subject names the uploaded file (compared parsed,
  with `packaging`, as PEP 740 asks) and its sha256, with the predicate type
  `https://docs.pypi.org/attestations/publish/v1` or `https://slsa.dev/provenance/v1`, at
  most one of each type;
- is signed by the identity the upload must come from (`required_identities`): the trusted
  publisher that minted the upload token (as PyPI checks), or, for an ordinary token, one of
  the GitHub or GitLab trusted publishers that cover the project, when any does (else any
  identity Sigstore vouches for).

The provenance object (PEP 740) groups the attestations by the publisher the certificates
name (`publisher_of`), in the shape of `pypi_attestations.Provenance`.

`pypi_attestations` and `sigstore` are imported with this module, which only an upload that
carries attestations imports: the read path and other uploads never load them.
"""

from __future__ import annotations

import fnmatch
import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from pydantic import ValidationError
from pypi_attestations import (
    Attestation,
    ConversionError,
    GitHubPublisher,
    GitLabPublisher,
    GooglePublisher,
)
from sigstore.errors import Error as SigstoreError
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier, policy

from serverless_pypi.auth.publishers import GITHUB_ISSUER, Publisher
from serverless_pypi.core.errors import InvalidRequest
from serverless_pypi.core.http import Request

if TYPE_CHECKING:
    from cryptography.x509 import Certificate
    from sigstore.verify.policy import VerificationPolicy

__all__ = [
    "PREDICATE_TYPES",
    "AttestationCheck",
    "Identity",
    "parse_attestations",
    "provenance_for",
    "publisher_of",
    "required_identities",
]

#: the in-toto predicate types PEP 740 names
PREDICATE_TYPES = (
    "https://docs.pypi.org/attestations/publish/v1",
    "https://slsa.dev/provenance/v1",
)
_STATEMENT_V1 = "https://in-toto.io/Statement/v1"
_DSSE_TYPE = "application/vnd.in-toto+json"
# Sigstore's production TUF repository, whose trust root the sigstore package embeds
_PRODUCTION_TUF = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
# Fulcio certificate extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md)
_FULCIO = "1.3.6.1.4.1.57264.1."
_ISSUER = "1.3.6.1.4.1.57264.1.8"
_SOURCE_REPOSITORY = "1.3.6.1.4.1.57264.1.12"
_SOURCE_DIGEST = "1.3.6.1.4.1.57264.1.13"
_SOURCE_REF = "1.3.6.1.4.1.57264.1.14"
_BUILD_CONFIG = "1.3.6.1.4.1.57264.1.18"
_GOOGLE_ISSUER = "https://accounts.google.com"


@functools.cache
def _verifier() -> Verifier:
    """A verifier over the production trust root embedded in the sigstore package.

    Not `Verifier.production(offline=True)`: that one reads (and first writes) a TUF cache
    under the user's home directory, which a Lambda function cannot write, and which may
    hold a root other than the package's. Immutable once built: shared between threads.
    """
    root = resources.files("sigstore._store").joinpath(_PRODUCTION_TUF, "trusted_root.json")
    with resources.as_file(root) as path:
        return Verifier(trusted_root=TrustedRoot.from_file(str(path)))


# -- the field ---------------------------------------------------------------------------------

_JSON_TYPES = {"dict": "object", "list": "array", "str": "string", "int": "number"}


def _json_type(value: object) -> str:
    """What JSON calls the type of a parsed value (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    name = type(value).__name__
    return _JSON_TYPES.get(name, "number" if isinstance(value, float) else name)


def parse_attestations(field: str) -> list[Any]:
    """The `attestations` field as a list of JSON objects (empty: none was sent); raises
    InvalidRequest saying what is wrong with it."""
    if not field.strip():
        return []
    try:
        items = json.loads(field)
    except (ValueError, RecursionError) as e:
        raise InvalidRequest(
            f"The 'attestations' field is not valid JSON ({e}): PEP 740 makes it a JSON array "
            "of attestation objects."
        ) from None
    if not isinstance(items, list):
        raise InvalidRequest(
            f"The 'attestations' field is a JSON {_json_type(items)}, not an array of "
            "attestation objects (PEP 740)."
        )
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise InvalidRequest(
                f"attestation {number}: a JSON {_json_type(item)}, not an attestation object "
                "(PEP 740)."
            )
    if len(items) > len(PREDICATE_TYPES):
        raise InvalidRequest(
            f"The upload carries {len(items)} attestations: at most one of each type "
            f"({', '.join(PREDICATE_TYPES)})."
        )
    return items


# -- who must have signed -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """The signing identities an upload's attestations must come from (any one of them), and
    why; no publishers: any identity Sigstore vouches for."""

    publishers: tuple[Publisher, ...] = ()
    why: str = ""
    #: the trusted publisher that minted the upload token (its claims were checked then)
    minted: Publisher | None = None


def required_identities(
    project: str, minted_by: str | None, publishers: Iterable[Publisher]
) -> Identity:
    """Who must have signed the attestations of an upload to `project`: the trusted publisher
    `minted_by` (the id of the publisher that minted the upload token), else the write
    publishers of kind GitHub or GitLab that cover the project (a holder of an ordinary token
    could otherwise attach the attestation of an unrelated repository). Raises InvalidRequest
    when the minting publisher no longer exists."""
    known = list(publishers)
    if minted_by is not None:
        found = next((p for p in known if p.id == minted_by), None)
        if found is None:
            raise InvalidRequest(
                f"The upload token was minted for the trusted publisher {minted_by}, which no "
                "longer exists: its attestations cannot be checked against it."
            )
        why = f"the upload token was minted for the trusted publisher {found.id}"
        return Identity((found,), why, minted=found)
    covering = tuple(
        p
        for p in known
        if p.scope == "write"
        and p.kind in ("github", "gitlab")
        and any(fnmatch.fnmatchcase(project, pattern) for pattern in p.projects)
    )
    if not covering:
        return Identity()
    ids = ", ".join(p.id for p in covering)
    return Identity(
        covering, f"the project {project!r} is published by the trusted publishers {ids}"
    )


class _BuildConfig:
    """Sigstore policy: the certificate's Build Config URI is `prefix@<ref or commit>` of the
    certificate's own source ref or digest (how the workflow file is named in a Fulcio
    certificate, as pypi-attestations checks it for GitHub)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def verify(self, cert: Certificate) -> None:
        claims = _claims(cert)
        uri = claims.get(_BUILD_CONFIG)
        refs = [claims[oid] for oid in (_SOURCE_REF, _SOURCE_DIGEST) if oid in claims]
        if uri is None or not any(uri == f"{self.prefix}@{ref}" for ref in refs):
            from sigstore.errors import VerificationError

            raise VerificationError(
                f"the certificate's Build Config URI ({uri}) is not the workflow {self.prefix}"
            )


class _Ref:
    """Sigstore policy: the certificate's Source Repository Ref is the branch or tag `ref`
    (GitLab's `ref` claim names it bare, Fulcio as `refs/heads/...` or `refs/tags/...`)."""

    def __init__(self, ref: str) -> None:
        self.refs = (f"refs/heads/{ref}", f"refs/tags/{ref}")

    def verify(self, cert: Certificate) -> None:
        found = _claims(cert).get(_SOURCE_REF)
        if found not in self.refs:
            from sigstore.errors import VerificationError

            raise VerificationError(
                f"the certificate's Source Repository Ref is {found}, not {' or '.join(self.refs)}"
            )


class _AnyIdentity:
    """Sigstore policy that asks nothing of the identity (an upload with an ordinary token
    and no trusted publisher for the project): the signature is still verified in full."""

    def verify(self, cert: Certificate) -> None:
        return None


def _host_of(issuer: str) -> str:
    """`https://HOST` of an issuer URL (GitHub Enterprise's `https://HOST/_services/token`)."""
    scheme, _, rest = issuer.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _policy_for(publisher: Publisher) -> VerificationPolicy:
    """The Sigstore policy a certificate of `publisher` satisfies.

    GitHub: the issuer, the repository and the workflow file (through the Build Config URI, as
    pypi-attestations' GitHubPublisher checks it). GitLab: the issuer (gitlab.com or the
    self-hosted URL), the project path and, when the publisher names one, the ref (a GitLab
    publisher names no CI file). Any other issuer: the issuer. A deployment environment is in
    no certificate: it was checked when the token was minted.
    """
    if publisher.kind == "github":
        repository = publisher.claims["repository"]
        host = (
            "https://github.com"
            if publisher.issuer == GITHUB_ISSUER
            else _host_of(publisher.issuer)
        )
        workflow = publisher.prefixes["job_workflow_ref"].removesuffix("@")
        return policy.AllOf(
            [
                policy.OIDCIssuerV2(publisher.issuer),
                policy.OIDCSourceRepositoryURI(f"{host}/{repository}"),
                _BuildConfig(f"{host}/{workflow}"),
            ]
        )
    if publisher.kind == "gitlab":
        rules: list[VerificationPolicy] = [
            policy.OIDCIssuerV2(publisher.issuer),
            policy.OIDCSourceRepositoryURI(
                f"{publisher.issuer}/{publisher.claims['project_path']}"
            ),
        ]
        ref = publisher.claims.get("ref")
        if ref:
            rules.append(_Ref(ref))
        return policy.AllOf(rules)
    return policy.OIDCIssuerV2(publisher.issuer)


def _describe_publisher(publisher: Publisher) -> str:
    return f"{publisher.id} ({publisher.issuer} {publisher.describe()})"


# -- what the certificate says ------------------------------------------------------------------


def _claims(cert: Certificate) -> dict[str, str]:
    """The Fulcio claims of a certificate by OID: extensions 1.3.6.1.4.1.57264.1.8 and up,
    each a DER UTF8String (decoded with cryptography's ASN.1 reader, as pypi-attestations
    does)."""
    from cryptography.hazmat import asn1

    found: dict[str, str] = {}
    for extension in cert.extensions:
        oid = extension.oid.dotted_string
        if not oid.startswith(_FULCIO) or int(oid.rsplit(".", 1)[1]) < 8:
            continue
        try:
            found[oid] = asn1.decode_der(str, extension.value.value)
        except (ValueError, AttributeError):  # not a UTF8String: not a claim
            continue
    return found


def _email_of(cert: Certificate) -> str | None:
    from cryptography import x509

    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    emails = names.get_values_for_type(x509.RFC822Name)
    return emails[0] if emails else None


def publisher_of(cert: Certificate, minted: Publisher | None = None) -> dict[str, Any]:
    """The PEP 740 publisher object of the identity a certificate names, with the `claims`
    the index checked (those of the trusted publisher that `minted` the upload token, else
    none): GitHub, GitLab and Google as pypi-attestations models them (and PyPI serves
    them), any other issuer as `{"kind": "OIDC", "issuer": ..., "claims": {...}}`."""
    found = _publisher_of(cert, minted.claims.get("environment") if minted else None)
    found.setdefault("claims", dict(minted.claims) if minted else {})
    return found


def _publisher_of(cert: Certificate, environment: str | None) -> dict[str, Any]:
    claims = _claims(cert)
    issuer = claims.get(_ISSUER, "")
    source = claims.get(_SOURCE_REPOSITORY, "")
    build = claims.get(_BUILD_CONFIG, "")
    if issuer == GITHUB_ISSUER and source.startswith("https://github.com/"):
        workflow = build.partition("/.github/workflows/")[2].rpartition("@")[0]
        return GitHubPublisher(
            repository=source.removeprefix("https://github.com/"),
            workflow=workflow,
            environment=environment,
        ).model_dump(mode="json")
    if issuer and source.startswith(issuer.rstrip("/") + "/") and "//" in build.partition("://")[2]:
        # GitLab: https://HOST/NAMESPACE/PROJECT//CI_FILE@REF
        return GitLabPublisher(
            repository=source.removeprefix(issuer.rstrip("/") + "/"),
            workflow_filepath=build.removeprefix(source + "//").rpartition("@")[0],
            environment=environment,
        ).model_dump(mode="json")
    email = _email_of(cert)
    if issuer == _GOOGLE_ISSUER and email:
        return GooglePublisher(email=email).model_dump(mode="json")
    described = {"subject": email} if email else {}
    described.update({oid: value for oid, value in claims.items() if oid != _ISSUER})
    return {"kind": "OIDC", "issuer": issuer, "claims": described}


def _describe_certificate(cert: Certificate) -> str:
    claims = _claims(cert)
    parts = [claims.get(_ISSUER, "an unknown issuer")]
    if _SOURCE_REPOSITORY in claims:
        parts.append(f"repository {claims[_SOURCE_REPOSITORY]}")
    if _BUILD_CONFIG in claims:
        parts.append(f"workflow {claims[_BUILD_CONFIG]}")
    elif email := _email_of(cert):
        parts.append(email)
    return ", ".join(parts)


# -- one attestation ----------------------------------------------------------------------------


def _parsed_filename(name: str) -> tuple[Any, ...]:
    """A distribution file name as PEP 740 compares it: parsed (packaging)."""
    if name.endswith(".whl"):
        return tuple(parse_wheel_filename(name))
    if name.endswith((".tar.gz", ".zip")):
        return tuple(parse_sdist_filename(name))
    raise ValueError(f"{name!r} is not a wheel or sdist file name")


def _check_statement(payload: bytes, filename: str, sha256: str) -> str:
    """The predicate type of a verified statement about `filename` with `sha256`; raises
    ValueError saying what does not match."""
    try:
        statement = json.loads(payload)
        subjects = statement["subject"]
        kind = statement["predicateType"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"the statement is not an in-toto v1 statement ({e})") from None
    if statement.get("_type") != _STATEMENT_V1:
        raise ValueError(f"the statement is not an in-toto v1 statement ({_STATEMENT_V1})")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise ValueError("the statement must have exactly one subject (PEP 740)")
    name = subjects[0].get("name")
    digest = (subjects[0].get("digest") or {}).get("sha256")
    try:
        same_file = isinstance(name, str) and _parsed_filename(name) == _parsed_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
        same_file = False
    if not same_file:
        raise ValueError(f"its subject is the file {str(name)[:200]!r}, not {filename!r}")
    if not isinstance(digest, str) or digest.lower() != sha256:
        raise ValueError(
            f"its subject's sha256 is {str(digest)[:80]}, not the uploaded file's ({sha256})"
        )
    if kind not in PREDICATE_TYPES:
        raise ValueError(
            f"unknown predicate type {str(kind)[:200]!r} (PEP 740: {', '.join(PREDICATE_TYPES)})"
        )
    return str(kind)


def _identity_mismatch(cert: Certificate, identity: Identity) -> str | None:
    """Why the certificate is none of the required identities; None when it is one."""
    if not identity.publishers:
        return None
    reasons = []
    for publisher in identity.publishers:
        try:
            _policy_for(publisher).verify(cert)
            return None
        except SigstoreError as e:
            reasons.append(f"not {_describe_publisher(publisher)}: {e}")
    return f"signed by {_describe_certificate(cert)}, but {identity.why}: {'; '.join(reasons)}"


@dataclass(frozen=True, slots=True)
class _Verified:
    attestation: dict[str, Any]
    kind: str
    publisher: dict[str, Any]


def _verify_one(item: dict[str, Any], filename: str, sha256: str, identity: Identity) -> _Verified:
    """One attestation, verified (ValueError saying why not)."""
    try:
        attestation = Attestation.model_validate(item)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the object"
        raise ValueError(f"not a PEP 740 attestation object ({where}: {first['msg']})") from None
    try:
        bundle = attestation.to_bundle()
        payload_type, payload = _verifier().verify_dsse(bundle, _AnyIdentity())
    except ConversionError as e:
        raise ValueError(f"its verification material is not usable ({e})") from None
    except SigstoreError as e:
        raise ValueError(
            f"it does not verify against Sigstore's production trust root ({e})"
        ) from None
    except (ValueError, TypeError) as e:  # material the libraries cannot read: not a 5xx
        raise ValueError(f"its verification material is not usable ({e})") from None
    if payload_type != _DSSE_TYPE:
        raise ValueError(f"its envelope holds {payload_type!r}, not {_DSSE_TYPE!r} (PEP 740)")
    kind = _check_statement(payload, filename, sha256)
    cert = bundle.signing_certificate
    if why := _identity_mismatch(cert, identity):
        raise ValueError(why)
    return _Verified(attestation.model_dump(mode="json"), kind, publisher_of(cert, identity.minted))


def provenance_for(
    items: Sequence[dict[str, Any]], filename: str, sha256: str, identity: Identity
) -> bytes:
    """The PEP 740 provenance object of `filename` (sha256 `sha256`) from its verified
    attestations `items` (see `parse_attestations`), as stored and served; raises
    InvalidRequest ("attestation N: why") for the first that fails."""
    seen: dict[str, int] = {}
    bundles: dict[str, dict[str, Any]] = {}
    for number, item in enumerate(items, 1):
        try:
            verified = _verify_one(item, filename, sha256, identity)
        except ValueError as e:
            raise InvalidRequest(f"attestation {number}: {e}.") from None
        if verified.kind in seen:
            raise InvalidRequest(
                f"attestation {number}: a second attestation of type {verified.kind} (the "
                f"first is attestation {seen[verified.kind]}): at most one of each type."
            )
        seen[verified.kind] = number
        key = json.dumps(verified.publisher, sort_keys=True)
        bundle = bundles.setdefault(key, {"publisher": verified.publisher, "attestations": []})
        bundle["attestations"].append(verified.attestation)
    document = {"version": 1, "attestation_bundles": list(bundles.values())}
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


class AttestationCheck:
    """The upload handler's `attest` hook: the identity the request's token requires (from
    the trusted publishers in the store, read at each upload that carries attestations),
    then `provenance_for`."""

    def __init__(
        self,
        publishers: Callable[[], Iterable[Publisher]],
        minted_by: Callable[[Request], str | None],
    ) -> None:
        self.publishers = publishers
        self.minted_by = minted_by

    def __call__(
        self, request: Request, project: str, filename: str, sha256: str, items: list[Any]
    ) -> bytes:
        identity = required_identities(project, self.minted_by(request), self.publishers())
        return provenance_for(items, filename, sha256, identity)
