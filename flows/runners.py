"""Task runners behind `--task-runner`: threads in the flow process, or a Dask cluster.

- `threads` (default): the flow's own thread pool; every batch shares one pipeline in the flow
  process.
- `dask`: a temporary local Dask cluster, created when the flow run starts and closed when it
  ends. One worker process per visible CUDA GPU, or `workers` CPU workers (default 2) when there
  is no GPU or the config says `device = "cpu"`. Each worker runs one task at a time
  (`nthreads=1`) and loads the pipeline once, on its first batch
  (`synth.generation.model_loader` caches it per process).
- `dask://HOST:PORT` or `tcp://HOST:PORT`: an existing Dask scheduler. Its workers must import
  this project and reach the same Prefect API, dataset directory and result storage as the
  flow; pinning GPUs is then the cluster's business (`dask cuda worker` pins one per worker).
  (prefect-dask sends tasks to the process's default `distributed.Client` when there is one,
  whatever the address: create other clients with `set_as_default=False`.)

Subflows: a subflow does not inherit its parent's task runner (Prefect enters the subflow's
own), so a flow that calls one on Dask wraps it in `with_parent_runner`: the subflow's tasks
then go to the parent's cluster (one cluster per run, not a second one), and on the thread
runner the subflow keeps its own pool. `experiment` does so for `generate_dataset`, which is how
`datasynth run --task-runner dask` spreads the generation batches.

Local workers report to the flow process's Prefect API: its `PREFECT_API_URL`, or the temporary
server a flow run starts when none is set (workers left to themselves would each start one).

GPU pinning of the local cluster: each worker is a separate process started by its own Nanny
with `CUDA_VISIBLE_DEVICES` set to exactly one GPU; the Nanny sets it in the new process before
anything imports torch, so before CUDA initialises. Inside the worker that GPU is `cuda:0`, so
configs keep `device = "auto"` or `"cuda"` and synth needs no per-worker device logic. GPU ids
come from the flow process's own `CUDA_VISIBLE_DEVICES` when it is set (worker i gets its i-th
entry, UUIDs included), else they are 0..N-1.

Same bytes whatever the runner: on a CPU, torch's intra-op thread count changes the summation
order and so some image bytes. Every local worker therefore runs torch with the thread count of
the flow process (what the `threads` runner uses), so a dataset made by 1 or N workers or by
the thread pool is the same, digest for digest. On a CPU this oversubscribes the cores
(N workers x all cores), which makes Dask slower than the thread pool there. To scale out on
CPU cores, run the command under `OMP_NUM_THREADS=1`: the flow process and so every worker then
use one torch thread, and the dataset is the one `OMP_NUM_THREADS=1` with the thread pool
writes (docs/BENCHMARKS.md has the numbers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from synth.errors import InputError

__all__ = [
    "apply_task_runner",
    "local_cluster",
    "make_task_runner",
    "visible_gpus",
    "with_parent_runner",
    "worker_envs",
]

SPECS = "'threads', 'dask', 'dask://HOST:PORT' or 'tcp://HOST:PORT'"
DEFAULT_CPU_WORKERS = 2


def visible_gpus() -> tuple[str, ...]:
    """Ids of the CUDA GPUs this process sees, as `CUDA_VISIBLE_DEVICES` entries for workers."""
    import torch

    count = torch.cuda.device_count()
    if not count:
        return ()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = [part.strip() for part in listed.split(",") if part.strip()]
    return tuple(ids[:count]) if ids else tuple(str(i) for i in range(count))


def worker_envs(n_workers: int, gpus: Sequence[str]) -> list[dict[str, str]]:
    """Environment of each local worker: with GPUs, worker i sees only `gpus[i]`."""
    if n_workers < 1:
        raise InputError(f"`workers` must be at least 1, got {n_workers}")
    if not gpus:
        return [{} for _ in range(n_workers)]
    if n_workers > len(gpus):
        raise InputError(
            f"`workers` is {n_workers} but only {len(gpus)} GPU(s) are visible "
            f"({', '.join(gpus)}): one worker per GPU at most"
        )
    return [{"CUDA_VISIBLE_DEVICES": gpus[i]} for i in range(n_workers)]


class _DatasynthWorker(WorkerPlugin):
    """Per-worker setup: torch's thread count on start; Prefect's pending events on close.

    Task-run states reach the Prefect server as events sent by a background thread; unsent
    ones would be lost when the Nanny kills a slow-to-exit worker (runs stuck 'Running').
    """

    name = "datasynth-worker"

    def __init__(self, torch_threads: int) -> None:
        self.torch_threads = torch_threads

    def setup(self, worker) -> None:
        import torch

        torch.set_num_threads(self.torch_threads)

    async def teardown(self, worker) -> None:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        for service in (EventsWorker, APILogWorker):
            drained = service.drain_all(timeout=30)
            if drained is not None:  # a coroutine: we are on the worker's event loop
                await drained


def _prefect_api_url() -> str:
    """The Prefect API this process reports to; the workers must report to the same one.

    Without `PREFECT_API_URL` a flow run starts a temporary server of its own, and workers
    that inherited no URL would each start another one.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return PREFECT_API_URL.value()
    with get_client(sync_client=True) as client:
        return str(client.api_url)


