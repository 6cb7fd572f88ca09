"""Orchestration overhead: the `generate-dataset` flow against a bare diffusers loop.

Both run the same tiny random-weight pipeline (loaded once, shared by the whole process), with
the same prompts, seeds, batch size and image count, and both write one PNG per image. Only the
flow adds the dataset lock, the resume scan, fsynced atomic writes, the manifest, the sha256
verify pass, one Prefect task run per batch and the report artifacts. A third mode, `engine`,
runs synth's generation steps without Prefect, which splits the overhead between crash safety
(synth) and orchestration (Prefect). The modes are interleaved (bare, engine, flow, bare, ...)
so that load from other processes on the machine falls on all of them alike.

What is counted: the flow call itself, against a Prefect server that is already running (a
temporary PREFECT_HOME on a free loopback port). The server start-up, the pipeline load and the
first call of each mode (a one-batch warm-up) are one-time costs, reported apart. Besides wall
time, CPU seconds are counted (this process, all threads, plus the Prefect server's processes).

Threads: Prefect runs each task body in a worker thread, so `bare` and `engine` also run in one
worker thread: all modes then denoise under the same threading. With torch's default OpenMP
threads on a 2-core machine shared with other work, runs swing 2-7x (threads spin with no core
to run on); `--torch-threads 1` or `OMP_WAIT_POLICY=PASSIVE` give steady numbers.

    uv run python bench/bench_generation_overhead.py [--per-class 128] [--batch 16] [--steps 4]
    uv run python bench/bench_generation_overhead.py --profile   # the extra work, part by part
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

from synth.config import GenerationConfig
from synth.generation import (
    generate_batch,
    model_info,
    pipeline_for,
    plan_images,
    prepare_output,
    scan_dataset,
    split_batches,
    write_summary,
)
from synth.lock import DatasetLock

TARGET_RATIO = 1.10  # flow / bare: orchestration may cost at most 10% of the generation time


# --- a Prefect server for this process (the idea of tests/conftest.py) ---------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Server:
    """A running Prefect server: its process and how long it took to come up."""

    proc: subprocess.Popen
    startup_s: float

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server and its children (uvicorn) so far."""
        root = psutil.Process(self.proc.pid)
        return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])


@contextmanager
def prefect_server(tmp: Path) -> Iterator[Server]:
    """Start `prefect server start` with its own PREFECT_HOME and point this process at it.

    Must run before anything imports prefect (its settings are read at import).
    """
    home = tmp / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",  # as the CLI sets it: caching needs it
            "HF_HUB_OFFLINE": "1",
        }
    )
    os.environ.pop("PREFECT_API_URL", None)
    for hook in ("DATASYNTH_FAULTS", "DATASYNTH_CRASH_AT"):
        os.environ.pop(hook, None)  # a benchmark never injects faults
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    start = time.perf_counter()
    with open(tmp / "prefect-server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
            + ["--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: see {tmp / 'prefect-server.log'}")
            if time.perf_counter() - start > 180:
                raise RuntimeError("prefect server did not start within 180 s")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.25)
        os.environ["PREFECT_API_URL"] = url
        yield Server(proc, time.perf_counter() - start)
    finally:
        _drain_prefect_workers()
        proc.terminate()
        proc.wait(timeout=30)


