"""One card, one run: a Prefect global concurrency limit per GPU, held around GPU work.

Every task that runs on a GPU (a generation batch, a training run) holds the limit of its card,
`gpu-<id>@<machine>` (limit 1), for as long as it computes, so two flow runs on one machine
(two workers of the `gpu` pool, `datasynth serve` beside a CLI run, two Dask clusters) never
compute on the same card at once. The limits live on the Prefect server, so they hold across
the separate processes of flow runs and Dask workers (Prefect's per-worker GPU example does the
same). A task on the CPU takes no limit and asks the server nothing.

- `<id>` is the card this process calls `cuda:0`: the first entry of its `CUDA_VISIBLE_DEVICES`
  (what a Dask worker of `flows/runners.py` is pinned to), else `0`. Name cards the same way
  everywhere (indices or UUIDs, not both).
- `<machine>` is `DATASYNTH_MACHINE`, else the host name. In containers, set it to the host's
  name: each container has its own host name but they share the host's cards.
- A missing limit is created (limit 1) on first use; `datasynth gpu-limits` and `datasynth
  serve` create the machine's limits up front, so they show in the UI before any run.
- Threads of one process share one hold: the flow's thread pool overlaps one batch writing its
  PNGs with the next one denoising (they queue on the pipeline lock, not on the server), and the
  card is given back when no task of the process is using it. A run waiting for the card polls
  the server (`Retry-After`, at most 30 s by default).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from synth.devices import resolve_device

__all__ = [
    "ensure_gpu_limits",
    "gpu_limit_name",
    "gpu_slot",
    "hold_gpu",
    "machine_name",
    "placement",
]

LEASE_SECONDS = 300  # renewed every 75% of this while held; a killed holder frees it after


def machine_name() -> str:
    """This machine's name in the GPU limits: `DATASYNTH_MACHINE`, else the host name."""
    return os.environ.get("DATASYNTH_MACHINE") or socket.gethostname()


def gpu_limit_name(gpu: str | None = None, machine: str | None = None) -> str:
    """`gpu-<id>@<machine>`; by default the card this process calls `cuda:0`."""
    if gpu is None:
        listed = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        gpu = next((p.strip() for p in listed.split(",") if p.strip()), "0")
    return f"gpu-{gpu}@{machine or machine_name()}"


def ensure_gpu_limits(names: Sequence[str]) -> list[str]:
    """Create each missing limit with one slot; returns the names created (others are kept)."""
    created = []
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                client.read_global_concurrency_limit_by_name(name)
                continue
            except ObjectNotFound:
                pass
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )
                created.append(name)
            except ObjectAlreadyExists:  # another process created it meanwhile
                pass
    return created


class _Hold:
    """One process's hold on a limit, shared by its threads: acquired by the first user,
    released by the last."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.users = 0
        self.stack: ExitStack | None = None

    def enter(self) -> None:
        with self.lock:  # a second thread waits here while the first acquires
            if self.users == 0:
                ensure_gpu_limits([self.name])
                stack = ExitStack()
                # renewal failures are logged, not raised: the release may run in another thread
                stack.enter_context(
                    concurrency(
                        self.name,
                        lease_duration=LEASE_SECONDS,
                        strict=True,
                        raise_on_lease_renewal_failure=False,
                    )
                )
                self.stack = stack
            self.users += 1

    def exit(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0 and self.stack is not None:
                self.stack, stack = None, self.stack
                stack.close()


_holds: dict[str, _Hold] = {}
_holds_lock = threading.Lock()


@contextmanager
def hold_gpu(name: str) -> Iterator[str]:
    """Hold the limit `name` for the block (shared with this process's other threads)."""
    with _holds_lock:
        hold = _holds.setdefault(name, _Hold(name))
    hold.enter()
    try:
        yield name
    finally:
        hold.exit()


@contextmanager
def gpu_slot(device: str) -> Iterator[str | None]:
    """Hold this process's card for the block when `device` resolves to CUDA; else nothing.

    Yields the limit's name, or None on the CPU.
    """
    if resolve_device(device) != "cuda":
        yield None
        return
    with hold_gpu(gpu_limit_name()) as name:
        yield name


def placement() -> str:
    """Where this task runs, for its log: the Dask worker's name, or the flow's process."""
    try:
        from distributed import get_worker

        return f"Dask worker {get_worker().name} (pid {os.getpid()})"
    except (ImportError, ValueError):
        return f"flow process (pid {os.getpid()})"
