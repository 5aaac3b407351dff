"""Pulling upstream files through into the store (mirror mode), verified before they are kept.

`pull_file` copies one file an upstream page lists: the URL, sha256 and size come from the
page cached in the store (`UpstreamCache`), never from the request that asked, so nothing a
client sends can choose what is fetched or what it is checked against. The bytes are
streamed from the upstream into `Store.put_stream` (a temporary file, or an S3 multipart
upload: never the whole file in memory) and committed only when their sha256 and size are the
ones the page lists; otherwise the copy is refused, logged once, and nothing is stored.

Who asks for copies (a `Puller`, see `repository.upstream`):
- `BackgroundPuller`, the local server's: a few worker threads, each file asked for once at a
  time, a bounded queue that drops (and logs) what does not fit, never blocking a request;
- `QueuePuller`, the API function's on Lambda: one SQS message `{"pull": {"project": ...,
  "file": ...}}` (PULL_QUEUE_URL) that the indexer function receives (`pull_message`,
  `index.events`) and answers with `pull_file`: the copy may take minutes there, and never
  passes through the API function's memory or its 6 MB response.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from serverless_pypi.core.names import NormalizedName
from serverless_pypi.upstream.client import UpstreamClient, UpstreamNotFound

if TYPE_CHECKING:
    from serverless_pypi.core.upstream import UpstreamFile
    from serverless_pypi.index.upstream_cache import UpstreamCache
    from serverless_pypi.storage.aws_json import AwsJsonClient

__all__ = [
    "MAX_PULL_SIZE",
    "BackgroundPuller",
    "PullRefused",
    "QueuePuller",
    "pull_file",
    "pull_message",
]

log = logging.getLogger(__name__)

#: the largest file copied (PyPI's own limit per file is 100 MB by default, raised on request)
MAX_PULL_SIZE = 20 * 1024**3
#: seconds a refused file is not tried again by the same puller (a tampered upstream file
#: would otherwise be downloaded again at every request for it)
REFUSAL_MEMORY = 600.0
_REMEMBERED = 4096


class PullRefused(Exception):
    """The copy was refused and nothing was stored: the bytes do not match the digest or size
    the upstream's page lists, or the page does not (or no longer) list the file with a
    sha256. Not worth a retry; logged where it is raised."""


def pull_message(name: NormalizedName, filename: str) -> dict[str, Any]:
    """The message that asks the indexer function for a copy (read by `index.events`)."""
    return {"pull": {"project": name, "file": filename}}


class _Verifying(io.RawIOBase):
    """The upstream's stream, hashed as it is read, that fails (PullRefused) as soon as it
    runs past `limit` bytes; `verify` checks the digest and size once it ended."""

    def __init__(self, stream: BinaryIO, name: str, file: UpstreamFile, limit: int) -> None:
        super().__init__()
        self.stream = stream
        self.name = name
        self.file = file
        self.limit = limit
        self.size = 0
        self.hasher = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.stream.read(min(len(buffer), self.limit + 1 - self.size))
        self.size += len(data)
        if self.size > self.limit:
            raise _refuse(self.name, self.file, f"more than {self.limit} bytes")
        self.hasher.update(data)
        buffer[: len(data)] = data
        return len(data)

    def verify(self) -> None:
        """Called by the store once the stream ended, before the copy is visible."""
        digest = self.hasher.hexdigest()
        if self.file.size is not None and self.size != self.file.size:
            raise _refuse(self.name, self.file, f"sha256 {digest}, {self.size} bytes")
        if digest != self.file.sha256:
            raise _refuse(self.name, self.file, f"sha256 {digest}")


def _refuse(name: str, file: UpstreamFile, actual: str) -> PullRefused:
    """The refusal of `file`, logged here (once) with what was expected and what came."""
    expected = f"sha256 {file.sha256}" + (f", {file.size} bytes" if file.size is not None else "")
    log.warning(
        json.dumps(
            {
                "pull": "refused",
                "project": name,
                "file": file.filename,
                "expected": expected,
                "actual": actual,
            }
        )
    )
    return PullRefused(f"{name}/{file.filename}: expected {expected}, got {actual}")


def _listed(cache: UpstreamCache, name: NormalizedName, filename: str) -> UpstreamFile:
    """The file as the cached page lists it now, with a sha256; else PullRefused (logged)."""
    cached = cache.page(name)
    file = cached.page.file(filename) if cached is not None else None
    if file is None or file.sha256 is None:
        why = "is not listed" if file is None else "is listed without a sha256"
        log.warning(json.dumps({"pull": "refused", "project": name, "file": filename, "why": why}))
        raise PullRefused(f"{name}/{filename} {why} on the cached upstream page: not copied")
    return file


def pull_file(
    cache: UpstreamCache,
    client: UpstreamClient,
    name: NormalizedName,
    filename: str,
    *,
    max_size: int = MAX_PULL_SIZE,
) -> bool:
    """Copy `filename` of project `name` from the upstream into the store, verified.

    True: copied now; False: the store already held the verified copy (no upstream request).
    PullRefused (logged, nothing stored): not listed with a sha256 on the cached page, larger
    than `max_size`, gone from its URL (404/410), or bytes that do not match. Other errors
    (UpstreamUnavailable, StoreError) mean "try again later".
    """
    file = _listed(cache, name, filename)
    if file.size is not None and file.size > max_size:
        raise _refuse(name, file, f"a size over the limit of {max_size} bytes")
    if cache.find_file(name, file) is not None:
        return False
    key = cache.file_key(name, file)
    try:
        with client.open(file.url) as stream:
            verifying = _Verifying(stream, name, file, max_size)
            cache.store.put_stream(
                key,
                cast(BinaryIO, verifying),
                verify=verifying.verify,
                content_type="application/octet-stream",
            )
    except UpstreamNotFound as e:
        raise _refuse(name, file, f"nothing at its URL ({e})") from e
    if _changed(cache, name, file):
        # the page changed while the copy ran (the file was removed or replaced upstream):
        # the copy must not outlive the listing (`UpstreamRepository` forgot it already)
        cache.store.delete(key)
        raise PullRefused(f"{name}/{filename} changed upstream while it was copied")
    log.info(json.dumps({"pull": "copied", "project": name, "file": filename}))
    return True


def _changed(cache: UpstreamCache, name: NormalizedName, file: UpstreamFile) -> bool:
    cached = cache.page(name)
    now = cached.page.file(file.filename) if cached is not None else None
    return now is None or now.sha256 != file.sha256


class _Recent:
    """Keys seen in the last `seconds`, at most `_REMEMBERED` of them (thread-safe)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: tuple[str, str]) -> bool:
        with self._lock:
            when = self._seen.get(key)
            if when is not None and self.clock() - when >= self.seconds:
                del self._seen[key]
                return False
            return when is not None

    def add(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._seen[key] = self.clock()
            self._seen.move_to_end(key)
            while len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)


