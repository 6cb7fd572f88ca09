"""CLIP image-text scores: the cosine similarity of an image's and its prompt's CLIP embeddings.

The filter of Diff-Mix and of He et al. (ICLR 2023): a synthetic image that does not look like its
prompt scores low. The model comes from a local folder or the Hugging Face hub; an id that is
neither a folder nor cached fails at once, with the fix, when the hub cannot be reached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synth.devices import resolve_device
from synth.errors import ModelUnavailableError
from synth.hub import hub_cached_only

__all__ = ["LoadedClip", "clip_scores", "load_clip"]


@dataclass(frozen=True)
class LoadedClip:
    """A CLIP model and its processor, ready to score; `identity` names the exact weights."""

    model: object  # transformers.CLIPModel, eval mode, on `device`
    processor: object  # transformers.CLIPProcessor
    device: torch.device
    identity: str  # the hub id, or a digest of the local folder's configs and weight sizes


def _local_digest(directory: Path) -> str:
    """Digest of a local model: its JSON/text files plus each weight file's name and size.

    Hashing multi-GB weights on every run would cost more than scoring; configs and sizes
    change whenever a different model is saved into the folder.
    """
    h = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(directory).as_posix()
        if path.suffix in (".json", ".txt"):
            h.update(rel.encode() + b"\x00" + path.read_bytes())
        else:
            h.update(f"{rel}\x00{path.stat().st_size}".encode())
    return "local-sha256:" + h.hexdigest()[:16]


def load_clip(model: str, *, device: str = "auto") -> LoadedClip:
    """Load a CLIP model and processor from a local folder or a hub id.

    Args:
        model: A local folder (loaded with `local_files_only=True`) or a hub id.
        device: 'auto', 'cuda' or 'cpu'.

    Returns:
        The model in eval mode on `device`, its processor and identity.

    Raises:
        ModelUnavailableError: A missing folder, or a hub id neither cached nor downloadable.
    """
    from transformers import CLIPModel, CLIPProcessor  # heavy: only when a CLIP is asked for

    # 1. Check inputs: resolve where the weights come from before loading anything
    torch_device = resolve_device(device)
    local = Path(model).expanduser()
    if local.is_dir():
        source, local_only, identity = str(local), True, _local_digest(local)
    elif model.startswith(("/", ".", "~")) or local.exists():
        raise ModelUnavailableError(f"CLIP model folder {model!r} does not exist")
    else:
        advice = "set `clip_model` to that folder, or to None to skip the CLIP score."
        source, local_only, identity = model, hub_cached_only(model, "CLIP model", advice), model

    # 2. Load
    try:
        clip = CLIPModel.from_pretrained(source, local_files_only=local_only)
        processor = CLIPProcessor.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(
            f"cannot load CLIP model {model!r} ({type(exc).__name__}: {str(exc)[:300]}); "
            "`clip_model` must be a CLIP model folder (config.json, weights, tokenizer and "
            "preprocessor files) or its hub id"
        ) from None
    clip.eval().to(torch_device)
    return LoadedClip(model=clip, processor=processor, device=torch_device, identity=identity)


def clip_scores(
    clip: LoadedClip | str,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    *,
    device: str = "auto",
    batch_size: int = 32,
) -> np.ndarray:
    """Cosine similarity of each image with its own prompt, in [-1, 1].

    Args:
        clip: A `LoadedClip`, or a folder / hub id to load (then `device` applies).
        images: RGB images, any size (the processor resizes and centre-crops them).
        prompts: One prompt per image; longer ones are truncated to CLIP's 77 tokens.
        device: Where to load `clip` when it is given by name.
        batch_size: Images per forward pass; bounds memory. Results agree across batch sizes
            to float32 rounding (~1e-7) and are bit-identical for the same batch size.

    Returns:
        float64 array of length N.

    Raises:
        ValueError: `images` and `prompts` differ in length, or `batch_size` <= 0.
    """
    if len(images) != len(prompts):
        raise ValueError(f"got {len(images)} `images` but {len(prompts)} `prompts`")
    if batch_size <= 0:
        raise ValueError(f"`batch_size` must be > 0, got {batch_size}")
    if isinstance(clip, str):
        clip = load_clip(clip, device=device)
    scores = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            inputs = clip.processor(
                text=list(prompts[start : start + batch_size]),
                images=[img.convert("RGB") for img in images[start : start + batch_size]],
                return_tensors="pt",
                padding=True,
                truncation=True,
            ).to(clip.device)
            # The forward's embeds are L2-normalised in transformers 4 and 5 alike (unlike
            # get_image_features, whose return type changed in 5).
            out = clip.model(**inputs)
            scores.append((out.image_embeds * out.text_embeds).sum(dim=-1).double().cpu())
    if not scores:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(scores).clamp(-1.0, 1.0).numpy()
