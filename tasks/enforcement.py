"""The enforcement-case, complaint-handling and lookback-review flows' own Prefect
tasks: receiving a lead, starting linked runs, scheduling and starting look-back
reviews. The tasks every flow shares are in `tasks/prefect_tasks.py`."""

from __future__ import annotations

import datetime as dt
import uuid
from functools import partial
from typing import Any

from prefect import task

from rules.cases import validate_lead
from storage.cases import Case
from storage.db import utcnow
from tasks import cases
from tasks.prefect_tasks import RETRY, subject_of_run


@task(name="receive-lead", **RETRY)
def receive_lead(params: dict[str, Any], number: str | None) -> str:
    """Record the lead or complaint (once per flow run) or adopt the one the CLI recorded."""
    return subject_of_run(number, partial(_receive, params))


def _receive(params: dict[str, Any], run_id: uuid.UUID, now: dt.datetime) -> Case:
    return cases.receive(validate_lead(params, now=now), now=now, flow_run_id=run_id)


@task(name="start-linked-runs", **RETRY)
def start_linked_runs(number: str) -> list[str]:
    """Start the flow runs of what this subject opened: a complaint's lead, a failed
    look-back's case, a risk item's recall or incident, a recall's repeat or leads, a
    decision's publication, a publication's or listing's referrals."""
    from storage.cases import get_case
    from storage.db import session_scope
    from storage.incidents import get_incident
    from tasks.runs import start_case_run, start_incident_run

    with session_scope() as session:
        case = get_case(session, number=number)
        facts = case.facts
        linked = [
            n
            for n in (
                facts.get("lead"),
                facts.get("reopened_as"),
                facts.get("recall"),
                facts.get("again"),
                facts.get("publication"),
                *facts.get("leads", []),
                *facts.get("referrals", []),
            )
            if n
        ]
        found = [get_case(session, number=n) for n in linked]
        incident = get_incident(session, number=facts["incident"]) if facts.get("incident") else None
    for other in found:
        if other.flow_run_id is None:
            start_case_run(other)
    if incident is not None and incident.flow_run_id is None:
        start_incident_run(incident)
        linked.append(incident.number)
    return linked


@task(name="schedule-lookback", **RETRY)
def schedule_lookback(number: str) -> str | None:
    from tasks.runs import schedule_lookback_run

    run_id = schedule_lookback_run(number)
    return str(run_id) if run_id else None


@task(name="start-lookback", **RETRY)
def start_lookback(number: str) -> str:
    return cases.start_lookback(number, now=utcnow()).number
