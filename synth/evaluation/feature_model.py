"""A pretrained vision model (CLIP or DINOv2) as a second feature space for the domain gap.

The real-only classifier's features are always available but were trained on the real-train
images themselves; a model that never saw them (CLIP, DINOv2) measures the gap without that bias.
It comes from a local folder (`local_files_only`) or a hub id; an id that is neither cached nor
downloadable fails at once with the fix, through the CLIP score's hub check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synth.data import clip_score  # its hub check; called through the module so tests can stub it
from synth.devices import check_uint8_images, resolve_device
from synth.errors import ModelUnavailableError
from synth.hub import hub_cached_only

__all__ = [
    "LoadedFeatureModel",
    "check_feature_model",
    "feature_model_identity",
    "load_feature_model",
    "model_features",
]

# A full CLIP checkpoint holds a text tower too: only its vision tower is loaded.
_CLIP_TYPES = ("clip", "clip_vision_model")


@dataclass(frozen=True)
class LoadedFeatureModel:
    """A vision model and its image processor; `identity` names the exact weights."""

    model: object  # transformers PreTrainedModel, eval mode, on `device`
    processor: object  # transformers image processor
    device: str
    identity: str
    kind: str  # the config's model_type, e.g. 'clip_vision_model' or 'dinov2'


def feature_model_identity(model: str | None) -> str | None:
    """The hub id, or a digest of the local folder's configs and weight sizes (None: no model).

    Cheap (no weights are read), so a cache key can include it: new weights saved into the
    same folder give a new key.
    """
    if model is None:
        return None
    local = Path(model).expanduser()
    return clip_score._local_digest(local) if local.is_dir() else model


def _source(model: str) -> tuple[str, bool]:
    """(where to load from, local files only), or ModelUnavailableError when nowhere."""
    local = Path(model).expanduser()
    if local.is_dir():
        return str(local), True
    if model.startswith(("/", ".", "~")) or local.exists():
        raise ModelUnavailableError(f"feature model folder {model!r} does not exist")
    advice = (
        "set `feature_model` to that folder, or to None to measure the domain gap in the "
        "classifier's features only."
    )
    return model, hub_cached_only(model, "feature model", advice)


def check_feature_model(model: str | None) -> None:
    """Fail now, in one line, when `model` can be neither read locally nor downloaded.

    Cheap (no weights are read): for a run's first step, so a bad `feature_model` does not
    wait for the diagnosis at the end of the run to show.
    """
    if model is not None:
        _source(model)


def load_feature_model(model: str, *, device: str = "auto") -> LoadedFeatureModel:
    """Load a CLIP vision tower or any `AutoModel` (DINOv2) and its image processor.

    Args:
        model: A local folder (loaded with `local_files_only=True`) or a hub id.
        device: 'auto', 'cuda' or 'cpu'.

    Raises:
        ModelUnavailableError: A missing folder, a hub id neither cached nor downloadable, or
            files that are not a vision model with an image processor.
    """
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, CLIPVisionModel

    # 1. Check inputs: where the weights come from, before loading anything
    torch_device = resolve_device(device)
    source, local_only = _source(model)

    # 2. Load
    try:
        kind = AutoConfig.from_pretrained(source, local_files_only=local_only).model_type
        loader = CLIPVisionModel if kind in _CLIP_TYPES else AutoModel
        net = loader.from_pretrained(source, local_files_only=local_only)
        processor = AutoImageProcessor.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailableError(
            f"cannot load feature model {model!r} ({type(exc).__name__}: {str(exc)[:300]}); "
            "`feature_model` must be a CLIP or DINOv2 folder (config.json, weights and "
            "preprocessor_config.json) or its hub id"
        ) from None
    net.eval().to(torch_device)
    return LoadedFeatureModel(net, processor, torch_device, feature_model_identity(model), kind)


def model_features(
    loaded: LoadedFeatureModel, images_uint8: torch.Tensor, *, batch_size: int = 64
) -> np.ndarray:
    """The model's pooled image embedding per image (CLIP: post-layernorm CLS, DINOv2: CLS).

    Args:
        loaded: From `load_feature_model`.
        images_uint8: uint8 N x 3 x S x S; the model's processor resizes them to its input.
        batch_size: Images per forward pass; bounds memory.

    Returns:
        float32 array N x dim.
    """
    images = check_uint8_images(images_uint8, batch_size=batch_size)
    hwc = images.permute(0, 2, 3, 1).numpy()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(hwc), batch_size):
            # PIL images: every processor reads them the same way (no channel-order guessing).
            batch = [Image.fromarray(img) for img in hwc[start : start + batch_size]]
            inputs = loaded.processor(images=batch, return_tensors="pt").to(loaded.device)
            out = loaded.model(pixel_values=inputs["pixel_values"])
            chunks.append(out.pooler_output.float().cpu())
    return torch.cat(chunks).numpy()
