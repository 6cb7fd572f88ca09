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

from synth.reporting import StudyResults, build_study_report
from synth.reporting.quality_section import quality_dict
from synth.storage import atomic_write_bytes

__all__ = ["publish_study_report"]


@task(name="publish-report")
def publish_study_report(
    study: StudyResults, out_dir: str, title: str, key: str = "experiment"
) -> str:
    """Build the report; write report.html, metrics.json/csv; publish table/markdown/link.

    metrics.json holds `recipes` (each recipe's own numbers), `runs` (one row per model and
    test set) and `verdicts` (docs/STATISTICS.md, section 9); the verdict sentences are also the
    `<key>-verdict` markdown artifact.
    """
    report = build_study_report(study, title=title)
    verdicts, diagnosis, quality = study.verdicts, study.diagnosis, study.quality
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / "report.html"
    atomic_write_bytes(html_path, report.html.encode("utf-8"))
    payload = {"recipes": [s.to_dict() for s in report.summaries], "runs": report.records}
    payload["verdicts"] = verdicts.to_dict() if verdicts else None
    # domain gap, leakage audit and cost (docs/STATISTICS.md 6-7); None without a baseline model
    payload["diagnosis"] = diagnosis.to_dict() if diagnosis else None
    # the quality gate's counts per class and dropped images (quality.jsonl has every score)
    payload["quality"] = quality_dict(quality) if quality else None
    atomic_write_bytes(out / "metrics.json", json.dumps(payload, indent=2).encode())
    atomic_write_bytes(
        out / "metrics.csv", pd.DataFrame(report.records).to_csv(index=False).encode()
    )
    table = [s.table_row() for s in report.summaries]
    description = "Recipes: mean ± 95% CI over seeds"
    create_table_artifact(table, key=f"{key}-metrics", description=description)
    create_markdown_artifact(report.markdown, key=f"{key}-report")
    if report.verdict_markdown:
        create_markdown_artifact(
            report.verdict_markdown, key=f"{key}-verdict", description="Does synthetic data help?"
        )
    create_link_artifact(
        html_path.resolve().as_uri(), link_text="report.html", key=f"{key}-report-file"
    )
    return str(html_path)
