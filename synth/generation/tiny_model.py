"""Random-weight Stable Diffusion pipelines built offline, saved like any diffusers model.

`build_tiny_pipeline` makes a ~2M-parameter SD pipeline that runs 10+ images/s on a CPU: the real
diffusers classes and code path with no download. Its images carry no class signal.
`build_sd15_random_pipeline` has SD 1.5's exact architecture (860M-param UNet, ViT-L/14 text
encoder, SD VAE) with random weights, to measure GPU throughput without the hub.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # diffusers and transformers load on first use: importing synth stays fast
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

__all__ = [
    "build_sd15_random_pipeline",
    "build_tiny_pipeline",
    "generator_note",
    "is_tiny_model",
    "save_tiny_pipeline",
]

_MARKER = "TINY_RANDOM_WEIGHTS"


def _byte_unicode() -> list[str]:
    """GPT-2's byte-to-unicode table: the 256 symbols a byte-level BPE vocab starts from."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _write_tokenizer(directory: Path) -> CLIPTokenizer:
    """A CLIP tokenizer with a byte-level vocab and no merges (every character is a token)."""
    from transformers import CLIPTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    symbols = _byte_unicode()
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    # from_pretrained reads vocab.json/merges.txt the same way in transformers 4 and 5
    return CLIPTokenizer.from_pretrained(directory, model_max_length=77)


def _text_encoder(vocab_size: int, hidden: int, layers: int, heads: int, ffn: int, proj: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=ffn,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        projection_dim=proj,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        hidden_act="quick_gelu",
    )
    return CLIPTextModel(config)


def build_tiny_pipeline(workdir: Path, seed: int = 0) -> StableDiffusionPipeline:
    """A tiny random SD pipeline (UNet ~1.4M params); `workdir` holds its tokenizer files."""
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(seed)  # the only way to seed diffusers/transformers weight init
    tokenizer = _write_tokenizer(Path(workdir) / "_tokenizer")
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=32,
    )
    text_encoder = _text_encoder(len(tokenizer), hidden=32, layers=2, heads=4, ffn=37, proj=32)
    scheduler = PNDMScheduler(skip_prk_steps=True, steps_offset=1)
    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_pipeline(path: Path, seed: int = 0) -> Path:
    """Build the tiny pipeline and `save_pretrained` it to `path` (a loadable model directory)."""
    path = Path(path)
    pipe = build_tiny_pipeline(path, seed=seed)
    pipe.save_pretrained(path)
    # Reports read this marker to say plainly that these images carry no class signal.
    (path / _MARKER).write_text("random weights: images carry no class signal\n")
    return path


def is_tiny_model(model: str) -> bool:
    """True for a directory saved by `save_tiny_pipeline` (its images carry no class signal)."""
    return (Path(model).expanduser() / _MARKER).is_file()


def generator_note(model: str) -> str | None:
    """What a report should say first about the offline generators' images, else None.

    The tiny random pipeline makes noise; a tiny pipeline `personalize` fitted to photos makes
    16 px images with their colour and rough shape. Neither is a real study's generator.
    """
    from synth.generation.personalize_record import read_personalize_record

    if is_tiny_model(model):
        return (
            "The synthetic images come from a tiny random-weight pipeline (offline demo): they "
            "carry no class signal, so synthetic-only results are at chance level by "
            "construction. Point `generation.model` at Stable Diffusion 1.5 for a real study."
        )
    record = read_personalize_record(Path(model).expanduser())
    if record is None or record.get("kind") != "tiny-pipeline":
        return None
    return (
        f"The synthetic images come from a tiny generator (~2M parameters) fitted on a CPU to "
        f"the {record['n_images']} train photos of the real data, at {record['resolution']} px "
        "(`datasynth personalize`, offline demo): they carry the classes' colour and rough "
        "shape, not Stable Diffusion quality. Point `generation.model` at Stable Diffusion 1.5 "
        "for a real study."
    )


def build_sd15_random_pipeline(workdir: Path, seed: int = 0) -> StableDiffusionPipeline:
    """SD 1.5's architecture with random weights (same configs as the released model)."""
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(seed)
    tokenizer = _write_tokenizer(Path(workdir) / "_tokenizer")
    unet = UNet2DConditionModel(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
        down_block_types=(
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        up_block_types=(
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
    )
    text_encoder = _text_encoder(
        len(tokenizer), hidden=768, layers=12, heads=12, ffn=3072, proj=768
    )
    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=PNDMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            skip_prk_steps=True,
            steps_offset=1,
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
