"""Spot-check samples on the lifecycle engine: one subject per drawn target (an
`enforcement_case` row of kind `sample`, numbered SMP-…, beside its `spot_sample` row),
walked by the `spot-check-sample` flow and answered from the CLI (`regflow sample …`)
or the UI alike.

What the engine does not say itself is here: the blind code given at sampling and
checked at testing (the lab enters its result against the code; its messages never
name the enterprise), the objection window of Product Quality Law Art. 15, the re-test
by another lab, the final result with its publication deadline, the order to stop and
rectify (a lead opened in the case flow, the producer's authority asked to assist),
the re-check, and the campaign's publication of results (一公开) with corrections.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pendulum
from sqlmodel import Session

from kernel.errors import InvalidInput, NotFound, StepConflict, UnknownAuthority
from kernel.settings import get_settings
from rules import cases as machine
from rules.campaigns import CampaignPlan, parse_plan
from rules.durations import Due, by_end_of
from rules.lifecycle import Lifecycle
from rules.people import load_people
from rules.samples import PLAN_LIMITS, RECTIFICATION_RULE, RESULT_WORDS, SAMPLE, blind_code, feed_csv, public_row
from rules.statutes import LoadedRules, load_rules
from storage import audit
from storage import deadlines as deadline_rows
from storage.authorities import Authority
from storage.campaigns import Campaign, get_campaign
from storage.cases import Case, get_case
from storage.db import session_scope
from storage.incidents import Report, next_number
from storage.samples import SpotSample, sample_by_code, sample_by_number, samples_of
from tasks import lifecycle as engine
from tasks.access import require_head
from tasks.cases import CaseContext, Cases, ask_assistance, finish, linked_lead
from tasks.lifecycle import Answered, Given
from tasks.render import local_time, public_page, render
from tasks.render import write_public as render_public


class SampleContext(CaseContext):
    """A sample's context: the campaign plan times what no confirmed statute does, the
    lab is told at its own channel (`<authority>.lab`), and every document and message
    can reach the sample's own record."""

    def __init__(self, session: Session, case: Case, rules: LoadedRules | None = None, plan=None) -> None:
        super().__init__(session, case, rules)
        self.row = sample_by_number(session, case.number)
        self._plan: CampaignPlan | None = plan

    @property
    def plan(self) -> CampaignPlan:
        if self._plan is None:
            campaign = get_campaign(self.session, key=self.row.campaign_key)
            self._plan = parse_plan(campaign.plan_text, source=campaign.key)
        return self._plan

    def due(self, name: str, start: dt.datetime, rule: str | None = None) -> Due:
        settings = get_settings()
        if name == "sampling":
            return by_end_of(self.plan.window.end, tz=settings.timezone, label=f"抽样（抽查计划 {self.plan.key} 时段）")
        if name in PLAN_LIMITS and rule is None:
            period = getattr(self.plan.limits, PLAN_LIMITS[name])
            return self.due_in(start, period, f"{machine.label(name)}（抽查计划 {self.plan.key} 所定）")
        return super().due(name, start, rule)

    def recipients(self, names: tuple[str, ...]) -> list[str]:
        lab = [f"{self.case.authority_code}.lab"] if "lab" in names else []
        return super().recipients(tuple(n for n in names if n != "lab")) + lab

    def template_vars(self, **more: Any) -> dict[str, Any]:
        return super().template_vars(sample=self.row, **more)


class Samples(Cases):
    """Spot-check samples, for the engine: a case's context and engine calls, with the
    sample's own lifecycle and handlers."""

    kinds = ("sample",)

    def context(self, session: Session, subject: Case) -> SampleContext:
        return SampleContext(session, subject)

    def lifecycle(self, subject: Case, step: str | None = None) -> Lifecycle:
        return SAMPLE


