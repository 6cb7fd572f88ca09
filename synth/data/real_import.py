"""Safe import of a folder of real photos: every file is decoded once, bad ones are quarantined.

Layouts: `<root>/train/<Class>/...` + `<root>/test/<Class>/...` (split kept), or
`<root>/<Class>/<files>` or `<root>/train/<Class>/...` alone (split here by `test_fraction`,
stratified, seeded by `split_seed` alone). Files beside the class folders (a README, a
metadata.jsonl) are ignored, as torchvision's `ImageFolder` ignores them; names starting with '.'
are ignored everywhere. Test images that are (near-)copies of training images are reported.
Importing only reads: `write_import_report` is the one function here that writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, ImageOps

from synth.data.image_hash import perceptual_hash
from synth.data.real_duplicates import DUPLICATE_BITS, TrainTestDuplicate, train_test_duplicates
from synth.errors import InputError
from synth.naming import (
    class_dirname,
    extra_test_set_names,  # noqa: F401 (re-exported)
    validate_class_names,
)
from synth.storage import atomic_write_bytes, sha256_file

__all__ = [
    "BadImageError",
    "Quarantined",
    "RealDataset",
    "RealImage",
    "TrainTestDuplicate",
    "extra_test_set_names",
    "import_real_dataset",
    "load_rgb",
    "write_import_report",
]

Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")
MAX_PIXELS = 40_000_000  # ~ a 7700 x 5200 photo; larger files are far more likely bombs than data
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_WHITE = (255, 255, 255, 255)


class BadImageError(InputError):
    """A file that cannot be used as an image; `reason` says why in a few words."""

    def __init__(self, path: str | os.PathLike[str] | bytes, reason: str) -> None:
        self.path = os.fsdecode(path)
        self.reason = reason
        super().__init__(f"{self.path!r}: {reason}")


@dataclass(frozen=True)
class RealImage:
    """One valid photo: where it is, its class and split, and what was validated."""

    path: str
    label: str
    split: Split
    sha256: str
    width: int
    height: int
    phash: str = ""  # 16 hex digits: 64-bit DCT perceptual hash, finds train/test near-copies


@dataclass(frozen=True)
class Quarantined:
    """A file or folder that was skipped, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class RealDataset:
    """A validated real dataset: its classes, valid images, skipped files and a content digest."""

    root: str
    classes: tuple[str, ...]
    entries: tuple[RealImage, ...]
    quarantined: tuple[Quarantined, ...]
    digest: str
    # How the test split was made: None and None when train/ and test/ folders were kept.
    test_fraction: float | None = None
    split_seed: int | None = None
    train_test_duplicates: tuple[TrainTestDuplicate, ...] = ()

    @property
    def split_by_folders(self) -> bool:
        """True when `root` had train/ and test/ folders (the split is the folders')."""
        return self.test_fraction is None

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {label: images}}, with every class listed in every split."""
        tally = Counter((e.split, e.label) for e in self.entries)
        return {split: {c: tally[split, c] for c in self.classes} for split in SPLITS}

    def split(self, split: Split) -> tuple[RealImage, ...]:
        """The entries of one split, in the dataset's order."""
        return tuple(e for e in self.entries if e.split == split)


class _TooBig(Exception):
    """Raised inside `load_rgb` when the header announces more pixels than allowed."""


