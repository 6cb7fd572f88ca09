"""The `experiment` flow: the whole study as one cached DAG."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.generate import generate_dataset
from flows.runners import with_parent_runner
from synth.config import ExperimentConfig, RecipeConfig
from synth.data import TensorSet, extra_test_set_names
from synth.evaluation import shap_file
from synth.generation import generator_note
from synth.generation.img2img import with_experiment_sources
from synth.lock import DatasetLock
from synth.reporting import StudyResults
from synth.training import gate_recipe, uses_synthetic
from tasks.caching import resolve_checked, run_checked
from tasks.diagnose import diagnose
from tasks.evaluate import evaluate, explain
from tasks.preprocess import preprocess_real_split, preprocess_synthetic_set
from tasks.progress import StepProgress
from tasks.quality import quality_gate
from tasks.realdata import import_real
from tasks.report import publish_study_report
from tasks.train import train_recipe_seed
from tasks.verdicts import judge_recipes

__all__ = ["experiment"]


def _always_valid(_: object) -> bool:
    return True


def _synthetic_input(recipe: RecipeConfig, gated: TensorSet, every: TensorSet) -> TensorSet | None:
    """A recipe's synthetic pool: none (real-only recipes), the gate's kept images, or all."""
    if not uses_synthetic(recipe):
        return None  # so a real-only model never depends on the synthetic images
    return gated if recipe.quality_gate else every


# One task at a time in threads: torch's global RNG is per process, so seeded training runs
# in parallel only on process-based runners (Dask: `--task-runner dask`).
@flow(name="experiment", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def experiment(
    config: ExperimentConfig, synthetic_dir: str | None = None, regenerate_changed: bool = False
) -> str:
    """Generate, import, preprocess, train every recipe x seed, evaluate, explain, report.

    Steps: 1. generate the synthetic set (subflow, resumable), 2. import the real photos and
    any extra test folders, 3. preprocess all of them to cached tensors, the synthetic images
    through the quality gate (scored by the real-only model, trained first), 4. train each
    recipe for each seed, 5. evaluate every model on every real test set, 6. explain one model per
    recipe with SHAP, 7. diagnose with the baseline's first model (domain gap, leakage audit,
    cost), 8. judge every recipe against the baseline (paired verdicts, exchange rate), 9. write
    report.html + metrics and publish the artifacts.
    Returns the path of report.html. Another run writing the same `out` makes this one fail at
    once with DatasetLockedError: two runs never interleave in one folder.
    """
    out = Path(config.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with DatasetLock(out):
        return _study(config, out, synthetic_dir, regenerate_changed)


def _study(
    config: ExperimentConfig, out: Path, synthetic_dir: str | None, regenerate_changed: bool
) -> str:
    """The experiment's nine steps (see `experiment`), run while it holds the `out` lock."""
    cache, models = str(out / "cache"), str(out / "models")
    classes = tuple(c.name for c in config.generation.classes)
    recipes = config.all_recipes()
    names = extra_test_set_names(config.extra_test_sets)  # before generating: a clash is an error
    progress = StepProgress(9, "experiment-progress", "Experiment steps finished")
    # Step 1: synthetic images
    # img2img varies the experiment's own real train photos, split as the experiment splits them
    generation = with_experiment_sources(
        config.generation, config.real_data, config.test_fraction, config.split_seed
    )
    # on Dask the batches go to this run's cluster (a subflow does not inherit the runner)
    synthetic = with_parent_runner(generate_dataset)(
        generation,
        synthetic_dir or str(out / "synthetic"),
        regenerate_changed=regenerate_changed,  # else images made otherwise stop the run here
    )
    progress.advance()
    # Step 2: real images (bad files quarantined, class names checked against the synthetic,
    # split by its own split_seed, an empty test split refused) and the extra test sets
    split = (config.test_fraction, config.split_seed)
    real = import_real(config.real_data, classes, *split, str(out))
    extras = {
        name: import_real(p, classes, *split, str(out), name, require_test=False)
        for name, p in zip(names, config.extra_test_sets, strict=True)
    }
    progress.advance()
    # Step 3: preprocess into cached tensor files
    pre = config.preprocess
    real_train = run_checked(preprocess_real_split, real, "train", pre, cache)
    test_sets = {"real-test": run_checked(preprocess_real_split, real, "test", pre, cache)}
    for name, dataset in extras.items():
        test_sets[name] = run_checked(preprocess_real_split, dataset, "all", pre, cache)
    # the gate scores with a real-only model of this run, so that model trains first, on real
    # images only; then only the kept images are preprocessed (quality.jsonl says why)
    train = (config.train, classes, models, pre)
    scorer = (gate_recipe(recipes, config.baseline), config.seeds[0])
    scorer_model = run_checked(train_recipe_seed, *scorer, real_train, None, *train)
    gate = run_checked(
        quality_gate, synthetic.root, synthetic.digest, scorer_model, config.quality, pre
    )
    syn_args = (synthetic.root, synthetic.digest, classes, pre, cache)
    syn = run_checked(preprocess_synthetic_set, *syn_args, gate)
    # every verified image, only for a recipe with `quality_gate = false` (comparing gate on and
    # off); when the gate dropped nothing the two are the same file
    ungated = any(uses_synthetic(r) and not r.quality_gate for r in recipes)
    syn_all = run_checked(preprocess_synthetic_set, *syn_args) if ungated and gate.dropped else syn
    progress.advance()
    # Step 4: train every other recipe x seed
    runs = [(r, s) for r in recipes for s in config.seeds]
    todo = [run for run in runs if run != scorer]
    trained = resolve_checked(
        train_recipe_seed,
        [((r, s, real_train, _synthetic_input(r, syn, syn_all), *train), {}) for r, s in todo],
    )
    by_run = {**dict(zip(todo, trained, strict=True)), scorer: scorer_model}
    checkpoints = [by_run[run] for run in runs]
    progress.advance()
    # Step 5: evaluate on every real test set
    records = resolve_checked(
        evaluate,
        [((ckpt, test, name), {}) for ckpt in checkpoints for name, test in test_sets.items()],
        valid=_always_valid,
    )
    progress.advance()
    # Step 6: SHAP for the first seed of each recipe (not the shots family's curve points:
    # SHAP is the slowest step), each PNG named by what made it
    shap_pngs = {}
    if config.shap_images_per_class:
        for (recipe, s), ckpt in zip(runs, checkpoints, strict=True):
            if s == config.seeds[0] and recipe.kind != "shots":
                test, per_class = test_sets["real-test"], config.shap_images_per_class
                png = shap_file(out / "shap", recipe.name, ckpt, real_train, test, per_class)
                args = (ckpt, real_train, test, per_class, str(png))
                shap_pngs[recipe.name] = run_checked(
                    explain, *args, valid=lambda p: Path(p).is_file()
                )
    progress.advance()
    # Step 7: diagnosis in the real-only model's features (its first seed); its suspect count
    # `diagnosis.n_suspect_images` is what `verdict(..., leakage_suspects=...)` states
    diagnosis = None
    baseline_models = [
        c for (r, _), c in zip(runs, checkpoints, strict=True) if r.name == config.baseline
    ]
    if baseline_models:
        diagnosis = diagnose(
            baseline_models[0], real_train, test_sets, syn, synthetic.root, records, recipes,
            config.baseline, config.feature_model, config.train.device,
        )  # fmt: skip
    progress.advance()
    # Step 8: verdicts, paired on seeds and test images, counting the audit's suspects
    leakage = {name: diagnosis.suspects_in(name) for name in test_sets} if diagnosis else None
    verdicts = judge_recipes(
        records, recipes, config.baseline, config.cheap_baseline, config.replacement_margin,
        config.train.budget, leakage,
    )  # fmt: skip
    progress.advance()
    # Step 9: report
    overview = [
        {"item": "real data", "value": f"{config.real_data} ({len(real.entries)} images)"},
        {"item": "synthetic data", "value": f"{synthetic.root} ({synthetic.images} images)"},
        {"item": "model", "value": config.generation.model},
        {"item": "classifier", "value": config.train.model},
        {"item": "seeds", "value": ", ".join(map(str, config.seeds))},
    ]
    study = StudyResults(
        records,
        test_sets,
        real_train,
        syn,
        shap_pngs,
        overview,
        [{"path": q.path, "reason": q.reason} for q in real.quarantined],
        generator_note=generator_note(config.generation.model),
        diagnosis=diagnosis,
        verdicts=verdicts,
        quality=gate,
    )
    report = publish_study_report(study, out_dir=str(out), title=f"datasynth: {config.name}")
    progress.advance()
    print(f"report: {report}")
    return report
