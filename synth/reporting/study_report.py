"""The study's report: the verdict first, then each recipe's numbers, plots, SHAP and samples,
as HTML, markdown and JSON.

Pure: it takes evaluation records and file paths, returns strings and rows; tasks/ writes the
files and publishes the Prefect artifacts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from synth.data.preprocess import TensorSet, load_tensor_set
from synth.data.quality_gate import QualityReport
from synth.evaluation.diagnosis import Diagnosis
from synth.evaluation.metrics import METRICS
from synth.evaluation.scoring import EvalRecord
from synth.evaluation.study_verdicts import StudyVerdicts
from synth.evaluation.summary import RecipeSummary, summarize_recipes
from synth.figures import palette_image
from synth.reporting import plots
from synth.reporting.diagnosis_section import diagnosis_markdown, diagnosis_section
from synth.reporting.html import Section, column_name, render_html
from synth.reporting.markdown import markdown_image, markdown_table
from synth.reporting.quality_section import quality_markdown, quality_section
from synth.reporting.verdict_section import verdict_markdown, verdict_sections

__all__ = ["StudyReport", "StudyResults", "build_study_report", "record_rows"]

SUMMARY_NOTE = (
    "Mean over seeds, ± the 95% interval over seeds when there are several (one seed: no "
    "interval rather than a zero-width one). These intervals leave out test-image sampling; the "
    "verdicts above compare recipes with intervals that cover both."
)


@dataclass(frozen=True)
class StudyResults:
    """What an experiment hands its report: made once by the flow, read by the report task."""

    records: list[EvalRecord]
    test_sets: dict[str, TensorSet]  # the first is the main test set
    real_train: TensorSet
    synthetic: TensorSet
    shap_pngs: dict[str, str]  # recipe -> its SHAP map
    overview: list[dict]  # the rows of the run table
    quarantined: list[dict]  # real files the import skipped, and why
    # `synth.generation.generator_note`: what the offline generators' images are, else None
    generator_note: str | None = None
    diagnosis: Diagnosis | None = None
    verdicts: StudyVerdicts | None = None
    quality: QualityReport | None = None


@dataclass(frozen=True)
class StudyReport:
    """Everything the report task writes or publishes."""

    html: str
    markdown: str
    summaries: list[RecipeSummary]  # on the main test set
    records: list[dict]
    verdict_markdown: str = ""  # the `experiment-verdict` artifact ('' without verdicts)


def record_rows(records: list[EvalRecord]) -> list[dict]:
    """One flat row per (recipe, seed, test set): the CSV/JSON form of the results."""
    return [
        {
            "recipe": r.recipe,
            "seed": r.seed,
            "test_set": r.test_set,
            **r.metrics.summary(),
            "steps": r.steps,
            "real_images": r.real_images,
            "synthetic_images": r.synthetic_images,
        }
        for r in records
    ]


def _human(rows: list[dict]) -> list[dict]:
    """Rows with the headers a reader sees (markdown tables; HTML renames on its own)."""
    return [{column_name(k): v for k, v in row.items()} for row in rows]


def _first(records: list[EvalRecord], recipe: str, test_set: str) -> EvalRecord:
    return min(
        (r for r in records if r.recipe == recipe and r.test_set == test_set),
        key=lambda r: r.seed,
    )


def _recipe_section(record: EvalRecord, test_images, shap_png: str | None) -> Section:
    m = record.metrics
    images = [
        ("confusion matrix", plots.confusion_plot(m)),
        ("ROC curves (one vs rest)", plots.roc_curves_plot(m)),
        ("precision-recall curves", plots.pr_curves_plot(m)),
        ("misclassified test images", plots.misclassified_gallery(test_images, m, m.class_names)),
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
    study: StudyResults, *, title: str, extra_sections: Sequence[Section] = ()
) -> StudyReport:
    """Assemble the report of an experiment from its evaluation records and tensor files.

    The verdicts come first (`verdict_sections`), then the diagnosis (domain gap, leakage,
    cost) and `extra_sections`, then the run overview and each recipe's own numbers, then the
    detail of every recipe. `generator_note` (`synth.generation.generator_note`: what the
    offline generators' images are) leads the verdict and the overview.
    """
    records, test_sets, note = study.records, study.test_sets, study.generator_note
    diagnosis, verdicts, quality = study.diagnosis, study.verdicts, study.quality
    quarantined = study.quarantined
    main_test = next(iter(test_sets))
    summaries = {name: summarize_recipes(records, name) for name in test_sets}
    tables = {name: [s.table_row() for s in rows] for name, rows in summaries.items()}
    bars = plots.recipe_bar_plot(summaries[main_test], "accuracy")
    real = load_tensor_set(study.real_train.path).images[:8]
    syn = load_tensor_set(study.synthetic.path).images[:8]
    grid = plots.sample_grid({"real (preprocessed)": real, "synthetic (preprocessed)": syn})
    sections = [
        *(verdict_sections(verdicts, note) if verdicts else []),
        *([diagnosis_section(diagnosis, study.synthetic, test_sets)] if diagnosis else []),
        *extra_sections,
        Section("Overview", tables=(("run", study.overview),), note=note),
        Section(
            f"Recipes on {main_test}: each recipe's own numbers",
            paragraphs=(SUMMARY_NOTE,),
            tables=tuple((f"test set: {name}", rows) for name, rows in tables.items()),
            images=(("accuracy per recipe", bars),),
        ),
        Section("Real vs synthetic after preprocessing", images=(("samples", grid),)),
    ]
    test_images = load_tensor_set(test_sets[main_test].path).images
    for recipe in dict.fromkeys(r.recipe for r in records):
        first = _first(records, recipe, main_test)
        sections.append(_recipe_section(first, test_images, study.shap_pngs.get(recipe)))
    if quality is not None:  # what the gate kept and dropped, before the real files skipped
        sections.append(quality_section(quality))
    sections.append(
        Section(
            "Quarantined real files",
            paragraphs=() if quarantined else ("None: every real file decoded.",),
            tables=(("files skipped by the import", quarantined),) if quarantined else (),
        )
    )
    said = verdict_markdown(verdicts, f"Verdict: {title}", note) if verdicts else ""
    markdown = "\n\n".join(
        [
            said or f"# {title}",
            f"> {note}" if note else "",
            f"## Recipes on `{main_test}`: each recipe's own numbers",
            SUMMARY_NOTE,
            markdown_table(_human(tables[main_test])),
            markdown_image(bars, "accuracy per recipe"),
            "## Real vs synthetic after preprocessing",
            markdown_image(palette_image(grid), "samples"),
            diagnosis_markdown(diagnosis) if diagnosis is not None else "",
            quality_markdown(quality) if quality is not None else "",
        ]
    )
    flat = record_rows(records)
    for row in flat:  # JSON has no NaN
        for key in METRICS:
            if isinstance(row[key], float) and math.isnan(row[key]):
                row[key] = None
    html = render_html(title, sections)
    return StudyReport(html, markdown, summaries[main_test], flat, said)
