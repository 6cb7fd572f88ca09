"""The cache rule (docs/ARCHITECTURE.md): files on disk are the truth, the cache a shortcut.

Tasks that write files are cached on INPUTS + TASK_SOURCE. A cached result is a reference to a
file (path + digest); `run_checked` re-runs the task, bypassing the cache, when that file is gone
or changed, so a user who deleted a checkpoint gets it rebuilt instead of a stale "Cached".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE

from synth.storage import is_valid

__all__ = ["FILE_CACHE", "resolve_checked", "run_checked"]

FILE_CACHE = INPUTS + TASK_SOURCE


def run_checked(task: Any, *args: Any, valid: Callable[[Any], bool] = is_valid, **kwargs: Any):
    """Call `task`; if the (maybe cached) result's files are not valid, call it again fresh."""
    result = task(*args, **kwargs)
    if not valid(result):
        result = task.with_options(refresh_cache=True)(*args, **kwargs)
    return result


def resolve_checked(task: Any, calls: list[tuple[tuple, dict]], valid=is_valid) -> list:
    """Submit `task` once per (args, kwargs), wait for all, re-run fresh the stale results."""
    futures = [task.submit(*args, **kwargs) for args, kwargs in calls]
    results = [f.result() for f in futures]
    for i, (args, kwargs) in enumerate(calls):
        if not valid(results[i]):
            results[i] = task.with_options(refresh_cache=True)(*args, **kwargs)
    return results
