"""Incidents: activating a plan and what the emergency-response lifecycle's steps
do beyond their declaration (`rules.incidents.EMERGENCY`).

Each function is one transaction: the change, its deadlines, its outbox rows and its
audit event commit together, or none do; each is idempotent by its own key (an
incident's flow run, its dispatch, a step's name), because a resumed flow runs
again from the top. Steps are opened and answered by the engine (`tasks.lifecycle`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Callable

import pendulum
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from kernel.errors import StepConflict, UnknownAuthority
from kernel.settings import get_settings
from rules.calendar import load_calendar
from rules.durations import Due, compressed, due_after
from rules.incidents import (
    EMERGENCY,
    TriggerRequest,
    activation_recipients,
    incident_number,
    onsite_recipients,
    upward_recipients,
)
from rules.lifecycle import Lifecycle
from rules.lifecycles import label
from rules.plans import Level, LevelRules, Plan, load_plan
from storage import audit
from storage import deadlines as deadline_rows
from storage import steps as step_rows
from storage.authorities import Authority
from storage.db import session_scope
from storage.incidents import Dispatch, Incident, Report, get_incident, incident_by_run, next_number, reports_for
from storage.plans import PlanVersion, register_plan
from tasks import lifecycle as engine
from tasks.lifecycle import Answered, Context, Given, StepState
from tasks.notify import deliver_now
from tasks.render import local_time

# --- trigger -------------------------------------------------------------------------


def trigger(
    request: TriggerRequest,
    *,
    now: dt.datetime,
    flow_run_id: uuid.UUID | None = None,
    also: Callable[[Session, Incident], None] | None = None,
) -> Incident:
    """Activate the plan: the incident, its first deadlines, the activation notices
    (and `also`, what the caller records with them, e.g. a drill)."""
    settings = get_settings()
    loaded = load_plan(settings.plans_dir, request.plan)
    loaded.plan.rules_for(request.level)  # refuse a level the plan lacks before writing
    try:
        with session_scope() as session:
            if flow_run_id is not None and (existing := incident_by_run(session, flow_run_id=flow_run_id)):
                return existing
            incident = _activate(session, request, loaded, now=now, flow_run_id=flow_run_id)
            if also is not None:
                also(session, incident)
            return incident
    except IntegrityError:
        # Two activations of the same flow run raced; the other one won.
        with session_scope() as session:
            existing = incident_by_run(session, flow_run_id=flow_run_id) if flow_run_id else None
            if existing is None:
                raise
            return existing


def trigger_and_send(request: TriggerRequest, *, now: dt.datetime) -> Incident:
    """What a duty officer's trigger does before any flow run exists: record and
    dispatch (`trigger`), then send the dispatch order and activation notices from
    this process at once, leaving to the watcher what a slow channel holds up."""
    incident = trigger(request, now=now)
    deliver_now(incident.number, wait=get_settings().trigger_delivery_seconds)
    return incident


def _activate(
    session: Session, request: TriggerRequest, loaded, *, now: dt.datetime, flow_run_id: uuid.UUID | None
) -> Incident:
    authority = session.get(Authority, request.authority)
    if authority is None:
        raise UnknownAuthority(f"unknown authority {request.authority!r} (list them with `regflow authorities list`)")
    version = register_plan(session, loaded=loaded)
    year = pendulum.instance(now).in_timezone(get_settings().timezone).year
    incident = Incident(
        number=incident_number(year, next_number(session, name=f"INC-{year}")),
        plan_key=request.plan,
        level=request.level.value,
        title=request.title,
        location=request.location,
        authority_code=request.authority,
        reporter=request.reporter,
        plan_version_id=version.id,
        occurred_at=request.occurred_at or now,
        triggered_at=now,
        flow_run_id=flow_run_id,
        drill=request.drill,
        time_scale=request.speed,
    )
    session.add(incident)
    session.flush()
    ctx = IncidentContext(session, incident)
    created = [ctx.add(name, now) for name in ("dispatch", "arrival", "initial_report", "upward_report")]
    audit.record(
        session,
        at=now,
        actor=request.reporter or "duty-officer",
        action="incident.triggered",
        subject=incident.number,
        plan=request.plan,
        plan_version=version.content_hash[:12],
        level=request.level.value,
        authority=request.authority,
        title=request.title,
        flow_run_id=str(flow_run_id) if flow_run_id else None,
        **({"drill": True, "speed": request.speed} if request.drill else {}),
    )
    # The team is sent in the trigger's own transaction, not when a flow-run process
    # gets round to it (seconds later, minutes in a burst); its order is queued
    # first so the outbox sends it first.
    _dispatch(session, ctx, now=now)
    ctx.queue(
        key="activation",
        template="activation",
        now=now,
        deadlines=created,
        tags=activation_recipients(ctx.rules, ctx.tree, incident.authority_code),
    )
    return incident


def dispatch(number: str, *, now: dt.datetime) -> bool:
    """Send the on-site team unless the trigger already did; False if it was sent."""
    with session_scope() as session:
        incident = INCIDENTS.load(session, number)
        if _has_dispatch(session, incident.id):
            return False
        _dispatch(session, IncidentContext(session, incident), now=now)
        return True


def _dispatch(session: Session, ctx: IncidentContext, *, now: dt.datetime) -> None:
    incident = ctx.incident
    team = onsite_recipients(ctx.rules, incident.authority_code)
    session.add(Dispatch(incident_id=incident.id, team=",".join(team), dispatched_at=now))
    ctx.close("dispatch", now)
    audit.record(session, at=now, actor="regflow", action="incident.dispatched", subject=incident.number, team=team)
    ctx.queue(key="dispatch", template="dispatch", tags=team, now=now, arrival=ctx.get("arrival"))


def _has_dispatch(session: Session, incident_id: int) -> bool:
    return session.exec(select(Dispatch.id).where(Dispatch.incident_id == incident_id)).first() is not None


class IncidentContext(Context):
    """An incident's context: periods from its plan's level (a drill's compressed),
    reminders and escalation by its plan."""

    def __init__(self, session: Session, incident: Incident) -> None:
        super().__init__(session, incident)
        self.plan: Plan = session.get(PlanVersion, incident.plan_version_id).plan()
        self.level = Level(incident.level)
        self.rules: LevelRules = self.plan.rules_for(self.level)

    @property
    def incident(self) -> Incident:
        return self.subject

    def due(self, name: str, start: dt.datetime, rule: str | None = None) -> Due:
        settings = get_settings()
        period = rule or ("progress_every" if name.startswith("progress-") else name)
        due = due_after(
            start,
            self.rules.deadlines.period(period),
            tz=settings.timezone,
            calendar=load_calendar(settings.calendar_override),
            event=label(name),
        )
        return compressed(due, start, self.incident.time_scale)

    def policy(self, code: str, ladder_from: str | None = None) -> dict[str, Any]:
        """Reminder and escalation policy, snapshotted onto each deadline it governs
        (a drill's intervals compressed like its periods)."""
        ladder = [a.code for a in self.tree.chain_up(self.incident.authority_code)]
        reminders = self.plan.reminders.snapshot()
        escalation = self.plan.escalation.snapshot(ladder)
        if (speed := self.incident.time_scale) != 1:
            reminders["overdue_every_s"] = max(1, reminders["overdue_every_s"] // speed)
            escalation["ack_timeout_s"] = max(1, escalation["ack_timeout_s"] // speed)
        return {"reminders": reminders, "escalation": escalation}

    def recipients(self, names: tuple[str, ...]) -> list[str]:
        code = self.incident.authority_code
        groups = {
            "desk": [f"{code}.duty"],
            "head": [f"{code}.head"],
            "upward": [f"{code}.duty", *upward_recipients(self.rules, self.tree, code)],
        }
        return [tag for name in names for tag in groups[name]]

    def template_vars(self, **more: Any) -> dict[str, Any]:
        return super().template_vars(incident=self.incident, plan=self.plan, level=self.level, **more)


# --- what steps do beyond their declaration, in lifecycle order ------------------------


def _report(ctx: IncidentContext, given: Given, *, kind: str, text: str) -> Report:
    return ctx.document(kind, step=given.step.name, by=given.by, now=given.now, text=text, deadline=given.met)


def _reported(ctx: IncidentContext, given: Given) -> None:
    """An initial, progress or final report, or the summary that ends handling."""
    if given.step.repeats and given.data["action"] == "close":
        ctx.incident.status, ctx.incident.handling_ended_at = "handling_ended", given.now
        ctx.session.add(ctx.incident)
        given.met = None  # no progress report was due: the summary has no deadline
        _report(ctx, given, kind="closure", text=given.data["text"])
        audit.record(ctx.session, at=given.now, actor=given.by, action="incident.handling_ended", subject=ctx.number)
        return
    _report(ctx, given, kind=given.step.documents[0], text=given.data["text"])  # its declared document


def _reviewed(ctx: IncidentContext, given: Given) -> None:
    """The review closes the incident and drafts the information release."""
    _report(ctx, given, kind="review", text=given.data["lessons"])
    reports = {r.kind: r for r in reports_for(ctx.session, subject=ctx.number)}
    arrival = step_rows.get_step(ctx.session, subject=ctx.number, name="arrival")
    release = ctx.document(
        "release",
        step="release",
        by=ctx.authority.name,
        now=given.now,
        arrived_at=arrival.answered_at if arrival else None,
        final_text=reports["final"].text if "final" in reports else "",
    )
    release.text = release.document
    incident = ctx.incident
    incident.status, incident.closed_at, incident.stage = "closed", given.now, "closed"
    ctx.session.add(incident)
    audit.record(ctx.session, at=given.now, actor=given.by, action="incident.closed", subject=incident.number)


class Incidents:
    """The emergency-response lifecycle's subjects, for the engine."""

    handlers = {"initial-report": _reported, "progress": _reported, "final-report": _reported, "review": _reviewed}

    def load(self, session: Session, number: str) -> Incident:
        return engine.load(session, number, getter=get_incident, what="incident")

    def context(self, session: Session, subject: Incident) -> IncidentContext:
        return IncidentContext(session, subject)

    def lifecycle(self, subject: Incident, step: str | None = None) -> Lifecycle:
        return EMERGENCY


INCIDENTS = Incidents()


# --- human steps, as the flow and the CLI give them ------------------------------------

VERB_TITLES = {
    "arrive": "到场登记 / arrival",
    "report:initial": "初报 / initial report",
    "report:progress": "续报 / progress report",
    "close": "结束处置 / closing",
    "report:final": "终报 / final report",
    "review": "事后评估 / review",
}


def open_step(number: str, name: str, *, now: dt.datetime) -> StepState:
    return engine.open_step(INCIDENTS, number, name, now=now)


def answer(
    number: str,
    *,
    answer: dict[str, Any],
    source: str,
    now: dt.datetime,
    verb: str | None = None,
    step: str | None = None,
) -> Answered:
    """Record a human step's answer and everything that follows from it.

    From the CLI, `verb` says what the person is doing (`arrive`, `report:initial`,
    `close`, ...), and it must be what the incident awaits. From the flow (or a
    drill), `step` names the step it was suspended on, and an earlier answer wins.
    """
    if step is not None:
        return engine.answer(INCIDENTS, number, step=step, answer=answer, source=source, now=now, from_flow=True)
    with session_scope() as session:
        incident = INCIDENTS.load(session, number)
        done = {r.name: r for r in step_rows.steps_for(session, subject=incident.number) if r.status == "answered"}
        awaited = EMERGENCY.open_steps({name: r.answer or {} for name, r in done.items()})
        expected = _step_for(incident, verb, awaited, done)
    if verb in ("close", "report:progress"):
        answer = {**answer, "action": "close" if verb == "close" else "progress"}
    return engine.answer(INCIDENTS, number, step=expected.name, answer=answer, source=source, now=now)


def _step_for(incident: Incident, verb: str, awaited: list, done: dict):
    """The open step a CLI verb answers (the reporting and on-site lines run side by
    side), or why there is none: done already, or not yet."""
    for step in awaited:
        if verb in step.verbs:
            return step
    wanted = VERB_TITLES.get(verb, verb)
    for name, row in done.items():
        if verb in EMERGENCY.step(name).verbs and verb != "report:progress":
            raise StepConflict(
                f"{wanted} of {incident.number} was already recorded at {local_time(row.answered_at)} "
                f"by {row.answered_by}"
            )
    if not awaited:
        raise StepConflict(f"{incident.number} is closed: no step is awaited")
    raise StepConflict(f"{incident.number} is {engine.awaiting(incident, awaited)}, not {wanted}")


# --- re-grading ------------------------------------------------------------------------


def relevel(number: str, level: Level, *, by: str, reason: str, now: dt.datetime) -> tuple[Incident, list[str]]:
    """Re-grade an open incident (the head of its authority or one above): every open
    deadline is recomputed from its own start under the new level's limits, everyone
    the new level concerns is told (the newly concerned among them), and it is on the
    audit log. Lowering a level unsends nothing. Returns the incident and the names of
    the deadlines that moved."""
    from tasks.deadlines import move_row

    with session_scope() as session:
        incident = INCIDENTS.load(session, number)
        old = Level(incident.level)
        if not incident.is_open:
            raise StepConflict(f"{incident.number} is closed: its level can no longer change")
        if level == old:
            raise StepConflict(f"{incident.number} is already at level {level.value}")
        ctx = IncidentContext(session, incident)
        ctx.plan.rules_for(level)  # a level the plan lacks is refused before anything is written
        ctx.require(by, f"re-grade {incident.number}", now=now, roles=("head",), above=True)
        told = activation_recipients(ctx.rules, ctx.tree, incident.authority_code)
        incident.level = level.value
        session.add(incident)
        ctx = IncidentContext(session, incident)
        why = f"响应级别调整 {old.value}→{level.value} / level {old.value}→{level.value}: {reason}"
        moved = []
        for row in deadline_rows.deadlines_for(session, subject=incident.number):
            due = ctx.due(row.name, row.starts_at) if row.status == "open" else None
            if due is not None and due.at != row.due_at:
                move_row(session, row, due_at=due.at, by=by, reason=why, rule=due.rule, now=now,
                         action="deadline.regraded")  # fmt: skip
                moved.append(row.name)
        everyone = activation_recipients(ctx.rules, ctx.tree, incident.authority_code)
        heading = (f"响应级别调整为 {level.value} 级", f"Level changed to {level.value}")
        tags = list(dict.fromkeys([*everyone, *told]))
        ctx.notify(f"relevel:{now.isoformat()}", heading, by=by, now=now, text=why, tags=tags)
        audit.record(session, at=now, actor=by, action="incident.relevelled", subject=incident.number,
                     level_from=old.value, level_to=level.value, reason=reason, deadlines=moved,
                     newly_told=[t for t in everyone if t not in told])  # fmt: skip
        return incident, moved
