"""What the Lambda functions import, in fresh processes as a cold start has them.

- A read (the project list, pages in both formats, a provenance object, a download) of the
  API function never loads the libraries of PEP 740 verification (pypi-attestations,
  sigstore, pydantic and what they pull) nor those of trusted publishing (joserfc,
  cryptography): the cold start of reads is what it was before they were bundled. An upload
  with attestations, in the same process, does load them (the probe sees them).
- A verification runs on every path (verified; refused for the signature, the statement, the
  trust root, the signer's identity, the material) with what the zip leaves out made
  unimportable: the distributions `scripts/build_lambda.py` calls NOT_IMPORTED (sigstore's
  command line's rich, pygments ...) and the modules of LEFT_OUT_MODULES. Nothing even tries
  to import them.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.compose import build_application
from serverless_pypi.core.http import Headers, Request
from serverless_pypi.storage.s3 import S3Store
from tests.helpers.dists import make_wheel
from tests.helpers.forms import basic_auth, encode_form, upload_fields
from tests.helpers.servers import ROOT
from tests.helpers.terraform import load_build_script

ASSETS = ROOT / "tests" / "assets" / "attestations"
MODELS = "pypi_attestation_models-0.0.4a2.tar.gz"
PROJECT = "pypi-attestation-models"
JSON = "application/vnd.pypi.simple.v1+json"
#: the top-level modules of verification and of trusted publishing
HEAVY = [
    "pypi_attestations",
    "sigstore",
    "sigstore_models",
    "rekor_types",
    "rfc3161_client",
    "tuf",
    "securesystemslib",
    "pydantic",
    "pydantic_core",
    "requests",
    "joserfc",
    "cryptography",
]


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return load_build_script()


def attestation() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ASSETS / f"{MODELS}.attestation").read_text())
    return data


def upload_form(path: Path, attestations: list[dict[str, Any]]) -> tuple[bytes, str]:
    fields = upload_fields(path.name, path.read_bytes())
    fields.append(("attestations", json.dumps(attestations)))
    return encode_form(fields, (path.name, path.read_bytes()))


def run(script: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """The JSON the script prints last, run by a fresh interpreter of this environment."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


# -- reads ----------------------------------------------------------------------------------------

READS = """
import base64, json, sys
from serverless_pypi.adapters.aws_lambda import api_handler
from tests.helpers.lambda_events import event

heavy, project, filename, upload = json.loads(sys.argv[1])
def loaded():
    return sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
statuses = []
for route, accept in (
    ("", "text/html"),
    (project + "/", "text/html"),
    (project + "/", "application/vnd.pypi.simple.v1+json"),
    (f"{project}/{filename}.provenance", "*/*"),
    (f"{project}/{filename}", "*/*"),
):
    answer = api_handler(event("function_url", route, headers={"Accept": accept}), None)
    statuses.append(answer["statusCode"])
reads = loaded()
post = event("function_url", "", method="POST", headers=upload["headers"])
post["body"], post["isBase64Encoded"] = upload["body"], True
answer = api_handler(post, None)
print(json.dumps({"statuses": statuses, "reads": reads, "upload": loaded(),
                  "refusal": base64.b64decode(answer["body"]).decode()
                  if answer["isBase64Encoded"] else answer["body"]}))
"""


def test_reads_never_import_verification_or_trusted_publishing(
    s3_bucket: str, moto_url: str, aws_env: dict[str, str], tmp_path: Path
) -> None:
    store = S3Store(s3_bucket, "", endpoint_url=moto_url)
    token, _ = TokenStore(store).create("write")
    auth = basic_auth(token)
    # an attested file, so that the reads include its provenance object
    body, content_type = upload_form(ASSETS / MODELS, [attestation()])
    headers = Headers({"Content-Type": content_type, "Authorization": auth})
    seeded = build_application(store).handle(Request("POST", "", headers=headers, body=body))
    assert seeded.status == 200, seeded.body
    # the control: a wheel whose attestation names another file (verified, then refused)
    other = make_wheel(tmp_path, PROJECT, "9.0")
    form, form_type = upload_form(other, [attestation()])
    upload = {
        "headers": {"Content-Type": form_type, "Authorization": auth},
        "body": base64.b64encode(form).decode(),
    }
    env = {
        **aws_env,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "S3_BUCKET": s3_bucket,
        "AWS_LAMBDA_FUNCTION_NAME": "serverless-pypi-api",
    }
    found = run(READS, json.dumps([HEAVY, PROJECT, MODELS, upload]), env=env)
    assert found["statuses"] == [200, 200, 200, 200, 302]
    assert found["reads"] == []
    assert found["refusal"].startswith("attestation 1: its subject is the file"), found
    assert {"pypi_attestations", "sigstore", "pydantic"} <= set(found["upload"])


# -- verification without what the zip leaves out -------------------------------------------------

