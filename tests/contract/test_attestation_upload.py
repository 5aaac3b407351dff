"""PEP 740 through the application, on both stores: an upload with real attestations (signed
on GitHub Actions, verified offline) gets a provenance object linked from both page formats
and served at the linked URL; refused attestations publish nothing; a token minted for a
trusted publisher needs that publisher's signature; a project can require attestations; a
reindex keeps the provenance."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pypi_simple import ProjectPage

from serverless_pypi.auth.publishers import PublisherStore, github_publisher
from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.compose import build_application
from serverless_pypi.core.config import Settings
from serverless_pypi.core.http import Headers, Request, Response
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.core.policy import Policy, Revocation
from serverless_pypi.index import layout
from serverless_pypi.index.catalog import Catalog
from serverless_pypi.index.indexer import Indexer
from serverless_pypi.index.policies import PolicyWriter
from serverless_pypi.storage import Store
from tests.helpers.dists import make_sdist
from tests.helpers.forms import basic_auth, encode_form, upload_fields

ASSETS = Path(__file__).parent.parent / "assets" / "attestations"
MODELS = "pypi_attestation_models-0.0.4a2.tar.gz"
PROJECT = NormalizedName("pypi-attestation-models")
JSON = "application/vnd.pypi.simple.v1+json"
#: the policy is read again at once: each change is seen by the next upload
SETTINGS = Settings(policy_ttl=0.001)


def attestation(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ASSETS / name).read_text())
    return data


def models_attestation() -> dict[str, Any]:
    return attestation(MODELS + ".attestation")


class Index:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.app = build_application(store, SETTINGS)
        self.token, _ = TokenStore(store).create("write")

    def upload(
        self,
        filename: str = MODELS,
        attestations: list[dict[str, Any]] | None = None,
        token: str | None = None,
        data: bytes | None = None,
    ) -> Response:
        data = data if data is not None else (ASSETS / filename).read_bytes()
        fields = upload_fields(filename, data)
        if attestations is not None:
            fields.append(("attestations", json.dumps(attestations)))
        body, content_type = encode_form(fields, (filename, data))
        headers = {"Content-Type": content_type, "Authorization": basic_auth(token or self.token)}
        return self.app.handle(Request("POST", "", headers=Headers(headers), body=body))

    def get(self, path: str, accept: str = "*/*") -> Response:
        return self.app.handle(Request("GET", path, headers=Headers({"Accept": accept})))

    def record(self, filename: str = MODELS) -> Any:
        return Catalog(self.store).read_project(PROJECT)[0].files.get(filename)


@pytest.fixture
def index(store: Store) -> Index:
    return Index(store)


def test_upload_with_attestation_is_linked_and_served(index: Index) -> None:
    response = index.upload(attestations=[models_attestation()])
    assert response.status == 200, response.body
    page = index.get(f"{PROJECT}/", JSON)
    (entry,) = json.loads(page.body)["files"]
    assert entry["provenance"] == MODELS + ".provenance"
    html = index.get(f"{PROJECT}/", "text/html").body.decode()
    assert f'data-provenance="{MODELS}.provenance"' in html
    # relative to the page, as every URL of the index's pages (the simple API allows it)
    (parsed,) = ProjectPage.from_html(PROJECT, html, f"https://pypi.example/{PROJECT}/").packages
    assert parsed.provenance_url == MODELS + ".provenance"

    served = index.get(f"{PROJECT}/{MODELS}.provenance")
    assert served.status == 200
    assert served.headers["Content-Type"] == "application/json"
    provenance = json.loads(served.body)
    (bundle,) = provenance["attestation_bundles"]
    assert bundle["publisher"]["kind"] == "GitHub"
    assert bundle["publisher"]["repository"] == "trailofbits/pypi-attestation-models"
    assert bundle["attestations"][0]["envelope"] == models_attestation()["envelope"]
    assert index.record().provenance_sha256 == hashlib.sha256(served.body).hexdigest()
    # revalidated by its strong tag
    again = index.app.handle(
        Request(
            "GET",
            f"{PROJECT}/{MODELS}.provenance",
            headers=Headers({"If-None-Match": served.headers["ETag"]}),
        )
    )
    assert again.status == 304


def test_attestation_naming_another_file_publishes_nothing(index: Index) -> None:
    other = attestation("pypi_attestations-0.0.19.tar.gz.publish.attestation")
    response = index.upload(attestations=[other])
    assert response.status == 400
    assert response.body.decode().startswith(
        f"attestation 1: its subject is the file 'pypi_attestations-0.0.19.tar.gz', not '{MODELS}'"
    )
    assert index.store.find(layout.distribution_key(PROJECT, MODELS)) is None
    assert index.store.find(layout.provenance_key(PROJECT, MODELS)) is None
    assert index.record() is None


def test_attestation_of_other_bytes_is_refused(index: Index, tmp_path: Path) -> None:
    # the same file name, other bytes: the subject's sha256 is not the upload's
    other = make_sdist(tmp_path, "pypi_attestation_models", "0.0.4a2")
    response = index.upload(attestations=[models_attestation()], data=other.read_bytes())
    assert response.status == 400
    assert "its subject's sha256 is c9709ce6" in response.body.decode()
    assert index.record() is None


def test_file_without_attestations_has_no_provenance(index: Index) -> None:
    assert index.upload(attestations=[]).status == 200
    (entry,) = json.loads(index.get(f"{PROJECT}/", JSON).body)["files"]
    assert entry["provenance"] is None
    assert "data-provenance" not in index.get(f"{PROJECT}/", "text/html").body.decode()
    assert index.get(f"{PROJECT}/{MODELS}.provenance").status == 404


def test_reupload_with_attestations_attaches_them_once(index: Index) -> None:
    assert index.upload().status == 200
    assert index.upload(attestations=[models_attestation()]).status == 200
    first = index.record().provenance_sha256
    assert first is not None
    assert index.get(f"{PROJECT}/{MODELS}.provenance").status == 200
    # the provenance a file has stays: a later upload never replaces it
    assert index.upload(attestations=[models_attestation()]).status == 200
    assert index.record().provenance_sha256 == first


def test_minted_token_needs_its_publishers_signature(index: Index) -> None:
    publishers = PublisherStore(index.store)
    matching = publishers.add(
        github_publisher(
            "trailofbits/pypi-attestation-models", "release.yml", projects=[str(PROJECT)]
        )
    )
    other = publishers.add(
        github_publisher("octo/impostor", "release.yml", projects=[str(PROJECT)])
    )
    # as the mint creates them: a write token for the publisher's projects, marked with its id
    wrong, _ = TokenStore(index.store).create("write", [str(PROJECT)], publisher=other.id)
    right, _ = TokenStore(index.store).create("write", [str(PROJECT)], publisher=matching.id)
    response = index.upload(attestations=[models_attestation()], token=wrong)
    assert response.status == 400
    message = response.body.decode()
    assert message.startswith(
        "attestation 1: signed by https://token.actions.githubusercontent.com, repository "
        "https://github.com/trailofbits/pypi-attestation-models"
    )
    assert f"minted for the trusted publisher {other.id}" in message
    assert "expected https://github.com/octo/impostor" in message
    assert index.record() is None

    assert index.upload(attestations=[models_attestation()], token=right).status == 200
    assert index.record().provenance_sha256 is not None


def test_ordinary_token_needs_a_covering_publishers_signature(index: Index) -> None:
    PublisherStore(index.store).add(
        github_publisher("octo/impostor", "release.yml", projects=["pypi-attestation-*"])
    )
    response = index.upload(attestations=[models_attestation()])
    assert response.status == 400
    assert "is published by the trusted publishers" in response.body.decode()
    assert index.record() is None


def test_required_attestations(index: Index) -> None:
    PolicyWriter(index.store).update(lambda p: Policy(attestations=("pypi-attestation-*",)))
    response = index.upload()
    assert response.status == 400
    assert response.body.decode().startswith(
        "The project 'pypi-attestation-models' requires attestations (PEP 740):"
    )
    assert index.upload(attestations=[]).status == 400
    assert index.record() is None
    assert index.upload(attestations=[models_attestation()]).status == 200


def test_revoked_file_serves_no_provenance(index: Index) -> None:
    assert index.upload(attestations=[models_attestation()]).status == 200
    sha256 = index.record().sha256
    PolicyWriter(index.store).update(
        lambda p: Policy(revoked={sha256: Revocation("compromised", "2030-01-01T00:00:00Z")})
    )
    response = index.get(f"{PROJECT}/{MODELS}.provenance")
    assert response.status == 404
    assert "revoked" in response.body.decode()


def test_reindex_keeps_provenance(index: Index) -> None:
    assert index.upload(attestations=[models_attestation()]).status == 200
    kept = index.record().provenance_sha256
    Indexer(index.store).reindex()
    assert index.record().provenance_sha256 == kept
    # a record rebuilt from the bytes (the manifest lost) finds the provenance object again
    index.store.delete(layout.manifest_key(PROJECT))
    Indexer(index.store).reindex()
    assert index.record().provenance_sha256 == kept
    (entry,) = json.loads(index.get(f"{PROJECT}/", JSON).body)["files"]
    assert entry["provenance"] == MODELS + ".provenance"


def test_reindex_drops_provenance_of_other_bytes(index: Index, tmp_path: Path) -> None:
    assert index.upload(attestations=[models_attestation()]).status == 200
    # the file replaced behind the index's back: the provenance attests the old bytes
    other = make_sdist(tmp_path, "pypi_attestation_models", "0.0.4a2")
    index.store.put(layout.distribution_key(PROJECT, MODELS), other.read_bytes())
    Indexer(index.store).reindex()
    assert index.record().provenance_sha256 is None
    assert index.store.find(layout.provenance_key(PROJECT, MODELS)) is None


def test_removed_file_takes_its_provenance(index: Index) -> None:
    assert index.upload(attestations=[models_attestation()]).status == 200
    index.store.delete(layout.distribution_key(PROJECT, MODELS))
    Indexer(index.store).index_key(layout.distribution_key(PROJECT, MODELS))
    assert index.store.find(layout.provenance_key(PROJECT, MODELS)) is None
    assert index.get(f"{PROJECT}/{MODELS}.provenance").status == 404


def test_provenance_subjects_read_back() -> None:
    from serverless_pypi.index.records import attested_digests

    statement = {"subject": [{"name": MODELS, "digest": {"sha256": "ab" * 32}}]}
    document = {
        "version": 1,
        "attestation_bundles": [
            {
                "publisher": {"kind": "GitHub"},
                "attestations": [
                    {
                        "envelope": {
                            "statement": base64.b64encode(json.dumps(statement).encode()).decode()
                        }
                    }
                ],
            }
        ],
    }
    assert attested_digests(json.dumps(document).encode()) == {"ab" * 32}
    assert attested_digests(b"not json") == set()
