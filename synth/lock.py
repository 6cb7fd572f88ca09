"""One writer per output directory: an flock that the kernel drops when its process dies.

The shards of one dataset (several machines each generating `batch % count == index`) write
together: each holds the dataset lock *shared*, which still keeps out an unsharded run (it
takes it exclusively, and repairs the whole directory), plus its own shard lock exclusively,
so one shard never runs twice at once.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from synth.errors import DatasetLockedError, InputError

__all__ = ["DatasetLock", "DatasetLockedError", "validate_shard"]


def validate_shard(index: int, count: int) -> None:
    """Raise `InputError` unless 0 <= index < count."""
    if count < 1 or not 0 <= index < count:
        raise InputError(
            f"`shard_index` must be in 0..{count - 1} and `shard_count` at least 1, "
            f"got shard_index={index}, shard_count={count}"
        )


class DatasetLock:
    """Context manager holding `<root>/.datasynth.lock`; a second holder fails at once.

    With `shard=(index, count)` and count > 1 the dataset lock is held shared and
    `<root>/.datasynth-shard-<index>-of-<count>.lock` exclusively (see the module docstring).
    """

    def __init__(self, root: Path, shard: tuple[int, int] = (0, 1)) -> None:
        validate_shard(*shard)
        self.path = Path(root) / ".datasynth.lock"
        index, count = shard
        self.shard_path = (
            Path(root) / f".datasynth-shard-{index}-of-{count}.lock" if count > 1 else None
        )
        self._fds: list[int] = []

    def _acquire(self, path: Path, mode: int, holder: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            found = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            self.__exit__()
            who = f"pid {found}" if found.isdigit() else found
            raise DatasetLockedError(
                f"another datasynth run ({who}) is writing to {self.path.parent}; "
                "wait for it to finish or use another --out directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        self._fds.append(fd)

    def __enter__(self) -> DatasetLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pid = str(os.getpid())
        if self.shard_path is None:
            self._acquire(self.path, fcntl.LOCK_EX, pid)
        else:
            self._acquire(self.path, fcntl.LOCK_SH, "sharded runs")
            self._acquire(self.shard_path, fcntl.LOCK_EX, pid)
        return self

    def __exit__(self, *exc: object) -> None:
        while self._fds:
            fd = self._fds.pop()
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
