"""Enforcement cases, complaints and look-back reviews: receiving leads, what their
lifecycles' steps do beyond their declaration (`rules.cases`), and the obligations
beside the steps (the case clock, extensions, measures, assistance, listed
supervision, look-back scheduling).

As for incidents, each function is one transaction (the change, its deadlines,
outbox rows, documents and audit event commit together) and is idempotent by its own
key, because a resumed flow runs again from the top. Statutory limits come from the
rule file (with the authority's overrides) through `rules.statutes`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pendulum
from sqlmodel import Session

from kernel.errors import InvalidInput, NotFound, StepConflict, UnknownAuthority
from kernel.settings import get_settings
from rules import cases as machine
from rules import credit
from rules.calendar import load_calendar
from rules.cases import LeadRequest
from rules.durations import Due, Period, due_after
from rules.lifecycle import Lifecycle
from rules.reminders import EscalationPolicy, ReminderPolicy
from rules.statutes import LoadedRules, due_by_rule, late_payment_surcharge, latest_before, load_rules
from storage import audit
from storage import deadlines as deadline_rows
from storage.authorities import Authority
from storage.cases import Case, case_by_run, get_case
from storage.db import session_scope
from storage.deadlines import Deadline
from storage.incidents import Report, next_number
from tasks import deadlines as engine_deadlines
from tasks import lifecycle as engine
from tasks.lifecycle import Answered, Context, Given, StepState, not_future
from tasks.render import local_time

# Case deadlines run for days: remind at half and four fifths, then daily while
# overdue; an unacknowledged escalation climbs after a working day's hours.
CASE_REMINDERS = ReminderPolicy(at=["50%", "80%"], overdue_every="24h")
CASE_ESCALATION = EscalationPolicy(ack_timeout="8h", repeat=1)

# Who may pause and resume the case clock (testing, appraisal, a transfer).
CLOCK_KEEPERS = ("handler", "head")
OUTCOMES = {
    "not_filed": "不予立案",
    "penalised": "予以处罚",
    "no_penalty": "不予处罚",
    "transferred": "移送司法机关",
    "rejected": "不予受理",
    "mediated": "调解成功",
    "mediation_failed": "终止调解",
    "lead": "转为案件线索",
}


# --- receiving leads and complaints --------------------------------------------------


def receive(request: LeadRequest, *, now: dt.datetime, flow_run_id: uuid.UUID | None = None) -> Case:
    """Record a lead or a complaint, its first deadline and the desk's notice."""
    with session_scope() as session:
        if flow_run_id is not None:
            existing = case_by_run(session, flow_run_id=flow_run_id)
            if existing:
                return existing
        return _receive(session, request, now=now, flow_run_id=flow_run_id)


def _receive(
    session: Session,
    request: LeadRequest,
    *,
    now: dt.datetime,
    flow_run_id: uuid.UUID | None = None,
    first_rule: str | None = None,
) -> Case:
    if session.get(Authority, request.authority) is None:
        raise UnknownAuthority(f"unknown authority {request.authority!r} (list them with `regflow authorities list`)")
    settings = get_settings()
    rules = load_rules(settings.rules_file, authority=request.authority)
    year = pendulum.instance(now).in_timezone(settings.timezone).year
    prefix = machine.NUMBER_PREFIX[request.kind]
    case = Case(
        number=machine.case_number(year, next_number(session, name=f"{prefix}-{year}"), request.kind),
        kind=request.kind,
        title=request.title,
        party=request.party,
        source=request.source,
        detail=request.detail,
        authority_code=request.authority,
        reporter=request.reporter,
        reporter_contact=request.reporter_contact,
        real_name=request.real_name,
        linked_to=request.linked_to,
        stage=machine.LIFECYCLES[request.kind].first,
        received_at=request.received_at or now,
        rules_hash=rules.content_hash,
        flow_run_id=flow_run_id,
    )
    session.add(case)
    session.flush()
    ctx = CaseContext(session, case, rules)
    first = machine.LIFECYCLES[request.kind].first
    deadline = ctx.add(first, case.received_at, rule=first_rule)
    audit.record(
        session,
        at=now,
        actor=request.reporter or "desk",
        action=f"{request.kind}.received",
        subject=case.number,
        source=request.source,
        authority=request.authority,
        title=request.title,
        rules_version=rules.content_hash[:12],
        linked_to=request.linked_to,
    )
    heading = "收到投诉" if request.kind == "complaint" else f"收到案件线索（{machine.LEAD_SOURCES[request.source]}）"
    ctx.notify(
        "received", (heading, f"New {request.kind}"), by="regflow", now=now, text=request.detail, next_deadline=deadline
    )
    return case


