"""`attestations require | unrequire | list`: what they store (the policy document, backward
compatible) and print; `publish` refused for a project that requires attestations; the read
path never imports the attestation libraries."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from serverless_pypi.adapters.cli import main
from serverless_pypi.core.policy import InvalidPolicy, Policy
from serverless_pypi.index.policies import PolicyWriter
from serverless_pypi.storage.local import LocalStore
from tests.helpers.dists import make_wheel


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


def run(root: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--store", str(root)])
    out, err = capsys.readouterr()
    return code, out, err


def stored(root: Path) -> Policy:
    return PolicyWriter(LocalStore(root)).read()


def test_require_list_unrequire(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(root, capsys, "attestations", "require", "Acme_*")
    assert code == 0
    assert out.startswith("attestations required: acme-*")
    assert stored(root).attestations == ("acme-*",)
    assert stored(root).requires_attestations("ACME.tools") == "acme-*"
    assert stored(root).requires_attestations("other") is None
    code, _, err = run(root, capsys, "attestations", "require", "acme-*")
    assert code == 0
    assert "already required" in err
    assert run(root, capsys, "attestations", "list") == (
        0,
        "acme-*  (uploads need PEP 740 attestations)\n",
        "",
    )
    code, out, _ = run(root, capsys, "attestations", "unrequire", "acme-*")
    assert (code, out) == (0, "attestations no longer required: acme-*\n")
    assert stored(root).attestations == ()
    assert run(root, capsys, "attestations", "list")[2] == "no project requires attestations\n"


def test_bad_pattern_exits_2(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(root, capsys, "attestations", "require", "no/slashes")
    assert code == 2
    assert "attestations: 'no/slashes' is not a pattern over project names" in err


def test_policy_document_stays_readable_both_ways() -> None:
    # without the rule, the document is what older versions wrote (and read)
    assert "attestations" not in Policy().to_json()
    assert Policy.from_bytes(Policy().to_bytes()) == Policy()
    document = Policy(attestations=("acme-*",)).to_json()
    assert document["attestations"] == ["acme-*"]
    assert Policy.from_json(document).attestations == ("acme-*",)
    with pytest.raises(InvalidPolicy, match="`attestations` is not a list"):
        Policy.from_json({**document, "attestations": "acme-*"})


def test_publish_is_refused_where_attestations_are_required(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wheel = make_wheel(tmp_path, "acme-tools", "1.0")
    other = make_wheel(tmp_path, "other", "1.0")
    assert run(root, capsys, "attestations", "require", "acme-*")[0] == 0
    code, out, err = run(root, capsys, "publish", str(wheel), str(other))
    assert code == 1
    assert f"error: {wheel.name}: The project 'acme-tools' requires attestations (PEP 740)" in err
    assert out.startswith("published: other/")


def test_reads_never_import_the_attestation_libraries(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys
        from serverless_pypi.compose import build_application
        from serverless_pypi.core.http import Headers, Request
        from serverless_pypi.storage.local import LocalStore
        app = build_application(LocalStore({str(tmp_path)!r}))
        for path in ("", "demo/", "demo/demo-1.0.tar.gz.provenance"):
            app.handle(Request("GET", path, headers=Headers({{}})))
        print(json.dumps(sorted(m for m in ("pypi_attestations", "sigstore", "pydantic")
                                if m in sys.modules)))
        """
    )
    found = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(found.stdout) == []
