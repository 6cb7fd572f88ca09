"""Prefect task: the quality gate, scoring every synthetic image with the run's real-only model."""

from __future__ import annotations

from prefect.artifacts import create_table_artifact

from synth.config import PreprocessConfig, QualityConfig
from synth.data.quality_gate import QualityReport, gate_verified_rows, run_quality_gate
from synth.reporting.quality_section import quality_rows
from synth.training import Checkpoint
from tasks.caching import science_task

__all__ = ["quality_gate"]


@science_task(run_quality_gate, name="quality-gate")
def quality_gate(
    root: str,
    digest: str,
    classifier: Checkpoint,
    config: QualityConfig,
    preprocess: PreprocessConfig,
) -> QualityReport:
    """Score the verified synthetic images, write `<root>/train/quality.jsonl`, publish counts.

    Cached on the dataset digest, the classifier's file and the gate's settings; the flow calls
    it through `run_checked`, so a deleted or edited quality.jsonl is rewritten.
    """
    report = gate_verified_rows(root, digest, classifier.path, config, preprocess_config=preprocess)
    state = "on" if report.enabled else "off: scored, everything kept"
    failing = ", ".join(f"{code} {n}" for code, n in report.reason_counts.items() if n)
    create_table_artifact(
        quality_rows(report),
        key="quality-gate",
        description=f"Quality gate ({state}); images failing each criterion: {failing or 'none'}",
    )
    return report
