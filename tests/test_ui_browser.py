"""The Prefect UI in a real browser: run the `experiment` deployment from its form, see artifacts.

PostgreSQL → Prefect server → `datasynth serve` (as in tests/test_ops_deployments.py), then a
headless Chromium (Playwright) does what a user does in Prefect 3.9's default UI (the one `/`
opens): Deployments → experiment → Run → Custom run, switch `config` to JSON input, replace it
with a tiny config, Submit, reload the run page until it says Completed, then its Parameters and
Artifacts tabs, the `experiment-metrics` table and the report. The run's parameters are read
back through the API. A second test fails a run at its SHAP step (a folder it cannot write),
then retries it from the run page's ⋮ menu, as a user would, and checks that only the failed step
and the ones after it ran again. Each step is saved to docs/screenshots/ (overwritten on every
run): docs/OPERATIONS.md shows them. Locators are roles and visible texts, not CSS classes.

Heavy (a few minutes): CI runs it with `pytest -m heavy`. Chromium: $DATASYNTH_CHROMIUM, else
Debian's /usr/bin/chromium, else Playwright's own (`playwright install chromium`).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect, sync_playwright
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.conftest import REPO
from tests.reliability.disk import read_only
from tests.services import postgres_server, prefect_server_on, served_deployments
from tests.test_ops_deployments import _small_config

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(1800)]

SHOTS = REPO / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UI_WAIT_MS = 120_000  # generous: the machine may be busy training other tests' models
RUN_WAIT_S = 900
RUN_NAME = "ui-browser-test"
CONFIG_NAME = "ui browser test"  # the parameter the test changes in the form


@pytest.fixture(scope="module")
def stack():
    """PostgreSQL → Prefect server → `datasynth serve` (flow logs at INFO, for the Logs tab)."""
    with (
        postgres_server() as db,
        prefect_server_on(db) as (url, home),
        temporary_settings({PREFECT_API_URL: url}),
        served_deployments(
            url, home, timezone="Europe/Paris", extra_env={"PREFECT_LOGGING_LEVEL": "INFO"}
        ),
    ):
        yield url, home


def _chromium() -> str | None:
    for candidate in (os.environ.get("DATASYNTH_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None  # Playwright's bundled browser


@pytest.fixture
def page(stack):
    """A fresh headless Chromium page on the stack's UI, with nothing fetched off this machine."""
    api_url, _ = stack

    def ui_settings(route: Route) -> None:
        # The server was started with `--port`, which Prefect does not pass on to the UI's
        # settings (they say :4200 unless PREFECT_UI_API_URL is set): point the UI at its API.
        response = route.fetch()
        settings = response.json() | {"api_url": api_url}
        route.fulfill(response=response, body=json.dumps(settings))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        context.set_default_timeout(UI_WAIT_MS)
        expect.set_options(timeout=UI_WAIT_MS)
        context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda r: r.abort())
        context.route("**/ui-settings", ui_settings)
        try:
            yield context.new_page()
        finally:
            browser.close()


def _deployment_link(page: Page, name: str):
    """The deployment's link in the list (its flow, often of the same name, links elsewhere)."""
    return page.get_by_role("link", name=name, exact=True).and_(
        page.locator('[href*="/deployments/deployment/"]')
    )


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png")


def _wait_until_shown_completed(page: Page, run_id) -> None:
    """Reload the run page until it says Completed; fail early if the run ends otherwise."""
    completed = page.get_by_text("Completed", exact=True).filter(visible=True)
    deadline = time.monotonic() + RUN_WAIT_S
    with get_client(sync_client=True) as client:
        while completed.count() == 0:
            state = client.read_flow_run(run_id).state
            assert not state.is_final() or state.is_completed(), f"the run ended {state}"
            assert time.monotonic() < deadline, f"the run is still {state} after {RUN_WAIT_S} s"
            page.wait_for_timeout(5_000)
            page.reload()
            page.get_by_role("tab", name="Logs").wait_for()


