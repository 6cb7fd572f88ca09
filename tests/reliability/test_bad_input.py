"""A corpus of bad real-data inputs, generated here: each is quarantined or named in a clear error.

One import reads a dataset holding every file- and folder-level kind at once (quarantine and
report, or accept and convert); dataset-level problems (an empty class, a class only in test/)
must stop the import with a `ValueError` naming the class. Nothing outside the output folder
may be written, and nothing may escape as another exception type.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from synth.config import GenerationConfig, PreprocessConfig, parse_config
from synth.data import (
    build_tensor_set,
    import_real_dataset,
    load_tensor_set,
    real_items,
    write_import_report,
)
from synth.errors import ConfigError
from tests.reliability.engine import record


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int) -> bytes:
    """A valid 1-bit PNG of side x side black pixels: ~50 kB that would decode to side^2 bits."""
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    row = b"\0" * (1 + (side + 7) // 8)
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row * 1000) for _ in range(side // 1000)) + deflate.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def png_header_only(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def noise(size=(48, 40)) -> Image.Image:
    return Image.effect_noise(size, 60).convert("RGB")


def write(path: Path | bytes, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (6, 6), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=40)
    return buf.getvalue()


def palette_with_transparency() -> bytes:
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    img.putpixel((1, 1), 1)
    return encode(img, "PNG", transparency=0)


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees: 40x20 stored, 20x40 shown
    return encode(Image.new("RGB", (40, 20), (9, 99, 199)), "JPEG", exif=exif)


def bad_crc_png() -> bytes:
    data = bytearray(encode(noise(), "PNG"))
    data[-20] ^= 0xFF  # inside the last IDAT: zlib or CRC check fails
    return bytes(data)


# kind -> (path under the dataset root, bytes or None for special entries, expected outcome)
# An outcome is ("ok", (width, height)) or ("quarantined", words of the reason).
LONG_NAME = "l" * 251 + ".png"  # 255 bytes: the longest name ext4 allows


def build_corpus(root: Path, outside: Path) -> dict[str, tuple[bytes, tuple]]:
    """Write the corpus under `root` (train/ + test/); returns {relative path: expectation}."""
    good = encode(noise(), "PNG")
    files: dict[str, tuple[bytes | None, tuple]] = {
        # the valid core: every class has enough good images
        **{
            f"{s}/apple/good_{i}.png": (good, ("ok", (48, 40)))
            for s in ("train", "test")
            for i in range(2)
        },
        **{
            f"{s}/pear/good_{i}.png": (good, ("ok", (48, 40)))
            for s in ("train", "test")
            for i in range(2)
        },
        # broken files
        "train/apple/truncated.jpg": (
            encode(noise((64, 64)), "JPEG")[:400],
            ("quarantined", "truncated"),
        ),
        "train/apple/truncated.png": (
            encode(noise((64, 64)), "PNG")[:300],
            ("quarantined", "truncated"),
        ),
        "train/apple/zero.jpg": (b"", ("quarantined", "empty file")),
        "train/apple/notes.jpg": (b"shopping list\napples\n" * 20, ("quarantined", "not an image")),
        "train/apple/page.png": (
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            ("quarantined", "not an image"),
        ),
        "train/apple/bad_crc.png": (bad_crc_png(), ("quarantined", "cannot decode")),
        "train/apple/bomb.png": (png_bomb(20_000), ("quarantined", "too big")),
        "train/apple/header_bomb.png": (
            png_header_only(100_000, 100_000),
            ("quarantined", "too big"),
        ),
        # odd but valid images: accepted and converted
        "train/pear/one_pixel.png": (
            encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"),
            ("ok", (1, 1)),
        ),
        "train/pear/strip.png": (
            encode(Image.new("RGB", (10_000, 10), (5, 5, 5)), "PNG"),
            ("ok", (10_000, 10)),
        ),
        "train/pear/cmyk.jpg": (
            encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"),
            ("ok", (8, 8)),
        ),
        "train/pear/deep.png": (encode(Image.new("I;16", (5, 5), 40_000), "PNG"), ("ok", (5, 5))),
        "train/pear/palette.png": (palette_with_transparency(), ("ok", (4, 4))),
        "train/pear/anim.gif": (animated_gif(), ("ok", (6, 6))),
        "train/pear/rotated.jpg": (exif_rotated(), ("ok", (20, 40))),
        "train/pear/png_named.jpg": (encode(Image.new("RGB", (7, 3)), "PNG"), ("ok", (7, 3))),
        f"train/pear/{LONG_NAME}": (good, ("ok", (48, 40))),
        # hidden entries are ignored, not quarantined
        "train/pear/.DS_Store": (b"junk", ("ignored", "")),
    }
    for rel, (data, _) in files.items():
        write(root / rel, data)
    # a name that is not UTF-8
    raw = os.path.join(os.fsencode(root / "train" / "pear"), b"caf\xe9.png")
    write(raw, good)
    files[os.fsdecode(os.path.relpath(raw, os.fsencode(root)))] = (good, ("ok", (48, 40)))
    # entries that are not plain files
    write(outside / "secret.png", good)
    os.symlink(outside / "secret.png", root / "train/apple/escape.png")
    files["train/apple/escape.png"] = (None, ("quarantined", "symlink leaves the dataset root"))
    os.symlink(root / "train/apple/missing.png", root / "train/apple/dangling.png")
    files["train/apple/dangling.png"] = (None, ("quarantined", "broken symlink"))
    os.mkfifo(root / "train/apple/pipe.jpg")
    files["train/apple/pipe.jpg"] = (None, ("quarantined", "not a regular file"))
    # class folders that must not become classes
    bad_folders = {
        "train/ ..": "not allowed",  # strips to '..'
        "train/bell\x07": "control character",
        "train/new\nline": "control character",
        "train/zero\u200bwidth": "control character",  # format character (Cf)
    }
    for rel, reason in bad_folders.items():
        write(root / rel / "x.png", good)
        files[rel] = (None, ("quarantined", reason))
    raw_dir = os.path.join(os.fsencode(root / "train"), b"\xff\xfeclass")
    write(os.path.join(raw_dir, b"x.png"), good)
    files[os.fsdecode(os.path.relpath(raw_dir, os.fsencode(root)))] = (
        None,
        ("quarantined", "not valid UTF-8"),
    )
    os.makedirs(outside / "elsewhere")
    write(outside / "elsewhere" / "x.png", good)
    os.symlink(outside / "elsewhere", root / "train/outside")
    files["train/outside"] = (None, ("quarantined", "symlink leaves the dataset root"))
    os.symlink(root / "test" / "apple", root / "train" / "leak")
    files["train/leak"] = (None, ("quarantined", "symlinked class folder"))
    return {rel: expected for rel, (_, expected) in files.items()}


def snapshot(top: Path, skip: Path) -> dict[str, tuple]:
    """(type, size, mtime) of everything under `top` but `skip`, without following links."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if path == str(skip) or path.startswith(f"{skip}{os.sep}"):
                continue
            st = os.lstat(path)
            found[path] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


