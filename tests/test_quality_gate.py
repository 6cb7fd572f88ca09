"""The quality gate: classifier confidence, CLIP score and near-duplicates, recorded and read back.

A tiny StudyCNN learns red vs blue squares on 16 px images in about a second; the synthetic
"generated" images are red or blue squares on smooth random gray backgrounds (the backgrounds make
distinct images' perceptual hashes differ, as real photos' do).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from synth.config import PreprocessConfig, TrainConfig
from synth.data.clip_score import clip_scores, load_clip
from synth.data.image_hash import hamming_distance, near_duplicates, perceptual_hash
from synth.data.preprocess import PreprocessItem, build_tensor_set, letterbox, load_tensor_set
from synth.data.quality_config import QualityConfig
from synth.data.quality_gate import (
    ImageScores,
    UnscoredImageError,
    _training_view,
    classifier_scores,
    decide,
    kept_rows,
    quality_path,
    read_quality,
    run_quality_gate,
)
from synth.errors import ModelUnavailableError
from synth.evaluation import predict_proba
from synth.generation.manifest import ManifestRow
from synth.storage import TEMP_MARKER, atomic_write_bytes, encode_png, sha256_file
from synth.training import save_checkpoint, train_classifier

RED, BLUE = (230, 20, 20), (20, 20, 230)
CLASSES = ("red", "blue")
SIZE = 16
PRE = PreprocessConfig(size=SIZE)
NO_DEDUPE = QualityConfig(dedupe_threshold=None, device="cpu")


def _square(colour: tuple[int, int, int], seed: int, side: int = 32) -> Image.Image:
    """A coloured square at a random place on a smooth random gray background."""
    rng = np.random.default_rng(seed)
    low = rng.integers(40, 216, size=(4, 4), dtype=np.uint8)
    image = Image.fromarray(low, "L").resize((side, side), Image.Resampling.BILINEAR)
    image = image.convert("RGB")
    s = int(rng.integers(12, 18))
    x, y = (int(v) for v in rng.integers(0, side - s, size=2))
    ImageDraw.Draw(image).rectangle([x, y, x + s - 1, y + s - 1], fill=colour)
    return image


def _noised(image: Image.Image, seed: int, amplitude: int = 3) -> Image.Image:
    pixels = np.asarray(image, dtype=np.int16)
    noise = np.random.default_rng(seed).integers(-amplitude, amplitude + 1, size=pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")


def _tensor(image: Image.Image) -> torch.Tensor:
    view = letterbox(image, SIZE, "black")
    return torch.from_numpy(np.asarray(view).copy()).permute(2, 0, 1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real-only StudyCNN that is confident on red vs blue squares."""
    colours = [RED, BLUE] * 24
    images = torch.stack([_tensor(_square(c, 1000 + i)) for i, c in enumerate(colours)])
    labels = torch.tensor([i % 2 for i in range(len(colours))])
    config = TrainConfig(epochs=6, batch_size=16, learning_rate=3e-3, device="cpu")
    trained = train_classifier(images, labels, config=config, n_classes=2, seed=0)
    path = tmp_path_factory.mktemp("classifier") / "real.pt"
    save_checkpoint(
        path,
        trained.model,
        model_name="study-cnn",
        n_classes=2,
        size=SIZE,
        class_names=CLASSES,
        train_config=config,
        recipe=None,
        seed=0,
        history=trained.history,
    )
    return path


def _write(root: Path, label: str, index: int, image: Image.Image) -> ManifestRow:
    """Save one 'generated' image and return its manifest row."""
    folder = root / "train" / label
    folder.mkdir(parents=True, exist_ok=True)
    sha = atomic_write_bytes(folder / f"{index:06d}.png", encode_png(image))
    return ManifestRow(
        file_name=f"{label}/{index:06d}.png",
        label=label,
        class_dir=label,
        index=index,
        prompt=f"a {label} square",
        negative_prompt="",
        seed=index,
        model="test",
        model_revision="",
        scheduler="default",
        steps=1,
        guidance_scale=1.0,
        width=image.width,
        height=image.height,
        dtype="fp32",
        device="cpu",
        sha256=sha,
        created="2025-01-01T00:00:00+00:00",
    )


@pytest.fixture
def dataset(tmp_path) -> tuple[Path, list[ManifestRow]]:
    """4 red labelled red, 4 blue labelled blue, 3 red squares wrongly labelled blue."""
    root = tmp_path / "synthetic"
    rows = [_write(root, "red", i, _square(RED, i)) for i in range(4)]
    rows += [_write(root, "blue", i, _square(BLUE, 100 + i)) for i in range(4)]
    rows += [_write(root, "blue", 10 + i, _square(RED, 200 + i)) for i in range(3)]
    return root, rows


