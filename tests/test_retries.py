"""The retry policy: transient failures retry; user-fixable ones and single-image OOMs do not."""

from __future__ import annotations

import errno

import pytest
import torch

from synth.errors import InputError, ModelUnavailableError
from synth.faults import InjectedFault, InjectedOutOfMemoryError
from tasks.retries import is_transient


class _Failed:
    """A failed state as Prefect hands it to `retry_condition_fn`: `result()` raises."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def result(self):
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (InjectedFault("preempted"), True),
        (RuntimeError("CUDA error: unspecified launch failure"), True),
        (OSError(errno.EIO, "I/O error"), True),
        (InputError("bad value"), False),
        (ModelUnavailableError("no model"), False),
        (OSError(errno.ENOSPC, "No space left on device"), False),
        (OSError(errno.EROFS, "Read-only file system"), False),
        (InjectedOutOfMemoryError("CUDA out of memory"), False),
        (torch.cuda.OutOfMemoryError("CUDA out of memory"), False),
    ],
)
def test_is_transient_retries_only_what_waiting_can_fix(exc, retry):
    assert is_transient(None, None, _Failed(exc)) is retry
