"""Training throughput: synth's cached-tensor path against the study's decode-every-epoch loader.

Both paths train the same StudyCNN (Adam 1e-3, batch 32, same seed, same epochs) on the same
images: the 220 real training photos of data/fruits plus N synthetic 512 x 512 PNGs (4,400, as
many as the study generated).

- cached (synth): `build_tensor_set` decodes and letterboxes every image ONCE into a uint8
  N x 3 x 64 x 64 tensor file (a one-time cost, timed apart), then `synth.train.train_classifier`
  trains from that tensor.
- study (torchvision): `ImageFolder` + a transform that decodes, letterboxes (the same
  `synth.preprocess.letterbox`, LANCZOS, black bars) and converts every image in every epoch,
  through a `DataLoader` with `num_workers=0`, then with `num_workers=2` (default
  `persistent_workers=False`, as most scripts leave it).

The synthetic PNGs are NOT Stable Diffusion outputs (generating 4,400 512 px images on a CPU takes
hours). They stand in for them at the same size and a similar file size, which is what the decoder
pays for: per image, an 8 x 8 grid of random colours upscaled to 512 x 512 (bicubic: smooth
blobs), plus Gaussian grain (sigma 3, from one of 8 fixed noise fields, rolled by a random
offset), saved as PNG with zlib level 3 (~460 KB each; SD 1.5 PNGs are typically 350-550 KB).
They are made once into `runs/bench-data/` and reused.

Timings include the optimiser steps, so the ratio is what a user sees end to end. The time the
study loop spends waiting for its next batch is reported too ("data s"): it is the part that
caching removes. Torch runs on `--threads` threads (default 1) in every path: on this
shared 2-core machine two OpenMP threads ran 3-4x slower than one while other jobs were running.

    uv run python bench/bench_training.py [--epochs 2] [--synthetic 4400] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from synth.config import PreprocessConfig, TrainConfig
from synth.models import StudyCNN, to_input
from synth.preprocess import (
    PreprocessItem,
    build_tensor_set,
    letterbox,
    load_tensor_set,
    real_items,
)
from synth.realdata import import_real_dataset
from synth.train import train_classifier

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "data" / "fruits"
BENCH_DATA = REPO / "runs" / "bench-data"
CLASSES = ("Apple", "Banana", "Orange")  # the real folders' names: ImageFolder labels agree
TARGET_RATIO = 5.0  # cached path at least 5x the study's images/s
_GRAIN_FIELDS = 8


# --- the synthetic stand-ins --------------------------------------------------------------------


def synthetic_root(size: int = 512, seed: int = 0) -> Path:
    """Where `synthetic_pngs` keeps its images."""
    return BENCH_DATA / f"synthetic-{size}-seed{seed}"


def synthetic_pngs(n: int, *, size: int = 512, seed: int = 0) -> Path:
    """An ImageFolder `<root>/train/<Class>/<i>.png` of `n` smooth random PNGs (made once).

    Classes take turns (image i is class i % 3), so 4,400 gives 1,467 / 1,467 / 1,466. Files
    already there are kept: a killed run resumes, a second run makes nothing.
    """
    root = synthetic_root(size, seed)
    done = root / ".complete"  # holds how many images are known complete
    if done.is_file() and int(done.read_text()) >= n:
        return root
    rng = np.random.default_rng(seed)
    grain = [rng.normal(0, 3, (size, size, 3)).astype(np.int16) for _ in range(_GRAIN_FIELDS)]
    start, made = time.perf_counter(), 0
    for i in range(n):
        path = root / "train" / CLASSES[i % 3] / f"{i:06d}.png"
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        image_rng = np.random.default_rng([seed, i])
        small = Image.fromarray(image_rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        smooth = np.asarray(small.resize((size, size), Image.Resampling.BICUBIC), np.int16)
        noise = np.roll(grain[i % _GRAIN_FIELDS], image_rng.integers(0, size, 2), axis=(0, 1))
        pixels = (smooth + noise).clip(0, 255).astype(np.uint8)
        tmp = path.with_suffix(".tmp")
        Image.fromarray(pixels).save(tmp, format="PNG", compress_level=3)
        os.replace(tmp, path)  # a file exists only when complete, so resuming is safe
        made += 1
        if made % 500 == 0:
            print(f"  made {made} synthetic PNGs ({time.perf_counter() - start:.0f} s)", flush=True)
    done.write_text(f"{n}\n")
    if made:
        print(f"made {made} synthetic {size}px PNGs in {time.perf_counter() - start:.0f} s")
    return root


def synthetic_items(root: Path, n: int) -> list[PreprocessItem]:
    """The first `n` synthetic PNGs as preprocess items (key = file name, label = class)."""
    paths = sorted((root / "train").glob("*/*.png"), key=lambda p: p.name)[:n]
    return [
        PreprocessItem(str(p), CLASSES.index(p.parent.name), f"syn/{p.name}", synthetic=True)
        for p in paths
    ]


# --- the two paths ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathResult:
    name: str
    images: int  # images seen in training: N x epochs
    seconds: float  # the training run: loading included, one-time preprocessing excluded
    data_seconds: float  # of which waiting for batches (decode + resize, or tensor indexing)

    @property
    def per_second(self) -> float:
        return self.images / self.seconds


def run_cached(items: list[PreprocessItem], epochs: int, tmp: Path) -> tuple[float, PathResult]:
    """Preprocess once (returns its seconds), then train from the tensor file."""
    start = time.perf_counter()
    tensors = build_tensor_set(items, tmp / "train.pt", PreprocessConfig(size=64))
    preprocess_s = time.perf_counter() - start
    start = time.perf_counter()
    data = load_tensor_set(tensors.path)
    config = TrainConfig(epochs=epochs, batch_size=32, learning_rate=1e-3, device="cpu")
    train_classifier(data.images, data.labels, config=config, n_classes=3, seed=0)
    seconds = time.perf_counter() - start
    # The data part of that run: what train_classifier does per batch before the forward pass.
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for index in torch.randperm(len(data.images), generator=generator).split(32):
            to_input(data.images[index])
    data_s = time.perf_counter() - start
    return preprocess_s, PathResult("cached tensors (synth)", len(items) * epochs, seconds, data_s)


class Letterbox:
    """The study's per-image transform: letterbox to 64 x 64, black bars (picklable)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return letterbox(image, 64, "black")