def _sampled(ctx: SampleContext, given: Given) -> None:
    """Only an inspector drawn for it samples; the sample gets its blind code, and the
    lab is told the code, never the enterprise."""
    row, form = ctx.row, given.form
    people = load_people(get_settings().people_file).named(given.by)
    drawn = {*row.inspectors, *ctx.case.facts.get("inspector_names", [])}
    if not ({p.login for p in people} | {given.by}) & drawn:
        raise InvalidInput(f"{given.by} was not drawn for {row.number} (drawn: {', '.join(sorted(drawn))})")
    if form.producer_authority and ctx.session.get(Authority, form.producer_authority) is None:
        raise UnknownAuthority(f"producer_authority: unknown authority {form.producer_authority!r}")
    engine.not_future(form.sampled_on, "sampled_on", given.now)
    code = blind_code()
    while sample_by_code(ctx.session, code) is not None:
        code = blind_code()
    row.blind_code, row.product, row.model, row.batch = code, form.product, form.model, form.batch
    row.sampled_on, row.producer_authority = form.sampled_on, form.producer_authority
    ctx.session.add(row)
    ctx.record(
        "sampling",
        given,
        fields=[
            ("盲样编号 Blind code", code),
            ("产品 Product", form.product),
            ("型号 Model", form.model),
            ("批号 Batch", form.batch),
            ("数量 Quantity", form.quantity),
            ("抽样日期 Sampled on", form.sampled_on),
            ("生产者 Producer", form.producer),
        ],
    )
    testing = ctx.get("testing")
    ctx.queue(
        key="to-lab",
        tags=ctx.recipients(("lab",)),
        template="sample_to_lab",
        now=given.now,
        code=code,
        category=row.category,
        quantity=form.quantity,
        deadline=testing,
    )
    ctx.tell(given, "sampling", (f"已抽样，盲样编号 {code}", f"Sampled: blind code {code}"), next_deadline=testing)


def _check_result(ctx: SampleContext, given: Given, *, retest: bool) -> None:
    row, form = ctx.row, given.form
    if row.blind_code != form.blind_code.strip().upper():
        raise InvalidInput(f"blind code {form.blind_code!r} is not this sample's")
    if form.lab not in ctx.plan.labs:
        raise InvalidInput(f"lab {form.lab!r} is not one of the campaign's labs ({', '.join(ctx.plan.labs)})")
    if retest and form.lab == row.lab:
        raise InvalidInput(f"the re-test is by another lab than {row.lab} (产品质量法第十五条：复检)")


def _result_fields(given: Given) -> list[tuple[str, Any]]:
    form = given.form
    return [
        ("盲样编号 Blind code", form.blind_code),
        ("检验机构 Lab", form.lab),
        ("报告编号 Report", form.report_no),
        ("结论 Result", "合格 pass" if form.passed else "不合格 fail"),
        ("不合格项目 Failing items", form.failing_items),
    ]


def _tested(ctx: SampleContext, given: Given) -> None:
    _check_result(ctx, given, retest=False)
    row, form = ctx.row, given.form
    row.lab, row.passed, row.failing_items = form.lab, form.passed, form.failing_items
    ctx.session.add(row)
    ctx.record("test-report", given, deadline=given.met, fields=_result_fields(given))
    if form.passed:
        _final(ctx, "pass", given)
    heading = (
        ("检验合格，请告知企业", "Passed: tell the enterprise")
        if form.passed
        else ("检验不合格，请告知企业并告知异议权利", "Failed: tell the enterprise, with its right to object")
    )
    ctx.tell(given, "testing", heading, text=form.failing_items, next_deadline=ctx.get("result-notice"))


def _pass_notified(ctx: SampleContext, given: Given) -> None:
    _end(ctx, "passed", given)


def _objection(ctx: SampleContext, given: Given) -> None:
    """Within 15 days of the enterprise receiving the result (the deadline's own day
    arithmetic, holidays included); "no objection" only once that period is over."""
    window = ctx.get("objection")
    tz = get_settings().timezone
    last_day = pendulum.instance(window.due_at).in_timezone(tz).date()
    form = given.form
    if form.objected:
        received = engine.not_future(form.received_on, "received_on", given.now)
        if form.received_on > last_day:
            raise InvalidInput(
                f"the objection was received on {form.received_on}, after the period ended on "
                f"{last_day} ({window.rule})"
            )
        audit.record(
            ctx.session,
            at=given.now,
            actor=given.by,
            action="sample.objected",
            subject=ctx.number,
            received_on=str(form.received_on),
        )
        ctx.get("retest") or ctx.add("retest", received)
        return
    if given.now <= window.due_at:
        raise InvalidInput(f"the objection period runs until {local_time(window.due_at)}: record no objection after it")
    _final(ctx, "fail", given)


