"""The report's quality gate section: kept and dropped images per class, and the dropped ones.

Pure apart from reading quality.jsonl and the dropped images: it takes the gate's
`QualityReport` and returns a `Section`, markdown, and the `quality` entry of metrics.json.
"""

from __future__ import annotations

from pathlib import Path

from synth.data.quality_gate import QualityReport, read_quality
from synth.figures import palette_image
from synth.reporting.html import Section
from synth.reporting.markdown import markdown_table
from synth.reporting.quality_plots import dropped_grid

__all__ = ["TITLE", "quality_dict", "quality_markdown", "quality_rows", "quality_section"]

TITLE = "Quality gate: synthetic images kept and dropped"


def quality_dict(report: QualityReport) -> dict:
    """The `quality` entry of metrics.json (the kept names are in quality.jsonl, not here)."""
    return {
        "enabled": report.enabled,
        "path": report.path,
        "digest": report.digest,
        "gate_key": report.gate_key,
        "kept": len(report.kept),
        "dropped": len(report.dropped),
        "kept_per_class": report.kept_per_class,
        "dropped_per_class": report.dropped_per_class,
        "reason_counts": report.reason_counts,
        "dropped_images": list(report.dropped),
    }


def quality_rows(report: QualityReport) -> list[dict]:
    """Kept and dropped images per class, then a total row (also the `quality-gate` table)."""
    rows = [
        {"class": c, "kept": report.kept_per_class[c], "dropped": report.dropped_per_class[c]}
        for c in report.kept_per_class
    ]
    return rows + [{"class": "all", "kept": len(report.kept), "dropped": len(report.dropped)}]


def _summary(report: QualityReport) -> str:
    n = len(report.kept) + len(report.dropped)
    where = f"Every image's scores and reasons are in `{report.path}`."
    if not report.enabled:
        return (
            f"The gate is off (`quality.enabled = false`): it scored all {n} synthetic images "
            f"and training uses every one; the figure shows those it would drop. {where}"
        )
    return (
        f"The gate scored {n} synthetic images with this run's real-only model and kept "
        f"{len(report.kept)}; recipes with `quality_gate = true` train on the kept ones only. "
        f"{where}"
    )


def quality_section(report: QualityReport, limit: int = 16) -> Section:
    """Counts per class, images failing each criterion, and a grid of the dropped images."""
    split_dir = Path(report.path).parent
    decisions = read_quality(split_dir.parent)
    failing = [d for d in decisions.values() if d.reasons]  # dropped, or would be (gate off)
    reasons = [{"criterion": code, "images": n} for code, n in report.reason_counts.items()]
    caption = "dropped" if report.enabled else "would be dropped (gate off)"
    return Section(
        TITLE,
        paragraphs=(_summary(report),),
        tables=(("images per class", quality_rows(report)), ("images failing", reasons)),
        images=(
            (
                f"{caption}: label (confidence), criteria failed",
                palette_image(dropped_grid(split_dir, failing, limit)),
            ),
        ),
    )


def quality_markdown(report: QualityReport) -> str:
    """The section's words and counts table, for the markdown artifact."""
    return "\n\n".join([f"## {TITLE}", _summary(report), markdown_table(quality_rows(report))])
