"""`personalize`: fit a text-to-image generator to the real **train** photos, never the test ones.

A real diffusers UNet pipeline (SD 1.5 and kin) gets LoRA adapters (`lora.py`); the tiny random
pipeline is fitted whole (`personalize_fit.py`). The output folder is either a LoRA file or an
ordinary diffusers pipeline folder, plus `personalize.json`, which records the config, the digest
of the train split it saw, the digest of the test split it did not and the library versions.

Layout of `out_dir` while training: `.checkpoints/` (resume points) and `.partial-<pid>/` (the
output being written). The output moves into place last and `personalize.json` is written after
it, so a folder without `personalize.json` is never a finished fit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from synth.code_digest import library_versions
from synth.data.real_import import RealDataset, RealImage
from synth.devices import resolve_device
from synth.generation.lora import LORA_WEIGHTS, save_lora
from synth.generation.personalize_config import PersonalizeConfig
from synth.generation.personalize_fit import FitJob, fit_lora, fit_tiny_pipeline
from synth.generation.personalize_record import (
    FORMAT,
    MANIFEST,
    PersonalizeInputError,
    output_digest,
    output_files,
    read_personalize_record,
    split_digest,
    verified_digest,
)
from synth.generation.personalize_samples import sample_grid_images
from synth.generation.personalize_train import CHECKPOINT_DIR
from synth.generation.tiny_model import is_tiny_model
from synth.storage import atomic_write_bytes

__all__ = [
    "MANIFEST",
    "PersonalizeInputError",
    "PersonalizeResult",
    "output_digest",
    "personalize",
    "read_personalize_record",
    "sample_grid_images",
    "split_digest",
    "verified_digest",
]

_PARTIAL = ".partial-"
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
Kind = Literal["lora", "tiny-pipeline"]
# the file whose presence makes each kind of output loadable: it moves into place last
_LOADABLE = {"lora": LORA_WEIGHTS, "tiny-pipeline": "model_index.json"}


@dataclass(frozen=True)
class PersonalizeResult:
    """A finished fit: where it is, what it is, what made it and how training went."""

    out_dir: Path
    kind: Kind
    digest: str  # of the adapter / pipeline files: names this generator in manifests
    train_digest: str  # of the train photos it was fit on
    test_digest: str  # of the test photos it never saw
    config_digest: str  # of the config and the base model
    n_images: int
    steps: int
    final_loss: float
    losses: tuple[float, ...]  # denoising loss per step
    vae_losses: tuple[float, ...]  # VAE fit loss per step (tiny pipeline only)
    seconds: float  # training time over every attempt
    reused: bool  # True when a finished output was returned without training


def _check_photos(real: RealDataset) -> tuple[tuple[RealImage, ...], tuple[RealImage, ...]]:
    """(train, test) entries; raises when a class has no train photo or a photo is in both."""
    train, test = real.split("train"), real.split("test")
    if not train:
        raise PersonalizeInputError(f"real dataset {real.root!r} has no train images")
    missing = sorted(set(real.classes) - {e.label for e in train})
    if missing:
        raise PersonalizeInputError(
            f"classes {missing} have no train images in {real.root!r}: every class needs some"
        )
    leaked = {e.sha256 for e in train} & {e.sha256 for e in test}
    if leaked:
        shown = sorted(e.path for e in train if e.sha256 in leaked)[:3]
        raise PersonalizeInputError(
            f"{len(leaked)} test images are also train images (same content), e.g. {shown}: "
            "the fit would see the test split; remove the duplicates"
        )
    return train, test


def _base_identity(config: PersonalizeConfig) -> str:
    """What names the base model in digests; raises when it cannot be loaded."""
    from synth.generation.model_loader import describe_model

    local = Path(config.base).expanduser()
    looks_local = config.base.startswith(("/", ".", "~")) or local.exists()
    if looks_local and not (local / "model_index.json").is_file():
        raise PersonalizeInputError(
            f"`base` {config.base!r} is not a diffusers model directory (no model_index.json)"
        )
    info = describe_model(
        config.base, revision=config.revision, device="cpu", dtype="fp32", scheduler="default"
    )
    return f"{info.model}@{info.revision}"


def _method(config: PersonalizeConfig) -> Kind:
    tiny = is_tiny_model(config.base)
    kind = config.method if config.method != "auto" else ("tiny-pipeline" if tiny else "lora")
    if kind == "tiny-pipeline" and not tiny:
        raise PersonalizeInputError(
            f"`method` 'tiny-pipeline' refits a VAE and UNet from random weights, so it is only "
            f"for the tiny model; `base` {config.base!r} is not it: use 'lora'"
        )
    if kind == "lora" and config.train_text_encoder:
        raise PersonalizeInputError(
            "`train_text_encoder` is for the tiny pipeline; LoRA keeps the text encoder frozen"
        )
    if kind == "lora" and config.ema_decay is not None:
        raise PersonalizeInputError("`ema_decay` is for the tiny pipeline, not LoRA")
    return kind


def _precision(config: PersonalizeConfig, kind: Kind):
    """(device, dtype of frozen weights, autocast dtype or None)."""
    device = resolve_device(config.device)
    mode = config.mixed_precision
    if mode == "auto":
        mode = "fp16" if device == "cuda" else "fp32"
    if mode != "fp32" and device != "cuda":
        raise PersonalizeInputError(f"`mixed_precision` {mode!r} needs CUDA; device is {device!r}")
    if mode == "bf16" and not torch.cuda.is_bf16_supported():
        raise PersonalizeInputError("`mixed_precision` 'bf16' is not supported by this GPU")
    autocast = None if mode == "fp32" else _DTYPES[mode]
    # the tiny pipeline trains every weight, which needs fp32 master weights
    weights = torch.float32 if kind == "tiny-pipeline" else _DTYPES[mode]
    return torch.device(device), weights, autocast


def _check_out_dir(out_dir: Path, base: str) -> None:
    """Refuse the base model's folder or a model `personalize` did not write.

    Other files may stay (an import report, a lock, samples): they are not part of the output.
    """
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise PersonalizeInputError(f"`out_dir` {str(out_dir)!r} is a file")
    if Path(base).expanduser().exists() and out_dir.resolve() == Path(base).expanduser().resolve():
        raise PersonalizeInputError("`out_dir` is the base model's directory")
    ours = (out_dir / MANIFEST).exists() or (out_dir / CHECKPOINT_DIR).exists()
    foreign = [m for m in _LOADABLE.values() if (out_dir / m).exists()]
    if foreign and not ours:
        raise PersonalizeInputError(
            f"`out_dir` {str(out_dir)!r} holds a model personalize did not write ({foreign[0]})"
        )


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _reuse(out_dir: Path, config_digest: str, train_digest: str) -> PersonalizeResult | None:
    """The finished fit in `out_dir` when it was made from this config and these photos."""
    record = read_personalize_record(out_dir)
    if record is None or (record["config_digest"], record["train_digest"]) != (
        config_digest,
        train_digest,
    ):
        return None
    verified_digest(out_dir)  # raises when its files changed since
    return _result(out_dir, record, reused=True)


def _result(out_dir: Path, record: dict, *, reused: bool) -> PersonalizeResult:
    keys = ("kind", "digest", "train_digest", "test_digest", "config_digest", "n_images")
    return PersonalizeResult(
        out_dir=Path(out_dir),
        **{k: record[k] for k in keys},
        steps=record["config"]["steps"],
        final_loss=record["losses"][-1],
        losses=tuple(record["losses"]),
        vae_losses=tuple(record["vae_losses"]),
        seconds=record["seconds"],
        reused=reused,
    )


def _load_base(config: PersonalizeConfig, dtype: torch.dtype):
    """A fresh pipeline, not `load_pipeline`'s shared one: training changes its weights."""
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(
        str(Path(config.base).expanduser())
        if Path(config.base).expanduser().is_dir()
        else config.base,
        dtype=dtype,
        revision=config.revision,
    )
    if not hasattr(pipe, "unet") or not hasattr(type(pipe), "save_lora_weights"):
        raise PersonalizeInputError(
            f"`base` {config.base!r} is a {type(pipe).__name__}: personalize needs a UNet "
            "pipeline with diffusers LoRA support (SD 1.5 and kin)"
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _publish(out_dir: Path, kind: Kind, write: Callable[[Path], None], record: dict) -> str:
    """Write the output into `.partial-<pid>`, move it into `out_dir`, then `personalize.json`."""
    partial = out_dir / f"{_PARTIAL}{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    write(partial)
    files, digest = output_files(partial), output_digest(partial)
    (out_dir / MANIFEST).unlink(missing_ok=True)  # an older fit here stops looking finished
    for other, marker in _LOADABLE.items():
        if other != kind:  # an older fit of the other kind must not stay loadable beside this one
            (out_dir / marker).unlink(missing_ok=True)
    names = sorted(p.name for p in partial.iterdir())
    names.sort(key=lambda n: n == _LOADABLE[kind])  # the file that makes it loadable goes last
    for name in names:
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)  # an earlier fit's (or a killed publish's) copy of this entry
        os.replace(partial / name, target)
    record = {**record, "digest": digest, "files": files}
    atomic_write_bytes(out_dir / MANIFEST, (json.dumps(record, indent=2) + "\n").encode())
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)  # the output replaces them
    return digest


