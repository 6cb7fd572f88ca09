"""Peak memory of preprocessing: does it grow with the uint8 output tensor, or with decoded images?

`build_tensor_set` preallocates one uint8 N x 3 x S x S tensor and fills it row by row; a decoded
512 x 512 image lives only while its row is made. So peak RSS should be a fixed floor (Python,
torch, Pillow) plus about the output tensor, N x 3 x 64 x 64 bytes (12 KiB per image), and nothing
like N float copies (48 KiB per image at 64 px, 3 MiB per image at 512 px).

Each measurement is a fresh subprocess that imports synth and preprocesses the first N of the
synthetic 512 x 512 PNGs made by `bench_training.py` (in runs/bench-data/, made once if missing)
into a 64 x 64 tensor file. Its peak RSS is the kernel's own accounting of that child
(`os.wait4` -> `ru_maxrss`). N = 0 runs the same code on no image: the floor.

    uv run python bench/bench_preprocess_memory.py [--sizes 0 440 4400]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_training import synthetic_items, synthetic_pngs, synthetic_root

MIB = 1024 * 1024
IMAGE_BYTES = 3 * 64 * 64  # one uint8 row of the output tensor


def child(n: int, out: Path) -> None:
    """Preprocess the first `n` synthetic PNGs into `out`; print what was written as JSON."""
    from synth.config import PreprocessConfig
    from synth.preprocess import build_tensor_set

    items = synthetic_items(synthetic_root(), n)
    start = time.perf_counter()
    written = build_tensor_set(items, out, PreprocessConfig(size=64))
    seconds = time.perf_counter() - start
    print(json.dumps({"images": written.count, "seconds": seconds, "file": out.stat().st_size}))


def measure(n: int, tmp: Path) -> dict:
    """Run `child(n)` in a fresh interpreter; returns its report plus peak RSS in bytes."""
    out = tmp / f"tensors-{n}.pt"
    cmd = [sys.executable, __file__, "--child", str(n), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"preprocessing {n} images failed with exit code {proc.returncode}")
    report = json.loads(stdout.strip().splitlines()[-1])
    report["peak"] = usage.ru_maxrss * 1024  # Linux reports KiB
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 440, 4400])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.out)
        return

    # 1. Inputs once (not measured), then one fresh process per size
    synthetic_pngs(max(args.sizes))
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: measure(n, Path(tmp)) for n in sorted(set(args.sizes))}

    # 2. Table: growth over the floor against the size of the output tensor
    floor = results[min(results)]["peak"]
    print(
        f"\npeak RSS of build_tensor_set in a fresh process, 512 px PNGs -> 64 x 64 uint8 "
        f"({os.cpu_count()} cores)\n"
    )
    print(
        "| images | peak RSS MiB | over floor MiB | uint8 tensor MiB | over floor / tensor "
        "| float32 64px copy MiB | float32 512px copies MiB | file MiB | s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, r in results.items():
        tensor = n * IMAGE_BYTES
        growth = r["peak"] - floor
        ratio = f"{growth / tensor:.2f}" if n else ""
        print(
            f"| {n} | {r['peak'] / MIB:.0f} | {growth / MIB:.0f} | {tensor / MIB:.1f} | {ratio} | "
            f"{4 * tensor / MIB:.0f} | {n * 512 * 512 * 3 * 4 / MIB:,.0f} | "
            f"{r['file'] / MIB:.1f} | {r['seconds']:.0f} |"
        )
    sizes = [n for n in results if n]
    small, large = min(sizes), max(sizes)
    grew = (results[large]["peak"] - results[small]["peak"]) / MIB
    tensors = (large - small) * IMAGE_BYTES / MIB
    print(
        f"\nRESULT preprocess memory: {small} -> {large} images raised peak RSS by {grew:.0f} MiB "
        f"for {tensors:.0f} MiB more uint8 tensor ({grew / tensors:.2f}x the tensor; float32 "
        f"copies would be {4 * tensors:.0f} MiB); floor {floor / MIB:.0f} MiB"
    )


if __name__ == "__main__":
    main()
