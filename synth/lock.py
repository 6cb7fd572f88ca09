"""One writer per output directory: an flock that the kernel drops when its process dies."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["DatasetLock", "DatasetLockedError"]


class DatasetLockedError(RuntimeError):
    """Another run is writing to the same output directory."""


class DatasetLock:
    """Context manager holding `<root>/.datasynth.lock`; a second holder fails at once."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / ".datasynth.lock"
        self._fd: int | None = None

    def __enter__(self) -> DatasetLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DatasetLockedError(
                f"another datasynth run (pid {holder}) is writing to {self.path.parent}; "
                "wait for it to finish or use another --out directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
