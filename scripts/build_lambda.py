#!/usr/bin/env python3
"""Build `dist/lambda.zip`, the code of both Lambda functions (`make lambda`).

The zip holds the `serverless_pypi` package and the runtime dependencies the AWS Lambda
Python 3.13 runtime lacks, pinned with hashes in `scripts/lambda-requirements.txt`; boto3 and
its own dependencies are part of the runtime and stay out, and so do the dependencies of
dependencies that nothing on Lambda imports (`NOT_IMPORTED`: sigstore's command line's).

Reproducible: the same sources and lock give the same bytes. Entries are sorted, every entry
has the same timestamp (1980-01-01, or SOURCE_DATE_EPOCH when set) and mode 0644, nothing is
read from the file system's metadata, and only what runs is kept: no `RECORD`/`INSTALLER`/
`WHEEL` files (each dependency keeps its METADATA and license files).

Bytecode: Lambda unpacks the zip into a read-only /var/task, where Python cannot cache what it
compiles, so a zip without bytecode compiles every module at every cold start (about 15% of
the cold start, measured in `make bench`). The build compiles every module with a Python of the
runtime's version (3.13: `$LAMBDA_PYTHON`, `python3.13` on the PATH, or a pyenv install) into
PEP 552 unchecked-hash `.pyc` files, which hold no timestamps and so stay reproducible. Without
such a Python the zip is built without bytecode, and the build says so.

Wheels are downloaded once into a cache folder (verified against the lock's hashes) and then
installed from there with no network access.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "serverless_pypi"
DEFAULT_SOURCE = ROOT / "src" / PACKAGE
DEFAULT_OUTPUT = ROOT / "dist" / "lambda.zip"
DEFAULT_CACHE = ROOT / "build" / "lambda-wheels"
LOCK = ROOT / "scripts" / "lambda-requirements.txt"
PYPROJECT = ROOT / "pyproject.toml"

#: the Lambda target: runtime python3.13 on arm64 (Graviton)
PYTHON_VERSION = "3.13"
PLATFORM = "manylinux2014_aarch64"
#: distributions the AWS Lambda Python runtime already has (boto3 and what it depends on)
RUNTIME_PROVIDED = frozenset(
    canonicalize_name(n)
    for n in ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six")
)
#: dependencies of the local server and the command line only (`serverless-pypi serve`, its
#: progress bar): the Lambda functions never import them, so the zip leaves them out
LOCAL_ONLY = frozenset(canonicalize_name(n) for n in ("waitress", "tqdm"))
#: dependencies of dependencies that nothing on Lambda imports: PEP 740 verification
#: (`serverless_pypi.auth.attestations`) runs pypi-attestations and sigstore, never their
#: command lines, and never builds a model with an e-mail field. Left out of the lock and the
#: zip (about 5.5 MB of its 20.8); tests/deploy/test_lambda_zip.py checks that no module in
#: the zip imports them but from where UNREACHED_IMPORTS says, and tests/deploy/
#: test_lambda_imports.py runs every verification path with them made unimportable.
NOT_IMPORTED = frozenset(
    canonicalize_name(n)
    for n in (
        # sigstore's command line (`sigstore/_cli.py`, left out below) and pydantic's
        # pretty-printer of core schemas (a debugging aid nothing calls)
        "rich",
        # rich's syntax highlighting and Markdown rendering, and the latter's URL helper
        "pygments",
        "markdown-it-py",
        "mdurl",
        # pydantic[email], which sigstore-rekor-types asks for, though none of its models (nor
        # sigstore's, nor pypi-attestations') has an EmailStr or NameEmail field: pydantic
        # imports email-validator only to build such a field's schema
        "email-validator",
        "dnspython",
        # pypi-attestations' command line (`pypi_attestations/_cli.py`, left out below)
        "rfc3986",
    )
)
#: imports of a NOT_IMPORTED distribution by a module in the zip that never run on Lambda
#: (module -> the names it imports; imports under `if TYPE_CHECKING:` never run and need no
#: entry). Checked by tests/deploy/test_lambda_zip.py: such an import anywhere else, or an
#: entry no longer needed, fails.
UNREACHED_IMPORTS = {
    # inside `pretty_print_core_schema()`, a debugging helper nothing calls
    "pydantic/_internal/_core_utils.py": frozenset({"rich"}),
    # inside `import_email_validator()`, called only to build an EmailStr or NameEmail schema
    "pydantic/networks.py": frozenset({"email_validator"}),
    # pydantic 1's API (pydantic.v1), which pydantic imports only for a pydantic-1 type (one
    # with `__get_validators__`) or name (`pydantic.utils.*`), and nothing else in the zip
    # uses either: the same function, and the Hypothesis plugin's `try: import
    # email_validator except ImportError`
    "pydantic/v1/networks.py": frozenset({"email_validator"}),
    "pydantic/v1/_hypothesis_plugin.py": frozenset({"email_validator"}),
}
#: modules nothing on Lambda imports, left out to keep the zip small (tests/deploy/
#: test_lambda_zip.py checks that no module in the zip imports them): the local fronts, which
#: need the LOCAL_ONLY distributions (the server, the command line, `python -m`), parts of
#: packaging the package never uses (lock files, dependency groups, direct URLs), and the
#: command lines and tests that the attestation libraries ship
LEFT_OUT_MODULES = frozenset(
    {
        f"{PACKAGE}/adapters/server.py",
        f"{PACKAGE}/adapters/cli.py",
        # `serverless-pypi mirror` (the command line only) and what it reads
        f"{PACKAGE}/adapters/mirror.py",
        f"{PACKAGE}/adapters/policy_cli.py",
        f"{PACKAGE}/adapters/publisher_cli.py",
        # `serverless-pypi attestations require | unrequire | list` (PEP 740)
        f"{PACKAGE}/adapters/attestations_cli.py",
        # `serverless-pypi upload`, the Upload 2.0 client (PEP 694): its command line and the
        # whole client package under it (HTTP, credentials, the session flow, the mechanisms)
        f"{PACKAGE}/adapters/upload_cli.py",
        f"{PACKAGE}/upload_client/__init__.py",
        f"{PACKAGE}/upload_client/credentials.py",
        f"{PACKAGE}/upload_client/errors.py",
        f"{PACKAGE}/upload_client/files.py",
        f"{PACKAGE}/upload_client/legacy.py",
        f"{PACKAGE}/upload_client/progress.py",
        f"{PACKAGE}/upload_client/protocol.py",
        f"{PACKAGE}/upload_client/s3_multipart.py",
        f"{PACKAGE}/upload_client/transport.py",
        f"{PACKAGE}/upload_client/uploader.py",
        f"{PACKAGE}/core/wanted.py",
        f"{PACKAGE}/__main__.py",
        "packaging/pylock.py",
        "packaging/dependency_groups.py",
        "packaging/direct_url.py",
        # `python -m sigstore` and `python -m pypi_attestations` (they need rich and rfc3986)
        "sigstore/__main__.py",
        "sigstore/_cli.py",
        "pypi_attestations/__main__.py",
        "pypi_attestations/_cli.py",
        # pydantic's mypy plugin (needs mypy, which only a type checker runs)
        "pydantic/mypy.py",
        # the tests and benchmark of securesystemslib's vendored pure-Python ed25519, and their
        # 2.4 MB of test vectors (0.8 MB compressed), read by the test only
        "securesystemslib/_vendor/ed25519/test_ed25519.py",
        "securesystemslib/_vendor/ed25519/science.py",
        "securesystemslib/_vendor/ed25519/test_data/ed25519",
    }
)
#: PEP 508 marker environment of the Lambda runtime, to evaluate dependency markers
LAMBDA_MARKERS = {
    "implementation_name": "cpython",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": f"{PYTHON_VERSION}.0",
    "python_version": PYTHON_VERSION,
    "sys_platform": "linux",
    "os_name": "posix",
    "extra": "",
}
#: 1980-01-01 00:00:00 is the earliest time a zip entry can carry
ZIP_EPOCH = 315532800
#: where Lambda unpacks the function's code
LAMBDA_TASK_ROOT = "/var/task"
FILE_MODE = 0o644
#: of a dependency's dist-info folder, only these are kept (PEP 639 license files and METADATA)
_KEPT_DIST_INFO = ("METADATA", "LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS")


class BuildError(Exception):
    """The zip cannot be built as asked; the message says why."""


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: str
    sha256: frozenset[str]
    line: str


def requirement_lines(text: str) -> list[str]:
    """The requirements of a requirements file, one line each: comments dropped, lines
    continued with a backslash (as uv and pip-compile write hashes) joined."""
    lines, pending = [], ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line.removesuffix("\\") + " "
            continue
        if joined := " ".join((pending + line).split()):
            lines.append(joined)
        pending = ""
    if joined := " ".join(pending.split()):
        lines.append(joined)
    return lines


def read_lock(path: Path = LOCK) -> list[Pin]:
    """The pinned requirements: `name==version --hash=sha256:...` lines."""
    pins = []
    for line in requirement_lines(path.read_text()):
        spec, *options = line.split()
        hashes = frozenset(
            o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=sha256:")
        )
        req = Requirement(spec)
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or not hashes:
            raise BuildError(f"{path.name}: {line!r} must be NAME==VERSION --hash=sha256:HEX")
        pins.append(Pin(canonicalize_name(req.name), specs[0].version, hashes, line))
    return pins


def _runtime_requirements(requirements: Iterable[str]) -> set[NormalizedName]:
    names = set()
    for text in requirements:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(LAMBDA_MARKERS):
            names.add(canonicalize_name(req.name))
    return names


def check_lock(pins: list[Pin], pyproject: Path = PYPROJECT) -> None:
    """The lock bundles exactly what the package needs at run time beyond the runtime's own."""
    project = tomllib.loads(pyproject.read_text())["project"]
    needed = _runtime_requirements(project.get("dependencies", [])) - RUNTIME_PROVIDED - LOCAL_ONLY
    locked = {p.name for p in pins}
    if missing := needed - locked:
        raise BuildError(
            f"pyproject.toml depends on {sorted(missing)}, which {LOCK.name} does not pin"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pip(*args: str) -> None:
    # --isolated: no user or site pip configuration, so every machine resolves the same way
    command = [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BuildError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


def _target_options() -> list[str]:
    return [
        "--no-deps",
        "--require-hashes",
        "--only-binary=:all:",
        f"--platform={PLATFORM}",
        f"--python-version={PYTHON_VERSION}",
        "--implementation=cp",
        f"--abi=cp{PYTHON_VERSION.replace('.', '')}",
        "--abi=abi3",
        "--abi=none",
    ]


def fetch_wheels(pins: list[Pin], cache: Path) -> None:
    """Download the pinned wheels into `cache` unless they are there already."""
    cache.mkdir(parents=True, exist_ok=True)
    present = {_sha256(p) for p in cache.glob("*.whl")}
    if all(pin.sha256 & present for pin in pins):
        return
    _pip("download", "--dest", str(cache), "--requirement", str(LOCK), *_target_options())


def install(pins: list[Pin], cache: Path, target: Path) -> None:
    """Install the pinned wheels from the cache into `target`, without the network."""
    fetch_wheels(pins, cache)
    _pip(
        "install",
        "--no-index",
        f"--find-links={cache}",
        f"--target={target}",
        "--no-compile",
        "--requirement",
        str(LOCK),
        *_target_options(),
    )
    # what the pinned distributions need must be pinned too, be part of the runtime, or be
    # one of the distributions they declare but never import on Lambda
    locked = {p.name for p in pins}
    for metadata in sorted(target.glob("*.dist-info/METADATA")):
        requires = [
            line.partition(":")[2].strip()
            for line in metadata.read_text(encoding="utf-8").splitlines()
            if line.startswith("Requires-Dist:")
        ]
        if missing := _runtime_requirements(requires) - locked - RUNTIME_PROVIDED - NOT_IMPORTED:
            raise BuildError(
                f"{metadata.parent.name} needs {sorted(missing)}, which {LOCK.name} does not pin"
            )


def _kept(relative: Path) -> bool:
    parts = relative.parts
    if "__pycache__" in parts or relative.suffix in {".pyc", ".pyo"}:
        return False
    if any(part.startswith(".") for part in parts):
        return False  # editor and OS droppings (.DS_Store, .*.swp)
    if parts[0] == "bin":
        return False  # console scripts: nothing runs them on Lambda
    if parts[0].endswith(".dist-info"):
        return len(parts) > 1 and (
            parts[1] == "licenses" or parts[1].upper().startswith(_KEPT_DIST_INFO)
        )
    return True


def collect(source: Path, site: Path) -> dict[str, Path]:
    """Archive name -> file, for the package and the installed dependencies."""
    entries: dict[str, Path] = {}
    for base, prefix in ((source, f"{PACKAGE}/"), (site, "")):
        for path in sorted(base.rglob("*")):
            relative = path.relative_to(base)
            if path.is_file() and _kept(relative):
                name = prefix + relative.as_posix()
                if name in LEFT_OUT_MODULES:
                    continue
                if name in entries:
                    raise BuildError(f"{name} comes from two places")
                entries[name] = path
    if f"{PACKAGE}/__init__.py" not in entries:
        raise BuildError(f"{source} is not the {PACKAGE} package")
    return entries


def runtime_python() -> str | None:
    """A Python of the Lambda runtime's version, to compile bytecode with."""
    candidates = [os.environ.get("LAMBDA_PYTHON"), shutil.which(f"python{PYTHON_VERSION}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in pyenv.glob(f"{PYTHON_VERSION}.*/bin/python3"))
    for candidate in candidates:
        if not candidate:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == PYTHON_VERSION:
            return candidate
    return None


def compile_bytecode(entries: dict[str, Path], python: str, stage: Path) -> dict[str, Path]:
    """The `.pyc` of every module in `entries`, compiled by `python` as Lambda would load it."""
    for name, path in entries.items():
        if name.endswith(".py"):
            target = stage / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    subprocess.run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            # PEP 552: no source timestamp inside, never re-checked (the zip never changes)
            "--invalidation-mode=unchecked-hash",
            # tracebacks name the files where Lambda unpacks them
            "-s",
            str(stage),
            "-p",
            LAMBDA_TASK_ROOT,
            str(stage),
        ],
        check=True,
    )
    return {
        path.relative_to(stage).as_posix(): path
        for path in sorted(stage.rglob("*.pyc"))
        if path.parent.name == "__pycache__"
    }


def _timestamp() -> tuple[int, int, int, int, int, int]:
    epoch = max(int(os.environ.get("SOURCE_DATE_EPOCH", ZIP_EPOCH)), ZIP_EPOCH)
    return time.gmtime(epoch)[:6]


def write_zip(entries: dict[str, Path], output: Path) -> None:
    """Write the entries sorted, with one timestamp and one mode, atomically."""
    stamp = _timestamp()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so that external_attr carries the mode
            info.external_attr = (0o100000 | FILE_MODE) << 16
            archive.writestr(info, entries[name].read_bytes(), compresslevel=9)
    partial.replace(output)


def build(
    output: Path = DEFAULT_OUTPUT, source: Path = DEFAULT_SOURCE, cache: Path = DEFAULT_CACHE
) -> Path:
    pins = read_lock()
    check_lock(pins)
    python = runtime_python()
    if python is None:
        print(
            f"build_lambda: no Python {PYTHON_VERSION} found (set LAMBDA_PYTHON): the zip has no "
            "bytecode, and every cold start compiles the modules",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="lambda-site-") as work:
        site, stage = Path(work) / "site", Path(work) / "bytecode"
        install(pins, cache, site)
        entries = collect(source, site)
        if python is not None:
            entries.update(compile_bytecode(entries, python, stage))
        write_zip(entries, output)
    return output


def _listing(path: Path) -> Iterator[str]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            yield info.filename


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the zip to write")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the package folder")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="downloaded wheels")
    args = parser.parse_args(argv)
    try:
        output = build(args.output, args.source, args.cache)
    except BuildError as e:
        print(f"build_lambda: {e}", file=sys.stderr)
        return 1
    count = sum(1 for _ in _listing(output))
    size = output.stat().st_size
    print(f"{output}: {count} files, {size / 1024:.0f} KiB, sha256 {_sha256(output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
