"""Evaluation on real held-out images: metrics, SHAP, scored checkpoints, per-recipe summaries."""

from __future__ import annotations

from synth.evaluation.explain import (
    Explanation,
    explain_images,
    shap_plot,
)
from synth.evaluation.metrics import (
    METRICS,
    ClassReport,
    EvalMetrics,
    Misclassified,
    PrCurve,
    RocCurve,
    compute_metrics,
    evaluate_model,
    predict_proba,
)
from synth.evaluation.scoring import (
    FOLDER_SPLITS,
    EvalRecord,
    evaluate_checkpoint,
    evaluate_folder,
    explain_checkpoint,
    shap_file,
)
from synth.evaluation.shots_exchange import ShotsExchange
from synth.evaluation.study_verdicts import (
    RecipeScore,
    RecipeVerdict,
    StudyVerdicts,
    difference_dict,
    study_verdicts,
)
from synth.evaluation.summary import (
    MetricSummary,
    RecipeSummary,
    mean_ci,
    summarize_recipes,
)

__all__ = [
    "ClassReport",
    "EvalMetrics",
    "EvalRecord",
    "Explanation",
    "FOLDER_SPLITS",
    "METRICS",
    "MetricSummary",
    "Misclassified",
    "PrCurve",
    "RecipeScore",
    "RecipeSummary",
    "RecipeVerdict",
    "RocCurve",
    "ShotsExchange",
    "StudyVerdicts",
    "compute_metrics",
    "difference_dict",
    "evaluate_checkpoint",
    "evaluate_folder",
    "evaluate_model",
    "explain_checkpoint",
    "explain_images",
    "mean_ci",
    "predict_proba",
    "shap_file",
    "shap_plot",
    "study_verdicts",
    "summarize_recipes",
]
