"""Peak memory of preprocessing: does it grow with the uint8 output tensor, or with decoded images?

`build_tensor_set` preallocates one uint8 N x 3 x S x S tensor and fills it row by row; a decoded
512 x 512 image lives only while its row is made. So peak RSS should be a fixed floor (Python,
torch, Pillow) plus about the output tensor, N x 3 x 64 x 64 bytes (12 KiB per image), and nothing
like N float copies (48 KiB per image at 64 px, 3 MiB per image at 512 px).

Each measurement is a fresh subprocess that imports synth and preprocesses the first N of the
synthetic 512 x 512 PNGs made by `bench_training.py` (in runs/bench-data/, made once if missing)
into a 64 x 64 tensor file. Peak RSS is the kernel's own high-water mark (VmHWM), read inside the
child: importing torch peaks higher than preprocessing 4,400 images does, so the child resets
the mark after its imports and reports the growth during `build_tensor_set` alone. N = 0 runs the
same code on no image. (A child's `ru_maxrss` from `wait4`/`RUSAGE_CHILDREN` is no use here:
Linux folds in the parent's memory image that the child held between fork and exec, ~700 MiB for
this parent, which has torch imported, so every child seemed to peak at ~700 MiB.)

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


def _status_bytes(field: str) -> int:
    """A memory field of /proc/self/status ('VmRSS', 'VmHWM'), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(n: int, out: Path) -> None:
    """Preprocess the first `n` synthetic PNGs into `out`; print what it took as JSON.

    The peak of the import (torch alone is most of it) would hide the call's own growth, so the
    kernel's high-water mark is reset just before the call (`clear_refs` 5, Linux >= 4.0) and
    read just after it.
    """
    from synth.config import PreprocessConfig
    from synth.data import build_tensor_set

    items = synthetic_items(synthetic_root(), n)
    import_peak = _status_bytes("VmHWM")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS now
    before = _status_bytes("VmRSS")
    start = time.perf_counter()
    written = build_tensor_set(items, out, PreprocessConfig(size=64))
    seconds = time.perf_counter() - start
    report = {
        "images": written.count,
        "seconds": seconds,
        "file": out.stat().st_size,
        "import_peak": import_peak,
        "before": before,
        "call_peak": _status_bytes("VmHWM"),
    }
    print(json.dumps(report))


def measure(n: int, tmp: Path) -> dict:
    """Run `child(n)` in a fresh interpreter; returns its report (memory in bytes)."""
    out = tmp / f"tensors-{n}.pt"
    cmd = [sys.executable, __file__, "--child", str(n), "--out", str(out)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"preprocessing {n} images failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


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

    # 2. Table: growth during the call against the size of the output tensor
    print(
        "\nbuild_tensor_set in a fresh process per row: 512 px PNGs -> 64 x 64 uint8 "
        f"({os.cpu_count()} cores)\n"
    )
    print(
        "| images | RSS before call MiB | peak during call MiB | growth MiB | uint8 tensor MiB "
        "| growth / tensor | float32 64px copy MiB | float32 512px copies MiB "
        "| import peak MiB | s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    growth = {}
    for n, r in results.items():
        tensor = n * IMAGE_BYTES
        growth[n] = r["call_peak"] - r["before"]
        ratio = f"{growth[n] / tensor:.2f}" if n else ""
        print(
            f"| {n} | {r['before'] / MIB:.0f} | {r['call_peak'] / MIB:.0f} | "
            f"{growth[n] / MIB:.1f} | {tensor / MIB:.1f} | {ratio} | {4 * tensor / MIB:.0f} | "
            f"{n * 512 * 512 * 3 * 4 / MIB:,.0f} | {r['import_peak'] / MIB:.0f} | "
            f"{r['seconds']:.0f} |"
        )
    sizes = [n for n in results if n]
    small, large = min(sizes), max(sizes)
    more = (large - small) * IMAGE_BYTES
    extra = growth[large] - growth[small]
    import_peak = max(r["import_peak"] for r in results.values())
    print(
        f"\nRESULT preprocess memory: {small} -> {large} images: growth during the call "
        f"{growth[small] / MIB:.1f} -> {growth[large] / MIB:.1f} MiB, +{extra / MIB:.1f} MiB for "
        f"+{more / MIB:.1f} MiB of uint8 tensor ({extra / more:.2f}x; float32 copies would be "
        f"+{4 * more / MIB:.0f} MiB); import peak {import_peak / MIB:.0f} MiB"
    )


if __name__ == "__main__":
    main()
