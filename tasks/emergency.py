"""The emergency-response flow's own Prefect tasks: activating the plan and sending
the team. The tasks every flow shares are in `tasks/prefect_tasks.py`."""

from __future__ import annotations

import uuid
from typing import Any

from prefect import task
from prefect.runtime import flow_run

from rules.incidents import validate_trigger
from storage.db import utcnow
from storage.subjects import link_flow_run
from tasks import incidents
from tasks.prefect_tasks import RETRY


@task(name="activate-plan", **RETRY)
def activate_plan(params: dict[str, Any], incident_number: str | None) -> str:
    """Create the incident (once per flow run) or adopt the one the CLI created."""
    run_id = uuid.UUID(flow_run.id)
    if incident_number:
        link_flow_run(incident_number, run_id)
        return incident_number
    now = utcnow()
    request = validate_trigger(params, now=now)
    incident = incidents.trigger(request, now=now, flow_run_id=run_id)
    from tasks.runs import rename_run, run_name, subject_tags

    rename_run(run_id, run_name(incident), subject_tags(incident))
    return incident.number


@task(name="dispatch-team", **RETRY)
def dispatch_team(number: str) -> bool:
    return incidents.dispatch(number, now=utcnow())
