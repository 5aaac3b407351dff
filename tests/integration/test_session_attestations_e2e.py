"""PEP 740 attestations through Upload 2.0 sessions end to end: the real `serverless-pypi
upload` sends the `<file>.*.attestation` files beside a distribution to the file upload
session's `attestations_url` (as `uv publish` finds them), against a live index over a
directory (http-post-bytes) and behind a function URL over S3 (the S3 mechanism). A project
that requires attestations refuses the release uploaded with `--no-attestations`, and the
next run, with them, replaces the file and publishes it with its provenance."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from serverless_pypi.core.policy import Policy
from serverless_pypi.index.policies import PolicyWriter
from tests.integration.test_upload_sessions_e2e import (  # noqa: F401 - fixtures
    Index,
    index,
    lambda_index,
    local_index,
)

pytestmark = pytest.mark.slow

ASSETS = Path(__file__).parent.parent / "assets" / "attestations"
MODELS = "pypi_attestation_models-0.0.4a2.tar.gz"
PROJECT = "pypi-attestation-models"


def test_upload_sends_the_attestations_beside_the_file(
    index: Index,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    PolicyWriter(index.store).update(lambda p: Policy(attestations=(PROJECT,)))
    dist = Path(shutil.copy(ASSETS / MODELS, tmp_path / MODELS))
    # as pypa/gh-action-pypi-publish names it, and uv publish finds it
    shutil.copy(ASSETS / (MODELS + ".attestation"), tmp_path / (MODELS + ".publish.attestation"))
    refused = index.upload("--no-attestations", dist)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "requires attestations" in refused.stderr
    assert MODELS in refused.stderr
    assert index.files(PROJECT) == {}
    sent = index.upload(dist)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert f"published: {PROJECT}/{MODELS}" in sent.stdout
    entry = index.files(PROJECT)[MODELS]
    assert entry["provenance"]
    url = urllib.parse.urljoin(f"{index.url}{PROJECT}/", entry["provenance"])
    with urllib.request.urlopen(url, timeout=30) as response:
        provenance = json.load(response)
    (bundle,) = provenance["attestation_bundles"]
    assert bundle["publisher"]["repository"] == "trailofbits/pypi-attestation-models"
