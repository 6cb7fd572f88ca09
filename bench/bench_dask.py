"""Dask scale-out on CPU with the tiny pipeline: images/s on 1 and 2 workers, per-task overhead.

Throughput modes, each generating a fresh dataset with the `generate-dataset` flow:

- `threads`: the default runner; one pipeline in the flow process, torch on all its threads.
- `dask-1`, `dask-2`: `flows.runners.local_cluster` with 1 or 2 worker processes, each running
  torch with this process's thread count (what `--task-runner dask` does: the same bytes as
  `threads`, so the 2 workers share the cores).
- `threads-1t`, `dask-1x1t`, `dask-2x1t`: the same with one torch thread in every process (a
  flow process under `OMP_NUM_THREADS=1`): the CPU scale-out, with the same bytes among the
  three but other bytes than the modes above (torch's thread count changes float summation
  order).

Steady state: the clusters are started, every worker has loaded the pipeline and has run a
warm-up flow before the timed runs; those one-time costs are reported apart. Timed runs are
interleaved (threads, dask-1, ..., dask-2x1t, threads, ...) so that load from other
processes on the machine falls on every mode alike.

Generation inside a whole run (`datasynth run --task-runner ...`): the `experiment` flow on a
tiny study (the same generation config, a small real folder, one recipe, one epoch) with
`threads`, `threads-1t` and `dask-2x1t`; the generation images/s is the images over the
`generate-dataset` subflow run's own start-to-end time as the Prefect server recorded it, so
the training after it does not count. This is the path a subflow used to keep on its own
thread pool; `flows.runners.with_parent_runner` now sends it to the run's cluster.

Per-task overhead: a finished dataset is rerun with every batch cached, once split into
`--tasks` one-image batches and once as a single batch; (t_many - t_one) / (tasks - 1) is the
cost of one cached task run on that runner (submission, cache lookup, result read, state
events) beyond the flow's fixed work.

    uv run python bench/bench_dask.py [--per-class 32] [--batch 8] [--steps 4] [--reps 3]
        [--run-reps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def prefect_server(tmp: Path):
    """A Prefect server with its own PREFECT_HOME; set before anything imports prefect."""
    home = tmp / "prefect-home"
    home.mkdir(parents=True)
    os.environ.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1",
        }
    )
    for key in ("PREFECT_API_URL", "DATASYNTH_FAULTS", "DATASYNTH_CRASH_AT"):
        os.environ.pop(key, None)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = open(tmp / "server.log", "wb")  # noqa: SIM115 - lives with the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
        + ["--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prefect server did not start: see {log.name}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.25)
        os.environ["PREFECT_API_URL"] = url  # before any cluster: its workers inherit it
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _load_pipeline(config_json: str) -> int:
    """Run on every worker: load the pipeline (once per process) and import the flow's tasks."""
    import os

    import tasks.generate  # noqa: F401  (what the first task would import)
    from synth.config import GenerationConfig
    from synth.generation import pipeline_for

    pipeline_for(GenerationConfig.model_validate_json(config_json))
    return os.getpid()


def _real_folder(root: Path, per_split: dict[str, int]) -> Path:
    """A small ImageFolder (train/ and test/), one colour per class, for the whole-run mode."""
    from PIL import Image

    colours = {"apple": (200, 30, 30), "banana": (230, 220, 40)}
    for split, n in per_split.items():
        for label, colour in colours.items():
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shade = tuple(max(0, c - 5 * i) for c in colour)
                Image.new("RGB", (48 + i, 40), shade).save(folder / f"{label}_{i}.png")
    return root