def _check_size(img: Image.Image, max_pixels: int) -> None:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InputError(f"image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise _TooBig(f"{width}x{height} = {width * height} pixels exceeds {max_pixels}")


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB pixels of a decoded frame; transparency becomes white, 16-bit is scaled, not clipped."""
    if img.mode.startswith("I;16") or img.mode == "I":
        # convert("L") would clip 16-bit values at 255 (a white image); scale to 8 bits instead
        as_int = img.convert("I")
        if img.mode.startswith("I;16") or as_int.getextrema()[1] > 255:
            as_int = as_int.point(lambda v: v * (1 / 256))
        return as_int.convert("L").convert("RGB")
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", img.size, _WHITE), rgba).convert("RGB")
    if img.mode == "RGB":
        return img  # exif_transpose already returned a copy
    return img.convert("RGB")  # CMYK, YCbCr, L, 1, P without transparency, F


def load_rgb(path: str | os.PathLike[str] | bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode an image file fully into an RGB image, or raise `BadImageError`.

    The format comes from the file's content, not its extension. EXIF orientation is applied,
    transparency is composited on white, CMYK / 16-bit / grayscale / palette become RGB, and an
    animated image gives its first frame. The size is checked against `max_pixels` right after
    the header is read, before any pixel is decoded.

    Args:
        path: The file to read.
        max_pixels: Largest width x height accepted; protects against decompression bombs.

    Returns:
        A loaded RGB image, independent of the (closed) file.

    Raises:
        BadImageError: For every kind of bad file (empty, not an image, truncated, corrupt,
            too big, zero size, unsupported mode).
    """
    try:
        if os.stat(path).st_size == 0:
            raise BadImageError(path, "empty file (0 bytes)")
    except OSError as exc:
        raise BadImageError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        # No warnings.catch_warnings() here: it is not thread-safe (tasks run in threads), and
        # PIL only warns above its own MAX_IMAGE_PIXELS, which is above the default max_pixels.
        with Image.open(path) as img:
            _check_size(img, max_pixels)
            img.load()  # truncated files raise here: LOAD_TRUNCATED_IMAGES stays False
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except (_TooBig, Image.DecompressionBombError) as exc:
        raise BadImageError(path, f"too big, possible decompression bomb: {exc}") from None
    except Image.UnidentifiedImageError:
        raise BadImageError(path, "not an image (format not recognised)") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many types; all mean "bad file"
        reason = str(exc) or type(exc).__name__
        raise BadImageError(path, f"cannot decode: {reason}") from None


def _visible(path: Path) -> list[Path]:
    """Entries of a directory without hidden ones, sorted by their raw bytes (stable order)."""
    return sorted(
        (p for p in path.iterdir() if not p.name.startswith(".")), key=lambda p: os.fsencode(p)
    )


def _inside(path: Path, real_root: str) -> bool:
    return os.path.commonpath([os.path.realpath(path), real_root]) == real_root


def _label_of(folder: Path) -> str:
    """The class name of a class folder (NFC, as macOS may store NFD), or ValueError why not."""
    try:
        folder.name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("folder name is not valid UTF-8") from None
    return class_dirname(folder.name)


def _class_folders(parent: Path, real_root: str, bad: list[Quarantined]) -> dict[str, Path]:
    """{label: folder} of the class folders in `parent`; bad folders go to `bad`."""
    folders = {}
    for path in _visible(parent):
        if not path.is_dir():
            continue  # files beside class folders (README, metadata.jsonl) are not data
        if not _inside(path, real_root):
            bad.append(Quarantined(str(path), "symlink leaves the dataset root"))
            continue
        if path.is_symlink():  # it would show another folder's images twice, maybe test as train
            bad.append(Quarantined(str(path), "symlinked class folder (not followed)"))
            continue
        try:
            label = _label_of(path)
        except ValueError as exc:
            bad.append(Quarantined(str(path), f"skipped class folder: {exc}"))
            continue
        if label in folders:
            raise InputError(f"folders {str(folders[label])!r} and {str(path)!r} are one class")
        folders[label] = path
    return folders


def _files(folder: Path, real_root: str, bad: list[Quarantined]) -> list[Path]:
    """Candidate image files under a class folder (recursively); odd entries go to `bad`."""
    found: list[Path] = []
    try:
        listing = _visible(folder)
    except OSError as exc:
        bad.append(Quarantined(str(folder), f"cannot list folder: {exc.strerror or exc}"))
        return found
    for path in listing:
        if not _inside(path, real_root):
            bad.append(Quarantined(str(path), "symlink leaves the dataset root"))
        elif path.is_symlink() and path.is_dir():
            bad.append(Quarantined(str(path), "symlinked folder (not followed)"))
        elif path.is_dir():
            found.extend(_files(path, real_root, bad))
        elif not path.exists():
            bad.append(Quarantined(str(path), "broken symlink or unreadable entry"))
        elif not stat.S_ISREG(path.stat().st_mode):
            bad.append(Quarantined(str(path), "not a regular file"))  # a FIFO would block open()
        else:
            found.append(path)
    return found


def _layout(root: Path, real_root: str, bad: list[Quarantined]) -> dict[Split | None, Path]:
    """{split: folder}; the key None means one folder of classes to split here (`root` itself,
    or train/ when there is no test/: a lone train/ still needs held-out images)."""
    names = {p.name: p for p in _visible(root) if p.is_dir()}
    for name in [n for n in SPLITS if n in names and names[n].is_symlink()]:
        bad.append(Quarantined(str(names.pop(name)), "symlinked split folder (not followed)"))
    if "train" not in names:
        if "test" in names:
            raise InputError(f"`root` {str(root)!r} has test/ but no train/")
        return {None: root}
    for name, path in names.items():
        if name not in SPLITS:
            bad.append(Quarantined(str(path), "not a split folder: only train/ and test/ are read"))
    if "test" not in names:
        return {None: names["train"]}
    return {s: names[s] for s in SPLITS if s in names}


def _match_classes(found: list[str], classes: list[str] | None) -> dict[str, str]:
    """{folder label: class name}; with `classes`, the two sets must be equal (case-insensitive)."""
    validate_class_names(found)  # 'Apple' and 'apple' folders would be one class elsewhere
    if classes is None:
        return {label: label for label in sorted(found)}

    def key(name: str) -> str:  # the same equivalence as naming.validate_class_names
        return unicodedata.normalize("NFKC", class_dirname(name)).casefold()

    validate_class_names(classes)
    wanted = {key(c): c for c in classes}
    have = {key(f): f for f in found}
    missing = sorted(wanted[k] for k in wanted.keys() - have.keys())
    extra = sorted(have[k] for k in have.keys() - wanted.keys())
    if missing or extra:
        raise InputError(
            f"real classes do not match `classes` {list(classes)}: "
            f"missing (no valid class folder) {missing}, extra (folder not in classes) {extra}"
        )
    return {have[k]: wanted[k] for k in have}


def _validate(
    path: Path, max_pixels: int, bad: list[Quarantined]
) -> tuple[str, int, int, str] | None:
    """(sha256, width, height, perceptual hash) of a valid image, or None after quarantining it."""
    try:
        with load_rgb(path, max_pixels=max_pixels) as img:
            size, phash = img.size, f"{perceptual_hash(img):016x}"
        return sha256_file(path), size[0], size[1], phash
    except BadImageError as exc:
        bad.append(Quarantined(str(path), exc.reason))
    except OSError as exc:  # unreadable for sha256 (permissions, I/O error)
        bad.append(Quarantined(str(path), f"cannot read: {exc.strerror or exc}"))
    return None


def _valid_images(
    folder: Path, root: Path, real_root: str, max_pixels: int, bad: list[Quarantined]
) -> list[tuple[Path, tuple[str, int, int, str]]]:
    """(path, (sha256, width, height, phash)) of a folder's valid images; InputError if none."""
    valid = []
    for path in _files(folder, real_root, bad):
        info = _validate(path, max_pixels, bad)
        if info is not None:
            valid.append((path, info))
    if not valid:
        inside = [q for q in bad if q.path.startswith(f"{folder}{os.sep}")]
        shown = "; ".join(f"{os.path.basename(q.path)!r}: {q.reason}" for q in inside[:3])
        raise InputError(
            f"class folder {str(folder.relative_to(root))!r} has no valid image "
            f"({len(inside)} quarantined{': ' if shown else ''}{shown})"
        )
    return valid


def _stratified(n: int, label: str, test_fraction: float, seed: int) -> list[Split]:
    """Splits of a class's n files (sorted by name); seeded per class, >= 1 test if n >= 2."""
    n_test = min(max(round(n * test_fraction), 1), n - 1) if n >= 2 else 0
    order = list(range(n))
    random.Random(f"{seed}:{label}").shuffle(order)  # per class: adding a class moves no other
    test = set(order[:n_test])
    return ["test" if i in test else "train" for i in range(n)]


def _digest(root: Path, entries: list[RealImage]) -> str:
    rows = sorted(
        (e.split, e.label, os.fsencode(os.path.relpath(e.path, root)), e.sha256) for e in entries
    )
    h = hashlib.sha256()
    for split, label, rel, sha in rows:
        h.update(b"\0".join((split.encode(), label.encode(), rel, sha.encode())) + b"\n")
    return h.hexdigest()


def import_real_dataset(
    root: str | os.PathLike[str],
    *,
    classes: list[str] | tuple[str, ...] | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    require_test: bool = True,
    duplicate_bits: int = DUPLICATE_BITS,
    max_pixels: int = MAX_PIXELS,
) -> RealDataset:
    """Validate a real ImageFolder directory and assign every valid photo to train or test.

    Bad files (corrupt, truncated, not images, too big, symlinks leaving `root`, special files)
    and class folders whose names are unsafe are quarantined with their reason; they never stop
    the import. Nothing is written.

    Args:
        root: `<root>/train/<Class>/...` and `<root>/test/<Class>/...` (split kept), or
            `<root>/<Class>/...` or `<root>/train/<Class>/...` alone (split here).
        classes: The synthetic set's class names. When given, the real classes must be the same
            set (compared like `validate_class_names`: case and Unicode form do not matter),
            and labels and class order follow `classes`.
        test_fraction: Share of each class held out when `root` has no test/ folder.
        split_seed: Seed of that split (stratified, per class, deterministic); nothing else
            seeds it, so preprocessing settings never move a photo between train and test.
        require_test: Refuse a dataset whose test split is empty (False: the caller scores
            every image, as for an extra test set).
        duplicate_bits: Test images within this many perceptual-hash bits of a training image
            are reported as train/test duplicates.
        max_pixels: Largest image accepted (see `load_rgb`).

    Returns:
        The dataset's classes, entries (train then test, by class, by file name), quarantined
        files, a digest over (split, label, relative path, file sha256), how the split was made
        and the test images that duplicate training images.

    Raises:
        InputError: `root` is not a directory; bad `test_fraction`; no class folders; a class
            with no valid image; a test class absent from train; classes differing from
            `classes`; an empty test split (with `require_test`).
    """
    # 1. Check inputs
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise InputError(f"`root` {str(root)!r} is not a directory")
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"`test_fraction` must be in (0, 1), got {test_fraction}")
    real_root = os.path.realpath(root)
    bad: list[Quarantined] = []

    # 2. Find splits and class folders
    layout = _layout(root, real_root, bad)
    folders = {split: _class_folders(path, real_root, bad) for split, path in layout.items()}
    top = folders.get(None, folders.get("train", {}))
    if not top:
        raise InputError(f"no class folders under `root` {str(root)!r}")
    stray = sorted(set(folders.get("test", {})) - set(top))
    if stray:
        raise InputError(f"classes {stray} are in test/ but not in train/ under {str(root)!r}")
    names = _match_classes(list(top), None if classes is None else list(classes))

    # 3. Validate every file, then split
    entries: list[RealImage] = []
    for split, by_label in folders.items():
        for label, folder in sorted(by_label.items()):
            valid = _valid_images(folder, root, real_root, max_pixels, bad)
            splits = (
                [split] * len(valid)
                if split is not None
                else _stratified(len(valid), names[label], test_fraction, split_seed)
            )
            for (path, (sha, w, h, phash)), s in zip(valid, splits, strict=True):
                entries.append(RealImage(str(path), names[label], s, sha, w, h, phash))
    seeded = None in layout
    if require_test and not any(e.split == "test" for e in entries):
        raise InputError(_empty_test_message(root, seeded, test_fraction))

    # 4. Order, digest, and look for test images that are training images
    class_order = tuple(classes) if classes is not None else tuple(sorted(names.values()))
    rank = {c: i for i, c in enumerate(class_order)}
    entries.sort(key=lambda e: (SPLITS.index(e.split), rank[e.label], os.fsencode(e.path)))
    bad.sort(key=lambda q: os.fsencode(q.path))
    train = [e for e in entries if e.split == "train"]
    test = [e for e in entries if e.split == "test"]
    return RealDataset(
        str(root),
        class_order,
        tuple(entries),
        tuple(bad),
        _digest(root, entries),
        test_fraction=test_fraction if seeded else None,
        split_seed=split_seed if seeded else None,
        train_test_duplicates=train_test_duplicates(train, test, duplicate_bits),
    )


