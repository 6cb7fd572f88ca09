"""Fitting the tiny pipeline to data/fruits: steps/s, fit time, and the class signal it carries.

Builds the tiny random pipeline, fits it with `tiny_demo_config` (overridable below) to the 220
train photos of data/fruits through `synth.generation.personalize.personalize`, then samples
`--per-class` images per class and reports:

- time of the VAE phase and the UNet phase, and their steps/s;
- mean RGB per class of the generated images, beside that of the real train photos (32 px);
- colour-layout accuracy: a logistic regression on 8 x 8 colour thumbnails trained on the
  generated images only and scored on the real test split (55 photos). The same probe trained on
  the real train photos gives about 0.84; a per-class Gaussian over the same thumbnails, 0.76
  (diagonal) to 0.85 (full covariance). Chance is 0.33;
- synthetic-only accuracy of the study CNN (`train_classifier`, 10 epochs, images letterboxed to
  64 px with black bars as the demo's preprocessing does) on the real test split, per seed.

With `--validation F` the fit sees only (1 - F) of the train photos and every score is on the
held-out F of the train split (per class, seeded): that is where settings are chosen. The test
split is then never loaded. `--guidance` takes several values, each scored on the same fit.

The last line is the one-line result. Torch uses `--threads` threads (default 1: on this shared
2-core machine one thread is the honest per-core figure).

    uv run python bench/bench_personalize.py [--threads 1] [--seeds 0] [--steps N] [--vae-steps N]
        [--validation 0.2] [--guidance 3 5] [--ema 0.999] [--text-lr 5e-3] [--letterbox]
        [--base .datasynth/tiny-sd] [--keep DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression

from synth.config import TrainConfig
from synth.data import import_real_dataset, letterbox, load_rgb
from synth.generation.personalize import personalize, sample_grid_images
from synth.generation.personalize_config import tiny_demo_config
from synth.generation.tiny_model import save_tiny_pipeline
from synth.training import to_input, train_classifier

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["apple", "banana", "orange"]


def _thumbs(images: list[Image.Image]) -> np.ndarray:
    """8 x 8 colour thumbnails, flattened: the colour-layout probe's features."""
    return np.stack(
        [
            np.asarray(im.resize((8, 8), Image.Resampling.BILINEAR), np.float32).ravel() / 255
            for im in images
        ]
    )


