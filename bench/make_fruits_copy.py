"""Copy the study's Kaggle fruit photos into data/fruits, downscaled so no side exceeds 256 px.

The split and the file names are kept. JPEGs are re-encoded as JPEG (quality 90); the files that
are really PNG (under a '.jpg' name, as in the original set) stay PNG under the same name, with
their transparency, because that oddity is part of the real data. Annotations are not copied.

    uv run python bench/make_fruits_copy.py [--src ../shared/data/fruits-kaggle] [--dst data/fruits]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image, ImageOps

from synth.storage import atomic_write_bytes

REPO = Path(__file__).resolve().parents[1]
MAX_SIDE = 256  # px: keeps the copy a few MB while staying 4x above the 64 px training size
SPLITS = ("train", "test")
CLASSES = ("Apple", "Banana", "Orange")


def _shrunk(path: Path) -> tuple[bytes, str, bool, bool]:
    """(encoded bytes, format, has an alpha channel, has a non-opaque pixel) of one photo's copy."""
    with Image.open(path) as img:
        fmt = img.format
        img.load()
        img = ImageOps.exif_transpose(img)  # bake the orientation in: the copy carries no EXIF
    has_alpha = img.mode in ("RGBA", "LA") or "transparency" in img.info
    # palette images would be resized with NEAREST; RGB(A) gets a real LANCZOS filter
    img = img.convert("RGBA" if has_alpha else "RGB")
    see_through = has_alpha and img.getchannel("A").getextrema()[0] < 255
    img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if fmt == "PNG":
        img.save(buf, format="PNG", optimize=True)
    else:
        img.save(buf, format="JPEG", quality=90)
    return buf.getvalue(), fmt or "?", has_alpha, see_through


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=REPO.parent / "shared/data/fruits-kaggle")
    parser.add_argument("--dst", type=Path, default=REPO / "data/fruits")
    args = parser.parse_args()

    counts = {s: 0 for s in SPLITS}
    png = alpha = see_through = total = 0
    for split in SPLITS:
        for cls in CLASSES:
            out_dir = args.dst / split / cls
            out_dir.mkdir(parents=True, exist_ok=True)
            for src in sorted((args.src / split / cls).iterdir()):
                if src.name.startswith(".") or not src.is_file():
                    continue
                data, fmt, has_alpha, transparent = _shrunk(src)
                atomic_write_bytes(out_dir / src.name, data)
                counts[split] += 1
                png += fmt == "PNG"
                alpha += has_alpha
                see_through += transparent
                total += len(data)
    print(
        f"fruits copy: train={counts['train']} test={counts['test']} png={png} "
        f"alpha={alpha} transparent={see_through} size={total / 1e6:.2f} MB -> {args.dst}"
    )


if __name__ == "__main__":
    main()
