"""The experiment flow end to end on a small dataset, on a real Prefect server."""

import base64
import json
import re
from pathlib import Path

import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)

from flows.experiment import experiment
from synth.config import ExperimentConfig, QualityConfig, RecipeConfig
from synth.evaluation.statistics import LABELS
from synth.figures import palette_image
from synth.storage import encode_png

pytestmark = pytest.mark.usefixtures("prefect_server")

COLOURS = {"apple": (200, 30, 30), "banana": (230, 220, 40)}


def make_real_folder(root: Path, per_split: dict[str, int]) -> Path:
    """A tiny ImageFolder with train/ and test/: each class a distinct colour, varied shapes."""
    for split, n in per_split.items():
        for label, colour in COLOURS.items():
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                size = (40 + 7 * i % 30, 30 + 5 * i % 20)
                shade = tuple(max(0, c - 4 * i) for c in colour)
                Image.new("RGB", size, shade).save(folder / f"{label}_{i}.png")
    return root


@pytest.fixture
def experiment_config(tmp_path, tiny_config):
    real = make_real_folder(tmp_path / "real", {"train": 8, "test": 4})
    generation = tiny_config.model_copy(update={"images_per_class": 8, "steps": 2})
    return ExperimentConfig.model_validate(
        {
            "name": "flow test",
            "generation": generation.model_dump(),
            "real_data": str(real),
            "out": str(tmp_path / "run"),
            "recipes": [
                {"name": "real", "kind": "real"},
                {"name": "synthetic", "kind": "synthetic"},
                {"name": "mix-50", "kind": "mix", "synthetic_fraction": 0.5},
            ],
            "seeds": [0],
            "train": {"epochs": 2, "finetune_epochs": 1},
            "shap_images_per_class": 1,
        }
    )


def _run(config):
    state = experiment(config, return_state=True)
    return Path(state.result()), state.state_details.flow_run_id


def _train_states(run_id) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    return {r.name: r.state.name for r in runs if r.name.startswith("train-")}


def test_experiment_publishes_report_artifacts_and_files(experiment_config):
    report, run_id = _run(experiment_config)
    out = report.parent
    html = report.read_text()
    assert "Recipes on real-test" in html and "data:image/png;base64," in html
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["recipe"] for r in metrics["recipes"]] == ["real", "synthetic", "mix-50"]
    assert {r["seed"] for r in metrics["runs"]} == {0}
    assert (out / "metrics.csv").read_text().splitlines()[0].startswith("recipe,seed,test_set")
    # one SHAP PNG per recipe, named `<recipe>-<key of its inputs and code>.png`
    assert sorted(p.name.rsplit("-", 1)[0] for p in (out / "shap").glob("*.png")) == [
        "mix-50",
        "real",
        "synthetic",
    ]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    artifacts = {a.key: a for a in found}
    assert {
        "experiment-metrics",
        "experiment-report",
        "experiment-report-file",
        "experiment-progress",
        "import-real",
    } <= set(artifacts)
    table = artifacts["experiment-metrics"].data
    table = json.loads(table) if isinstance(table, str) else table
    assert [row["recipe"] for row in table] == ["real", "synthetic", "mix-50"]
    assert {"recipe", "seeds", "accuracy", "f1_macro", "roc_auc_ovr"} <= set(table[0])
    recipes = json.loads((Path(report).parent / "metrics.json").read_text())["recipes"]
    assert [r["recipe"] for r in recipes] == ["real", "synthetic", "mix-50"]
    # colour is the class: the real-only model learns it
    assert recipes[0]["metrics"]["accuracy"]["mean"] >= 0.75
    assert float(artifacts["experiment-progress"].data) == 100.0
    _assert_verdicts(html, metrics, artifacts)


def _assert_verdicts(html: str, metrics: dict, artifacts: dict) -> None:
    """The verdict leads report.html, is in metrics.json and in the `experiment-verdict`
    artifact; one seed is said, never '± 0'; every recipe trained the same optimiser steps."""
    verdicts = metrics["verdicts"]
    judged = [(v["recipe"], v["baseline"], v["test_set"]) for v in verdicts["verdicts"]]
    assert judged == [("synthetic", "real", "real-test"), ("mix-50", "real", "real-test")]
    synthetic, mix = verdicts["verdicts"]
    assert synthetic["kind"] == "replacement" and mix["kind"] == "comparison"
    assert {synthetic["label"], mix["label"]} <= set(LABELS)
    assert all(v["accuracy"]["one_seed"] and "one seed" in v["sentence"] for v in (synthetic, mix))
    # budget 'steps': 2 epochs over 16 real images at batch 32 = 2 steps, for every recipe
    assert {run["steps"] for run in metrics["runs"]} == {2}
    assert "equal optimiser steps (2 per model)" in mix["sentence"]
    verdict_md = artifacts["experiment-verdict"].data
    # the sentences, with what they all repeat (one seed, the budget) said once above them
    assert synthetic["sentence"].split("; one seed")[0] in verdict_md
    assert "One seed" in verdict_md and "Budget: equal optimiser steps" in verdict_md
    assert html.index("The answer") < html.index("Overview") < html.index("Recipes on real-test")
    head = synthetic["sentence"].split(":")[0]  # e.g. 'synthetic does not replace real'
    assert html.index(head) < html.index("Overview")
    zero_width = re.compile(r"±\s*0(\.0*)?(?![.\d])")  # '± 0', '± 0.0000'; not '± 0.5'
    for text in (html, verdict_md, artifacts["experiment-report"].data):
        assert not zero_width.search(text)


