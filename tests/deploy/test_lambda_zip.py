"""dist/lambda.zip: reproducible, small, and enough to run both functions with only boto3.

The zip is built the way `make lambda` builds it, unpacked into a task folder as Lambda
does, and run by a fresh virtual environment that has boto3 (and what boto3 depends on) and
nothing else: no project venv, no test tools. Both handlers answer events from the fronts and
from EventBridge against moto's S3 server, with the environment the Terraform module sets.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import boto3
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from serverless_pypi.auth.tokens import TokenStore
from serverless_pypi.storage.s3 import S3Store
from tests.helpers.dists import make_wheel
from tests.helpers.forms import basic_auth, upload_body
from tests.helpers.index import JSON
from tests.helpers.lambda_events import LAMBDA_RESPONSE_KEYS, body_bytes, load
from tests.helpers.servers import REGION, ROOT
from tests.helpers.terraform import load_build_script, local

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("lambda_zip")]

PREFIX = "pypi"  # S3_PREFIX as the module writes it for s3_prefix = "pypi"
#: what may sit at the top of the zip besides dist-info folders
EXPECTED_TOP = {
    "serverless_pypi",
    "packaging",
    "multipart.py",
    # trusted publishing's OIDC verification (imported by the mint route only)
    "joserfc",
    "cryptography",
    "cffi",
    "_cffi_backend.cpython-313-aarch64-linux-gnu.so",
    "pycparser",
    # PEP 740 attestations (imported by an upload that carries some only): pypi-attestations,
    # sigstore and what they pull
    "pypi_attestations",
    "sigstore",
    "sigstore_models",
    "rekor_types",
    "rfc3161_client",
    "rfc8785",
    "tuf",
    "securesystemslib",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    "typing_extensions.py",
    "requests",
    "certifi",
    "charset_normalizer",
    "idna",
    "id",
    "jwt",
    "platformdirs",
    # not rich, pygments, markdown_it, mdurl, dns, email_validator, rfc3986: never imported
    # on Lambda (build_lambda.NOT_IMPORTED)
}
#: the distributions bundled (their dist-info folders)
EXPECTED_DISTRIBUTIONS = {
    "packaging",
    "multipart",
    "joserfc",
    "cryptography",
    "cffi",
    "pycparser",
    # PEP 740 attestations
    "pypi_attestations",
    "sigstore",
    "sigstore_models",
    "sigstore_rekor_types",
    "rfc3161_client",
    "rfc8785",
    "tuf",
    "securesystemslib",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    "typing_extensions",
    "requests",
    "certifi",
    "charset_normalizer",
    "idna",
    "id",
    "pyjwt",
    "platformdirs",
}


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return load_build_script()


def run_build(output: Path, *extra: str, cwd: Path = ROOT) -> bytes:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/build_lambda.py"), "--output", str(output), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{output}: " in result.stdout
    return output.read_bytes()


@pytest.fixture(scope="module")
def lambda_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "lambda.zip"
    run_build(out)
    return out


# -- the package --------------------------------------------------------------------------------


def test_same_inputs_give_the_same_bytes(
    lambda_zip: Path, build: ModuleType, tmp_path: Path
) -> None:
    """A second build, from a copy of the sources with other times and modes, is identical."""
    source = tmp_path / "serverless_pypi"
    shutil.copytree(build.DEFAULT_SOURCE, source, ignore=shutil.ignore_patterns("__pycache__"))
    for path in sorted(source.rglob("*"), reverse=True):
        path.chmod(0o700 if path.is_dir() else 0o600)
        os.utime(path, (2_000_000_000, 2_000_000_000))
    again = run_build(tmp_path / "again.zip", "--source", str(source), cwd=tmp_path)
    assert hashlib.sha256(again).hexdigest() == hashlib.sha256(lambda_zip.read_bytes()).hexdigest()


def test_a_changed_source_changes_the_bytes(
    lambda_zip: Path, build: ModuleType, tmp_path: Path
) -> None:
    source = tmp_path / "serverless_pypi"
    shutil.copytree(build.DEFAULT_SOURCE, source, ignore=shutil.ignore_patterns("__pycache__"))
    with (source / "__init__.py").open("a") as file:
        file.write("# changed\n")
    changed = run_build(tmp_path / "changed.zip", "--source", str(source))
    assert changed != lambda_zip.read_bytes()


def test_entries_are_sorted_stamped_and_plain_files(lambda_zip: Path) -> None:
    with zipfile.ZipFile(lambda_zip) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
        assert info.external_attr >> 16 == 0o100644, info.filename
        assert info.compress_type == zipfile.ZIP_DEFLATED, info.filename
        assert not info.is_dir(), info.filename


def test_the_zip_holds_the_package_and_only_what_the_runtime_lacks(
    lambda_zip: Path, build: ModuleType
) -> None:
    with zipfile.ZipFile(lambda_zip) as archive:
        files = {i.filename: archive.read(i) for i in archive.infolist()}
    top = {name.split("/")[0] for name in files}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info - {"__pycache__"} == EXPECTED_TOP  # __pycache__: multipart's
    assert {re.sub(r"-[^-]+\.dist-info$", "", d) for d in dist_info} == EXPECTED_DISTRIBUTIONS
    for name in files:
        if ".dist-info/" in name:
            # METADATA and license files only: no RECORD, INSTALLER, WHEEL or REQUESTED (a
            # license file is under licenses/ (PEP 639), or at the top as older wheels have it)
            kept = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")
            top_file = name.split("/")[1].upper()
            assert (
                name.endswith("/METADATA")
                or "/licenses/" in name
                or (name.count("/") == 1 and top_file.startswith(kept))
            ), name
    # boto3 and its dependencies come with the Lambda runtime
    for provided in ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six"):
        assert not any(n.split("/")[0].startswith(provided) for n in files), provided
    # the package is the source tree, byte for byte, but for the local fronts
    source = build.DEFAULT_SOURCE
    expected = {
        f"serverless_pypi/{p.relative_to(source).as_posix()}": p.read_bytes()
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    expected = {n: d for n, d in expected.items() if n not in build.LEFT_OUT_MODULES}
    package = {n: d for n, d in files.items() if n.startswith("serverless_pypi/")}
    assert {n: d for n, d in package.items() if "__pycache__/" not in n} == expected
    # small: 715,494 bytes before the API function signed its own requests (issue 15), which
    # added nothing; the upstream layer (issue 12) adds about 105 KB of its own code, the
    # policies (issue 13) about 70 KB; trusted publishing (issue 14) bundles joserfc and
    # cryptography with cffi: about 5.6 MB, 4.9 MB of it cryptography's compiled extension,
    # read from disk only when a token is minted; PEP 740 attestations (issue 14) bundle
    # pypi-attestations with sigstore, pydantic and their dependencies: 6.65 MB before, 20.8
    # MB after, read from disk only by an upload that carries attestations; 14.6 MB once what
    # a verification never imports is left out (build_lambda.NOT_IMPORTED, 5.5 MB: rich,
    # pygments, markdown-it, dnspython...; and LEFT_OUT_MODULES: the command lines of sigstore
    # and pypi-attestations, securesystemslib's vendored test vectors, 0.8 MB)
    assert lambda_zip.stat().st_size <= 15_300_000


def test_no_module_in_the_zip_imports_one_left_out(lambda_zip: Path, build: ModuleType) -> None:
    with zipfile.ZipFile(lambda_zip) as archive:
        sources = {
            i.filename: archive.read(i).decode("utf-8")
            for i in archive.infolist()
            if i.filename.endswith(".py")
        }
    assert not set(sources) & build.LEFT_OUT_MODULES
    for left_out in build.LEFT_OUT_MODULES:
        package, _, module = left_out.removesuffix(".py").rpartition("/")
        if not left_out.endswith(".py"):  # a data file: no module of its distribution names it
            folder, top = package.rpartition("/")[2], package.split("/")[0]
            assert not [n for n, t in sources.items() if n.startswith(f"{top}/") and folder in t]
            continue
        dotted = f"{package.replace('/', '.')}.{module}"
        relative = re.compile(rf"from \.+{module}\b|from \. import [^\n]*\b{module}\b")
        for name, text in sources.items():
            assert dotted not in text, (name, dotted)
            if name.startswith(package + "/") and name.count("/") == left_out.count("/"):
                assert not relative.search(text), (name, left_out)


def _import_names(distribution: str) -> set[str]:
    """The top-level modules a distribution installs, from its RECORD in this environment."""
    files = importlib.metadata.distribution(distribution).files or []
    tops = {Path(str(f)).parts[0] for f in files if not str(f).startswith("..")}
    return {t.removesuffix(".py") for t in tops if not t.endswith((".dist-info", "__pycache__"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_error(node: ast.Try) -> bool:
    caught = [h.type for h in node.handlers]
    names = [n for t in caught for n in (t.elts if isinstance(t, ast.Tuple) else [t])]
    return any(
        isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names
    )


def _imports(node: ast.AST, lazy: bool = False) -> Iterator[tuple[str, bool]]:
    """(module, whether it is imported inside a function or a `try: ... except ImportError`)
    of every import that can run: those under `if TYPE_CHECKING:` never do."""
    if isinstance(node, ast.Import):
        yield from ((alias.name, lazy) for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        yield node.module, lazy
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children: list[ast.AST] = list(node.orelse)
    else:
        children = list(ast.iter_child_nodes(node))
    inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
    guarded = isinstance(node, ast.Try) and _catches_import_error(node)
    for child in children:
        # in a `try:` that catches ImportError, only the tried body is guarded
        tried = guarded and isinstance(node, ast.Try) and child in node.body
        yield from _imports(child, inner or tried)


def test_no_module_in_the_zip_imports_a_distribution_left_out(
    lambda_zip: Path, build: ModuleType
) -> None:
    # the distributions dependencies declare but never import on Lambda: a module of the zip
    # imports one only where build_lambda.UNREACHED_IMPORTS says (inside a function nothing on
    # Lambda calls, or guarded by `except ImportError`), and that list holds no stale entry
    left_out = {name for d in build.NOT_IMPORTED for name in _import_names(d)}
    assert left_out >= {"rich", "pygments", "dns", "email_validator"}
    with zipfile.ZipFile(lambda_zip) as archive:
        tops = {i.filename.split("/")[0].removesuffix(".py") for i in archive.infolist()}
        assert not tops & left_out
        found: dict[str, set[str]] = {}
        for info in archive.infolist():
            if not info.filename.endswith(".py"):
                continue
            tree = ast.parse(archive.read(info), info.filename)
            for module, lazy in _imports(tree):
                if module.split(".")[0] in left_out:
                    assert lazy, f"{info.filename} imports {module} when it is imported"
                    found.setdefault(info.filename, set()).add(module.split(".")[0])
    assert found == build.UNREACHED_IMPORTS


def test_every_module_ships_bytecode_for_the_runtime(lambda_zip: Path, build: ModuleType) -> None:
    # /var/task is read-only: without bytecode in the zip, every cold start compiles everything
    if build.runtime_python() is None:
        pytest.skip("no Python 3.13 on this machine to compile bytecode with")
    with zipfile.ZipFile(lambda_zip) as archive:
        files = {i.filename: archive.read(i) for i in archive.infolist()}
    tag = "cpython-" + build.PYTHON_VERSION.replace(".", "")
    for name in files:
        if name.endswith(".py"):
            folder, _, module = name.rpartition("/")
            cached = f"{folder}/__pycache__/{module[:-3]}.{tag}.pyc".lstrip("/")
            assert cached in files, name
            # PEP 552 header: flags 0b01 = hash-based, source never checked (no timestamps)
            assert int.from_bytes(files[cached][4:8], "little") == 0b01, cached
    assert not any(n.endswith(".pyc") and f".{tag}." not in n for n in files)


def test_the_left_out_distributions_are_exactly_boto3_and_its_dependencies(
    build: ModuleType,
) -> None:
    def closure(name: str, seen: set[str]) -> set[str]:
        seen.add(canonicalize_name(name))
        for text in importlib.metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate(build.LAMBDA_MARKERS):
                if canonicalize_name(req.name) not in seen:
                    closure(req.name, seen)
        return seen

    assert closure("boto3", set()) == set(build.RUNTIME_PROVIDED)


# -- running it -----------------------------------------------------------------------------------

DRIVER = textwrap.dedent(
    """
    # A stand-in for the Lambda runtime's bootstrap: the task root first on sys.path, then one
    # invocation per line of JSON on stdin, each answer one line of JSON on stdout.
    import importlib, importlib.util, json, os, sys, traceback

    task_root = os.environ["LAMBDA_TASK_ROOT"]
    sys.path.insert(0, task_root)
    module_name, _, attribute = os.environ["_HANDLER"].rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    origins = {}
    # found, not imported: what the handler imports is the handler's business (and checked)
    for name in ("serverless_pypi", "packaging", "multipart", "boto3"):
        origins[name] = importlib.util.find_spec(name).origin
    for name in ("moto", "waitress", "pytest", "hypothesis", "pypi_simple", "twine"):
        origins[name] = None if importlib.util.find_spec(name) is None else "importable"
    print(json.dumps({"ready": origins, "prefix": sys.prefix, "path": sys.path}), flush=True)
    for line in sys.stdin:
        event = json.loads(line)
        if event == "modules?":  # not an event: the modules this process has imported so far
            print(json.dumps({"result": sorted(sys.modules)}), flush=True)
            continue
        try:
            answer = {"result": handler(event, None)}
        except Exception:
            answer = {"error": traceback.format_exc()}
        print(json.dumps(answer), flush=True)
    """
)


def _link_distribution(name: str, site: Path) -> None:
    dist = importlib.metadata.distribution(name)
    base = Path(str(dist.locate_file("")))
    tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
    for top in tops - {"__pycache__"}:
        if not (site / top).exists():
            (site / top).symlink_to(base / top)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, build: ModuleType) -> Path:
    """A fresh venv with only boto3 and its dependencies: the Lambda Python runtime's share."""
    root = tmp_path_factory.mktemp("runtime")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = Path(
        subprocess.run(
            [
                str(root / "bin/python"),
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for name in sorted(build.RUNTIME_PROVIDED):
        _link_distribution(name, site)
    return root


@pytest.fixture(scope="module")
def task_root(lambda_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(lambda_zip) as archive:
        archive.extractall(root)
    (root / "_driver.py").write_text(DRIVER)
    return root


class Function:
    """One Lambda function: a warm process of the runtime venv that takes invocations."""

    def __init__(self, runtime: Path, task: Path, handler: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [str(runtime / "bin/python"), "-I", "-B", str(task / "_driver.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "LAMBDA_TASK_ROOT": str(task), "_HANDLER": handler},
            cwd=task,
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            stderr: IO[str] | None = self.process.stderr
            raise AssertionError(f"the function died:\n{stderr.read() if stderr else ''}")
        data: dict[str, Any] = json.loads(line)
        return data

    def __call__(self, event: dict[str, Any] | str) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(event) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        assert "error" not in answer, answer["error"]
        return answer["result"]

    def close(self) -> str:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
        return self.process.stderr.read() if self.process.stderr else ""


def _environment(
    names: dict[str, Any], values: dict[str, str], base: dict[str, str]
) -> dict[str, str]:
    """The variables the module sets for a function (its keys), with this test's values."""
    env = {k: values[k] for k in names if values.get(k)}
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **base, **env}


@pytest.fixture
def functions(
    runtime: Path,
    task_root: Path,
    aws_env: dict[str, str],
    s3_bucket: str,
    tmp_path: Path,
) -> Iterator[tuple[Function, Function]]:
    values = {
        "S3_BUCKET": s3_bucket,
        "S3_PREFIX": PREFIX + "/",
        "S3_PRESIGNED_URL_TTL": "300",
        "FALLBACK_INDEX_URL": "https://pypi.org/simple/",
        "PRIVATE_PROJECTS": "acme-*",
        "CACHE_CONTROL": "",
        "REQUIRE_AUTH_FOR_READ": "false",
        "MAX_UPLOAD_SIZE": "",
        "LOG_REQUESTS": "false",
    }
    base = {**aws_env, "HOME": str(tmp_path)}
    api = Function(
        runtime,
        task_root,
        local("handler_api"),
        {
            **_environment(local("api_environment"), values, base),
            "AWS_LAMBDA_FUNCTION_NAME": "serverless-pypi-api",
        },
    )
    reindex = Function(
        runtime,
        task_root,
        local("handler_reindex"),
        {
            **_environment(local("reindex_environment"), values, base),
            "AWS_LAMBDA_FUNCTION_NAME": "serverless-pypi-reindex",
        },
    )
    yield api, reindex
    for function in (api, reindex):
        if function.process.poll() is None:
            function.close()


# -- events ---------------------------------------------------------------------------------------


def rest_api(
    route: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> dict[str, Any]:
    """REST API (payload 1.0) on stage "simple": the proxy resource {package+}, or the root."""
    data = load("rest_api_proxy" if route else "rest_api_root")
    headers = {"Accept-Encoding": "identity", **(headers or {})}
    data["headers"] = headers
    data["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    data["httpMethod"] = data["requestContext"]["httpMethod"] = method
    data["path"] = f"/{route}"
    data["requestContext"]["path"] = f"/simple/{route}"
    data["pathParameters"] = {"package": route} if route else None
    if body is not None:
        # binary_media_types = ["*/*"]: every body reaches the function base64-encoded
        data["body"] = base64.b64encode(body).decode()
        data["isBase64Encoded"] = True
    return data


def payload_v2(shape: str, route: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """HTTP API ($default stage) or function URL event (payload 2.0) for GET /simple/<route>."""
    data = load(shape)
    data["rawPath"] = data["requestContext"]["http"]["path"] = f"/simple/{route}"
    data["requestContext"]["http"]["method"] = "GET"
    data["headers"] = {
        k.lower(): v for k, v in {"accept-encoding": "identity", **(headers or {})}.items()
    }
    return data


def s3_event(detail_type: str, key: str, bucket: str) -> dict[str, Any]:
    """An EventBridge event from S3 (what the module's rule forwards, whole)."""
    return {
        "version": "0",
        "id": "2d5a2f31-0e9a-7c1b-4a6f-1d3c5b7e9f00",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-01-02T03:04:05Z",
        "region": REGION,
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 1, "sequencer": "0065F1E2D3A1B2C3D4"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject" if detail_type == "Object Created" else "DeleteObject",
        },
    }


def body_of(response: dict[str, Any]) -> bytes:
    assert set(response) <= LAMBDA_RESPONSE_KEYS
    return body_bytes(response)


def json_page(api: Function, project: str) -> dict[str, Any]:
    response = api(rest_api(f"{project}/", headers={"Accept": JSON}))
    assert response["statusCode"] == 200, response
    page: dict[str, Any] = json.loads(body_of(response))
    return page


def test_both_handlers_run_from_the_zip_with_only_boto3(
    functions: tuple[Function, Function],
    task_root: Path,
    runtime: Path,
    s3_bucket: str,
    moto_url: str,
    tmp_path: Path,
) -> None:
    api, reindex = functions
    for function in (api, reindex):
        origins = function.ready["ready"]
        for name in ("serverless_pypi", "packaging", "multipart"):
            assert origins[name].startswith(str(task_root)), (name, origins[name])
        assert origins["boto3"].startswith(str(runtime)), origins["boto3"]
        for name in ("moto", "waitress", "pytest", "hypothesis", "pypi_simple", "twine"):
            assert origins[name] is None, f"{name} is importable in the runtime venv"

    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
    first = make_wheel(tmp_path, "demo", "1.0")
    key = f"{PREFIX}/demo/{first.name}"
    s3.put_object(Bucket=s3_bucket, Key=key, Body=first.read_bytes())

    # S3 -> EventBridge -> indexer: the whole event, as the module's rule forwards it
    reindex(s3_event("Object Created", key, s3_bucket))
    page = json_page(api, "demo")
    assert [f["filename"] for f in page["files"]] == [first.name]
    assert page["files"][0]["hashes"] == {"sha256": hashlib.sha256(first.read_bytes()).hexdigest()}
    assert "core-metadata" in page["files"][0]  # PEP 658: the indexer opened the wheel

    # HTTP API: the PEP 658 metadata file, as pip fetches it before the wheel
    response = api(payload_v2("http_api_default_stage", f"demo/{first.name}.metadata"))
    assert response["statusCode"] == 200, response
    with zipfile.ZipFile(first) as wheel:
        assert body_of(response) == wheel.read("demo-1.0.dist-info/METADATA")

    # function URL: the download is a redirect to a presigned URL that serves the bytes
    response = api(payload_v2("function_url", f"demo/{first.name}"))
    assert response["statusCode"] == 302, response
    with urllib.request.urlopen(response["headers"]["Location"], timeout=30) as download:
        assert download.read() == first.read_bytes()

    # REST API root: the project list; an unknown project goes to the fallback index
    root = api(rest_api("", headers={"Accept": "text/html"}))
    assert root["statusCode"] == 200 and b"demo" in body_of(root)
    # a page, a metadata file, a download and the project list: none imported an AWS SDK
    # (issue 15: the read path signs its requests with the standard library)
    sdk = [m for m in api("modules?") if m.split(".")[0] in {"boto3", "botocore", "s3transfer"}]
    assert sdk == [], sdk
    unknown = api(rest_api("six/"))
    assert unknown["statusCode"] == 302
    assert unknown["headers"]["Location"] == "https://pypi.org/simple/six/"
    private = api(rest_api("acme-secret/"))
    assert private["statusCode"] == 404  # PRIVATE_PROJECTS: never sent to the fallback

    # an upload through the REST API (multipart, base64 as binary_media_types "*/*" delivers)
    store = S3Store(s3_bucket, PREFIX, endpoint_url=moto_url)
    token, _ = TokenStore(store).create("write", (), None, "zip test")
    second = make_wheel(tmp_path, "demo", "2.0")
    form, content_type = upload_body(second)
    upload = rest_api(
        "", "POST", {"Content-Type": content_type, "Authorization": basic_auth(token)}, form
    )
    response = api(upload)
    assert response["statusCode"] == 200, body_of(response)
    assert s3.get_object(Bucket=s3_bucket, Key=f"{PREFIX}/demo/{second.name}")["Body"].read() == (
        second.read_bytes()
    )

    # a file put in the bucket behind the index's back: the scheduled reconcile finds it,
    # with exactly the event the module's schedule sends
    third = make_wheel(tmp_path, "demo", "3.0")
    s3.put_object(Bucket=s3_bucket, Key=f"{PREFIX}/demo/{third.name}", Body=third.read_bytes())
    reindex(local("full_reindex_event"))
    names = [f["filename"] for f in json_page(api, "demo")["files"]]
    assert names == [first.name, second.name, third.name]

    # a deletion, delivered as only the event's detail (input_path = "$.detail")
    s3.delete_object(Bucket=s3_bucket, Key=key)
    reindex(s3_event("Object Deleted", key, s3_bucket)["detail"])
    names = [f["filename"] for f in json_page(api, "demo")["files"]]
    assert names == [second.name, third.name]

    # the functions logged requests without query strings or credentials
    logs = api.close() + reindex.close()
    assert token not in logs
    assert "X-Amz-Signature" not in logs
