"""real_import: every bad file kind is a BadImageError; imports quarantine, never crash."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synth.data import (
    BadImageError,
    RealImage,
    extra_test_set_names,
    import_real_dataset,
    load_rgb,
    write_import_report,
)
from synth.data.real_duplicates import train_test_duplicates
from synth.errors import InputError

FRUITS = Path(__file__).resolve().parents[1] / "data" / "fruits"


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def noise(size=(32, 24)) -> Image.Image:
    """An image whose encodings are large enough to truncate meaningfully."""
    return Image.effect_noise(size, 60).convert("RGB")


def write(path: Path | bytes, data: bytes) -> Path | bytes:
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that announces width x height pixels but holds none: cheap decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def make_flat(root: Path, counts: dict[str, int]) -> Path:
    """`root/<Class>/<i>.png`, small distinct images."""
    for c, (label, n) in enumerate(counts.items()):
        for i in range(n):
            img = Image.new("RGB", (8 + i, 8), (c * 40, i * 3 % 256, 100))
            write(root / label / f"img_{i:03d}.png", encode(img, "PNG"))
    return root


# ------------------------------------------------------------------------------------ load_rgb


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_load_rgb_rejects_truncated_files(tmp_path, fmt):
    data = encode(noise((64, 64)), fmt)
    path = write(tmp_path / f"cut.{fmt.lower()}", data[: len(data) // 2])
    with pytest.raises(BadImageError, match="truncated") as info:
        load_rgb(path)
    assert info.value.path == str(path)


def test_load_rgb_rejects_zero_byte_file(tmp_path):
    path = write(tmp_path / "empty.jpg", b"")
    with pytest.raises(BadImageError, match="empty"):
        load_rgb(path)


def test_load_rgb_rejects_text_named_jpg(tmp_path):
    path = write(tmp_path / "notes.jpg", b"this is not a photo\n" * 10)
    with pytest.raises(BadImageError, match="not an image"):
        load_rgb(path)


def test_load_rgb_reads_png_named_jpg_by_content(tmp_path):
    path = write(tmp_path / "liar.jpg", encode(Image.new("RGB", (5, 3), (1, 2, 3)), "PNG"))
    img = load_rgb(path)
    assert img.size == (5, 3)
    assert img.getpixel((0, 0)) == (1, 2, 3)  # lossless: it really was decoded as PNG


def test_load_rgb_rejects_bomb_header_before_decoding(tmp_path):
    path = write(tmp_path / "bomb.png", png_header_only(20000, 20000))
    with pytest.raises(BadImageError, match="too big"):
        load_rgb(path)


def test_load_rgb_rejects_images_over_max_pixels(tmp_path):
    # the header says 100x100 but there is no pixel data: "too big" proves no decode was tried
    path = write(tmp_path / "big.png", png_header_only(100, 100))
    with pytest.raises(BadImageError, match="too big"):
        load_rgb(path, max_pixels=9_999)
    ok = write(tmp_path / "ok.png", encode(Image.new("RGB", (100, 100)), "PNG"))
    assert load_rgb(ok, max_pixels=10_000).size == (100, 100)


@pytest.mark.parametrize("size", [(1, 1), (10000, 10)])
def test_load_rgb_accepts_extreme_but_valid_sizes(tmp_path, size):
    path = write(tmp_path / "x.png", encode(Image.new("RGB", size, (9, 9, 9)), "PNG"))
    img = load_rgb(path)
    assert (img.size, img.mode) == (size, "RGB")


def test_load_rgb_converts_cmyk_jpeg(tmp_path):
    path = write(tmp_path / "cmyk.jpg", encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    img = load_rgb(path)
    r, g, b = img.getpixel((4, 4))
    assert img.mode == "RGB" and r > 230 and g < 30 and b < 30  # CMYK red stays red


def test_load_rgb_scales_16_bit_png_instead_of_clipping(tmp_path):
    path = write(tmp_path / "deep.png", encode(Image.new("I;16", (4, 4), 40000), "PNG"))
    img = load_rgb(path)
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (156, 156, 156)  # 40000 / 256; clipping would give 255


def test_load_rgb_converts_grayscale(tmp_path):
    path = write(tmp_path / "gray.png", encode(Image.new("L", (3, 3), 77), "PNG"))
    assert load_rgb(path).getpixel((1, 1)) == (77, 77, 77)


def test_load_rgb_composites_palette_transparency_on_white(tmp_path):
    img = Image.new("P", (2, 1), 0)
    img.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    img.putpixel((1, 0), 1)
    path = write(tmp_path / "pal.png", encode(img, "PNG", transparency=0))
    out = load_rgb(path)
    assert out.getpixel((0, 0)) == (255, 255, 255)  # the transparent index holds black
    assert out.getpixel((1, 0)) == (200, 10, 20)


def test_load_rgb_composites_rgba_on_white(tmp_path):
    img = Image.new("RGBA", (3, 1))
    img.putdata([(255, 0, 0, 0), (0, 0, 255, 255), (0, 0, 0, 128)])
    out = load_rgb(write(tmp_path / "rgba.png", encode(img, "PNG")))
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 0)) == (0, 0, 255)
    assert all(126 <= v <= 128 for v in out.getpixel((2, 0)))  # half black over white


def test_load_rgb_takes_first_frame_of_animated_gif(tmp_path):
    frames = [Image.new("RGB", (6, 6), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    out = load_rgb(write(tmp_path / "anim.gif", buf.getvalue()))
    assert out.mode == "RGB" and out.size == (6, 6)
    assert out.getpixel((3, 3)) == (255, 0, 0)


def test_load_rgb_applies_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = write(tmp_path / "rot.jpg", encode(Image.new("RGB", (40, 20)), "JPEG", exif=exif))
    assert load_rgb(path).size == (20, 40)


def test_load_rgb_returns_image_detached_from_file(tmp_path):
    path = write(tmp_path / "a.png", encode(Image.new("RGB", (4, 4), (5, 6, 7)), "PNG"))
    img = load_rgb(path)
    os.remove(path)
    assert img.getpixel((0, 0)) == (5, 6, 7)


# --------------------------------------------------------------------------- import_real_dataset


def test_import_real_dataset_quarantines_bad_files_without_crashing(tmp_path):
    root = make_flat(tmp_path / "ds", {"apple": 3, "pear": 3})
    write(root / "apple" / "cut.jpg", encode(noise((64, 64)), "JPEG")[:300])
    write(root / "apple" / "empty.jpg", b"")
    write(root / "pear" / "notes.jpg", b"hello")
    write(root / "pear" / "bomb.png", png_header_only(20000, 20000))
    ds = import_real_dataset(root)
    reasons = {Path(q.path).name: q.reason for q in ds.quarantined}
    assert set(reasons) == {"cut.jpg", "empty.jpg", "notes.jpg", "bomb.png"}
    assert "truncated" in reasons["cut.jpg"].lower() and "too big" in reasons["bomb.png"]
    assert len(ds.entries) == 6


def test_import_real_dataset_handles_non_utf8_file_name(tmp_path):
    root = make_flat(tmp_path / "ds", {"apple": 2, "pear": 2})
    raw = os.path.join(os.fsencode(root / "apple"), b"\xffodd.png")
    write(raw, encode(Image.new("RGB", (4, 4)), "PNG"))
    ds = import_real_dataset(root)
    odd = [e for e in ds.entries if os.fsencode(e.path) == raw]
    assert len(odd) == 1 and not ds.quarantined
    report = write_import_report(ds, tmp_path / "report.json")
    back = json.loads(report.read_text(encoding="ascii"))
    assert os.fsencode(next(e["path"] for e in back["entries"] if "odd" in e["path"])) == raw


def test_import_real_dataset_handles_240_byte_file_name(tmp_path):
    root = make_flat(tmp_path / "ds", {"apple": 2, "pear": 2})
    name = "a" * 236 + ".png"
    write(root / "pear" / name, encode(Image.new("RGB", (4, 4)), "PNG"))
    ds = import_real_dataset(root)
    assert any(Path(e.path).name == name for e in ds.entries)


def test_import_real_dataset_quarantines_symlink_leaving_root(tmp_path):
    root = make_flat(tmp_path / "ds", {"apple": 2, "pear": 2})
    outside = write(tmp_path / "secret.png", encode(Image.new("RGB", (4, 4)), "PNG"))
    (root / "apple" / "escape.png").symlink_to(outside)
    (root / "pear" / "inside.png").symlink_to(root / "apple" / "img_000.png")
    ds = import_real_dataset(root)
    assert [(Path(q.path).name, q.reason) for q in ds.quarantined] == [
        ("escape.png", "symlink leaves the dataset root")
    ]
    assert any(Path(e.path).name == "inside.png" for e in ds.entries)


def test_import_real_dataset_quarantines_special_files(tmp_path):
    root = make_flat(tmp_path / "ds", {"apple": 2, "pear": 2})
    os.mkfifo(root / "apple" / "pipe.jpg")  # opening it would block forever
    ds = import_real_dataset(root)
    assert [q.reason for q in ds.quarantined] == ["not a regular file"]


def test_import_real_dataset_ignores_hidden_files_and_folders(tmp_path):
    root = make_flat(tmp_path / "ds", {"apple": 2, "pear": 2})
    write(root / "apple" / ".DS_Store", b"junk")
    write(root / "apple" / ".cache" / "x.png", encode(Image.new("RGB", (4, 4)), "PNG"))
    write(root / ".thumbs" / "y.png", encode(Image.new("RGB", (4, 4)), "PNG"))
    write(root / "README.md", b"# about\n")
    ds = import_real_dataset(root)
    assert ds.classes == ("apple", "pear")
    assert len(ds.entries) == 4 and not ds.quarantined


def test_import_real_dataset_quarantines_unsafe_class_folder(tmp_path):
    root = make_flat(tmp_path / "ds", {"apple": 2, "pear": 2, "bad\x07name": 2})
    ds = import_real_dataset(root)
    assert ds.classes == ("apple", "pear")
    assert len(ds.quarantined) == 1 and "control character" in ds.quarantined[0].reason


def test_import_real_dataset_labels_nfd_folder_in_nfc(tmp_path):
    root = make_flat(tmp_path / "ds", {"cafe\u0301": 2, "pear": 2})  # as macOS may store it
    assert import_real_dataset(root).classes == ("caf\u00e9", "pear")


def test_import_real_dataset_rejects_folders_differing_only_by_case(tmp_path):
    root = make_flat(tmp_path / "ds", {"Apple": 2, "apple": 2})
    with pytest.raises(ValueError, match="duplicates"):
        import_real_dataset(root)


def test_import_real_dataset_rejects_test_class_missing_from_train(tmp_path):
    make_flat(tmp_path / "ds" / "train", {"apple": 2, "pear": 2})
    make_flat(tmp_path / "ds" / "test", {"apple": 1, "plum": 1})
    with pytest.raises(ValueError, match="plum"):
        import_real_dataset(tmp_path / "ds")


def test_import_real_dataset_rejects_empty_class(tmp_path):
    root = make_flat(tmp_path / "ds", {"apple": 2, "pear": 2})
    write(root / "plum" / "broken.jpg", b"not an image")
    with pytest.raises(ValueError, match="'plum' has no valid image"):
        import_real_dataset(root)


def test_import_real_dataset_rejects_class_mismatch(tmp_path):
    root = make_flat(tmp_path / "ds", {"apple": 2, "pear": 2})
    with pytest.raises(ValueError, match=r"missing .*\['banana'\].*extra .*\['pear'\]"):
        import_real_dataset(root, classes=["apple", "banana"])


def test_import_real_dataset_follows_given_classes_names_and_order(tmp_path):
    root = make_flat(tmp_path / "ds", {"Apple": 2, "Pear": 2})
    ds = import_real_dataset(root, classes=["pear", "apple"])  # case-insensitive, as naming
    assert ds.classes == ("pear", "apple")
    assert {e.label for e in ds.entries} == {"pear", "apple"}


def test_import_real_dataset_keeps_given_splits(tmp_path):
    make_flat(tmp_path / "ds" / "train", {"apple": 3, "pear": 2})
    make_flat(tmp_path / "ds" / "test", {"apple": 1, "pear": 1})
    ds = import_real_dataset(tmp_path / "ds", test_fraction=0.5)
    assert ds.counts() == {"train": {"apple": 3, "pear": 2}, "test": {"apple": 1, "pear": 1}}
    assert all(f"/{e.split}/" in e.path for e in ds.entries)


def test_import_real_dataset_split_is_stratified_and_deterministic(tmp_path):
    root = make_flat(tmp_path / "ds", {"a": 10, "b": 5, "c": 2, "d": 1})
    first = import_real_dataset(root, test_fraction=0.2, split_seed=3)
    assert first.counts() == {
        "train": {"a": 8, "b": 4, "c": 1, "d": 1},
        "test": {"a": 2, "b": 1, "c": 1, "d": 0},
    }
    again = import_real_dataset(root, test_fraction=0.2, split_seed=3)
    assert again == first
    other = import_real_dataset(root, test_fraction=0.2, split_seed=4)
    assert {e.path for e in other.split("test")} != {e.path for e in first.split("test")}
    assert other.digest != first.digest  # the split is part of the digest


def test_import_real_dataset_split_of_a_class_ignores_other_classes(tmp_path):
    small = import_real_dataset(make_flat(tmp_path / "one", {"a": 10}), split_seed=1)
    more = import_real_dataset(make_flat(tmp_path / "two", {"a": 10, "b": 7}), split_seed=1)

    def test_names(ds):
        return {Path(e.path).name for e in ds.split("test") if e.label == "a"}

    assert test_names(small) == test_names(more)


def test_import_real_dataset_digest_tracks_file_content(tmp_path):
    root = make_flat(tmp_path / "ds", {"apple": 2, "pear": 2})
    before = import_real_dataset(root)
    write(root / "pear" / "img_000.png", encode(Image.new("RGB", (8, 8), (1, 1, 1)), "PNG"))
    assert import_real_dataset(root).digest != before.digest


def test_import_real_dataset_writes_nothing(tmp_path):
    root = make_flat(tmp_path / "ds", {"apple": 2, "pear": 2})
    write(root / "pear" / "bad.jpg", b"x")

    def snapshot():
        return sorted((str(p), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))

    before = snapshot()
    import_real_dataset(root)
    assert snapshot() == before


def test_write_import_report_lists_entries_and_quarantine(tmp_path):
    root = make_flat(tmp_path / "ds", {"apple": 2, "pear": 2})
    write(root / "pear" / "bad.jpg", b"x")
    ds = import_real_dataset(root)
    report = json.loads(write_import_report(ds, tmp_path / "r.json").read_text())
    assert report["digest"] == ds.digest and len(report["entries"]) == 4
    assert report["quarantined"][0]["path"].endswith("bad.jpg")
    assert report["counts"] == ds.counts()


@pytest.mark.skipif(not FRUITS.is_dir(), reason="data/fruits is not in this checkout")
def test_import_real_dataset_reads_the_fruit_photos_cleanly():
    ds = import_real_dataset(FRUITS, classes=["apple", "banana", "orange"])
    assert not ds.quarantined
    counts = ds.counts()
    assert sum(counts["train"].values()) == 220 and sum(counts["test"].values()) == 55


# ------------------------------------------------------------------- splits and duplicates


def textured(seed: int, size=(48, 36)) -> Image.Image:
    """A seeded blocky image: structure a perceptual hash can see, distinct per seed."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize(size, Image.Resampling.NEAREST)


