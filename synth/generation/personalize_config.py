"""Settings of `personalize`: fitting a text-to-image generator to the user's real train photos.

Defaults are for LoRA on Stable Diffusion 1.5 (the settings of diffusers' text-to-image LoRA
example). `tiny_demo_config` gives the settings of the offline demo, which fits the tiny random
pipeline on a CPU.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from synth.config import SD15_MODEL_ID, ConfigModel, Device, OpenShare, PixelSide, Seed, Share
from synth.naming import fill_template, template_fields

__all__ = ["PersonalizeConfig", "tiny_demo_config"]

Method = Literal["auto", "lora", "tiny-pipeline"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]


class PersonalizeConfig(ConfigModel):
    """Everything that decides the fitted generator; its digest names a finished output."""

    base: str = Field(
        default=SD15_MODEL_ID,
        min_length=1,
        description="Hub id or local directory of the diffusers pipeline to fit.",
    )
    revision: str | None = Field(default=None, description="Hub revision of `base`.")
    method: Method = Field(
        default="auto",
        description="'lora': LoRA adapters on the UNet attention layers, base frozen. "
        "'tiny-pipeline': fit the tiny random pipeline's VAE, then its whole UNet (offline "
        "demo only). 'auto': 'tiny-pipeline' for the tiny model, else 'lora'.",
    )
    steps: int = Field(
        default=500, gt=0, le=1_000_000, description="Optimiser steps on the denoising loss."
    )
    learning_rate: Share = Field(default=1e-4, description="AdamW learning rate of the denoiser.")
    batch_size: int = Field(default=4, gt=0, le=1024, description="Photos per optimiser step.")
    resolution: PixelSide = Field(
        default=512,
        description="Photos are resized (shorter side) and centre-cropped to this square (x8).",
    )
    lora_rank: int = Field(
        default=4, gt=0, le=1024, description="Rank r of each LoRA update (LoRA only)."
    )
    lora_alpha: float = Field(
        default=4.0,
        gt=0.0,
        le=65536.0,
        description="LoRA alpha; updates are scaled by alpha / rank (LoRA only).",
    )
    checkpoint_every: int = Field(
        default=100,
        gt=0,
        le=1_000_000,
        description="Steps between resumable checkpoints; a kill loses at most this many.",
    )
    seed: Seed = Field(default=0, description="Seeds noise, timesteps, batches and LoRA init.")
    device: Device = Field(default="auto", description="'auto' takes CUDA when present.")
    mixed_precision: Precision = Field(
        default="auto",
        description="'auto' is fp16 on CUDA and fp32 on CPU; fp16/bf16 need CUDA. Trained "
        "weights stay fp32 either way.",
    )
    prompt_template: str = Field(
        default="a photo of a {name}",
        description="Prompt of each class's photos; '{name}' is the class name, '{a_name}' the "
        "name after its article. Generate with the same prompts: the fitted model knows these "
        "words only.",
    )
    uncond_probability: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Share of photos trained with the empty prompt, so classifier-free "
        "guidance has an unconditional prediction to steer away from (SD used 0.1).",
    )
    letterbox: bool = Field(
        default=False,
        description="Fit each whole photo, its longer side scaled to `resolution` on black "
        "bars, instead of the centre square of its shorter side (diffusers' scripts): the "
        "images then show what a classifier sees of a letterboxed photo (the study's "
        "preprocessing), and a wide photo's fruit is not cut off.",
    )
    flip: bool = Field(
        default=True, description="Also train on mirrored photos (doubles the data)."
    )
    snr_gamma: float | None = Field(
        default=None,
        gt=0.0,
        le=1000.0,
        description="Min-SNR loss weighting gamma (5.0 in the paper); None for plain MSE. "
        "Stops nearly clean timesteps from dominating: the tiny fit learns colour faster.",
    )
    max_grad_norm: float = Field(
        default=1.0, gt=0.0, le=1e6, description="Gradient clipping norm (as diffusers' scripts)."
    )
    vae_steps: int = Field(
        default=300,
        ge=0,
        le=1_000_000,
        description="Steps fitting the tiny pipeline's random VAE to the photos before the UNet "
        "(tiny-pipeline only; a real VAE stays frozen).",
    )
    train_text_encoder: bool = Field(
        default=False,
        description="Also train the text encoder (tiny-pipeline only; its random encoder "
        "gives the class prompts nearly equal embeddings).",
    )
    text_encoder_learning_rate: Share | None = Field(
        default=None,
        description="AdamW learning rate of the text encoder when `train_text_encoder`; None: "
        "`learning_rate`.",
    )
    ema_decay: OpenShare | None = Field(
        default=None,
        description="Save an exponential moving average of the trained weights (decay per "
        "step, warmed up as diffusers' EMAModel) instead of the last step's, as diffusers' "
        "`--use_ema`; None saves the last weights. Tiny pipeline only.",
    )
    vae_learning_rate: Share = Field(
        default=1e-3, description="AdamW learning rate of the VAE fit."
    )
    vae_kl_weight: float = Field(
        default=1e-2,
        ge=0.0,
        le=1.0,
        description="Weight of the KL term (per latent value) against reconstruction MSE: "
        "keeps latents smooth, so the decoder also maps the UNet's imperfect latents to "
        "photo colours (1e-3 gave cyan and grey blobs on data/fruits).",
    )

    @field_validator("prompt_template")
    @classmethod
    def _template_formats(cls, template: str) -> str:
        what = "prompt_template (one prompt per class: contexts are for generation)"
        template_fields(template, what, allowed=("name", "a_name"))
        return template

    @model_validator(mode="after")
    def _precision_needs_cuda(self) -> PersonalizeConfig:
        if self.device == "cpu" and self.mixed_precision in ("fp16", "bf16"):
            raise ValueError(
                f"mixed_precision {self.mixed_precision!r} needs CUDA but device is 'cpu'; "
                "use 'auto' or 'fp32'"
            )
        return self

    def prompt(self, class_name: str) -> str:
        """The training prompt of `class_name`."""
        return fill_template(self.prompt_template, class_name)


def tiny_demo_config(base: str, *, seed: int = 0) -> PersonalizeConfig:
    """The offline demo's settings: the tiny pipeline fit to 16 px photos on a CPU.

    Chosen with `bench/bench_personalize.py` on data/fruits (220 train photos), which prints
    the fit time and the class signal of the samples, scored on a validation split of the train
    photos. Generate at the same resolution (16 x 16) with the recorded prompts, 20 steps and
    guidance 1.5 (configs/demo.toml; 1 to 2 tie on validation, 3 is worse).

    Args:
        base: Directory of the tiny random pipeline (`save_tiny_pipeline`).
        seed: Training seed.

    Returns:
        The demo's config.
    """
    return PersonalizeConfig(
        base=base,
        method="tiny-pipeline",
        # 8x8 latents: colour and layout carry the fruit classes (a per-class Gaussian over 8x8
        # thumbnails already separates them), and each step costs about half a 32 px step, so
        # the UNet gets enough steps to learn them within the demo's time
        resolution=16,
        vae_steps=300,
        steps=1500,
        batch_size=16,
        learning_rate=1e-3,  # a from-scratch UNet, not an adapter: SD's 1e-4 learns too slowly
        snr_gamma=5.0,  # Min-SNR: class colour came out clearly sooner than with plain MSE
        train_text_encoder=True,  # the random encoder's class embeddings are nearly equal
        text_encoder_learning_rate=5e-3,  # so the class words pull apart early in the fit
        ema_decay=0.999,  # the average of the last steps varies less between seeds than one step
        # the whole photo, as the study's classifier sees it: 16 px centre crops of these
        # mostly wide photos cap a CNN trained on them at 0.64 on held-out train photos, 16 px
        # letterboxed ones reach 0.86 (docs/BENCHMARKS.md)
        letterbox=True,
        vae_kl_weight=1e-2,
        checkpoint_every=250,
        device="cpu",
        seed=seed,
    )
