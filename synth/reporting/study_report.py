"""The study's report: comparison table, plots, SHAP and samples, as HTML, markdown and JSON.

Pure: it takes evaluation records and file paths, returns strings and rows; tasks/ writes the
files and publishes the Prefect artifacts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from synth.data.preprocess import TensorSet, load_tensor_set
from synth.evaluation.metrics import METRICS
from synth.evaluation.scoring import EvalRecord
from synth.evaluation.summary import RecipeSummary, summarize_recipes
from synth.figures import palette_image
from synth.reporting.html import Section, render_html
from synth.reporting.markdown import markdown_image, markdown_table
from synth.reporting.plots import (
    confusion_plot,
    misclassified_gallery,
    pr_curves_plot,
    recipe_bar_plot,
    roc_curves_plot,
    sample_grid,
)

__all__ = ["StudyReport", "build_study_report", "record_rows"]

NO_SIGNAL_NOTE = (
    "The synthetic images come from a tiny random-weight pipeline (offline demo): they carry no "
    "class signal, so synthetic-only results are at chance level by construction. Point "
    "`generation.model` at Stable Diffusion 1.5 for a real study."
)


@dataclass(frozen=True)
class StudyReport:
    """Everything the report task writes or publishes."""

    html: str
    markdown: str
    summaries: list[RecipeSummary]  # on the main test set
    records: list[dict]


def record_rows(records: list[EvalRecord]) -> list[dict]:
    """One flat row per (recipe, seed, test set): the CSV/JSON form of the results."""
    return [
        {"recipe": r.recipe, "seed": r.seed, "test_set": r.test_set, **r.metrics.summary()}
        for r in records
    ]


def _first(records: list[EvalRecord], recipe: str, test_set: str) -> EvalRecord:
    return min(
        (r for r in records if r.recipe == recipe and r.test_set == test_set),
        key=lambda r: r.seed,
    )


def _recipe_section(record: EvalRecord, test_images, shap_png: str | None) -> Section:
    m = record.metrics
    images = [
        ("confusion matrix", confusion_plot(m)),
        ("ROC curves (one vs rest)", roc_curves_plot(m)),
        ("precision-recall curves", pr_curves_plot(m)),
        ("misclassified test images", misclassified_gallery(test_images, m, m.class_names)),
    ]
    if shap_png and Path(shap_png).is_file():
        with Image.open(shap_png) as img:
            images.append(("SHAP: red raised the class score, blue lowered it", img.copy()))
    per_class = [dataclasses.asdict(c) for c in m.per_class]
    return Section(
        title=f"Recipe {record.recipe} (seed {record.seed}, {record.test_set})",
        tables=(("per-class report", per_class),),
        images=tuple((caption, palette_image(img)) for caption, img in images),
    )


def build_study_report(
    *,
    title: str,
    records: list[EvalRecord],
    test_sets: dict[str, TensorSet],
    real_train: TensorSet,
    synthetic: TensorSet,
    shap_pngs: dict[str, str],
    overview: list[dict],
    quarantined: list[dict],
    no_signal: bool,
) -> StudyReport:
    """Assemble the report of an experiment from its evaluation records and tensor files."""
    main_test = next(iter(test_sets))
    summaries = {name: summarize_recipes(records, name) for name in test_sets}
    tables = {name: [s.table_row() for s in rows] for name, rows in summaries.items()}
    bars = recipe_bar_plot(summaries[main_test], "accuracy")
    real = load_tensor_set(real_train.path).images[:8]
    syn = load_tensor_set(synthetic.path).images[:8]
    grid = sample_grid({"real (preprocessed)": real, "synthetic (preprocessed)": syn})
    note = NO_SIGNAL_NOTE if no_signal else None
    sections = [
        Section("Overview", tables=(("run", overview),), note=note),
        Section(
            f"Recipes on {main_test}: mean and 95% CI over seeds",
            tables=tuple((f"test set: {name}", rows) for name, rows in tables.items()),
            images=(("accuracy per recipe (95% CI)", bars),),
        ),
        Section("Real vs synthetic after preprocessing", images=(("samples", grid),)),
    ]
    test_images = load_tensor_set(test_sets[main_test].path).images
    for recipe in dict.fromkeys(r.recipe for r in records):
        first = _first(records, recipe, main_test)
        sections.append(_recipe_section(first, test_images, shap_pngs.get(recipe)))
    sections.append(
        Section(
            "Quarantined real files",
            paragraphs=() if quarantined else ("None: every real file decoded.",),
            tables=(("files skipped by the import", quarantined),) if quarantined else (),
        )
    )
    markdown = "\n\n".join(
        [
            f"# {title}",
            f"> {note}" if note else "",
            f"## Recipes on `{main_test}` (mean ± 95% CI over seeds)",
            markdown_table(tables[main_test]),
            markdown_image(bars, "accuracy per recipe"),
            "## Real vs synthetic after preprocessing",
            markdown_image(palette_image(grid), "samples"),
        ]
    )
    flat = record_rows(records)
    for row in flat:  # JSON has no NaN
        for key in METRICS:
            if isinstance(row[key], float) and math.isnan(row[key]):
                row[key] = None
    return StudyReport(render_html(title, sections), markdown, summaries[main_test], flat)
