"""When a failed task is retried: the one retry policy of the project.

Each task that can meet a transient failure declares `retries`, `retry_delay_seconds` and
`retry_condition_fn=is_transient` in its decorator; flows and the CLI override them only when the
user asks (`--retries`, `--retry-delay`). Out-of-memory inside a batch is not a retry: the batch
halves itself (`synth.generation.batch`).
"""

from __future__ import annotations

import errno

from synth.devices import OUT_OF_MEMORY_ERRORS
from synth.errors import DatasynthError

__all__ = ["BATCH_RETRIES", "BATCH_RETRY_DELAYS", "is_transient"]

BATCH_RETRIES = 3
BATCH_RETRY_DELAYS = [2, 10, 30]  # seconds: a preempted GPU or a flaky disk gets time to return

# Errors of the machine that waiting does not fix: a full disk, a read-only or forbidden folder.
_PERMANENT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def is_transient(task, task_run, state) -> bool:
    """Retry unless the failure is the user's to fix (bad input, a missing model, a full disk) or
    an out-of-memory that reached a single image (`synth.generation.batch` halves batches first)."""
    try:
        state.result()
    except DatasynthError:
        return False
    except OUT_OF_MEMORY_ERRORS:
        return False  # the batch already halved itself down to one image: a retry OOMs again
    except OSError as exc:
        return exc.errno not in _PERMANENT_ERRNOS
    except Exception:
        return True
    return True
