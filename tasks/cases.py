"""Enforcement case and complaint state changes. As for incidents, each function
is one transaction (the change, its deadlines, outbox rows, documents and audit
event commit together) and is idempotent by its own key, because a resumed flow
runs again from the top.

Statutory limits come from the rule file (with the authority's overrides) through
`rules.statutes`; which step meets and opens which deadline is `_apply` below.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pendulum
from pydantic import ValidationError
from sqlmodel import Session

from kernel.errors import InvalidInput, NotFound, StepConflict, UnknownAuthority
from kernel.settings import get_settings
from rules import cases as machine
from rules.cases import LeadRequest
from rules.authorities import AuthorityTree, first_error
from rules.calendar import load_calendar
from rules.durations import Due, Period, due_after
from rules.reminders import EscalationPolicy, ReminderPolicy
from rules.statutes import LoadedRules, due_by_rule, late_payment_surcharge, latest_before, load_rules
from storage import audit, deadlines as deadline_rows, steps as step_rows
from storage.authorities import Authority, load_tree
from storage.cases import Case, case_by_run, get_case
from storage.db import session_scope
from storage.deadlines import Deadline
from storage.incidents import Report, next_number, reports_for
from storage.subjects import run_for
from tasks import deadlines as engine, events
from tasks.access import and_superiors, asking, require, who_may
from tasks.incidents import Answered, StepState
from tasks.notify import queue
from tasks.render import local_time, render

# Case deadlines run for days: remind at half and four fifths, then daily while
# overdue; an unacknowledged escalation climbs after a working day's hours.
CASE_REMINDERS = ReminderPolicy(at=["50%", "80%"], overdue_every="24h")
CASE_ESCALATION = EscalationPolicy(ack_timeout="8h", repeat=1)

DOCUMENTS = {
    "filing": ("立案审批表", "Filing approval"), "not-filed": ("不予立案审批表", "Decision not to file"),
    "transfer": ("涉嫌犯罪案件移送审批表", "Criminal transfer approval"),
    "pre-penalty": ("行政处罚告知书", "Pre-penalty notice"), "decision": ("行政处罚决定书（摘要）", "Decision summary"),
    "closure": ("结案审批表", "Closing report"), "lookback": ("回头看核查报告", "Look-back review report"),
}
OUTCOMES = {"not_filed": "不予立案", "penalised": "予以处罚", "no_penalty": "不予处罚", "transferred": "移送司法机关",
            "rejected": "不予受理", "mediated": "调解成功", "mediation_failed": "终止调解", "lead": "转为案件线索"}


# --- receiving leads and complaints --------------------------------------------------


def receive(request: LeadRequest, *, now: dt.datetime, flow_run_id: uuid.UUID | None = None) -> Case:
    """Record a lead or a complaint, its first deadline and the desk's notice."""
    with session_scope() as session:
        if flow_run_id is not None:
            existing = case_by_run(session, flow_run_id=flow_run_id)
            if existing:
                return existing
        return _receive(session, request, now=now, flow_run_id=flow_run_id)


def _receive(session: Session, request: LeadRequest, *, now: dt.datetime, flow_run_id: uuid.UUID | None = None,
             first_rule: str | None = None) -> Case:
    if session.get(Authority, request.authority) is None:
        raise UnknownAuthority(f"unknown authority {request.authority!r} (list them with `regflow authorities list`)")
    settings = get_settings()
    rules = load_rules(settings.rules_file, authority=request.authority)
    year = pendulum.instance(now).in_timezone(settings.timezone).year
    prefix = "CASE" if request.kind == "case" else "CMP"
    case = Case(number=machine.case_number(year, next_number(session, name=f"{prefix}-{year}"), request.kind),
                kind=request.kind, title=request.title, party=request.party, source=request.source,
                detail=request.detail, authority_code=request.authority, reporter=request.reporter,
                reporter_contact=request.reporter_contact, real_name=request.real_name, linked_to=request.linked_to,
                stage=machine.FIRST[request.kind], received_at=request.received_at or now, rules_hash=rules.content_hash,
                flow_run_id=flow_run_id)
    session.add(case)
    session.flush()
    ctx = CaseContext(session, case, rules)
    first = machine.FIRST[request.kind]
    deadline = ctx.add(first, case.received_at, rule=first_rule)
    audit.record(session, at=now, actor=request.reporter or "desk", action=f"{request.kind}.received",
                 subject=case.number, source=request.source, authority=request.authority, title=request.title,
                 rules_version=rules.content_hash[:12], linked_to=request.linked_to)
    heading = "收到投诉" if request.kind == "complaint" else f"收到案件线索（{machine.LEAD_SOURCES[request.source]}）"
    ctx.notify(key="received", tags=ctx.desk(), heading=heading, heading_en=f"New {request.kind}", by="regflow",
               now=now, text=request.detail, next_deadline=deadline)
    return case


# --- what every change to one case needs ---------------------------------------------


