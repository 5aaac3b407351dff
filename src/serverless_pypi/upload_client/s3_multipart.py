"""The S3 mechanism, `vnd-serverlesspypi-s3multipart-presigned-v1` (docs/upload-sessions.md).

The file is cut into the parts the index names; each part goes straight to S3 over a presigned
part URL from the index's `parts_url`, `jobs` parts at a time, each retried. Resuming sends only
the parts S3 does not hold with these bytes.
"""

from __future__ import annotations

import hashlib
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serverless_pypi.upload_client.errors import UploadError
from serverless_pypi.upload_client.files import LocalFile
from serverless_pypi.upload_client.progress import CountingReader, Progress
from serverless_pypi.upload_client.protocol import META
from serverless_pypi.upload_client.transport import ATTEMPTS, Http, error_text

__all__ = ["Part", "S3Multipart", "missing_parts", "part_plan"]

#: part URLs asked for at once (the index takes at most 1000 per request); a batch is sent
#: before the next is asked for, so no URL waits long enough to expire
PART_BATCH = 100


@dataclass(frozen=True)
class Part:
    """One part of an S3 multipart upload: numbers start at 1."""

    number: int
    offset: int
    length: int


def part_plan(size: int, part_size: int) -> list[Part]:
    """The parts of a file of `size` bytes cut into `part_size` pieces (the last one shorter)."""
    if part_size <= 0:
        raise UploadError(f"the index gave a part size of {part_size}")
    count = max(1, -(-size // part_size))
    return [Part(n + 1, n * part_size, min(part_size, size - n * part_size)) for n in range(count)]


def _md5_of(path: Path, part: Part) -> str:
    with path.open("rb") as file:
        file.seek(part.offset)
        return hashlib.md5(file.read(part.length), usedforsecurity=False).hexdigest()


def missing_parts(
    path: Path, plan: Sequence[Part], held: Iterable[Mapping[str, Any]]
) -> list[Part]:
    """The parts of `plan` that S3 does not hold with these bytes (resuming an upload).

    A part S3 holds counts when its size matches and its ETag is the MD5 of the local bytes
    (what S3 answers for a part of an SSE-S3 bucket); any other part is sent again.
    """
    etags = {int(p["number"]): (int(p["size"]), str(p["etag"]).strip('"')) for p in held}
    todo = []
    for part in plan:
        size, etag = etags.get(part.number, (-1, ""))
        if size != part.length or etag != _md5_of(path, part):
            todo.append(part)
    return todo


class S3Multipart:
    """The S3 mechanism for one file (docs/upload-sessions.md): presigned part URLs from the
    index's `parts_url`, each part PUT straight to S3, `jobs` at a time."""

    def __init__(
        self,
        http: Http,
        root: str,
        local: LocalFile,
        mechanism: Mapping[str, Any],
        progress: Progress,
    ) -> None:
        self.http = http
        self.local = local
        self.parts_url = urllib.parse.urljoin(root, str(mechanism.get("parts_url")))
        self.plan = part_plan(local.size, int(mechanism.get("part-size") or 0))
        if len(self.plan) != int(mechanism.get("part-count") or 0):
            raise UploadError(
                f"the index expects {mechanism.get('part-count')} parts of "
                f"{mechanism.get('part-size')} bytes, not the {len(self.plan)} this file makes"
            )
        self.progress = progress
        self.urls: dict[int, str] = {}
        self.sleep: Callable[[float], None] = time.sleep

    def run(self, *, jobs: int, resume: bool, sleep: Callable[[float], None]) -> None:
        """Send the parts (resuming: only those S3 does not hold with these bytes)."""
        self.sleep = sleep
        todo = missing_parts(self.local.path, self.plan, self.held()) if resume else self.plan
        self.progress.expect(sum(p.length for p in todo))
        for start in range(0, len(todo), PART_BATCH):
            batch = todo[start : start + PART_BATCH]
            self.urls.update(self.part_urls([p.number for p in batch]))
            with ThreadPoolExecutor(jobs, thread_name_prefix="part") as pool:
                failures = [error for error in pool.map(self.put, batch) if error]
            if failures:
                raise UploadError(f"{len(failures)} part(s) failed: {failures[0]}")

    def held(self) -> list[dict[str, Any]]:
        """The parts S3 holds for this upload (number, size, etag)."""
        answer = self.http.api("GET", self.parts_url)
        if answer.status != 200:
            raise UploadError(f"the parts S3 holds: {error_text(answer)}")
        return list(answer.json().get("parts") or [])

    def part_urls(self, numbers: Sequence[int]) -> dict[int, str]:
        """Presigned PUT URLs for these part numbers."""
        answer = self.http.api("POST", self.parts_url, {"meta": META, "parts": list(numbers)})
        if answer.status != 200:
            raise UploadError(f"the part URLs: {error_text(answer)}")
        urls = {int(p["number"]): str(p["url"]) for p in answer.json().get("parts") or []}
        if set(numbers) - set(urls):
            raise UploadError("the index gave no URL for some parts")
        return urls

    def put(self, part: Part) -> str | None:
        """PUT one part to its presigned URL, tried ATTEMPTS times (with a fresh URL after a
        403: it may have expired); None when S3 took it, else what went wrong."""
        problem = "no attempt"
        headers = {"Content-Length": str(part.length), "Content-Type": "application/octet-stream"}
        for attempt in range(1, ATTEMPTS + 1):
            reader = CountingReader(self.local.path, part.offset, part.length, self.progress)
            try:
                answer = self.http.send("PUT", self.urls[part.number], data=reader, headers=headers)
                if 200 <= answer.status < 300:
                    return None
                problem = f"part {part.number}: S3 answered {error_text(answer)}"
                if answer.status == 403:
                    self.urls.update(self.part_urls([part.number]))
            except UploadError as e:
                problem = f"part {part.number}: {e}"
            finally:
                reader.close()
            reader.uncount()
            if attempt < ATTEMPTS:
                self.sleep(attempt)
        return problem
