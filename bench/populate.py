"""Fill stores fast: tiny objects for the files, derived data written through the Catalog.

The page and latency benchmarks need projects of 10 to 10,000 files. Publishing real wheels
would take minutes, so the files are one-byte objects and their records (sizes, hashes) are
made up; the derived data still goes through `Catalog.update_project`, the code that writes
it in production.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from serverless_pypi.core.model import FileRecord, Manifest
from serverless_pypi.core.names import NormalizedName
from serverless_pypi.index.catalog import Catalog, Change
from serverless_pypi.storage import Store
from serverless_pypi.storage.local import LocalStore
from serverless_pypi.storage.s3 import S3Store

from .common import Moto

BODY = b"x"
UPLOAD_TIME = "2024-01-02T03:04:05.000000Z"


def project_name(files: int) -> NormalizedName:
    return NormalizedName(f"bench-files-{files}")


def filenames(name: str, count: int) -> list[str]:
    """`count` distinct file names of project `name`: wheels and sdists, one version each."""
    dist = name.replace("-", "_")
    names = []
    for i in range(count):
        version = f"{i // 100}.{i % 100}.0"
        if i % 2:
            names.append(f"{dist}-{version}.tar.gz")
        else:
            names.append(f"{dist}-{version}-py3-none-any.whl")
    return names


def fake_record(name: str, filename: str, etag: str) -> FileRecord:
    digest = hashlib.sha256(filename.encode()).hexdigest()
    return FileRecord(
        filename=filename,
        key=f"{name}/{filename}",
        size=10_000 + len(filename),
        upload_time=UPLOAD_TIME,
        etag=etag,
        sha256=digest,
        requires_python=">=3.9",
        metadata_sha256=hashlib.sha256(digest.encode()).hexdigest()
        if filename.endswith(".whl")
        else None,
    )


def put_objects(store: Store, keys: Sequence[str], moto: Moto | None = None) -> str:
    """Write one-byte objects under `keys`; returns the etag S3 would give them."""
    if isinstance(store, LocalStore):
        for key in keys:
            path = store.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(BODY)
    elif isinstance(store, S3Store) and moto is not None:
        moto.put_many(store.bucket, [store.prefix + key for key in keys], BODY)
    else:
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda key: store.put(key, BODY), keys))
    return '"' + hashlib.md5(BODY).hexdigest() + '"'


def add_project(store: Store, name: str, count: int, moto: Moto | None = None) -> None:
    """A project of `count` files: the objects, then its manifest and pages (one update)."""
    files = filenames(name, count)
    etag = put_objects(store, [f"{name}/{f}" for f in files], moto)
    records = {f: fake_record(name, f, etag) for f in files}

    def change(index: Manifest) -> Change[None]:
        index.files.update(records)
        return Change(None)

    Catalog(store).update_project(NormalizedName(name), change)


def fill(
    store: Store, sizes: Iterable[int], fillers: int = 0, moto: Moto | None = None
) -> list[NormalizedName]:
    """Projects of each size in `sizes` plus `fillers` one-file projects (for the root page)."""
    names = []
    for size in sizes:
        add_project(store, project_name(size), size, moto)
        names.append(project_name(size))
    for i in range(fillers):
        add_project(store, f"filler-{i:04d}", 1, moto)
    return names


# -- tiny real wheels (the indexer hashes and inspects every file) ------------------------
def tiny_wheel(name: str, version: str) -> tuple[str, bytes]:
    """A minimal valid wheel (METADATA, WHEEL, RECORD) of a few hundred bytes."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n".encode()
    wheel = b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{info}/METADATA", metadata)
        archive.writestr(f"{info}/WHEEL", wheel)
        archive.writestr(f"{info}/RECORD", f"{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return f"{dist}-{version}-py3-none-any.whl", buffer.getvalue()


def write_wheel_tree(root: Path, files: int, per_project: int = 100) -> None:
    """`files` tiny wheels in `files / per_project` project folders under `root`."""
    for i in range(files):
        name = f"proj-{i // per_project:05d}"
        filename, data = tiny_wheel(name, f"1.{i % per_project}.0")
        folder = root / name
        if i % per_project == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / filename).write_bytes(data)
