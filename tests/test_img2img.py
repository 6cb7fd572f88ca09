"""img2img: variations of real train photos, with source digests, seeds, resume and drift."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synth.config import ExperimentConfig, GenerationConfig, parse_config
from synth.errors import ConfigError, DatasetDriftError, InputError
from synth.generation import (
    PROVENANCE_FIELDS,
    generate_batch,
    manifest_path,
    model_info,
    plan_batches,
    plan_images,
    prepare_output,
    read_manifest,
    verify_dataset,
)
from synth.generation.img2img import fit_to_size, source_photos, with_experiment_sources
from synth.seeds import derive_seed
from synth.storage import sha256_file
from tests.helpers import file_ids
from tests.reliability.audit import compare_to_reference

REPO = Path(__file__).resolve().parents[1]
# (outer colour, inner square colour) per photo; sizes differ so the letterbox is exercised
_TRAIN = {"apple": [((200, 30, 30), (250, 220, 0)), ((150, 0, 40), (20, 200, 20))]}
_TRAIN["banana"] = [((240, 220, 40), (90, 60, 10)), ((200, 200, 0), (0, 0, 200))]
_TEST = {"apple": ((180, 20, 60), (255, 255, 255)), "banana": ((250, 240, 90), (0, 0, 0))}


def _photo(path: Path, outer, inner, size=(40, 24)) -> None:
    img = Image.new("RGB", size, outer)
    img.paste(Image.new("RGB", (size[0] // 2, size[1] // 2), inner), (size[0] // 4, size[1] // 4))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


@pytest.fixture
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    for label, colours in _TRAIN.items():
        for n, (outer, inner) in enumerate(colours):
            _photo(root / "train" / label / f"{n}.png", outer, inner, size=(40 + 8 * n, 24))
    for label, (outer, inner) in _TEST.items():
        _photo(root / "test" / label / "t.png", outer, inner)
    return root


@pytest.fixture
def config(tiny_model_dir, photos) -> GenerationConfig:
    return GenerationConfig(
        classes=["apple", "banana"],
        model=str(tiny_model_dir),
        steps=4,
        width=32,
        height=32,
        batch_size=3,  # batches cut across photos and classes
        seed=3,
        strategy="img2img",
        source_images=str(photos),
        variations_per_image=2,
        strength=0.5,
    )


def _generate(config: GenerationConfig, root: Path):
    model = model_info(config)
    prepare_output(root, config, model)
    for batch in plan_batches(config, model=model):
        generate_batch(config, root, batch.items)
    ref, missing = verify_dataset(root, config)
    assert not missing
    return ref


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def test_img2img_rows_carry_source_digests_and_their_own_seeds(tmp_path, config, photos):
    ref = _generate(config, tmp_path / "ds")
    assert ref.counts == {"apple": 4, "banana": 4} and (tmp_path / "ds" / "dataset.json").is_file()
    rows = sorted(read_manifest(manifest_path(tmp_path / "ds")), key=lambda r: r.file_name)
    test_shas = {sha256_file(p) for p in (photos / "test").rglob("*.png")}
    for label in ("apple", "banana"):
        shas = sorted(sha256_file(p) for p in (photos / "train" / label).glob("*.png"))
        mine = [r for r in rows if r.label == label]
        # by photo (sorted by sha256), then variation
        assert [r.source_sha256 for r in mine] == [s for s in shas for _ in range(2)]
        assert [r.seed for r in mine] == [derive_seed(3, label, s, v) for s in shas for v in (0, 1)]
    assert all(r.strategy == "img2img" and r.strength == 0.5 for r in rows)
    assert not test_shas & {r.source_sha256 for r in rows}
    with Image.open(tmp_path / "ds" / "train" / rows[0].file_name) as img:
        assert img.size == (32, 32)


def test_img2img_output_depends_on_the_source_photo(tmp_path, config):
    plan = plan_images(config)
    a, b = plan[0], plan[2]  # apple: variation 0 of its first and of its second photo
    assert a.source_sha256 != b.source_sha256
    b = replace(b, seed=a.seed)  # the same seed, another photo
    for root, items in ((tmp_path / "ds", (a, b)), (tmp_path / "again", (a,))):
        prepare_output(root, config)
        generate_batch(config, root, items)
    a_img, b_img = (_pixels(tmp_path / "ds" / "train" / i.file_name) for i in (a, b))
    # the tiny random VAE and UNet blur any input into near-noise, so the difference is small,
    # but only the photo differs: the same image made again is identical
    assert np.array_equal(a_img, _pixels(tmp_path / "again" / "train" / a.file_name))
    assert not np.array_equal(a_img, b_img)


def test_changed_strength_or_source_bytes_is_drift_naming_the_field(tmp_path, config, photos):
    root = tmp_path / "ds"
    _generate(config, root)
    with pytest.raises(DatasetDriftError, match=r"strength 0\.5 → 0\.75 \(8 images\)"):
        prepare_output(root, config.model_copy(update={"strength": 0.75}))
    # the first apple photo by sha256 gets new bytes: its 2 images (at least) are now other ones
    first = min((photos / "train" / "apple").glob("*.png"), key=sha256_file)
    _photo(first, (10, 10, 250), (250, 250, 250), size=(33, 21))
    with pytest.raises(DatasetDriftError, match="source_sha256") as info:
        prepare_output(root, config)
    assert "; strength" not in str(info.value) and "seed (" in str(info.value)


def test_a_test_photo_among_the_train_photos_is_refused(config, photos):
    shutil.copy(photos / "test" / "banana" / "t.png", photos / "train" / "banana" / "copy.png")
    with pytest.raises(InputError, match="test image must never guide generation"):
        source_photos(config)


_RUN = """
import sys
from pathlib import Path
from synth.config import GenerationConfig
from synth.generation import generate_batch, model_info, plan_batches, prepare_output

