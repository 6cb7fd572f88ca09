"""Crash detection: a flow run whose heartbeats stop (killed worker, lost machine) is Crashed.

Prefect marks such runs only through an automation on heartbeat events (self-hosted servers
have no managed one); the runner must emit heartbeats: PREFECT_FLOWS_HEARTBEAT_FREQUENCY.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

__all__ = ["HEARTBEAT_SECONDS", "ensure_crash_detection"]

HEARTBEAT_SECONDS = 30
AUTOMATION_NAME = "datasynth: mark silent flow runs Crashed"


def ensure_crash_detection(silence_seconds: int = 3 * HEARTBEAT_SECONDS) -> Automation:
    """Create (once) the automation that marks a run Crashed after `silence_seconds` of silence."""
    try:
        return Automation.read(name=AUTOMATION_NAME)
    except ValueError:
        pass
    automation = Automation(
        name=AUTOMATION_NAME,
        description="A run that stops heartbeating (worker killed) becomes Crashed: retry it "
        "from the UI and it resumes at image granularity.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=silence_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {silence_seconds} s: the worker was lost",
            )
        ],
    )
    return automation.create()