def test_experiment_is_run_from_the_ui_form_with_a_changed_parameter(
    stack, page, tmp_path, tiny_model_dir
):
    api_url, _ = stack
    base = api_url.removesuffix("/api")
    config = _small_config(tmp_path, tiny_model_dir) | {"name": CONFIG_NAME}

    # 1. The UI's home, then its Deployments page: the three served deployments
    page.goto(base + "/")
    page.get_by_role("link", name="Deployments", exact=True).click()
    for name in ("experiment", "generate", "nightly-regeneration"):
        expect(_deployment_link(page, name)).to_be_visible()
    expect(page.get_by_text("At 02:00 AM").first).to_be_visible()  # the nightly cron
    _shot(page, "01-deployments")

    # 2. The `experiment` deployment
    _deployment_link(page, "experiment").click()
    run_button = page.get_by_role("button", name="Run", exact=True)
    expect(run_button).to_be_visible()
    expect(page.get_by_text("flows/experiment.py:experiment")).to_be_visible()
    flow_link = page.get_by_role("link", name="experiment", exact=True)
    expect(flow_link.and_(page.locator('[href*="/flows/flow/"]'))).to_be_visible()
    expect(page.get_by_text("Triggers", exact=True)).to_be_visible()
    _shot(page, "02-deployment")

    # 3. Run → Custom run: the typed form of ExperimentConfig, with the served defaults
    run_button.click()
    page.get_by_role("menuitem", name="Custom run").click()
    expect(page.get_by_role("heading", name="Parameters")).to_be_visible()
    expect(page.get_by_text("Images Per Class (Optional)", exact=True)).to_be_attached()
    page.get_by_label("Run Name").fill(RUN_NAME)
    _shot(page, "03-run-form")

    # 4. `config` as JSON: replace the defaults (the whole fruit set) with a tiny config
    config_row = (
        page.locator("div")
        .filter(has=page.get_by_text("config", exact=True))
        .filter(has=page.get_by_role("button", name="Open menu"))
        .last  # the innermost: the parameter's label row
    )
    config_row.get_by_role("button", name="Open menu").click()
    page.get_by_role("menuitem", name="Use JSON Input").click()
    editor = page.locator('[role="textbox"][data-language="json"]')
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(json.dumps(config, indent=2))
    expect(editor).to_contain_text(CONFIG_NAME)
    page.get_by_role("heading", name="Parameters").evaluate("e => e.scrollIntoView()")
    _shot(page, "04-run-form-json")

    # 5. Submit: the UI creates the flow run
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/create_flow_run")
    ) as created:
        page.get_by_role("button", name="Submit").click()
    assert created.value.ok, created.value.text()
    run_id = created.value.json()["id"]
    expect(page.get_by_role("link", name=RUN_NAME, exact=True).first).to_be_visible()
    _shot(page, "05-run-submitted")

    # 6. The run's page, reloaded until it says Completed
    run_page = f"{base}/v2/runs/flow-run/{run_id}"
    page.goto(run_page)
    expect(page.get_by_text(RUN_NAME, exact=True).first).to_be_visible()
    _wait_until_shown_completed(page, run_id)
    expect(page.get_by_text(re.compile(r"^\d+ Task runs$"))).to_be_visible()
    page.wait_for_load_state("networkidle")  # the run graph and the logs
    _shot(page, "06-run-completed")

    # 7. Its Parameters tab shows the changed value
    page.get_by_role("tab", name="Parameters").click()
    expect(page.get_by_text(CONFIG_NAME).first).to_be_visible()
    _shot(page, "07-run-parameters")

    # 8. Its Artifacts tab: the metrics table, the report, progress, imports
    page.get_by_role("tab", name="Artifacts").click()
    metrics_card = page.get_by_role("link").filter(has_text="experiment-metrics")
    expect(metrics_card).to_be_visible()
    report_card = (
        page.get_by_role("link")
        .filter(has_text="experiment-report")
        .filter(has_not_text="experiment-report-file")
    )
    expect(report_card).to_be_visible()
    _shot(page, "08-run-artifacts")

    # 9. The metrics table: a row per recipe
    metrics_card.click()
    table = page.get_by_role("table")
    expect(table.get_by_role("columnheader", name="recipe", exact=True)).to_be_visible()
    for recipe in ("real", "synthetic"):
        expect(table.get_by_role("cell", name=recipe, exact=True)).to_be_visible()
    _shot(page, "09-metrics-table")

    # 10. The report artifact (markdown, the plots inline)
    page.goto(f"{run_page}?tab=Artifacts")
    report_card.click()
    expect(page.get_by_role("heading", name=f"datasynth: {CONFIG_NAME}")).to_be_visible()
    expect(page.get_by_role("img", name="accuracy per recipe")).to_be_visible()
    page.wait_for_load_state("networkidle")
    _shot(page, "10-report-artifact")

    # The run, read back through the API, has the parameters typed into the form
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
    assert run.state.is_completed(), run.state
    assert run.name == RUN_NAME
    assert run.parameters["config"]["name"] == CONFIG_NAME
    assert run.parameters["config"]["generation"]["images_per_class"] == 6
    assert (tmp_path / "run" / "report.html").is_file()