def test_bad_input_corpus_is_quarantined_reported_or_accepted(tmp_path):
    root, outside, out = tmp_path / "real", tmp_path / "outside", tmp_path / "out"
    expected = build_corpus(root, outside)
    out.mkdir()
    before = snapshot(tmp_path, out)

    dataset = import_real_dataset(root)
    report = json.loads(write_import_report(dataset, out / "import.json").read_text())
    items = real_items(dataset, "train") + real_items(dataset, "test")
    tensors = load_tensor_set(build_tensor_set(items, out / "real.pt", PreprocessConfig()).path)

    assert snapshot(tmp_path, out) == before, "the import wrote outside its output folder"
    entries = {os.path.relpath(e.path, root): e for e in dataset.entries}
    quarantined = {os.path.relpath(q.path, root): q.reason for q in dataset.quarantined}
    outcomes = {}
    for rel, (outcome, detail) in expected.items():
        if outcome == "ok":
            assert rel in entries, (rel, quarantined.get(rel))
            assert (entries[rel].width, entries[rel].height) == detail, rel
        elif outcome == "quarantined":
            assert detail.lower() in quarantined.get(rel, "").lower(), (rel, quarantined.get(rel))
        else:
            assert rel not in entries and rel not in quarantined, rel
        outcomes[rel] = outcome
    assert set(quarantined) == {r for r, o in outcomes.items() if o == "quarantined"}
    assert dataset.classes == ("apple", "pear")
    assert len(report["quarantined"]) == len(quarantined) and report["digest"] == dataset.digest
    assert tensors.images.shape == (len(items), 3, 64, 64)
    kinds = len(expected) - 8  # the 8 good core images are not a kind
    record(
        "bad-input",
        kinds=kinds,
        quarantined=len(quarantined),
        accepted_odd=sum(o == "ok" for o in outcomes.values()) - 8,
        written_outside=0,
    )
    assert kinds >= 15


