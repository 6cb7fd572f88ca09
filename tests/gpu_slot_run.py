"""A flow run that holds a GPU limit, for tests/test_gpu_slots.py (run as a subprocess).

    python -m tests.gpu_slot_run LIMIT RECORD READY_DIR ME OTHER

Its task waits until the other run is ready too (so both ask for the card together), then
holds LIMIT for a second and writes `<acquired> <released>` (monotonic ns) to RECORD.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from prefect import flow, task

from tasks.gpu_slots import hold_gpu


@task
def use_card(limit: str, record: str, ready: str, me: str, other: str) -> None:
    (Path(ready) / me).touch()
    while not (Path(ready) / other).exists():  # a barrier between the two runs
        time.sleep(0.05)
    with hold_gpu(limit):
        acquired = time.monotonic_ns()  # one clock for all processes of the machine (Linux)
        time.sleep(1)  # the work: long enough that two unlimited holders overlap
        released = time.monotonic_ns()
    Path(record).write_text(f"{acquired} {released}")


@flow
def run_on_card(limit: str, record: str, ready: str, me: str, other: str) -> None:
    use_card(limit, record, ready, me, other)


if __name__ == "__main__":
    run_on_card(*sys.argv[1:6])