# --- what every change to one case needs ---------------------------------------------


class CaseContext(Context):
    """A case's context: periods from the statutory rule file with its authority's
    overrides; reminders to the desk that owes a deadline, escalation up its chain."""

    def __init__(self, session: Session, case: Case, rules: LoadedRules | None = None) -> None:
        super().__init__(session, case)
        self.rules = rules or load_rules(get_settings().rules_file, authority=case.authority_code)

    @property
    def case(self) -> Case:
        return self.subject

    def desk(self, code: str | None = None) -> list[str]:
        code = code or self.case.authority_code
        return [f"{code}.duty", f"{code}.head"]

    def due(self, name: str, start: dt.datetime, rule: str | None = None) -> Due:
        settings = get_settings()
        limit = self.rules.rules.limit(rule or machine.rule_of(name))
        return due_by_rule(limit, start, tz=settings.timezone, calendar=load_calendar(settings.calendar_override))

    def due_in(self, start: dt.datetime, period: str, label: str) -> Due:
        """A period no statute sets (a plan's, the authority's own), counted like the rest."""
        settings = get_settings()
        calendar = load_calendar(settings.calendar_override)
        return due_after(start, Period.parse(period), tz=settings.timezone, calendar=calendar, event=label)

    def policy(self, code: str, ladder_from: str | None = None) -> dict[str, Any]:
        """Reminders to the desk that owes it; a miss climbs from `ladder_from` (a listing
        authority) or else from that desk's superiors."""
        ladder = (
            [ladder_from] + [a.code for a in self.tree.chain_up(ladder_from)]
            if ladder_from
            else [a.code for a in self.tree.chain_up(code)]
        )
        return {"reminders": CASE_REMINDERS.snapshot(), "escalation": CASE_ESCALATION.snapshot(ladder)}

    def recipients(self, names: tuple[str, ...]) -> list[str]:
        superior = [t for a in self.tree.chain_up(self.case.authority_code)[:1] for t in self.desk(a.code)]
        groups = {"desk": self.desk(), "upward": self.desk() + superior, "listing": _listing_desk(self.case)}
        return [tag for name in names for tag in groups[name]]

    def template_vars(self, **more: Any) -> dict[str, Any]:
        return super().template_vars(case=self.case, **more)

    def record(
        self, kind: str, given: Given, *, deadline: Deadline | None = None, fields: list[tuple[str, Any]] = ()
    ) -> Report:
        """A case document (templates/documents/case.md.j2) filed under the step."""
        return self.document(
            kind,
            step=given.step.name,
            by=given.by,
            now=given.now,
            text=given.text,
            deadline=deadline,
            source=machine.LEAD_SOURCES.get(self.case.source, self.case.source),
            fields=[(k, v) for k, v in fields if v not in (None, "")],
        )


def _load(session: Session, number: str) -> Case:
    return engine.load(session, number, getter=get_case, what="case or complaint")


# --- what steps do beyond their declaration, in lifecycle order ------------------------


def _filed(ctx: CaseContext, given: Given) -> None:
    case = ctx.case
    if given.data["decision"] == "file":
        case.filed_at, case.handler = given.now, given.form.handler or given.by
        ctx.record("filing", given, deadline=given.met, fields=[("承办人 Handler", case.handler)])
    else:
        ctx.record("not-filed", given, deadline=given.met)
        finish(ctx, "not_filed", now=given.now, by=given.by)
    if case.real_name:
        ctx.tell(
            given,
            "filing:reporter",
            ("请告知实名举报人是否立案", "Tell the real-name reporter whether a case was filed"),
            next_deadline=ctx.add("reporter-notice", given.now),
        )
    ctx.session.add(case)


def _investigated(ctx: CaseContext, given: Given) -> None:
    if given.data["finding"] == "transfer":
        _pause_clock(
            ctx, by=given.by, reason="移送司法机关审查 / criminal transfer under way", now=given.now, strict=False
        )


def _transfer_decided(ctx: CaseContext, given: Given) -> None:
    ctx.record(
        "transfer",
        given,
        deadline=given.met,
        fields=[("负责人决定 Head's decision", "批准移送 approved" if given.data["approve"] else "不予移送 refused")],
    )
    if not given.data["approve"]:
        _resume_clock(ctx, by=given.by, now=given.now, strict=False)


def _transfer_sent(ctx: CaseContext, given: Given) -> None:
    ctx.case.facts = {**ctx.case.facts, "police": given.data["police"]}
    ctx.session.add(ctx.case)


