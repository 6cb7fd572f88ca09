"""Load a diffusers text-to-image pipeline once per process, from a local directory or the hub.

The img2img pipeline is made from the loaded one (`from_pipe`: the same modules, no second copy
of the weights) and shares its lock, since both drive the same UNet.

A local model or LoRA folder is identified by a digest of its files' contents, so weights
overwritten in place (a refit into the same folder) are a different model to the manifest. A hub
model is identified by the commit its revision resolves to (`synth.hub.hub_commit`), never by a
branch name, and is loaded at that commit: a new commit of 'main' is a different model.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from synth.config import GenerationConfig
from synth.devices import resolve_device
from synth.errors import InputError, ModelUnavailableError
from synth.generation.lora import LORA_WEIGHTS, load_lora
from synth.hub import hub_cached_only, hub_commit
from synth.storage import sha256_file

__all__ = [
    "LoadedPipeline",
    "ModelInfo",
    "describe_model",
    "folder_digest",
    "load_img2img_pipeline",
    "load_pipeline",
    "model_info",
    "model_settings",
]

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
    revision: str  # a hub model's resolved commit sha, a local folder's content digest
    device: str
    dtype: str
    scheduler: str
    lora: str | None = None  # the adapter folder, when one is applied
    lora_digest: str = ""  # of its files ('' without one)
    lora_scale: float = 1.0  # its strength (1.0 without one: no adapter, nothing to scale)


@dataclass
class LoadedPipeline:
    """A loaded pipeline and its `ModelInfo`; `lock` serialises calls from threads."""

    pipe: object
    info: ModelInfo
    lock: threading.Lock


_cache: dict[ModelInfo, LoadedPipeline] = {}  # the info holds the resolved commit or digest
_cache_lock = threading.Lock()


def _resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "fp16" if device == "cuda" else "fp32"
    return dtype


_file_shas: dict[tuple, str] = {}  # (path, inode, size, mtime) -> sha256: each file read once
_RECORD = "personalize.json"  # personalize's own record (times): not part of what it made


def _sha_once(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _file_shas:
        _file_shas[key] = sha256_file(path)
    return _file_shas[key]


def folder_digest(directory: Path) -> str:
    """sha256 over every file's relative path and content digest ('sha256:<hex>').

    Hidden files (the hub client's `.cache/`) and `personalize.json` are left out: the files
    `personalize` records for its output folder (`_local_digest` uses that record's digest).
    """
    directory = Path(directory)
    h = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if not path.is_file() or rel.parts[0].startswith(".") or rel.as_posix() == _RECORD:
            continue
        h.update(f"{rel.as_posix()}\0{_sha_once(path)}\n".encode())
    return "sha256:" + h.hexdigest()


def _local_digest(directory: Path) -> str:
    """The revision recorded for a local model: its folder digest, shortened.

    A `personalize` output is named by the digest its record holds, once checked against its
    files (a changed file raises), so manifests and personalize.json name it alike:
    `folder_digest` hashes safetensors files raw, the record with their headers canonicalised.
    """
    from synth.generation.personalize_record import verified_digest  # imports synth.data

    digest = verified_digest(directory) or folder_digest(directory)
    return "local-sha256:" + digest.removeprefix("sha256:")[:16]


def _lora_digest(lora: str) -> str:
    folder = Path(lora).expanduser()
    if not (folder / LORA_WEIGHTS).is_file():
        raise InputError(
            f"`lora` {lora!r} is not a LoRA folder (no {LORA_WEIGHTS}); point it at a folder "
            "written by `datasynth personalize` or diffusers' save_lora_weights"
        )
    return folder_digest(folder)


def _check_hub(model: str, revision: str | None) -> bool:
    """True when the model must come from the local HF cache only; raises when it cannot load."""
    advice = (
        "set `model` to that local directory, or build the offline test model with "
        "`datasynth tiny-model DIR` and point `model` at DIR."
    )
    return hub_cached_only(model, "model", advice, file="model_index.json", revision=revision)


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or os.sep in model.strip("/").split("/", 1)[-1]


def describe_model(
    model: str,
    *,
    revision: str | None,
    device: str,
    dtype: str,
    scheduler: str,
    lora: str | None = None,
    lora_scale: float = 1.0,
) -> ModelInfo:
    """Resolve the settings and check the model can load, without loading it.

    Raises `ModelUnavailableError` at once for a missing directory or an unreachable hub id,
    and `InputError` for a `lora` folder without adapter weights.
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
        recorded = hub_commit(model, revision, file="model_index.json")
    if lora is None:
        return ModelInfo(model, recorded, device, dtype, scheduler)
    return ModelInfo(
        model, recorded, device, dtype, scheduler, lora, _lora_digest(lora), float(lora_scale)
    )


# The GenerationConfig fields, besides `model`, that say which pipeline is loaded and how.
MODEL_SETTINGS = ("revision", "device", "dtype", "scheduler", "lora", "lora_scale")


def model_settings(config: GenerationConfig) -> dict:
    """The config's settings that `describe_model` and `load_pipeline` take."""
    return {name: getattr(config, name) for name in MODEL_SETTINGS}


def model_info(config: GenerationConfig) -> ModelInfo:
    """Check the config's model (and LoRA) can load and resolve what it records, unloaded."""
    return describe_model(config.model, **model_settings(config))


def _load(info: ModelInfo):
    from diffusers import AutoPipelineForText2Image

    local = Path(info.model).expanduser()
    if local.is_dir():
        source, local_only, revision = str(local), True, None
    else:  # at the commit recorded, even if the branch has moved on since it was resolved
        source, local_only, revision = (
            info.model,
            _check_hub(info.model, info.revision),
            info.revision,
        )
    pipe = AutoPipelineForText2Image.from_pretrained(
        source, dtype=_DTYPES[info.dtype], revision=revision, local_files_only=local_only
    )
    if info.scheduler != "default":
        import diffusers

        cls = getattr(diffusers, _SCHEDULERS[info.scheduler])
        pipe.scheduler = cls.from_config(pipe.scheduler.config)
    if info.lora is not None:
        load_lora(pipe, Path(info.lora).expanduser(), info.lora_scale)
    pipe = pipe.to(info.device)
    if info.device == "cuda" and hasattr(pipe, "unet"):  # transformer models (SD3, Flux) have none
        pipe.unet.to(memory_format=torch.channels_last)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_pipeline(model: str, *, revision: str | None, **settings) -> LoadedPipeline:
    """The pipeline for these settings, loaded on first use and shared by the whole process.

    `settings` are `describe_model`'s: device, dtype, scheduler and optionally lora, lora_scale.
    """
    info = describe_model(model, revision=revision, **settings)
    with _cache_lock:
        if info not in _cache:
            _cache[info] = LoadedPipeline(_load(info), info, threading.Lock())
        return _cache[info]


_img2img_cache: dict[ModelInfo, LoadedPipeline] = {}


def load_img2img_pipeline(model: str, *, revision: str | None, **settings) -> LoadedPipeline:
    """The img2img pipeline over the process's text-to-image one (`load_pipeline`'s settings)."""
    text = load_pipeline(model, revision=revision, **settings)
    key = text.info
    with _cache_lock:
        if key not in _img2img_cache:
            # imported under the lock: diffusers' lazy import failed when two batch threads
            # reached it at once (ImportError, seen in an end-to-end run)
            from diffusers import AutoPipelineForImage2Image

            pipe = AutoPipelineForImage2Image.from_pipe(text.pipe)
            pipe.set_progress_bar_config(disable=True)
            _img2img_cache[key] = LoadedPipeline(pipe, text.info, text.lock)
        return _img2img_cache[key]