@dataclass
class CaseContext:
    session: Session
    case: Case
    rules: LoadedRules
    _tree: AuthorityTree | None = None

    @property
    def tree(self) -> AuthorityTree:
        if self._tree is None:
            self._tree = load_tree(self.session)
        return self._tree

    @property
    def authority(self) -> Authority:
        return self.session.get(Authority, self.case.authority_code)

    def desk(self, code: str | None = None) -> list[str]:
        code = code or self.case.authority_code
        return [f"{code}.duty", f"{code}.head"]

    def due(self, name: str, start: dt.datetime, rule: str | None = None) -> Due:
        settings = get_settings()
        limit = self.rules.rules.limit(rule or machine.rule_of(name))
        return due_by_rule(limit, start, tz=settings.timezone, calendar=load_calendar(settings.calendar_override))

    def policy(self, code: str | None = None, ladder_from: str | None = None) -> dict[str, Any]:
        """Reminders to the desk that owes it; a miss climbs from `ladder_from` (a listing
        authority) or else from that desk's superiors."""
        code = code or self.case.authority_code
        ladder = ([ladder_from] + [a.code for a in self.tree.chain_up(ladder_from)] if ladder_from
                  else [a.code for a in self.tree.chain_up(code)])
        return {"reminders": CASE_REMINDERS.snapshot(), "escalation": CASE_ESCALATION.snapshot(ladder)}

    def add(self, name: str, start: dt.datetime, *, rule: str | None = None, due: Due | None = None,
            authority: str | None = None, ladder_from: str | None = None) -> Deadline:
        due = due or self.due(name, start, rule)
        code = authority or self.case.authority_code
        return deadline_rows.add_deadline(self.session, subject=self.case.number, name=name, due_at=due.at,
                                          rule=due.rule, now=start, authority=code,
                                          policy=self.policy(code, ladder_from))

    def get(self, name: str) -> Deadline | None:
        return deadline_rows.get_deadline(self.session, subject=self.case.number, name=name)

    def close(self, name: str, now: dt.datetime, status: str = "met") -> Deadline | None:
        row = deadline_rows.close_deadline(self.session, subject=self.case.number, name=name, status=status, now=now)
        if row is not None and status == "met":
            engine.resolve_late(self.session, deadline=row, now=now)
        return row

    def notify(self, *, key: str, tags: list[str], heading: str, heading_en: str, by: str, now: dt.datetime,
               text: str = "", next_deadline: Deadline | None = None) -> None:
        queue(self.session, number=self.case.number, key=key, tags=tags, template="step", now=now,
              subject=self.case, heading=heading, heading_en=heading_en, by=by, at=now, text=text,
              next_deadline=next_deadline)

    def document(self, kind: str, *, step: str, by: str, now: dt.datetime, text: str = "",
                 fields: list[tuple[str, Any]] = (), deadline: Deadline | None = None) -> Report:
        zh, en = DOCUMENTS[kind]
        document = render("documents/case.md.j2", case=self.case, authority=self.authority, heading=zh,
                          heading_en=en, source=machine.LEAD_SOURCES.get(self.case.source, self.case.source),
                          fields=[(k, v) for k, v in fields if v not in (None, "")], by=by, at=now, text=text,
                          deadline=deadline)
        row = Report(subject=self.case.number, kind=kind, step=step, author=by, text=text, document=document,
                     submitted_at=now)
        self.session.add(row)
        self.session.flush()
        return row

    def set_stage(self, stage: str) -> None:
        self.case.stage = stage
        self.session.add(self.case)


def _context(session: Session, case: Case) -> CaseContext:
    return CaseContext(session, case, load_rules(get_settings().rules_file, authority=case.authority_code))


def _load(session: Session, number: str) -> Case:
    case = get_case(session, number=number)
    if case is None:
        raise NotFound(f"no case or complaint {number.strip()!r}")
    return case


# --- human steps ---------------------------------------------------------------------


def _kind_of(case: Case, name: str) -> str:
    return "lookback" if name == "lookback" else case.kind


def _answered(session: Session, case: Case) -> dict[str, Any]:
    return {r.name: r for r in step_rows.steps_for(session, subject=case.number) if r.status == "answered"}


def open_step(number: str, name: str, *, now: dt.datetime) -> StepState:
    """Mark a step as awaited (once) and say what to enter, why and by when."""
    spec = machine.step_named(name)
    with session_scope() as session:
        case = _load(session, number)
        row = step_rows.get_step(session, subject=number, name=name)
        if row is None:
            row = step_rows.open_step(session, subject=case.number, name=name, now=now)
            audit.record(session, at=now, actor="regflow", action="step.opened", subject=case.number, step=name)
        deadline = deadline_rows.get_deadline(session, subject=case.number, name=spec.deadline or "decision")
        ask, pause_key = asking(session, subject=case.number, step=name,
                                ask=who_may(spec.roles, (case.authority_code,)))
        prompt = render("prompts/step.md.j2", subject=case, step=spec, deadline=deadline, now=now, ask=ask,
                        cli=f"regflow case decide {case.number} {name} by=姓名 …")
        return StepState(case.number, name, row.status, row.answer, prompt, case.flow_run_id, pause_key=pause_key)