def _police_answered(ctx: CaseContext, given: Given) -> None:
    """The police opened a case (hand over, then close), or refused: after a refused
    reconsideration, or none asked, the administrative case goes on."""
    if given.data["accepted"]:
        ctx.add("handover", given.now)
        ctx.case.facts = {**ctx.case.facts, "transferred": True}
        ctx.session.add(ctx.case)
    elif given.next is not None and given.next.name == "legal-review":
        _resume_clock(ctx, by=given.by, now=given.now, strict=False)


def _reconsideration(ctx: CaseContext, given: Given) -> None:
    if not given.data["approve"]:
        _resume_clock(ctx, by=given.by, now=given.now, strict=False)


def _notice_served(ctx: CaseContext, given: Given) -> None:
    ctx.case.fine = given.form.fine
    ctx.session.add(ctx.case)
    ctx.record(
        "pre-penalty",
        given,
        deadline=given.opened[0] if given.opened else ctx.get("party-statement"),
        fields=[("拟罚款 Proposed fine", f"{given.form.fine} 元"), ("送达日期 Served on", given.form.served_on)],
    )


def _party_answered(ctx: CaseContext, given: Given) -> None:
    if given.data["response"] == "hearing":
        ctx.tell(
            given,
            "party-response",
            ("当事人要求听证", "Hearing requested"),
            next_deadline=_hearing_notice(ctx, given.form.hearing_at, given.now),
        )


def _hearing_notice_served(ctx: CaseContext, given: Given) -> None:
    served = not_future(given.form.served_on, "served_on", given.now)
    if given.met is not None and served > given.met.due_at:
        raise InvalidInput(
            f"served_on: {given.form.served_on} is too late for the hearing; the notice had to "
            f"reach the party by {local_time(given.met.due_at)} — set a later hearing date"
        )


def _decided(ctx: CaseContext, given: Given) -> None:
    case, form = ctx.case, given.form
    case.facts = {**case.facts, "decided": form.outcome}
    case.rectification = form.rectification
    if form.outcome == "penalty":
        if form.fine is None and "fine" in form.measures:
            raise InvalidInput("fine: a penalty decision with a fine needs the fine")
        case.fine = form.fine
    if form.party_id and form.party_kind != "person":
        case.party_uscc = form.party_id
    ctx.session.add(case)
    publication = _open_publication(ctx, given) if form.outcome == "penalty" else None
    ctx.record(
        "decision",
        given,
        deadline=given.met,
        fields=[
            ("决定 Outcome", "处罚 penalty" if form.outcome == "penalty" else "不予处罚 no penalty"),
            ("处罚种类 Penalties", "、".join(credit.MEASURES[m] for m in form.measures) or None),
            ("罚款 Fine", f"{form.fine} 元" if form.fine else None),
            ("责令改正 Rectification", "是 yes" if form.rectification else None),
            ("下一时限 Next", given.opened[0].rule if given.opened else None),
            # Order 45 Art. 8: the party is told in writing, with the decision, that it is published.
            (
                "公示 Publication",
                f"本决定将通过国家企业信用信息公示系统向社会公示（{publication.number}）" if publication else None,
            ),  # fmt: skip
        ],
    )