def _drain_prefect_workers() -> None:
    """Flush the logs and events still queued for the server before it stops."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all()
    EventsWorker.drain_all()


# --- the workload ------------------------------------------------------------------------------


def tiny_config(model_dir: Path, per_class: int, batch: int, steps: int) -> GenerationConfig:
    """2 classes of 64x64 images from the tiny pipeline (CFG on, as in real use)."""
    return GenerationConfig(
        classes=["apple", "banana"],
        images_per_class=per_class,
        model=str(model_dir),
        steps=steps,
        width=64,
        height=64,
        batch_size=batch,
        seed=0,
    )


def build_tiny_model(tmp: Path) -> tuple[Path, float]:
    """`datasynth tiny-model` into `tmp`; returns the directory and the seconds it took."""
    from synth.generation import save_tiny_pipeline

    start = time.perf_counter()
    path = save_tiny_pipeline(tmp / "tiny-sd")
    return path, time.perf_counter() - start


def load_pipeline_once(config: GenerationConfig) -> float:
    """Load the process-wide pipeline that every mode then shares; returns the seconds."""
    start = time.perf_counter()
    pipeline_for(config)
    return time.perf_counter() - start


def run_bare(config: GenerationConfig, out: Path) -> dict[str, float]:
    """What a user writes without datasynth: call the pipeline per batch, save each PNG."""
    pipe = pipeline_for(config).pipe
    for batch in split_batches(plan_images(config), config.batch_size):
        with torch.inference_mode():
            images = pipe(
                prompt=[item.prompt for item in batch],
                num_inference_steps=config.steps,
                guidance_scale=config.guidance_scale,
                width=config.width,
                height=config.height,
                generator=[torch.Generator("cpu").manual_seed(item.seed) for item in batch],
            ).images
        for item, image in zip(batch, images, strict=True):
            path = out / "train" / item.file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
    return {}


def run_engine(config: GenerationConfig, out: Path) -> dict[str, float]:
    """The flow's steps through synth alone: lock, repair scan, batches, verify (no report)."""
    phases: dict[str, float] = {}
    with DatasetLock(out):
        t0 = time.perf_counter()
        prepare_output(out, config, model_info(config))
        t1 = time.perf_counter()
        for batch in split_batches(plan_images(config), config.batch_size):
            generate_batch(config, out, batch)
        t2 = time.perf_counter()
        state = scan_dataset(out, config)
        assert not state.missing, "the engine left images missing"
        write_summary(out, config, state)
        t3 = time.perf_counter()
    phases.update({"prepare": t1 - t0, "batches": t2 - t1, "verify": t3 - t2})
    return phases


def run_flow(config: GenerationConfig, out: Path) -> dict[str, float]:
    """The `generate-dataset` flow; returns its phases as the Prefect server recorded them."""
    from flows.generate import generate_dataset

    start = time.perf_counter()
    state = generate_dataset(config, str(out), return_state=True)
    wall = time.perf_counter() - start
    ref = state.result()
    assert ref.images == len(plan_images(config)), f"flow made {ref.images} images"
    return flow_phases(state.state_details.flow_run_id, wall)


