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
from functools import partial
from typing import Any, Callable

import pendulum
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from kernel.errors import CalendarUnavailable, InvalidInput, NotFound, StepConflict, UnknownAuthority
from kernel.settings import get_settings
from rules.calendar import load_calendar
from rules.durations import Due, by_end_of, compressed, due_after
from rules.incidents import (
    EMERGENCY,
    TRIGGER_DEADLINES,
    TriggerRequest,
    activation_recipients,
    incident_number,
    onsite_recipients,
    trigger_deadlines,
    upward_recipients,
    validate_trigger,
)
from rules.lifecycle import Lifecycle
from rules.lifecycles import label
from rules.plans import Level, LevelRules, Plan, load_plan
from storage import audit
from storage import deadlines as deadline_rows
from storage import steps as step_rows
from storage.actions import ActionItem
from storage.authorities import Authority
from storage.db import session_scope
from storage.incidents import Dispatch, Incident, Report, get_incident, incident_by_run, next_number, reports_for
from storage.plans import PlanVersion, register_plan
from tasks import lifecycle as engine
from tasks.lifecycle import Answered, Context, Given, StepState
from tasks.notify import deliver_now
from tasks.render import local_time, render

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
    number = None
    if flow_run_id is None:  # a trigger, not a run activating: draw the number first
        with session_scope() as session:
            known_authority(session, request.authority)  # a mistyped code burns no number
        number = draw_number(incident_year(now))
    try:
        with session_scope() as session:
            if flow_run_id is not None and (existing := incident_by_run(session, flow_run_id=flow_run_id)):
                return existing
            incident = _activate(session, request, loaded, now=now, flow_run_id=flow_run_id, number=number)
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


def trigger_and_send(
    request: TriggerRequest, *, now: dt.datetime, also: Callable[[Session, Incident], None] | None = None
) -> Incident:
    """What a duty officer's trigger does before any flow run exists: record and
    dispatch (`trigger`), then send the dispatch order and activation notices from
    this process at once, leaving to the watcher what a slow channel holds up."""
    incident = trigger(request, now=now, also=also)
    deliver_now(incident.number, wait=get_settings().trigger_delivery_seconds)
    return incident


def activate(session: Session, request: TriggerRequest, *, now: dt.datetime) -> Incident:
    """An incident activated inside the caller's transaction (a risk item's decision):
    recorded with what led to it or not at all; the watcher starts its run and its
    dispatch order leaves through the outbox."""
    loaded = load_plan(get_settings().plans_dir, request.plan)
    loaded.plan.rules_for(request.level)
    return _activate(session, request, loaded, now=now, flow_run_id=None)


def known_authority(session: Session, code: str) -> Authority:
    authority = session.get(Authority, code)
    if authority is None:
        raise UnknownAuthority(f"unknown authority {code!r} (list them with `regflow authorities list`)")
    return authority


def incident_year(now: dt.datetime) -> int:
    return pendulum.instance(now).in_timezone(get_settings().timezone).year


def draw_number(year: int) -> str:
    """An incident number drawn in a transaction of its own. Drawn inside the trigger's,
    the counter row stayed locked for its whole transaction, and a burst of triggers
    queued behind one another (seconds each on a busy machine); drawn apart, a trigger
    that then fails leaves its number unused."""
    with session_scope() as session:
        return incident_number(year, next_number(session, name=f"INC-{year}"))


def _activate(
    session: Session,
    request: TriggerRequest,
    loaded,
    *,
    now: dt.datetime,
    flow_run_id: uuid.UUID | None,
    number: str | None = None,
) -> Incident:
    known_authority(session, request.authority)
    version = register_plan(session, loaded=loaded)
    year = incident_year(now)
    incident = Incident(
        number=number or incident_number(year, next_number(session, name=f"INC-{year}")),
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
    created = [ctx.add(name, now) for name in trigger_deadlines(ctx.rules)]
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
        calendar = load_calendar(settings.calendar_override)
        count = partial(due_after, start, self.rules.deadlines.period(period), tz=settings.timezone, event=label(name))
        try:
            due = count(calendar=calendar)
        except CalendarUnavailable:
            if not self.incident.drill:
                raise  # a real deadline is never counted on a guessed calendar
            # An exercise must not stop for a year whose holidays are not entered yet: its
            # compressed days count weekends only there, and the rule says so.
            calendar, years = calendar.weekends_where_unknown(start.year)
            due = count(calendar=calendar)
            unknown = "、".join(str(y) for y in years)
            due = Due(due.at, f"{due.rule}（演练：{unknown} 年节假日未录入，仅按周末计 / drill: {unknown} holidays "
                              f"not entered, weekends only）")  # fmt: skip
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
            "public": [f"{code}.public"],  # the authority's public channel (website, official account)
        }
        return [tag for name in names for tag in groups[name]]

    def template_vars(self, **more: Any) -> dict[str, Any]:
        return super().template_vars(incident=self.incident, plan=self.plan, level=self.level, **more)