def answer(number: str, *, answer: dict[str, Any], source: str, now: dt.datetime, step: str,
           from_flow: bool = False) -> Answered:
    """Record a step's answer and everything that follows from it.

    From the CLI, `step` is what the person means to answer: it must be the step
    the case awaits. From the flow, the step it was suspended on; an earlier
    answer (from the CLI) simply wins.
    """
    from rules.forms import CASE_FORMS  # the same form classes the UI renders

    spec = machine.step_named(step)
    with session_scope() as session:
        case = _load(session, number)
        kind = _kind_of(case, spec.name)
        done = _answered(session, case)
        if spec.name in done:
            if from_flow:
                return Answered(case.number, spec.name, done[spec.name].answer or {}, None, newly=False)
            row = done[spec.name]
            raise StepConflict(f"{spec.title} of {case.number} was already recorded at "
                               f"{local_time(row.answered_at)} by {row.answered_by}")
        expected = machine.next_step(kind, {n: r.answer or {} for n, r in done.items()})
        if kind == "lookback" and step_rows.get_step(session, subject=case.number, name="lookback") is None:
            expected = None  # a look-back is answered only once its scheduled run has started
        if expected is None or expected.name != spec.name:
            waiting = f"awaiting {expected.title}" if expected else ("closed" if case.status == "closed"
                                                                     else "not awaiting any step")
            raise StepConflict(f"{case.number} is {waiting}, not {spec.title}")
        try:
            form = CASE_FORMS[spec.form].model_validate(answer)
        except ValidationError as exc:
            raise InvalidInput(first_error(exc)) from exc
        except ValueError as exc:
            raise InvalidInput(str(exc).splitlines()[0]) from exc
        data = form.model_dump(mode="json", exclude={"multiline"})
        require(session, form.by, roles=spec.roles, authorities=(case.authority_code,),
                subject=case.number, action=f"answer {spec.title}", step=spec.name, now=now)
        row = step_rows.open_step(session, subject=case.number, name=spec.name, now=now)
        if not step_rows.claim_answer(session, step=row, answer=data, by=form.by, source=source, now=now):
            raise StepConflict(f"{spec.title} of {case.number} was already recorded")
        ctx = _context(session, case)
        cycle = _apply(ctx, spec, form, now=now)
        nxt = machine.following(kind, spec.name, data)
        if case.status == "open":
            ctx.set_stage(nxt.name if nxt else case.stage)
        audit.record(session, at=now, actor=form.by, action="step.answered", subject=case.number, step=spec.name,
                     source=source)
        result = Answered(case.number, spec.name, data, run_for(case, spec.name), newly=True)
    events.emit_all(cycle.emitted if cycle else [])
    return result


def _local_day(now: dt.datetime) -> dt.date:
    return pendulum.instance(now).in_timezone(get_settings().timezone).date()


def _not_future(day: dt.date, field: str, now: dt.datetime) -> dt.datetime:
    if day > _local_day(now):
        raise InvalidInput(f"{field}: {day} is in the future")
    return machine.at_noon(day, get_settings().timezone)


