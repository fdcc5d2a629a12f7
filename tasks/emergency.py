"""The emergency-response flow's own Prefect tasks: activating the plan and sending
the team. The tasks every flow shares are in `tasks/prefect_tasks.py`."""

from __future__ import annotations

import datetime as dt
import uuid
from functools import partial
from typing import Any

from prefect import task

from rules.incidents import validate_trigger
from rules.plans import Level
from storage.db import utcnow
from storage.incidents import Incident
from tasks import incidents
from tasks.prefect_tasks import RETRY, subject_of_run


@task(name="activate-plan", **RETRY)
def activate_plan(params: dict[str, Any], incident_number: str | None) -> str:
    """Create the incident (once per flow run) or adopt the one the CLI created."""
    return subject_of_run(incident_number, partial(_trigger, params))


def _trigger(params: dict[str, Any], run_id: uuid.UUID, now: dt.datetime) -> Incident:
    return incidents.trigger(validate_trigger(params, now=now), now=now, flow_run_id=run_id)


@task(name="dispatch-team", **RETRY)
def dispatch_team(number: str) -> bool:
    return incidents.dispatch(number, now=utcnow())


@task(name="act-on-incident", **RETRY)
def act_on_incident(number: str, verb: str, answer: dict[str, Any]) -> str:
    """A step of another line answered from a Run form, handed to the incident's run."""
    from tasks.runs import hand_over

    result = incidents.answer(number, answer=answer, source="ui", verb=verb, now=utcnow())
    return hand_over(result)


@task(name="regrade-incident", **RETRY)
def regrade_incident(number: str, level: Level, reason: str, by: str) -> list[str]:
    from tasks.runs import retag

    incident, moved = incidents.relevel(number, level, by=by, reason=reason, now=utcnow())
    retag(incident.number)
    return moved
