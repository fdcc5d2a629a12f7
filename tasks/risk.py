"""Risk monitoring on the lifecycle engine: signals in (one, a file, a drop folder),
grouped into risk items (`enforcement_case` rows of kind `risk`, RSK-…, beside their
`risk_item` rows), graded by data/risk/thresholds.yaml, assessed and decided; and
defect recalls (kind `recall`, RCL-…) under SAMR Order 19.

What the engine does not say itself is here: grouping and grading, the 一级 item told
to the duty desk at once, snoozing a known flood, the head's decision opening what it
names (a consumer warning published, a spot-check campaign, a recall, an incident)
linked both ways, the item kept open until that work is done, the producer's
obligations as deadlines that open a lead when missed, and the recall rate.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pendulum
from sqlmodel import Session

from kernel.errors import InvalidInput, NotFound, StepConflict, UnknownAuthority
from kernel.settings import get_settings
from rules import cases as machine
from rules import risk as rules
from rules.calendar import load_calendar
from rules.cases import LeadRequest, at_noon
from rules.durations import Due, by_end_of
from rules.files import current, read_text
from rules.incidents import Level, validate_trigger
from rules.lifecycle import Lifecycle
from rules.statutes import LoadedRules, due_by_rule, load_rules
from storage import audit
from storage import deadlines as deadline_rows
from storage.authorities import Authority
from storage.campaigns import get_campaign
from storage.cases import Case, get_case
from storage.db import session_scope
from storage.deadlines import Deadline
from storage.incidents import Incident, get_incident, next_number
from storage.risk import (
    Recall,
    RiskItem,
    RiskSignal,
    item_by_number,
    open_items,
    recall_by_number,
    signals_by_key,
    signals_of,
)
from storage.risk import items as item_rows
from tasks import lifecycle as engine
from tasks.access import and_superiors, require
from tasks.cases import CaseContext, Cases, _receive, finish
from tasks.lifecycle import Answered, Given
from tasks.render import local_time, public_page, write_public

OWN_LIMIT = "本局设定（无法定时限）"  # what a configured, not statutory, limit says of itself


def thresholds() -> rules.Thresholds:
    return current(rules.load_thresholds, get_settings().risk_thresholds)


class RiskContext(CaseContext):
    """A risk item's context: its limits come from the grade's rule in the thresholds file."""

    def __init__(
        self, session: Session, case: Case, rules_: LoadedRules | None = None, row: RiskItem | None = None
    ) -> None:
        super().__init__(session, case, rules_)
        self.row = row or item_by_number(session, case.number)

    def due(self, name: str, start: dt.datetime, rule: str | None = None) -> Due:
        if name in rules.DEADLINES and rule is None:
            grade = thresholds().rule(self.row.grade)
            period = grade.assess_within if name == "risk-assessment" else grade.decide_within
            source = grade.source or OWN_LIMIT
            return self.due_in(start, period, f"{machine.label(name)}（{grade.grade}，{source}）")
        return super().due(name, start, rule)

    def template_vars(self, **more: Any) -> dict[str, Any]:
        return super().template_vars(item=self.row, **more)


class RecallContext(CaseContext):
    """A recall's context: what the producer owes is chased by the handler and, missed,
    escalates and opens a lead (`on_miss` in the deadline's policy)."""

    def __init__(self, session: Session, case: Case, rules_: LoadedRules | None = None) -> None:
        super().__init__(session, case, rules_)
        self.row = recall_by_number(session, case.number)

    def add(self, name: str, start: dt.datetime, **kw: Any) -> Deadline:
        row = super().add(name, start, **kw)
        if name.rsplit("-", 1)[0] in rules.OWED_BY_PRODUCER or name in rules.OWED_BY_PRODUCER:
            row.policy = {**row.policy, "on_miss": "lead"}
            self.session.add(row)
        return row

    def template_vars(self, **more: Any) -> dict[str, Any]:
        return super().template_vars(recall=self.row, **more)


class Risks(Cases):
    kinds = ("risk",)

    def context(self, session: Session, subject: Case) -> RiskContext:
        return RiskContext(session, subject)

    def lifecycle(self, subject: Case, step: str | None = None) -> Lifecycle:
        return rules.RISK


class Recalls(Cases):
    kinds = ("recall",)

    def context(self, session: Session, subject: Case) -> RecallContext:
        return RecallContext(session, subject)

    def lifecycle(self, subject: Case, step: str | None = None) -> Lifecycle:
        return subject.lifecycle


# --- signals in ------------------------------------------------------------------------------


@dataclass
class Ingested:
    signals: int = 0  # new signals recorded
    repeats: int = 0  # deliveries of a signal already on record (counted, nothing opened)
    items: list[str] = field(default_factory=list)  # the items these signals count in
    opened: list[str] = field(default_factory=list)  # items opened by them
    graver: list[str] = field(default_factory=list)  # items whose grade rose
    urgent: list[str] = field(default_factory=list)  # 一级 items told to the duty desk now
    late_reports: list[str] = field(default_factory=list)  # leads opened for a late enterprise report

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ingest(signals: list[rules.Signal], *, by: str, now: dt.datetime, deliver: bool = True) -> Ingested:
    """Record the signals and group them, in one transaction: all or none."""
    from tasks.notify import deliver_now

    limits = thresholds()
    result = Ingested()
    settings = get_settings()
    rule_sets: dict[str, LoadedRules] = {}  # each region's rule set, read once per ingest

    def rule_set(region: str) -> LoadedRules:
        if region not in rule_sets:
            rule_sets[region] = load_rules(settings.rules_file, authority=region)
        return rule_sets[region]

    with session_scope() as session:
        regions = {s.region for s in signals}
        unknown = sorted(r for r in regions if session.get(Authority, r) is None)
        if unknown:
            raise UnknownAuthority(
                f"region: unknown authority {unknown[0]!r} (list them with `regflow authorities list`)"
            )
        keyed = [(rules.signal_key(s), s) for s in signals]
        known = signals_by_key(session, [k for k, _ in keyed])
        prints = {k: rules.fingerprint(s, limits.grouping_for(s.category)) for k, s in keyed}
        candidates: dict[str, list[RiskItem]] = {}
        for item in open_items(session, sorted(set(prints.values()))):
            candidates.setdefault(item.fingerprint, []).append(item)
        harms: dict[str, set[str]] = {}
        touched: dict[str, RiskItem] = {}
        for key, signal in sorted(keyed, key=lambda ks: ks[1].at):
            if key in known:  # the same report delivered again: it counts, it opens nothing
                row = known[key]
                row.repeats += 1
                item = touched.get(row.item) or item_by_number(session, row.item)
                item.signals += signal.count
                touched[item.number] = item
                session.add(row)
                result.repeats += 1
                continue
            item = _item_for(
                session, candidates, prints[key], signal, limits, rule_set(signal.region), now=now, result=result
            )
            touched[item.number] = item
            row = RiskSignal(key=key, item=item.number, received_at=now, **_signal_fields(signal))
            session.add(row)
            known[key] = row
            result.signals += 1
            item.signals += signal.count
            item.first_at, item.last_at = min(item.first_at, signal.at), max(item.last_at, signal.at)
            harms.setdefault(item.number, set()).add(signal.harm)
            if signal.source == "enterprise_report":
                _check_report(session, signal, item, rule_set(signal.region), now=now, result=result)
        for number, item in touched.items():
            _regrade(
                session,
                item,
                limits,
                harms.get(number, set()),
                rule_set(item.region),
                now=now,
                result=result,
            )
            session.add(item)
        result.items = sorted(touched)
        audit.record(
            session,
            at=now,
            actor=by,
            action="signals.ingested",
            subject="risk",
            signals=result.signals,
            repeats=result.repeats,
            items=len(result.items),
            opened=len(result.opened),
        )
    if deliver:
        for number in result.urgent:
            deliver_now(number, wait=get_settings().trigger_delivery_seconds)
    return result


def _signal_fields(signal: rules.Signal) -> dict[str, Any]:
    data = signal.model_dump()
    data.pop("learned_on", None)
    return data


def _item_for(session, candidates, fingerprint, signal, limits, rule_set, *, now, result) -> RiskItem:
    """The open item this signal joins (its signals within the category's window), or a new one."""
    span = rules.span_of(limits.grouping_for(signal.category).window)
    for item in candidates.get(fingerprint, []):
        if item.first_at - span <= signal.at <= item.last_at + span:
            return item
    item = _open_item(session, fingerprint, signal, rule_set, now=now)
    candidates.setdefault(fingerprint, []).append(item)
    result.opened.append(item.number)
    return item


def _open_item(
    session: Session, fingerprint: str, signal: rules.Signal, rule_set: LoadedRules, *, now: dt.datetime
) -> RiskItem:
    year = pendulum.instance(now).in_timezone(get_settings().timezone).year
    number = machine.case_number(year, next_number(session, name=f"RSK-{year}"), "risk")
    title = " ".join(p for p in (signal.product, signal.model, signal.batch) if p)
    case = Case(
        number=number,
        kind="risk",
        title=f"{signal.category}：{title}"[:200],
        party=signal.enterprise or signal.uscc or "（未知企业）",
        source="risk_alert",
        detail=signal.text,
        authority_code=signal.region,
        stage=rules.RISK.first,
        received_at=now,
        rules_hash=rule_set.content_hash,
        facts={"fingerprint": fingerprint},
    )
    item = RiskItem(
        number=number,
        fingerprint=fingerprint,
        category=signal.category,
        product=signal.product,
        model=signal.model,
        batch=signal.batch,
        uscc=signal.uscc,
        enterprise=signal.enterprise,
        region=signal.region,
        grade=rules.GRADES[-1],
        first_at=signal.at,
        last_at=signal.at,
    )
    session.add_all([case, item])
    session.flush()
    audit.record(
        session,
        at=now,
        actor="regflow",
        action="risk.opened",
        subject=number,
        fingerprint=fingerprint,
        category=signal.category,
    )
    return item


def _regrade(session, item: RiskItem, limits, new_harms, rule_set, *, now, result: Ingested) -> None:
    """The grade from every signal within the widest window; it only rises by itself.
    A new item's assessment deadline opens here; a graver grade brings it forward; a
    new harm is told unless snoozed. Nothing else is written for an item a signal joined."""
    since = item.last_at - limits.widest_window
    on_record = [(s.at, s.count) for s in signals_of(session, item.number, since=since)]
    harms = {item.worst_harm} | new_harms
    graded = rules.grade(limits, harms, on_record)
    item.worst_harm = rules.worst(harms)
    rose = rules.GRADES.index(graded) < rules.GRADES.index(item.grade)
    if rose:
        item.grade = graded
        result.graver.append(item.number)
        audit.record(session, at=now, actor="regflow", action="risk.graded", subject=item.number, grade=graded)
    opened = item.number in result.opened
    harmed = bool(new_harms - {"none"}) and not _snoozed(item, now)
    if not (opened or rose or harmed):
        return
    if item.grade == rules.GRADES[0] and item.number not in result.urgent:
        result.urgent.append(item.number)  # what this ingest tells of a 一级 item goes out now
    ctx = RiskContext(session, get_case(session, number=item.number), rule_set, row=item)
    deadline = ctx.get("risk-assessment")
    if opened:
        deadline = ctx.add("risk-assessment", now)
        ctx.notify(
            "opened",
            (f"新风险项（{item.grade}）", f"New risk item ({item.grade})"),
            by="regflow",
            now=now,
            text=_summary(item),
            next_deadline=deadline,
            tags=_told(ctx, item),
        )
    elif rose and deadline is not None and deadline.status == "open":
        due = ctx.due("risk-assessment", item.first_at)
        if due.at < deadline.due_at:
            from tasks.deadlines import move_row

            move_row(
                session,
                deadline,
                due_at=max(due.at, now),
                by="regflow",
                reason=f"升为{graded}",
                rule=due.rule,
                now=now,
                action="deadline.moved",
            )
        ctx.notify(
            f"graded-{graded}",
            (f"风险项升为{graded}", f"Risk item now {graded}"),
            by="regflow",
            now=now,
            text=_summary(item),
            next_deadline=deadline,
            tags=_told(ctx, item),
        )
    elif harmed:
        ctx.notify(
            f"signal-{item.signals}",
            ("风险项新增伤害信息", "New harm signal on a risk item"),
            by="regflow",
            now=now,
            text=_summary(item),
            next_deadline=deadline,
        )


def _told(ctx: RiskContext, item: RiskItem) -> list[str]:
    """一级: the duty desk and the superior's at once; else the desk."""
    return ctx.recipients(("upward",)) if item.grade == rules.GRADES[0] else ctx.recipients(("desk",))


def _snoozed(item: RiskItem, now: dt.datetime) -> bool:
    return item.snoozed_until is not None and item.snoozed_until > now


def _summary(item: RiskItem) -> str:
    who = item.enterprise or item.uscc or "（未知企业）"
    return (
        f"{item.category}｜{item.product} {item.model} {item.batch}｜{who}｜信号 {item.signals} 条，"
        f"最重伤害：{rules.HARM_WORDS[item.worst_harm]}"
    )


def _check_report(session, signal: rules.Signal, item: RiskItem, rule_set: LoadedRules, *, now, result) -> None:
    """An enterprise's report of a death, serious injury or recall abroad is due within
    the limit of Order 19 Art. 8 from the day it learned of it; a late one opens a lead."""
    settings = get_settings()
    limit = rule_set.rules.limit("recall.report")
    calendar = load_calendar(settings.calendar_override)
    due = due_by_rule(limit, at_noon(signal.learned_on, settings.timezone), tz=settings.timezone, calendar=calendar)
    if signal.at <= due.at:
        return
    lead = _receive(
        session,
        LeadRequest(
            title=f"未按时报告：{signal.product}",
            party=signal.enterprise or signal.uscc,
            source="recall",
            authority=signal.region,
            linked_to=item.number,
            detail=f"{item.number}：企业于 {local_time(signal.at)} 报告，"
            f"应于 {local_time(due.at)} 前报告（{due.rule}；{limit.source}）。",
        ),
        now=now,
    )
    audit.record(
        session,
        at=now,
        actor="regflow",
        action="recall.report_late",
        subject=item.number,
        lead=lead.number,
        uscc=signal.uscc,
    )
    result.late_reports.append(lead.number)


def ingest_file(path: Path, *, by: str, now: dt.datetime) -> Ingested:
    signals = rules.parse_signals(read_text(path), source=path.name, tz=get_settings().timezone)
    return ingest(signals, by=by, now=now)


def ingest_one(data: dict[str, Any], *, by: str, now: dt.datetime) -> Ingested:
    return ingest([rules.parse_signal(data, tz=get_settings().timezone)], by=by, now=now)


def watch_once(folder: Path, *, by: str, now: dt.datetime) -> list[tuple[str, str]]:
    """Each file a monitoring point dropped, read whole: moved to `read/` when its
    signals are on record, to `rejected/` with a `.reason` file saying why when not
    (nothing of it recorded). Files starting with `.` or ending `.part` are still
    being written and are left for the next pass."""
    done: list[tuple[str, str]] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if path.name.startswith(".") or path.name.endswith((".part", ".tmp")):
            continue
        try:
            result = ingest_file(path, by=by, now=now)
        except (InvalidInput, UnknownAuthority) as exc:
            target = folder / "rejected"
            target.mkdir(exist_ok=True)
            shutil.move(str(path), target / path.name)
            (target / f"{path.name}.reason").write_text(f"{exc}\n", encoding="utf-8")
            done.append((path.name, f"rejected: {exc}"))
            continue
        target = folder / "read"
        target.mkdir(exist_ok=True)
        shutil.move(str(path), target / path.name)
        done.append((path.name, f"{result.signals} signals, {result.repeats} repeats, {len(result.opened)} new items"))
    return done


def snooze(number: str, *, period: str, reason: str, by: str, now: dt.datetime) -> RiskItem:
    """Quiet a known flood: its signals are still recorded and counted, graded and a
    rise in grade still told; only the per-signal messages stop until the time is up."""
    limits = thresholds()
    if not reason.strip():
        raise InvalidInput("give the reason for snoozing (--reason)")
    span = rules.span_of(period)
    if span > rules.span_of(limits.snooze_max):
        raise InvalidInput(f"snooze at most {limits.snooze_max} (data/risk/thresholds.yaml snooze_max)")
    with session_scope() as session:
        item = _item(session, number)
        require(
            session,
            by,
            roles=("head", "duty"),
            authorities=(item.region,),
            subject=item.number,
            action=f"snooze {item.number}",
            now=now,
        )
        item.snoozed_until = now + span
        session.add(item)
        audit.record(
            session,
            at=now,
            actor=by,
            action="risk.snoozed",
            subject=item.number,
            until=item.snoozed_until.isoformat(),
            reason=reason,
        )
        session.flush()
        session.expunge(item)
        return item


def _item(session: Session, number: str) -> RiskItem:
    item = item_by_number(session, number)
    if item is None:
        raise NotFound(f"no risk item {number.strip()!r} (list them with `regflow risk list`)")
    return item


# --- the risk item's steps ----------------------------------------------------------------


def _assessed(ctx: RiskContext, given: Given) -> None:
    item, form = ctx.row, given.form
    before = item.grade
    item.grade = form.grade
    ctx.session.add(item)
    if form.draft_warning:  # drafted by the handler, approved (or rewritten) by the head's decision
        ctx.case.facts = {**ctx.case.facts, "draft_warning": form.draft_warning}
        ctx.session.add(ctx.case)
    ctx.record(
        "assessment",
        given,
        deadline=given.met,
        fields=[
            ("危害 Hazard", form.hazard),
            ("暴露 Exposure", form.exposure),
            ("等级 Grade", f"{before} → {form.grade}"),
            ("消费提示草稿 Draft warning", form.draft_warning),
        ],
    )
    ctx.tell(
        given,
        "risk-assessment",
        (f"风险评估完成：{form.grade}", f"Assessed: {form.grade}"),
        next_deadline=ctx.get("risk-decision"),
        tags=ctx.recipients(("desk",)),
    )


def _decided(ctx: RiskContext, given: Given) -> None:
    item, form, case = ctx.row, given.form, ctx.case
    item.outcome = form.outcome
    ctx.session.add(item)
    fields: list[tuple[str, Any]] = [("决定 Outcome", rules.OUTCOMES[form.outcome])]
    if form.outcome == "warning":
        text = form.warning or case.facts.get("draft_warning", "")
        if not text:
            raise InvalidInput("warning: give its text, or draft it in the assessment (draft_warning)")
        _warn(ctx, given, text)
        fields.append(("消费提示 Warning", text))
    elif form.outcome == "spot_check":
        campaign = get_campaign(ctx.session, key=form.campaign)
        if campaign is None:
            raise NotFound(f"no campaign {form.campaign!r}: file its plan with `regflow campaign create` first")
        if campaign.authority_code not in and_superiors(ctx.tree, item.region):
            raise InvalidInput(f"campaign {campaign.key} is {campaign.authority_code}'s, not over {item.region}")
        if campaign.risk_item and campaign.risk_item != item.number:
            raise StepConflict(f"campaign {campaign.key} already answers {campaign.risk_item}")
        campaign.risk_item = item.number
        ctx.session.add(campaign)
        _link(ctx, "campaign", campaign.key, given.now)
        fields.append(("专项抽查 Campaign", campaign.key))
    elif form.outcome == "recall":
        if not item.uscc:
            raise InvalidInput(f"{item.number} names no producer's uscc: a recall needs one (ingest a signal with it)")
        recall = _open_recall(
            ctx.session,
            uscc=item.uscc,
            producer=item.enterprise or item.uscc,
            product=" ".join(p for p in (item.product, item.model) if p),
            authority=item.region,
            mode="notified",
            linked_to=item.number,
            by=given.by,
            now=given.now,
        )
        _link(ctx, "recall", recall.number, given.now)
        fields.append(("召回 Recall", recall.number))
    elif form.outcome == "incident":
        incident = _trigger(ctx, given)
        _link(ctx, "incident", incident.number, given.now)
        fields.append(("应急事件 Incident", incident.number))
    ctx.record("decision", given, deadline=given.met, fields=fields)
    if form.outcome in ("warning", "close"):
        _end(ctx, form.outcome, given)
    ctx.tell(
        given,
        "risk-decision",
        (f"风险处置决定：{rules.OUTCOMES[form.outcome]}", f"Decided: {form.outcome}"),
        text=given.text or case.facts.get("warning", ""),
        tags=ctx.recipients(("upward",)),
    )
    case.facts = {**case.facts, "outcome": form.outcome}
    ctx.session.add(case)


def _link(ctx: RiskContext, what: str, number: str, now: dt.datetime) -> None:
    ctx.case.facts = {**ctx.case.facts, what: number}
    ctx.session.add(ctx.case)
    audit.record(
        ctx.session,
        at=now,
        actor="regflow",
        action=f"risk.linked.{what}",
        subject=ctx.number,
        to=number,
    )


def _trigger(ctx: RiskContext, given: Given) -> Incident:
    """An incident under the plan and level the head named, in the same transaction:
    its dispatch goes out with the decision or not at all."""
    from tasks.incidents import activate

    form, item = given.form, ctx.row
    request = validate_trigger(
        dict(
            plan=form.plan,
            level=Level(form.level).value,
            title=ctx.case.title,
            location=item.enterprise or ctx.authority.name,
            authority=item.region,
            reporter=given.by,
        ),
        now=given.now,
    )
    incident = activate(ctx.session, request, now=given.now)
    incident.origin = ctx.number
    ctx.session.add(incident)
    return incident


def _warn(ctx: RiskContext, given: Given, text: str) -> None:
    """The consumer warning the head approved: to the `public` channel and the public page."""
    item = ctx.row
    ctx.notify(
        "warning",
        ("消费提示", "Consumer warning"),
        by=given.by,
        now=given.now,
        text=text,
        tags=[f"{item.region}.public", *ctx.desk()],
    )
    ctx.case.facts = {**ctx.case.facts, "warning": text, "warned_at": given.now.isoformat()}
    ctx.session.add(ctx.case)
    ctx.session.flush()
    publish_warnings(ctx.session, now=given.now)


def publish_warnings(session: Session, *, now: dt.datetime) -> list[Path]:
    """Every consumer warning on record, newest first, as the public page and a JSON feed."""
    from sqlmodel import select

    rows = []
    for case in session.exec(select(Case).where(Case.kind == "risk").order_by(Case.id.desc())):
        if case.facts.get("warning"):
            authority = session.get(Authority, case.authority_code)
            rows.append(
                {
                    "number": case.number,
                    "title": case.title,
                    "authority": authority.name,
                    "text": case.facts["warning"],
                    "at": local_time(dt.datetime.fromisoformat(case.facts["warned_at"])),
                }
            )
    page = public_page("warnings.html.j2", rows=rows, at=local_time(now))
    feed = json.dumps({"published_at": now.isoformat(), "warnings": rows}, ensure_ascii=False, indent=2)
    return write_public("warnings", "index", {"html": page, "json": feed})


def _outcome_done(ctx: RiskContext, given: Given) -> None:
    """Only once what the decision opened is finished does the item close."""
    facts, session = ctx.case.facts, ctx.session
    if number := facts.get("recall"):
        recall = get_case(session, number=number)
        if recall.is_open:
            raise StepConflict(f"{ctx.number}: its recall {number} is still {recall.stage}")
    if number := facts.get("incident"):
        incident = get_incident(session, number=number)
        if incident.closed_at is None:
            raise StepConflict(f"{ctx.number}: its incident {number} is not closed yet")
    if key := facts.get("campaign"):
        campaign = get_campaign(session, key=key)
        if not campaign.publications:
            raise StepConflict(f"{ctx.number}: its campaign {key} has not published its results yet")
    ctx.record("outcome", given, fields=[("处置 Outcome", rules.OUTCOMES[facts.get("outcome", "close")])])
    _end(ctx, facts.get("outcome", "close"), given)


def _end(ctx: CaseContext, outcome: str, given: Given) -> None:
    finish(ctx, outcome, now=given.now, by=given.by, keep=())
    if isinstance(ctx, RiskContext):
        ctx.row.status = "closed"
        ctx.session.add(ctx.row)


Risks.handlers = {"risk-assessment": _assessed, "risk-decision": _decided, "risk-outcome": _outcome_done}
RISKS = Risks()


# --- recalls ---------------------------------------------------------------------------------


def _open_recall(
    session: Session,
    *,
    uscc: str,
    producer: str,
    product: str,
    authority: str,
    mode: str,
    linked_to: str | None,
    by: str,
    now: dt.datetime,
    defect_on: dt.date | None = None,
) -> Case:
    """A recall subject: notified (the authority's notice to investigate is due) or
    voluntary (the producer's plan is due from the day it found the defect)."""
    settings = get_settings()
    if session.get(Authority, authority) is None:
        raise UnknownAuthority(f"unknown authority {authority!r}")
    year = pendulum.instance(now).in_timezone(settings.timezone).year
    number = machine.case_number(year, next_number(session, name=f"RCL-{year}"), "recall")
    rule_set = load_rules(settings.rules_file, authority=authority)
    case = Case(
        number=number,
        kind="recall",
        title=f"召回：{product}"[:200],
        party=producer,
        source="recall",
        detail="",
        authority_code=authority,
        linked_to=linked_to,
        received_at=now,
        stage="recall-plan" if mode == "voluntary" else "recall-investigation",
        rules_hash=rule_set.content_hash,
        facts={"mode": mode, "uscc": uscc},
    )
    session.add(case)
    session.add(Recall(number=number, uscc=uscc, producer=producer, product=product, mode=mode))
    session.flush()
    ctx = RecallContext(session, case, rule_set)
    if mode == "voluntary":
        start = at_noon(defect_on, settings.timezone) if defect_on else now
        deadline = ctx.add("recall-plan", start)
    else:
        deadline = ctx.add("recall-investigation", now)
    ctx.notify(
        "opened",
        (f"召回立项（{'主动召回' if mode == 'voluntary' else '缺陷调查'}）", f"Recall opened ({mode})"),
        by=by,
        now=now,
        next_deadline=deadline,
        text=f"{producer}（{uscc}）：{product}",
    )
    audit.record(
        session, at=now, actor=by, action="recall.opened", subject=number, mode=mode, uscc=uscc, linked_to=linked_to
    )
    return case


def open_recall(
    *,
    uscc: str,
    producer: str,
    product: str,
    authority: str,
    voluntary: bool,
    defect_on: dt.date | None,
    by: str,
    now: dt.datetime,
) -> str:
    try:
        uscc = rules.valid_uscc(uscc)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if voluntary and defect_on is None:
        raise InvalidInput("a voluntary recall names the day the producer found the defect (--defect-on)")
    with session_scope() as session:
        require(
            session,
            by,
            roles=("handler", "head"),
            authorities=(authority,),
            subject="recall",
            action="open a recall",
            now=now,
        )
        if defect_on is not None:
            engine.not_future(defect_on, "defect_on", now)
        case = _open_recall(
            session,
            uscc=uscc,
            producer=producer,
            product=product,
            authority=authority,
            mode="voluntary" if voluntary else "notified",
            linked_to=None,
            by=by,
            now=now,
            defect_on=defect_on,
        )
        return case.number


def _investigation(ctx: RecallContext, given: Given) -> None:
    form = given.form
    engine.not_future(form.served_on, "served_on", given.now)
    due = by_end_of(
        form.findings_by,
        tz=get_settings().timezone,
        label="生产者报告调查分析结果（《消费品召回管理暂行规定》第九条：按通知要求）",
    )
    deadline = ctx.add("recall-findings", given.now, due=due)
    ctx.record(
        "investigation",
        given,
        deadline=given.met,
        fields=[("送达 Served", form.served_on), ("报告期限 Findings by", form.findings_by)],
    )
    ctx.tell(
        given, "recall-investigation", ("已通知生产者调查分析", "Producer told to investigate"), next_deadline=deadline
    )


def _findings(ctx: RecallContext, given: Given) -> None:
    ctx.record("findings", given, deadline=given.met, fields=[("存在缺陷 Defect", "是" if given.form.defect else "否")])
    if not given.form.defect:
        _end(ctx, "no_defect", given)


def _notified(ctx: RecallContext, given: Given) -> None:
    served = engine.not_future(given.form.served_on, "served_on", given.now)
    window = ctx.due("recall-objection", served, rule="recall.objection")
    ctx.case.facts = {**ctx.case.facts, "objection_until": window.at.isoformat()}
    ctx.session.add(ctx.case)
    ctx.record("notice-to-recall", given, fields=[("异议期 Objection", window.rule)])


def _planned(ctx: RecallContext, given: Given) -> None:
    filed = engine.not_future(given.form.filed_on, "filed_on", given.now)
    ctx.row.affected = given.form.affected
    ctx.session.add(ctx.row)
    first = ctx.add("recall-progress-1", filed, rule="recall.progress")
    ctx.record(
        "plan",
        given,
        deadline=given.met,
        fields=[("涉及数量 Units", given.form.affected), ("阶段性总结 Progress", first.rule)],
    )
    ctx.tell(
        given, "recall-plan", ("召回计划已报告", "Recall plan filed"), next_deadline=ctx.get("recall-public-notice")
    )


def _published(ctx: RecallContext, given: Given) -> None:
    engine.not_future(given.form.published_on, "published_on", given.now)
    ctx.record("public-notice", given, deadline=given.met, fields=[("渠道 Where", given.form.where)])


def progress(number: str, *, recalled: int, completed_on: dt.date | None, by: str, now: dt.datetime) -> dict:
    """A progress report (every three months, Order 19 Art. 21): it meets the one due
    and opens the next; with the day the plan was completed, the summary falls due
    instead (15 working days) and no further progress report."""
    with session_scope() as session:
        case = _recall_case(session, number)
        if not case.is_open or case.stage not in ("recall-public-notice", "recall-summary"):
            raise StepConflict(f"{case.number} is not carrying out a recall plan (it is at {case.stage})")
        ctx = RecallContext(session, case)
        ctx.require(by, "report recall progress", now=now, roles=("handler",))
        row = ctx.row
        if row.affected is not None and recalled > row.affected:
            raise InvalidInput(f"recalled {recalled} is more than the {row.affected} units the plan covers")
        if recalled < row.recalled:
            raise InvalidInput(f"recalled {recalled} is fewer than the {row.recalled} already reported")
        if ctx.get("recall-summary") is not None:
            raise StepConflict(f"{case.number}: the plan was completed already; the summary is due")
        n = row.progress_reports + 1
        current = ctx.get(f"recall-progress-{n}")
        if current is not None and current.status == "open":
            ctx.close(current.name, now)
        row.progress_reports, row.recalled = n, recalled
        if completed_on is not None:
            done = engine.not_future(completed_on, "completed_on", now)
            row.completed_on = completed_on
            opened = ctx.add("recall-summary", done)
        else:
            opened = ctx.add(f"recall-progress-{n + 1}", current.due_at if current else now, rule="recall.progress")
        session.add(row)
        ctx.notify(
            f"progress-{n}",
            (f"召回阶段性总结 {n}", f"Recall progress report {n}"),
            by=by,
            now=now,
            text=f"已召回 {recalled}" + (f" / {row.affected}" if row.affected else ""),
            next_deadline=opened,
        )
        audit.record(
            session,
            at=now,
            actor=by,
            action="recall.progress",
            subject=case.number,
            n=n,
            recalled=recalled,
            completed_on=str(completed_on) if completed_on else None,
        )
        return {
            "number": case.number,
            "report": n,
            "recalled": recalled,
            "next": opened.name,
            "due_at": opened.due_at.isoformat(),
        }


def _summarised(ctx: RecallContext, given: Given) -> None:
    row = ctx.row
    if row.completed_on is None:
        raise StepConflict(f"{ctx.number}: record the plan's completion first (regflow recall progress --completed-on)")
    if row.affected is not None and given.form.recalled > row.affected:
        raise InvalidInput(f"recalled {given.form.recalled} is more than the {row.affected} units the plan covers")
    row.recalled = given.form.recalled
    ctx.session.add(row)
    ctx.record("summary", given, deadline=given.met, fields=[("已召回 Recalled", f"{row.recalled} / {row.affected}")])


def _assessed_recall(ctx: RecallContext, given: Given) -> None:
    """The recall rate against the authority's target: below it, "effective" needs a
    reason; not effective, the producer is told to recall again (Order 19 Art. 22)."""
    row, limits = ctx.row, thresholds()
    row.rate = round(row.recalled / row.affected, 4) if row.affected else None
    ctx.session.add(row)
    below = row.rate is not None and row.rate < limits.recall_target_rate
    if given.form.effective and below and not given.text:
        raise InvalidInput(
            f"the recall rate {row.rate:.1%} is below the target {limits.recall_target_rate:.0%}: "
            "say why it is effective (--text) or assess it not effective"
        )
    rate = f"{row.rate:.1%}" if row.rate is not None else "—"
    ctx.record(
        "assessment",
        given,
        fields=[
            ("召回率 Rate", f"{rate}（目标 {limits.recall_target_rate:.0%}，本局设定）"),
            ("有效 Effective", "是" if given.form.effective else "否"),
        ],
    )
    if given.form.effective:
        _end(ctx, "recalled", given)


def _again(ctx: RecallContext, given: Given) -> None:
    """Told to recall again: a new recall, linked both ways, its plan due from the notice."""
    served = engine.not_future(given.form.served_on, "served_on", given.now)
    row = ctx.row
    again = _open_recall(
        ctx.session,
        uscc=row.uscc,
        producer=row.producer,
        product=row.product,
        authority=ctx.case.authority_code,
        mode="voluntary",
        linked_to=ctx.number,
        by=given.by,
        now=given.now,
        defect_on=served.date(),
    )
    again.facts = {**again.facts, "again_of": ctx.number}
    ctx.session.add(again)
    ctx.case.facts = {**ctx.case.facts, "again": again.number}
    ctx.record("rerecall", given, fields=[("重新召回 Recall again", again.number)])
    _end(ctx, "recall_again", given)


Recalls.handlers = {
    "recall-investigation": _investigation,
    "recall-findings": _findings,
    "recall-notice": _notified,
    "recall-plan": _planned,
    "recall-public-notice": _published,
    "recall-summary": _summarised,
    "recall-assessment": _assessed_recall,
    "recall-again": _again,
}
RECALLS = Recalls()


def _recall_case(session: Session, number: str) -> Case:
    case = get_case(session, number=number)
    if case is None or case.kind != "recall":
        raise NotFound(f"no recall {number.strip()!r} (list them with `regflow recall list`)")
    return case


def leads_for_missed(now: dt.datetime) -> list[str]:
    """Each deadline a producer owed that was missed (its escalation raised) and has no
    lead yet: a lead against the producer, linked to the recall. A sweep the watcher
    runs each cycle, so a crash between the escalation and the lead loses nothing."""
    from sqlmodel import select

    from storage.escalations import Escalation

    opened = []
    with session_scope() as session:
        for escalation in session.exec(select(Escalation).where(Escalation.subject.startswith("RCL-"))):
            deadline = session.get(Deadline, escalation.deadline_id)
            subject = get_case(session, number=escalation.subject)
            if deadline is None or subject is None or deadline.policy.get("on_miss") != "lead":
                continue
            if deadline.name in subject.facts.get("missed", {}):
                continue
            label = machine.label(deadline.name) or deadline.name
            request = LeadRequest(
                title=f"召回义务逾期：{label}",
                party=subject.party,
                source="recall",
                authority=subject.authority_code,
                linked_to=subject.number,
                detail=f"{subject.number}：{deadline.rule}，截止 {local_time(deadline.due_at)} 未履行。",
            )
            lead = _receive(session, request, now=now)
            subject.facts = {
                **subject.facts,
                "missed": {**subject.facts.get("missed", {}), deadline.name: lead.number},
                "leads": [*subject.facts.get("leads", []), lead.number],
            }
            session.add(subject)
            audit.record(
                session,
                at=now,
                actor="watcher",
                action="recall.obligation_missed",
                subject=subject.number,
                deadline=deadline.name,
                lead=lead.number,
            )
            opened.append(lead.number)
    return opened


# --- answering and reading -------------------------------------------------------------------


def answer(number: str, *, step: str, answer: dict[str, Any], source: str, now: dt.datetime) -> Answered:
    kind = RECALLS if number.strip().upper().startswith("RCL-") else RISKS
    return engine.answer(kind, number.strip().upper(), step=step, answer=answer, source=source, now=now)


def item_view(number: str) -> dict[str, Any]:
    with session_scope() as session:
        item = _item(session, number)
        case = get_case(session, number=item.number)
        return {
            "number": item.number,
            "status": case.status,
            "stage": case.stage,
            "grade": item.grade,
            "category": item.category,
            "product": item.product,
            "model": item.model,
            "batch": item.batch,
            "enterprise": item.enterprise,
            "uscc": item.uscc,
            "region": item.region,
            "signals": item.signals,
            "worst_harm": item.worst_harm,
            "first_at": item.first_at.isoformat(),
            "last_at": item.last_at.isoformat(),
            "snoozed_until": item.snoozed_until.isoformat() if item.snoozed_until else None,
            "outcome": case.facts.get("outcome"),
            "links": {k: case.facts[k] for k in ("campaign", "recall", "incident") if k in case.facts},
            "awaits": engine.awaited(session, case),
            "deadlines": deadline_rows.listed_for(session, subject=item.number),
            "recent": [
                {"source": s.source, "harm": s.harm, "count": s.count, "at": s.at.isoformat(), "repeats": s.repeats}
                for s in signals_of(session, item.number, last=10)
            ],
        }


def recall_view(number: str) -> dict[str, Any]:
    with session_scope() as session:
        case = _recall_case(session, number)
        row = recall_by_number(session, case.number)
        return {
            "number": case.number,
            "status": case.status,
            "stage": case.stage,
            "mode": row.mode,
            "producer": row.producer,
            "uscc": row.uscc,
            "product": row.product,
            "authority": case.authority_code,
            "affected": row.affected,
            "recalled": row.recalled,
            "rate": row.rate,
            "progress_reports": row.progress_reports,
            "completed_on": row.completed_on.isoformat() if row.completed_on else None,
            "linked_to": case.linked_to,
            "again": case.facts.get("again"),
            "leads": case.facts.get("leads", []),
            "objection_until": case.facts.get("objection_until"),
            "outcome": case.outcome,
            "awaits": engine.awaited(session, case),
            "deadlines": deadline_rows.listed_for(session, subject=case.number),
        }


def listing(*, kind: str, status: str | None = None, authority: str | None = None) -> list[dict[str, Any]]:
    from sqlmodel import select

    with session_scope() as session:
        if kind == "risk":
            rows = item_rows(session, status=status, authorities=(authority,) if authority else None)
            return [
                {
                    "number": r.number,
                    "grade": r.grade,
                    "status": r.status,
                    "category": r.category,
                    "product": " ".join(p for p in (r.product, r.model, r.batch) if p),
                    "enterprise": r.enterprise or r.uscc,
                    "uscc": r.uscc,
                    "region": r.region,
                    "signals": r.signals,
                    "worst_harm": r.worst_harm,
                }
                for r in rows
            ]
        query = select(Case).where(Case.kind == "recall").order_by(Case.id.desc())
        if status:
            query = query.where(Case.status == status)
        if authority:
            query = query.where(Case.authority_code == authority)
        out = []
        for case in session.exec(query):
            row = recall_by_number(session, case.number)
            out.append(
                {
                    "number": case.number,
                    "status": case.status,
                    "stage": case.stage,
                    "mode": row.mode,
                    "producer": row.producer,
                    "product": row.product,
                    "recalled": row.recalled,
                    "affected": row.affected,
                }
            )
        return out


def signal_listing(*, limit: int = 50) -> list[dict[str, Any]]:
    from storage.risk import recent_signals

    with session_scope() as session:
        return [
            {
                "id": s.id,
                "item": s.item,
                "source": s.source,
                "category": s.category,
                "product": s.product,
                "model": s.model,
                "harm": s.harm,
                "count": s.count,
                "region": s.region,
                "at": s.at.isoformat(),
                "repeats": s.repeats,
            }
            for s in recent_signals(session, limit=limit)
        ]


def review(authority: str, *, now: dt.datetime) -> dict[str, Any]:
    """The quarterly review: what is open under an authority and those it supervises, and what is late."""
    from sqlmodel import select

    from tasks.board import under

    with session_scope() as session:
        codes = under(session, authority)  # UnknownAuthority for a code not in the tree
        open_cases = list(
            session.exec(
                select(Case).where(
                    Case.kind.in_(("risk", "recall")), Case.status == "open", Case.authority_code.in_(codes)
                )
            )
        )
        out = {"authority": authority, "at": now.isoformat(), "open": [], "late": []}
        for case in open_cases:
            late = [
                d.name
                for d in deadline_rows.deadlines_for(session, subject=case.number)
                if d.status == "open" and d.due_at < now
            ]
            entry = {
                "number": case.number,
                "kind": case.kind,
                "title": case.title,
                "stage": case.stage,
                "authority": case.authority_code,
                "late": late,
            }
            out["open"].append(entry)
            if late:
                out["late"].append(entry)
        return out