def _retested(ctx: SampleContext, given: Given) -> None:
    _check_result(ctx, given, retest=True)
    row, form = ctx.row, given.form
    row.retest_lab, row.retest_passed, row.retest_failing_items = form.lab, form.passed, form.failing_items
    ctx.session.add(row)
    ctx.record("retest-report", given, deadline=given.met, fields=_result_fields(given))
    _final(ctx, "pass" if form.passed else "fail", given)
    if form.passed:
        ctx.tell(given, "retest", ("复检合格：原结论不予维持", "Re-test passed: the first result does not stand"))
        _end(ctx, "retest_passed", given)
    else:
        ctx.tell(
            given,
            "retest",
            ("复检不合格：维持原结论", "Re-test failed: the result stands"),
            text=form.failing_items,
            next_deadline=ctx.get("rectification-order"),
        )


def _ordered(ctx: SampleContext, given: Given) -> None:
    """The order to stop and rectify: a lead in the case flow, and the producer's own
    authority asked to assist where the producer is elsewhere."""
    row, case = ctx.row, ctx.case
    rules = ctx.rules.rules
    period = rules.limit(RECTIFICATION_RULE)
    served = engine.not_future(given.form.served_on, "served_on", given.now)
    until = ctx.due("rectification", served, rule=RECTIFICATION_RULE)
    items = row.retest_failing_items or row.failing_items
    ctx.record(
        "rectification",
        given,
        fields=[
            ("不合格项目 Failing items", items),
            ("立即停止生产、销售同一产品 Stop making and selling it", "《产品质量监督抽查管理暂行办法》第四十五条"),
            ("整改期限 Rectify by", f"{until.rule}，截止 {local_time(until.at)}"),
            ("复查 Re-check", ctx.get("recheck").rule if ctx.get("recheck") else ""),
            ("时限依据 Limits", f"{period.label}；{rules.limit('sample.recheck').label}"),
        ],
    )
    lead = linked_lead(
        ctx,
        given,
        source="spot_check",
        detail=f"{row.number} 监督抽查不合格（{row.category}，{row.product} {row.batch}）：{items}",
    )
    case.facts = {**case.facts, "lead": lead.number, "rectify_by": until.at.isoformat()}
    ctx.session.add(case)
    if row.producer_authority and row.producer_authority != case.authority_code:
        ask_assistance(
            ctx,
            row.producer_authority,
            by=given.by,
            now=given.now,
            text=f"{row.number} 抽查不合格产品的生产者在贵辖区，请协助核查处理。不合格项目：{items}",
        )
    ctx.tell(
        given,
        "rectification-order",
        (f"已责令整改，转立案核查 {lead.number}", f"Rectification ordered; lead {lead.number} opened"),
        next_deadline=ctx.get("recheck"),
    )


def _rechecked(ctx: SampleContext, given: Given) -> None:
    passed = given.form.passed
    ctx.record(
        "recheck",
        given,
        deadline=given.met,
        fields=[
            ("复查结论 Result", "合格 pass" if passed else "不合格 fail"),
            ("仍不合格项目 Still failing", given.form.failing_items),
        ],
    )
    if passed:
        ctx.tell(given, "recheck", ("整改复查合格", "Re-check passed"))
    else:
        # Order 18 Art. 47: reported level by level to the province, which announces it.
        tags = [t for a in ctx.tree.chain_up(ctx.case.authority_code) for t in ctx.desk(a.code)]
        ctx.tell(
            given,
            "recheck",
            (
                "整改复查仍不合格，逐级上报省级部门公告",
                "Re-check failed: reported up to the province for its public notice",
            ),
            text=given.form.failing_items,
            tags=ctx.desk() + tags,
        )
    _end(ctx, "rectified" if passed else "recheck_failed", given)