def _apply(ctx: CaseContext, spec: machine.CaseStep, form: Any, *, now: dt.datetime):
    """What follows from an answer: deadlines met and opened, documents, notices."""
    case, by, text = ctx.case, form.by, form.text
    desk, upward = ctx.desk(), ctx.desk() + [t for a in ctx.tree.chain_up(case.authority_code)[:1]
                                           for t in ctx.desk(a.code)]
    met = ctx.close(spec.deadline, now) if spec.deadline else None

    def notify(heading: str, heading_en: str, nxt: Deadline | None = None, tags: list[str] | None = None,
               key: str = "") -> None:
        ctx.notify(key=f"{spec.name}{key}", tags=tags or desk, heading=heading, heading_en=heading_en, by=by, now=now,
                   text=text, next_deadline=nxt)

    name = spec.name
    if name == "filing":
        if form.decision == "file":
            case.filed_at, case.handler = now, form.handler or by
            nxt = ctx.add("decision", now)
            ctx.document("filing", step=name, by=by, now=now, text=text, deadline=met,
                         fields=[("承办人 Handler", case.handler)])
            notify("立案", "Case filed", nxt)
        else:
            ctx.document("not-filed", step=name, by=by, now=now, text=text, deadline=met)
            _finish(ctx, "not_filed", now=now, by=by)
            notify("不予立案", "Not filed")
        if case.real_name:
            ctx.add("reporter-notice", now)
            notify("请告知实名举报人是否立案", "Tell the real-name reporter whether a case was filed",
                   ctx.get("reporter-notice"), key=":reporter")
    elif name == "investigation":
        if form.finding == "penalty":
            notify("调查终结，送法制审核", "Investigation done, to legal review", ctx.add("legal-review", now))
        elif form.finding == "no_penalty":
            notify("调查终结，拟不予处罚", "Investigation done, no penalty proposed", ctx.add("closure", now))
        else:
            _pause_clock(ctx, by=by, reason="移送司法机关审查 / criminal transfer under way", now=now, strict=False)
            notify("涉嫌犯罪，报请移送", "Suspected crime: transfer proposed", ctx.add("transfer-decision", now),
                   tags=desk)
    elif name == "transfer-decision":
        ctx.document("transfer", step=name, by=by, now=now, text=text, deadline=met,
                     fields=[("负责人决定 Head's decision", "批准移送 approved" if form.approve else "不予移送 refused")])
        if form.approve:
            notify("批准移送公安机关", "Transfer approved", ctx.add("transfer-sent", now))
        else:
            _resume_clock(ctx, by=by, now=now, strict=False)
            notify("不予移送，继续办理", "Transfer refused; the case goes on", ctx.add("legal-review", now))
    elif name == "transfer-sent":
        case.facts = {**case.facts, "police": form.police}
        notify(f"已移送 {form.police}", "Transferred to the police", ctx.add("police-decision", now))
    elif name in ("police-decision", "reconsideration-answer"):
        if form.accepted:
            ctx.add("handover", now)
            notify("公安机关已立案，移交涉案物品并结案", "Police opened a case: hand over and close",
                   ctx.add("closure", now))
            case.facts = {**case.facts, "transferred": True}
        elif name == "police-decision":
            notify("公安机关不予立案，可提请复议", "Police refused; reconsideration may be asked",
                   ctx.add("reconsideration-request", now))
        else:
            _resume_clock(ctx, by=by, now=now, strict=False)
            notify("复议仍不予立案，继续行政处理", "Police refused again; the administrative case goes on",
                   ctx.add("legal-review", now))
    elif name == "reconsideration":
        if form.approve:
            notify("已提请复议", "Reconsideration asked", ctx.add("reconsideration-answer", now))
        else:
            _resume_clock(ctx, by=by, now=now, strict=False)
            notify("不提请复议，继续行政处理", "No reconsideration; the case goes on", ctx.add("legal-review", now))
    elif name == "legal-review":
        if form.opinion == "agree":
            notify("法制审核通过", "Legal review agreed")
        else:
            notify("法制审核建议不予处罚", "Legal review: no penalty", ctx.add("closure", now))
    elif name == "pre-penalty":
        served = _not_future(form.served_on, "served_on", now)
        case.fine = form.fine
        nxt = ctx.add("party-statement", served)
        ctx.document("pre-penalty", step=name, by=by, now=now, text=text, deadline=nxt,
                     fields=[("拟罚款 Proposed fine", f"{form.fine} 元"), ("送达日期 Served on", form.served_on)])
        notify("行政处罚告知书已送达", "Pre-penalty notice served", nxt)
    elif name == "party-response":
        if form.response == "hearing":
            notify("当事人要求听证", "Hearing requested", _hearing_notice(ctx, form.hearing_at, now))
        else:
            notify({"waived": "当事人未陈述申辩", "statement": "已听取陈述申辩"}[form.response],
                   "Party's answer recorded")
    elif name == "hearing-notice":
        _not_future(form.served_on, "served_on", now)
        if met is not None and machine.at_noon(form.served_on, get_settings().timezone) > met.due_at:
            raise InvalidInput(f"served_on: {form.served_on} is too late for the hearing; the notice had to reach "
                               f"the party by {local_time(met.due_at)} — set a later hearing date")
        notify("听证通知已送达", "Hearing notice served")
    elif name == "hearing":
        notify("听证已举行", "Hearing held")
    elif name == "decision":
        _decide(ctx, form, met, now=now)
        notify("作出处罚决定" if form.outcome == "penalty" else "决定不予处罚", "Decision made",
               ctx.get("payment") or ctx.get("delivery") or ctx.get("closure"), tags=upward)
    elif name == "delivery":
        delivered = _not_future(form.served_on, "served_on", now)
        notify("处罚决定书已送达", "Decision delivered", ctx.add("payment", delivered))
    elif name == "payment":
        _pay(ctx, form, met, now=now)
        notify("罚款已缴纳", "Fine paid", ctx.add("closure", now))
    elif name == "closure":
        outcome = ("transferred" if case.facts.get("transferred") else
                   "penalised" if case.fine is not None and case.facts.get("decided") == "penalty" else "no_penalty")
        _finish(ctx, outcome, now=now, by=by)
        ctx.close("handover", now)
        ctx.document("closure", step=name, by=by, now=now, text=text, deadline=met,
                     fields=[("结案类型 Outcome", OUTCOMES[outcome]),
                             ("罚款 Fine", f"{case.fine} 元" if outcome == "penalised" else None),
                             ("加处罚款 Surcharge", f"{case.surcharge} 元" if case.surcharge else None),
                             ("回头看 Look-back", local_time(case.lookback_at) if case.lookback_at else None)])
        notify("结案", "Case closed", tags=upward + _listing_desk(case))
    elif name == "acceptance":
        tell = f"请告知投诉人 {case.reporter or ''}（{case.reporter_contact or '无联系方式'}）：" \
               f"{'已受理' if form.accept else '不予受理'}。"
        text = f"{tell}\n\n{text}".strip()
        if form.accept:
            notify("投诉已受理", "Complaint accepted", ctx.add("mediation", now))
        else:
            _finish(ctx, "rejected", now=now, by=by)
            notify("投诉不予受理", "Complaint not accepted")
    elif name == "mediation":
        outcome = {"agreed": "mediated", "failed": "mediation_failed", "lead": "lead"}[form.outcome]
        _finish(ctx, outcome, now=now, by=by)
        if form.outcome == "lead":
            lead = _receive(ctx.session, LeadRequest(
                title=case.title, party=case.party, source="complaint", detail=f"{case.detail}\n\n{text}".strip(),
                authority=case.authority_code, reporter=case.reporter, reporter_contact=case.reporter_contact,
                linked_to=case.number), now=now, first_rule="complaint.lead_check")
            case.facts = {**case.facts, "lead": lead.number}
            notify(f"调解中发现违法线索，转为 {lead.number}", f"Violation lead found: {lead.number}")
        else:
            notify({"agreed": "调解达成协议", "failed": "终止调解，请告知双方"}[form.outcome], "Mediation ended")
    elif name == "lookback":
        ctx.document("lookback", step=name, by=by, now=now, text=text, deadline=met,
                     fields=[("整改到位 Rectified", "是 yes" if form.rectified else "否 no")])
        case.facts = {**case.facts, "lookback": "passed" if form.rectified else "failed"}
        if form.rectified:
            notify("回头看：整改到位", "Look-back: rectified")
            return None
        reopened = _receive(ctx.session, LeadRequest(
            title=case.title, party=case.party, source="lookback", authority=case.authority_code,
            detail=f"{case.number} 回头看发现整改不到位。\n\n{text}".strip(), linked_to=case.number), now=now)
        case.facts = {**case.facts, "reopened_as": reopened.number}
        notify(f"回头看：整改不到位，重新立案核查 {reopened.number}", f"Look-back failed: reopened as {reopened.number}",
               tags=upward)
        return engine.escalate(ctx.session, case, met, why="lookback.failed", now=now)
    ctx.session.add(case)
    return None