config = GenerationConfig.model_validate_json(sys.argv[1])
root = Path(sys.argv[2])
model = model_info(config)
prepare_output(root, config, model)
for batch in plan_batches(config, model=model):
    generate_batch(config, root, batch.items)
"""


def test_img2img_resumes_exactly_after_sigkill(tmp_path, config):
    root = tmp_path / "ds"
    env = {
        **os.environ,
        "DATASYNTH_CRASH_AT": "before-manifest:4",  # image 4 renamed, no row
        "OMP_NUM_THREADS": str(torch.get_num_threads()),  # on a CPU it decides some image bytes
    }
    killed = subprocess.run(
        [sys.executable, "-c", _RUN, config.model_dump_json(), str(root)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    before = file_ids(root)
    assert len(before) == 4 and len(read_manifest(manifest_path(root))) == 3
    resumed = _generate(config, root)
    after = file_ids(root)
    assert {n: after[n] for n in before} == before  # the orphan was adopted, nothing redone
    reference = _generate(config, tmp_path / "uninterrupted")
    assert _provenance(root) == _provenance(tmp_path / "uninterrupted")
    same = compare_to_reference(root, tmp_path / "uninterrupted")
    # the rest of image 4's batch ran as a smaller batch: at 2 torch threads a few pixels may
    # differ by a level or two (docs/GENERATION.md, "Exactness, honestly"); at 1, none does
    assert same.same_images and same.max_pixel_diff <= 2, same
    if torch.get_num_threads() == 1:
        assert resumed.digest == reference.digest


def _provenance(root: Path) -> dict[str, dict]:
    rows = read_manifest(manifest_path(root))
    return {r.file_name: {f: getattr(r, f) for f in PROVENANCE_FIELDS} for r in rows}


def test_img2img_config_rules_are_one_clear_error_each(tmp_path):
    img2img = {"strategy": "img2img", "source_images": str(tmp_path)}
    with pytest.raises(ConfigError, match="`images_per_class` does not apply"):
        parse_config(GenerationConfig, {**img2img, "images_per_class": 50})
    with pytest.raises(ConfigError, match=r"`strength` apply only to strategy 'img2img'"):
        parse_config(GenerationConfig, {"strength": 0.3})
    with pytest.raises(ConfigError, match="raise `steps` or `strength`"):
        parse_config(GenerationConfig, {**img2img, "steps": 2, "strength": 0.3})
    saved = GenerationConfig(**img2img).model_dump(mode="json")  # as dataset.json stores it
    assert GenerationConfig.model_validate(saved).strategy == "img2img"


def test_an_experiment_varies_its_own_real_train_photos(tmp_path):
    exp = ExperimentConfig(
        real_data=str(tmp_path), test_fraction=0.3, split_seed=9, generation={"strategy": "img2img"}
    )
    gen = with_experiment_sources(exp.generation, exp.real_data, 0.3, 9)
    assert (gen.source_images, gen.source_test_fraction, gen.source_split_seed) == (
        str(tmp_path),
        0.3,
        9,
    )
    other = exp.generation.model_copy(update={"source_images": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match="differs from `real_data`"):
        with_experiment_sources(other, exp.real_data, 0.3, 9)


def test_fit_to_size_letterboxes_whole_photo_centred_on_black():
    img = fit_to_size(Image.new("RGB", (40, 20), (255, 0, 0)), 32, 32)
    px = np.asarray(img)
    assert img.size == (32, 32) and px[0, 0].tolist() == [0, 0, 0]  # bar above
    assert px[16, 0].tolist() == [255, 0, 0] and px[16, 31].tolist() == [255, 0, 0]  # full width