def _final(ctx: SampleContext, result: str, given: Given) -> None:
    """The result no objection can change now: due for publication within its limit."""
    row = ctx.row
    row.result, row.final_at = result, given.now
    ctx.session.add(row)
    if ctx.get("publication") is None:
        ctx.add("publication", given.now)
    audit.record(ctx.session, at=given.now, actor=given.by, action="sample.final", subject=ctx.number, result=result)


def _end(ctx: SampleContext, outcome: str, given: Given) -> None:
    """The sample's own steps are over; its publication deadline stays open until the
    campaign publishes it."""
    finish(ctx, outcome, now=given.now, by=given.by, keep=("publication", "republication"))


Samples.handlers = {
    "sampling": _sampled,
    "testing": _tested,
    "pass-notice": _pass_notified,
    "objection": _objection,
    "retest": _retested,
    "rectification-order": _ordered,
    "recheck": _rechecked,
}
SAMPLES = Samples()


# --- creating a campaign's samples --------------------------------------------------------


def create_samples(key: str, *, now: dt.datetime) -> list[str]:
    """One subject per drawn target, once (a re-run finds them): its sampling deadline
    (the plan's window) and a message to the inspectors drawn for it."""
    settings = get_settings()
    with session_scope() as session:
        campaign = _campaign(session, key)
        if campaign.status != "drawn":
            raise StepConflict(f"campaign {campaign.key} has not been drawn yet")
        plan = parse_plan(campaign.plan_text, source=campaign.key)
        existing = {(s.uscc, s.category): s.number for s in samples_of(session, campaign.key)}
        rules = load_rules(settings.rules_file, authority=campaign.authority_code)
        year = pendulum.instance(now).in_timezone(settings.timezone).year
        names = {i["login"]: i["name"] for i in (campaign.snapshot or {}).get("inspectors", [])}
        numbers = []
        for drawn in campaign.samples or []:
            number = existing.get((drawn["uscc"], drawn["category"]))
            if number is None:
                number = _create(session, campaign, plan, rules, drawn, names, year=year, now=now)
            numbers.append(number)
        return numbers


def _create(
    session,
    campaign: Campaign,
    plan: CampaignPlan,
    rules: LoadedRules,
    drawn: dict,
    names: dict[str, str],
    *,
    year: int,
    now: dt.datetime,
) -> str:
    number = machine.case_number(year, next_number(session, name=f"SMP-{year}"), "sample")
    case = Case(
        number=number,
        kind="sample",
        title=f"{drawn['category']} 监督抽查",
        party=drawn["name"],
        source="spot_check",
        detail=f"{campaign.name}（{campaign.key}）",
        authority_code=campaign.authority_code,
        stage=SAMPLE.first,
        received_at=now,
        rules_hash=rules.content_hash,
        facts={"campaign": campaign.key, "inspector_names": [names.get(i, i) for i in drawn["inspectors"]]},
    )
    session.add(case)
    session.add(
        SpotSample(
            number=number,
            campaign_key=campaign.key,
            category=drawn["category"],
            uscc=drawn["uscc"],
            enterprise=drawn["name"],
            inspectors=list(drawn["inspectors"]),
        )
    )
    session.flush()
    ctx = SampleContext(session, case, rules, plan)
    deadline = ctx.add("sampling", now)
    tags = [f"person.{login}" for login in drawn["inspectors"]] + ctx.desk()
    ctx.notify(
        "drawn",
        ("抽中抽样任务", "Drawn for sampling"),
        by="regflow",
        now=now,
        next_deadline=deadline,
        tags=tags,
        text=f"{campaign.name}：{drawn['name']}（{drawn['uscc']}），{drawn['category']}。"
        f"抽样人员 / inspectors: {', '.join(drawn['inspectors'])}",
    )
    audit.record(
        session,
        at=now,
        actor="regflow",
        action="sample.created",
        subject=number,
        campaign=campaign.key,
        category=drawn["category"],
        uscc=drawn["uscc"],
    )
    return number


# --- answering from the CLI ---------------------------------------------------------------


