"""GPU throughput of the full SD 1.5 architecture: a naive diffusers loop vs this engine's settings.

The pipeline has SD 1.5's exact architecture with random weights (no download), in fp16 at
512x512, 50 steps, CFG 7.5, so the compute is the real model's. Both settings time whole
pipeline calls (text encoder, 50x2 UNet passes, VAE decode, PIL conversion) after a warm-up:

- naive: the diffusers quick-start: fp16 on CUDA, batch 1, default attention (SDPA).
- engine: how datasynth runs it (synth/pipeline.py, synth/generate.py): a list of prompts with one
  CPU generator per image, channels_last UNet, the best batch size among `--batches` (tried in
  order until out of memory), and with `--compile` the UNet compiled at that batch size.

The FLOP floor: the SD 1.5 UNet costs ~677 GFLOP per forward pass at batch 1 (64x64 latents), and
a CFG image at 50 steps needs 100 of them, 67.7 TFLOP; floor fraction = images/s x 67.7e12 / the
card's peak dense fp16 tensor FLOP/s. (Only the UNet is counted, so it is a slight underestimate.)

    uv run python bench/bench_gpu_sd15.py [--batches 1,4,8,16] [--compile]
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

STEPS = 50
GUIDANCE = 7.5
SIZE = 512
UNET_FLOP_PER_IMAGE = 677e9 * 2 * STEPS  # 2 UNet passes per step with CFG: 67.7 TFLOP
# Peak dense fp16 tensor-core FLOP/s, first match wins (so "H100 PCIe" before plain "H100").
PEAK_FP16_TFLOPS = [
    (r"H100.*PCIe", 756.0),
    (r"H100.*NVL", 835.0),
    (r"H100", 989.0),  # SXM (HBM3)
    (r"H200", 989.0),
    (r"A100", 312.0),
    (r"\bL4\b", 121.0),
    (r"RTX 4090", 165.0),
    (r"\bT4\b", 65.0),
]


@dataclass(frozen=True)
class Measurement:
    setting: str
    batch: int
    images_per_s: float
    seconds_per_call: float


def peak_flops(device_name: str) -> float | None:
    """Peak dense fp16 FLOP/s of a card from its CUDA name, or None when not in the table."""
    for pattern, tflops in PEAK_FP16_TFLOPS:
        if re.search(pattern, device_name):
            return tflops * 1e12
    return None


def build_pipeline(workdir: Path):
    """SD 1.5 with random weights, fp16 on the GPU, progress bar off (nothing else changed)."""
    from synth.generation import build_sd15_random_pipeline

    pipe = build_sd15_random_pipeline(workdir)
    pipe = pipe.to(device="cuda", dtype=torch.float16)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def naive_call(pipe, batch: int) -> None:
    """The quick-start call: one prompt string, the pipeline's own random latents."""
    assert batch == 1
    pipe("a photo of an apple", num_inference_steps=STEPS, guidance_scale=GUIDANCE)


def engine_call(pipe, batch: int) -> None:
    """As synth/generate.py calls it: a prompt per image, one seeded CPU generator per image."""
    with torch.inference_mode():
        pipe(
            prompt=["a photo of an apple"] * batch,
            num_images_per_prompt=1,
            num_inference_steps=STEPS,
            guidance_scale=GUIDANCE,
            width=SIZE,
            height=SIZE,
            generator=[torch.Generator("cpu").manual_seed(i) for i in range(batch)],
            output_type="pil",
        )


def measure(setting: str, call, pipe, batch: int, min_images: int) -> Measurement:
    """Images/s of `call` at `batch` after one warm-up call (median over the timed calls)."""
    call(pipe, batch)  # warm-up: cuDNN/cuBLAS autotuning, allocator growth, compilation
    torch.cuda.synchronize()
    seconds = []
    for _ in range(max(2, math.ceil(min_images / batch))):
        start = time.perf_counter()
        call(pipe, batch)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    per_call = statistics.median(seconds)
    result = Measurement(setting, batch, batch / per_call, per_call)
    print(f"{setting} batch {batch}: {result.images_per_s:.3f} images/s", flush=True)
    return result