def local_cluster(n_workers: int, gpus: Sequence[str] = (), torch_threads: int | None = None):
    """A loopback Dask cluster of `n_workers` one-task-at-a-time processes, one GPU each.

    Workers are named `gpu-<id>` (pinned to that GPU) or `cpu-<i>`; `torch_threads` defaults
    to this process's torch thread count (see the module docstring for why).
    """
    import dask
    import torch
    from distributed import Nanny, Scheduler, SpecCluster
    from distributed.system import MEMORY_LIMIT

    envs = worker_envs(n_workers, gpus)
    if gpus:
        names = [f"gpu-{g}" for g in gpus[:n_workers]]
    else:
        names = [f"cpu-{i}" for i in range(n_workers)]
    options = {
        "nthreads": 1,  # one batch at a time: a GPU runs one pipeline call at once
        "host": "127.0.0.1",
        # the machine's memory split between the workers, as LocalCluster does: Dask's default
        # share per core can be less than loading a full-size pipeline needs
        "memory_limit": MEMORY_LIMIT // n_workers,
        "silence_logs": logging.WARNING,
        "plugins": (_DatasynthWorker(torch_threads or torch.get_num_threads()),),
    }
    api = {"PREFECT_API_URL": _prefect_api_url()}
    workers = {
        name: {"cls": Nanny, "options": {**options, "env": {**env, **api}}}
        for name, env in zip(names, envs, strict=True)
    }
    # no dashboard; its HTTP server (health, metrics) on a free port, not 8787
    scheduler_options = {"host": "127.0.0.1", "dashboard": False, "dashboard_address": ":0"}
    scheduler = {"cls": Scheduler, "options": scheduler_options}
    # Dask's Nanny writes OMP_NUM_THREADS=1 (and more) into *this* process's environment before
    # spawning; an empty list keeps later subprocesses of the flow process on torch's defaults.
    logging.getLogger("distributed").setLevel(logging.WARNING)  # no INFO chatter in the CLI
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {}}):
        return SpecCluster(
            workers=workers, scheduler=scheduler, silence_logs=logging.WARNING, name="datasynth"
        )


def _address(spec: str) -> str | None:
    scheme, sep, rest = spec.partition("://")
    if not sep or scheme not in ("dask", "tcp", "tls"):
        return None
    host, colon, port = rest.rpartition(":")
    if not (host and colon and port.isdigit()):
        raise InputError(f"`task_runner` {spec!r} needs HOST:PORT after '{scheme}://'")
    return f"{'tcp' if scheme == 'dask' else scheme}://{rest}"


def make_task_runner(
    spec: str = "threads", *, workers: int | None = None, gpus: Sequence[str] | None = None
) -> TaskRunner:
    """The Prefect task runner named by `spec` (see the module docstring).

    Args:
        spec: 'threads', 'dask', 'dask://HOST:PORT' or 'tcp://HOST:PORT'.
        workers: local Dask workers; default one per GPU, or 2 without GPUs.
        gpus: GPU ids to pin workers to; default `visible_gpus()`, `()` for CPU workers.
    """
    if spec == "threads":
        return ThreadPoolTaskRunner()
    address = _address(spec)
    if spec != "dask" and address is None:
        raise InputError(f"`task_runner` must be {SPECS}, got {spec!r}")
    from prefect_dask import DaskTaskRunner

    if address is not None:
        if workers is not None:
            raise InputError("`workers` applies to a local cluster ('dask'), not to an address")
        return DaskTaskRunner(address=address)
    gpus = tuple(visible_gpus() if gpus is None else gpus)
    n_workers = workers or len(gpus) or DEFAULT_CPU_WORKERS
    worker_envs(n_workers, gpus)  # check inputs now, not when the flow starts the cluster
    return DaskTaskRunner(
        cluster_class=local_cluster, cluster_kwargs={"n_workers": n_workers, "gpus": gpus}
    )


def apply_task_runner(flow: Any, spec: str, *, workers: int | None = None, device: str = "auto"):
    """`flow` with its tasks on `spec`; 'threads' keeps the flow's own thread pool.

    `device = "cpu"` in the config means CPU workers even on a machine with GPUs.
    """
    if spec == "threads":
        if workers is not None:
            raise InputError("`dask_workers` only applies to `--task-runner dask`")
        return flow
    runner = make_task_runner(spec, workers=workers, gpus=() if device == "cpu" else None)
    return flow.with_options(task_runner=runner)


def with_parent_runner(subflow: Any):
    """`subflow` on the calling flow run's Dask cluster when that run is on Dask; else as is.

    Call it inside the parent flow. The subflow gets a runner connected to the parent's
    scheduler (its own client, the same workers, which keep their loaded pipelines); the
    parent's cluster is started here if no task has used it yet, and closed with the parent.
    """
    from prefect.context import FlowRunContext
    from prefect_dask import DaskTaskRunner

    context = FlowRunContext.get()
    parent = context.task_runner if context else None
    if not isinstance(parent, DaskTaskRunner):
        return subflow
    address = parent.client.scheduler.address
    return subflow.with_options(task_runner=DaskTaskRunner(address=address))