def answer(number: str, *, step: str, answer: dict[str, Any], source: str, now: dt.datetime) -> Answered:
    return engine.answer(SAMPLES, resolve(number), step=step, answer=answer, source=source, now=now)


def resolve(number_or_code: str) -> str:
    """A sample's number from its number or its blind code (what a lab holds)."""
    with session_scope() as session:
        text = number_or_code.strip().upper()
        row = sample_by_code(session, text) if text.startswith("BL-") else sample_by_number(session, text)
        if row is None:
            raise NotFound(f"no sample {number_or_code.strip()!r} (list a campaign's with `regflow campaign show KEY`)")
        return row.number


def lab_view(code: str) -> dict[str, Any]:
    """What a lab may see of a sample: its code, category, what it awaits from the lab."""
    with session_scope() as session:
        row = sample_by_code(session, code)
        if row is None:
            raise NotFound(f"no sample with blind code {code.strip()!r}")
        awaited = engine.awaited(session, get_case(session, number=row.number))
        deadline = next(
            (
                d
                for d in deadline_rows.deadlines_for(session, subject=row.number)
                if d.name in ("testing", "retest") and d.status == "open"
            ),
            None,
        )
        return {
            "blind_code": row.blind_code,
            "category": row.category,
            "campaign": row.campaign_key,
            "awaiting": [s for s in awaited if s in ("testing", "retest")],
            "due_at": deadline.due_at if deadline else None,
        }


def show(number_or_code: str) -> dict[str, Any]:
    from tasks.status import records

    number = resolve(number_or_code)
    with session_scope() as session:
        case, row = get_case(session, number=number), sample_by_number(session, number)
        return {
            "number": number,
            "campaign": row.campaign_key,
            "category": row.category,
            "enterprise": row.enterprise,
            "uscc": row.uscc,
            "inspectors": row.inspectors,
            "blind_code": row.blind_code,
            "product": row.product,
            "batch": row.batch,
            "lab": row.lab,
            "passed": row.passed,
            "failing_items": row.failing_items,
            "retest_lab": row.retest_lab,
            "retest_passed": row.retest_passed,
            "result": row.result,
            "status": case.status,
            "outcome": case.outcome,
            "awaiting": engine.awaited(session, case),
            "lead": case.facts.get("lead"),
            "published": row.published,
            "corrections": row.corrections,
            "flow_run_id": case.flow_run_id,
            **records(session, number),
        }


def correct(number_or_code: str, *, passed: bool, failing_items: str, reason: str, by: str, now: dt.datetime) -> str:
    """A final result corrected by the head: on record with the reason, and due for
    publication again so the public page shows the corrected one."""
    if not reason.strip():
        raise InvalidInput("a correction gives its reason (--reason)")
    if not passed and not failing_items.strip():
        raise InvalidInput("a failing result names its failing items (--items)")
    number = resolve(number_or_code)
    with session_scope() as session:
        ctx = SampleContext(session, get_case(session, number=number))
        row = ctx.row
        require_head(
            session, by, ctx.tree, ctx.case.authority_code, subject=number, action=f"correct {number}", now=now
        )
        if row.result is None:
            raise StepConflict(f"{number} has no final result to correct")
        new = "pass" if passed else "fail"
        change = {
            "at": now.isoformat(),
            "by": by,
            "reason": reason.strip(),
            "from": row.result,
            "to": new,
            "failing_items": failing_items.strip(),
        }
        row.result, row.corrections = new, [*row.corrections, change]
        if row.retest_passed is not None:
            row.retest_passed, row.retest_failing_items = passed, failing_items.strip()
        else:
            row.passed, row.failing_items = passed, failing_items.strip()
        session.add(row)
        if row.published is not None:
            ctx.add(f"republication-{len(row.corrections)}", now, rule="sample.publication")
        ctx.notify(
            f"corrected-{len(row.corrections)}",
            ("抽查结果更正", "Result corrected"),
            by=by,
            now=now,
            text=reason.strip(),
            tags=ctx.recipients(("upward",)),
        )
        audit.record(
            session,
            at=now,
            actor=by,
            action="sample.corrected",
            subject=number,
            **{k: v for k, v in change.items() if k not in ("at", "by")},
        )
        return number