def _subflow_seconds(parent_run_id) -> float:
    """Start to end of the `generate-dataset` subflow run of a flow run, from the server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    parent = FlowRunFilterParentFlowRunId(any_=[parent_run_id])
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=parent))
        names = {r.flow_id: client.read_flow(r.flow_id).name for r in runs}
    (run,) = [r for r in runs if names[r.flow_id] == "generate-dataset"]
    return (run.end_time - run.start_time).total_seconds()


def _run(flow, config, out: Path) -> tuple[float, str]:
    start = time.perf_counter()
    ref = flow(config, str(out), retry_delay_seconds=0)
    return time.perf_counter() - start, ref.digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=32, help="images per class (2 classes)")
    parser.add_argument("--batch", type=int, default=8, help="images per batch task")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps")
    parser.add_argument("--reps", type=int, default=3, help="timed runs per mode")
    parser.add_argument("--tasks", type=int, default=64, help="cached tasks for the overhead")
    parser.add_argument("--run-reps", type=int, default=2, help="whole runs per mode (0: none)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "_bench_dask.md")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    load_before = os.getloadavg()
    with prefect_server(tmp), ExitStack() as stack:
        import torch
        from distributed import Client

        from flows.generate import generate_dataset
        from flows.runners import local_cluster, make_task_runner
        from synth.config import GenerationConfig
        from synth.generation import is_tiny_model, pipeline_for, save_tiny_pipeline

        model = REPO / ".datasynth" / "tiny-sd"
        if not is_tiny_model(str(model)):
            save_tiny_pipeline(model)
        config = GenerationConfig(
            classes=["apple", "banana"],
            images_per_class=args.per_class,
            model=str(model),
            steps=args.steps,
            width=64,
            height=64,
            batch_size=args.batch,
            seed=0,
            device="cpu",
        )
        images = 2 * args.per_class
        warm_config = config.model_copy(update={"images_per_class": 2 * args.batch, "seed": 1})
        threads = torch.get_num_threads()

        # (mode, Dask workers or 0 for the flow's own thread pool, torch threads per process)
        modes = [
            ("threads", 0, threads),
            ("dask-1", 1, threads),
            ("dask-2", 2, threads),
            ("threads-1t", 0, 1),
            ("dask-1x1t", 1, 1),
            ("dask-2x1t", 2, 1),
        ]
        torch_threads = {mode: t for mode, _, t in modes}

        def run(mode: str, cfg, out: Path) -> tuple[float, str]:
            torch.set_num_threads(torch_threads[mode])  # the flow process's, for threads modes
            try:
                return _run(flows[mode], cfg, out)
            finally:
                torch.set_num_threads(threads)

        # One-time costs: start each cluster, load the pipeline everywhere, run a warm-up flow
        flows, one_time = {}, {}
        for mode, workers, n_threads in modes:
            start = time.perf_counter()
            if not workers:
                pipeline_for(config)
                flows[mode] = generate_dataset
                one_time[mode] = {"start": 0.0, "load": time.perf_counter() - start}
                continue
            cluster = stack.enter_context(local_cluster(workers, torch_threads=n_threads))
            # not the default client: prefect-dask would send every runner's tasks to it
            client = stack.enter_context(Client(cluster, set_as_default=False))
            started = time.perf_counter() - start
            start = time.perf_counter()
            client.run(_load_pipeline, config.model_dump_json())
            loaded = time.perf_counter() - start
            flows[mode] = generate_dataset.with_options(
                task_runner=make_task_runner(cluster.scheduler_address)
            )
            one_time[mode] = {"start": started, "load": loaded}
        for mode in flows:
            one_time[mode]["warm-up flow"], _ = run(mode, warm_config, tmp / f"warm-{mode}")
            print(f"{mode}: one-time {one_time[mode]}", flush=True)

        # Throughput, interleaved
        seconds: dict[str, list[float]] = {mode: [] for mode in flows}
        digests: dict[str, set[str]] = {mode: set() for mode in flows}
        for rep in range(args.reps):
            for mode in flows:
                out = tmp / f"{mode}-{rep}"
                wall, digest = run(mode, config, out)
                seconds[mode].append(wall)
                digests[mode].add(digest)
                shutil.rmtree(out)
                print(
                    f"{mode} rep {rep}: {wall:.1f} s, {images / wall:.2f} images/s {digest[:12]}",
                    flush=True,
                )

        # Generation inside a whole run: the experiment flow, its generation subflow timed
        from flows.experiment import experiment
        from synth.config import ExperimentConfig

        study = ExperimentConfig.model_validate(
            {
                "name": "bench",
                "generation": config.model_dump(),
                "real_data": str(_real_folder(tmp / "real", {"train": 6, "test": 3})),
                "out": str(tmp / "study"),
                "recipes": [{"name": "real", "kind": "real"}],
                "seeds": [0],
                "train": {"epochs": 1, "finetune_epochs": 1, "device": "cpu"},
                "quality": {"enabled": False},
                "shap_images_per_class": 0,
            }
        )
        run_modes = ("threads", "threads-1t", "dask-2x1t")
        run_flows = {  # the clusters above; the thread modes keep the flow's own pool
            mode: experiment
            if flows[mode] is generate_dataset
            else experiment.with_options(task_runner=flows[mode].task_runner)
            for mode in run_modes
        }
        in_run: dict[str, list[float]] = {mode: [] for mode in run_modes}
        run_digests: dict[str, set[str]] = {mode: set() for mode in run_modes}
        for rep in range(args.run_reps):
            for mode in run_modes:
                out = tmp / f"study-{mode}-{rep}"
                cfg = study.model_copy(update={"out": str(out)})
                torch.set_num_threads(torch_threads[mode])
                try:
                    state = run_flows[mode](cfg, return_state=True)
                    state.result()
                finally:
                    torch.set_num_threads(threads)
                gen_s = _subflow_seconds(state.state_details.flow_run_id)
                in_run[mode].append(gen_s)
                dataset = json.loads((out / "synthetic" / "dataset.json").read_text())
                run_digests[mode].add(dataset["digest"])
                shutil.rmtree(out)
                print(
                    f"run {mode} rep {rep}: generation {gen_s:.1f} s, {images / gen_s:.2f} "
                    f"images/s {dataset['digest'][:12]}",
                    flush=True,
                )

        # Per-task overhead: all-cached reruns, many one-image batches vs one batch
        ovh_root = tmp / "overhead"
        base = config.model_copy(update={"images_per_class": args.tasks // 2})
        _run(generate_dataset, base, ovh_root)  # the images, made once
        overhead: dict[str, dict[str, float]] = {}
        for mode in ("threads", "dask-2"):
            walls = {}
            for size in (1, args.tasks):
                cfg = base.model_copy(update={"batch_size": size})
                _run(flows[mode], cfg, ovh_root)  # first: tasks run (skip every image), cache
                walls[size] = statistics.median(
                    _run(flows[mode], cfg, ovh_root)[0] for _ in range(args.reps + 1)
                )
            overhead[mode] = {
                "many": walls[1],
                "one": walls[args.tasks],
                "per_task_ms": 1000 * (walls[1] - walls[args.tasks]) / (args.tasks - 1),
            }
            print(f"{mode} overhead: {overhead[mode]}", flush=True)
    load_after = os.getloadavg()

    base_s = statistics.median(seconds["threads"])
    throughput = []
    for mode in flows:
        med, once = statistics.median(seconds[mode]), one_time[mode]
        reference = "threads" if torch_threads[mode] == threads else "threads-1t"
        same = len(digests[mode]) == 1 and digests[mode] == digests[reference]
        throughput.append(
            f"| `{mode}` | {torch_threads[mode]} | {med:.1f} | {images / med:.2f} "
            f"| {base_s / med:.2f}x | {once['start']:.1f} | {once['load']:.1f} "
            f"| {once['warm-up flow']:.1f} | {'yes' if same else 'NO'} (`{reference}`) |"
        )
    in_run_rows, in_run_rate = [], {}
    for mode, walls in in_run.items():
        if not walls:
            continue
        med = statistics.median(walls)
        in_run_rate[mode] = images / med
        reference = "threads" if torch_threads[mode] == threads else "threads-1t"
        same = run_digests[mode] == digests[reference]
        in_run_rows.append(
            f"| `{mode}` | {torch_threads[mode]} | {med:.1f} | {images / med:.2f} "
            f"| {'yes' if same else 'NO'} (`{reference}` above) |"
        )
    per_task = [
        f"| `{mode}` | {o['many']:.2f} | {o['one']:.2f} | {o['per_task_ms']:.0f} |"
        for mode, o in overhead.items()
    ]
    cpu = platform.machine()
    with suppress(OSError, StopIteration):
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    command = (
        f"uv run python bench/bench_dask.py --per-class {args.per_class} --batch {args.batch} "
        f"--steps {args.steps} --reps {args.reps} --tasks {args.tasks} --run-reps {args.run_reps}"
    )
    lines = [
        "## Dask scale-out on CPU (tiny pipeline)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), shared with other work while it ran (load "
        f"average {load_before[0]:.1f} before, {load_after[0]:.1f} after); torch runs {threads} "
        f"threads in the flow process. Each timed run generates {images} images of 64x64 px "
        f"({args.steps} steps, batches of {args.batch}) into a fresh directory with the "
        f"`generate-dataset` flow against a local Prefect server; median of {args.reps} "
        "interleaved runs. One-time costs (cluster start, pipeline load on every worker, a first "
        "warm-up flow run) are measured apart and not in images/s.",
        "",
        "| mode | torch threads per process | s per run | images/s | vs `threads` "
        "| cluster start (s) | pipeline load (s) | warm-up run (s) | same digest as |",
        "|---|---|---|---|---|---|---|---|---|",
        *throughput,
        "",
        f"`threads` is the default runner (the flow's pool, torch on its {threads} threads); "
        "`dask-N` are `--task-runner dask --dask-workers N`, whose workers run torch with the "
        "flow process's thread count so that every runner writes the same bytes. The `1t` "
        "modes run every process with one torch thread (the flow process under "
        "`OMP_NUM_THREADS=1`, hence its workers too): the same bytes among themselves, other "
        "bytes than the default (torch's thread count changes float summation order).",
        "",
        "Generation inside a whole run (the `experiment` flow, `datasynth run --task-runner "
        "...`): images over the `generate-dataset` subflow run's start-to-end time on the "
        f"server, median of {args.run_reps} interleaved runs per mode.",
        "",
        "| runner | torch threads per process | generation s | images/s | same digest as |",
        "|---|---|---|---|---|",
        *in_run_rows,
        "",
        *(
            [
                "Ratio, generation images/s in a whole run, Dask 2 workers x 1 torch thread vs "
                f"the thread runner: **{in_run_rate['dask-2x1t'] / in_run_rate['threads']:.2f}x** "
                f"(its default {threads} torch threads), "
                f"{in_run_rate['dask-2x1t'] / in_run_rate['threads-1t']:.2f}x (1 torch thread, "
                f"the same bytes); load average {load_before[0]:.1f} before, "
                f"{load_after[0]:.1f} after.",
                "",
            ]
            if len(in_run_rate) == 3
            else []
        ),
        f"Per-task overhead: a finished dataset rerun with every batch cached, as {args.tasks} "
        f"one-image batches and as one batch of {args.tasks}; median of {args.reps + 1} reruns.",
        "",
        f"| runner | {args.tasks} cached tasks (s) | 1 cached task (s) | per task (ms) |",
        "|---|---|---|---|",
        *per_task,
    ]
    report = "\n".join(lines) + "\n"
    args.out.write_text(report)
    print(report)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