def _decide(ctx: CaseContext, form: Any, met: Deadline | None, *, now: dt.datetime) -> None:
    case = ctx.case
    case.facts = {**case.facts, "decided": form.outcome}
    case.rectification = form.rectification
    if form.outcome == "penalty":
        if form.fine is None:
            raise InvalidInput("fine: a penalty decision needs the fine")
        case.fine = form.fine
        nxt = ctx.add("payment", now) if form.party_present else ctx.add("delivery", now)
    else:
        nxt = ctx.add("closure", now)
    ctx.document("decision", step="decision", by=form.by, now=now, text=form.text, deadline=met,
                 fields=[("决定 Outcome", "处罚 penalty" if form.outcome == "penalty" else "不予处罚 no penalty"),
                         ("罚款 Fine", f"{form.fine} 元" if form.fine else None),
                         ("责令改正 Rectification", "是 yes" if form.rectification else None),
                         ("下一时限 Next", nxt.rule)])


def _pay(ctx: CaseContext, form: Any, met: Deadline | None, *, now: dt.datetime) -> None:
    case = ctx.case
    _not_future(form.paid_on, "paid_on", now)
    due_day = pendulum.instance(met.due_at).in_timezone(get_settings().timezone).date() if met else form.paid_on
    surcharge = late_payment_surcharge(Decimal(case.fine), payment_due=due_day, paid_on=form.paid_on)
    owed = Decimal(case.fine) + surcharge
    if form.amount < owed:
        raise InvalidInput(f"amount: {form.amount} is less than the {owed} owed (fine {case.fine} + surcharge "
                           f"{surcharge} for payment after {due_day})")
    case.surcharge = surcharge
    case.facts = {**case.facts, "paid_on": form.paid_on.isoformat(), "paid": str(form.amount)}


def _hearing_notice(ctx: CaseContext, hearing_at: dt.datetime | None, now: dt.datetime) -> Deadline:
    settings = get_settings()
    if hearing_at is None:
        raise InvalidInput("hearing_at: a hearing request needs the hearing's date and time")
    if hearing_at.tzinfo is None:
        raise InvalidInput("hearing_at: must include a time zone (e.g. +08:00)")
    limit = ctx.rules.rules.limit("case.hearing_notice")
    latest = latest_before(hearing_at, Period.parse(limit.period), tz=settings.timezone,
                           calendar=load_calendar(settings.calendar_override), label=limit.name)
    if latest.at < now:
        raise InvalidInput(f"hearing_at: {local_time(hearing_at)} is too soon; the notice must reach the party "
                           f"{limit.period} before it, by {local_time(latest.at)}, which has passed")
    ctx.case.facts = {**ctx.case.facts, "hearing_at": hearing_at.isoformat()}
    return ctx.add("hearing-notice", now, due=latest)


def _finish(ctx: CaseContext, outcome: str, *, now: dt.datetime, by: str) -> None:
    """The case or complaint ends: every deadline still open is cancelled (a listing's
    final result is met), and a look-back review is due after a penalty or an order."""
    case = ctx.case
    case.status, case.outcome, case.closed_at, case.stage = "closed", outcome, now, "closed"
    for row in deadline_rows.deadlines_for(ctx.session, subject=case.number):
        if row.status in ("open", "paused") and row.name not in ("closure", "reporter-notice", "handover"):
            ctx.close(row.name, now, "met" if row.name == "supervision-final" else "cancelled")
    if case.kind == "case" and (outcome == "penalised" or case.rectification):
        # The period from the rule file (default 90 d), at 09:00 on the day it ends.
        day = pendulum.instance(ctx.due("lookback", now, rule="lookback.schedule").at).in_timezone(
            get_settings().timezone)
        case.lookback_at = day.set(hour=9, minute=0, second=0).in_timezone("UTC")
    audit.record(ctx.session, at=now, actor=by, action=f"{case.kind}.closed", subject=case.number, outcome=outcome,
                 lookback_at=case.lookback_at.isoformat() if case.lookback_at else None)
    ctx.session.add(case)


