import dataclasses

from synth.generation import (
    ManifestRow,
    append_rows,
    dataset_digest,
    manifest_path,
    read_manifest,
    repair_manifest,
    sample_images,
)


def _row(i: int, sha: str = "ab") -> ManifestRow:
    return ManifestRow(
        file_name=f"c/{i:06d}.png",
        label="c",
        class_dir="c",
        index=i,
        prompt="p",
        negative_prompt="",
        seed=i,
        model="m",
        model_revision="r",
        scheduler="default",
        steps=1,
        guidance_scale=1.0,
        width=8,
        height=8,
        dtype="fp32",
        device="cpu",
        sha256=sha,
        created="t",
    )


def test_read_manifest_ignores_torn_tail_and_repair_cuts_it(tmp_path):
    path = tmp_path / "metadata.jsonl"
    append_rows(path, [_row(0), _row(1)])
    with open(path, "a") as fh:
        fh.write('{"file_name": "c/0000')  # a crash mid-append
    assert [r.index for r in read_manifest(path)] == [0, 1]
    assert repair_manifest(path) == len('{"file_name": "c/0000')
    append_rows(path, [_row(2)])
    assert [r.index for r in read_manifest(path)] == [0, 1, 2]
    assert repair_manifest(path) == 0


def test_dataset_digest_ignores_order_and_times_but_not_content():
    rows = [_row(0, "aa"), _row(1, "bb")]
    later = [dataclasses.replace(r, created="later") for r in reversed(rows)]
    assert dataset_digest(rows) == dataset_digest(later)
    assert dataset_digest(rows) != dataset_digest([_row(0, "aa"), _row(1, "cc")])


def test_sample_images_skips_excluded_rows_and_takes_the_first_by_name(tmp_path):
    rows = [_row(i) for i in (3, 0, 2)] + [dataclasses.replace(_row(1), excluded="nsfw")]
    rows.append(dataclasses.replace(_row(0), excluded="nsfw"))  # 0 regenerated, then flagged
    path = manifest_path(tmp_path)
    path.parent.mkdir(parents=True)
    append_rows(path, rows)
    found = sample_images(tmp_path, ["c", "other"], per_class=2)
    assert found == {
        "c": [tmp_path / "train" / "c/000002.png", tmp_path / "train" / "c/000003.png"],
        "other": [],
    }
