"""The two ways `personalize` fits a generator: LoRA on a frozen UNet, or the whole tiny pipeline.

Both train on the same denoising loss (`personalize_train`), checkpoint every
`checkpoint_every` steps and resume from the newest checkpoint of the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from synth.generation.lora import add_lora
from synth.generation.personalize_config import PersonalizeConfig
from synth.generation.personalize_train import (
    Denoiser,
    TrainState,
    denoising_loss,
    encode_latents,
    latest_checkpoint,
    load_pixels,
    optimise,
    run_steps,
    save_checkpoint,
    vae_loss,
)

__all__ = ["FitJob", "fit_lora", "fit_tiny_pipeline"]


@dataclass(frozen=True)
class FitJob:
    """One fit: its settings, the train photos and where its checkpoints go."""

    config: PersonalizeConfig
    out_dir: Path
    run_key: str  # digest of config, base model and train photos: checkpoints must match it
    paths: tuple[str, ...]  # train photos only
    labels: tuple[int, ...]  # class index of each photo
    prompts: tuple[str, ...]  # one per class
    device: torch.device
    weight_dtype: torch.dtype  # of the frozen weights
    autocast: torch.dtype | None  # fp16/bf16 autocast on CUDA, None in fp32
    progress: Callable[[int, int], None] | None


def _photo_labels(job: FitJob) -> torch.Tensor:
    labels = torch.tensor(job.labels, dtype=torch.long)
    return labels.repeat_interleave(2) if job.config.flip else labels  # photo, mirror, ...


def _text_embedder(pipe, job: FitJob, *, trainable: bool = False) -> Callable[[], torch.Tensor]:
    """Embeddings of the class prompts plus "" (last row): computed once for a frozen encoder,
    every step for a trained one."""
    tok = pipe.tokenizer
    ids = tok(
        [*job.prompts, ""],
        padding="max_length",
        max_length=tok.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(job.device)
    if trainable:
        return lambda: pipe.text_encoder(ids, return_dict=False)[0]
    with torch.no_grad():
        hidden = pipe.text_encoder(ids, return_dict=False)[0]
    return lambda: hidden


def _weights(module: torch.nn.Module, lora_only: bool) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().cpu().clone()
        for k, v in module.state_dict().items()
        if not lora_only or "lora_" in k
    }


def _restore(ckpt: dict, state: TrainState, modules: dict[str, torch.nn.Module]) -> None:
    """Load a checkpoint's weights and training state (optimisers are restored by the caller)."""
    for name, module in modules.items():
        result = module.load_state_dict(ckpt["modules"][name], strict=False)
        if result.unexpected_keys:
            raise RuntimeError(
                f"checkpoint {name} has unknown weights {result.unexpected_keys[:3]}"
            )
    state.step = int(ckpt["step"])
    state.losses[:] = ckpt["losses"]
    state.vae_losses[:] = ckpt["vae_losses"]
    state.seconds = float(ckpt["seconds"])
    state.started = time.monotonic()
    state.generator.set_state(ckpt["generator"])


def _saver(job, state, modules, optimizer, phase, *, lora_only=False, scaler=None, ema=None):
    """A function that checkpoints the run as it stands when called."""

    def save() -> None:
        save_checkpoint(
            job.out_dir,
            {
                "run_key": job.run_key,
                "step": state.step,
                "phase": phase,
                "losses": list(state.losses),
                "vae_losses": list(state.vae_losses),
                "seconds": state.elapsed(),
                "generator": state.generator.get_state(),
                "modules": {n: _weights(m, lora_only) for n, m in modules.items()},
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "ema": ema.state_dict() if ema is not None else None,
            },
        )

    return save