def _listing_desk(case: Case) -> list[str]:
    return [f"{case.listed_by}.duty", f"{case.listed_by}.head"] if case.listed_by else []


def consume(number: str, name: str, *, now: dt.datetime, mark: bool = True) -> list[Report]:
    """The flow has gone past a step: mark it, and return its documents the first
    time only (so artifacts are published once however often the flow re-runs)."""
    with session_scope() as session:
        row = step_rows.get_step(session, subject=number, name=name)
        if row is None or row.consumed_at is not None:
            return []
        if mark:  # without: read them to publish first, so a crash in between loses none
            row.consumed_at = now
            session.add(row)
        return [r for r in reports_for(session, subject=number) if r.step == name]


# --- the case clock, extensions, measures ---------------------------------------------


def _pause_clock(ctx: CaseContext, *, by: str, reason: str, now: dt.datetime, strict: bool = True) -> list[Deadline]:
    if ctx.case.clock_paused_at is not None:
        if not strict:
            return []
        raise StepConflict(f"the clock of {ctx.case.number} is already paused since {local_time(ctx.case.clock_paused_at)}")
    paused = [engine.pause_row(ctx.session, row, by=by, reason=reason, now=now)
              for name in machine.CLOCK if (row := ctx.get(name)) is not None and row.status == "open"]
    ctx.case.clock_paused_at = now
    ctx.session.add(ctx.case)
    return paused


def _resume_clock(ctx: CaseContext, *, by: str, now: dt.datetime, strict: bool = True) -> list[Deadline]:
    if ctx.case.clock_paused_at is None:
        if not strict:
            return []
        raise StepConflict(f"the clock of {ctx.case.number} is not paused")
    settings = get_settings()
    calendar = load_calendar(settings.calendar_override)
    resumed = [engine.resume_row(ctx.session, row, by=by, now=now, calendar=calendar, tz=settings.timezone)
               for name in machine.CLOCK if (row := ctx.get(name)) is not None and row.status == "paused"]
    ctx.case.clock_paused_at = None
    ctx.session.add(ctx.case)
    return resumed


def pause_clock(number: str, *, by: str, reason: str, now: dt.datetime) -> list[Deadline]:
    """Testing, inspection, appraisal...: those days do not count (Art. 18, 64)."""
    with session_scope() as session:
        ctx = _open_case(session, number)
        require(session, by, roles=("handler", "head"), authorities=(ctx.case.authority_code,),
                subject=number, action="pause the case clock", now=now)
        paused = _pause_clock(ctx, by=by, reason=reason, now=now)
        if not paused:
            raise StepConflict(f"{number} has no running case clock to pause")
        ctx.notify(key=f"clock-paused:{now.isoformat()}", tags=ctx.desk(),
                   heading="办案期限中止", heading_en="Case clock paused", by=by, now=now, text=reason)
        return paused


def resume_clock(number: str, *, by: str, now: dt.datetime) -> list[Deadline]:
    with session_scope() as session:
        ctx = _open_case(session, number)
        require(session, by, roles=("handler", "head"), authorities=(ctx.case.authority_code,),
                subject=number, action="resume the case clock", now=now)
        resumed = _resume_clock(ctx, by=by, now=now)
        ctx.notify(key=f"clock-resumed:{now.isoformat()}", tags=ctx.desk(), heading="办案期限恢复计算",
                   heading_en="Case clock resumed", by=by, now=now,
                   next_deadline=resumed[-1] if resumed else None)
        return resumed


def extend(number: str, name: str, *, by: str, reason: str, now: dt.datetime,
           collective_period: str | None = None) -> Deadline:
    """Extend a deadline as its rule allows: once by the head (filing +15 WD, seizure
    +30 d, decision +30 d); the case decision beyond that only by a recorded
    collective decision, which sets its own period."""
    settings = get_settings()
    with session_scope() as session:
        ctx = _open_case(session, number)
        row = ctx.get(name)
        if row is None:
            raise NotFound(f"{number} has no deadline {name!r}")
        if row.status != "open":
            raise StepConflict(f"deadline {name} of {number} is {row.status}")
        key = machine.rule_of(name)
        limit = ctx.rules.rules.limit(key) if key else None
        if limit is None or limit.extension is None and not (collective_period and name == "decision"):
            raise InvalidInput(f"deadline {name} cannot be extended (no extension in its rule)")
        calendar = load_calendar(settings.calendar_override)
        if collective_period:
            if name != "decision":
                raise InvalidInput("a collective decision extends only the case decision deadline")
            if not row.extensions:
                raise InvalidInput("the head's 30-day extension comes first; a collective decision follows it")
            period, how = Period.parse(collective_period), "集体讨论决定延长 / collective decision"
        else:
            if len(row.extensions) >= (limit.max_extensions or 1):
                more = "; a further extension needs a collective decision (--collective --period 30d)" \
                    if name == "decision" else ""
                raise StepConflict(f"deadline {name} of {number} was already extended{more}")
            period, how = Period.parse(limit.extension), f"负责人批准延长 / approved by the {limit.approver or 'head'}"
        require(session, by, roles=("head",), authorities=and_superiors(ctx.tree, ctx.case.authority_code),
                subject=number, action=f"extend deadline {name}", now=now)
        due = due_after(row.due_at, period, tz=settings.timezone, calendar=calendar, event=ctx.rules.rules.limit(
            key).name if key else name)
        extended = engine.extend_row(session, row, due_at=due.at, by=by, reason=reason,
                                     rule=f"{how}: {due.rule}", now=now)
        ctx.notify(key=f"extended:{name}:{len(extended.extensions)}", tags=ctx.desk(), heading="期限延长",
                   heading_en=f"Deadline {name} extended", by=by, now=now, text=f"{how}\n\n{reason}",
                   next_deadline=extended)
        return extended


