"""Filesystem conditions for the campaigns: read-only folders, snapshots of a tree."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["read_only", "tree"]


@contextlib.contextmanager
def read_only(root: Path):
    """Make `root` and every folder under it read-only, even for root (chattr +i)."""
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in folders}
        for p in folders:
            p.chmod(0o555)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    chattr = shutil.which("chattr")
    probe = root / ".probe"
    ok = (
        chattr is not None
        and subprocess.run([chattr, "+i", str(root)], capture_output=True).returncode == 0
    )
    if ok:
        try:
            probe.touch()
            ok = False  # root writes through +i here: the filesystem ignores it
        except PermissionError:
            pass
        subprocess.run([chattr, "-i", str(root)], check=True)
        probe.unlink(missing_ok=True)
    if not ok:
        pytest.skip("running as root and `chattr +i` does not work here: nothing is read-only")
    subprocess.run([chattr, "+i", *map(str, folders)], check=True)
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", *map(str, folders)], check=True)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under `root` with its bytes, but the lock file (it holds the last pid)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None
        for p in root.rglob("*")
        if p.name != ".datasynth.lock"
    }