def _train_scheduler(pipe):
    """The DDPM training scheduler with the pipeline's noise schedule and prediction type."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(pipe.scheduler.config)


def fit_lora(pipe, job: FitJob) -> TrainState:
    """Train LoRA adapters on `pipe.unet` (VAE, text encoder and UNet frozen), resuming if able.

    Returns:
        The final training state; the adapters are left in `pipe.unet`.
    """
    cfg = job.config
    # 1. Freeze the base (loaded in the weight dtype); add fp32 adapters
    for module in (pipe.vae, pipe.text_encoder, pipe.unet):
        module.requires_grad_(False).to(job.device)
    params = add_lora(pipe.unet, rank=cfg.lora_rank, alpha=cfg.lora_alpha, seed=cfg.seed)
    # 2. Encode the photos and prompts once (both encoders are frozen)
    mean, std = encode_latents(
        pipe.vae, job.paths, cfg.resolution, flip=cfg.flip, device=job.device,
        letterbox=cfg.letterbox,
    )  # fmt: skip
    denoiser = Denoiser(
        pipe.unet,
        _train_scheduler(pipe),
        _text_embedder(pipe, job),
        mean,
        std,
        _photo_labels(job),
        float(pipe.vae.config.scaling_factor),
        job.device,
        job.autocast,
        cfg.snr_gamma,
    )
    # 3. Resume, then train
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate)
    scaler = torch.amp.GradScaler("cuda") if job.autocast == torch.float16 else None
    state = TrainState.new(cfg.seed)
    ckpt = latest_checkpoint(job.out_dir, job.run_key)
    if ckpt is not None:
        _restore(ckpt, state, {"unet": pipe.unet})
        optimizer.load_state_dict(ckpt["optimizer"])
        if scaler is not None and ckpt["scaler"] is not None:
            scaler.load_state_dict(ckpt["scaler"])
    save = _saver(job, state, {"unet": pipe.unet}, optimizer, "unet", lora_only=True, scaler=scaler)
    bs, p = cfg.batch_size, cfg.uncond_probability

    def step() -> float:
        loss = denoising_loss(denoiser, bs, p, state.generator)
        return optimise(loss, optimizer, params, cfg.max_grad_norm, scaler)

    run_steps(
        state, cfg.steps, step, state.losses,
        total=cfg.steps, every=cfg.checkpoint_every, save=save, progress=job.progress,
    )  # fmt: skip
    return state


def fit_tiny_pipeline(pipe, job: FitJob) -> TrainState:
    """Fit the tiny pipeline's random VAE to the photos, then its whole UNet, resuming if able.

    A random VAE's latents hold no usable image code, so it cannot stay frozen as SD's does:
    `vae_steps` of reconstruction (plus a small KL) come first, and its scaling factor is then
    set so the photos' latents have unit variance, as SD's 0.18215 does for SD's VAE. With
    `train_text_encoder` the random text encoder learns with the UNet: its frozen random
    embeddings of prompts that differ in one word are too alike to separate the classes quickly.

    Returns:
        The final training state; `pipe` holds the fitted weights.
    """
    pipe.vae.to(job.device)
    pipe.unet.to(job.device)
    pipe.text_encoder.to(job.device).requires_grad_(False)
    state = TrainState.new(job.config.seed)
    modules = {"vae": pipe.vae, "unet": pipe.unet, "text_encoder": pipe.text_encoder}
    ckpt = latest_checkpoint(job.out_dir, job.run_key)
    if ckpt is not None:
        _restore(ckpt, state, modules)
    # Phase 1: the VAE; Phase 2: the UNet (and text encoder) on the fitted VAE's latents
    if state.step < job.config.vae_steps:
        _fit_vae(pipe, job, state, modules, ckpt if ckpt and ckpt["phase"] == "vae" else None)
    _fit_denoiser(pipe, job, state, modules, ckpt if ckpt and ckpt["phase"] == "unet" else None)
    return state


def _fit_vae(pipe, job: FitJob, state: TrainState, modules: dict, ckpt: dict | None) -> None:
    """Reconstruction + KL steps up to `vae_steps` (the photos fit in memory at tens of px)."""
    cfg, vae = job.config, pipe.vae
    pixels = load_pixels(job.paths, cfg.resolution, flip=cfg.flip, letterbox=cfg.letterbox)
    params = list(vae.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.vae_learning_rate)
    if ckpt is not None:
        opt.load_state_dict(ckpt["optimizer"])

    def step() -> float:
        loss = vae_loss(vae, pixels, cfg.batch_size, cfg.vae_kl_weight, state.generator, job.device)
        return optimise(loss, opt, params, cfg.max_grad_norm)

    run_steps(
        state, cfg.vae_steps, step, state.vae_losses, total=cfg.vae_steps + cfg.steps,
        every=cfg.checkpoint_every, save=_saver(job, state, modules, opt, "vae"),
        progress=job.progress,
    )  # fmt: skip


def _fit_denoiser(pipe, job: FitJob, state: TrainState, modules: dict, ckpt: dict | None) -> None:
    """Denoising steps up to `vae_steps + steps` on the fitted VAE's cached latents."""
    cfg, vae, text_encoder = job.config, pipe.vae, pipe.text_encoder
    vae.requires_grad_(False)
    mean, std = encode_latents(
        vae, job.paths, cfg.resolution, flip=cfg.flip, device=job.device, letterbox=cfg.letterbox
    )
    scaling = 1.0 / float(mean.std())
    vae.register_to_config(scaling_factor=scaling)  # saved in vae/config.json; sampling uses it
    text_encoder.requires_grad_(cfg.train_text_encoder)
    embed = _text_embedder(pipe, job, trainable=cfg.train_text_encoder)
    denoiser = Denoiser(
        pipe.unet, _train_scheduler(pipe), embed, mean, std, _photo_labels(job), scaling,
        job.device, job.autocast, cfg.snr_gamma,
    )  # fmt: skip
    unet_params = list(pipe.unet.parameters())
    text_params = [p for p in text_encoder.parameters() if p.requires_grad]
    params = unet_params + text_params
    groups = [{"params": unet_params}]
    if text_params:
        groups.append(
            {"params": text_params, "lr": cfg.text_encoder_learning_rate or cfg.learning_rate}
        )
    opt = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    ema = _ema(params, cfg.ema_decay)
    if ckpt is not None:
        opt.load_state_dict(ckpt["optimizer"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])

    def step() -> float:
        loss = denoising_loss(denoiser, cfg.batch_size, cfg.uncond_probability, state.generator)
        value = optimise(loss, opt, params, cfg.max_grad_norm)
        if ema is not None:
            ema.step(params)
        return value

    total = cfg.vae_steps + cfg.steps
    run_steps(
        state, total, step, state.losses, total=total, every=cfg.checkpoint_every,
        save=_saver(job, state, modules, opt, "unet", ema=ema), progress=job.progress,
    )  # fmt: skip
    if ema is not None:
        ema.copy_to(params)  # the averaged weights are the ones saved


def _ema(params: list[torch.nn.Parameter], decay: float | None):
    """diffusers' EMAModel over `params` (decay warms up as (1 + n) / (10 + n)), or None.

    With a from-scratch learning rate the last step's weights jump around; their average is a
    steadier generator (diffusers' text-to-image script's `--use_ema`).
    """
    if decay is None:
        return None
    from diffusers.training_utils import EMAModel

    return EMAModel(params, decay=decay)