def flow_phases(flow_run_id, wall: float) -> dict[str, float]:
    """Seconds per phase of one flow run, from the task runs the server recorded."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )

    def span(prefix: str) -> float:
        timed = [r for r in runs if r.name.startswith(prefix) and r.start_time and r.end_time]
        if not timed:
            return 0.0
        return (max(r.end_time for r in timed) - min(r.start_time for r in timed)).total_seconds()

    in_server = (flow_run.end_time - flow_run.start_time).total_seconds()
    phases = {
        "plan": span("plan-generation"),
        "batches": span("generate-batch"),
        "verify": span("verify-dataset"),
        "report": span("publish-generation-report"),
    }
    phases["flow glue"] = in_server - sum(phases.values())  # lock, progress artifact, submits
    phases["client"] = wall - in_server  # creating the flow run, engine start/stop
    phases["cached batches"] = sum(
        1 for r in runs if r.name.startswith("generate-batch") and r.state_name == "Cached"
    )
    return phases


# --- profile: what each part of the overhead costs, measured apart ------------------------------


def _cost(what: str, fn: Callable[[], object]) -> list[str]:
    cpu0, start = time.process_time(), time.perf_counter()
    fn()
    return [what, f"{time.perf_counter() - start:.3f}", f"{time.process_time() - cpu0:.3f}"]


def profile_parts(config: GenerationConfig, tmp: Path) -> list[list[str]]:
    """Wall and CPU seconds of the flow's extra work for one dataset of `config`, part by part."""
    from prefect import flow

    from synth.generation import append_rows, read_manifest
    from synth.storage import atomic_write_bytes
    from tasks.generate import BatchSpec, generate_images

    out = tmp / "profiled"
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(run_engine, config, out).result()
    pngs = sorted((out / "train").rglob("*.png"))
    data = [p.read_bytes() for p in pngs]
    rows = read_manifest(out / "train" / "metadata.jsonl")
    batches = split_batches(plan_images(config), config.batch_size)
    (tmp / "atomic").mkdir()
    (tmp / "plain").mkdir()

    @flow(name="profile-executed-batches")
    def executed_batches() -> None:
        """Every batch task runs (no cache) and finds its images done: Prefect's cost alone."""
        batch_task = generate_images.with_options(refresh_cache=True)
        futures = [
            batch_task.submit(config, str(out), BatchSpec(n, b)) for n, b in enumerate(batches)
        ]
        for future in futures:
            assert future.result().generated == 0

    @flow(name="profile-empty")
    def empty() -> None:
        """A flow with no task: Prefect's fixed cost per flow call."""

    n = len(pngs)
    return [
        _cost(
            f"plain write of {n} PNGs (bare)",
            lambda: [(tmp / "plain" / f"{i}.png").write_bytes(d) for i, d in enumerate(data)],
        ),
        _cost(
            f"atomic fsynced write of {n} PNGs",
            lambda: [
                atomic_write_bytes(tmp / "atomic" / f"{i}.png", d) for i, d in enumerate(data)
            ],
        ),
        _cost(
            f"{n} manifest appends (fsync each)",
            lambda: [append_rows(tmp / "manifest.jsonl", [r]) for r in rows],
        ),
        _cost(
            f"{len(batches)} manifest reads (one per batch)",
            lambda: [read_manifest(out / "train" / "metadata.jsonl") for _ in batches],
        ),
        _cost(
            "resume scan with sha256 (plan)",
            lambda: prepare_output(out, config, model_info(config)),
        ),
        _cost("verify pass with sha256", lambda: scan_dataset(out, config)),
        _cost("empty flow (warm-up)", empty),
        _cost("empty flow", empty),
        _cost(f"flow of {len(batches)} executed no-op batch tasks", executed_batches),
    ]


# --- measuring ---------------------------------------------------------------------------------

Runner = Callable[[GenerationConfig, Path], dict[str, float]]


@dataclass(frozen=True)
class Sample:
    """One timed run: wall seconds, CPU seconds (this process + server), and its phases."""

    seconds: float
    cpu: float
    phases: dict[str, float]


def timed(name: str, runner: Runner, config: GenerationConfig, out: Path, server: Server) -> Sample:
    """One run into a fresh `out` (deleted afterwards).

    The flow is called from the main thread as the CLI does (its tasks run in Prefect's worker
    threads); the other modes run in one worker thread, so every mode denoises in a worker thread.
    """
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    server0 = server.cpu_seconds()
    cpu0 = time.process_time()
    start = time.perf_counter()
    if name == "flow":
        phases = runner(config, out)
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:
            phases = pool.submit(runner, config, out).result()
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    server_cpu = server.cpu_seconds() - server0
    shutil.rmtree(out, ignore_errors=True)
    return Sample(seconds, cpu + server_cpu, {**phases, "server CPU": server_cpu})


def median_phases(samples: list[dict[str, float]]) -> dict[str, float]:
    keys = samples[0].keys() if samples else ()
    return {k: statistics.median(s[k] for s in samples) for k in keys}


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=120).print(table)  # not the 80 columns rich assumes when piped