def _flat(root: Path, classes: dict[str, int]) -> Path:
    for label, n in classes.items():
        for i in range(n):
            write(root / label / f"{i}.png", encode(Image.new("RGB", (4, 4), (i, 0, 0)), "PNG"))
    return root


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: (_flat(r, {"apple": 2}), (r / "plum").mkdir()), r"'plum' has no valid image"),
        (
            lambda r: (_flat(r, {"apple": 2}), write(r / "plum" / "a.jpg", b"")),
            r"'plum' has no valid image \(1 quarantined: 'a.jpg': empty file",
        ),
        (
            lambda r: (_flat(r / "train", {"apple": 2}), _flat(r / "test", {"apple": 1, "fig": 1})),
            r"\['fig'\] are in test/ but not in train/",
        ),
        (lambda r: _flat(r / "test", {"apple": 1}), r"has test/ but no train/"),
        (lambda r: _flat(r, {"Apple": 1, "apple": 1}), r"'Apple' and 'apple' are duplicates"),
        (lambda r: r.mkdir(), r"no class folders under `root`"),
    ],
    ids=[
        "empty-class",
        "only-bad-files",
        "test-only-class",
        "no-train",
        "case-twins",
        "no-classes",
    ],
)
def test_bad_dataset_layout_is_a_clear_error_naming_it(tmp_path, make, message):
    root = tmp_path / "real"
    make(root)
    with pytest.raises(ValueError, match=message):
        import_real_dataset(root)


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../etc", "x\x00y", "tab\there", " "])
def test_unsafe_class_names_are_rejected_before_any_folder_exists(tmp_path, name):
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        import_real_dataset(_flat(tmp_path / "real", {"apple": 1}), classes=["apple", name])
    with pytest.raises(ConfigError, match="`classes"):  # `classes` or `classes.1.name`
        parse_config(GenerationConfig, {"classes": ["apple", name]})


def test_symlinked_split_folder_is_quarantined_not_read_twice(tmp_path):
    """test/ -> train/ would evaluate on the training images: the link is not followed."""
    root = tmp_path / "real"
    _flat(root / "train", {"apple": 3, "pear": 3})
    (root / "test").symlink_to(root / "train")
    dataset = import_real_dataset(root)
    assert [(Path(q.path).name, q.reason) for q in dataset.quarantined] == [
        ("test", "symlinked split folder (not followed)")
    ]
    # without a real test/, train/ is split by test_fraction: every photo is read once, from train/
    assert dataset.counts()["test"] == {"apple": 1, "pear": 1}
    assert all(f"{os.sep}train{os.sep}" in e.path for e in dataset.entries)