# --- what steps do beyond their declaration, in lifecycle order ------------------------


def _report(ctx: IncidentContext, given: Given, *, kind: str, text: str) -> Report:
    return ctx.document(kind, step=given.step.name, by=given.by, now=given.now, text=text, deadline=given.met)


def _reported(ctx: IncidentContext, given: Given) -> None:
    """An initial, progress or final report: its declared document."""
    _report(ctx, given, kind=given.step.documents[0], text=given.data["text"])


def _handling_ended(ctx: IncidentContext, given: Given) -> None:
    """Handling on site has ended: progress reports are no longer due, the final
    report's limit starts."""
    incident = ctx.incident
    incident.status, incident.handling_ended_at = "handling_ended", given.now
    ctx.session.add(incident)
    for row in deadline_rows.deadlines_for(ctx.session, subject=ctx.number):
        if row.name.startswith("progress-"):
            ctx.close(row.name, given.now, "cancelled")
    if ctx.get("final_report") is None:
        ctx.add("final_report", given.now)
    _report(ctx, given, kind="closure", text=given.data["text"])
    audit.record(ctx.session, at=given.now, actor=given.by, action="incident.handling_ended", subject=ctx.number)


def release_draft(ctx: IncidentContext) -> str:
    """A release's text as drafted from the incident's record: what happened, the
    response, where handling stands, the latest report."""
    session, number = ctx.session, ctx.number
    reports = [r for r in reports_for(session, subject=number) if r.kind in ("initial", "progress", "final")]
    arrival = step_rows.get_step(session, subject=number, name="arrival")
    return render(
        "documents/release-draft.md.j2",
        **ctx.template_vars(
            arrived_at=arrival.answered_at if arrival is not None else None,
            latest=reports[-1].text if reports else "",
        ),
    ).strip()


def release_preview(number: str, *, now: dt.datetime) -> str:
    """The release document as the draft would publish it; nothing is written."""
    with session_scope() as session:
        ctx = IncidentContext(session, INCIDENTS.load(session, number))
        return render("documents/release.md.j2", **ctx.template_vars(by="", at=now, release=release_draft(ctx)))


def _released(ctx: IncidentContext, given: Given) -> None:
    """A release approved by the head: the text given, or the draft from the record;
    published as a document, to the authority's public channel and upward."""
    text = given.data["text"] or release_draft(ctx)
    ctx.document("release", step=given.step.name, by=given.by, now=given.now, text=text, release=text)
    if given.data["press_conference"]:
        ctx.close("press_conference", given.now)
    n = given.step.number
    press = "（新闻发布会）" if given.data["press_conference"] else ""
    heading = (f"信息发布 {n}{press}", f"Information release {n}")
    ctx.tell(given, given.step.name, heading, text=text, tags=ctx.recipients(("public", "upward")))
    audit.record(ctx.session, at=given.now, actor=given.by, action="incident.released", subject=ctx.number,
                 release=n, press_conference=given.data["press_conference"])  # fmt: skip


def _reviewed(ctx: IncidentContext, given: Given) -> None:
    """The review closes the incident; each action item it assigns is a deadline of the
    incident, owed by its authority, reminded and escalated like every other."""
    _report(ctx, given, kind="review", text=given.data["lessons"])
    _assign_actions(ctx, given)
    incident = ctx.incident
    incident.status, incident.closed_at, incident.stage = "closed", given.now, "closed"
    ctx.session.add(incident)
    for row in deadline_rows.deadlines_for(ctx.session, subject=ctx.number):
        if row.name in ("release", "press_conference"):  # an incident closed unreleased is on record as such
            ctx.close(row.name, given.now, "cancelled")
    audit.record(ctx.session, at=given.now, actor=given.by, action="incident.closed", subject=incident.number)


