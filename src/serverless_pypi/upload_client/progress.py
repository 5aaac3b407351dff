"""The bytes sent, on a progress bar, and a reader of a file's bytes that counts them."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any, TextIO

__all__ = ["CountingReader", "Progress"]


class Progress:
    """Bytes sent, on a tqdm bar when stderr is a terminal (thread-safe; else silent)."""

    def __init__(self, bar: Any = None) -> None:
        self.bar = bar
        self.lock = threading.Lock()

    @classmethod
    def for_terminal(cls, stream: TextIO) -> Progress:
        if not stream.isatty():
            return cls()
        try:
            from tqdm import tqdm
        except ImportError:
            return cls()
        return cls(tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, file=stream))

    def expect(self, count: int) -> None:
        if self.bar is not None:
            with self.lock:
                self.bar.total += count
                self.bar.refresh()

    def sent(self, count: int) -> None:
        if self.bar is not None:
            with self.lock:
                self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class CountingReader(io.RawIOBase):
    """`length` bytes of a file from `offset`, counted on the progress as they are read."""

    def __init__(self, path: Path, offset: int, length: int, progress: Progress) -> None:
        self.file = path.open("rb")
        self.file.seek(offset)
        self.left = length
        self.progress = progress
        self.counted = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.file.read(min(len(buffer), self.left))
        buffer[: len(data)] = data
        self.left -= len(data)
        self.counted += len(data)
        self.progress.sent(len(data))
        return len(data)

    def close(self) -> None:
        self.file.close()
        super().close()

    def uncount(self) -> None:
        """Take what this attempt counted off the progress (it is sent again)."""
        self.progress.sent(-self.counted)
        self.counted = 0
