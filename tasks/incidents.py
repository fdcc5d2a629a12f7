"""Incident state changes. Each function is one transaction: the change, its
deadlines, its outbox rows and its audit event commit together, or none do.

Every function is idempotent by its own key (an incident's flow run, its dispatch,
a step's name), because a resumed flow runs again from the top.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import pendulum
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from kernel.errors import InvalidInput, NotFound, StepConflict, UnknownAuthority
from kernel.settings import get_settings
from rules import lifecycle
from rules.authorities import AuthorityTree
from rules.calendar import load_calendar
from rules.durations import Due, compressed, due_after
from rules.incidents import (TriggerRequest, activation_recipients, incident_number, onsite_recipients,
                             upward_recipients)
from rules.plans import LevelRules, Level, Plan, load_plan
from storage import audit, deadlines as deadline_rows, steps as step_rows
from storage.authorities import Authority, load_tree
from storage.db import session_scope
from storage.incidents import Dispatch, Incident, Report, get_incident, incident_by_run, next_number, reports_for
from storage.plans import PlanVersion, register_plan
from storage.subjects import run_for, subject_for
from tasks.access import asking, require, who_may
from tasks.deadlines import label, resolve_late
from tasks.notify import deliver_now, queue
from tasks.render import render

REPORT_KINDS = {"initial": ("初报", "initial report"), "progress": ("续报", "progress report"),
                "final": ("终报", "final report"), "closure": ("处置结束小结", "end of handling"),
                "review": ("事后评估", "post-incident review"), "release": ("信息发布通稿", "release notice")}
VERB_TITLES = {"arrive": "到场登记 / arrival", "report:initial": "初报 / initial report",
               "report:progress": "续报 / progress report", "close": "结束处置 / closing",
               "report:final": "终报 / final report", "review": "事后评估 / review"}


@dataclass
class Context:
    """What every change to one incident needs to know, loaded once."""

    incident: Incident
    plan: Plan
    level: Level
    rules: LevelRules
    authority: Authority
    tree: AuthorityTree

    def due(self, name: str, start: dt.datetime, period_name: str) -> Due:
        settings = get_settings()
        due = due_after(start, self.rules.deadlines.period(period_name), tz=settings.timezone,
                        calendar=load_calendar(settings.calendar_override), event=label(name))
        return compressed(due, start, self.incident.time_scale)

    def policy(self) -> dict[str, Any]:
        """Reminder and escalation policy, snapshotted onto each deadline it governs
        (a drill's intervals compressed like its periods)."""
        ladder = [a.code for a in self.tree.chain_up(self.incident.authority_code)]
        reminders = self.plan.reminders.snapshot()
        escalation = self.plan.escalation.snapshot(ladder)
        if (speed := self.incident.time_scale) != 1:
            reminders["overdue_every_s"] = max(1, reminders["overdue_every_s"] // speed)
            escalation["ack_timeout_s"] = max(1, escalation["ack_timeout_s"] // speed)
        return {"reminders": reminders, "escalation": escalation}

    def add_deadline(self, session: Session, name: str, start: dt.datetime, period_name: str):
        due = self.due(name, start, period_name)
        return deadline_rows.add_deadline(session, subject=self.incident.number, name=name, due_at=due.at,
                                          rule=due.rule, now=start, policy=self.policy(),
                                          authority=self.incident.authority_code)

    def close_deadline(self, session: Session, name: str, status: str, now: dt.datetime) -> None:
        row = deadline_rows.close_deadline(session, subject=self.incident.number, name=name, status=status, now=now)
        if row is not None and status == "met":
            resolve_late(session, deadline=row, now=now)

    def template_vars(self, **more: Any) -> dict[str, Any]:
        return dict(incident=self.incident, subject=self.incident, plan=self.plan, level=self.level, authority=self.authority, **more)


def _context(session: Session, incident: Incident) -> Context:
    version = session.get(PlanVersion, incident.plan_version_id)
    plan = version.plan()
    level = Level(incident.level)
    return Context(incident=incident, plan=plan, level=level, rules=plan.rules_for(level),
                   authority=session.get(Authority, incident.authority_code), tree=load_tree(session))


def _load(session: Session, number: str) -> Incident:
    incident = get_incident(session, number=number)
    if incident is None:
        raise NotFound(f"no incident {number.strip()!r}")
    return incident


def _queue(session: Session, ctx: Context, *, purpose: str, tags: list[str], template: str,
           now: dt.datetime, **variables: Any) -> None:
    queue(session, number=ctx.incident.number, key=purpose, tags=tags, template=template, now=now,
          **ctx.template_vars(**variables))


# --- trigger -------------------------------------------------------------------------


def trigger(request: TriggerRequest, *, now: dt.datetime, flow_run_id: uuid.UUID | None = None,
            also: Callable[[Session, Incident], None] | None = None) -> Incident:
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


def _activate(session: Session, request: TriggerRequest, loaded, *, now: dt.datetime,
              flow_run_id: uuid.UUID | None) -> Incident:
    authority = session.get(Authority, request.authority)
    if authority is None:
        raise UnknownAuthority(f"unknown authority {request.authority!r} (list them with `regflow authorities list`)")
    version = register_plan(session, loaded=loaded)
    year = pendulum.instance(now).in_timezone(get_settings().timezone).year
    incident = Incident(
        number=incident_number(year, next_number(session, name=f"INC-{year}")),
        plan_key=request.plan, level=request.level.value, title=request.title, location=request.location,
        authority_code=request.authority, reporter=request.reporter, plan_version_id=version.id,
        occurred_at=request.occurred_at or now, triggered_at=now, flow_run_id=flow_run_id,
        drill=request.drill, time_scale=request.speed,
    )
    session.add(incident)
    session.flush()
    ctx = _context(session, incident)
    created = [ctx.add_deadline(session, name, now, name)
               for name in ("dispatch", "arrival", "initial_report", "upward_report")]
    audit.record(session, at=now, actor=request.reporter or "duty-officer", action="incident.triggered",
                 subject=incident.number, plan=request.plan, plan_version=version.content_hash[:12],
                 level=request.level.value, authority=request.authority, title=request.title,
                 flow_run_id=str(flow_run_id) if flow_run_id else None,
                 **({"drill": True, "speed": request.speed} if request.drill else {}))
    # The team is sent in the trigger's own transaction, not when a flow-run process
    # gets round to it (seconds later, minutes in a burst); its order is queued
    # first so the outbox sends it first.
    _dispatch(session, ctx, now=now)
    _queue(session, ctx, purpose="activation", template="activation", now=now, deadlines=created,
           tags=activation_recipients(ctx.rules, ctx.tree, incident.authority_code))
    return incident


def dispatch(number: str, *, now: dt.datetime) -> bool:
    """Send the on-site team unless the trigger already did; False if it was sent."""
    with session_scope() as session:
        incident = _load(session, number)
        if _has_dispatch(session, incident.id):
            return False
        _dispatch(session, _context(session, incident), now=now)
        return True


def _dispatch(session: Session, ctx: Context, *, now: dt.datetime) -> None:
    incident = ctx.incident
    team = onsite_recipients(ctx.rules, incident.authority_code)
    session.add(Dispatch(incident_id=incident.id, team=",".join(team), dispatched_at=now))
    ctx.close_deadline(session, "dispatch", "met", now)
    audit.record(session, at=now, actor="regflow", action="incident.dispatched", subject=incident.number,
                 team=team)
    arrival = _deadline(session, incident.number, "arrival")
    _queue(session, ctx, purpose="dispatch", template="dispatch", tags=team, now=now, arrival=arrival)


def _has_dispatch(session: Session, incident_id: int) -> bool:
    return session.exec(select(Dispatch.id).where(Dispatch.incident_id == incident_id)).first() is not None


# --- human steps ---------------------------------------------------------------------


@dataclass
class StepState:
    number: str
    name: str
    status: str
    answer: dict[str, Any] | None
    prompt: str
    flow_run_id: uuid.UUID | None
    pause_key: str = ""  # the suspension key; a step whose form answer was refused waits again under a new one


def open_step(number: str, name: str, *, now: dt.datetime) -> StepState:
    """Mark a step as awaited (once) and say what to enter, why and by when."""
    spec = lifecycle.step_named(name)
    with session_scope() as session:
        incident = _load(session, number)
        row = step_rows.get_step(session, subject=incident.number, name=name)
        if row is None:
            row = step_rows.open_step(session, subject=incident.number, name=name, now=now)
            audit.record(session, at=now, actor="regflow", action="step.opened", subject=number, step=name)
        if row.status != "answered" and incident.stage != stage_of(name):
            incident.stage = stage_of(name)
            session.add(incident)
        ctx = _context(session, incident)
        deadline = _deadline(session, incident.number, spec.deadline)
        ask, pause_key = asking(session, subject=incident.number, step=name,
                                ask=f"{_ASK[spec.form]}\n\n{who_may(spec.roles, (incident.authority_code,))}")
        prompt = render("prompts/step.md.j2", **ctx.template_vars(step=spec, deadline=deadline, now=now,
                                                                  ask=ask, cli=_cli(spec, number)))
        return StepState(number, name, row.status, row.answer, prompt, incident.flow_run_id, pause_key=pause_key)


def stage_of(step: str) -> str:
    """A step as a run tag: every progress report is one stage, for filtering."""
    return "progress" if step.startswith("progress-") else step


_ASK = {
    "arrival": "现场处置组到达现场后，填写到场负责人和现场情况。\n\n"
               "When the on-site team arrives, enter who leads it and what it found.",
    "report": "填写报告内容；提交后报告将报送上级单位。\n\n"
              "Write the report; on submission it is sent to the superior authorities.",
    "progress": "事件仍在处置时提交续报（action = progress）；处置结束时选择 close 并填写小结。\n\n"
                "While handling goes on, submit a progress report (action = progress); when handling "
                "has ended, choose close and summarise.",
    "review": "事后评估：处置评估、经验教训与改进措施。提交后生成信息发布通稿，事件结案。\n\n"
              "Post-incident review: assessment, lessons, improvements. Submitting it drafts the "
              "information release notice and closes the incident.",
}


def _cli(spec: lifecycle.StepSpec, number: str) -> str:
    return {"arrival": f"regflow incident arrive {number} --officer 姓名",
            "report": f"regflow incident report {number} --kind {spec.report_kind} --text '…'",
            "progress": f"regflow incident report {number} --kind progress --text '…'  |  "
                        f"regflow incident close {number} --summary '…'",
            "review": f"regflow incident review {number} --lessons '…'"}[spec.form]


def _deadline(session: Session, subject: str, name: str):
    return deadline_rows.get_deadline(session, subject=subject, name=name)


@dataclass
class Answered:
    number: str
    step: str
    answer: dict[str, Any]
    flow_run_id: uuid.UUID | None
    newly: bool  # False when this call found the step already answered


def answer(number: str, *, answer: dict[str, Any], source: str, now: dt.datetime, verb: str | None = None,
           step: str | None = None) -> Answered:
    """Record a human step's answer and everything that follows from it.

    From the CLI, `verb` says what the person is doing (`arrive`, `report:initial`,
    `close`, ...), and it must be what the incident awaits. From the flow, `step`
    names the step it was suspended on, and an earlier answer simply wins.
    """
    from rules.forms import FORMS, author_of  # the same form classes the UI renders

    with session_scope() as session:
        incident = _load(session, number)
        done = {r.name: r for r in step_rows.steps_for(session, subject=incident.number) if r.status == "answered"}
        expected = lifecycle.next_step({name: r.answer or {} for name, r in done.items()})
        if step is not None and step in done:
            return Answered(number, step, done[step].answer or {}, incident.flow_run_id, newly=False)
        if verb is not None:
            _check_verb(number, verb, expected, done)
        spec = expected if step is None else lifecycle.step_named(step)
        if expected is None or spec.name != expected.name:
            raise StepConflict(f"{number} is not awaiting {spec.title}")
        if verb in ("close", "report:progress"):
            answer = {**answer, "action": "close" if verb == "close" else "progress"}
        try:
            form = FORMS[spec.form].model_validate(answer)
        except Exception as exc:
            raise InvalidInput(_first_error(exc)) from exc
        data = form.model_dump()
        by = author_of(spec.form, data)
        if source != "drill":  # a drill's simulated responders are the drill itself, on record as such
            require(session, by, roles=spec.roles, authorities=(incident.authority_code,), subject=number,
                    action=f"answer {spec.title}", step=spec.name, now=now)
        row = step_rows.open_step(session, subject=incident.number, name=spec.name, now=now)
        if not step_rows.claim_answer(session, step=row, answer=data, by=by, source=source, now=now):
            raise StepConflict(f"{spec.title} of {number} was already recorded")
        ctx = _context(session, incident)
        _apply(session, ctx, spec, data, by=by, now=now)
        audit.record(session, at=now, actor=by, action="step.answered", subject=number, step=spec.name,
                     source=source)
        return Answered(number, spec.name, data, incident.flow_run_id, newly=True)


def _check_verb(number: str, verb: str, expected, done: dict) -> None:
    if expected is not None and verb in expected.answers:
        return
    wanted = VERB_TITLES.get(verb, verb)
    for name, row in done.items():
        if verb in lifecycle.step_named(name).answers and verb != "report:progress":
            when = pendulum.instance(row.answered_at).in_timezone(get_settings().timezone).format("YYYY-MM-DD HH:mm")
            raise StepConflict(f"{wanted} of {number} was already recorded at {when} by {row.answered_by}")
    if expected is None:
        raise StepConflict(f"{number} is closed: no step is awaited")
    raise StepConflict(f"{number} is awaiting {expected.title}, not {wanted}")


def _first_error(exc: Exception) -> str:
    from pydantic import ValidationError

    from rules.authorities import first_error

    return first_error(exc) if isinstance(exc, ValidationError) else str(exc).splitlines()[0]


def _apply(session: Session, ctx: Context, spec: lifecycle.StepSpec, data: dict[str, Any], *, by: str,
           now: dt.datetime) -> None:
    """What follows from an answer: deadlines met and opened, documents, notices."""
    incident, code = ctx.incident, ctx.incident.authority_code
    desk = [f"{code}.duty"]
    upward = desk + upward_recipients(ctx.rules, ctx.tree, code)

    def met(name: str, status: str = "met") -> None:
        ctx.close_deadline(session, name, status, now)

    def add(name: str, period: str):
        return ctx.add_deadline(session, name, now, period)

    def notify(tags, heading, heading_en, text="", next_deadline=None):
        _queue(session, ctx, purpose=spec.name, template="step", tags=tags, now=now, heading=heading,
               heading_en=heading_en, by=by, at=now, text=text, next_deadline=next_deadline)

    if spec.form == "arrival":
        met("arrival")
        notify(desk + [f"{code}.head"], "现场到达", "Arrival on site", data.get("note", ""))
    elif spec.form == "report":
        deadline = _deadline(session, incident.number, spec.deadline)
        _report(session, ctx, spec, kind=spec.report_kind, text=data["text"], by=by, now=now, deadline=deadline)
        if spec.report_kind == "initial":
            met("initial_report")
            met("upward_report")
            nxt = add("progress-1", "progress_every")
        else:
            met("final_report")
            nxt = add("review", "review")
        zh, en = REPORT_KINDS[spec.report_kind]
        notify(upward, zh, en.capitalize(), data["text"], nxt)
    elif spec.form == "progress":
        n = int(spec.name.removeprefix("progress-"))
        if data["action"] == "close":
            met(spec.name, "cancelled")
            incident.status, incident.handling_ended_at = "handling_ended", now
            session.add(incident)
            _report(session, ctx, spec, kind="closure", text=data["text"], by=by, now=now, deadline=None)
            nxt = add("final_report", "final_report")
            audit.record(session, at=now, actor=by, action="incident.handling_ended", subject=incident.number)
            notify(upward, "处置结束", "End of handling", data["text"], nxt)
        else:
            deadline = _deadline(session, incident.number, spec.name)
            _report(session, ctx, spec, kind="progress", text=data["text"], by=by, now=now, deadline=deadline)
            met(spec.name)
            nxt = add(f"progress-{n + 1}", "progress_every")
            notify(upward, f"续报 {n}", f"Progress report {n}", data["text"], nxt)
    elif spec.form == "review":
        met("review")
        _report(session, ctx, spec, kind="review", text=data["lessons"], by=by, now=now,
                deadline=_deadline(session, incident.number, "review"))
        _release(session, ctx, now=now)
        incident.status, incident.closed_at, incident.stage = "closed", now, "closed"
        session.add(incident)
        audit.record(session, at=now, actor=by, action="incident.closed", subject=incident.number)
        notify(upward + [f"{code}.head"], "事后评估完成，事件结案", "Review done, incident closed")


def _report(session: Session, ctx: Context, spec: lifecycle.StepSpec, *, kind: str, text: str, by: str,
            now: dt.datetime, deadline) -> Report:
    zh, en = REPORT_KINDS[kind]
    document = render("documents/report.md.j2", **ctx.template_vars(
        kind_zh=zh, kind_en=en, author=by, at=now, text=text, deadline=deadline))
    row = Report(subject=ctx.incident.number, kind=kind, step=spec.name, author=by, text=text,
                 document=document, submitted_at=now)
    session.add(row)
    session.flush()
    return row


def _release(session: Session, ctx: Context, *, now: dt.datetime) -> Report:
    reports = {r.kind: r for r in reports_for(session, subject=ctx.incident.number)}
    arrival = step_rows.get_step(session, subject=ctx.incident.number, name="arrival")
    document = render("documents/release.md.j2", **ctx.template_vars(
        at=now, arrived_at=arrival.answered_at if arrival else None,
        final_text=reports["final"].text if "final" in reports else ""))
    row = Report(subject=ctx.incident.number, kind="release", step="release", author=ctx.authority.name,
                 text=document, document=document, submitted_at=now)
    session.add(row)
    return row


def consume(number: str, name: str, *, now: dt.datetime, mark: bool = True) -> list[Report]:
    """The flow has gone past a step: mark it, and return the step's documents the
    first time only (so artifacts are published once however often the flow re-runs)."""
    with session_scope() as session:
        incident = _load(session, number)
        row = step_rows.get_step(session, subject=incident.number, name=name)
        if row is None or row.consumed_at is not None:
            return []
        if mark:  # without: read them to publish first, so a crash in between loses none
            row.consumed_at = now
            session.add(row)
        steps = {name, "release"} if name == "review" else {name}
        return [r for r in reports_for(session, subject=incident.number) if r.step in steps]


def pending_answer(session: Session, *, older_than: dt.datetime) -> list[tuple[str, str, dict, uuid.UUID]]:
    """Answers recorded while their run was not yet suspended: (number, step, answer,
    run), for incidents and cases alike."""""
    rows = step_rows.unconsumed_answers(session, older_than=older_than)
    found = []
    for row in rows:
        subject = subject_for(session, row.subject)
        run_id = run_for(subject, row.name) if subject is not None else None
        if run_id is not None:
            found.append((subject.number, row.name, row.answer or {}, run_id))
    return found