WRONG = {"blue/000010.png", "blue/000011.png", "blue/000012.png"}


def test_run_quality_gate_keeps_own_label_and_drops_wrong_label(dataset, checkpoint):
    root, rows = dataset
    report = run_quality_gate(
        root, rows, checkpoint, QualityConfig(device="cpu"), preprocess_config=PRE
    )
    assert set(report.dropped) == WRONG
    assert set(report.kept) == {r.file_name for r in rows} - WRONG
    assert report.kept_per_class == {"red": 4, "blue": 4}
    assert report.dropped_per_class == {"red": 0, "blue": 3}
    assert report.reason_counts == {
        "low_confidence": 3,
        "not_top_fraction": 0,
        "low_clip_score": 0,
        "near_duplicate": 0,
    }
    decisions = read_quality(root)
    for name in WRONG:
        (reason,) = decisions[name].reasons
        assert reason.startswith("low_confidence: ") and "< min_confidence 0.5" in reason
    assert all(decisions[n].confidence >= 0.5 for n in report.kept)


def test_run_quality_gate_writes_atomically_and_reads_back(dataset, checkpoint):
    root, rows = dataset
    report = run_quality_gate(root, rows, checkpoint, NO_DEDUPE, preprocess_config=PRE)
    path = quality_path(root)
    assert path == root / "train" / "quality.jsonl" and report.path == str(path)
    assert report.digest == sha256_file(path)
    assert not list((root / "train").glob(f".*{TEMP_MARKER}*"))
    lines = path.read_text().splitlines()
    assert [json.loads(line)["file_name"] for line in lines] == sorted(r.file_name for r in rows)
    first = json.loads(lines[0])
    assert set(first) == {
        "file_name", "label", "sha256", "confidence", "clip_score", "phash",
        "duplicate_of", "kept", "reasons", "gate_key",
    }  # fmt: skip
    assert first["gate_key"] == report.gate_key and first["clip_score"] is None
    decisions = read_quality(root)
    assert {n: d.sha256 for n, d in decisions.items()} == {r.file_name: r.sha256 for r in rows}
    # deterministic: a second run writes the same bytes
    again = run_quality_gate(root, rows, checkpoint, NO_DEDUPE, preprocess_config=PRE)
    assert again.digest == report.digest


def test_kept_rows_filters_and_rejects_changed_or_unscored_images(dataset, checkpoint):
    root, rows = dataset
    report = run_quality_gate(root, rows, checkpoint, NO_DEDUPE, preprocess_config=PRE)
    quality = read_quality(root)
    kept = kept_rows(rows, quality, gate_key=report.gate_key)
    assert [r.file_name for r in kept] == [r.file_name for r in rows if r.file_name not in WRONG]
    with pytest.raises(UnscoredImageError, match="rerun the quality gate"):
        kept_rows(rows, quality, gate_key="another-gate")
    # the image is regenerated: new bytes, new manifest row, stale score
    changed = _write(root, "red", 0, _square(RED, 999))
    with pytest.raises(UnscoredImageError, match=r"1 of 11 .*red/000000.png"):
        kept_rows([changed, *rows[1:]], quality)
    # the file changed under a stale row: the gate refuses to score it
    with pytest.raises(ValueError, match="verify the dataset"):
        run_quality_gate(root, rows, checkpoint, NO_DEDUPE, preprocess_config=PRE)
    assert kept_rows([], {}) == []


def test_run_quality_gate_disabled_keeps_all_but_records_reasons(dataset, checkpoint):
    root, rows = dataset
    config = QualityConfig(enabled=False, device="cpu")
    report = run_quality_gate(root, rows, checkpoint, config, preprocess_config=PRE)
    assert report.dropped == () and len(report.kept) == len(rows)
    assert report.reason_counts["low_confidence"] == 3
    assert all(read_quality(root)[n].reasons for n in WRONG)


def test_run_quality_gate_flags_duplicate_files_keeping_first_by_name(tmp_path, checkpoint):
    root = tmp_path / "synthetic"
    image = _square(RED, 7)
    rows = [
        _write(root, "red", 0, _square(RED, 8)),
        _write(root, "red", 1, image),
        _write(root, "red", 2, _noised(image, 0)),
        _write(root, "red", 3, image),
    ]
    report = run_quality_gate(
        root, rows[::-1], checkpoint, QualityConfig(device="cpu"), preprocess_config=PRE
    )
    decisions = read_quality(root)
    assert set(report.dropped) == {"red/000002.png", "red/000003.png"}
    assert decisions["red/000002.png"].duplicate_of == "red/000001.png"
    assert decisions["red/000003.png"].reasons[0].startswith("near_duplicate: of red/000001.png")
    assert decisions["red/000001.png"].duplicate_of is None


