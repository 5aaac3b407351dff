"""A store in a local directory: the default for `serverless-pypi serve`.

Writes go to a temporary file in the target's directory and are renamed into place, so a
reader never sees part of an object. Conditional writes hold a per-key lock file (flock), so
several processes can share one directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO

from serverless_pypi.storage.base import (
    AccessDenied,
    Blob,
    LocalFile,
    NotFound,
    NotModified,
    ObjectInfo,
    PreconditionFailed,
    Store,
    StoreError,
    StoreUnavailable,
)

__all__ = ["LocalStore"]

_LOCKS = ".locks"
_TMP = ".tmp-"
#: tries to create a folder and a file in it while concurrent deletes remove the folder
_MKDIR_ATTEMPTS = 100


def _etag(st: os.stat_result) -> str:
    # every write renames a new file into place, so inode + mtime + size changes with it
    return f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'


def _key_order(entry: os.DirEntry[str]) -> str:
    # S3 lists in key order: a folder sorts as its name followed by "/"
    return entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(key, st.st_size, _etag(st), datetime.fromtimestamp(st.st_mtime, UTC))


class LocalStore(Store):
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.location = str(self.root)

    # -- keys and paths -----------------------------------------------------------------
    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if (
            not key
            or key.startswith("/")
            or "\\" in key
            or "\x00" in key
            or any(p in {"", ".", ".."} for p in parts)
            or parts[0] == _LOCKS
            or any(p.startswith(_TMP) for p in parts)
        ):
            raise NotFound(key)
        path = self.root.joinpath(*parts)
        # a symlink inside the store must not lead out of it
        if not path.resolve().is_relative_to(self.root):
            raise NotFound(key)
        return path

    def _stat(self, key: str) -> tuple[Path, os.stat_result]:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(key) from None
        except OSError as e:
            raise StoreError(f"cannot read {key!r}: {e}") from e
        if not path.is_file():
            raise NotFound(key)
        return path, st

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        locks = self.root / _LOCKS
        locks.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        with (locks / name).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- reads --------------------------------------------------------------------------
    def get(self, key: str, *, if_none_match: str | None = None) -> Blob:
        path, st = self._stat(key)
        etag = _etag(st)
        if if_none_match is not None and if_none_match == etag:
            raise NotModified(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(key) from None
        return Blob(data, etag, datetime.fromtimestamp(st.st_mtime, UTC))

    def head(self, key: str) -> ObjectInfo:
        _, st = self._stat(key)
        return _info(key, st)

    @contextlib.contextmanager
    def open(self, key: str, *, if_match: str | None = None) -> Iterator[BinaryIO]:
        path = self._path(key)
        try:
            handle = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(key) from None
        with handle:
            if if_match is not None and _etag(os.fstat(handle.fileno())) != if_match:
                raise PreconditionFailed(key)
            yield handle

    def deliver(self, key: str, method: str, expires: int) -> LocalFile:
        # one stat (a head): the size and etag of the bytes there now, as the response sends
        info = self.head(key)
        return LocalFile(self._path(key), info.size, info.etag)

    # -- writes -------------------------------------------------------------------------
    def put(
        self,
        key: str,
        data: bytes | IO[bytes],
        *,
        content_type: str | None = None,
        content_encoding: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        path = self._path(key)
        fd, tmp = self._temporary(key, path)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes):
                    out.write(data)
                else:
                    shutil.copyfileobj(data, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            tmp.chmod(0o644)
            # the object's etag: a rename or link keeps inode, mtime and size, and reading it
            # back from `path` could race with a delete of it
            etag = _etag(tmp.stat())
            if if_none_match:
                try:
                    # link() fails if the target exists: an atomic create-if-absent
                    os.link(tmp, path)
                except FileExistsError:
                    raise PreconditionFailed(key) from None
                return etag
            if if_match is None:
                tmp.replace(path)
                return etag
            with self._locked(key):
                try:
                    current = _etag(path.stat())
                except FileNotFoundError:
                    raise PreconditionFailed(key) from None
                if current != if_match:
                    raise PreconditionFailed(key)
                tmp.replace(path)
                return etag
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _temporary(key: str, path: Path) -> tuple[int, Path]:
        """A new temporary file next to `path`, creating its folders.

        A concurrent `delete` removes folders it leaves empty: one may go between creating it
        and creating the file in it (FileNotFoundError), or between `mkdir` finding it there
        and checking that it is a folder (FileExistsError), so both are tried again. Once the
        temporary file is in it, the folder is not empty and stays.
        """
        for _ in range(_MKDIR_ATTEMPTS):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix=_TMP, dir=path.parent)
            except (FileNotFoundError, FileExistsError):
                continue
            except NotADirectoryError:
                raise StoreError(f"cannot write {key!r}: a file is where a folder goes") from None
            return fd, Path(name)
        raise StoreError(f"cannot write {key!r}: its folder kept being removed, or is a file")

    def delete(self, key: str) -> None:
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            path.unlink()
        # drop folders left empty, never the root
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    # -- listings -----------------------------------------------------------------------
    def _directory(self, prefix: str) -> tuple[Path, str]:
        folder, _, _ = prefix.rpartition("/")
        return (self._path(folder) if folder else self.root), (folder + "/" if folder else "")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            directory, base = self._directory(prefix)
        except NotFound:
            return
        yield from self._walk(directory, base, prefix)

    def _walk(self, directory: Path, base: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = sorted(os.scandir(directory), key=_key_order)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith(_TMP) or (not base and entry.name == _LOCKS):
                continue
            key = base + entry.name
            if entry.is_dir(follow_symlinks=False):
                if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                    yield from self._walk(Path(entry.path), key + "/", prefix)
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # deleted since the folder was read
                yield _info(key, st)

    def list_folders(self, prefix: str = "") -> Iterator[str]:
        try:
            directory = self._path(prefix.rstrip("/")) if prefix else self.root
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except (NotFound, FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith(_TMP) or (not prefix and entry.name == _LOCKS):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield entry.name

    def check(self) -> None:
        """The directory exists and may be read and written, or can be created."""
        if self.root.exists():
            if not self.root.is_dir():
                raise StoreUnavailable(f"{self.root} is not a directory", self.location)
            if not os.access(self.root, os.R_OK | os.W_OK | os.X_OK):
                raise AccessDenied(f"{self.root} may not be read and written", self.location)
            return
        parent = next((p for p in self.root.parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise AccessDenied(
                f"{self.root} does not exist and cannot be created in {parent}", self.location
            )
