"""Prefect task: write report.html, metrics.json/csv and publish the study's artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from synth.data import TensorSet
from synth.evaluation import EvalRecord
from synth.reporting import build_study_report
from synth.storage import atomic_write_bytes

__all__ = ["publish_study_report"]


@task(name="publish-report")
def publish_study_report(
    records: list[EvalRecord],
    test_sets: dict[str, TensorSet],
    real_train: TensorSet,
    synthetic: TensorSet,
    shap_pngs: dict[str, str],
    overview: list[dict],
    quarantined: list[dict],
    no_signal: bool,
    out_dir: str,
    title: str,
    key: str = "experiment",
) -> str:
    """Build the report; write report.html, metrics.json/csv; publish table/markdown/link."""
    report = build_study_report(
        title=title,
        records=records,
        test_sets=test_sets,
        real_train=real_train,
        synthetic=synthetic,
        shap_pngs=shap_pngs,
        overview=overview,
        quarantined=quarantined,
        no_signal=no_signal,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / "report.html"
    atomic_write_bytes(html_path, report.html.encode("utf-8"))
    payload = {"recipes": [s.to_dict() for s in report.summaries], "runs": report.records}
    atomic_write_bytes(out / "metrics.json", json.dumps(payload, indent=2).encode())
    atomic_write_bytes(
        out / "metrics.csv", pd.DataFrame(report.records).to_csv(index=False).encode()
    )
    table = [s.table_row() for s in report.summaries]
    create_table_artifact(table, key=f"{key}-metrics", description="Recipes: mean ± 95% CI")
    create_markdown_artifact(report.markdown, key=f"{key}-report")
    create_link_artifact(
        html_path.resolve().as_uri(), link_text="report.html", key=f"{key}-report-file"
    )
    return str(html_path)
