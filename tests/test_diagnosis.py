"""Diagnosis: equal-count domain gap, the leakage audit end to end, a feature model, the cost.

Images are smooth random colour blobs tinted by class (closer to photos than pixel noise);
the classifier is a seeded, untrained StudyCNN: its features are what a checkpoint gives, and
the diagnosis never needs a good model to measure distances.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from synth import hub
from synth.config import PreprocessConfig, RecipeConfig, TrainConfig
from synth.data.preprocess import TensorSet
from synth.errors import ModelUnavailableError
from synth.evaluation.diagnosis import diagnose_study, equal_count_gap
from synth.evaluation.feature_model import check_feature_model, load_feature_model
from synth.evaluation.generation_cost import cost_per_point, generation_cost
from synth.reporting.diagnosis_section import diagnosis_markdown, diagnosis_section
from synth.storage import sha256_file
from synth.training import save_checkpoint
from synth.training.models import StudyCNN

SIZE = 16
CLASSES = ("red", "green", "blue")


def _blobs(n: int, seed: int, label: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand((n, 3, 4, 4), generator=gen) * 0.6
    coarse[:, label] += 0.4  # the class tint
    smooth = torch.nn.functional.interpolate(coarse, size=SIZE, mode="bicubic")
    return (smooth.clamp(0, 1) * 255).round().to(torch.uint8)


def _set(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.cat([_blobs(per_class, seed + c, c) for c in range(len(CLASSES))])
    labels = torch.arange(len(CLASSES)).repeat_interleave(per_class)
    return images, labels


def _save_set(path: Path, images: torch.Tensor, labels: torch.Tensor) -> TensorSet:
    payload = {
        "images": images,
        "labels": labels,
        "synthetic": torch.zeros(len(images), dtype=torch.bool),
        "keys": [f"k{i}" for i in range(len(images))],
        "config": PreprocessConfig(size=SIZE).model_dump(),
    }
    torch.save(payload, path)
    return TensorSet(str(path), len(images), sha256_file(path))


def _manifest(root: Path, times: list[datetime], device: str = "cpu") -> None:
    folder = root / "train"
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "file_name": f"red/{i:06d}.png", "label": "red", "class_dir": "red", "index": i,
            "prompt": "a red blob", "negative_prompt": "", "seed": i, "model": "tiny",
            "model_revision": "", "scheduler": "default", "steps": 2, "guidance_scale": 1.0,
            "width": SIZE, "height": SIZE, "dtype": "fp32", "device": device, "sha256": "0" * 64,
            "created": t.isoformat(timespec="seconds"),
        }
        for i, t in enumerate(times)
    ]  # fmt: skip
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Tensor sets, a real-only checkpoint, a timed manifest; synthetic 5 copies test image 4."""
    tmp = tmp_path_factory.mktemp("diagnosis")
    train, test, syn = _set(10, 0), _set(5, 100), _set(8, 200)
    noise = torch.randint(-3, 4, test[0][4].shape, generator=torch.Generator().manual_seed(1))
    syn[0][5] = (test[0][4].int() + noise).clamp(0, 255).to(torch.uint8)  # a near-copy
    syn[1][5] = test[1][4]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = StudyCNN(n_classes=3, size=SIZE)
    real = RecipeConfig(name="real", kind="real")
    ckpt = save_checkpoint(
        tmp / "real.pt", model, model_name="study-cnn", n_classes=3, size=SIZE,
        class_names=CLASSES, train_config=TrainConfig(), recipe=real, seed=0, history=(),
    )  # fmt: skip
    start = datetime(2025, 1, 1, 12, 0, 0)
    _manifest(tmp / "syn", [start + timedelta(seconds=2 * (i // 4)) for i in range(24)])
    records = [
        SimpleNamespace(recipe=r, seed=s, test_set=t, metrics=SimpleNamespace(accuracy=acc))
        for r, s, t, acc in [
            ("real", 0, "real-test", 0.80), ("real", 1, "real-test", 0.70),
            ("real-plus-1x", 0, "real-test", 0.85), ("real-plus-1x", 1, "real-test", 0.77),
            ("synthetic", 0, "real-test", 0.40), ("synthetic", 1, "real-test", 0.50),
        ]
    ]  # fmt: skip
    recipes = (
        RecipeConfig(name="real", kind="real"),
        RecipeConfig(name="real-plus-1x", kind="real-plus-synthetic"),
        RecipeConfig(name="synthetic", kind="synthetic"),
    )
    return SimpleNamespace(
        ckpt=ckpt,
        train=_save_set(tmp / "train.pt", *train),
        tests={"real-test": _save_set(tmp / "test.pt", *test)},
        syn=_save_set(tmp / "syn.pt", *syn),
        root=str(tmp / "syn"),
        records=records,
        recipes=recipes,
    )


def _gaussian(seed, n, shift=0.0, dim=4):
    return np.random.default_rng(seed).normal(size=(n, dim)) + shift


def test_equal_count_gap_is_zero_for_identical_sets_and_grows_with_a_shift():
    x, y = _gaussian(0, 30), np.zeros(30, dtype=int)
    (same,) = equal_count_gap(x, y, x, y, x, y, ["a"], draws=3)
    assert same.fd_synthetic == pytest.approx(0.0, abs=1e-9)  # all 30 of 30: the same set
    assert same.fd_yardstick == pytest.approx(0.0, abs=1e-9)
    ratios = []
    for shift in (0.0, 0.5, 1.0, 2.0):
        (gap,) = equal_count_gap(
            _gaussian(1, 60), np.zeros(60, int), _gaussian(2, 60, shift), np.zeros(60, int),
            _gaussian(3, 60), np.zeros(60, int), ["a"], seed=0,
        )  # fmt: skip
        ratios.append(gap.ratio)
    assert ratios == sorted(ratios)
    assert 0.5 < ratios[0] < 2.0 < 5.0 < ratios[-1]  # same distribution ~1; 4 dims x 2^2 far


def test_equal_count_gap_draws_the_smallest_count_and_explains_missing_classes():
    labels = np.array([0] * 40 + [1] * 1)
    gaps = equal_count_gap(
        _gaussian(0, 41), labels, _gaussian(1, 41), labels, _gaussian(2, 12), np.zeros(12, int),
        ["a", "b"],
    )  # fmt: skip
    assert (gaps[0].n, gaps[0].reason) == (12, None)
    assert gaps[1].fd_synthetic is None and "real-test 0" in gaps[1].reason
    with pytest.raises(ValueError, match="draws"):
        equal_count_gap(_gaussian(0, 4), np.zeros(4, int), *[_gaussian(0, 4), np.zeros(4, int)] * 2,
                        ["a"], draws=0)  # fmt: skip


def test_diagnose_study_flags_the_injected_copy_and_reports_gap_and_cost(study):
    diag = diagnose_study(
        study.ckpt, study.train, study.tests, study.syn, study.root, study.records, study.recipes
    )
    (check,) = diag.leakage
    assert diag.n_suspect_images == 1 == diag.suspects_in("real-test")
    assert [(p.synthetic_index, p.test_index) for p in check.suspects] == [(5, 4)]
    assert check.suspects[0].distance < 0.1 < min(check.train_distances)  # no false alarm
    assert check.n_synthetic == 24 and len(check.train_distances) == 30
    (gap,) = diag.gaps
    assert gap.space == "classifier" and gap.dim == 128
    assert [c.n for c in gap.classes] == [5, 5, 5]  # real-test has 5 per class
    assert all(c.fd_synthetic > 0 and c.fd_yardstick > 0 for c in gap.classes)
    # 24 rows in 6 batches of 4, 2 s apart: 20 images after the first second, in 10 s
    assert diag.cost.seconds_per_image == pytest.approx(0.5)
    assert (diag.cost.device, diag.cost.dtype) == ("cpu", "fp32")
    gains = {g.recipe: g for g in diag.gains}
    assert gains["real-plus-1x"].gain_points == pytest.approx(6.0)
    assert gains["real-plus-1x"].seconds_per_point == pytest.approx(12.0 / 6.0)
    assert gains["synthetic"].seconds_per_point is None  # it lost accuracy: no cost per point
    payload = json.loads(json.dumps(diag.to_dict()))
    assert payload["n_suspect_images"] == 1
    assert payload["leakage"][0]["suspects"][0]["synthetic_index"] == 5
    section = diagnosis_section(diag, study.syn, study.tests)
    assert "1 of 24 synthetic images are suspect" in " ".join(section.paragraphs)
    assert [caption for caption, _ in section.images][-1].startswith("suspect pairs")
    assert "1 of 24 synthetic images are suspect" in diagnosis_markdown(diag)


@pytest.fixture(scope="module")
def tiny_vision(tmp_path_factory) -> Path:
    """A random CLIP vision tower (2 layers, width 32, 32 px) saved like a hub model."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    directory = tmp_path_factory.mktemp("tiny-clip-vision")
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                              num_attention_heads=4, image_size=32, patch_size=8)  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        CLIPVisionModel(config).save_pretrained(directory)
    size = {"shortest_edge": 32}
    CLIPImageProcessor(size=size, crop_size={"height": 32, "width": 32}).save_pretrained(directory)
    return directory


def test_diagnose_study_measures_the_gap_in_a_feature_model_too(study, tiny_vision):
    diag = diagnose_study(
        study.ckpt, study.train, study.tests, study.syn, study.root, study.records,
        study.recipes, feature_model=str(tiny_vision), device="cpu",
    )  # fmt: skip
    classifier, clip = diag.gaps
    assert (clip.space, clip.dim) == (str(tiny_vision), 32)
    assert "clip_vision_model" in clip.description
    assert all(np.isfinite(c.fd_synthetic) and c.kid_synthetic is not None for c in clip.classes)
    assert classifier.classes != clip.classes


def test_load_feature_model_fails_fast_for_an_unreachable_hub_id(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(ModelUnavailableError, match=r"'nobody/no-dino'.*cannot be reached.*None"):
        load_feature_model("nobody/no-dino", device="cpu")
    with pytest.raises(ModelUnavailableError, match="'nobody/no-dino'"):
        check_feature_model("nobody/no-dino")  # what a run checks before its first step
    check_feature_model(None)
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_feature_model("./no-such-folder", device="cpu")


def test_generation_cost_leaves_pauses_between_runs_out(tmp_path):
    t0 = datetime(2025, 1, 1, 8, 0, 0)
    first = [t0 + timedelta(seconds=10 * (i // 2)) for i in range(6)]  # 3 batches of 2: 20 s
    later = t0 + timedelta(hours=5)  # a resume: the 5 hours are not generation time
    second = [later, later, later + timedelta(seconds=6), later + timedelta(seconds=6)]
    _manifest(tmp_path, first + second, device="cuda")
    cost = generation_cost(tmp_path)
    # 4 images timed in 20 s, then 2 in 6 s: 26 s for 6 images
    assert cost.seconds_per_image == pytest.approx(26 / 6)
    assert cost.seconds == pytest.approx(10 * 26 / 6) and cost.device == "cuda"
    assert "created" in cost.source and "1 s resolution" in cost.source
    (tmp_path / "dataset.json").write_text(json.dumps({"generation_seconds": 50.0}))
    recorded = generation_cost(tmp_path)
    assert (recorded.seconds_per_image, recorded.source) == (5.0, "dataset.json generation_seconds")


def test_generation_cost_too_fast_to_time_is_none_and_costs_no_point(tmp_path):
    _manifest(tmp_path, [datetime(2025, 1, 1)] * 5)
    cost = generation_cost(tmp_path)
    assert cost.seconds is None and cost.images == 5
    accuracy = {("real", 0, "t"): 0.5, ("mix", 0, "t"): 0.6, ("mix", 1, "t"): 0.9}
    (gain,) = cost_per_point(cost, accuracy, ["mix"], "real")
    assert (gain.seeds, gain.gain_points, gain.seconds_per_point) == (1, pytest.approx(10.0), None)


def test_diagnose_task_keys_on_its_code_and_the_feature_model_weights(tiny_vision, tmp_path):
    import shutil

    from tasks.diagnose import diagnose

    kinds = {type(p).__name__: p for p in diagnose.cache_policy.policies}
    assert {"Inputs", "TaskSource", "SynthCode", "FeatureModelKey"} <= set(kinds)
    assert kinds["SynthCode"].module == "synth.evaluation.diagnosis"
    folder = shutil.copytree(tiny_vision, tmp_path / "model")
    key = kinds["FeatureModelKey"]
    before = key.compute_key(None, {"feature_model": str(folder)}, {})
    (folder / "config.json").write_text((folder / "config.json").read_text() + "\n")
    assert key.compute_key(None, {"feature_model": str(folder)}, {}) != before  # new weights
    assert key.compute_key(None, {"feature_model": "org/model"}, {}) == "org/model"


def test_feature_model_loads_a_dinov2_folder_with_automodel(tmp_path):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    from synth.evaluation.feature_model import model_features

    config = Dinov2Config(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                          num_attention_heads=4, image_size=32, patch_size=8)  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        Dinov2Model(config).save_pretrained(tmp_path)
    size = {"shortest_edge": 32}
    BitImageProcessor(size=size, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    loaded = load_feature_model(str(tmp_path), device="cpu")
    assert loaded.kind == "dinov2" and loaded.identity.startswith("local-sha256:")
    images = _blobs(5, seed=0, label=1)
    feats = model_features(loaded, images, batch_size=2)
    assert feats.shape == (5, 32) and np.isfinite(feats).all()
    np.testing.assert_allclose(model_features(loaded, images), feats, atol=1e-5)