MEASURES = {"preservation": ("先行登记保存", "evidence preservation"), "seizure": ("查封扣押", "sealing or seizure")}


def measure(number: str, kind: str, *, by: str, end: bool, now: dt.datetime, text: str = "") -> Deadline:
    """Start a preservation or seizure (its limit runs), or record its end."""
    if kind not in MEASURES:
        raise InvalidInput(f"unknown measure {kind!r}; one of {', '.join(MEASURES)}")
    zh, en = MEASURES[kind]
    with session_scope() as session:
        ctx = _open_case(session, number)
        if ctx.case.filed_at is None:
            raise StepConflict(f"{number} is not filed yet")
        row = ctx.get(kind)
        if end:
            if row is None or row.status != "open":
                raise StepConflict(f"{number} has no {en} under way")
            ctx.close(kind, now)
            ctx.notify(key=f"measure:{kind}:end", tags=ctx.desk(), heading=f"{zh}处理完毕", heading_en=f"{en} ended",
                       by=by, now=now, text=text)
        else:
            if row is not None:
                raise StepConflict(f"{en} of {number} was already recorded at {local_time(row.created_at)}")
            row = ctx.add(kind, now)
            ctx.notify(key=f"measure:{kind}", tags=ctx.desk(), heading=f"采取{zh}措施", heading_en=f"{en} taken",
                       by=by, now=now, text=text, next_deadline=row)
        audit.record(session, at=now, actor=by, action=f"case.measure.{'ended' if end else 'taken'}",
                     subject=number, measure=kind)
        return row


def _open_case(session: Session, number: str) -> CaseContext:
    case = _load(session, number)
    if case.status != "open":
        raise StepConflict(f"{case.number} is closed ({OUTCOMES.get(case.outcome, case.outcome)})")
    return _context(session, case)


def reporter_notified(number: str, *, by: str, now: dt.datetime) -> Deadline:
    with session_scope() as session:
        case = _load(session, number)
        ctx = _context(session, case)
        row = ctx.get("reporter-notice")
        if row is None:
            raise StepConflict(f"{number} owes no notice to a real-name reporter")
        if row.status != "open":
            raise StepConflict(f"the reporter of {number} was already told ({row.status})")
        ctx.close("reporter-notice", now)
        audit.record(session, at=now, actor=by, action="case.reporter_notified", subject=number)
        return row


# --- assistance (协查) and listed supervision (挂牌督办) -----------------------------


def request_assistance(number: str, *, to: str, by: str, text: str, now: dt.datetime) -> Deadline:
    """Ask another authority to assist: it owes its answer within 15 WD, reminded at
    its own desk and escalated up its own chain."""
    with session_scope() as session:
        ctx = _open_case(session, number)
        if session.get(Authority, to) is None:
            raise UnknownAuthority(f"unknown authority {to!r}")
        if to == ctx.case.authority_code:
            raise InvalidInput("assistance is asked of another authority")
        n = 1 + sum(1 for d in deadline_rows.deadlines_for(session, subject=number) if d.name.startswith("assistance-"))
        row = ctx.add(f"assistance-{n}", now, authority=to)
        ctx.notify(key=f"assistance-{n}", tags=ctx.desk(to), heading=f"协查请求（{ctx.authority.name}）",
                   heading_en="Assistance requested", by=by, now=now, text=text, next_deadline=row)
        audit.record(session, at=now, actor=by, action="case.assistance.requested", subject=number, to=to, request=n)
        return row


def answer_assistance(number: str, n: int, *, by: str, text: str, now: dt.datetime) -> Deadline:
    with session_scope() as session:
        ctx = _context(session, _load(session, number))
        row = ctx.get(f"assistance-{n}")
        if row is None:
            raise NotFound(f"{number} has no assistance request {n}")
        if row.status != "open":
            raise StepConflict(f"assistance request {n} of {number} was already answered")
        ctx.close(row.name, now)
        ctx.notify(key=f"assistance-{n}:answered", tags=ctx.desk(), heading=f"协查回复 {n}",
                   heading_en="Assistance answered", by=by, now=now, text=text)
        audit.record(session, at=now, actor=by, action="case.assistance.answered", subject=number, request=n,
                     by_authority=row.authority)
        return row