def best_engine_batch(pipe, batches: list[int], min_images: int) -> list[Measurement]:
    """Measure each batch size in order, stopping at the first out-of-memory."""
    results = []
    for batch in batches:
        try:
            results.append(measure("engine", engine_call, pipe, batch, min_images))
        except torch.cuda.OutOfMemoryError:
            print(f"engine batch {batch}: out of memory, stopping the sweep", flush=True)
            torch.cuda.empty_cache()
            break
    return results


def print_results(results: list[Measurement], naive: Measurement, peak: float | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"SD 1.5 (random weights), fp16 {SIZE}x{SIZE}, {STEPS} steps, CFG")
    for col in ("setting", "batch", "images/s", "s/call", "x naive", "FLOP floor"):
        table.add_column(col, justify="left" if col == "setting" else "right")
    for r in results:
        floor = f"{r.images_per_s * UNET_FLOP_PER_IMAGE / peak:.1%}" if peak else "n/a"
        table.add_row(
            r.setting,
            str(r.batch),
            f"{r.images_per_s:.3f}",
            f"{r.seconds_per_call:.2f}",
            f"{r.images_per_s / naive.images_per_s:.2f}",
            floor,
        )
    Console(width=120).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batches", default="1,4,8,16", help="engine batch sizes to try, in order, until OOM"
    )
    parser.add_argument("--compile", action="store_true", help="also torch.compile the UNet")
    parser.add_argument(
        "--compile-mode",
        default="max-autotune-no-cudagraphs",
        help="torch.compile mode for --compile (e.g. 'default' compiles much faster)",
    )
    parser.add_argument("--min-images", type=int, default=8, help="images per timed setting")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    # 1. Check inputs: a CUDA GPU
    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing measured")
        return
    name = torch.cuda.get_device_name()
    peak = peak_flops(name)
    warnings.filterwarnings("ignore", message="invalid value encountered in cast")  # random VAE

    with tempfile.TemporaryDirectory(prefix="bench-sd15-") as tmp:
        # 2. Build the pipeline (random weights, fp16, on the GPU)
        start = time.perf_counter()
        pipe = build_pipeline(Path(tmp))
        print(f"{name}: pipeline built in {time.perf_counter() - start:.1f} s", flush=True)
        # 3. Naive: batch 1, the pipeline as it comes
        naive = measure("naive", naive_call, pipe, 1, args.min_images)
        # 4. Engine: channels_last UNet, a batch-size sweep
        pipe.unet.to(memory_format=torch.channels_last)
        results = [naive, *best_engine_batch(pipe, batches, args.min_images)]
        best = max(results, key=lambda r: r.images_per_s)
        # 5. Optionally compile the UNet at the best batch size
        if args.compile:
            pipe.unet = torch.compile(pipe.unet, mode=args.compile_mode)
            start = time.perf_counter()
            engine_call(pipe, best.batch)  # compiles; measure() warms up once more
            print(f"compile ({args.compile_mode}): {time.perf_counter() - start:.0f} s")
            compiled = measure("engine+compile", engine_call, pipe, best.batch, args.min_images)
            results.append(compiled)
            best = max(results, key=lambda r: r.images_per_s)

    print_results(results, naive, peak)
    floor = f"{best.images_per_s * UNET_FLOP_PER_IMAGE / peak:.1%}" if peak else "n/a"
    print(
        f"sd15 gpu throughput on {name}: best {best.images_per_s:.3f} images/s "
        f"({best.setting}, batch {best.batch}) = {best.images_per_s / naive.images_per_s:.2f}x "
        f"naive {naive.images_per_s:.3f} images/s; FLOP floor fraction {floor}"
    )


if __name__ == "__main__":
    sys.exit(main())
