"""SIGKILL generation at random points, rerun, and count what was lost, duplicated or redone.

Two drivers (docs/RELIABILITY.md says which row used which):
- the engine (synth's prepare_output + generate_batch, as the flow calls them, minus Prefect)
  in processes forked from a preloaded server: a child per run, so dozens of kills are cheap;
- the `datasynth generate` CLI with Prefect, as users run it: ~10-40 s per process, so a
  chain of random kills (each run resuming the last one's wreck) and one final rerun.
Crash points come from a seeded RNG; the heavy tests print and log every draw.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest

from synth.config import GenerationConfig
from synth.generation import model_info, plan_images, prepare_output, split_batches
from tests.reliability.audit import audit, compare_to_reference, final_images
from tests.reliability.engine import record, run_engine, run_in_child, write_toml

POINTS = ("denoise-step", "before-rename", "before-manifest", "mid-manifest")
CAMPAIGN_SEED = 20251125  # seeds the random crash points of the heavy campaigns
ENGINE_TRIALS = 24
CLI_CRASHES = 5


def _crash_config(model_dir: Path) -> GenerationConfig:
    """2 classes x 6 images in batches of 3, 3 steps: 4 batches, 12 images, 12 denoising steps."""
    return GenerationConfig(
        classes=["apple", "banana"],
        images_per_class=6,
        model=str(model_dir),
        steps=3,
        width=64,
        height=64,
        batch_size=3,
        seed=5,
    )


IMAGES = 12


@pytest.fixture
def crash_config(tiny_model_dir) -> GenerationConfig:
    return _crash_config(tiny_model_dir)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir) -> Path:
    """A fault-free run of `crash_config`, in a child process like the crashed runs."""
    out = tmp_path_factory.mktemp("reference") / "ds"
    assert run_in_child(_crash_config(tiny_model_dir), out).exitcode == 0
    return out


def hits_left(config: GenerationConfig, root: Path, point: str) -> int:
    """How many times a resumed run would reach `point` (an estimate; a miss just completes)."""
    done = set(final_images(root))
    batches = split_batches(plan_images(config), config.batch_size)
    missing = [i for b in batches for i in b if i.file_name not in done]
    if point == "denoise-step":
        calls = sum(1 for b in batches if any(i.file_name not in done for i in b))
        return calls * config.steps
    if point == "before-rename":
        return len(missing) + 1  # + dataset.json
    return len(missing)


def draw_crash(rng: random.Random, config: GenerationConfig, root: Path) -> str:
    point = rng.choice(POINTS)
    return f"{point}:{rng.randint(1, max(1, hits_left(config, root, point)))}"


def crash_and_rerun(
    config: GenerationConfig, out: Path, next_crash: Callable[[], str], kills: int, reference: Path
) -> dict:
    """Kill `kills` runs in turn (each resuming the last one's wreck), then rerun cleanly.

    `next_crash()` gives each run's crash point once the previous run has shaped the directory.
    After every kill, counted rows must match their files and no finished image may have been
    rewritten; after the rerun, the dataset must be complete and clean. Returns the figures.
    """
    crashes, fired = [], []
    for _ in range(kills):
        spec = next_crash()
        before = final_images(out)
        result = run_in_child(config, out, {"DATASYNTH_CRASH_AT": spec})
        assert result.killed or result.exitcode == 0, (spec, result)
        crashes.append(spec)
        fired.append(result.killed)
        mid = audit(out, config, before, finished=not result.killed)
        assert not mid.problems(), (spec, mid)
    before = final_images(out)
    rerun = run_in_child(config, out)
    assert rerun.exitcode == 0, rerun.error
    final = audit(out, config, before)
    return {
        "crashes": crashes,
        "fired": fired,
        "complete_before_rerun": len(before),
        **asdict(final),
        **asdict(compare_to_reference(out, reference)),
        "problems": final.problems(),
    }


def _assert_clean(figures: dict) -> None:
    assert not figures["problems"], figures
    assert figures["counted"] == IMAGES and figures["same_images"], figures
    assert figures["max_pixel_diff"] <= 2, figures  # partial batches rerun smaller: see docs


def test_engine_killed_three_times_in_a_row_resumes_exactly(tmp_path, crash_config, reference):
    """Each run resumes the last one's wreck: a temp file, a torn row, a half-denoised batch."""
    crashes = ["before-rename:5", "mid-manifest:2", "denoise-step:2"]
    figures = crash_and_rerun(
        crash_config, tmp_path / "ds", iter(crashes).__next__, len(crashes), reference
    )
    assert figures["fired"] == [True, True, True], figures
    _assert_clean(figures)


def test_resume_removes_temp_files_beside_dataset_json_too(tmp_path, crash_config):
    """A kill while dataset.json is written leaves its temp file in the root, not in train/."""
    out = tmp_path / "ds"
    config = crash_config.model_copy(update={"images_per_class": 1})
    run_engine(config, out)
    (out / ".dataset.json.tmp-4242").write_text("{")
    (out / "train" / "apple" / ".000000.png.tmp-4242").write_bytes(b"half")
    state = prepare_output(out, config, model_info(config))
    assert state.repairs["temp_files_removed"] == 2
    assert not list(out.rglob("*.tmp-*"))


@pytest.mark.heavy
@pytest.mark.timeout(3600)  # dozens of processes; a loaded CI machine is slow
def test_engine_killed_at_random_points_loses_nothing(tmp_path, crash_config, reference):
    rng = random.Random(CAMPAIGN_SEED)
    trials = []
    for trial in range(ENGINE_TRIALS):
        out = tmp_path / f"trial-{trial:02d}"
        kills = 2 if rng.random() < 1 / 3 else 1  # sometimes the resuming run is killed too
        figures = crash_and_rerun(
            crash_config, out, lambda out=out: draw_crash(rng, crash_config, out), kills, reference
        )
        print(f"trial {trial:02d}: {figures}")
        trials.append(figures)
    totals = {
        k: sum(t[k] for t in trials)
        for k in ("lost", "duplicated", "corrupt", "orphans", "temp_files", "regenerated_twice")
    }
    record(
        "engine-crash",
        seed=CAMPAIGN_SEED,
        trials=len(trials),
        kills=sum(sum(t["fired"]) for t in trials),
        runs=sum(len(t["crashes"]) + 1 for t in trials),
        points=[list(zip(t["crashes"], t["fired"], strict=True)) for t in trials],
        byte_identical=sum(t["byte_identical"] for t in trials),
        differing=sum(t["differing"] for t in trials),
        max_pixel_diff=max(t["max_pixel_diff"] for t in trials),
        **totals,
    )
    assert sum(sum(t["fired"]) for t in trials) >= 20
    for figures in trials:
        _assert_clean(figures)


# --------------------------------------------------------------------------------- the CLI


def _cli(config: Path, out: Path, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "flows", "generate", str(config), "--out", str(out)]
        + ["--retry-delay", "0"],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.heavy
@pytest.mark.timeout(3600)
@pytest.mark.usefixtures("prefect_server")
def test_cli_killed_at_random_points_loses_nothing(tmp_path, crash_config):
    """A chain of SIGKILLed `datasynth generate` runs, each resuming the last, then a rerun.

    24 images (8 batches), so that a chain of CLI_CRASHES kills rarely runs out of work.
    """
    config = crash_config.model_copy(update={"images_per_class": 12})
    reference = tmp_path / "reference"
    assert run_in_child(config, reference).exitcode == 0
    rng = random.Random(CAMPAIGN_SEED + 1)
    config_file = write_toml(tmp_path / "gen.toml", config)
    out = tmp_path / "ds"
    draws = []
    for _ in range(CLI_CRASHES):
        spec = draw_crash(rng, config, out)
        before = final_images(out)
        run = _cli(config_file, out, {"DATASYNTH_CRASH_AT": spec})
        assert run.returncode in (0, -9), run.stderr[-3000:]
        draws.append((spec, run.returncode == -9))
        mid = audit(out, config, before, finished=run.returncode == 0)
        assert not mid.problems(), (spec, mid)
        if run.returncode == 0:
            break  # nothing left to crash in: the chain ends in a complete dataset
    before = final_images(out)
    rerun = _cli(config_file, out)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Traceback" not in rerun.stderr
    final = audit(out, config, before)
    same = compare_to_reference(out, reference)
    kills = sum(fired for _, fired in draws)
    print(f"CLI chain: {draws} -> {final} {same}")
    record(
        "cli-crash",
        seed=CAMPAIGN_SEED + 1,
        kills=kills,
        runs=len(draws) + 1,
        points=draws,
        **asdict(final),
        **asdict(same),
    )
    assert kills >= 3 and not final.problems() and final.counted == 24
    assert same.same_images and same.max_pixel_diff <= 2
