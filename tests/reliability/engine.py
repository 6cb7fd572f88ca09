"""The generation engine minus Prefect, run in fresh processes that a campaign may SIGKILL.

`run_engine` does what the `generate-dataset` flow does, with the same synth calls in the same
order: lock the output, `prepare_output` (the resume step), every fixed batch through
`generate_batch`, then `write_summary` once nothing is missing. Only Prefect is left out.

Processes come from a fork server that has already imported torch, diffusers and synth but has
never run a tensor operation (forking after compute is unsafe with OpenMP). A child costs a
pipeline load (well under a second) instead of the ~10 s a fresh interpreter needs to import
torch and diffusers, which is what makes a campaign of dozens of real SIGKILLs affordable. Each
child is a separate process that really dies by SIGKILL inside synth, through the
`DATASYNTH_CRASH_AT` hook.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from dataclasses import dataclass
from pathlib import Path

# Imported here so that the fork server preloads them (children then start in a second).
import diffusers  # noqa: F401
import torch  # noqa: F401

from synth import faults
from synth.config import GenerationConfig
from synth.generation import (
    generate_batch,
    model_info,
    plan_images,
    prepare_output,
    scan_dataset,
    split_batches,
    write_summary,
)
from synth.lock import DatasetLock

__all__ = ["ChildResult", "record", "run_engine", "run_in_child", "write_toml"]

_HOOKS = ("DATASYNTH_CRASH_AT", "DATASYNTH_FAULTS")
LOG_ENV = "DATASYNTH_RELIABILITY_LOG"  # JSON lines of every campaign's figures, when set


def run_engine(config: GenerationConfig, out: str | Path) -> None:
    """Generate (or resume) `config` into `out` exactly as the flow would, without Prefect."""
    root = Path(out)
    with DatasetLock(root):
        prepare_output(root, config, model_info(config))
        for batch in split_batches(plan_images(config), config.batch_size):
            generate_batch(config, root, batch)
        state = scan_dataset(root, config)
        if not state.missing:
            write_summary(root, config, state)


def _child_main(config_json: str, out: str, hooks: dict[str, str], error_file: str) -> None:
    for key in _HOOKS:
        os.environ.pop(key, None)
    os.environ.update(hooks)
    faults._hits.clear()
    try:
        run_engine(GenerationConfig.model_validate_json(config_json), out)
    except BaseException as exc:
        Path(error_file).write_text(f"{type(exc).__name__}: {exc}", encoding="utf-8")
        raise


@dataclass(frozen=True)
class ChildResult:
    """How a child engine process ended."""

    exitcode: int
    error: str  # "ExcType: message" when it raised, else ""

    @property
    def killed(self) -> bool:
        return self.exitcode == -signal.SIGKILL


_context = None


def _fork_server():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload([__name__])
    return _context


def run_in_child(
    config: GenerationConfig, out: str | Path, hooks: dict[str, str] | None = None
) -> ChildResult:
    """Run `run_engine` in a fresh process with the given fault hooks; wait for it to end."""
    ctx = _fork_server()
    error_file = Path(out).parent / f".{Path(out).name}-child-error"
    error_file.unlink(missing_ok=True)
    proc = ctx.Process(
        target=_child_main,
        args=(config.model_dump_json(), str(out), dict(hooks or {}), str(error_file)),
    )
    proc.start()
    proc.join(timeout=600)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise AssertionError(f"engine child for {out} hung for 600 s")
    error = error_file.read_text(encoding="utf-8") if error_file.exists() else ""
    error_file.unlink(missing_ok=True)
    return ChildResult(proc.exitcode, error)


def record(kind: str, **figures: object) -> None:
    """Append one campaign's figures to `$DATASYNTH_RELIABILITY_LOG` (docs/RELIABILITY.md)."""
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"kind": kind, **figures}, default=str) + "\n")


def write_toml(path: Path, config: GenerationConfig) -> Path:
    """The TOML file of a simple `config` (string class names), as a user would write it."""
    lines = [
        f"classes = {[c.name for c in config.classes]!r}".replace("'", '"'),
        f"images_per_class = {config.images_per_class}",
        f'model = "{config.model}"',
        f"steps = {config.steps}",
        f"width = {config.width}",
        f"height = {config.height}",
        f"batch_size = {config.batch_size}",
        f"seed = {config.seed}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