def test_import_real_dataset_splits_a_lone_train_folder_by_test_fraction(tmp_path):
    make_flat(tmp_path / "ds" / "train", {"apple": 10, "pear": 5})
    ds = import_real_dataset(tmp_path / "ds", test_fraction=0.2, split_seed=3)
    assert ds.counts() == {"train": {"apple": 8, "pear": 4}, "test": {"apple": 2, "pear": 1}}
    assert not ds.split_by_folders and (ds.test_fraction, ds.split_seed) == (0.2, 3)
    flat = import_real_dataset(make_flat(tmp_path / "flat", {"apple": 10, "pear": 5}), split_seed=3)
    # the same split as the same files without train/: names and split_seed decide, nothing else
    assert [Path(e.path).name for e in ds.split("test")] == [
        Path(e.path).name for e in flat.split("test")
    ]


def test_import_real_dataset_records_a_kept_split_as_folders(tmp_path):
    make_flat(tmp_path / "ds" / "train", {"apple": 2, "pear": 2})
    make_flat(tmp_path / "ds" / "test", {"apple": 1, "pear": 1})
    ds = import_real_dataset(tmp_path / "ds", split_seed=9)
    assert ds.split_by_folders and (ds.test_fraction, ds.split_seed) == (None, None)
    report = json.loads(write_import_report(ds, tmp_path / "r.json").read_text())
    assert (report["split_by"], report["test_fraction"], report["split_seed"]) == (
        "folders",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: make_flat(r, {"apple": 1, "pear": 1}), r"`test_fraction` 0.2 holds out no"),
        (
            lambda r: (make_flat(r / "train", {"apple": 2}), write(r / "test" / "README", b"x")),
            r"test/ under .* holds no class folder",
        ),
    ],
    ids=["one-photo-per-class", "test-without-class-folders"],
)
def test_import_real_dataset_refuses_an_empty_test_split(tmp_path, make, message):
    make(tmp_path / "ds")
    with pytest.raises(InputError, match=message):
        import_real_dataset(tmp_path / "ds")
    # an extra test set is scored whole: its test split may be empty
    assert not import_real_dataset(tmp_path / "ds", require_test=False).split("test")