VERIFICATIONS = """
import base64, copy, importlib.abc, json, sys, tempfile

blocked, assets, models, project = json.loads(sys.argv[1])
attempts = []

class LeftOut(importlib.abc.MetaPathFinder):
    # what the Lambda zip does not hold: importing it fails there as it fails here
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in blocked):
            attempts.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (not in the zip)", name=name)
        return None

sys.meta_path.insert(0, LeftOut())
present = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in blocked))

from pathlib import Path
from serverless_pypi.auth.publishers import PublisherStore, github_publisher
from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.compose import build_application
from serverless_pypi.core.http import Headers, Request
from serverless_pypi.storage.local import LocalStore
from tests.helpers.forms import basic_auth, encode_form, upload_fields

assets = Path(assets)
data = (assets / models).read_bytes()
good = json.loads((assets / (models + ".attestation")).read_text())

def upload(app, token, items, filename=models):
    fields = upload_fields(filename, data)
    fields.append(("attestations", json.dumps(items)))
    body, kind = encode_form(fields, (filename, data))
    headers = Headers({"Content-Type": kind, "Authorization": basic_auth(token)})
    response = app.handle(Request("POST", "", headers=headers, body=body))
    return [response.status, response.body.decode()[:300]]

def tampered_signature():
    item = copy.deepcopy(good)
    signature = bytearray(base64.b64decode(item["envelope"]["signature"]))
    signature[10] ^= 0x01
    item["envelope"]["signature"] = base64.b64encode(bytes(signature)).decode()
    return item

def tampered_statement():
    item = copy.deepcopy(good)
    statement = json.loads(base64.b64decode(item["envelope"]["statement"]))
    statement["predicateType"] = "https://slsa.dev/provenance/v1"
    item["envelope"]["statement"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return item

def broken_certificate():
    item = copy.deepcopy(good)
    item["verification_material"]["certificate"] = base64.b64encode(b"not DER").decode()
    return item

def no_material():
    item = copy.deepcopy(good)
    del item["verification_material"]
    return item

staging = json.loads(
    (assets / "rfc8785-0.1.2-py3-none-any.whl.publish.attestation").read_text()
)
results = {}
with tempfile.TemporaryDirectory() as root:
    store = LocalStore(root)
    app = build_application(store)
    token, _ = TokenStore(store).create("write")
    for name, items in (
        ("tampered signature", [tampered_signature()]),
        ("tampered statement", [tampered_statement()]),
        ("staging trust root", [staging]),
        ("broken certificate", [broken_certificate()]),
        ("not an attestation", [no_material()]),
    ):
        results[name] = upload(app, token, items)
    # a trusted publisher of another repository covers the project: the signer is wrong
    publishers = PublisherStore(store)
    impostor = publishers.add(github_publisher("octo/impostor", "release.yml", projects=["*"]))
    results["wrong identity"] = upload(app, token, [good])
    publishers.remove([impostor.id])
    results["verified"] = upload(app, token, [good])
    served = app.handle(Request("GET", f"{project}/{models}.provenance", headers=Headers({})))
    results["provenance"] = [served.status, ""]
print(json.dumps({"present": present, "attempts": attempts, "results": results}))
"""


def left_out_names(build: ModuleType) -> list[str]:
    """The modules the Lambda zip does not hold, as Python names them."""
    import importlib.metadata

    names = set()
    for distribution in build.NOT_IMPORTED:
        for file in importlib.metadata.distribution(distribution).files or []:
            top = Path(str(file)).parts[0]
            if not str(file).startswith("..") and not top.endswith((".dist-info", "__pycache__")):
                names.add(top.removesuffix(".py"))
    for module in build.LEFT_OUT_MODULES:
        if module.endswith(".py"):
            names.add(module.removesuffix(".py").removesuffix("/__init__").replace("/", "."))
    return sorted(names)


def test_every_verification_path_runs_without_what_the_zip_leaves_out(
    build: ModuleType,
) -> None:
    blocked = left_out_names(build)
    assert {"rich", "pygments", "dns", "email_validator", "sigstore._cli"} <= set(blocked)
    found = run(VERIFICATIONS, json.dumps([blocked, str(ASSETS), MODELS, PROJECT]))
    assert found["present"] == []
    assert found["attempts"] == []
    results = found["results"]
    assert results["verified"][0] == 200, results["verified"]
    assert results["provenance"][0] == 200
    for name, prefix in (
        ("tampered signature", "attestation 1: it does not verify against Sigstore's"),
        ("tampered statement", "attestation 1: it does not verify against Sigstore's"),
        ("staging trust root", "attestation 1: it does not verify against Sigstore's"),
        ("broken certificate", "attestation 1: its verification material is not usable"),
        ("not an attestation", "attestation 1: not a PEP 740 attestation object"),
        ("wrong identity", "attestation 1: signed by https://token.actions.githubusercontent.com"),
    ):
        status, message = results[name]
        assert status == 400 and message.startswith(prefix), (name, message)
