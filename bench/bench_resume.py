"""Resume cost: rerun the `generate-dataset` flow on a dataset that is already complete.

A complete dataset must cost (almost) nothing to rerun: the target is 0 images generated and a
rerun under 5% of the time the generation took. The script generates a dataset with the tiny
pipeline through the flow (after a one-batch warm-up call, so neither timing holds first-call
costs), then reruns the same config against the same Prefect server and counts what each rerun
wrote: PNGs whose inode or mtime changed, and manifest rows added. It also reads back what the
rerun's own report artifact claims it generated.

    uv run python bench/bench_resume.py [--per-class 128] [--batch 16] [--steps 4] [--reruns 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_generation_overhead import (
    build_tiny_model,
    flow_phases,
    load_pipeline_once,
    prefect_server,
    print_table,
    tiny_config,
)

from synth.config import GenerationConfig
from synth.generation import manifest_path, read_manifest

TARGET_FRACTION = 0.05  # a rerun of a complete dataset: under 5% of its generation time


def file_ids(root: Path) -> dict[str, tuple[int, int]]:
    """file name -> (inode, mtime_ns) of every PNG: tells which files a run rewrote."""
    split = root / "train"
    return {
        p.relative_to(split).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in split.rglob("*.png")
    }


def reported_generated(flow_run_id) -> int:
    """The 'generated_now' total of a run's `generation-summary` table artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    for artifact in found:
        if artifact.key == "generation-summary":
            rows = artifact.data if isinstance(artifact.data, list) else json.loads(artifact.data)
            return sum(int(r["generated_now"]) for r in rows)
    return -1


def run_flow(config: GenerationConfig, out: Path) -> dict[str, float]:
    """One flow call on `out`: its seconds, phases and what it wrote."""
    from flows.generate import generate_dataset

    before = file_ids(out) if out.exists() else {}
    rows_before = len(read_manifest(manifest_path(out)))
    start = time.perf_counter()
    state = generate_dataset(config, str(out), return_state=True)
    seconds = time.perf_counter() - start
    ref = state.result()
    after = file_ids(out)
    run_id = state.state_details.flow_run_id
    return {
        "seconds": seconds,
        "images": ref.images,
        "written": sum(1 for name, ident in after.items() if before.get(name) != ident),
        "rows added": len(read_manifest(manifest_path(out))) - rows_before,
        "report claims": reported_generated(run_id),
        **flow_phases(run_id, seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=128, help="images per class (2 classes)")
    parser.add_argument("--batch", type=int, default=16, help="images per pipeline call")
    parser.add_argument("--steps", type=int, default=4, help="denoising steps")
    parser.add_argument("--reruns", type=int, default=3, help="timed reruns")
    parser.add_argument(
        "--torch-threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    with tempfile.TemporaryDirectory(prefix="bench-resume-") as tmp_name:
        tmp = Path(tmp_name)
        with prefect_server(tmp):
            model_dir, _ = build_tiny_model(tmp)
            config = tiny_config(model_dir, args.per_class, args.batch, args.steps)
            # One-time costs kept out of both timings: the pipeline load and a first flow call
            load_pipeline_once(config)
            run_flow(tiny_config(model_dir, args.batch // 2, args.batch, args.steps), tmp / "warm")
            out = tmp / "dataset"
            generation = run_flow(config, out)
            reruns = []
            for i in range(args.reruns):
                reruns.append(run_flow(config, out))
                print(f"rerun {i + 1}/{args.reruns}: {reruns[-1]['seconds']:.2f} s", flush=True)

    metrics = ["seconds", "written", "rows added", "report claims", "cached batches"]
    metrics += ["plan", "batches", "verify", "report", "flow glue", "client"]
    runs = [generation, *reruns]
    print_table(
        f"resume of a complete dataset: {generation['images']:.0f} images "
        f"{config.width}x{config.height}, {config.steps} steps, batch {config.batch_size}, "
        f"torch threads {torch.get_num_threads()}",
        ["", "generation", *[f"rerun {i + 1}" for i in range(len(reruns))]],
        [
            [m, *(f"{r[m]:.2f}" if isinstance(r[m], float) else f"{r[m]:.0f}" for r in runs)]
            for m in metrics
        ],
    )
    rerun_s = statistics.median(r["seconds"] for r in reruns)
    written = max(r["written"] + r["rows added"] for r in reruns)
    fraction = rerun_s / generation["seconds"]
    verdict = "meets" if written == 0 and fraction < TARGET_FRACTION else "misses"
    print(
        f"resume: rerun of a complete dataset {rerun_s:.2f} s = {100 * fraction:.1f}% of "
        f"generation ({generation['seconds']:.2f} s), {written} images written "
        f"({verdict} target: 0 images, < {100 * TARGET_FRACTION:.0f}%)"
    )


if __name__ == "__main__":
    main()
