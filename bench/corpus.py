"""A real dependency tree from PyPI, downloaded once with `pip download` into bench/.corpus/.

The tree: `requests flask rich attrs pydantic` and their dependencies (about 20 projects,
wheels for this interpreter), a few older versions of the main projects and of some
dependencies (more files per page), and sdists of several projects. Re-runs reuse the
download; it is fetched again only when this specification changes.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

from .common import CORPUS, clean_env, log

#: what the install benchmark asks pip and uv to install
REQUIREMENTS = ("requests", "flask", "rich", "attrs", "pydantic")
#: more versions on the pages (files only, no dependencies)
OLDER = (
    "requests==2.31.0",
    "requests==2.32.3",
    "flask==2.3.3",
    "flask==3.0.3",
    "rich==13.7.1",
    "rich==13.9.4",
    "attrs==23.2.0",
    "attrs==24.2.0",
    "pydantic==2.9.2",
    "pydantic==2.10.6",
    "click==8.1.7",
    "jinja2==3.1.4",
    "urllib3==1.26.20",
    "werkzeug==3.0.6",
    "pygments==2.18.0",
    "idna==3.7",
    "certifi==2024.8.30",
    "requests==2.30.0",
    "flask==3.0.0",
    "rich==13.8.1",
    "attrs==25.1.0",
    "pydantic==2.11.7",
    "click==8.1.8",
    "markupsafe==2.1.5",
    "typing-extensions==4.12.2",
    "charset-normalizer==3.3.2",
    "werkzeug==2.3.8",
    "blinker==1.8.2",
    "itsdangerous==2.1.2",
    "urllib3==2.2.3",
)
#: sdists (pip builds their metadata once, at download time)
SDISTS = (
    "requests",
    "requests==2.31.0",
    "flask",
    "attrs",
    "click",
    "itsdangerous",
    "idna",
    "blinker",
    "mdurl",
    "markupsafe",
)


@dataclass(frozen=True)
class Tree:
    directory: Path  # every file, flat
    files: int
    projects: tuple[str, ...]  # normalized names
    requirements: tuple[str, ...]


def _project(filename: str) -> str:
    if filename.endswith(".whl"):
        return canonicalize_name(parse_wheel_filename(filename)[0])
    return canonicalize_name(parse_sdist_filename(filename)[0])


def _download(directory: Path, *args: str) -> None:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(directory)]
    done = subprocess.run(
        [*command, *args], env=clean_env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip download {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def _rounds(pins: tuple[str, ...]) -> list[list[str]]:
    """Split pins so that no pip call asks for two versions of one project."""
    rounds: list[list[str]] = []
    for pin in pins:
        name = canonicalize_name(pin.split("==")[0])
        for group in rounds:
            if all(canonicalize_name(p.split("==")[0]) != name for p in group):
                group.append(pin)
                break
        else:
            rounds.append([pin])
    return rounds


def prepare() -> Tree:
    directory = CORPUS / "files"
    directory.mkdir(parents=True, exist_ok=True)
    stamp = CORPUS / "done.json"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    steps = [[*REQUIREMENTS]]
    steps += [["--no-deps", *group] for group in _rounds(OLDER)]
    steps += [["--no-deps", "--no-binary", ":all:", *group] for group in _rounds(SDISTS)]
    done: list[list[str]] = json.loads(stamp.read_text()) if stamp.exists() else []
    if not any(directory.iterdir()):
        done = []  # the files are gone: download again
    for step in steps:
        key = [python, *step]
        if key in done:
            continue
        log(f"corpus: pip download {' '.join(step)} (once; cached in bench/.corpus)")
        _download(directory, *step)
        done.append(key)
        stamp.write_text(json.dumps(done, indent=1))
    files = sorted(p for p in directory.iterdir() if p.name.endswith((".whl", ".tar.gz", ".zip")))
    accepted = CORPUS / "accepted"  # the files every server takes: hard links, no copies
    shutil.rmtree(accepted, ignore_errors=True)
    accepted.mkdir()
    kept = []
    for path in files:
        if _accepted_everywhere(path):
            os.link(path, accepted / path.name)
            kept.append(path)
    log(f"corpus: {len(kept)} of {len(files)} files accepted by every server")
    projects = tuple(sorted({_project(p.name) for p in kept}))
    return Tree(accepted, len(kept), projects, REQUIREMENTS)


def _accepted_everywhere(path: Path) -> bool:
    """False for a file peryx refuses, so that no server is measured on it: a wheel whose
    metadata carries `License-File` below Metadata-Version 2.4 (the field is defined from 2.4
    on, PEP 639), an sdist whose PKG-INFO is below Metadata-Version 2.2 (PEP 643)."""
    raw = _metadata(path)
    if raw is None:
        return False
    headers = email.parser.BytesHeaderParser().parsebytes(raw)
    version = tuple(int(x) for x in str(headers.get("Metadata-Version", "1.0")).split("."))
    if not path.name.endswith(".whl") and version < (2, 2):
        return False
    return version >= (2, 4) or headers.get("License-File") is None


def _metadata(path: Path) -> bytes | None:
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            return archive.read(name)
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            found = [n for n in archive.namelist() if n.count("/") == 1]
            info = next((n for n in found if n.endswith("/PKG-INFO")), None)
            return archive.read(info) if info else None
    with tarfile.open(path) as archive:
        for member in archive:
            if member.name.count("/") == 1 and member.name.endswith("/PKG-INFO"):
                handle = archive.extractfile(member)
                return handle.read() if handle else None
    return None


def digest(tree: Tree) -> str:
    """A short fingerprint of the corpus (file names and sizes)."""
    h = hashlib.sha256()
    for path in sorted(tree.directory.iterdir()):
        h.update(f"{path.name}:{path.stat().st_size}\n".encode())
    return h.hexdigest()[:12]
