"""LoRA adapters on a diffusers UNet: add them for training, save them, load them onto a pipeline.

The pattern of diffusers' `train_text_to_image_lora.py`: a peft `LoraConfig` on the attention
projections, `unet.add_adapter`, and the pipeline class's `save_lora_weights` /
`load_lora_weights`, so an adapter trained here loads like any LoRA from the hub.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

__all__ = ["ADAPTER_NAME", "LORA_WEIGHTS", "add_lora", "load_lora", "save_lora"]

ADAPTER_NAME = "datasynth"
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # diffusers' default name, found by load_lora
TARGET_MODULES = ("to_k", "to_q", "to_v", "to_out.0")  # every attention projection of the UNet


def add_lora(unet: torch.nn.Module, *, rank: int, alpha: float, seed: int) -> list[torch.Tensor]:
    """Freeze `unet` and add trainable LoRA adapters to its attention projections.

    Args:
        unet: A diffusers `UNet2DConditionModel` (any model with diffusers' `add_adapter`).
        rank: Rank of each low-rank update.
        alpha: LoRA alpha; the update is scaled by alpha / rank.
        seed: Seeds the adapters' gaussian init without touching the global RNG.

    Returns:
        The adapter parameters (fp32), the only ones with `requires_grad`.
    """
    from peft import LoraConfig

    unet.requires_grad_(False)
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        init_lora_weights="gaussian",  # A ~ N(0, 1/r), B = 0: the adapter starts as a no-op
        target_modules=list(TARGET_MODULES),
    )
    # peft draws the init from the global RNG; fork it so synth never reseeds the caller's
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        unet.add_adapter(config)
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        # trained in fp32 even when the frozen base is fp16, as diffusers' cast_training_params
        p.data = p.data.float()
    return params


def save_lora(pipe, directory: Path) -> Path:
    """Save the UNet's adapter with the pipeline class's `save_lora_weights`; returns the file.

    The adapter's `LoraConfig` (rank, alpha, targets) goes into the file's metadata, so loading
    applies the same alpha / rank scale it was trained with.
    """
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    unet = pipe.unet
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    metadata = unet.peft_config["default"].to_dict()
    type(pipe).save_lora_weights(
        save_directory=str(directory),
        unet_lora_layers=layers,
        safe_serialization=True,
        unet_lora_adapter_metadata=_json_safe(metadata),
    )
    return Path(directory) / LORA_WEIGHTS


def _json_safe(metadata: dict) -> dict:
    """`LoraConfig.to_dict()` with sets as sorted lists: diffusers writes it as JSON."""
    return json.loads(json.dumps(metadata, default=lambda v: sorted(v), sort_keys=True))


def load_lora(pipe, lora_dir: str | Path, scale: float = 1.0, *, adapter_name: str = ADAPTER_NAME):
    """Load an adapter saved by `personalize` onto `pipe` and set its strength.

    Uses `pipe.load_lora_weights` then `pipe.set_adapters(..., adapter_weights=[scale])`: the
    adapter stays separate from the base weights, so scale 0 gives the base model's images
    exactly and the scale can change without reloading. Loading again under the same
    `adapter_name` replaces the adapter.

    Args:
        pipe: A diffusers pipeline with LoRA support (`load_lora_weights`), e.g. SD 1.5.
        lora_dir: A directory holding `pytorch_lora_weights.safetensors`.
        scale: Adapter strength: 0 is the base model, 1 the adapter as trained.
        adapter_name: Name of the adapter inside the pipeline.

    Returns:
        `pipe`, with the adapter active.

    Raises:
        ValueError: `lora_dir` has no adapter file or `pipe` cannot load LoRA weights.
    """
    lora_dir = Path(lora_dir)
    if not (lora_dir / LORA_WEIGHTS).is_file():
        raise ValueError(f"`lora_dir` {str(lora_dir)!r} has no {LORA_WEIGHTS}")
    if not hasattr(pipe, "load_lora_weights"):
        raise ValueError(f"{type(pipe).__name__} cannot load LoRA weights")
    if adapter_name in _adapters(pipe):
        pipe.delete_adapters([adapter_name])
    pipe.load_lora_weights(str(lora_dir), weight_name=LORA_WEIGHTS, adapter_name=adapter_name)
    pipe.set_adapters([adapter_name], adapter_weights=[float(scale)])
    return pipe


def _adapters(pipe) -> set[str]:
    """Names of the adapters already loaded into any of `pipe`'s components."""
    return {name for names in pipe.get_list_adapters().values() for name in names}
