"""This machine's GPU limits on the Prefect server: one per visible GPU, one slot each.

Tasks that use a GPU hold their card's limit (tasks/gpu_slots.py) and create it if missing;
creating them here, at set-up, makes them visible under Concurrency in the UI before any run
and lets an operator change them (`prefect gcl update gpu-0@box --limit 2` shares a big card
between two runs). Run by `datasynth serve` and `datasynth gpu-limits`.
"""

from __future__ import annotations

from flows.runners import visible_gpus
from tasks.gpu_slots import ensure_gpu_limits, gpu_limit_name

__all__ = ["ensure_machine_gpu_limits"]


def ensure_machine_gpu_limits() -> tuple[list[str], list[str]]:
    """(every GPU limit of this machine, those created now); both empty without a GPU."""
    names = [gpu_limit_name(gpu) for gpu in visible_gpus()]
    return names, ensure_gpu_limits(names)
