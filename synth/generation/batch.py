"""Generate one batch of planned images: skip the finished ones, write the rest atomically.

An image is finished when its last manifest row matches the plan (`changed_fields`); any other
planned image in the batch is (re)generated, its file replaced atomically and its new row
appended after the rename.

Out of memory, a batch halves itself; the half is remembered for the rest of the process
(`fitting_batch_size`), so later batches start at a size that fits instead of failing first.
An image the pipeline's safety checker flags (`nsfw_content_detected`: it comes back black) is
written and recorded with `excluded = "nsfw"`: done, so never regenerated, but never counted
or trained on as an image of its class.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from synth import faults
from synth.config import GenerationConfig
from synth.devices import OUT_OF_MEMORY_ERRORS
from synth.errors import DatasetDriftError
from synth.generation.dataset import SPLIT, make_row, manifest_path
from synth.generation.img2img import load_source
from synth.generation.manifest import append_rows, read_manifest
from synth.generation.model_loader import (
    LoadedPipeline,
    ModelInfo,
    load_img2img_pipeline,
    load_pipeline,
    model_info,
    model_settings,
)
from synth.generation.plan import IMG2IMG, PlannedImage
from synth.generation.provenance import changed_fields, png_with_provenance
from synth.storage import atomic_write_bytes

# model_info lives in model_loader (planning needs it too); kept here for existing imports
__all__ = [
    "NSFW",
    "BatchResult",
    "fitting_batch_size",
    "generate_batch",
    "model_info",
    "pipeline_for",
]

NSFW = "nsfw"  # the `excluded` reason of an image the pipeline's safety checker flagged
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchResult:
    """What one batch did: images generated now, already done before, seconds spent.

    `fitting_batch_size` is the most images per pipeline call this process still tries after
    running out of memory (None: it never did); `nsfw` counts the images generated now that the
    safety checker flagged (recorded, excluded).
    """

    generated: int
    skipped: int
    seconds: float
    per_class: dict[str, int]
    oom_splits: int
    fitting_batch_size: int | None = None
    nsfw: int = 0


def pipeline_for(config: GenerationConfig) -> LoadedPipeline:
    """The process-wide pipeline for `config` (loaded on first use), img2img or text-to-image."""
    load = load_img2img_pipeline if config.strategy == IMG2IMG else load_pipeline
    return load(config.model, **model_settings(config))


_MODEL_FIELDS = {  # PlannedImage field -> ModelInfo field of the pipeline that makes it
    "model": "model",
    "model_revision": "revision",
    "lora_digest": "lora_digest",
    "lora_scale": "lora_scale",
    "scheduler": "scheduler",
    "dtype": "dtype",
}


def _check_pipeline(info: ModelInfo, items) -> None:
    """The loaded pipeline must be the one the images were planned with (files can change)."""
    wrong = {
        f for i in items for f, m in _MODEL_FIELDS.items() if getattr(i, f) != getattr(info, m)
    }
    if wrong:
        raise DatasetDriftError(
            f"the model changed on disk after the images were planned ({', '.join(sorted(wrong))} "
            "differ); run again to plan from it as it is now"
        )


def _todo(root: Path, items: tuple[PlannedImage, ...]) -> list[PlannedImage]:
    """The items not finished as planned: no file, no row, or a last row that differs."""
    last = {row.file_name: row for row in read_manifest(manifest_path(root))}
    split = Path(root) / SPLIT
    return [
        i
        for i in items
        if i.file_name not in last
        or changed_fields(last[i.file_name], i)
        or not (split / i.file_name).is_file()
    ]


# Per (model, strategy, image size): the most images per pipeline call that did not run out of
# memory, once a call has. Process-wide, like the pipeline: every batch this process (the flow
# or one Dask worker) runs after an OOM starts at the halved size instead of failing again.
_fitting: dict[tuple, int] = {}
_fitting_lock = threading.Lock()


def _fit_key(loaded: LoadedPipeline, config: GenerationConfig) -> tuple:
    return (loaded.info, config.strategy, config.width, config.height)


def fitting_batch_size(loaded: LoadedPipeline, config: GenerationConfig) -> int | None:
    """The batch size this process keeps for `config` after an OOM (None: no OOM so far)."""
    return _fitting.get(_fit_key(loaded, config))


def _remember_fit(loaded: LoadedPipeline, config: GenerationConfig, failed: int) -> None:
    key, half = _fit_key(loaded, config), failed // 2
    with _fitting_lock:
        if half < _fitting.get(key, failed):
            _fitting[key] = half
            _log.warning(
                "out of memory at %d images per call on %s: batches of at most %d for the rest "
                "of this run (batch_size = %d avoids the failed try)",
                failed,
                loaded.info.device,
                half,
                half,
            )


def _denoise_callback(fault: faults.BatchFault | None):
    def callback(pipe, step, timestep, callback_kwargs):
        faults.crash_point("denoise-step")
        if fault is not None and fault.step == step:
            raise faults.InjectedFault(f"injected transient fault at denoising step {step}")
        return callback_kwargs

    return callback


def _run_pipeline(loaded: LoadedPipeline, config: GenerationConfig, items, fault):
    faults.maybe_oom(len(items))
    # One CPU generator per image: the same latents whatever the batch or the device.
    generators = [torch.Generator("cpu").manual_seed(item.seed) for item in items]
    # img2img starts from each photo (already width x height) noised to `strength`
    size = (
        dict(image=[load_source(i) for i in items], strength=config.strength)
        if config.strategy == IMG2IMG
        else dict(width=config.width, height=config.height)
    )
    with loaded.lock, torch.inference_mode():
        out = loaded.pipe(
            prompt=[item.prompt for item in items],
            negative_prompt=[config.negative_prompt] * len(items)
            if config.negative_prompt
            else None,
            num_inference_steps=config.steps,
            guidance_scale=config.guidance_scale,
            **size,
            generator=generators,
            output_type="pil",
            callback_on_step_end=_denoise_callback(fault),
        )
    # a pipeline without a safety checker says None
    flagged = getattr(out, "nsfw_content_detected", None) or [False] * len(items)
    return out.images, flagged


def _generate(loaded, config, items, write, fault=None) -> int:
    """Generate `items`, halving the batch on out-of-memory; returns how many splits happened.

    A size that ran out of memory before in this process is not tried again: `items` go in
    calls of the remembered size (`fitting_batch_size`).
    """
    size = fitting_batch_size(loaded, config) or len(items)
    if len(items) > size:
        calls = [items[i : i + size] for i in range(0, len(items), size)]
        return sum(
            _generate(loaded, config, c, write, fault if not n else None)
            for n, c in enumerate(calls)
        )
    try:
        images, flagged = _run_pipeline(loaded, config, items, fault)
    except OUT_OF_MEMORY_ERRORS:
        if len(items) == 1:
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        _remember_fit(loaded, config, len(items))
        half = len(items) // 2
        return (
            1
            + _generate(loaded, config, items[:half], write)
            + _generate(loaded, config, items[half:], write)
        )
    for item, image, nsfw in zip(items, images, flagged, strict=True):
        write(item, image, NSFW if nsfw else "")
    return 0


def generate_batch(config: GenerationConfig, root: Path, items: tuple[PlannedImage, ...]):
    """Generate the images of `items` not yet in `root`; safe to rerun after any failure.

    Steps: 1. skip finished images, 2. load the pipeline (once per process), 3. generate in
    sub-batches that halve on OOM, 4. write each image atomically (its provenance inside the
    PNG), then its manifest row.
    """
    start = time.perf_counter()
    split = Path(root) / SPLIT
    # 1. Skip what is already written and counted as planned
    todo = _todo(root, items)
    if not todo:
        return BatchResult(0, len(items), time.perf_counter() - start, {}, 0)
    # 2. Pipeline, shared by every batch this process runs
    loaded = pipeline_for(config)
    _check_pipeline(loaded.info, todo)
    fault = faults.batch_fault(f"{items[0].file_name}+{len(items)}", len(todo), config.steps)
    fail_after = fault.written if fault else None
    per_class: dict[str, int] = {}
    nsfw = []

    # 4. One image at a time: the file first, then its row (an excluded image's too: done)
    def write(item: PlannedImage, image, excluded: str) -> None:
        if fail_after is not None and sum(per_class.values()) >= fail_after:
            raise faults.InjectedFault(f"injected transient fault in batch at {item.file_name}")
        png = png_with_provenance(image, item, excluded=excluded)
        sha = atomic_write_bytes(split / item.file_name, png)
        faults.crash_point("before-manifest")
        row = make_row(item, loaded.info.device, sha, datetime.now(UTC), excluded=excluded)
        append_rows(manifest_path(root), [row])
        per_class[item.label] = per_class.get(item.label, 0) + 1
        if excluded == NSFW:
            nsfw.append(item.file_name)

    # 3. Generate, halving on out-of-memory
    splits = _generate(loaded, config, todo, write, fault)
    if fail_after is not None and fail_after >= len(todo):
        raise faults.InjectedFault("injected transient fault after the batch's last image")
    seconds = time.perf_counter() - start
    return BatchResult(
        len(todo),
        len(items) - len(todo),
        seconds,
        per_class,
        splits,
        fitting_batch_size(loaded, config),
        len(nsfw),
    )