def _empty_test_message(root: Path, seeded: bool, test_fraction: float) -> str:
    if seeded:
        return (
            f"`test_fraction` {test_fraction} holds out no image of {str(root)!r}: every class "
            "has fewer than 2 valid photos; add photos, or a test/<Class>/ folder"
        )
    return (
        f"test/ under {str(root)!r} holds no class folder with photos: add test/<Class>/ "
        "folders, or remove test/ to split train/ by `test_fraction`"
    )


def write_import_report(dataset: RealDataset, path: str | os.PathLike[str]) -> Path:
    """Write the dataset's index and quarantine list as JSON (atomically); returns the path.

    Non-UTF-8 file names survive: JSON escapes them (`ensure_ascii`), and `json.loads` gives
    back the same `str`, which `os.fsencode` turns into the original bytes.
    """
    report = {
        "root": dataset.root,
        "classes": list(dataset.classes),
        "digest": dataset.digest,
        "counts": dataset.counts(),
        "split_by": "folders" if dataset.split_by_folders else "test_fraction",
        "test_fraction": dataset.test_fraction,  # null when train/ and test/ were kept
        "split_seed": dataset.split_seed,
        "train_test_duplicates": [asdict(d) for d in dataset.train_test_duplicates],
        "entries": [asdict(e) for e in dataset.entries],
        "quarantined": [asdict(q) for q in dataset.quarantined],
        "quarantined_by_reason": dict(Counter(q.reason for q in dataset.quarantined)),
    }
    out = Path(path)
    atomic_write_bytes(out, (json.dumps(report, indent=2, ensure_ascii=True) + "\n").encode())
    return out
