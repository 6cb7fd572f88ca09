"""`datasynth generate` as users run it: killed with SIGKILL and resumed; clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synth.generation import manifest_path, read_manifest
from tests.helpers import assert_dataset_intact, file_ids

pytestmark = pytest.mark.usefixtures("prefect_server")


def _config(tmp_path: Path, model_dir: Path, **extra) -> Path:
    lines = {
        "classes": '["apple", "banana"]',
        "images_per_class": "8",
        "model": f'"{model_dir}"',
        "steps": "3",
        "width": "64",
        "height": "64",
        "batch_size": "4",
        "seed": "5",
        **extra,
    }
    path = tmp_path / "gen.toml"
    path.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
    return path


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    "point",
    [
        "before-manifest:7",
        pytest.param("denoise-step:9", marks=pytest.mark.heavy),
        pytest.param("before-rename:6", marks=pytest.mark.heavy),
        pytest.param("mid-manifest:5", marks=pytest.mark.heavy),
    ],
)
def test_generate_killed_with_sigkill_resumes_exactly(tmp_path, tiny_model_dir, point):
    config = _config(tmp_path, tiny_model_dir)
    out = tmp_path / "ds"
    killed = _cli("generate", str(config), "--out", str(out), env={"DATASYNTH_CRASH_AT": point})
    assert killed.returncode == -9, killed.stderr[-2000:]
    counted = {r.file_name for r in read_manifest(manifest_path(out))}
    before = file_ids(out)
    assert 0 < len(before) < 16

    rerun = _cli("generate", str(config), "--out", str(out))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_dataset_intact(out, {"apple": 8, "banana": 8})
    after = file_ids(out)
    untouched = {n for n in before if after.get(n) == before[n]}
    assert untouched == set(before)  # no finished image was generated twice
    assert len(after) - len(before) == 16 - len(before)  # only the missing ones were generated
    assert counted <= set(before)


def test_generate_cli_reports_bad_config_and_class_names(tmp_path, tiny_model_dir):
    bad = _cli(
        "generate",
        str(_config(tmp_path, tiny_model_dir, images_per_class="-1")),
        "--out",
        str(tmp_path / "x"),
    )
    assert bad.returncode == 2 and "`images_per_class`" in bad.stderr
    bad_name = _cli(
        "generate",
        str(_config(tmp_path, tiny_model_dir, classes='["../etc"]')),
        "--out",
        str(tmp_path / "x"),
    )
    assert bad_name.returncode == 2 and "path separator" in bad_name.stderr
    assert not (tmp_path / "x").exists()
    assert "Traceback" not in bad.stderr + bad_name.stderr


def test_generate_cli_unreachable_hub_id_leaves_dataset_untouched(tmp_path, tiny_model_dir):
    out = tmp_path / "ds"
    assert (
        _cli("generate", str(_config(tmp_path, tiny_model_dir)), "--out", str(out)).returncode == 0
    )
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    hub = _cli(
        "generate",
        str(_config(tmp_path, tiny_model_dir, model='"acme/missing-model"')),
        "--out",
        str(out),
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert hub.returncode == 2 and "local directory" in hub.stderr
    assert "Traceback" not in hub.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_generate_cli_refuses_changed_settings_then_regenerates_exactly_them(
    tmp_path, tiny_model_dir
):
    config = _config(tmp_path, tiny_model_dir, images_per_class="2", width="32", height="32")
    out = tmp_path / "ds"
    assert _cli("generate", str(config), "--out", str(out)).returncode == 0
    before = file_ids(out)
    changed = ["--set", "steps=4", "--set", 'prompt_template="a still life of {a_name}"']
    refused = _cli("generate", str(config), "--out", str(out), *changed)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "steps 3 → 4 (4 images)" in refused.stderr
    assert "prompt (4 images): 'a photo of an apple' → 'a still life of an apple' (2)" in (
        refused.stderr
    )
    assert "--regenerate-changed" in refused.stderr and file_ids(out) == before
    redone = _cli("generate", str(config), "--out", str(out), *changed, "--regenerate-changed")
    assert redone.returncode == 0, redone.stderr[-2000:]
    after = file_ids(out)
    assert set(after) == set(before) and all(after[n] != before[n] for n in before)
    summary = json.loads((out / "dataset.json").read_text())
    assert summary["provenance"]["steps"] == [{"value": 4, "images": 4}]