def test_import_real_dataset_reports_exact_and_near_train_test_duplicates(tmp_path):
    root = tmp_path / "ds"
    for i in range(4):
        write(root / "train" / "apple" / f"a{i}.png", encode(textured(i), "PNG"))
    write(root / "test" / "apple" / "copy.png", encode(textured(1), "PNG"))  # same bytes
    near = textured(2).resize((60, 45), Image.Resampling.BILINEAR)  # resized, re-encoded
    write(root / "test" / "apple" / "near.jpg", encode(near, "JPEG", quality=80))
    write(root / "test" / "apple" / "new.png", encode(textured(99), "PNG"))
    ds = import_real_dataset(root)
    found = {Path(d.test).name: d for d in ds.train_test_duplicates}
    assert set(found) == {"copy.png", "near.jpg"}
    assert found["copy.png"].exact and found["copy.png"].distance == 0
    assert Path(found["copy.png"].train).name == "a1.png"
    assert not found["near.jpg"].exact and Path(found["near.jpg"].train).name == "a2.png"
    assert found["near.jpg"].distance <= 4
    report = json.loads(write_import_report(ds, tmp_path / "r.json").read_text())
    assert sorted(Path(d["test"]).name for d in report["train_test_duplicates"]) == [
        "copy.png",
        "near.jpg",
    ]


