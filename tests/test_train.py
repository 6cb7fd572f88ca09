"""trainer: learning, determinism, augmentation, checkpoints that load safely."""

from __future__ import annotations

import hashlib

import pytest
import torch

from synth.config import PreprocessConfig, RecipeConfig, TrainConfig
from synth.errors import CheckpointError
from synth.storage import sha256_file
from synth.training import to_input
from synth.training.trainer import (
    EpochStats,
    _augment,
    load_checkpoint,
    save_checkpoint,
    train_classifier,
)

CPU = TrainConfig(epochs=2, batch_size=8, device="cpu")


def _colour_problem(n_per_class: int = 16, size: int = 32, seed: int = 0):
    """Dark noisy images where the class is the one bright colour channel: easy to learn."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    images = torch.randint(0, 60, (len(labels), 3, size, size), dtype=torch.uint8, generator=g)
    images[torch.arange(len(labels)), labels] += 180
    return images, labels


def _random_data(n: int = 12, size: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return images, torch.arange(n) % 3


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_classifier_learns_colour_channel_problem():
    images, labels = _colour_problem()
    config = TrainConfig(epochs=4, batch_size=8, learning_rate=1e-3, device="cpu")
    seen = []
    result = train_classifier(
        images, labels, config=config, n_classes=3, seed=0, progress=seen.append
    )
    assert [s.epoch for s in result.history] == [1, 2, 3, 4]
    assert seen == list(result.history)
    assert result.history[-1].accuracy >= 0.9
    assert result.history[-1].loss < result.history[0].loss
    assert not result.model.training
    with torch.no_grad():
        predicted = result.model(to_input(images)).argmax(1)
    assert (predicted == labels).float().mean() >= 0.9


def test_train_classifier_same_seed_gives_identical_weights():
    images, labels = _random_data()
    config = TrainConfig(epochs=2, batch_size=4, augment=True, device="cpu")
    a = train_classifier(images, labels, config=config, n_classes=3, seed=7)
    b = train_classifier(images, labels, config=config, n_classes=3, seed=7)
    assert _same_state(a.model, b.model)
    assert a.history == b.history


def test_train_classifier_different_seed_gives_different_weights():
    images, labels = _random_data()
    a = train_classifier(images, labels, config=CPU, n_classes=3, seed=1)
    b = train_classifier(images, labels, config=CPU, n_classes=3, seed=2)
    assert not _same_state(a.model, b.model)


def test_train_classifier_leaves_global_rng_untouched():
    images, labels = _random_data()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_classifier(images, labels, config=CPU, n_classes=3, seed=5, epochs=1)
    assert torch.equal(torch.rand(3), expected)


def test_train_classifier_init_state_starts_from_given_weights():
    images, labels = _random_data()
    config = TrainConfig(epochs=1, batch_size=4, learning_rate=1e-9, device="cpu")
    first = train_classifier(images, labels, config=CPU, n_classes=3, seed=1)
    # A vanishing learning rate keeps the weights where init_state put them, whatever the seed.
    again = train_classifier(
        images, labels, config=config, n_classes=3, seed=99, init_state=first.model.state_dict()
    )
    for key, value in first.model.state_dict().items():
        assert torch.allclose(again.model.state_dict()[key], value, atol=1e-6), key


def test_train_classifier_rejects_labels_out_of_range():
    images, labels = _random_data()
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 2\)"):
        train_classifier(images, labels, config=CPU, n_classes=2, seed=0)


def test_train_classifier_rejects_float_images():
    images, labels = _random_data()
    with pytest.raises(ValueError, match="uint8"):
        train_classifier(images.float(), labels, config=CPU, n_classes=3, seed=0)


def test_augment_flips_and_shifts_within_bounds():
    size, shift = 32, 2  # shift = size // 16
    batch = torch.zeros(64, 3, size, size, dtype=torch.uint8)
    batch[:, :, 10, 5] = 255  # one bright pixel at row 10, column 5
    out = _augment(batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape
    rows, cols = [], []
    for image in out:
        where = image[0].nonzero()
        assert len(where) == 1  # the pixel moved but never left the image
        rows.append(int(where[0, 0]))
        cols.append(int(where[0, 1]))
    assert set(rows) == set(range(10 - shift, 10 + shift + 1))
    flipped = [c for c in cols if c > size // 2]  # column 5 mirrors to 26
    assert 0 < len(flipped) < len(cols)
    assert all(abs(c - (size - 1 - 5)) <= shift for c in flipped)
    assert torch.equal(out, _augment(batch, torch.Generator().manual_seed(0)))


def _save(tmp_path, result, name="model.pt", history=None):
    return save_checkpoint(
        tmp_path / name,
        result.model,
        model_name=result.model_name,
        n_classes=3,
        size=result.size,
        class_names=["apple", "banana", "orange"],
        train_config=CPU,
        recipe=RecipeConfig(name="mix-30", kind="mix", synthetic_fraction=0.3),
        seed=result.seed,
        history=result.history if history is None else history,
    )


def test_save_checkpoint_round_trip_predicts_identically(tmp_path):
    images, labels = _random_data()
    result = train_classifier(images, labels, config=CPU, n_classes=3, seed=3)
    saved = _save(tmp_path, result)
    assert saved.digest == sha256_file(tmp_path / "model.pt")
    # The file is plain data + tensors: the safe loader accepts it directly.
    raw = torch.load(saved.path, weights_only=True)
    assert set(raw) >= {"state_dict", "train_config", "class_names"}
    model, info = load_checkpoint(saved.path)
    assert not model.training
    with torch.no_grad():
        assert torch.equal(model(to_input(images)), result.model(to_input(images)))
    assert info.digest == saved.digest
    assert info.class_names == ("apple", "banana", "orange")
    assert info.train_config == CPU
    assert info.recipe == RecipeConfig(name="mix-30", kind="mix", synthetic_fraction=0.3)
    assert (info.model_name, info.n_classes, info.size, info.seed) == ("study-cnn", 3, 32, 3)
    assert info.history == result.history


def test_save_checkpoint_leaves_no_temp_files(tmp_path):
    images, labels = _random_data()
    result = train_classifier(images, labels, config=CPU, n_classes=3, seed=3, epochs=1)
    _save(tmp_path, result, history=[EpochStats(epoch=1, loss=1.0, accuracy=0.5)])
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


class _Payload:
    """An arbitrary class: unpickling it could run any code, so the loader must refuse it."""


def test_load_checkpoint_refuses_arbitrary_pickled_objects(tmp_path):
    images, labels = _random_data()
    result = train_classifier(images, labels, config=CPU, n_classes=3, seed=3, epochs=1)
    _save(tmp_path, result)
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    payload["history"] = _Payload()
    torch.save(payload, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(tmp_path / "evil.pt")


def test_load_checkpoint_rejects_foreign_and_missing_files(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a datasynth checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_save_checkpoint_records_preprocessing_and_training_images(tmp_path):
    images, labels = _random_data()
    result = train_classifier(images, labels, config=CPU, n_classes=3, seed=3, epochs=1)
    pre = PreprocessConfig(size=32, padding="white", seed=4)
    keys = [hashlib.sha256(bytes([i])).hexdigest() for i in range(5)]
    saved = save_checkpoint(
        tmp_path / "m.pt",
        result.model,
        model_name=result.model_name,
        n_classes=3,
        size=32,
        class_names=["apple", "banana", "orange"],
        train_config=CPU,
        recipe=None,
        seed=3,
        history=result.history,
        preprocess=pre,
        train_image_keys=keys,
    )
    _, info = load_checkpoint(saved.path)
    assert info.preprocess == pre
    assert all(info.trained_on(k) for k in keys)
    assert not info.trained_on(hashlib.sha256(b"another image").hexdigest())
    with pytest.raises(ValueError, match="preprocess.size"):
        save_checkpoint(
            tmp_path / "bad.pt",
            result.model,
            model_name=result.model_name,
            n_classes=3,
            size=32,
            class_names=["apple", "banana", "orange"],
            train_config=CPU,
            recipe=None,
            seed=3,
            history=result.history,
            preprocess=PreprocessConfig(size=64),
        )


def test_load_checkpoint_reads_version_1_without_preprocessing(tmp_path):
    images, labels = _random_data()
    result = train_classifier(images, labels, config=CPU, n_classes=3, seed=3, epochs=1)
    payload = torch.load(_save(tmp_path, result).path, weights_only=True)
    payload["version"] = 1
    del payload["preprocess"], payload["train_image_keys"]
    torch.save(payload, tmp_path / "v1.pt")
    _, info = load_checkpoint(tmp_path / "v1.pt")
    assert info.preprocess is None and info.train_image_keys == frozenset()
    payload["version"] = 99
    torch.save(payload, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "v99.pt")