def test_experiment_rerun_trains_only_new_recipes_and_rebuilds_deleted_models(
    experiment_config,
):
    report, _ = _run(experiment_config)
    recipes = experiment_config.recipes + (
        experiment_config.recipes[0].model_copy(update={"name": "real-again"}),
    )
    bigger = experiment_config.model_copy(update={"recipes": recipes})
    _, run_id = _run(bigger)
    states = _train_states(run_id)
    assert states["train-real-again-seed0"] == "Completed"
    assert {states[f"train-{r}-seed0"] for r in ("real", "synthetic", "mix-50")} == {"Cached"}

    for ckpt in (report.parent / "models").glob("synthetic-*.pt"):
        ckpt.unlink()
    _, run_id = _run(bigger)
    assert list((report.parent / "models").glob("synthetic-*.pt"))  # rebuilt, not stale-cached


def _embedded(png: Path) -> str:
    """The data URI payload the report embeds for `png` (figures go in as palette PNGs)."""
    with Image.open(png) as img:
        return base64.b64encode(encode_png(palette_image(img))).decode()


def test_experiment_a_b_a_never_shows_b_shap_maps_for_a(experiment_config):
    """SHAP PNGs are named by their inputs: config B writes its own file, A's stays A's."""
    a_config = experiment_config.model_copy(update={"recipes": experiment_config.recipes[:1]})
    report, _ = _run(a_config)
    shap_dir = report.parent / "shap"
    (real_a,) = shap_dir.glob("real-*.png")
    a_mtime = real_a.stat().st_mtime_ns
    _run(a_config.model_copy(update={"shap_images_per_class": 2}))  # B: other maps, same model
    (real_b,) = set(shap_dir.glob("real-*.png")) - {real_a}  # a file of its own, A's kept

    report, _ = _run(a_config)
    html = report.read_text()
    assert real_a.stat().st_mtime_ns == a_mtime  # A's maps served from A's file, not redrawn
    assert _embedded(real_a) in html
    assert _embedded(real_b) not in html


def test_experiment_trains_on_the_images_the_quality_gate_kept(experiment_config):
    """Top half per class kept: the gated recipe sees 8 of 16 synthetic images, the ungated one
    all 16; quality.jsonl, metrics.json, report.html and the `quality-gate` artifact agree, and a
    deleted quality.jsonl is rewritten with the same bytes."""
    config = experiment_config.model_copy(
        update={
            "quality": QualityConfig(top_fraction=0.5, dedupe_threshold=None, device="cpu"),
            "recipes": (
                RecipeConfig(name="real", kind="real"),
                RecipeConfig(name="synthetic", kind="synthetic"),
                RecipeConfig(name="synthetic-all", kind="synthetic", quality_gate=False),
            ),
            "shap_images_per_class": 0,
        }
    )
    report, run_id = _run(config)
    out = report.parent
    quality = out / "synthetic" / "train" / "quality.jsonl"
    rows = [json.loads(line) for line in quality.read_text().splitlines()]
    kept = {r["file_name"] for r in rows if r["kept"]}
    assert len(rows) == 16 and len(kept) == 8
    metrics = json.loads((out / "metrics.json").read_text())
    gate = metrics["quality"]
    assert gate["kept_per_class"] == {"apple": 4, "banana": 4} and gate["dropped"] == 8
    seen = {r["recipe"]: r["synthetic_images"] for r in metrics["runs"]}
    assert seen == {"real": 0, "synthetic": 8, "synthetic-all": 16}
    assert "Quality gate: synthetic images kept and dropped" in report.read_text()
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    table = {a.key: a for a in found}["quality-gate"].data
    table = json.loads(table) if isinstance(table, str) else table
    assert table[-1] == {"class": "all", "kept": 8, "dropped": 8}
    recorded = quality.read_bytes()
    quality.unlink()  # the file is the truth: the cached gate result is not trusted without it
    _run(config)
    assert quality.read_bytes() == recorded
