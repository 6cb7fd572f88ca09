"""Test hooks that inject failures, switched on only by environment variables.

They let tests and the reliability campaign crash or fail the real code at exact points, with no
mocks. Unset, every hook is a no-op.

- ``DATASYNTH_CRASH_AT="<point>:<n>"``: the process SIGKILLs itself the n-th time (1-based) it
  reaches `<point>`: ``denoise-step``, ``before-rename`` (temp file written, not renamed),
  ``before-manifest`` (image renamed, row not appended) or ``mid-manifest`` (half a row written).
- ``DATASYNTH_FAULTS="transient=<p>,partial=<p>,oom=<k>,enospc=<n>,seed=<s>"``:
  ``transient``: each batch attempt raises `InjectedFault` with probability p during a
  denoising step, as a CUDA error or a preemption would (nothing of the attempt is written);
  ``partial``: each batch attempt raises `InjectedFault` with probability p after writing a
  seeded random number of its images (so a retry finds a half-done batch);
  ``oom``: the first k pipeline calls with more than one image raise a CUDA-style out-of-memory;
  ``enospc``: the n-th file write raises ``OSError(ENOSPC)``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
from collections import Counter
from dataclasses import dataclass

__all__ = [
    "BatchFault",
    "InjectedFault",
    "batch_fault",
    "crash_point",
    "maybe_enospc",
    "maybe_oom",
]

_hits: Counter[str] = Counter()


class InjectedFault(RuntimeError):
    """A transient failure injected by ``DATASYNTH_FAULTS`` (retrying must fix it)."""


class InjectedOutOfMemoryError(RuntimeError):
    """Stands in for ``torch.cuda.OutOfMemoryError`` on machines with no GPU."""


@dataclass(frozen=True)
class _Faults:
    transient: float = 0.0
    partial: float = 0.0
    oom: int = 0
    enospc: int = 0
    seed: int = 0


def _faults() -> _Faults:
    spec = os.environ.get("DATASYNTH_FAULTS", "")
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = part.partition("=")
        if key not in _Faults.__dataclass_fields__:
            raise ValueError(f"DATASYNTH_FAULTS: unknown fault {key!r} in {spec!r}")
        values[key] = float(value)
    return _Faults(
        transient=values.get("transient", 0.0),
        partial=values.get("partial", 0.0),
        oom=int(values.get("oom", 0)),
        enospc=int(values.get("enospc", 0)),
        seed=int(values.get("seed", 0)),
    )


def crash_point(point: str) -> None:
    """SIGKILL this process if ``DATASYNTH_CRASH_AT`` names this point and hit count."""
    spec = os.environ.get("DATASYNTH_CRASH_AT")
    if not spec:
        return
    target, _, nth = spec.rpartition(":")
    if target != point:
        return
    _hits[point] += 1
    if _hits[point] == int(nth):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class BatchFault:
    """A fault planned for one batch attempt: during denoising step `step`, or after `written`."""

    step: int | None = None
    written: int | None = None


def batch_fault(batch_key: str, batch_len: int, steps: int) -> BatchFault | None:
    """The fault this attempt of batch `batch_key` meets, if any (seeded by key and attempt)."""
    faults = _faults()
    if faults.transient <= 0 and faults.partial <= 0:
        return None
    _hits[f"attempt:{batch_key}"] += 1
    attempt = _hits[f"attempt:{batch_key}"]
    digest = hashlib.sha256(f"{faults.seed}:{batch_key}:{attempt}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    if draw < faults.transient:
        return BatchFault(step=digest[8] % max(steps, 1))
    if draw < faults.transient + faults.partial:
        return BatchFault(written=digest[9] % (batch_len + 1))
    return None


def maybe_oom(batch_len: int) -> None:
    """Raise a CUDA-style OOM for the first k multi-image pipeline calls (``oom=k``)."""
    faults = _faults()
    if batch_len > 1 and _hits["oom"] < faults.oom:
        _hits["oom"] += 1
        raise InjectedOutOfMemoryError(f"CUDA out of memory (injected, batch of {batch_len})")


def maybe_enospc() -> None:
    """Raise ENOSPC on the n-th file write (``enospc=n``)."""
    faults = _faults()
    if not faults.enospc:
        return
    _hits["write"] += 1
    if _hits["write"] == faults.enospc:
        raise OSError(errno.ENOSPC, "No space left on device (injected)")
