"""Talking to Prefect about flow runs: starting an incident's run, resuming it.

Prefect is imported lazily here so read-only commands stay quick to start.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from regflow.errors import PlatformUnavailable, StepConflict
from regflow.settings import get_settings
from storage.db import session_scope
from storage.incidents import Incident, get_incident
from storage.steps import get_step


def start_incident_run(incident: Incident) -> uuid.UUID:
    """Create the incident's `emergency-response` run and record its id."""
    from prefect.deployments import run_deployment

    from tasks.emergency import run_tags
    from tasks.incidents import link_flow_run

    settings = get_settings()
    params = dict(plan=incident.plan_key, level=incident.level, title=incident.title, location=incident.location,
                  authority=incident.authority_code, occurred_at=incident.occurred_at.isoformat(),
                  reporter=incident.reporter, incident_number=incident.number)
    try:
        run = run_deployment(settings.deployment, parameters=params, timeout=0, as_subflow=False,
                             flow_run_name=f"{incident.number} {incident.title}"[:200],
                             tags=run_tags(incident.level, incident.plan_key, incident.authority_code),
                             idempotency_key=run_key(incident))
    except (httpx.HTTPError, OSError, RuntimeError) as exc:
        raise PlatformUnavailable(f"Prefect API unreachable: {type(exc).__name__}") from exc
    except Exception as exc:
        if type(exc).__name__ == "ObjectNotFound":
            raise PlatformUnavailable(
                f"deployment {settings.deployment!r} not found: deploy with `prefect deploy --all`") from exc
        raise
    link_flow_run(incident.number, run.id)
    return run.id


def run_key(incident: Incident) -> str:
    """Identifies the incident's run across retries. The number alone is not enough:
    another regflow database (a restore, a second instance) sharing the Prefect
    server numbers its incidents from 1 too."""
    return f"regflow-incident:{incident.number}:{incident.triggered_at.isoformat()}"


def resume_when_suspended(flow_run_id: uuid.UUID, number: str, step: str, answer: dict[str, Any], *,
                          wait_seconds: float) -> str:
    """Hand a recorded answer to the run once it is suspended on `step`.

    Returns "resumed", "consumed" (the run took the answer from the database by
    itself), or "pending" (the run did not get there in time; the watcher will
    resume it when it does).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + wait_seconds
    try:
        with get_client(sync_client=True) as client:
            while True:
                state = client.read_flow_run(flow_run_id).state
                if state is not None and state.type == StateType.PAUSED and state.state_details.pause_key == step:
                    result = client.resume_flow_run(flow_run_id, run_input=answer)
                    if result.status.value == "ACCEPT":
                        return "resumed"
                    reason = getattr(result.details, "reason", "") or "refused"
                    raise StepConflict(f"Prefect refused to resume {number}: {reason}")
                if _consumed(number, step):
                    return "consumed"
                if state is not None and state.is_final():
                    return "pending"
                if time.monotonic() > deadline:
                    return "pending"
                time.sleep(0.3)
    except httpx.HTTPError as exc:
        raise PlatformUnavailable(f"Prefect API unreachable: {type(exc).__name__}") from exc


def _consumed(number: str, step: str) -> bool:
    with session_scope() as session:
        incident = get_incident(session, number=number)
        row = get_step(session, incident_id=incident.id, name=step)
        return row is not None and row.consumed_at is not None
