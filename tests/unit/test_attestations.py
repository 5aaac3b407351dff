"""PEP 740 attestations verified offline against Sigstore's production trust root (as the
sigstore package embeds it), with real attestations signed on GitHub Actions and GitLab CI
(tests/assets/attestations). Every refusal says which attestation and why."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.auth.attestations import (
    Identity,
    parse_attestations,
    provenance_for,
    required_identities,
)
from serverless_pypi.auth.publishers import github_publisher, gitlab_publisher, oidc_publisher
from serverless_pypi.core.errors import InvalidRequest
from serverless_pypi.index.records import attested_digests

ASSETS = Path(__file__).parent.parent / "assets" / "attestations"
MODELS = "pypi_attestation_models-0.0.4a2.tar.gz"
GITLAB = "gitlab_oidc_project-0.0.3.tar.gz"
BOTH = "pypi_attestations-0.0.19.tar.gz"
STAGING = "rfc8785-0.1.2-py3-none-any.whl"


def sha256_of(filename: str) -> str:
    return hashlib.sha256((ASSETS / filename).read_bytes()).hexdigest()


def attestation(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ASSETS / name).read_text())
    return data


def models() -> dict[str, Any]:
    return attestation(MODELS + ".attestation")


def verify(
    items: list[dict[str, Any]],
    filename: str = MODELS,
    sha256: str | None = None,
    identity: Identity | None = None,
) -> dict[str, Any]:
    sha = sha256 if sha256 is not None else sha256_of(filename)
    provenance: dict[str, Any] = json.loads(
        provenance_for(items, filename, sha, identity or Identity())
    )
    return provenance


def refusal(items: list[dict[str, Any]], **kwargs: Any) -> str:
    with pytest.raises(InvalidRequest) as caught:
        verify(items, **kwargs)
    return caught.value.message


GITHUB_MODELS = github_publisher(
    "trailofbits/pypi-attestation-models", "release.yml", projects=["pypi-attestation-models"]
)
GITLAB_PROJECT = gitlab_publisher(
    "facutuesca/gitlab-oidc-project", projects=["gitlab-oidc-project"]
)


# -- what verifies ------------------------------------------------------------------------------


def test_github_attestation_verifies_and_names_its_publisher() -> None:
    provenance = verify([models()])
    assert provenance["version"] == 1
    (bundle,) = provenance["attestation_bundles"]
    assert bundle["publisher"] == {
        "kind": "GitHub",
        "repository": "trailofbits/pypi-attestation-models",
        "workflow": "release.yml",
        "environment": None,
        # PEP 740: the claims the index checked (an ordinary token: none)
        "claims": {},
    }
    assert bundle["attestations"][0]["envelope"] == models()["envelope"]
    # the index reads the subjects back when it rebuilds a record (reindex)
    assert attested_digests(json.dumps(provenance).encode()) == {sha256_of(MODELS)}


def test_github_attestation_verifies_against_its_trusted_publisher() -> None:
    identity = required_identities("pypi-attestation-models", GITHUB_MODELS.id, [GITHUB_MODELS])
    (bundle,) = verify([models()], identity=identity)["attestation_bundles"]
    assert bundle["publisher"]["repository"] == "trailofbits/pypi-attestation-models"
    assert bundle["publisher"]["claims"] == {"repository": "trailofbits/pypi-attestation-models"}


def test_gitlab_attestation_verifies_and_names_its_publisher() -> None:
    item = attestation(GITLAB + ".publish.attestation")
    identity = Identity((GITLAB_PROJECT,), "minted")
    (bundle,) = verify([item], GITLAB, identity=identity)["attestation_bundles"]
    assert bundle["publisher"] == {
        "kind": "GitLab",
        "repository": "facutuesca/gitlab-oidc-project",
        "workflow_filepath": ".gitlab-ci.yml",
        "environment": None,
        "claims": {},
    }


def test_gitlab_publisher_with_the_signing_ref_matches_and_another_ref_does_not() -> None:
    item = attestation(GITLAB + ".publish.attestation")
    on_main = gitlab_publisher(
        "facutuesca/gitlab-oidc-project", ref="main", projects=["gitlab-oidc-project"]
    )
    verify([item], GITLAB, identity=Identity((on_main,), "minted"))
    on_release = gitlab_publisher(
        "facutuesca/gitlab-oidc-project", ref="release", projects=["gitlab-oidc-project"]
    )
    message = refusal([item], filename=GITLAB, identity=Identity((on_release,), "minted"))
    assert message.startswith("attestation 1: signed by https://gitlab.com")
    assert "refs/heads/release" in message or "refs/tags/release" in message


def test_one_attestation_of_each_type_in_one_bundle() -> None:
    items = [
        attestation(BOTH + ".publish.attestation"),
        attestation(BOTH + ".slsa.attestation"),
    ]
    (bundle,) = verify(items, BOTH)["attestation_bundles"]
    assert len(bundle["attestations"]) == 2


# -- what is refused ----------------------------------------------------------------------------


def test_subject_naming_another_file_is_refused() -> None:
    message = refusal(
        [models()], filename="pypi_attestation_models-0.0.5.tar.gz", sha256=sha256_of(MODELS)
    )
    assert message.startswith("attestation 1: its subject is the file ")
    assert "pypi_attestation_models-0.0.4a2.tar.gz" in message


def test_subject_with_another_sha256_is_refused() -> None:
    message = refusal([models()], sha256="0" * 64)
    assert message.startswith("attestation 1: its subject's sha256 is c9709ce6")


def test_tampered_signature_is_refused() -> None:
    tampered = copy.deepcopy(models())
    signature = bytearray(base64.b64decode(tampered["envelope"]["signature"]))
    signature[10] ^= 0x01
    tampered["envelope"]["signature"] = base64.b64encode(bytes(signature)).decode()
    message = refusal([tampered])
    assert message.startswith(
        "attestation 1: it does not verify against Sigstore's production trust root"
    )


def test_tampered_statement_is_refused() -> None:
    tampered = copy.deepcopy(models())
    statement = json.loads(base64.b64decode(tampered["envelope"]["statement"]))
    statement["subject"][0]["name"] = "pypi_attestation_models-0.0.5.tar.gz"
    tampered["envelope"]["statement"] = base64.b64encode(json.dumps(statement).encode()).decode()
    message = refusal(
        [tampered], filename="pypi_attestation_models-0.0.5.tar.gz", sha256=sha256_of(MODELS)
    )
    assert "does not verify" in message


def test_staging_signature_is_refused_under_the_production_root() -> None:
    item = attestation(STAGING + ".publish.attestation")
    message = refusal([item], filename=STAGING)
    assert "does not verify against Sigstore's production trust root" in message


@pytest.mark.parametrize(
    ("publisher", "named"),
    [
        (
            github_publisher("octo/other-repo", "release.yml", projects=["*"]),
            "https://github.com/octo/other-repo",
        ),
        (
            github_publisher("trailofbits/pypi-attestation-models", "deploy.yml", projects=["*"]),
            "deploy.yml",
        ),
        (oidc_publisher("https://issuer.example", {"sub": "x"}, projects=["*"]), "issuer.example"),
    ],
    ids=["other-repository", "other-workflow", "other-issuer"],
)
def test_wrong_publisher_is_refused_naming_what_differs(publisher: Any, named: str) -> None:
    message = refusal([models()], identity=Identity((publisher,), "because"))
    assert message.startswith(
        "attestation 1: signed by https://token.actions.githubusercontent.com, repository "
        "https://github.com/trailofbits/pypi-attestation-models"
    )
    assert f"but because: not {publisher.id}" in message
    assert named in message


def test_unknown_predicate_type_is_refused() -> None:
    # a real signature over a statement of another type cannot be made here: the check runs on
    # the verified statement, so it is asked of the statement check directly
    from serverless_pypi.auth.attestations import _check_statement

    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": MODELS, "digest": {"sha256": sha256_of(MODELS)}}],
        "predicateType": "https://example.com/custom/v1",
        "predicate": {},
    }
    with pytest.raises(ValueError, match="unknown predicate type 'https://example.com/custom/v1'"):
        _check_statement(json.dumps(statement).encode(), MODELS, sha256_of(MODELS))


def test_two_of_one_type_are_refused() -> None:
    message = refusal([models(), models()])
    assert message == (
        "attestation 2: a second attestation of type https://docs.pypi.org/attestations/publish/v1"
        " (the first is attestation 1): at most one of each type."
    )


def test_not_an_attestation_object_is_refused() -> None:
    broken = models()
    del broken["verification_material"]
    assert refusal([broken]).startswith(
        "attestation 1: not a PEP 740 attestation object (verification_material: Field required)"
    )


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("{not json", "The 'attestations' field is not valid JSON"),
        ('{"version": 1}', "The 'attestations' field is a JSON object, not an array"),
        ("[1]", "attestation 1: a JSON number, not an attestation object"),
        ("[null]", "attestation 1: a JSON null, not an attestation object"),
        ("[{}, {}, {}]", "The upload carries 3 attestations: at most one of each type"),
    ],
)
def test_malformed_field_is_refused(field: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_attestations(field)
    assert caught.value.message.startswith(message)


def test_empty_field_or_array_is_no_attestations() -> None:
    assert parse_attestations("") == []
    assert parse_attestations(" [] ") == []


# -- whose signature an upload needs ------------------------------------------------------------


def test_minting_publisher_is_the_identity() -> None:
    identity = required_identities("pypi-attestation-models", GITHUB_MODELS.id, [GITHUB_MODELS])
    assert identity.publishers == (GITHUB_MODELS,)


def test_minting_publisher_removed_since_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="no longer exists"):
        required_identities("pypi-attestation-models", "0123456789abcdef", [GITHUB_MODELS])


def test_ordinary_token_needs_a_covering_publisher_when_there_is_one() -> None:
    other = github_publisher("octo/elsewhere", "release.yml", projects=["unrelated-*"])
    reader = github_publisher("octo/reader", "ci.yml", projects=["*"], scope="read")
    assert required_identities("pypi-attestation-models", None, [other, reader]) == Identity()
    identity = required_identities("pypi-attestation-models", None, [other, GITHUB_MODELS])
    assert identity.publishers == (GITHUB_MODELS,)
    wrong = github_publisher("octo/elsewhere", "release.yml", projects=["pypi-attestation-*"])
    identity = required_identities("pypi-attestation-models", None, [wrong])
    assert "is published by the trusted publishers" in refusal([models()], identity=identity)
