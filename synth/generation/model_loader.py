"""Load a diffusers text-to-image pipeline once per process, from a local directory or the hub."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from synth.devices import resolve_device
from synth.errors import ModelUnavailableError

__all__ = [
    "LoadedPipeline",
    "ModelInfo",
    "describe_model",
    "load_pipeline",
]

_HUB_HOST = "huggingface.co"
_SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-ancestral": "EulerAncestralDiscreteScheduler",
    "dpm-solver": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass(frozen=True)
class ModelInfo:
    """What manifests record about the model that made an image."""

    model: str
    revision: str
    device: str
    dtype: str
    scheduler: str


@dataclass
class LoadedPipeline:
    """A loaded pipeline and its `ModelInfo`; `lock` serialises calls from threads."""

    pipe: object
    info: ModelInfo
    lock: threading.Lock


_cache: dict[tuple, LoadedPipeline] = {}
_cache_lock = threading.Lock()


def _resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "fp16" if device == "cuda" else "fp32"
    return dtype


def _local_digest(directory: Path) -> str:
    """Digest of a local model: its JSON configs plus each weight file's name and size."""
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


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((_HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _check_hub(model: str, revision: str | None) -> bool:
    """True when the model must come from the local HF cache only; raises when it cannot load."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model, "model_index.json", revision=revision)
    if isinstance(cached, str):
        return True
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline or not _hub_reachable():
        why = "HF_HUB_OFFLINE is set" if offline else f"{_HUB_HOST} cannot be reached"
        raise ModelUnavailableError(
            f"model {model!r} is not a local directory and {why}, so it cannot be downloaded. "
            "Download it where there is a network (`huggingface-cli download "
            f"{model}`) and set `model` to that local directory, or build the offline test "
            "model with `datasynth tiny-model DIR` and point `model` at DIR."
        )
    return False


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or os.sep in model.strip("/").split("/", 1)[-1]


def describe_model(
    model: str, *, revision: str | None, device: str, dtype: str, scheduler: str
) -> ModelInfo:
    """Resolve the settings and check the model can load, without loading it.

    Raises `ModelUnavailableError` at once for a missing directory or an unreachable hub id.
    """
    device = resolve_device(device)
    dtype = _resolve_dtype(dtype, device)
    local = Path(model).expanduser()
    if local.is_dir():
        if not (local / "model_index.json").is_file():
            raise ModelUnavailableError(f"{model!r} is a directory but has no model_index.json")
        recorded = _local_digest(local)
    elif _looks_like_path(model) or local.exists():
        raise ModelUnavailableError(f"model directory {model!r} does not exist")
    else:
        _check_hub(model, revision)
        recorded = revision or "main"
    return ModelInfo(model, recorded, device, dtype, scheduler)


def _load(info: ModelInfo, revision: str | None):
    from diffusers import AutoPipelineForText2Image

    local = Path(info.model).expanduser()
    if local.is_dir():
        source, local_only = str(local), True
    else:
        source, local_only = info.model, _check_hub(info.model, revision)
    pipe = AutoPipelineForText2Image.from_pretrained(
        source, dtype=_DTYPES[info.dtype], revision=revision, local_files_only=local_only
    )
    if info.scheduler != "default":
        import diffusers

        cls = getattr(diffusers, _SCHEDULERS[info.scheduler])
        pipe.scheduler = cls.from_config(pipe.scheduler.config)
    pipe = pipe.to(info.device)
    if info.device == "cuda" and hasattr(pipe, "unet"):  # transformer models (SD3, Flux) have none
        pipe.unet.to(memory_format=torch.channels_last)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_pipeline(
    model: str, *, revision: str | None, device: str, dtype: str, scheduler: str
) -> LoadedPipeline:
    """The pipeline for these settings, loaded on first use and shared by the whole process."""
    info = describe_model(model, revision=revision, device=device, dtype=dtype, scheduler=scheduler)
    key = (info, revision)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = LoadedPipeline(_load(info, revision), info, threading.Lock())
        return _cache[key]