def measure(
    modes: dict[str, Runner], config: GenerationConfig, reps: int, tmp: Path, server: Server
) -> tuple[dict[str, float], dict[str, list[Sample]]]:
    """A one-batch warm-up per mode, then `reps` interleaved timed runs of every mode."""
    warmup = config.model_copy(update={"images_per_class": config.batch_size // 2})
    first = {
        name: timed(name, run, warmup, tmp / "warmup", server).seconds
        for name, run in modes.items()
    }
    samples: dict[str, list[Sample]] = {name: [] for name in modes}
    for rep in range(reps):
        for name, run in modes.items():
            sample = timed(name, run, config, tmp / f"{name}-{rep}", server)
            samples[name].append(sample)
            print(
                f"rep {rep + 1}/{reps} {name}: {sample.seconds:.2f} s wall, {sample.cpu:.2f} s CPU",
                flush=True,
            )
    return first, samples


def report(
    config: GenerationConfig, samples: dict[str, list[Sample]], one_time: dict[str, float]
) -> None:
    """The result tables and the one result line."""
    images = len(plan_images(config))
    reps = len(samples["bare"])
    wall = {name: statistics.median(s.seconds for s in runs) for name, runs in samples.items()}
    cpu = {name: statistics.median(s.cpu for s in runs) for name, runs in samples.items()}
    print_table(
        f"{images} images {config.width}x{config.height}, {config.steps} steps, "
        f"batch {config.batch_size}, torch threads {torch.get_num_threads()}, "
        f"{reps} interleaved reps (medians)",
        ["mode", "wall s", "min s", "max s", "images/s", "wall x bare", "CPU s", "CPU x bare"],
        [
            [
                name,
                f"{wall[name]:.2f}",
                f"{min(s.seconds for s in runs):.2f}",
                f"{max(s.seconds for s in runs):.2f}",
                f"{images / wall[name]:.1f}",
                f"{wall[name] / wall['bare']:.3f}",
                f"{cpu[name]:.2f}",
                f"{cpu[name] / cpu['bare']:.3f}",
            ]
            for name, runs in samples.items()
        ],
    )
    print_table(
        "median phases (seconds; flow phases as the Prefect server recorded them)",
        ["phase", "value"],
        [
            [f"{name}: {phase}", f"{value:.0f}" if phase == "cached batches" else f"{value:.2f}"]
            for name, runs in samples.items()
            for phase, value in median_phases([s.phases for s in runs]).items()
        ],
    )
    print_table(
        "one-time costs (not in the ratios above)",
        ["cost", "seconds"],
        [[what, f"{seconds:.2f}"] for what, seconds in one_time.items()],
    )
    ratio = wall["flow"] / wall["bare"]
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(
        f"generation overhead: flow/bare = {ratio:.3f} wall ({verdict} target <= {TARGET_RATIO}), "
        f"{cpu['flow'] / cpu['bare']:.3f} CPU; flow {wall['flow']:.2f} s, bare "
        f"{wall['bare']:.2f} s, median of {reps}, {images} images"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=128, help="images per class (2 classes)")
    parser.add_argument("--batch", type=int, default=16, help="images per pipeline call")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps")
    parser.add_argument("--reps", type=int, default=3, help="timed runs per mode")
    parser.add_argument("--no-engine", action="store_true", help="skip the synth-only mode")
    parser.add_argument(
        "--torch-threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="instead: time the flow's extra work part by part"
    )
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)  # process-wide, worker threads included

    modes: dict[str, Runner] = {"bare": run_bare, "engine": run_engine, "flow": run_flow}
    if args.no_engine:
        del modes["engine"]
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        with prefect_server(tmp) as server:
            model_dir, build_s = build_tiny_model(tmp)
            config = tiny_config(model_dir, args.per_class, args.batch, args.steps)
            load_s = load_pipeline_once(config)
            if args.profile:
                rows = profile_parts(config, tmp)
                print_table(
                    "the flow's extra work, part by part", ["part", "wall s", "CPU s"], rows
                )
                return
            first, samples = measure(modes, config, args.reps, tmp, server)
    one_time = {
        "prefect server start-up (to /health)": server.startup_s,
        "tiny model build + save": build_s,
        "pipeline load (once per process)": load_s,
        **{f"first {name} call (1-batch warm-up)": s for name, s in first.items()},
    }
    report(config, samples, one_time)


if __name__ == "__main__":
    main()
