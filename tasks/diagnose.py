"""Prefect task: the study's diagnosis (domain gap, leakage audit, cost), by the real-only model."""

from __future__ import annotations

from dataclasses import dataclass

from prefect.cache_policies import CachePolicy

from synth.config import RecipeConfig
from synth.data import TensorSet
from synth.evaluation import EvalRecord
from synth.evaluation.diagnosis import Diagnosis, diagnose_study
from synth.evaluation.feature_model import feature_model_identity
from synth.training import Checkpoint
from tasks.caching import science_task

__all__ = ["diagnose"]


@dataclass
class FeatureModelKey(CachePolicy):
    """Keys on the feature model's weights, not its name: a local folder's configs and sizes."""

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs) -> str:
        return str(feature_model_identity(inputs.get("feature_model")))


@science_task(diagnose_study, also_key=FeatureModelKey(), name="diagnose")
def diagnose(
    checkpoint: Checkpoint,
    real_train: TensorSet,
    test_sets: dict[str, TensorSet],
    synthetic: TensorSet,
    synthetic_root: str,
    records: list[EvalRecord],
    recipes: tuple[RecipeConfig, ...],
    baseline: str,
    feature_model: str | None,
    device: str,
) -> Diagnosis:
    """Domain gap and leakage audit in the real-only model's features; cost per point gained."""
    return diagnose_study(
        checkpoint, real_train, test_sets, synthetic, synthetic_root, records, recipes,
        baseline=baseline, feature_model=feature_model, device=device,
    )  # fmt: skip