def test_run_quality_gate_checks_inputs_before_scoring(dataset, checkpoint):
    root, rows = dataset
    with pytest.raises(ValueError, match="trained on 16 px"):
        run_quality_gate(root, rows, checkpoint, NO_DEDUPE, preprocess_config=PreprocessConfig())
    green = _write(root, "green", 0, _square((20, 230, 20), 3))
    with pytest.raises(ValueError, match=r"labels \['green'\] that the classifier does not know"):
        run_quality_gate(root, [*rows, green], checkpoint, NO_DEDUPE, preprocess_config=PRE)
    with pytest.raises(ValueError, match="more than once"):
        run_quality_gate(root, [rows[0], rows[0]], checkpoint, NO_DEDUPE, preprocess_config=PRE)
    assert not quality_path(root).exists()


def test_training_view_matches_build_tensor_set_pixel_for_pixel(dataset, tmp_path):
    root, rows = dataset
    config = PreprocessConfig(size=SIZE, synthetic_margin=(0.05, 0.3), padding="noise", seed=3)
    items = [
        PreprocessItem(str(root / "train" / r.file_name), 0, r.sha256, synthetic=True)
        for r in rows[:4]
    ]
    built = load_tensor_set(build_tensor_set(items, tmp_path / "t.pt", config).path)
    for item, expected in zip(items, built.images, strict=True):
        view = _training_view(Image.open(item.path).convert("RGB"), item.key, config)
        assert torch.equal(view, expected)


def test_classifier_scores_is_own_label_probability(checkpoint):
    from synth.training import load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    images = torch.stack([_tensor(_square(RED, 1)), _tensor(_square(BLUE, 2))])
    scores = classifier_scores(model, images, [0, 0])
    proba = predict_proba(model, images)
    np.testing.assert_array_equal(scores, proba[:, 0])
    assert scores[0] > 0.9 and scores[1] < 0.1
    with pytest.raises(ValueError, match=r"`labels` must be in \[0, 2\)"):
        classifier_scores(model, images, [0, 2])
    with pytest.raises(ValueError, match="one class index per image"):
        classifier_scores(model, images, [0])


def _scores(label: str, confidences: list[float], phash_seed: int = 0) -> list[ImageScores]:
    hashes = np.random.default_rng(phash_seed).integers(0, 2**63, size=len(confidences))
    return [
        ImageScores(f"{label}/{i:06d}.png", label, "0" * 64, c, None, int(h))
        for i, (c, h) in enumerate(zip(confidences, hashes, strict=True))
    ]


@pytest.mark.parametrize(
    ("q", "n", "expected"), [(0.3, 10, 3), (0.3, 7, 3), (0.3, 3, 1), (1.0, 4, 4)]
)
def test_decide_top_fraction_keeps_ceil_q_n_per_class(q, n, expected):
    rng = np.random.default_rng(n)
    scores = _scores("a", list(rng.random(n))) + _scores("b", [0.01] * n, phash_seed=1)
    decisions = decide(scores, QualityConfig(top_fraction=q, dedupe_threshold=None))
    for label in ("a", "b"):
        kept = [d for d in decisions if d.label == label and d.kept]
        assert len(kept) == expected
    best = sorted((d for d in decisions if d.label == "a"), key=lambda d: -d.confidence)
    assert {d.file_name for d in best[:expected]} == {
        d.file_name for d in decisions if d.label == "a" and d.kept
    }
    # ties (class b is all 0.01) keep the first by file name
    assert [d.file_name for d in decisions if d.label == "b" and d.kept] == [
        f"b/{i:06d}.png" for i in range(expected)
    ]
    dropped = [d for d in decisions if not d.kept]
    assert len(dropped) == 2 * (n - expected)
    assert all(d.reasons[0].startswith("not_top_fraction: ") for d in dropped)


def test_decide_clip_score_below_threshold_is_dropped_and_none_skips():
    scores = _scores("a", [0.9, 0.9, 0.9])
    scores = [
        ImageScores(s.file_name, s.label, s.sha256, s.confidence, clip, s.phash)
        for s, clip in zip(scores, [0.1, 0.3, None], strict=True)
    ]
    decisions = decide(scores, QualityConfig(min_clip_score=0.2))
    assert [d.kept for d in decisions] == [False, True, True]
    assert decisions[0].reasons == ("low_clip_score: 0.1000 < min_clip_score 0.2",)
    with pytest.raises(ValueError, match="more than once"):
        decide(scores + scores[:1], QualityConfig())


