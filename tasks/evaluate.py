"""Prefect tasks: score checkpoints on real test sets, explain them with SHAP."""

from __future__ import annotations

from pathlib import Path

from synth.data import TensorSet
from synth.evaluation import EvalRecord, evaluate_checkpoint, explain_checkpoint
from synth.training import Checkpoint
from tasks.caching import science_task

__all__ = ["evaluate", "explain"]


@science_task(evaluate_checkpoint, name="evaluate", task_run_name="evaluate-{test_name}")
def evaluate(checkpoint: Checkpoint, test: TensorSet, test_name: str) -> EvalRecord:
    """Metrics, curves and confusion of one checkpoint on one real test set."""
    return evaluate_checkpoint(checkpoint, test, test_name)


@science_task(explain_checkpoint, name="explain")
def explain(
    checkpoint: Checkpoint, background: TensorSet, test: TensorSet, per_class: int, out_file: str
) -> str:
    """SHAP maps for a few test images per class, saved as a PNG (its path is returned)."""
    return explain_checkpoint(checkpoint, background, test, per_class, Path(out_file))
