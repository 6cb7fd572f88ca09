"""preprocess: letterboxing, synthetic margins, per-image determinism, the tensor file."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
import torch
from PIL import Image

from synth.config import PreprocessConfig
from synth.data import (
    PreprocessItem,
    build_tensor_set,
    crop_random_margin,
    image_rng,
    import_real_dataset,
    letterbox,
    load_tensor_set,
    preprocess_real,
    real_items,
)


def two_tone(size=(80, 40)) -> Image.Image:
    """Left half (200, 0, 0), right half (0, 0, 100): mean colour (100, 0, 50)."""
    img = Image.new("RGB", size, (200, 0, 0))
    img.paste((0, 0, 100), (size[0] // 2, 0, size[0], size[1]))
    return img


def save(img: Image.Image, path: Path, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


def pad_rows(img: Image.Image, rows) -> set[tuple[int, int, int]]:
    return {img.getpixel((x, y)) for y in rows for x in range(img.width)}


@pytest.fixture
def synthetic_files(tmp_path) -> list[PreprocessItem]:
    """Three square 'synthetic' PNGs with distinct content."""
    items = []
    for i in range(3):
        img = Image.effect_noise((48, 48), 40 + 10 * i).convert("RGB")
        path = save(img, tmp_path / "syn" / f"{i}.png")
        items.append(PreprocessItem(str(path), i % 2, f"syn-{i}", synthetic=True))
    return items


# ---------------------------------------------------------------------------------- letterbox


@pytest.mark.parametrize("size", [(80, 40), (40, 80), (50, 50), (1, 1), (1000, 3), (7, 13)])
def test_letterbox_output_is_square_of_requested_size(size):
    out = letterbox(Image.new("RGB", size, (9, 9, 9)), 32, "black")
    assert (out.size, out.mode) == ((32, 32), "RGB")


@pytest.mark.parametrize(
    ("padding", "fill"),
    [("black", (0, 0, 0)), ("white", (255, 255, 255)), ("mean", (100, 0, 50))],
)
def test_letterbox_pads_2_to_1_image_with_fill_colour(padding, fill):
    out = letterbox(two_tone(), 64, padding)
    # 80x40 -> 64x32, centred: rows 0-15 and 48-63 are padding, 16-47 are content
    assert pad_rows(out, range(16)) == {fill}
    assert pad_rows(out, range(48, 64)) == {fill}
    assert out.getpixel((5, 30)) == (200, 0, 0) and out.getpixel((58, 30)) == (0, 0, 100)


def test_letterbox_noise_padding_is_random_and_reproducible():
    first = letterbox(two_tone(), 64, "noise", random.Random("k"))
    again = letterbox(two_tone(), 64, "noise", random.Random("k"))
    other = letterbox(two_tone(), 64, "noise", random.Random("other"))
    assert len(pad_rows(first, range(16))) > 100  # many colours, not a flat fill
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()
    assert first.getpixel((5, 30)) == (200, 0, 0)  # content untouched


def test_letterbox_rejects_non_rgb_and_noise_without_rng():
    with pytest.raises(ValueError, match="RGB"):
        letterbox(Image.new("RGBA", (4, 4)), 8, "black")
    with pytest.raises(ValueError, match="rng"):
        letterbox(Image.new("RGB", (4, 4)), 8, "noise")


# ------------------------------------------------------------------------- crop_random_margin


def test_crop_random_margin_makes_square_non_square_within_bounds():
    img = Image.new("RGB", (100, 100))
    sizes = [crop_random_margin(img, (0.05, 0.2), image_rng(0, str(k))).size for k in range(50)]
    for w, h in sizes:
        assert 60 <= w <= 90 and 60 <= h <= 90  # each side loses 5-20 %
    assert sum(w != h for w, h in sizes) >= 40
    assert len(set(sizes)) > 10


def test_crop_random_margin_zero_range_returns_image_unchanged():
    img = two_tone((50, 50))
    rng = random.Random(1)
    assert crop_random_margin(img, (0.0, 0.0), rng) is img
    assert rng.random() == random.Random(1).random()  # nothing drawn


def test_crop_random_margin_rejects_bad_range():
    with pytest.raises(ValueError, match="margin_range"):
        crop_random_margin(Image.new("RGB", (9, 9)), (0.3, 0.1), random.Random(0))


# --------------------------------------------------------------------------- build_tensor_set


def test_build_tensor_set_writes_loadable_uint8_tensors(tmp_path, synthetic_files):
    config = PreprocessConfig(size=16)
    ref = build_tensor_set(synthetic_files, tmp_path / "set.pt", config)
    raw = torch.load(ref.path, weights_only=True)
    assert raw["images"].shape == (3, 3, 16, 16) and raw["images"].dtype == torch.uint8
    assert raw["labels"].tolist() == [0, 1, 0] and raw["labels"].dtype == torch.int64
    assert raw["keys"] == ["syn-0", "syn-1", "syn-2"]
    assert raw["config"] == config.model_dump()
    assert ref.count == 3
    assert ref.digest == hashlib.sha256(Path(ref.path).read_bytes()).hexdigest()
    data = load_tensor_set(ref.path, digest=ref.digest)
    assert data.config == config and data.synthetic.tolist() == [True, True, True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.pt", "syn"]  # no temp file left


def test_build_tensor_set_is_deterministic_and_order_independent(tmp_path, synthetic_files):
    config = PreprocessConfig(size=24, padding="noise", synthetic_margin=(0.05, 0.3), seed=5)
    first = build_tensor_set(synthetic_files, tmp_path / "a.pt", config)
    again = build_tensor_set(synthetic_files, tmp_path / "b.pt", config)
    assert first.digest == again.digest
    reordered = build_tensor_set(synthetic_files[::-1][:2], tmp_path / "c.pt", config)
    a, c = load_tensor_set(first.path), load_tensor_set(reordered.path)
    assert torch.equal(a.images[2], c.images[0]) and torch.equal(a.images[1], c.images[1])
    reseeded = build_tensor_set(
        synthetic_files, tmp_path / "d.pt", config.model_copy(update={"seed": 6})
    )
    assert not torch.equal(load_tensor_set(reseeded.path).images, a.images)


def test_build_tensor_set_same_key_gives_same_pixels(tmp_path, synthetic_files):
    config = PreprocessConfig(size=24, padding="noise", synthetic_margin=(0.1, 0.3))
    item = synthetic_files[0]
    twin = PreprocessItem(item.path, item.label, item.key, synthetic=True)
    stranger = PreprocessItem(item.path, item.label, "another-key", synthetic=True)
    ref = build_tensor_set([item, twin, stranger], tmp_path / "k.pt", config)
    images = load_tensor_set(ref.path).images
    assert torch.equal(images[0], images[1]) and not torch.equal(images[0], images[2])


def test_build_tensor_set_gives_synthetic_images_padding_bars(tmp_path, synthetic_files):
    config = PreprocessConfig(size=32, padding="white", synthetic_margin=(0.1, 0.3))
    images = load_tensor_set(build_tensor_set(synthetic_files, tmp_path / "s.pt", config).path)
    white_rows = (images.images == 255).all(dim=1).all(dim=2)  # N x S: full white rows
    white_cols = (images.images == 255).all(dim=1).all(dim=1)
    assert all(white_rows[i].any() or white_cols[i].any() for i in range(3))


def test_build_tensor_set_makes_transparent_real_png_white(tmp_path):
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # fully transparent, hidden colour black
    rgba.paste((200, 0, 0, 255), (10, 10, 30, 30))
    path = save(rgba, tmp_path / "real" / "apple.jpg")  # a PNG named .jpg, as in the fruit set
    item = PreprocessItem(str(path), 0, "real-0", synthetic=False)
    ref = build_tensor_set([item], tmp_path / "r.pt", PreprocessConfig(size=40, padding="black"))
    img = load_tensor_set(ref.path).images[0]  # square: no padding, all from the photo
    assert img[:, 0, 0].tolist() == [255, 255, 255]
    assert img[:, 20, 20].tolist() == [200, 0, 0]


def test_build_tensor_set_reports_progress_and_prints_nothing(tmp_path, synthetic_files, capsys):
    calls = []
    build_tensor_set(
        synthetic_files,
        tmp_path / "p.pt",
        PreprocessConfig(size=8),
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert capsys.readouterr() == ("", "")


def test_build_tensor_set_letterboxes_real_dataset_split(tmp_path):
    for label, colour in (("apple", (200, 0, 0)), ("pear", (0, 200, 0))):
        for i in range(3):
            save(Image.new("RGB", (60, 30), colour), tmp_path / "ds" / label / f"{i}.jpg", "JPEG")
    dataset = import_real_dataset(tmp_path / "ds", test_fraction=0.34)
    items = real_items(dataset, "train")
    ref = build_tensor_set(items, tmp_path / "train.pt", PreprocessConfig(size=16))
    data = load_tensor_set(ref.path)
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert data.keys == tuple(e.sha256 for e in dataset.split("train"))
    assert data.images[:, :, :4].max() == 0  # 2:1 photos: black bars on the top 4 rows


def test_load_tensor_set_rejects_wrong_digest(tmp_path, synthetic_files):
    ref = build_tensor_set(synthetic_files, tmp_path / "x.pt", PreprocessConfig(size=8))
    with pytest.raises(ValueError, match="sha256"):
        load_tensor_set(ref.path, digest="0" * 64)


def test_real_test_tensors_ignore_synthetic_margins_and_their_seed(tmp_path):
    for label, colour in (("apple", (200, 0, 0)), ("pear", (0, 200, 0))):
        for i in range(3):
            save(Image.new("RGB", (60, 30 + i), colour), tmp_path / "ds" / label / f"{i}.png")
    dataset = import_real_dataset(tmp_path / "ds", test_fraction=0.34)
    # margins are cut from synthetic images only; the split has its own split_seed
    a = preprocess_real(dataset, "test", PreprocessConfig(size=16), tmp_path / "a")
    other = PreprocessConfig(size=16, synthetic_margin=(0.1, 0.3), seed=9)
    b = preprocess_real(dataset, "test", other, tmp_path / "b")
    data_a, data_b = load_tensor_set(a.path), load_tensor_set(b.path)
    assert data_a.keys == data_b.keys and torch.equal(data_a.images, data_b.images)
