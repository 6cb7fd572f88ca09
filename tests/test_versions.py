"""Dataset versions: naming, resuming a crashed version, pruning, version records and trends."""

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from synth.config import ExperimentConfig, GenerationConfig
from synth.evaluation import MetricSummary, RecipeSummary
from synth.reporting import (
    TrendPoint,
    config_digest,
    finish_version,
    list_versions,
    new_version_dir,
    open_version,
    prune_versions,
    record_version,
    trend_rows,
    trend_table,
    version_seed,
)

NOW = datetime(2025, 3, 1, 2, 0, 0, tzinfo=UTC)
DATASET = {"digest": "ab" * 32, "counts": {"apple": 2, "banana": 2}, "images": 4}


def _summary(recipe: str, accuracy: float | None, ci: float) -> RecipeSummary:
    value = None if accuracy is None else MetricSummary(accuracy, ci)
    return RecipeSummary(recipe, "real-test", 3, {"accuracy": value})


def _metrics(real: float, synthetic: float | None) -> list[RecipeSummary]:
    return [_summary("real", real, 0.02), _summary("synthetic", synthetic, 0.05)]


def _complete(root: Path, now: datetime, metrics: list[RecipeSummary] | None = None) -> Path:
    path = new_version_dir(root, now)
    record_version(path, DATASET, metrics or _metrics(0.9, 0.5), seed=1, config_digest="")
    return path


def test_new_version_dir_names_are_unique_and_sort_in_creation_order(tmp_path):
    made = [_complete(tmp_path, NOW) for _ in range(3)]  # three in the same second
    made.append(_complete(tmp_path, NOW + timedelta(days=1)))
    names = [p.name for p in made]
    assert names[0] == "20250301T020000Z-0001"
    assert len(set(names)) == 4 and sorted(names) == names
    assert [v.name for v in list_versions(tmp_path)] == names


def test_new_version_dir_dates_names_in_utc_and_rejects_naive_times(tmp_path):
    paris = timezone(timedelta(hours=1))
    path = new_version_dir(tmp_path, datetime(2025, 3, 1, 3, 0, 0, tzinfo=paris))
    assert path.name.startswith("20250301T020000Z-")
    with pytest.raises(ValueError, match="`now` must be timezone-aware"):
        new_version_dir(tmp_path / "other", datetime(2025, 3, 1))


def test_new_version_dir_resumes_an_incomplete_latest_version(tmp_path):
    done = _complete(tmp_path, NOW)
    crashed = new_version_dir(tmp_path, NOW + timedelta(days=1))
    (crashed / "train").mkdir()  # a crash mid-generation: no version.json
    resumed = new_version_dir(tmp_path, NOW + timedelta(days=2))
    assert resumed == crashed and resumed != done
    assert [v.path for v in list_versions(tmp_path)] == [str(done)]  # incomplete is not listed
    record_version(resumed, DATASET, _metrics(0.9, 0.6), seed=2, config_digest="")
    assert new_version_dir(tmp_path, NOW + timedelta(days=3)) not in (done, crashed)


def test_new_version_dir_starts_afresh_when_the_config_changed(tmp_path):
    crashed = new_version_dir(tmp_path, NOW, config_digest="old")
    assert new_version_dir(tmp_path, NOW, config_digest="old") == crashed
    fresh = new_version_dir(tmp_path, NOW, config_digest="new")
    assert fresh != crashed and fresh.name > crashed.name


def test_prune_versions_keeps_the_newest_complete_and_the_one_in_progress(tmp_path):
    paths = [_complete(tmp_path, NOW + timedelta(days=d)) for d in range(4)]
    abandoned = new_version_dir(tmp_path, NOW + timedelta(days=4), config_digest="old")
    newest = _complete(tmp_path, NOW + timedelta(days=5))
    in_progress = new_version_dir(tmp_path, NOW + timedelta(days=6))
    removed = prune_versions(tmp_path, keep=2)
    assert removed == [str(p) for p in [*paths[:3], abandoned]]
    left = sorted(p.name for p in (tmp_path / "versions").iterdir())
    assert left == [paths[3].name, newest.name, in_progress.name]
    assert new_version_dir(tmp_path, NOW + timedelta(days=7)) == in_progress  # still resumable
    assert prune_versions(tmp_path, keep=2) == []