def _made_files(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of what steps 1-5 write: images, tensor caches, checkpoints."""
    found = [*out.glob("synthetic/train/*/*.png"), *out.glob("cache/*.pt"), *out.glob("models/*")]
    return {p.relative_to(out).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in found}


def _task_runs(run_id) -> list:
    with get_client(sync_client=True) as client:
        where = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        return client.read_task_runs(flow_run_filter=where)


def _run_to_the_end(deployment: str, parameters: dict):
    """Start a deployment run through the API and wait for its final state (the sync client:
    Playwright's loop in this thread would turn `run_deployment` into a coroutine)."""
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        run = client.create_flow_run_from_deployment(found.id, parameters=parameters)
        deadline = time.monotonic() + RUN_WAIT_S
        while not (run := client.read_flow_run(run.id)).state.is_final():
            assert time.monotonic() < deadline, f"the run is still {run.state} after {RUN_WAIT_S} s"
            time.sleep(3)
    return run


def test_failed_experiment_retried_from_the_ui_redoes_only_the_failed_and_later_steps(
    stack, page, tmp_path, tiny_model_dir
):
    api_url, _ = stack
    base = api_url.removesuffix("/api")
    config = _small_config(tmp_path, tiny_model_dir) | {
        "name": "ui retry test",
        "shap_images_per_class": 1,
    }
    out = Path(config["out"])
    (out / "shap").mkdir(parents=True)

    # 1. A run fails at step 6 (SHAP): the folder its maps go to cannot be written. Permission
    #    and disk-full errors are not retried in place: the run fails and names the file.
    with read_only(out / "shap"):
        run = _run_to_the_end("experiment/experiment", {"config": config})
    assert run.state.is_failed(), run.state
    assert "Operation not permitted" in run.state.message and "/shap/" in run.state.message
    made = _made_files(out)
    assert any(name.startswith("models/") for name in made)  # steps 1-5 finished
    assert not (out / "report.html").exists()
    first_attempt = {t.id for t in _task_runs(run.id)}

    # 2. The folder is writable again: the run's page, ⋮ → Retry, confirm
    run_page = f"{base}/v2/runs/flow-run/{run.id}"
    page.goto(run_page)
    expect(page.get_by_text("Failed", exact=True).first).to_be_visible()
    expect(page.get_by_text("Operation not permitted").first).to_be_visible()  # the logs
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(3_000)  # the run graph is drawn after the network settles
    _shot(page, "12-run-failed")
    page.get_by_role("button", name="Open menu").click()
    page.get_by_role("menuitem", name="Retry").click()
    expect(page.get_by_text("Retry Flow Run")).to_be_visible()
    expect(page.get_by_text("Task runs with persisted results will use cached")).to_be_visible()
    _shot(page, "13-retry-dialog")
    page.get_by_role("button", name="Retry", exact=True).filter(visible=True).last.click()
    _wait_until_shown_completed(page, run.id)
    page.wait_for_load_state("networkidle")
    _shot(page, "14-run-retried")

    # 3. Only the failed step and the ones after it ran: nothing of steps 1-5 was rewritten,
    #    their task runs in the retry answered from the cache; SHAP, verdicts, report are new
    assert _made_files(out) == made
    assert list((out / "shap").glob("real-*.png")) and (out / "report.html").is_file()
    retried = [t for t in _task_runs(run.id) if t.id not in first_attempt]
    states = {t.name: t.state.name for t in retried}
    redone_early = {
        name: state
        for name, state in states.items()
        if name.startswith(("train-", "preprocess-", "evaluate-")) and state != "Cached"
    }
    assert not redone_early, redone_early
    assert any(n.startswith("explain") and s == "Completed" for n, s in states.items()), states
