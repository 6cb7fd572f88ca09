"""Training throughput: synth's cached-tensor path against the study's decode-every-epoch loader.

Both paths train the same StudyCNN (Adam 1e-3, batch 32, same seed, same epochs) on the same
images: the 220 real training photos of data/fruits plus N synthetic 512 x 512 PNGs (4,400, as
many as the study generated).

- cached (synth): `build_tensor_set` decodes and letterboxes every image ONCE into a uint8
  N x 3 x 64 x 64 tensor file (a one-time cost, timed apart), then
  `synth.training.trainer.train_classifier` trains from that tensor.
- study (torchvision): `ImageFolder` + a transform that decodes, letterboxes (the same
  `synth.data.preprocess.letterbox`, LANCZOS, black bars) and converts every image in every epoch,
  through a `DataLoader` with `num_workers=0`, then with `num_workers=2` (default
  `persistent_workers=False`, as most scripts leave it).

The synthetic PNGs are NOT Stable Diffusion outputs (generating 4,400 512 px images on a CPU takes
hours). They stand in for them at the same size and a similar file size, which is what the decoder
pays for: per image, an 8 x 8 grid of random colours upscaled to 512 x 512 (bicubic: smooth
blobs), plus Gaussian grain (sigma 3, from one of 8 fixed noise fields, rolled by a random
offset), saved as PNG with zlib level 3 (~460 KB each; SD 1.5 PNGs are typically 350-550 KB).
They are made once into `runs/bench-data/` and reused.

Timings include the optimiser steps, so the ratio is what a user sees end to end. The epochs
of the three paths are interleaved (cached, study 0, study 2, then rotated) so that the load of
other jobs falls on all of them alike; the cached path trains one `train_classifier(epochs=1)`
call per epoch from the previous epoch's weights. Also reported: the time the study loop waits
for its next batch ("data s", the part caching removes), and each loader alone for one epoch
without training, which is the throughput ceiling where the training step is nearly free (GPU).
Torch runs on `--threads` threads (default 1) in every path: on this shared 2-core machine two
OpenMP threads ran about 3x slower than one while other jobs were running. With one torch thread
the cached path and `num_workers=0` use one core; `num_workers=2` adds two decoding processes.

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
from synth.data import (
    PreprocessItem,
    build_tensor_set,
    import_real_dataset,
    letterbox,
    load_tensor_set,
    real_items,
)
from synth.training import StudyCNN, to_input, train_classifier

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


# --- the three paths, each run one epoch at a time ----------------------------------------------


class CachedPath:
    """synth's path: a uint8 tensor made once, then `train_classifier` from it."""

    name = "cached tensors (synth)"

    def __init__(self, tensor_file: str) -> None:
        self.data = load_tensor_set(tensor_file)
        self.config = TrainConfig(epochs=1, batch_size=32, learning_rate=1e-3, device="cpu")
        self.state = None

    def epoch(self, index: int) -> tuple[float, float]:
        """One epoch from the last one's weights; returns (seconds, seconds of data work)."""
        start = time.perf_counter()
        trained = train_classifier(
            self.data.images,
            self.data.labels,
            config=self.config,
            n_classes=3,
            seed=index,
            init_state=self.state,
        )
        self.state = trained.model.state_dict()
        seconds = time.perf_counter() - start
        return seconds, self.loader_pass(index)

    def loader_pass(self, index: int) -> float:
        """What `train_classifier` does per batch before the forward pass, for one epoch."""
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(index)
        for batch in torch.randperm(len(self.data.images), generator=generator).split(32):
            to_input(self.data.images[batch])
        return time.perf_counter() - start


class Letterbox:
    """The study's per-image transform: letterbox to 64 x 64, black bars (picklable)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return letterbox(image, 64, "black")


class StudyPath:
    """The study's path: ImageFolder + DataLoader, decoding every image in every epoch."""

    def __init__(self, synthetic_root: Path, n_synthetic: int, workers: int) -> None:
        from torch.utils.data import ConcatDataset, DataLoader, Subset
        from torchvision import datasets, transforms

        self.name = f"study: ImageFolder, num_workers={workers}"
        transform = transforms.Compose([Letterbox(), transforms.PILToTensor()])
        real = datasets.ImageFolder(REAL / "train", transform=transform)
        synthetic = datasets.ImageFolder(synthetic_root / "train", transform=transform)
        assert real.classes == synthetic.classes == list(CLASSES), (real.classes, synthetic.classes)
        keep = sorted(range(len(synthetic)), key=lambda i: Path(synthetic.samples[i][0]).name)
        self.dataset = ConcatDataset([real, Subset(synthetic, keep[:n_synthetic])])
        self.loader = DataLoader(
            self.dataset,
            batch_size=32,
            shuffle=True,
            num_workers=workers,
            generator=torch.Generator().manual_seed(0),
        )
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(0)
            self.model = StudyCNN(3, 64)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def epoch(self, index: int) -> tuple[float, float]:
        """One training epoch; returns (seconds, seconds spent waiting for batches)."""
        start, data_s = time.perf_counter(), 0.0
        self.model.train()
        batches = iter(self.loader)
        while True:
            wait = time.perf_counter()
            try:
                images, labels = next(batches)
            except StopIteration:
                break
            x = to_input(images)
            data_s += time.perf_counter() - wait
            self.optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(self.model(x), labels)
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - start, data_s

    def loader_pass(self) -> float:
        """One epoch of the loader alone (decode + letterbox + batch, no training)."""
        start = time.perf_counter()
        for images, _ in self.loader:
            to_input(images)
        return time.perf_counter() - start