def _open_publication(ctx: CaseContext, given: Given) -> Case | None:
    """Order 45: a penalty decided under the general procedure is published (a warning
    alone is not, Art. 2): its own subject, due 20 working days from the decision
    (Art. 9), or, for a party registered in another province, pushed there within 10
    (Art. 10). A person's identity number is kept only as its digest."""
    from kernel.identity import person_digest
    from storage.credit import Publication

    case, form, session = ctx.case, given.form, ctx.session
    if not credit.published_at_all(form.measures) or case.facts.get("publication"):
        return None
    settings = get_settings()
    local = pendulum.instance(given.now).in_timezone(settings.timezone)
    number = machine.case_number(local.year, next_number(session, name=f"PUB-{local.year}"), "publication")
    registered = form.registered_with.strip() or case.authority_code
    push = credit.province_of(registered) != credit.province_of(case.authority_code)
    person = form.party_kind == "person"
    subject = Case(
        number=number,
        kind="publication",
        title=f"公示：{case.title}"[:200],
        party=case.party,
        party_uscc=None if person else (form.party_id or None),
        source="credit",
        detail="",
        authority_code=case.authority_code,
        linked_to=case.number,
        received_at=given.now,
        stage="publication",
        rules_hash=ctx.rules.content_hash,
        facts={"case": case.number, "push_to": registered if push else None},
    )
    session.add(subject)
    session.add(
        Publication(
            number=number,
            case=case.number,
            authority_code=case.authority_code,
            party=case.party,
            party_kind=form.party_kind,
            uscc="" if person else form.party_id,
            person_digest=person_digest(form.party_id) if person and form.party_id else "",
            registered_with=registered,
            measures=list(form.measures),
            restriction_months=form.restriction_months,
            fine=form.fine,
            matter=case.title,
            decided_on=local.date(),
            sector=form.sector,
            heavier_fine=form.heavier_fine,
        )
    )
    session.flush()
    pctx = CaseContext(session, subject, ctx.rules)
    deadline = pctx.add("publication", given.now, rule="publication.push" if push else None)
    heading = ("处罚信息待推送登记地", "Penalty to push to the registering province") if push else (
        "行政处罚信息待公示", "Penalty to publish")  # fmt: skip
    pctx.notify(
        "opened", heading, by=given.by, now=given.now, next_deadline=deadline, text=f"{case.number} {case.title}"
    )
    audit.record(session, at=given.now, actor=given.by, action="publication.opened", subject=number, case=case.number,
                 push_to=registered if push else None)  # fmt: skip
    case.facts = {**case.facts, "publication": number}
    session.add(case)
    return subject


def _paid(ctx: CaseContext, given: Given) -> None:
    case, form, met = ctx.case, given.form, given.met
    not_future(form.paid_on, "paid_on", given.now)
    due_day = pendulum.instance(met.due_at).in_timezone(get_settings().timezone).date() if met else form.paid_on
    surcharge = late_payment_surcharge(Decimal(case.fine), payment_due=due_day, paid_on=form.paid_on)
    owed = Decimal(case.fine) + surcharge
    if form.amount < owed:
        raise InvalidInput(
            f"amount: {form.amount} is less than the {owed} owed (fine {case.fine} + surcharge "
            f"{surcharge} for payment after {due_day})"
        )
    case.surcharge = surcharge
    case.facts = {**case.facts, "paid_on": form.paid_on.isoformat(), "paid": str(form.amount)}
    ctx.session.add(case)


def _closed(ctx: CaseContext, given: Given) -> None:
    case = ctx.case
    outcome = (
        "transferred"
        if case.facts.get("transferred")
        else "penalised"
        if case.fine is not None and case.facts.get("decided") == "penalty"
        else "no_penalty"
    )
    finish(ctx, outcome, now=given.now, by=given.by)
    ctx.close("handover", given.now)
    ctx.record(
        "closure",
        given,
        deadline=given.met,
        fields=[
            ("结案类型 Outcome", OUTCOMES[outcome]),
            ("罚款 Fine", f"{case.fine} 元" if outcome == "penalised" else None),
            ("加处罚款 Surcharge", f"{case.surcharge} 元" if case.surcharge else None),
            ("回头看 Look-back", local_time(case.lookback_at) if case.lookback_at else None),
        ],
    )


def _accepted(ctx: CaseContext, given: Given) -> None:
    """The complainant is told either way: the desk's notice names them first."""
    case, accept = ctx.case, given.data["accept"]
    whom = f"{case.reporter or ''}（{case.reporter_contact or '无联系方式'}）"
    tell = f"请告知投诉人 {whom}：{'已受理' if accept else '不予受理'}。"
    if not accept:
        finish(ctx, "rejected", now=given.now, by=given.by)
    ctx.tell(
        given,
        "acceptance",
        ("投诉已受理" if accept else "投诉不予受理", "Complaint accepted" if accept else "Complaint not accepted"),
        text=f"{tell}\n\n{given.text}".strip(),
        next_deadline=given.opened[0] if given.opened else None,
    )


def _mediated(ctx: CaseContext, given: Given) -> None:
    case = ctx.case
    outcome = given.data["outcome"]
    finish(
        ctx, {"agreed": "mediated", "failed": "mediation_failed", "lead": "lead"}[outcome], now=given.now, by=given.by
    )
    if outcome != "lead":
        return
    lead = linked_lead(
        ctx,
        given,
        source="complaint",
        detail=case.detail,
        first_rule="complaint.lead_check",
        reporter=case.reporter,
        reporter_contact=case.reporter_contact,
    )
    case.facts = {**case.facts, "lead": lead.number}
    ctx.session.add(case)
    ctx.tell(given, "mediation", (f"调解中发现违法线索，转为 {lead.number}", f"Violation lead found: {lead.number}"))


