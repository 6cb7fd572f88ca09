"""The training loop behind `personalize`: photo tensors, the two losses, resumable checkpoints.

The denoising loss is diffusers' `train_text_to_image_lora.py`: VAE latents times the VAE's
scaling factor, noise and a uniform timestep, `add_noise`, and MSE between the UNet's prediction
and the noise (or the velocity for v-prediction models). Every random draw comes from one CPU
`torch.Generator` whose state is checkpointed, so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from synth.data.preprocess import letterbox as letterbox_image
from synth.data.real_import import load_rgb

__all__ = [
    "CHECKPOINT_DIR",
    "Denoiser",
    "TrainState",
    "denoising_loss",
    "encode_latents",
    "latest_checkpoint",
    "load_pixels",
    "optimise",
    "run_steps",
    "save_checkpoint",
    "vae_loss",
]

CHECKPOINT_DIR = ".checkpoints"
_FORMAT = "datasynth-personalize-checkpoint/1"
_KEEP = 2  # the newest two: if the newest is torn by a crash mid-write, the one before loads


@dataclass
class TrainState:
    """What a checkpoint restores besides weights: the step, loss histories and the RNG."""

    generator: torch.Generator
    step: int = 0
    losses: list[float] = field(default_factory=list)
    vae_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0  # training time of earlier, interrupted attempts
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        """Seconds trained so far, over every attempt."""
        return self.seconds + time.monotonic() - self.started

    @classmethod
    def new(cls, seed: int) -> TrainState:
        """A fresh state whose draws are fixed by `seed`."""
        return cls(torch.Generator("cpu").manual_seed(seed))


@dataclass
class Denoiser:
    """What the denoising loss needs: the UNet, a training scheduler, and the data it samples."""

    unet: torch.nn.Module
    scheduler: object  # a DDPMScheduler: add_noise, get_velocity, num_train_timesteps
    embed: Callable[[], torch.Tensor]  # [classes + 1, tokens, dim]; the last row is ""
    latent_mean: torch.Tensor  # [photos, C, h, w] on the CPU, unscaled
    latent_std: torch.Tensor
    labels: torch.Tensor  # [photos] class index of each photo
    scaling_factor: float
    device: torch.device
    autocast: torch.dtype | None  # fp16/bf16 on CUDA, None for fp32
    snr_gamma: float | None = None  # Min-SNR weighting (Hang et al. 2023), as diffusers' scripts


def _square(image: Image.Image, resolution: int) -> Image.Image:
    """Shorter side to `resolution`, then the centre square (diffusers' Resize + CenterCrop)."""
    w, h = image.size
    scale = resolution / min(w, h)
    size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return image.crop((left, top, left + resolution, top + resolution))


def _pixel_batches(
    paths: Sequence[str], resolution: int, flip: bool, batch: int, letterbox: bool = False
) -> Iterator[torch.Tensor]:
    """[n, 3, r, r] tensors in [-1, 1]; with `flip` each photo is followed by its mirror.

    Each photo is its centre square, or with `letterbox` the whole photo on black bars.
    """
    for start in range(0, len(paths), batch):
        tensors = []
        for path in paths[start : start + batch]:
            image = load_rgb(path)
            if letterbox:
                image = letterbox_image(image, resolution, "black")
            else:
                image = _square(image, resolution)
            x = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
            x = x.view(resolution, resolution, 3).permute(2, 0, 1).float() / 127.5 - 1.0
            tensors.extend([x, x.flip(-1)] if flip else [x])
        yield torch.stack(tensors)


def load_pixels(
    paths: Sequence[str], resolution: int, *, flip: bool, letterbox: bool = False
) -> torch.Tensor:
    """All photos as one [n (x2 with flip), 3, r, r] tensor in [-1, 1] (small models only)."""
    return torch.cat(list(_pixel_batches(paths, resolution, flip, 64, letterbox)))


@torch.no_grad()
def encode_latents(
    vae,
    paths: Sequence[str],
    resolution: int,
    *,
    flip: bool,
    device: torch.device,
    batch: int = 8,
    letterbox: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of the VAE's latent distribution of every photo, on the CPU, unscaled.

    Encoding once instead of every step is diffusers' `--cache_latents`; sampling
    `mean + std * noise` per step is the same draw as `latent_dist.sample()`.
    """
    means, stds = [], []
    dtype = next(vae.parameters()).dtype
    for pixels in _pixel_batches(paths, resolution, flip, batch, letterbox):
        dist = vae.encode(pixels.to(device, dtype)).latent_dist
        means.append(dist.mean.float().cpu())
        stds.append(dist.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


def _randn(shape, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randn(shape, generator=generator).to(device)


def denoising_loss(d: Denoiser, batch_size: int, uncond_p: float, g: torch.Generator):
    """One batch's noise-prediction MSE (v-prediction target when the scheduler asks for it)."""
    idx = torch.randint(0, len(d.labels), (batch_size,), generator=g)
    latents = d.latent_mean[idx] + d.latent_std[idx] * torch.randn(
        d.latent_mean[idx].shape, generator=g
    )
    latents = (latents * d.scaling_factor).to(d.device)
    prompt = d.labels[idx].clone()
    prompt[torch.rand(batch_size, generator=g) < uncond_p] = -1  # -1: the empty prompt's row
    noise = _randn(latents.shape, g, d.device)
    steps = d.scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (batch_size,), generator=g).to(d.device)
    noisy = d.scheduler.add_noise(latents, noise, timesteps)
    kind = d.scheduler.config.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "v_prediction":
        target = d.scheduler.get_velocity(latents, noise, timesteps)
    else:
        raise ValueError(f"unsupported scheduler prediction_type {kind!r}")
    enabled = d.autocast is not None
    with torch.autocast(d.device.type, dtype=d.autocast or torch.float32, enabled=enabled):
        hidden = d.embed()[prompt.to(d.device)]
        pred = d.unet(noisy, timesteps, hidden, return_dict=False)[0]
    if d.snr_gamma is None:
        return F.mse_loss(pred.float(), target.float())
    return _min_snr_loss(d, pred, target, timesteps, kind)


def _min_snr_loss(d: Denoiser, pred, target, timesteps, kind: str) -> torch.Tensor:
    """MSE weighted by min(SNR, gamma) / SNR: nearly clean timesteps stop dominating the loss."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(d.scheduler, timesteps)
    weight = snr.clamp(max=d.snr_gamma) / (snr if kind == "epsilon" else snr + 1)
    loss = F.mse_loss(pred.float(), target.float(), reduction="none")
    return (loss.mean(dim=list(range(1, loss.ndim))) * weight).mean()


def vae_loss(vae, pixels: torch.Tensor, batch_size: int, kl_weight: float, g, device):
    """Reconstruction MSE plus `kl_weight` times the per-value KL to N(0, 1), on one batch."""
    x = pixels[torch.randint(0, len(pixels), (batch_size,), generator=g)].to(device)
    dist = vae.encode(x).latent_dist
    z = dist.mean + dist.std * _randn(dist.mean.shape, g, device)
    rec = vae.decode(z).sample
    kl = 0.5 * (dist.mean.pow(2) + dist.var - 1.0 - dist.logvar).mean()
    return F.mse_loss(rec, x) + kl_weight * kl


def optimise(loss: torch.Tensor, optimizer, params, max_grad_norm: float, scaler=None) -> float:
    """Backward, clip, step (through `scaler` for fp16); returns the loss as a float."""
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def run_steps(
    state: TrainState,
    stop: int,
    step: Callable[[], float],
    history: list[float],
    *,
    total: int,
    every: int,
    save: Callable[[], None],
    progress: Callable[[int, int], None] | None,
) -> None:
    """Run `step` until `state.step == stop`: checkpoint every `every` steps and at `total`.

    The checkpoint is written before `progress` is called, so a caller that stops the run
    from its callback at a checkpoint step resumes exactly there.
    """
    while state.step < stop:
        history.append(step())
        state.step += 1
        if state.step % every == 0 or state.step == total:
            save()
        if progress is not None:
            progress(state.step, total)


def save_checkpoint(out_dir: Path, payload: dict) -> Path:
    """Write `payload` as `.checkpoints/step-<n>.pt` (temp + fsync + rename); keep the newest 2."""
    folder = Path(out_dir) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{payload['step']:09d}.pt"
    tmp = folder / f".{path.name}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        torch.save({"format": _FORMAT, **payload}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    for old in sorted(folder.glob("step-*.pt"))[:-_KEEP]:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(out_dir: Path, run_key: str) -> dict | None:
    """The newest checkpoint of this run (same `run_key`) that loads, or None.

    A torn or foreign file is skipped, not trusted: `weights_only=True` refuses pickled code, and
    a checkpoint of another config or other photos has a different `run_key`.
    """
    folder = Path(out_dir) / CHECKPOINT_DIR
    for path in sorted(folder.glob("step-*.pt"), reverse=True):
        with contextlib.suppress(Exception):  # any failure to load means "not a valid one"
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload.get("format") == _FORMAT and payload.get("run_key") == run_key:
                return payload
    return None
