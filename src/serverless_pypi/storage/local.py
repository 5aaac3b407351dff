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
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
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
_NO_PART = frozenset({"", ".", ".."})
#: folders held open for reads (the index's busy few: pages, manifests), at most
_FOLDERS_HELD = 32
#: how often a folder held open is checked to still be the one at its path, seconds
_FOLDER_RECHECK = 1.0
_DIR_FD = os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


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
        self._root = str(self.root).rstrip("/")
        #: folder (key prefix) -> (descriptor, when it was checked): see `_folder`
        self._folders: dict[str, tuple[int, float]] = {}
        self._folders_lock = threading.Lock()
        self._retired: list[tuple[int, float]] = []
        self.location = str(self.root)

    # -- keys and paths -----------------------------------------------------------------
    def _parts(self, key: str) -> list[str]:
        parts = key.split("/")
        if (
            not key
            or key[0] == "/"
            or "\\" in key
            or "\x00" in key
            or parts[0] == _LOCKS
            or any(p in _NO_PART or p.startswith(_TMP) for p in parts)
        ):
            raise NotFound(key)
        return parts

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*self._parts(key))
        # a symlink inside the store must not lead out of it
        if not path.resolve().is_relative_to(self.root):
            raise NotFound(key)
        return path

    def _stat(self, key: str) -> os.stat_result:
        """The object's stat, for a read that may end in "not modified".

        The hot path of every read (a page's revalidation): one `fstatat` in the object's
        folder, held open (`_folder`), which never follows a symbolic link; anything else
        (a link, a folder not held, a miss) takes the walk of `_stat_walk`.
        """
        parts = self._parts(key)
        fd = self._folder("/".join(parts[:-1])) if _DIR_FD else None
        if fd is not None:
            try:
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except OSError:
                pass  # gone, or its folder: the walk says which
            else:
                if stat.S_ISREG(st.st_mode):
                    return st
        return self._stat_walk(key, parts)[1]

    def _stat_walk(self, key: str, parts: list[str]) -> tuple[str, os.stat_result]:
        """The object's path and stat: one lstat per level below the root, and the full
        resolution only when a symbolic link is on the way (it must stay in the store)."""
        name = self._root
        try:
            for part in parts:
                name = f"{name}/{part}"
                st = os.lstat(name)
                if stat.S_ISLNK(st.st_mode):
                    return self._stat_resolved(key)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(key) from None
        except OSError as e:
            raise StoreError(f"cannot read {key!r}: {e}") from e
        if not stat.S_ISREG(st.st_mode):
            raise NotFound(key)
        return name, st

    def _folder(self, folder: str) -> int | None:
        """A descriptor of the folder `folder` (a key prefix), checked at most every
        `_FOLDER_RECHECK` seconds to still be the folder at that path; None when not held."""
        held = self._folders.get(folder)
        if held is not None and time.monotonic() - held[1] < _FOLDER_RECHECK:
            return held[0]
        with self._folders_lock:
            now = time.monotonic()
            held = self._folders.get(folder)
            if held is not None and now - held[1] < _FOLDER_RECHECK:
                return held[0]
            if held is None and len(self._folders) >= _FOLDERS_HELD:
                return None
            found = self._open_folder(folder, None if held is None else held[0])
            if found is None:
                self._folders.pop(folder, None)
                if held is not None:
                    self._retire(held[0], now)
                return None
            if held is not None and found != held[0]:
                self._retire(held[0], now)
            self._folders[folder] = (found, now)
            return found

    def _open_folder(self, folder: str, held: int | None) -> int | None:
        # every level a folder, none a link; `held` is kept if it is still that folder
        name, st = self._root, None
        try:
            st = os.lstat(name)
            for part in folder.split("/") if folder else ():
                name = f"{name}/{part}"
                st = os.lstat(name)
                if not stat.S_ISDIR(st.st_mode):
                    return None
            if held is not None and _same(os.fstat(held), st):
                return held
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return None
        if not _same(os.fstat(fd), st):  # replaced between the walk and the open
            os.close(fd)
            return None
        return fd

    def _retire(self, fd: int, now: float) -> None:
        # another thread may be about to use it: closed a while later, not now
        self._retired.append((fd, now))
        while self._retired and now - self._retired[0][1] > 10 * _FOLDER_RECHECK:
            os.close(self._retired.pop(0)[0])

    def _stat_resolved(self, key: str) -> tuple[str, os.stat_result]:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(key) from None
        except OSError as e:
            raise StoreError(f"cannot read {key!r}: {e}") from e
        if not stat.S_ISREG(st.st_mode):
            raise NotFound(key)
        return str(path), st

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
        if if_none_match is not None and if_none_match == _etag(self._stat(key)):
            raise NotModified(key)
        path, st = self._stat_walk(key, self._parts(key))
        etag = _etag(st)
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise NotFound(key) from None
        return Blob(data, etag, datetime.fromtimestamp(st.st_mtime, UTC))

    def head(self, key: str) -> ObjectInfo:
        return _info(key, self._stat(key))

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

    def read_range(
        self, key: str, start: int, length: int, *, if_match: str | None = None
    ) -> bytes:
        with self.open(key, if_match=if_match) as handle:
            handle.seek(start)
            return handle.read(length)

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

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        verify: Callable[[], None],
        content_type: str | None = None,
    ) -> str:
        # the bytes go to a temporary file next to the object (never seen: `_TMP` names are
        # no keys), made durable, and are renamed into place only once `verify` returned
        path = self._path(key)
        fd, tmp = self._temporary(key, path)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stream, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            verify()
            tmp.chmod(0o644)
            etag = _etag(tmp.stat())
            tmp.replace(path)
            return etag
        finally:
            tmp.unlink(missing_ok=True)

    def copy(self, source: str, destination: str, *, if_none_match: bool = False) -> ObjectInfo:
        """A copy in a temporary file next to `destination`, made durable, then linked into
        place (`if_none_match`: `link` refuses an existing destination atomically) or renamed
        over it."""
        src = self._path(source)
        path = self._path(destination)
        fd, tmp = self._temporary(destination, path)
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    with src.open("rb") as handle:
                        shutil.copyfileobj(handle, out, 1024 * 1024)
                except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                    raise NotFound(source) from None
                out.flush()
                os.fsync(out.fileno())
            tmp.chmod(0o644)
            st = tmp.stat()
            if if_none_match:
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise PreconditionFailed(destination) from None
            else:
                tmp.replace(path)
            return _info(destination, st)
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
