"""`datasynth demo` as a new user runs it (heavy: about 3 minutes on 2 cores)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.heavy, pytest.mark.usefixtures("prefect_server")]


def test_demo_completes_and_writes_a_report(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flows", "demo", "--out", str(tmp_path / "demo")],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = tmp_path / "demo" / "report.html"
    assert f"report: {report}" in proc.stdout
    html = report.read_text()
    assert "tiny generator" in html and "not Stable Diffusion quality" in html
    assert "Quality gate: synthetic images kept and dropped" in html  # its counts per class
    for recipe in ("real", "synthetic", "mix-50", "mix-30", "real-plus-1x", "pretrain-finetune"):
        assert f"Recipe {recipe} " in html
    assert (tmp_path / "demo" / "metrics.csv").is_file()
    # the fitted generator's images carry their classes: synthetic-only beats chance (1/3)
    runs = json.loads((tmp_path / "demo" / "metrics.json").read_text())["runs"]
    (synthetic,) = [r for r in runs if r["recipe"] == "synthetic" and r["test_set"] == "real-test"]
    assert synthetic["accuracy"] > 0.45, synthetic
