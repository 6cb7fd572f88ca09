"""Prefect task: the study's paired verdicts (helps / hurts / replaces), from the scored models."""

from __future__ import annotations

from prefect import task

from synth.config import RecipeConfig
from synth.evaluation import EvalRecord, StudyVerdicts, study_verdicts

__all__ = ["judge_recipes"]


@task(name="verdicts")
def judge_recipes(
    records: list[EvalRecord],
    recipes: tuple[RecipeConfig, ...],
    baseline: str,
    cheap_baseline: str | None,
    margin: float,
    budget: str,
    leakage: dict[str, int] | None = None,
) -> StudyVerdicts:
    """Every recipe against the baseline on every test set, paired; seconds, so not cached."""
    return study_verdicts(
        records,
        recipes,
        baseline=baseline,
        cheap_baseline=cheap_baseline,
        margin=margin,
        budget=budget,
        leakage=leakage,
    )