def _assign_actions(ctx: IncidentContext, given: Given) -> None:
    tz = get_settings().timezone
    today = pendulum.instance(given.now).in_timezone(tz).date()
    for seq, item in enumerate(given.form.actions, 1):
        where = f"actions[{seq - 1}]"
        try:
            ctx.tree.get(item.authority)
        except UnknownAuthority as exc:
            raise UnknownAuthority(f"{where}.authority: {exc}") from None
        if item.due < today:
            raise InvalidInput(f"{where}.due: {item.due} is in the past")
        row = ActionItem(subject=ctx.number, seq=seq, what=item.what, authority_code=item.authority,
                         owner=item.owner, due_on=item.due, created_at=given.now)  # fmt: skip
        ctx.session.add(row)
        due = by_end_of(item.due, tz=tz, label=f"整改事项 {seq}：{item.what}")
        deadline = ctx.add(row.deadline, given.now, due=due, authority=item.authority)
        heading = (f"整改事项 {seq}（{item.owner} 负责）", f"Action item {seq} (owner {item.owner})")
        tags = list(dict.fromkeys([f"{item.authority}.duty", f"{item.authority}.head", *ctx.recipients(("desk",))]))
        ctx.tell(given, f"action-{seq}", heading, text=item.what, next_deadline=deadline, tags=tags)
    if given.form.actions:
        audit.record(ctx.session, at=given.now, actor=given.by, action="incident.actions_assigned", subject=ctx.number,
                     actions=[{"seq": i, "authority": a.authority, "owner": a.owner, "due": a.due.isoformat()}
                              for i, a in enumerate(given.form.actions, 1)])  # fmt: skip


class Incidents:
    """The emergency-response lifecycle's subjects, for the engine."""

    handlers = {
        "initial-report": _reported,
        "progress": _reported,
        "handling-ended": _handling_ended,
        "final-report": _reported,
        "review": _reviewed,
        "release": _released,
    }

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
    "close": "结束处置 / end of handling",
    "report:final": "终报 / final report",
    "review": "事后评估 / review",
    "release": "信息发布 / information release",
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
    return engine.answer(INCIDENTS, number, step=expected.name, answer=answer, source=source, now=now)


def _step_for(incident: Incident, verb: str, awaited: list, done: dict):
    """The open step a CLI verb answers (the reporting and on-site lines run side by
    side), or why there is none: done already, or not yet."""
    for step in awaited:
        if verb in step.verbs:
            return step
    wanted = VERB_TITLES.get(verb, verb)
    for name, row in done.items():
        if verb in EMERGENCY.step(name).verbs and not EMERGENCY.step(name).repeats:
            raise StepConflict(
                f"{wanted} of {incident.number} was already recorded at {local_time(row.answered_at)} "
                f"by {row.answered_by}"
            )
    if not awaited:
        raise StepConflict(f"{incident.number} is closed: no step is awaited")
    raise StepConflict(f"{incident.number} is {engine.awaiting(incident, awaited)}, not {wanted}")


# --- complaints that are emergencies ------------------------------------------------------


def escalate_complaint(
    number: str, *, plan: str, level: Level, by: str, now: dt.datetime, location: str | None = None
) -> Incident:
    """A 12315 complaint that reveals an emergency becomes an incident of its authority
    (the duty officer or head of it): linked both ways, the complaint's own steps and
    limits going on as before. Refused for a closed complaint or one escalated already."""
    from storage.cases import Case, get_case
    from tasks.access import require

    with session_scope() as session:
        complaint = get_case(session, number=number)
        if complaint is None or complaint.kind != "complaint":
            raise NotFound(f"no complaint {number.strip()!r}")
        if complaint.status == "closed":
            raise StepConflict(f"{complaint.number} is closed: it can no longer be escalated")
        if complaint.facts.get("incident"):
            raise StepConflict(f"{complaint.number} was already escalated to {complaint.facts['incident']}")
        require(session, by, roles=("duty", "head"), authorities=(complaint.authority_code,),
                subject=complaint.number, action=f"escalate {complaint.number}", now=now)  # fmt: skip
        complaint_id, complaint_number = complaint.id, complaint.number
        data = dict(plan=plan, level=level.value, title=complaint.title, location=location or complaint.party,
                    authority=complaint.authority_code, reporter=by)  # fmt: skip
    request = validate_trigger(data, now=now)

    def link(session: Session, incident: Incident) -> None:
        complaint = session.get(Case, complaint_id)
        if complaint.facts.get("incident"):  # escalated meanwhile by someone else: this one is not made
            raise StepConflict(f"{complaint.number} was already escalated to {complaint.facts['incident']}")
        complaint.facts = {**complaint.facts, "incident": incident.number}
        incident.origin = complaint_number
        session.add_all([complaint, incident])
        audit.record(session, at=now, actor=by, action="complaint.escalated", subject=complaint_number,
                     incident=incident.number, plan=plan, level=level.value)  # fmt: skip

    return trigger_and_send(request, now=now, also=link)


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
        moved, rows = [], deadline_rows.deadlines_for(session, subject=incident.number)
        wanted = trigger_deadlines(ctx.rules)
        for row in rows:  # a limit the new level does not have (a press conference below II)
            if row.status == "open" and row.name in TRIGGER_DEADLINES and row.name not in wanted:
                ctx.close(row.name, now, "cancelled")
                moved.append(row.name)
        for name in set(wanted) - {row.name for row in rows}:  # one it adds, from the trigger
            ctx.add(name, incident.triggered_at)
            moved.append(name)
        for row in rows:
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