def _looked_back(ctx: CaseContext, given: Given):
    """A failed review reopens the matter as a linked case and escalates."""
    case = ctx.case
    rectified = given.data["rectified"]
    ctx.record(
        "lookback", given, deadline=given.met, fields=[("整改到位 Rectified", "是 yes" if rectified else "否 no")]
    )
    case.facts = {**case.facts, "lookback": "passed" if rectified else "failed"}
    ctx.session.add(case)
    if rectified:
        return None
    reopened = linked_lead(ctx, given, source="lookback", detail=f"{case.number} 回头看发现整改不到位。")
    case.facts = {**case.facts, "reopened_as": reopened.number}
    ctx.tell(
        given,
        "lookback",
        (f"回头看：整改不到位，重新立案核查 {reopened.number}", f"Look-back failed: reopened as {reopened.number}"),
        tags=ctx.recipients(("upward",)),
    )
    return engine_deadlines.escalate(ctx.session, case, given.met, why="lookback.failed", now=given.now)


def linked_lead(
    ctx: CaseContext, given: Given, *, source: str, detail: str, first_rule: str | None = None, **more: Any
) -> Case:
    """A new lead about the same party, linked to this case, from what an answer found."""
    case = ctx.case
    request = LeadRequest(
        title=case.title,
        party=case.party,
        source=source,
        authority=case.authority_code,
        detail=f"{detail}\n\n{given.text}".strip(),
        linked_to=case.number,
        **more,
    )
    return _receive(ctx.session, request, now=given.now, first_rule=first_rule)


class Cases:
    """Cases, complaints and their look-back reviews, for the engine."""

    handlers = {
        "filing": _filed,
        "investigation": _investigated,
        "transfer-decision": _transfer_decided,
        "transfer-sent": _transfer_sent,
        "police-decision": _police_answered,
        "reconsideration": _reconsideration,
        "reconsideration-answer": _police_answered,
        "pre-penalty": _notice_served,
        "party-response": _party_answered,
        "hearing-notice": _hearing_notice_served,
        "decision": _decided,
        "payment": _paid,
        "closure": _closed,
        "acceptance": _accepted,
        "mediation": _mediated,
        "lookback": _looked_back,
    }

    kinds: tuple[str, ...] = ("case", "complaint")  # the subjects this kind's handlers are for

    def load(self, session: Session, number: str) -> Case:
        subject = _load(session, number)
        if subject.kind not in self.kinds:  # its steps would be recorded without their handlers
            raise InvalidInput(
                f"{subject.number} is a {subject.kind}, not a {' or '.join(self.kinds)}: use its own commands"
            )
        return subject

    def context(self, session: Session, subject: Case) -> CaseContext:
        return CaseContext(session, subject)

    def lifecycle(self, subject: Case, step: str | None = None) -> Lifecycle:
        return machine.lifecycle_of(subject.kind, step)


CASES = Cases()


def open_step(number: str, name: str, *, now: dt.datetime) -> StepState:
    return engine.open_step(CASES, number, name, now=now)


def answer(
    number: str, *, answer: dict[str, Any], source: str, now: dt.datetime, step: str, from_flow: bool = False
) -> Answered:
    return engine.answer(CASES, number, step=step, answer=answer, source=source, now=now, from_flow=from_flow)


def _hearing_notice(ctx: CaseContext, hearing_at: dt.datetime | None, now: dt.datetime) -> Deadline:
    settings = get_settings()
    if hearing_at is None:
        raise InvalidInput("hearing_at: a hearing request needs the hearing's date and time")
    if hearing_at.tzinfo is None:
        raise InvalidInput("hearing_at: must include a time zone (e.g. +08:00)")
    limit = ctx.rules.rules.limit("case.hearing_notice")
    latest = latest_before(
        hearing_at,
        Period.parse(limit.period),
        tz=settings.timezone,
        calendar=load_calendar(settings.calendar_override),
        label=limit.name,
    )
    if latest.at < now:
        raise InvalidInput(
            f"hearing_at: {local_time(hearing_at)} is too soon; the notice must reach the party "
            f"{limit.period} before it, by {local_time(latest.at)}, which has passed"
        )
    ctx.case.facts = {**ctx.case.facts, "hearing_at": hearing_at.isoformat()}
    return ctx.add("hearing-notice", now, due=latest)


CASE_KEEPS = ("closure", "reporter-notice", "handover")  # owed after the decision's steps end


