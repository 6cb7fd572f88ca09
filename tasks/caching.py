"""The cache rule (docs/ARCHITECTURE.md): files on disk are the truth, the cache a shortcut.

Science steps are declared with `@science_task(fn, ...)` and cached on `science_cache(fn)`: the
task's inputs, the task's own source, and `SynthCode`, the digest of the synth source `fn` runs
plus the torch/diffusers/transformers versions (synth/code_digest.py); TASK_SOURCE alone sees only
the wrapper's lines, so a fix in the training code would bring old checkpoints back. A cached
result is a reference to a file (path + digest); `run_checked` re-runs the task, bypassing the
cache, when that file is gone or changed, so a user who deleted a checkpoint gets it rebuilt
instead of a stale "Cached".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy

from synth.code_digest import code_digest
from synth.storage import is_valid

__all__ = ["SynthCode", "resolve_checked", "run_checked", "science_cache", "science_task"]


@dataclass
class SynthCode(CachePolicy):
    """Keys a task on `code_digest` of a synth module: its source closure and library versions.

    The digest is taken when the policy is made, as the task module is imported beside the synth
    code it runs, and travels with the task (a Dask worker keys on what the flow imported).
    """

    module: str = ""
    digest: str = ""

    @classmethod
    def of(cls, fn: Callable) -> SynthCode:
        """The policy for a task whose body calls the synth function `fn`."""
        return cls(module=fn.__module__, digest=code_digest(fn.__module__))

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs) -> str:
        return self.digest


def science_cache(fn: Callable) -> CachePolicy:
    """The cache policy of a step that runs the synth function `fn`: inputs + wrapper + code."""
    return INPUTS + TASK_SOURCE + SynthCode.of(fn)


def science_task(fn: Callable, *, also_key: CachePolicy | None = None, **options: Any):
    """The `@task` of a step that runs the synth function `fn`: cached on `science_cache(fn)`
    (plus `also_key`), its result persisted so the cache can answer; `options` as for `task`."""
    policy = science_cache(fn) if also_key is None else science_cache(fn) + also_key
    return task(cache_policy=policy, persist_result=True, **options)


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