def test_perceptual_hash_flags_copies_and_noised_copies_not_distinct_images():
    image = _square(RED, 7)
    distinct = [_square(RED, 20 + i) for i in range(6)] + [_square(BLUE, 40 + i) for i in range(6)]
    noised = _noised(image, seed=1)
    h = perceptual_hash(image)
    assert 0 <= h < 2**64 and perceptual_hash(image.copy()) == h
    assert hamming_distance(h, perceptual_hash(noised)) <= 4
    hashes = [h, *map(perceptual_hash, distinct)]
    assert min(hamming_distance(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]) > 4
    assert near_duplicates([*hashes, h, perceptual_hash(noised)]) == {len(hashes), len(hashes) + 1}
    assert near_duplicates(hashes) == set()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_confidence": 1.5}, "less than or equal to 1"),
        ({"top_fraction": 0.0}, "greater than 0"),
        ({"dedupe_threshold": True}, "valid integer"),
        ({"min_clip_score": -2.0}, "greater than or equal to -1"),
        ({"clip_model": " "}, "blank"),
        ({"unknown": 1}, "Extra inputs are not permitted"),
    ],
)
def test_quality_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QualityConfig(**kwargs)


def _write_tokenizer(directory: Path):
    """A byte-level CLIP tokenizer, no merges, built offline (as synth.generation.tiny_model)."""
    from transformers import CLIPTokenizer

    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    symbols, extra = [], 0
    for b in range(256):
        symbols.append(chr(b) if b in printable else chr(256 + (extra := extra + 1) - 1))
    vocab = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    (directory / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer.from_pretrained(directory, model_max_length=77)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    """A random CLIP (2 layers, width 32, 32 px images) saved like any hub model."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    directory = tmp_path_factory.mktemp("tiny-clip")
    tokenizer = _write_tokenizer(directory)
    v = len(tokenizer)
    layers = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2}
    config = CLIPConfig(
        text_config={**layers, "num_attention_heads": 4, "vocab_size": v, "bos_token_id": v - 2,
                     "eos_token_id": v - 1, "pad_token_id": v - 1, "max_position_embeddings": 77},
        vision_config={**layers, "num_attention_heads": 4, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        CLIPModel(config).save_pretrained(directory)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def test_clip_scores_with_tiny_clip_are_finite_bounded_and_deterministic(tiny_clip):
    images = [_square(RED, 1), _square(BLUE, 2), _square(RED, 3).resize((48, 40))]
    prompts = ["a red square", "a blue square", "a very long prompt " * 20]
    first = clip_scores(str(tiny_clip), images, prompts, device="cpu")
    assert first.shape == (3,) and first.dtype == np.float64
    assert np.isfinite(first).all() and (np.abs(first) <= 1.0).all()
    clip = load_clip(str(tiny_clip), device="cpu")
    np.testing.assert_array_equal(clip_scores(clip, images, prompts), first)
    # other batches pad prompts to other lengths: equal up to float32 rounding
    np.testing.assert_allclose(clip_scores(clip, images, prompts, batch_size=2), first, atol=1e-6)
    assert clip.identity.startswith("local-sha256:")
    with pytest.raises(ValueError, match="2 `images` but 1 `prompts`"):
        clip_scores(clip, images[:2], prompts[:1])


def test_run_quality_gate_records_clip_scores(dataset, checkpoint, tiny_clip):
    root, rows = dataset
    config = QualityConfig(clip_model=str(tiny_clip), min_clip_score=-1.0, device="cpu")
    report = run_quality_gate(root, rows, checkpoint, config, preprocess_config=PRE)
    scores = [d.clip_score for d in read_quality(root).values()]
    assert all(s is not None and -1.0 <= s <= 1.0 for s in scores)
    assert (
        report.gate_key
        != run_quality_gate(root, rows, checkpoint, NO_DEDUPE, preprocess_config=PRE).gate_key
    )


def test_load_clip_unreachable_hub_id_fails_fast_with_fix(monkeypatch, dataset, checkpoint):
    from synth import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: pytest.fail("no network"))
    start = time.monotonic()
    with pytest.raises(
        ModelUnavailableError, match=r"'nobody/no-such-clip'.*HF_HUB_OFFLINE.*clip_model"
    ):
        load_clip("nobody/no-such-clip", device="cpu")
    assert time.monotonic() - start < 5
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_clip(os.path.join(".", "no-such-folder"), device="cpu")
    root, rows = dataset
    config = QualityConfig(clip_model="nobody/no-such-clip", device="cpu")
    with pytest.raises(ModelUnavailableError, match="HF_HUB_OFFLINE"):
        run_quality_gate(root, rows, checkpoint, config, preprocess_config=PRE)
    assert not quality_path(root).exists()
