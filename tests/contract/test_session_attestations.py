"""PEP 740 attestations on Upload 2.0 sessions (PEP 694 `attestations_url`), through the
application over both stores, with a real attestation signed on GitHub Actions (verified
offline): posted before completion, verified at once as a legacy upload's, published with
the release as the file's provenance; refused when it names another file; required by a
project's policy at publish, and only there."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from serverless_pypi.auth.publishers import PublisherStore, github_publisher
from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.policy import Policy
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.policies import PolicyWriter
from serverless_pypi.storage import Store
from tests.helpers.sessions import META, SessionClient, sha256

ASSETS = Path(__file__).parent.parent / "assets" / "attestations"
MODELS = "pypi_attestation_models-0.0.4a2.tar.gz"
OTHER = "pypi_attestations-0.0.19.tar.gz"
PROJECT = NormalizedName("pypi-attestation-models")
JSON = "application/vnd.pypi.simple.v1+json"
S3_MECHANISM = "vnd-serverlesspypi-s3multipart-presigned-v1"


def attestation(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ASSETS / name).read_text())
    return data


@pytest.fixture
def api(store: Store) -> SessionClient:
    token, _ = TokenStore(store).create("write")
    return SessionClient(build_application(store, Settings(policy_ttl=0.001)), token)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return Path(shutil.copy(ASSETS / MODELS, tmp_path / MODELS))


def post_attestations(api: SessionClient, file: dict[str, Any], items: Any) -> Any:
    url = file["mechanism"]["attestations_url"]
    return api.request("POST", url, raw=json.dumps(items).encode(), content_type="application/json")


def staged_provenance(store: Store) -> list[str]:
    return [i.key for i in store.list(layout.SESSIONS) if i.key.endswith(".provenance")]


def add(api: SessionClient, session: dict[str, Any], path: Path) -> dict[str, Any]:
    added = api.add(session, path)
    assert added.status == 202, added.body
    return added.doc


def send_and_complete(api: SessionClient, file: dict[str, Any], path: Path) -> None:
    assert api.send(file, path.read_bytes()).status == 204
    completed = api.complete(file)
    assert completed.status == 201, completed.body


def test_attestations_posted_before_complete_are_published_as_provenance(
    api: SessionClient, store: Store, models: Path
) -> None:
    session = api.open(PROJECT, "0.0.4a2")
    file = add(api, session, models)
    assert file["mechanism"]["attestations_url"] == (
        file["links"]["file-upload-session"] + "/attestations"
    )
    accepted = post_attestations(api, file, [attestation(MODELS + ".attestation")])
    assert accepted.status == 204, accepted.body
    # a second post replaces the first while the file is pending: one object staged
    assert post_attestations(api, file, [attestation(MODELS + ".attestation")]).status == 204
    assert len(staged_provenance(store)) == 1
    send_and_complete(api, file, models)
    late = post_attestations(api, file, [attestation(MODELS + ".attestation")])
    assert late.status == 409
    assert "complete" in late.problem()
    published = api.publish(session)
    assert published.status == 201, published.body
    (entry,) = json.loads(api.get(f"{PROJECT}/", Accept=JSON).body)["files"]
    assert entry["provenance"] == MODELS + ".provenance"
    served = api.get(f"{PROJECT}/{MODELS}.provenance")
    assert served.status == 200
    provenance = json.loads(served.body)
    (bundle,) = provenance["attestation_bundles"]
    assert bundle["publisher"]["repository"] == "trailofbits/pypi-attestation-models"
    record = Catalog(store).read_project(PROJECT)[0].files[MODELS]
    assert record.provenance_sha256 is not None
    # the staged objects are gone with the published session
    assert staged_provenance(store) == []


def test_the_s3_mechanism_offers_attestations_too(api: SessionClient, models: Path) -> None:
    session = api.open(PROJECT, "0.0.4a2")
    mechanism = session["mechanisms"][0]
    file = api.add(session, models, mechanism=mechanism).doc
    assert file["mechanism"]["identifier"] == mechanism
    assert file["mechanism"]["attestations_url"].endswith(f"/files/{MODELS}/attestations")
    assert post_attestations(api, file, [attestation(MODELS + ".attestation")]).status == 204


def test_an_attestation_of_another_file_is_refused_and_nothing_is_stored(
    api: SessionClient, store: Store, models: Path
) -> None:
    session = api.open(PROJECT, "0.0.4a2")
    file = add(api, session, models)
    refused = post_attestations(api, file, [attestation(OTHER + ".publish.attestation")])
    assert refused.status == 400
    assert "attestation 1:" in refused.problem()
    assert OTHER in refused.problem()
    not_json = api.request(
        "POST", file["mechanism"]["attestations_url"], raw=b"[]", content_type="text/plain"
    )
    assert not_json.status == 415
    assert post_attestations(api, file, {"version": 1}).status == 400
    assert staged_provenance(store) == []


def test_a_declared_sha256_other_than_the_attested_one_is_refused(
    api: SessionClient, models: Path
) -> None:
    session = api.open(PROJECT, "0.0.4a2")
    added = api.add(session, models, hashes={"sha256": "0" * 64})
    assert added.status == 202, added.body
    refused = post_attestations(api, added.doc, [attestation(MODELS + ".attestation")])
    assert refused.status == 400
    assert "sha256" in refused.problem()


def test_a_project_that_requires_attestations_publishes_with_them_only(
    api: SessionClient, store: Store, models: Path
) -> None:
    PolicyWriter(store).update(lambda p: Policy(attestations=("pypi-attestation-*",)))
    session = api.open(PROJECT, "0.0.4a2")
    file = add(api, session, models)
    send_and_complete(api, file, models)
    refused = api.publish(session)
    assert refused.status == 400
    assert "requires attestations" in refused.problem()
    assert MODELS in refused.problem()
    assert Catalog(store).read_project(PROJECT)[0].files == {}
    # the file again, with its attestations: the release is published
    assert api.request("DELETE", file["links"]["file-upload-session"]).status == 204
    file = add(api, session, models)
    assert post_attestations(api, file, [attestation(MODELS + ".attestation")]).status == 204
    send_and_complete(api, file, models)
    published = api.request("POST", session["links"]["publish"], {"meta": META})
    assert published.status == 201, published.body
    assert set(Catalog(store).read_project(PROJECT)[0].files) == {MODELS}
    assert api.get(f"{PROJECT}/{MODELS}.provenance").status == 200


def test_deleting_the_file_drops_its_attestations(
    api: SessionClient, store: Store, models: Path
) -> None:
    session = api.open(PROJECT, "0.0.4a2")
    file = add(api, session, models)
    assert post_attestations(api, file, [attestation(MODELS + ".attestation")]).status == 204
    assert api.request("DELETE", file["links"]["file-upload-session"]).status == 204
    assert staged_provenance(store) == []
    file = add(api, session, models)
    send_and_complete(api, file, models)
    assert api.publish(session).status == 201
    (entry,) = json.loads(api.get(f"{PROJECT}/", Accept=JSON).body)["files"]
    assert entry.get("provenance") is None
    assert sha256(models) == entry["hashes"]["sha256"]


def test_a_token_minted_for_a_trusted_publisher_needs_its_signature(
    store: Store, models: Path
) -> None:
    publishers = PublisherStore(store)
    matching = publishers.add(
        github_publisher(
            "trailofbits/pypi-attestation-models", "release.yml", projects=[str(PROJECT)]
        )
    )
    other = publishers.add(github_publisher("octo/impostor", "release.yml", projects=[PROJECT]))
    app = build_application(store, Settings(policy_ttl=0.001))
    # as the mint creates them: a write token for the publisher's projects, marked with its id
    tokens = TokenStore(store)
    wrong = SessionClient(app, tokens.create("write", [PROJECT], publisher=other.id)[0])
    right = SessionClient(app, tokens.create("write", [PROJECT], publisher=matching.id)[0])
    session = wrong.open(PROJECT, "0.0.4a2")
    file = add(wrong, session, models)
    refused = post_attestations(wrong, file, [attestation(MODELS + ".attestation")])
    assert refused.status == 400
    assert f"minted for the trusted publisher {other.id}" in refused.problem()
    # the same session, another request: its own token is what binds the signer
    assert post_attestations(right, file, [attestation(MODELS + ".attestation")]).status == 204