def finish(ctx: CaseContext, outcome: str, *, now: dt.datetime, by: str, keep: tuple[str, ...] = CASE_KEEPS) -> None:
    """The subject ends: every deadline still open is cancelled but those in `keep` (by
    name, or by stem for numbered ones: `publication` keeps `publication-2`; a listing's
    final result is met), and a look-back review is due after a penalty or an order."""
    case = ctx.case
    case.status, case.outcome, case.closed_at, case.stage = "closed", outcome, now, "closed"
    for row in deadline_rows.deadlines_for(ctx.session, subject=case.number):
        kept = row.name in keep or row.name.rsplit("-", 1)[0] in keep
        if row.status in ("open", "paused") and not kept:
            ctx.close(row.name, now, "met" if row.name == "supervision-final" else "cancelled")
    if case.kind == "case" and (outcome == "penalised" or case.rectification):
        # The period from the rule file (default 90 d), at 09:00 on the day it ends.
        day = pendulum.instance(ctx.due("lookback", now, rule="lookback.schedule").at).in_timezone(
            get_settings().timezone
        )
        case.lookback_at = day.set(hour=9, minute=0, second=0).in_timezone("UTC")
    audit.record(
        ctx.session,
        at=now,
        actor=by,
        action=f"{case.kind}.closed",
        subject=case.number,
        outcome=outcome,
        lookback_at=case.lookback_at.isoformat() if case.lookback_at else None,
    )
    ctx.session.add(case)


def _listing_desk(case: Case) -> list[str]:
    return [f"{case.listed_by}.duty", f"{case.listed_by}.head"] if case.listed_by else []


# --- the case clock, extensions, measures ---------------------------------------------


def _pause_clock(ctx: CaseContext, *, by: str, reason: str, now: dt.datetime, strict: bool = True) -> list[Deadline]:
    if ctx.case.clock_paused_at is not None:
        if not strict:
            return []
        raise StepConflict(
            f"the clock of {ctx.case.number} is already paused since {local_time(ctx.case.clock_paused_at)}"
        )
    paused = [
        engine_deadlines.pause_row(ctx.session, row, by=by, reason=reason, now=now)
        for name in machine.CLOCK
        if (row := ctx.get(name)) is not None and row.status == "open"
    ]
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
    resumed = [
        engine_deadlines.resume_row(ctx.session, row, by=by, now=now, calendar=calendar, tz=settings.timezone)
        for name in machine.CLOCK
        if (row := ctx.get(name)) is not None and row.status == "paused"
    ]
    ctx.case.clock_paused_at = None
    ctx.session.add(ctx.case)
    return resumed


def pause_clock(number: str, *, by: str, reason: str, now: dt.datetime) -> list[Deadline]:
    """Testing, inspection, appraisal...: those days do not count (Art. 18, 64)."""
    with session_scope() as session:
        ctx = _open_case(session, number)
        ctx.require(by, "pause the case clock", now=now, roles=CLOCK_KEEPERS)
        paused = _pause_clock(ctx, by=by, reason=reason, now=now)
        if not paused:
            raise StepConflict(f"{number} has no running case clock to pause")
        ctx.notify(
            f"clock-paused:{now.isoformat()}", ("办案期限中止", "Case clock paused"), by=by, now=now, text=reason
        )
        return paused


def resume_clock(number: str, *, by: str, now: dt.datetime) -> list[Deadline]:
    with session_scope() as session:
        ctx = _open_case(session, number)
        ctx.require(by, "resume the case clock", now=now, roles=CLOCK_KEEPERS)
        resumed = _resume_clock(ctx, by=by, now=now)
        ctx.notify(
            f"clock-resumed:{now.isoformat()}",
            ("办案期限恢复计算", "Case clock resumed"),
            by=by,
            now=now,
            next_deadline=resumed[-1] if resumed else None,
        )
        return resumed


