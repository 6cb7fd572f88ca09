"""personalize: fits on the train split only, resumes exactly, reuses finished output, LoRA I/O.

Everything runs on the tiny random pipeline at 16 px with a handful of steps on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synth.data.real_import import import_real_dataset, load_rgb
from synth.generation.lora import LORA_WEIGHTS, load_lora
from synth.generation.personalize import (
    MANIFEST,
    PersonalizeInputError,
    output_digest,
    personalize,
    read_personalize_record,
    sample_grid_images,
    split_digest,
    verified_digest,
)
from synth.generation.personalize_config import PersonalizeConfig, tiny_demo_config
from synth.generation.tiny_model import save_tiny_pipeline

REPO = Path(__file__).resolve().parents[1]
COLOURS = {"red": (200, 30, 30), "blue": (30, 30, 200)}


class Interrupt(Exception):
    """Stands in for kill -9 at a chosen step."""


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> str:
    return str(save_tiny_pipeline(tmp_path_factory.mktemp("tiny") / "tiny-sd"))


def _write_photos(root: Path, per_split: dict[str, int]) -> None:
    for c, rgb in COLOURS.items():
        for split, n in per_split.items():
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                shade = tuple(max(0, v - 20 * i - (60 if split == "test" else 0)) for v in rgb)
                Image.new("RGB", (20, 24), shade).save(folder / f"{split}{i}.png")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    _write_photos(root, {"train": 3, "test": 1})
    return import_real_dataset(root)


def _config(base: str, **overrides) -> PersonalizeConfig:
    settings = dict(
        base=base,
        steps=4,
        vae_steps=3,
        batch_size=2,
        resolution=16,
        learning_rate=1e-3,
        checkpoint_every=2,
        device="cpu",
        seed=3,
    )
    return PersonalizeConfig(**{**settings, **overrides})


def _stop_at(step: int):
    def progress(done: int, total: int) -> None:
        if done == step:
            raise Interrupt(step)

    return progress


def test_personalize_reads_only_train_photos_and_records_both_digests(
    base, real, tmp_path, monkeypatch
):
    import synth.generation.personalize_train as train_module

    read = []
    original = train_module.load_rgb
    monkeypatch.setattr(train_module, "load_rgb", lambda p: read.append(p) or original(p))
    result = personalize(_config(base), real, tmp_path / "out")

    test_paths = {e.path for e in real.split("test")}
    assert read and not test_paths & set(read)
    assert set(read) == {e.path for e in real.split("train")}
    assert result.train_digest == split_digest(real.split("train"))
    assert result.test_digest == split_digest(real.split("test"))
    assert result.kind == "tiny-pipeline" and result.n_images == 6
    record = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert record["train_digest"] == result.train_digest
    assert record["test_digest"] == result.test_digest
    assert record["digest"] == output_digest(tmp_path / "out", record["files"]) == result.digest
    assert "model_index.json" in record["files"]


def test_personalize_rejects_a_test_photo_inside_the_train_split(base, tmp_path):
    root = tmp_path / "photos"
    _write_photos(root, {"train": 2, "test": 1})
    (root / "train" / "red" / "copy.png").write_bytes(
        (root / "test" / "red" / "test0.png").read_bytes()
    )
    with pytest.raises(PersonalizeInputError, match="test images are also train images"):
        personalize(_config(base), import_real_dataset(root), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_personalize_rejects_missing_train_photos_and_missing_base(base, real, tmp_path):
    no_red = dataclasses.replace(
        real, entries=tuple(e for e in real.entries if e.split == "test" or e.label != "red")
    )
    with pytest.raises(PersonalizeInputError, match=r"classes \['red'\] have no train images"):
        personalize(_config(base), no_red, tmp_path / "a")
    only_test = dataclasses.replace(real, entries=real.split("test"))
    with pytest.raises(PersonalizeInputError, match="has no train images"):
        personalize(_config(base), only_test, tmp_path / "b")
    with pytest.raises(PersonalizeInputError, match="not a diffusers model directory"):
        personalize(_config(str(tmp_path / "nowhere")), real, tmp_path / "c")
    with pytest.raises(PersonalizeInputError, match="is the base model's directory"):
        personalize(_config(base), real, base)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "model_index.json").write_text("{}")
    with pytest.raises(PersonalizeInputError, match="holds a model personalize did not write"):
        personalize(_config(base), real, tmp_path / "d")


def test_personalize_config_checks_fields():
    with pytest.raises(ValueError, match="multiple of 8"):
        PersonalizeConfig(resolution=20)
    with pytest.raises(ValueError, match="needs CUDA"):
        PersonalizeConfig(device="cpu", mixed_precision="fp16")
    with pytest.raises(ValueError, match="may only use the field"):
        PersonalizeConfig(prompt_template="a {kind}")
    with pytest.raises(ValueError, match="contexts are for generation"):
        PersonalizeConfig(prompt_template="{a_name} in {context}")
    with pytest.raises(ValueError, match="expected a number or text"):
        PersonalizeConfig(steps=True)
    article = PersonalizeConfig(prompt_template="a photo of {a_name}")
    assert article.prompt("orange") == "a photo of an orange"
    with pytest.raises(ValueError, match="Extra inputs"):
        PersonalizeConfig(epochs=3)
    assert tiny_demo_config("x").resolution == 16


# the demo's extras: the EMA's state and the text encoder's own learning rate resume too
DEMO_EXTRAS = {
    "ema_decay": 0.9, "letterbox": True, "train_text_encoder": True,
    "text_encoder_learning_rate": 1e-2,
}  # fmt: skip


@pytest.mark.parametrize("extras", [{}, DEMO_EXTRAS], ids=["plain", "ema-letterbox-text"])
def test_personalize_resumes_after_interruptions_to_the_same_weights(base, real, tmp_path, extras):
    config = _config(base, **extras)  # 3 VAE steps + 4 UNet steps, checkpoints at 2, 4, 6, 7
    straight = personalize(config, real, tmp_path / "straight")

    out = tmp_path / "killed"
    with pytest.raises(Interrupt):  # in the VAE phase: resumes from step 2 with its optimiser
        personalize(config, real, out, progress=_stop_at(3))
    assert read_personalize_record(out) is None
    assert not (out / "model_index.json").exists()  # nothing that looks like a finished model
    with pytest.raises(Interrupt):  # in the UNet phase: resumes from step 4
        personalize(config, real, out, progress=_stop_at(5))
    seen = []
    resumed = personalize(config, real, out, progress=lambda s, n: seen.append(s))

    assert seen == [5, 6, 7]
    assert resumed.losses == straight.losses and resumed.vae_losses == straight.vae_losses
    assert resumed.digest == straight.digest  # byte-identical weights
    assert not (out / ".checkpoints").exists()


def test_ema_saves_averaged_weights_and_letterbox_keeps_the_whole_photo(base, real, tmp_path):
    from synth.generation.personalize_train import load_pixels

    last = personalize(_config(base), real, tmp_path / "last")
    averaged = personalize(_config(base, ema_decay=0.9), real, tmp_path / "ema")
    assert averaged.losses == last.losses  # the same training run ...
    assert averaged.digest != last.digest  # ... saved as its average, not its last step
    with pytest.raises(PersonalizeInputError, match="ema_decay"):
        personalize(_config(base, method="lora", ema_decay=0.9), real, tmp_path / "lora")

    photo = real.split("train")[0].path  # 20 x 24: portrait
    cropped = load_pixels([photo], 16, flip=False)
    boxed = load_pixels([photo], 16, flip=False, letterbox=True)
    assert (boxed[..., :, 0] == -1).all() and (boxed[..., :, -1] == -1).all()  # black bars
    assert (cropped[..., :, 0] > -1).any()  # the crop fills the square


def test_lora_fit_resumes_to_the_same_adapter(base, real, tmp_path):
    config = _config(base, method="lora", steps=5, checkpoint_every=2)
    straight = personalize(config, real, tmp_path / "straight")
    with pytest.raises(Interrupt):
        personalize(config, real, tmp_path / "killed", progress=_stop_at(3))
    resumed = personalize(config, real, tmp_path / "killed")
    assert resumed.losses == straight.losses
    assert resumed.digest == straight.digest


def test_personalize_returns_a_finished_output_without_training(base, real, tmp_path):
    config = _config(base, steps=2, vae_steps=1)
    first = personalize(config, real, tmp_path / "out")

    def fail(step: int, total: int) -> None:
        raise AssertionError("trained again")

    (tmp_path / "out" / "samples").mkdir()  # what a flow may add beside the output
    (tmp_path / "out" / "samples" / "0.png").write_bytes(b"png")
    again = personalize(config, real, tmp_path / "out", progress=fail)
    assert again.reused and not first.reused
    assert (again.digest, again.losses) == (first.digest, first.losses)
    assert verified_digest(tmp_path / "out") == first.digest

    (tmp_path / "out" / "unet" / "config.json").write_text("{}")
    with pytest.raises(PersonalizeInputError, match="changed after personalize wrote them"):
        personalize(config, real, tmp_path / "out")


def test_tiny_pipeline_output_loads_with_auto_pipeline_and_samples(base, real, tmp_path):
    from diffusers import AutoPipelineForText2Image

    out = tmp_path / "out"
    personalize(_config(base, steps=2, vae_steps=2), real, out)
    pipe = AutoPipelineForText2Image.from_pretrained(out)
    assert pipe.vae.config.scaling_factor != pytest.approx(0.18215)  # refit to the photos

    grid = sample_grid_images(out, ["red", "blue"], 2, seed=1, steps=2)
    again = sample_grid_images(out, ["red", "blue"], 2, seed=1, steps=2)
    assert list(grid) == ["red", "blue"] and all(len(v) == 2 for v in grid.values())
    assert grid["red"][0].size == (16, 16)
    assert np.array_equal(np.asarray(grid["blue"][1]), np.asarray(again["blue"][1]))


def _image(pipe) -> np.ndarray:
    generator = torch.Generator("cpu").manual_seed(0)
    return pipe(
        "a photo of a red", num_inference_steps=2, height=16, width=16,
        generator=generator, output_type="np",
    ).images[0]  # fmt: skip


def test_lora_on_the_tiny_unet_saves_loads_changes_output_and_scale_0_is_base(base, real, tmp_path):
    from diffusers import AutoPipelineForText2Image

    config = _config(base, method="lora", steps=3, learning_rate=1e-2, lora_rank=2, lora_alpha=4.0)
    result = personalize(config, real, tmp_path / "lora")
    assert result.kind == "lora" and (tmp_path / "lora" / LORA_WEIGHTS).is_file()
    assert not (tmp_path / "lora" / "model_index.json").exists()  # an adapter, not a pipeline

    pipe = AutoPipelineForText2Image.from_pretrained(base)
    pipe.set_progress_bar_config(disable=True)
    plain = _image(pipe)
    load_lora(pipe, tmp_path / "lora", scale=1.0)
    lora_config = pipe.unet.peft_config["datasynth"]
    assert (lora_config.r, lora_config.lora_alpha) == (2, 4.0)  # alpha / r survives the file
    assert np.abs(_image(pipe) - plain).max() > 1e-4
    load_lora(pipe, tmp_path / "lora", scale=0.0)  # reloading replaces the adapter
    assert np.array_equal(_image(pipe), plain)


def _colour_order(mean: dict[str, np.ndarray]) -> tuple[str, str]:
    """(the class with the highest G/R: the yellowest, the class with the highest R - B)."""
    yellowest = max(mean, key=lambda c: mean[c][1] / mean[c][0])
    most_orange = max(mean, key=lambda c: mean[c][0] - mean[c][2])
    return yellowest, most_orange


@pytest.mark.heavy
def test_fitted_tiny_generator_carries_fruit_colour(tmp_path):
    real = import_real_dataset(REPO / "data" / "fruits", classes=["apple", "banana", "orange"])
    base = save_tiny_pipeline(tmp_path / "tiny")
    out = tmp_path / "fit"
    personalize(tiny_demo_config(str(base)), real, out)
    grid = sample_grid_images(out, real.classes, 32, seed=0, steps=20, guidance_scale=3.0)

    def mean_rgb(images) -> np.ndarray:
        arrays = [np.asarray(im.convert("RGB").resize((16, 16)), float) for im in images]
        return np.mean(arrays, axis=(0, 1, 2))

    photos = {
        c: [load_rgb(e.path) for e in real.split("train") if e.label == c] for c in real.classes
    }
    real_mean = {c: mean_rgb(images) for c, images in photos.items()}
    fake_mean = {c: mean_rgb(images) for c, images in grid.items()}
    # the photos' own order: bananas are the yellowest, oranges the most orange; the samples
    # must keep it (apples, red and green, average to no single hue)
    assert _colour_order(real_mean) == ("banana", "orange")
    assert _colour_order(fake_mean) == ("banana", "orange"), fake_mean