@dataclass
class Tally:
    """Seconds per epoch of one path, and of its data work."""

    name: str
    epochs: list[float]
    data: list[float]

    def per_second(self, n: int) -> float:
        return n * len(self.epochs) / sum(self.epochs)


# --- report -------------------------------------------------------------------------------------


def break_even(preprocess_s: float, cached: Tally, study: Tally) -> str:
    """Fewest epochs at which preprocessing once + cached epochs beats the study's epochs."""
    saved = (sum(study.epochs) - sum(cached.epochs)) / len(cached.epochs)
    return str(max(1, math.ceil(preprocess_s / saved))) if saved > 0 else "never"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per path")
    parser.add_argument("--synthetic", type=int, default=4400, help="synthetic 512px images")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (all paths)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    # 1. Data: the real photos and the synthetic stand-ins (made once, not timed)
    syn_root = synthetic_pngs(args.synthetic)
    wall, load_before = time.perf_counter(), os.getloadavg()[0]
    items = real_items(import_real_dataset(REAL), "train")
    items += synthetic_items(syn_root, args.synthetic)
    n = len(items)
    print(f"{n} training images ({n - args.synthetic} real + {args.synthetic} synthetic 512px)")

    with tempfile.TemporaryDirectory() as tmp:
        # 2. The cached path's one-time cost
        start = time.perf_counter()
        tensor_file = build_tensor_set(items, Path(tmp) / "t.pt", PreprocessConfig(size=64)).path
        preprocess_s = time.perf_counter() - start
        print(f"  preprocess once: {preprocess_s:.1f} s", flush=True)

        # 3. Epochs interleaved (cached, study 0, study 2, then rotated), so that the load of
        #    other jobs on the machine falls on every path alike
        paths = [CachedPath(tensor_file), StudyPath(syn_root, args.synthetic, 0)]
        paths.append(StudyPath(syn_root, args.synthetic, 2))
        tallies = [Tally(p.name, [], []) for p in paths]
        for epoch in range(args.epochs):
            for k in [(epoch + j) % len(paths) for j in range(len(paths))]:
                seconds, data_s = paths[k].epoch(epoch)
                tallies[k].epochs.append(seconds)
                tallies[k].data.append(data_s)
                print(f"  epoch {epoch + 1} {paths[k].name}: {seconds:.1f} s", flush=True)

        # 4. Loaders alone (the GPU regime, where the training step costs ~nothing)
        loader_s = {
            "cached": paths[0].loader_pass(0),
            "study-0": sum(tallies[1].data) / args.epochs,  # serial: waiting = loading
            "study-2": paths[2].loader_pass(),
        }
    cached, studies = tallies[0], tallies[1:]

    # 5. Table and result line
    print(
        f"\n{args.epochs} epochs x {n} images, StudyCNN 64x64, batch 32, torch threads "
        f"{args.threads}, {os.cpu_count()} cores; load average {load_before:.1f} -> "
        f"{os.getloadavg()[0]:.1f}; total {time.perf_counter() - wall:.0f} s\n"
    )
    print(
        "| path | s per epoch | data s per epoch | train images/s | cached is x faster "
        "| loader alone images/s | break-even epochs |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tally, key in zip(tallies, loader_s, strict=True):
        ratio = cached.per_second(n) / tally.per_second(n)
        even = "" if tally is cached else break_even(preprocess_s, cached, tally)
        print(
            f"| {tally.name} | {sum(tally.epochs) / args.epochs:.1f} | "
            f"{sum(tally.data) / args.epochs:.1f} | {tally.per_second(n):.0f} | {ratio:.2f} | "
            f"{n / loader_s[key]:.0f} | {even} |"
        )
    once = f"{preprocess_s:.1f} (once)"
    print(f"| one-time preprocessing (cached path) | {once} | | | | {n / preprocess_s:.0f} | |")
    end_to_end = [cached.per_second(n) / s.per_second(n) for s in studies]
    loaders = [loader_s[k] / loader_s["cached"] for k in ("study-0", "study-2")]
    verdict = "met" if min(end_to_end) >= TARGET_RATIO else "MISSED"
    print(
        f"\nRESULT training throughput: cached {cached.per_second(n):.0f} img/s vs study "
        f"{studies[0].per_second(n):.0f} (num_workers=0) / {studies[1].per_second(n):.0f} "
        f"(num_workers=2) img/s: {end_to_end[0]:.2f}x / {end_to_end[1]:.2f}x end to end on CPU "
        f"(target {TARGET_RATIO:.0f}x: {verdict}); loaders alone {loaders[0]:.0f}x / "
        f"{loaders[1]:.0f}x; one-time preprocessing {preprocess_s:.0f} s"
    )


if __name__ == "__main__":
    main()