def test_prune_versions_rejects_keep_below_one(tmp_path):
    with pytest.raises(ValueError, match="`keep` must be >= 1, got 0"):
        prune_versions(tmp_path, keep=0)


def test_record_version_writes_a_complete_record(tmp_path):
    path = new_version_dir(tmp_path, NOW, config_digest="cfg")
    info = record_version(path, DATASET, _metrics(0.9, 0.5), seed=42, config_digest="cfg")
    data = json.loads((path / "version.json").read_text())
    assert data == {
        "name": "20250301T020000Z-0001",
        "created": "2025-03-01T02:00:00+00:00",
        "seed": 42,
        "config_digest": "cfg",
        "dataset": DATASET,
        "metrics": [m.to_dict() for m in _metrics(0.9, 0.5)],
    }
    assert list_versions(tmp_path) == [info]
    with pytest.raises(ValueError, match=r"`dataset` lacks \['images'\]"):
        record_version(path, {"digest": "x", "counts": {}}, [], seed=1, config_digest="")


def test_open_version_seeds_differ_per_version_and_are_recorded(tmp_path):
    config = ExperimentConfig(generation=GenerationConfig(seed=5), out=str(tmp_path / "out"))
    slots = []
    for day in range(2):
        slot = open_version(tmp_path, config, NOW + timedelta(days=day))
        assert slot.seed == version_seed(5, slot.name) and not slot.resumed
        assert slot.config.generation.seed == slot.seed
        assert slot.config.out == slot.run_dir == str(Path(slot.path) / "run")
        assert slot.config.recipes == config.recipes  # nothing else changes
        (Path(slot.path) / "dataset.json").write_text(json.dumps(DATASET))
        metrics = {"recipes": [m.to_dict() for m in _metrics(0.9, 0.5)], "runs": []}
        (Path(slot.run_dir) / "metrics.json").write_text(json.dumps(metrics))
        slots.append(slot)
        finish_version(slot)
    assert slots[0].seed != slots[1].seed
    assert [v.seed for v in list_versions(tmp_path)] == [s.seed for s in slots]
    assert {v.config_digest for v in list_versions(tmp_path)} == {config_digest(config)}
    assert version_seed(5, slots[0].name) != version_seed(6, slots[0].name)


def test_open_version_resumes_with_the_same_seed(tmp_path):
    config = ExperimentConfig(out=str(tmp_path / "out"))
    first = open_version(tmp_path, config, NOW)
    again = open_version(tmp_path, config, NOW + timedelta(hours=1))
    assert again.resumed and (again.path, again.seed) == (first.path, first.seed)


def test_trend_rows_one_row_per_version_and_recipe(tmp_path):
    a = _complete(tmp_path, NOW, _metrics(0.9, 0.5))
    metrics = _metrics(0.8, None)  # an undefined metric has no point
    b = _complete(tmp_path, NOW + timedelta(days=1), metrics)
    rows = trend_rows(list_versions(tmp_path))
    common = {"images": 4, "dataset": "abababababab"}
    assert rows == [
        TrendPoint(version=a.name, created="2025-03-01T02:00:00+00:00", recipe="real",
                   value=MetricSummary(0.9, 0.02), **common),
        TrendPoint(version=a.name, created="2025-03-01T02:00:00+00:00", recipe="synthetic",
                   value=MetricSummary(0.5, 0.05), **common),
        TrendPoint(version=b.name, created="2025-03-02T02:00:00+00:00", recipe="real",
                   value=MetricSummary(0.8, 0.02), **common),
    ]  # fmt: skip
    assert trend_table(list_versions(tmp_path)) == [
        {"version": a.name, "created": "2025-03-01T02:00:00+00:00", "images": 4,
         "dataset": "abababababab", "seed": 1,
         "real accuracy": "0.9000 ± 0.0200", "synthetic accuracy": "0.5000 ± 0.0500"},
        {"version": b.name, "created": "2025-03-02T02:00:00+00:00", "images": 4,
         "dataset": "abababababab", "seed": 1,
         "real accuracy": "0.8000 ± 0.0200", "synthetic accuracy": "n/a"},
    ]  # fmt: skip


def test_trend_rows_rejects_an_unknown_metric(tmp_path):
    _complete(tmp_path, NOW)
    with pytest.raises(ValueError, match="`metric` 'acc' is not in the versions' metrics"):
        trend_rows(list_versions(tmp_path), "acc")
    assert trend_rows([], "acc") == [] and trend_table([]) == []