def extend(
    number: str, name: str, *, by: str, reason: str, now: dt.datetime, collective_period: str | None = None
) -> Deadline:
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
                more = (
                    "; a further extension needs a collective decision (--collective --period 30d)"
                    if name == "decision"
                    else ""
                )
                raise StepConflict(f"deadline {name} of {number} was already extended{more}")
            period, how = Period.parse(limit.extension), f"负责人批准延长 / approved by the {limit.approver or 'head'}"
        ctx.require(by, f"extend deadline {name}", now=now, roles=("head",), above=True)
        due = due_after(
            row.due_at,
            period,
            tz=settings.timezone,
            calendar=calendar,
            event=ctx.rules.rules.limit(key).name if key else name,
        )
        extended = engine_deadlines.extend_row(
            session, row, due_at=due.at, by=by, reason=reason, rule=f"{how}: {due.rule}", now=now
        )
        ctx.notify(
            f"extended:{name}:{len(extended.extensions)}",
            ("期限延长", f"Deadline {name} extended"),
            by=by,
            now=now,
            text=f"{how}\n\n{reason}",
            next_deadline=extended,
        )
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
            ctx.notify(f"measure:{kind}:end", (f"{zh}处理完毕", f"{en} ended"), by=by, now=now, text=text)
        else:
            if row is not None:
                raise StepConflict(f"{en} of {number} was already recorded at {local_time(row.created_at)}")
            row = ctx.add(kind, now)
            ctx.notify(
                f"measure:{kind}", (f"采取{zh}措施", f"{en} taken"), by=by, now=now, text=text, next_deadline=row
            )
        audit.record(
            session,
            at=now,
            actor=by,
            action=f"case.measure.{'ended' if end else 'taken'}",
            subject=number,
            measure=kind,
        )
        return row


def _open_case(session: Session, number: str) -> CaseContext:
    case = _load(session, number)
    if case.status != "open":
        raise StepConflict(f"{case.number} is closed ({OUTCOMES.get(case.outcome, case.outcome)})")
    return CaseContext(session, case)


def reporter_notified(number: str, *, by: str, now: dt.datetime) -> Deadline:
    with session_scope() as session:
        case = _load(session, number)
        ctx = CaseContext(session, case)
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
        return ask_assistance(_open_case(session, number), to, by=by, text=text, now=now)


def ask_assistance(ctx: CaseContext, to: str, *, by: str, text: str, now: dt.datetime) -> Deadline:
    """The next `assistance-<n>` deadline, owed by `to` and told at its desk."""
    session, number = ctx.session, ctx.number
    if session.get(Authority, to) is None:
        raise UnknownAuthority(f"unknown authority {to!r}")
    if to == ctx.case.authority_code:
        raise InvalidInput("assistance is asked of another authority")
    n = 1 + sum(1 for d in deadline_rows.deadlines_for(session, subject=number) if d.name.startswith("assistance-"))
    row = ctx.add(f"assistance-{n}", now, authority=to)
    ctx.notify(
        f"assistance-{n}",
        (f"协查请求（{ctx.authority.name}）", "Assistance requested"),
        by=by,
        now=now,
        text=text,
        next_deadline=row,
        tags=ctx.desk(to),
    )
    audit.record(session, at=now, actor=by, action="case.assistance.requested", subject=number, to=to, request=n)
    return row


def answer_assistance(number: str, n: int, *, by: str, text: str, now: dt.datetime) -> Deadline:
    with session_scope() as session:
        ctx = CaseContext(session, _load(session, number))
        row = ctx.get(f"assistance-{n}")
        if row is None:
            raise NotFound(f"{number} has no assistance request {n}")
        if row.status != "open":
            raise StepConflict(f"assistance request {n} of {number} was already answered")
        ctx.close(row.name, now)
        ctx.notify(f"assistance-{n}:answered", (f"协查回复 {n}", "Assistance answered"), by=by, now=now, text=text)
        audit.record(
            session,
            at=now,
            actor=by,
            action="case.assistance.answered",
            subject=number,
            request=n,
            by_authority=row.authority,
        )
        return row


def supervise(
    number: str, *, by_authority: str, report_every: str, finish_by: dt.datetime, by: str, now: dt.datetime
) -> Case:
    """A supervising authority lists the case: progress reports owed at the interval,
    the result by the date, each miss escalated to the listing authority."""
    every = Period.parse(report_every)
    with session_scope() as session:
        ctx = _open_case(session, number)
        case = ctx.case
        _may_list(ctx, by_authority, finish_by, now)
        case.listed_by, case.report_every, case.finish_by = by_authority, str(every), finish_by
        case.supervision_reports = 0
        session.add(case)
        progress = _progress_report_due(ctx, 1, now)
        when = local_time(finish_by)
        finish = Due(at=finish_by, rule=f"督办通知：{when} 前办结 / finish by {when}")
        ctx.add("supervision-final", now, ladder_from=by_authority, due=finish)
        ctx.notify(
            "listed",
            (f"挂牌督办（{by_authority}）", "Listed for supervision"),
            by=by,
            now=now,
            text=f"每 {every} 报告进展，{when} 前办结。",
            next_deadline=progress,
            tags=ctx.desk() + _listing_desk(case),
        )
        audit.record(
            session,
            at=now,
            actor=by,
            action="case.listed",
            subject=number,
            by_authority=by_authority,
            report_every=str(every),
            finish_by=finish_by.isoformat(),
        )
        return case


