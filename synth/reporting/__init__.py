"""Reporting: markdown and HTML building blocks, plots, the study report, dataset versions and
trends.
"""

from __future__ import annotations

from synth.reporting.html import (
    Section,
    render_html,
)
from synth.reporting.markdown import (
    contact_sheet,
    generation_rows,
    markdown_image,
    markdown_table,
)
from synth.reporting.plots import (
    confusion_plot,
    misclassified_gallery,
    pr_curves_plot,
    recipe_bar_plot,
    roc_curves_plot,
    sample_grid,
    trend_plot,
)
from synth.reporting.study_report import (
    StudyReport,
    StudyResults,
    build_study_report,
    record_rows,
)
from synth.reporting.versions import (
    TrendPoint,
    VersionInfo,
    VersionSlot,
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

__all__ = [
    "Section",
    "StudyReport",
    "StudyResults",
    "TrendPoint",
    "VersionInfo",
    "VersionSlot",
    "build_study_report",
    "config_digest",
    "confusion_plot",
    "contact_sheet",
    "finish_version",
    "generation_rows",
    "list_versions",
    "markdown_image",
    "markdown_table",
    "misclassified_gallery",
    "new_version_dir",
    "open_version",
    "pr_curves_plot",
    "prune_versions",
    "recipe_bar_plot",
    "record_rows",
    "record_version",
    "render_html",
    "roc_curves_plot",
    "sample_grid",
    "trend_plot",
    "trend_rows",
    "trend_table",
    "version_seed",
]