def supervise(number: str, *, by_authority: str, report_every: str, finish_by: dt.datetime, by: str,
              now: dt.datetime) -> Case:
    """A supervising authority lists the case: progress reports owed at the interval,
    the result by the date, each miss escalated to the listing authority."""
    every = Period.parse(report_every)
    with session_scope() as session:
        ctx = _open_case(session, number)
        case = ctx.case
        if session.get(Authority, by_authority) is None:
            raise UnknownAuthority(f"unknown authority {by_authority!r}")
        if by_authority not in {a.code for a in ctx.tree.chain_up(case.authority_code)}:
            raise InvalidInput(f"{by_authority} does not supervise {case.authority_code}: only a superior lists a case")
        if case.listed_by:
            raise StepConflict(f"{number} is already listed by {case.listed_by}")
        if finish_by <= now:
            raise InvalidInput("finish_by: is in the past")
        case.listed_by, case.report_every, case.finish_by, case.supervision_reports = \
            by_authority, str(every), finish_by, 0
        session.add(case)
        settings = get_settings()
        progress = ctx.add("supervision-progress-1", now, ladder_from=by_authority, due=due_after(
            now, every, tz=settings.timezone, calendar=load_calendar(settings.calendar_override), event="督办进展报告 1"))
        ctx.add("supervision-final", now, ladder_from=by_authority,
                due=Due(at=finish_by, rule=f"督办通知：{local_time(finish_by)} 前办结 / finish by {local_time(finish_by)}"))
        ctx.notify(key="listed", tags=ctx.desk() + _listing_desk(case), heading=f"挂牌督办（{by_authority}）",
                   heading_en="Listed for supervision", by=by, now=now,
                   text=f"每 {every} 报告进展，{local_time(finish_by)} 前办结。", next_deadline=progress)
        audit.record(session, at=now, actor=by, action="case.listed", subject=number, by_authority=by_authority,
                     report_every=str(every), finish_by=finish_by.isoformat())
        return case


def supervision_report(number: str, *, by: str, text: str, now: dt.datetime) -> Deadline:
    """The handling unit reports progress on a listed case; the next report is due
    one interval later."""
    settings = get_settings()
    with session_scope() as session:
        ctx = _open_case(session, number)
        case = ctx.case
        if not case.listed_by:
            raise StepConflict(f"{number} is not listed for supervision")
        n = case.supervision_reports + 1
        ctx.close(f"supervision-progress-{n}", now)
        case.supervision_reports = n
        session.add(case)
        nxt = ctx.add(f"supervision-progress-{n + 1}", now, ladder_from=case.listed_by, due=due_after(
            now, Period.parse(case.report_every), tz=settings.timezone,
            calendar=load_calendar(settings.calendar_override), event=f"督办进展报告 {n + 1}"))
        ctx.notify(key=f"supervision-report-{n}", tags=ctx.desk() + _listing_desk(case),
                   heading=f"督办进展报告 {n}", heading_en=f"Progress report {n} on a listed case", by=by, now=now,
                   text=text, next_deadline=nxt)
        audit.record(session, at=now, actor=by, action="case.supervision.reported", subject=number, report=n)
        return nxt


def lift_listing(number: str, *, by: str, reason: str, now: dt.datetime) -> Case:
    with session_scope() as session:
        ctx = _context(session, _load(session, number))
        case = ctx.case
        if not case.listed_by:
            raise StepConflict(f"{number} is not listed for supervision")
        listed_by = case.listed_by
        for row in deadline_rows.deadlines_for(session, subject=number):
            if row.name.startswith("supervision-") and row.status in ("open", "paused"):
                ctx.close(row.name, now, "cancelled")
        ctx.notify(key=f"unlisted:{now.isoformat()}", tags=ctx.desk() + _listing_desk(case), heading="撤销挂牌督办",
                   heading_en="Listing lifted", by=by, now=now, text=reason)
        case.facts = {**case.facts, "listing_lifted": {"by": by, "at": now.isoformat(), "listed_by": listed_by}}
        case.listed_by = None
        session.add(case)
        audit.record(session, at=now, actor=by, action="case.unlisted", subject=number, listed_by=listed_by,
                     reason=reason)
        return case


# --- look-back reviews ---------------------------------------------------------------


def start_lookback(number: str, *, now: dt.datetime) -> Case:
    """The scheduled look-back run has started: the inspector owes the review within
    15 WD. Once per case."""
    with session_scope() as session:
        case = _load(session, number)
        ctx = _context(session, case)
        if ctx.get("lookback") is None:
            row = ctx.add("lookback", now)
            ctx.notify(key="lookback", tags=ctx.desk(), heading="回头看：请核查整改情况",
                       heading_en="Look-back review due", by="regflow", now=now, next_deadline=row)
            audit.record(session, at=now, actor="regflow", action="case.lookback.started", subject=number)
        return case


def lookback_scheduled(number: str, flow_run_id: uuid.UUID, *, now: dt.datetime) -> None:
    with session_scope() as session:
        case = _load(session, number)
        if case.lookback_run_id is None:
            case.lookback_run_id = flow_run_id
            session.add(case)
            audit.record(session, at=now, actor="regflow", action="case.lookback.scheduled", subject=number,
                         at_time=case.lookback_at.isoformat(), flow_run_id=str(flow_run_id))