def personalize(
    config: PersonalizeConfig,
    real: RealDataset,
    out_dir: str | os.PathLike[str],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> PersonalizeResult:
    """Fit a generator to the real train split and write it to `out_dir`.

    Only `split == "train"` photos are read. Rerunning after a kill resumes from the newest
    checkpoint; rerunning after success returns the finished output without training.

    Args:
        config: What to fit and how.
        real: The imported real dataset; its test split is only digested, never read.
        out_dir: Folder of the output: a LoRA (`pytorch_lora_weights.safetensors`) or a
            diffusers pipeline folder, plus `personalize.json`.
        progress: Called as `progress(step, total)` after every optimiser step.

    Returns:
        The finished fit, with the digests of its files, train split and test split.

    Raises:
        PersonalizeInputError: No train photos, a class without train photos, a photo in both
            splits, a base model that is not a UNet pipeline, an unusable `out_dir` or precision.
        ModelUnavailableError: `base` is a hub id that is neither cached nor reachable.
    """
    # 1. Check inputs (before any model loads)
    out_dir = Path(out_dir)
    train, test = _check_photos(real)
    kind = _method(config)
    device, weight_dtype, autocast = _precision(config, kind)
    _check_out_dir(out_dir, config.base)
    base_identity = _base_identity(config)
    config_digest = _digest([config.model_dump(mode="json"), kind, base_identity])
    train_digest, test_digest = split_digest(train), split_digest(test)

    # 2. A finished fit of the same config and photos is the answer
    finished = _reuse(out_dir, config_digest, train_digest)
    if finished is not None:
        return finished
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(f"{_PARTIAL}*"):
        shutil.rmtree(stale, ignore_errors=True)  # a killed run's half-written output

    # 3. Load the base pipeline and fit it (resuming from a checkpoint of this same run)
    index = {c: i for i, c in enumerate(real.classes)}
    prompts = tuple(config.prompt(c) for c in real.classes)
    job = FitJob(
        config, out_dir, _digest([config_digest, train_digest]),
        tuple(e.path for e in train), tuple(index[e.label] for e in train), prompts,
        device, weight_dtype, autocast, progress,
    )  # fmt: skip
    pipe = _load_base(config, weight_dtype)
    fit = fit_lora if kind == "lora" else fit_tiny_pipeline
    state = fit(pipe, job)

    # 4. Write the output, then the record that makes it finished
    record = {
        "format": FORMAT, "kind": kind, "base": config.base, "base_identity": base_identity,
        "config": config.model_dump(mode="json"), "config_digest": config_digest,
        "train_digest": train_digest, "test_digest": test_digest, "n_images": len(train),
        "classes": list(real.classes), "prompts": dict(zip(real.classes, prompts, strict=True)),
        "resolution": config.resolution, "losses": state.losses, "vae_losses": state.vae_losses,
        "seconds": state.elapsed(), "versions": library_versions(),
    }  # fmt: skip
    if kind == "lora":
        _publish(out_dir, kind, lambda d: save_lora(pipe, d), record)
    else:
        _publish(out_dir, kind, lambda d: pipe.save_pretrained(d), record)
    return _result(out_dir, read_personalize_record(out_dir), reused=False)
