"""Sample images per class from a fitted generator, for the grid artifact a finished fit shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image

from synth.devices import resolve_device
from synth.generation.lora import load_lora
from synth.generation.personalize_record import read_personalize_record
from synth.seeds import image_seed

__all__ = ["load_personalized", "sample_grid_images"]


def load_personalized(out_dir: str | Path, *, device: str = "cpu", lora_scale: float = 1.0):
    """The pipeline a `personalize` output describes, and its record (None for a plain folder).

    A LoRA output loads its recorded base model and the adapter at `lora_scale`; a tiny-pipeline
    output (or any diffusers folder) loads as it is.
    """
    from diffusers import AutoPipelineForText2Image

    out_dir = Path(out_dir)
    device = resolve_device(device)
    dtype = torch.float16 if device == "cuda" else torch.float32
    record = read_personalize_record(out_dir)
    if record is not None and record["kind"] == "lora":
        base = record["base"]
        source = str(Path(base).expanduser()) if Path(base).expanduser().is_dir() else base
        revision = record["config"].get("revision")
        pipe = AutoPipelineForText2Image.from_pretrained(source, dtype=dtype, revision=revision)
        load_lora(pipe, out_dir, lora_scale)
    else:
        pipe = AutoPipelineForText2Image.from_pretrained(str(out_dir), dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device), record


def sample_grid_images(
    source,
    class_names: Sequence[str],
    per_class: int,
    seed: int,
    *,
    prompts: Mapping[str, str] | None = None,
    steps: int = 25,
    guidance_scale: float = 3.0,
    resolution: int | None = None,
    lora_scale: float = 1.0,
    device: str = "cpu",
) -> dict[str, list[Image.Image]]:
    """`per_class` images of each class, seeded per image as `image_seed(seed, class, i)`.

    Args:
        source: A `personalize` output folder, any diffusers pipeline folder, or a loaded
            pipeline.
        class_names: Classes to sample, in grid order.
        per_class: Images per class.
        seed: Grid seed: the same seed gives the same images.
        prompts: {class: prompt}; default the prompts recorded by `personalize` (the fitted
            model knows those words only), else "a photo of a {name}".
        steps: Denoising steps.
        guidance_scale: Classifier-free guidance; <= 1 disables it.
        resolution: Image side in pixels; default the fit's resolution, else the pipeline's.
        lora_scale: Adapter strength when `source` is a LoRA output.
        device: 'auto', 'cpu' or 'cuda' when `source` is a folder.

    Returns:
        {class: [images]} in `class_names` order.
    """
    if per_class <= 0:
        raise ValueError(f"`per_class` must be > 0, got {per_class}")
    record = None
    pipe = source
    if isinstance(source, str | Path):
        pipe, record = load_personalized(source, device=device, lora_scale=lora_scale)
    known = (record or {}).get("prompts", {})
    if resolution is None and record is not None:
        resolution = record["resolution"]
    images: dict[str, list[Image.Image]] = {}
    for name in class_names:
        prompt = (prompts or {}).get(name) or known.get(name) or f"a photo of a {name}"
        generators = [
            torch.Generator("cpu").manual_seed(image_seed(seed, name, i)) for i in range(per_class)
        ]
        images[name] = pipe(
            prompt=[prompt] * per_class,
            generator=generators,
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            height=resolution,
            width=resolution,
        ).images
    return images