def _may_list(ctx: CaseContext, by_authority: str, finish_by: dt.datetime, now: dt.datetime) -> None:
    """Only a superior lists a case, once, with a finish date still ahead."""
    case = ctx.case
    if ctx.session.get(Authority, by_authority) is None:
        raise UnknownAuthority(f"unknown authority {by_authority!r}")
    if by_authority not in {a.code for a in ctx.tree.chain_up(case.authority_code)}:
        raise InvalidInput(f"{by_authority} does not supervise {case.authority_code}: only a superior lists a case")
    if case.listed_by:
        raise StepConflict(f"{case.number} is already listed by {case.listed_by}")
    if finish_by <= now:
        raise InvalidInput("finish_by: is in the past")


def _progress_report_due(ctx: CaseContext, n: int, now: dt.datetime) -> Deadline:
    """The listed case's n-th progress report, one interval from now; a miss climbs
    from the listing authority."""
    settings = get_settings()
    calendar = load_calendar(settings.calendar_override)
    due = due_after(
        now, Period.parse(ctx.case.report_every), tz=settings.timezone, calendar=calendar, event=f"督办进展报告 {n}"
    )
    return ctx.add(f"supervision-progress-{n}", now, ladder_from=ctx.case.listed_by, due=due)


def supervision_report(number: str, *, by: str, text: str, now: dt.datetime) -> Deadline:
    """The handling unit reports progress on a listed case; the next report is due
    one interval later."""
    with session_scope() as session:
        ctx = _open_case(session, number)
        case = ctx.case
        if not case.listed_by:
            raise StepConflict(f"{number} is not listed for supervision")
        n = case.supervision_reports + 1
        ctx.close(f"supervision-progress-{n}", now)
        case.supervision_reports = n
        session.add(case)
        nxt = _progress_report_due(ctx, n + 1, now)
        ctx.notify(
            f"supervision-report-{n}",
            (f"督办进展报告 {n}", f"Progress report {n} on a listed case"),
            by=by,
            now=now,
            text=text,
            next_deadline=nxt,
            tags=ctx.desk() + _listing_desk(case),
        )
        audit.record(session, at=now, actor=by, action="case.supervision.reported", subject=number, report=n)
        return nxt


def lift_listing(number: str, *, by: str, reason: str, now: dt.datetime) -> Case:
    with session_scope() as session:
        ctx = CaseContext(session, _load(session, number))
        case = ctx.case
        if not case.listed_by:
            raise StepConflict(f"{number} is not listed for supervision")
        listed_by = case.listed_by
        for row in deadline_rows.deadlines_for(session, subject=number):
            if row.name.startswith("supervision-") and row.status in ("open", "paused"):
                ctx.close(row.name, now, "cancelled")
        ctx.notify(
            f"unlisted:{now.isoformat()}",
            ("撤销挂牌督办", "Listing lifted"),
            by=by,
            now=now,
            text=reason,
            tags=ctx.desk() + _listing_desk(case),
        )
        case.facts = {**case.facts, "listing_lifted": {"by": by, "at": now.isoformat(), "listed_by": listed_by}}
        case.listed_by = None
        session.add(case)
        audit.record(
            session, at=now, actor=by, action="case.unlisted", subject=number, listed_by=listed_by, reason=reason
        )
        return case


# --- look-back reviews ---------------------------------------------------------------


def start_lookback(number: str, *, now: dt.datetime) -> Case:
    """The scheduled look-back run has started: the inspector owes the review within
    15 WD. Once per case."""
    with session_scope() as session:
        case = _load(session, number)
        ctx = CaseContext(session, case)
        if ctx.get("lookback") is None:
            row = ctx.add("lookback", now)
            ctx.notify(
                "lookback", ("回头看：请核查整改情况", "Look-back review due"), by="regflow", now=now, next_deadline=row
            )
            audit.record(session, at=now, actor="regflow", action="case.lookback.started", subject=number)
        return case


def lookback_scheduled(number: str, flow_run_id: uuid.UUID, *, now: dt.datetime) -> None:
    with session_scope() as session:
        case = _load(session, number)
        if case.lookback_run_id is None:
            case.lookback_run_id = flow_run_id
            session.add(case)
            audit.record(
                session,
                at=now,
                actor="regflow",
                action="case.lookback.scheduled",
                subject=number,
                at_time=case.lookback_at.isoformat(),
                flow_run_id=str(flow_run_id),
            )