def _tensor(images: list[Image.Image]) -> torch.Tensor:
    arrays = [np.asarray(letterbox(im, 64, "black")) for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _cnn_accuracy(gen: list[Image.Image], gen_y, test: list[Image.Image], test_y, seed: int):
    config = TrainConfig(epochs=10, batch_size=32, learning_rate=1e-3, device="cpu")
    trained = train_classifier(
        _tensor(gen), torch.tensor(gen_y), config=config, n_classes=len(CLASSES), seed=seed
    )
    with torch.no_grad():
        logits = trained.model(to_input(_tensor(test)))
    return float((logits.argmax(1).numpy() == np.asarray(test_y)).mean())


def _fit(args, base: Path, real, out: Path, seed: int) -> tuple[float, float, float, float]:
    """Fit one seed; returns (vae seconds, vae steps/s, unet seconds, unet steps/s)."""
    config = tiny_demo_config(str(base), seed=seed)
    overrides = {
        "steps": args.steps,
        "vae_steps": args.vae_steps,
        "resolution": args.resolution,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "ema_decay": args.ema,
        "text_encoder_learning_rate": args.text_lr,
        "letterbox": args.letterbox,
    }
    config = config.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    config = type(config).model_validate(config.model_dump())  # re-validate the overrides
    marks: dict[int, float] = {0: time.perf_counter()}
    personalize(config, real, out, progress=lambda s, n: marks.__setitem__(s, time.perf_counter()))
    vae_end = marks.get(config.vae_steps, marks[0])
    vae_s = vae_end - marks[0]
    unet_s = marks[max(marks)] - vae_end
    return vae_s, config.vae_steps / max(vae_s, 1e-9), unet_s, config.steps / max(unet_s, 1e-9)


def _validation_split(real, fraction: float, seed: int = 0):
    """`real` with `fraction` of each class's train photos as its "test" split, the real test
    photos dropped: the fit and every score stay inside the train split."""
    rng = random.Random(seed)
    held: set[str] = set()
    for c in real.classes:
        paths = sorted(e.path for e in real.split("train") if e.label == c)
        held.update(rng.sample(paths, round(fraction * len(paths))))
    entries = tuple(
        dataclasses.replace(e, split="test" if e.path in held else "train")
        for e in real.split("train")
    )
    return dataclasses.replace(real, entries=entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="fit seeds")
    parser.add_argument("--steps", type=int, help="UNet steps (default: tiny_demo_config)")
    parser.add_argument("--vae-steps", type=int, help="VAE steps (default: tiny_demo_config)")
    parser.add_argument("--resolution", type=int, help="training side in px")
    parser.add_argument("--batch-size", type=int, help="photos per step")
    parser.add_argument("--lr", type=float, help="UNet learning rate")
    parser.add_argument("--per-class", type=int, default=80, help="generated images per class")
    parser.add_argument("--sample-steps", type=int, default=20, help="denoising steps")
    parser.add_argument(
        "--guidance", type=float, nargs="+", default=[3.0], help="classifier-free guidance(s)"
    )
    parser.add_argument("--ema", type=float, help="EMA decay (default: tiny_demo_config)")
    parser.add_argument("--text-lr", type=float, help="text encoder learning rate")
    parser.add_argument(
        "--letterbox",
        action=argparse.BooleanOptionalAction,
        help="fit whole photos on black bars (default: tiny_demo_config)",
    )
    parser.add_argument(
        "--validation", type=float, help="score on this held-out share of the train photos"
    )
    parser.add_argument("--keep", type=Path, help="keep the fitted pipelines under this folder")
    parser.add_argument("--base", type=Path, help="the random tiny pipeline (default: built)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-personalize-"))
    # `--base .datasynth/tiny-sd` (run from the repo root) makes the fit of `--seeds 0` exactly
    # configs/personalize-tiny.toml's, as models/tiny-fruits was fitted
    base = args.base or save_tiny_pipeline(work / "tiny-sd")
    real = import_real_dataset(REPO / "data" / "fruits", classes=CLASSES)
    if args.validation:
        real = _validation_split(real, args.validation)
    scored = "validation (held-out train)" if args.validation else "real test split"
    train, test = real.split("train"), real.split("test")
    test_images = [load_rgb(e.path) for e in test]
    test_y = [CLASSES.index(e.label) for e in test]
    probe_test = _thumbs([im.resize((32, 32)) for im in test_images])
    for c in CLASSES:
        photos = [
            np.asarray(load_rgb(e.path).resize((32, 32)), float) for e in train if e.label == c
        ]
        print(f"real   {c:7s} mean RGB {np.mean(photos, axis=(0, 1, 2)).round(1).tolist()}")

    rows = []
    for seed in args.seeds:
        out = work / f"fit-seed{seed}"
        vae_s, vae_rate, unet_s, unet_rate = _fit(args, base, real, out, seed)
        print(
            f"seed {seed}: VAE {vae_s:.0f} s ({vae_rate:.2f} steps/s), "
            f"UNet {unet_s:.0f} s ({unet_rate:.2f} steps/s)"
        )
        row = [vae_s + unet_s]
        for guidance in args.guidance:
            start = time.perf_counter()
            grid = sample_grid_images(
                out, CLASSES, args.per_class, seed=1000 + seed,
                steps=args.sample_steps, guidance_scale=guidance,
            )  # fmt: skip
            sample_s = time.perf_counter() - start
            gen = [im for c in CLASSES for im in grid[c]]
            gen_y = [i for i, c in enumerate(CLASSES) for _ in grid[c]]
            for c in CLASSES:
                mean = np.mean([np.asarray(im, float) for im in grid[c]], axis=(0, 1, 2))
                print(f"seed {seed} g {guidance} {c:7s} mean RGB {mean.round(1).tolist()}")
            probe = LogisticRegression(max_iter=2000).fit(_thumbs(gen), gen_y)
            probe_acc = float((probe.predict(probe_test) == np.asarray(test_y)).mean())
            cnn_acc = _cnn_accuracy(gen, gen_y, test_images, test_y, seed)
            print(
                f"seed {seed} guidance {guidance}: sampling {len(gen) / sample_s:.1f} images/s, "
                f"colour probe {probe_acc:.3f}, study CNN synthetic-only {cnn_acc:.3f} on the "
                f"{scored}",
                flush=True,
            )
            row += [probe_acc, cnn_acc]
        rows.append(row)
    means = np.mean(rows, axis=0)
    for i, guidance in enumerate(args.guidance):
        print(
            f"personalize tiny fruits: fit {means[0]:.0f} s on {args.threads} thread(s), "
            f"guidance {guidance}: colour probe {means[1 + 2 * i]:.3f}, study CNN "
            f"synthetic-only {means[2 + 2 * i]:.3f} (mean of {len(rows)} seeds, {scored}; "
            "chance 0.333)"
        )


if __name__ == "__main__":
    main()