class BackgroundPuller:
    """The local server's `Puller`: `workers` threads copy files asked for, each at most once
    at a time; at most `max_pending` wait, and what does not fit is dropped (and logged: a
    later download asks again). `request` never blocks and never raises."""

    def __init__(
        self,
        cache: UpstreamCache,
        client: UpstreamClient,
        *,
        workers: int = 2,
        max_pending: int = 64,
        max_size: int = MAX_PULL_SIZE,
    ) -> None:
        self.cache = cache
        self.client = client
        self.workers = workers
        self.max_size = max_size
        self._queue: queue.Queue[tuple[NormalizedName, str] | None] = queue.Queue(max_pending)
        self._pending: set[tuple[NormalizedName, str]] = set()  # queued or being copied
        self._refused = _Recent(REFUSAL_MEMORY)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._dropping = False
        self._closed = False

    def request(self, name: NormalizedName, filename: str) -> None:
        key = (name, filename)
        if key in self._refused:
            return
        with self._lock:
            if key in self._pending or self._closed:
                return
            try:
                self._queue.put_nowait(key)
            except queue.Full:
                if not self._dropping:  # once per burst, not once per request
                    log.warning(
                        "%d copies of upstream files are waiting: not copying %s/%s now "
                        "(a later download asks again)",
                        self._queue.maxsize,
                        name,
                        filename,
                    )
                self._dropping = True
                return
            self._dropping = False
            self._pending.add(key)
            if len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name="upstream-pull", daemon=True)
                self._threads.append(thread)
                thread.start()

    def _work(self) -> None:
        while True:
            key = self._queue.get()
            if key is None:
                return
            try:
                pull_file(self.cache, self.client, *key, max_size=self.max_size)
            except PullRefused:
                self._refused.add(key)  # logged by pull_file
            except Exception as e:  # an upstream or store failure: a later download asks again
                log.warning("could not copy %s/%s from the upstream: %s", *key, e)
            finally:
                with self._lock:
                    self._pending.discard(key)

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued or being copied (tests, `serve` shutting down)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return True
            time.sleep(0.01)
        return False

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers once the copies under way are done."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(timeout)


class QueuePuller:
    """The API function's `Puller`: asks the indexer function for a copy with one SQS message
    to `queue_url`. A file asked for in the last `repeat_after` seconds is not asked for again
    by this process (a burst of downloads sends one message); a failure to send is logged,
    never raised (the download is answered with the upstream's URL anyway)."""

    def __init__(
        self,
        queue_url: str,
        *,
        client: AwsJsonClient | None = None,
        repeat_after: float = 300.0,
    ) -> None:
        self.queue_url = queue_url
        self._client = client
        self._sent = _Recent(repeat_after)

    @property
    def client(self) -> AwsJsonClient:
        if self._client is None:
            from serverless_pypi.storage.aws_json import SQS, AwsJsonClient

            # short: the request that asks waits for it
            self._client = AwsJsonClient(SQS, timeout=2.0, attempts=2)
        return self._client

    def request(self, name: NormalizedName, filename: str) -> None:
        key = (name, filename)
        if key in self._sent:
            return
        body = json.dumps(pull_message(name, filename), separators=(",", ":"))
        try:
            self.client.call("SendMessage", {"QueueUrl": self.queue_url, "MessageBody": body})
        except Exception as e:
            log.warning("could not ask for a copy of %s/%s: %s", name, filename, e)
            return
        self._sent.add(key)