# --- one publication (一公开) ---------------------------------------------------------------


def publish(key: str, *, by: str, now: dt.datetime) -> dict[str, Any]:
    """Publish every final result not yet public (and every correction) on the public
    page and feeds, file the publication as a document, tell the superior authority,
    and meet each sample's publication deadline."""
    with session_scope() as session:
        campaign = _campaign(session, key)
        from storage.authorities import load_tree

        tree = load_tree(session)
        require_head(
            session, by, tree, campaign.authority_code, subject=_subject(key), action=f"publish campaign {key}", now=now
        )
        rows = samples_of(session, campaign.key)
        changed = []
        for row in rows:
            if row.result is None:
                continue
            public = _public(row)
            if public != row.published:
                changed.append(row.number)
                row.published, row.published_at = public, now
                session.add(row)
                ctx = SampleContext(session, get_case(session, number=row.number))
                for d in deadline_rows.deadlines_for(session, subject=row.number):
                    if d.status == "open" and d.name.startswith(("publication", "republication")):
                        ctx.close(d.name, now)
        if not changed:
            raise StepConflict(f"campaign {key}: no final result is waiting to be published")
        campaign.publications += 1
        session.add(campaign)
        published = [r.published for r in rows if r.published is not None]
        document = render(
            "documents/spot-check-results.md.j2",
            campaign=campaign,
            rows=published,
            by=by,
            at=now,
            n=campaign.publications,
            changed=changed,
            words=RESULT_WORDS,
        )
        session.add(
            Report(
                subject=_subject(key),
                kind="publication",
                step=f"publication-{campaign.publications}",
                author=by,
                text="",
                document=document,
                submitted_at=now,
            )
        )
        superior = tree.chain_up(campaign.authority_code)[:1]
        tags = [f"{campaign.authority_code}.duty", f"{campaign.authority_code}.public"]
        tags += [f"{a.code}.duty" for a in superior]
        from tasks.notify import queue

        queue(
            session,
            number=_subject(key),
            key=f"published-{campaign.publications}",
            tags=tags,
            template="campaign_published",
            now=now,
            subject=None,
            campaign=campaign,
            by=by,
            at=now,
            rows=published,
            changed=changed,
            words=RESULT_WORDS,
        )
        audit.record(
            session,
            at=now,
            actor=by,
            action="campaign.published",
            subject=_subject(key),
            n=campaign.publications,
            samples=changed,
        )
        files = write_public(campaign.key, campaign.name, published, now)
        return {
            "campaign": key,
            "publication": campaign.publications,
            "published": changed,
            "files": [str(f) for f in files],
            "document": document,
            "run": campaign.flow_run_id,
        }


def _public(row: SpotSample) -> dict[str, Any]:
    tz = get_settings().timezone
    lab = row.retest_lab or row.lab
    items = row.retest_failing_items if row.retest_passed is not None else row.failing_items
    return public_row(
        {
            "campaign": row.campaign_key,
            "number": row.number,
            "category": row.category,
            "enterprise": row.enterprise,
            "uscc": row.uscc,
            "product": row.product,
            "model": row.model,
            "batch": row.batch,
            "result": row.result,
            "failing_items": items if row.result == "fail" else "",
            "lab": lab,
            "final_on": pendulum.instance(row.final_at).in_timezone(tz).date().isoformat(),
            "corrected": bool(row.corrections),
        }
    )


def write_public(key: str, name: str, rows: list[dict[str, Any]], now: dt.datetime) -> list[Path]:
    """The public page (HTML, every field escaped), and the feeds (JSON, CSV)."""
    page = public_page("spot-checks.html.j2", key=key, name=name, rows=rows, at=local_time(now), words=RESULT_WORDS)
    feed = {"campaign": key, "name": name, "published_at": now.isoformat(), "results": rows}
    files = {"html": page, "json": json.dumps(feed, ensure_ascii=False, indent=2), "csv": feed_csv(rows)}
    return render_public("spot-checks", key, files)