def test_train_test_duplicates_counts_bits_up_to_the_threshold():
    def image(path, phash, sha=None):
        return RealImage(path, "a", "train", sha or path, 1, 1, f"{phash:016x}")

    train = [image("t0", 0b0), image("t1", 0xFF00)]
    test = [image("x3", 0b111), image("x4", 0b1111), image("x5", 0b11111), image("c", 1, "t1")]
    found = train_test_duplicates(train, test, threshold=4)
    assert [(d.test, d.train, d.distance, d.exact) for d in found] == [
        ("x3", "t0", 3, False),
        ("x4", "t0", 4, False),
        ("c", "t1", 0, True),  # same sha256: a copy whatever the hashes say
    ]
    assert train_test_duplicates([], test) == ()


def test_extra_test_set_names_are_basenames_and_unique(tmp_path):
    assert extra_test_set_names([str(tmp_path / "grocery"), f"{tmp_path}/street/"]) == [
        "grocery",
        "street",
    ]
    for paths, message in [
        ([str(tmp_path / "real-test")], "like the main real dataset's 'real-test'"),
        ([str(tmp_path / "Real")], "like the main real dataset's 'real'"),
        ([str(tmp_path / "a" / "shop"), str(tmp_path / "b" / "Shop")], "like extra test set"),
        (["/"], "no folder name"),
    ]:
        with pytest.raises(InputError, match=message):
            extra_test_set_names(paths)