def run_study(synthetic_root: Path, n_synthetic: int, epochs: int, workers: int) -> PathResult:
    """ImageFolder + DataLoader decoding every image every epoch; same model, seed, optimiser."""
    from torch.utils.data import ConcatDataset, DataLoader, Subset
    from torchvision import datasets, transforms

    transform = transforms.Compose([Letterbox(), transforms.PILToTensor()])
    real = datasets.ImageFolder(REAL / "train", transform=transform)
    synthetic = datasets.ImageFolder(synthetic_root / "train", transform=transform)
    assert real.classes == synthetic.classes == list(CLASSES), (real.classes, synthetic.classes)
    keep = sorted(range(len(synthetic)), key=lambda i: Path(synthetic.samples[i][0]).name)
    dataset = ConcatDataset([real, Subset(synthetic, keep[:n_synthetic])])
    loader = DataLoader(
        dataset,
        batch_size=32,
        shuffle=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),
    )
    start = time.perf_counter()
    data_s = 0.0
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(0)
        model = StudyCNN(3, 64)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        for _ in range(epochs):
            batches = iter(loader)
            while True:
                wait = time.perf_counter()
                try:
                    images, labels = next(batches)
                except StopIteration:
                    break
                x = to_input(images)
                data_s += time.perf_counter() - wait
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(x), labels)
                loss.backward()
                optimizer.step()
    seconds = time.perf_counter() - start
    name = f"study: ImageFolder, num_workers={workers}"
    return PathResult(name, len(dataset) * epochs, seconds, data_s)


# --- report -------------------------------------------------------------------------------------


def break_even(preprocess_s: float, cached: PathResult, study: PathResult, epochs: int) -> int:
    """Fewest epochs at which preprocessing once + cached epochs beats the study's epochs."""
    saved_per_epoch = (study.seconds - cached.seconds) / epochs
    if saved_per_epoch <= 0:
        return -1
    return max(1, math.ceil(preprocess_s / saved_per_epoch))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per path")
    parser.add_argument("--synthetic", type=int, default=4400, help="synthetic 512px images")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (all paths)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    # 1. Data: the real photos and the synthetic stand-ins (made once)
    syn_root = synthetic_pngs(args.synthetic)
    load_before = os.getloadavg()[0]
    wall = time.perf_counter()
    items = real_items(import_real_dataset(REAL), "train") + synthetic_items(
        syn_root, args.synthetic
    )
    n = len(items)
    print(f"{n} training images ({n - args.synthetic} real + {args.synthetic} synthetic 512px)")

    # 2. The three paths, one after the other, on the same machine state
    with tempfile.TemporaryDirectory() as tmp:
        preprocess_s, cached = run_cached(items, args.epochs, Path(tmp))
    print(f"  cached: preprocess {preprocess_s:.1f} s, train {cached.seconds:.1f} s", flush=True)
    studies = []
    for workers in (0, 2):
        study = run_study(syn_root, args.synthetic, args.epochs, workers)
        assert study.images == cached.images, "the paths must train on the same images"
        print(f"  study workers={workers}: {study.seconds:.1f} s", flush=True)
        studies.append(study)
    load_after = os.getloadavg()[0]

    # 3. Table and result line
    print(
        f"\n{args.epochs} epochs x {n} images, StudyCNN 64x64, batch 32, torch threads "
        f"{args.threads}, {os.cpu_count()} cores; load average {load_before:.1f} -> "
        f"{load_after:.1f}; total {time.perf_counter() - wall:.0f} s\n"
    )
    print("| path | train s | data s | images/s | cached is x faster | break-even epochs |")
    print("|---|---:|---:|---:|---:|---:|")
    for result in [cached, *studies]:
        ratio = cached.per_second / result.per_second
        even = "" if result is cached else break_even(preprocess_s, cached, result, args.epochs)
        print(
            f"| {result.name} | {result.seconds:.1f} | {result.data_seconds:.1f} | "
            f"{result.per_second:.0f} | {ratio:.2f} | {even} |"
        )
    rate = n / preprocess_s
    print(f"| one-time preprocessing (cached path) | {preprocess_s:.1f} | | {rate:.0f} | | |")
    data_ratio = min(s.data_seconds for s in studies) / max(cached.data_seconds, 1e-9)
    best = min(cached.per_second / s.per_second for s in studies)
    verdict = "met" if best >= TARGET_RATIO else "MISSED"
    print(
        f"\nRESULT training throughput: cached {cached.per_second:.0f} img/s vs study "
        + ", ".join(f"{s.per_second:.0f} img/s ({s.name[7:]})" for s in studies)
        + f"; speedup >= {best:.2f}x end to end (target {TARGET_RATIO:.0f}x: {verdict}); "
        f"data path alone {data_ratio:.0f}x; one-time preprocessing {preprocess_s:.0f} s"
    )


if __name__ == "__main__":
    main()