# --- what supervisors see -------------------------------------------------------------------


def progress(key: str, *, now: dt.datetime) -> dict[str, Any]:
    """By category: drawn, sampled, tested, objected, failed, published; and the samples
    with a deadline overdue."""
    with session_scope() as session:
        campaign = _campaign(session, key)
        rows = samples_of(session, campaign.key)
        by_category: dict[str, dict[str, int]] = {}
        late = []
        for row in rows:
            c = by_category.setdefault(
                row.category, dict.fromkeys(("drawn", "sampled", "tested", "objected", "failed", "published"), 0)
            )
            c["drawn"] += 1
            c["sampled"] += row.blind_code is not None
            c["tested"] += row.passed is not None
            c["objected"] += row.retest_lab != "" or _objected(session, row.number)
            c["failed"] += row.result == "fail"
            c["published"] += row.published is not None
            for d in deadline_rows.deadlines_for(session, subject=row.number):
                if d.status == "open" and d.due_at < now:
                    late.append(
                        {
                            "number": row.number,
                            "category": row.category,
                            "deadline": d.name,
                            "authority": d.authority,
                            "due_at": d.due_at,
                        }
                    )
        drawn = len(campaign.samples or [])
        return {
            "campaign": campaign.key,
            "name": campaign.name,
            "status": campaign.status,
            "drawn": drawn,
            "created": len(rows),
            "by_category": by_category,
            "late": late,
            "publications": campaign.publications,
            "flow_run_id": campaign.flow_run_id,
        }


def _objected(session: Session, number: str) -> bool:
    from storage.steps import get_step

    step = get_step(session, subject=number, name="objection")
    return bool(step and step.status == "answered" and (step.answer or {}).get("objected"))


def progress_artifacts(key: str, *, now: dt.datetime) -> list[dict[str, Any]]:
    data = progress(key, now=now)
    at = local_time(now)
    table = [
        {"类别 category": c, **{k: str(v) for k, v in counts.items()}} for c, counts in data["by_category"].items()
    ]
    done = sum(c["published"] for c in data["by_category"].values())
    late = [
        {
            "样品 sample": x["number"],
            "类别 category": x["category"],
            "时限 deadline": machine.label(x["deadline"]),
            "承办 owed by": x["authority"],
            "截止 due": local_time(x["due_at"]),
        }
        for x in data["late"]
    ]
    k = f"campaign-{key}"
    return [
        dict(
            key=f"{k}-progress",
            type="table",
            data=json.dumps(table or [{"类别 category": "尚未生成样品 no samples"}], ensure_ascii=False),
            description=f"{key} 抽查进度 / progress by category, {at}",
        ),
        dict(
            key=f"{k}-late",
            type="table",
            data=json.dumps(late or [{"样品 sample": "无逾期 / none late"}], ensure_ascii=False),
            description=f"{key} 逾期样品 / late samples, {at}",
        ),
        dict(
            key=f"{k}-published",
            type="progress",
            data=round(100 * done / data["drawn"], 1) if data["drawn"] else 0.0,
            description=f"{key}: {done}/{data['drawn']} 已公示 / published",
        ),
    ]


def publish_progress(key: str, *, now: dt.datetime) -> int:
    """The campaign's progress artifacts on its run, updated in place; 0 without a run."""
    from tasks.events import prefect_configured
    from tasks.runs import write_artifacts

    with session_scope() as session:
        run_id = _campaign(session, key).flow_run_id
    if run_id is None or not prefect_configured():
        return 0
    artifacts = progress_artifacts(key, now=now)
    write_artifacts(run_id, artifacts)
    return len(artifacts)


def campaign_of(number: str) -> str | None:
    with session_scope() as session:
        row = sample_by_number(session, number)
        return row.campaign_key if row else None


def _campaign(session: Session, key: str) -> Campaign:
    campaign = get_campaign(session, key=key)
    if campaign is None:
        raise NotFound(f"no campaign {key!r} (list them with `regflow campaign list`)")
    return campaign


def _subject(key: str) -> str:
    return f"CAMPAIGN-{key}"
