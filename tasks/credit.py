"""Credit supervision on the lifecycle engine: penalties published (SAMR Order 45), the
serious-violation list (Order 44), referrals to partner departments for joint
discipline, an enterprise's credit record, and the public page and feeds.

A publication subject (PUB-…) is opened by the case's penalty decision
(`tasks.cases._open_publication`); everything after it is here: publishing (or
pushing to the province where the party is registered), the period that ends it by
a scheduled run, withdrawal when the decision falls, and early end on the party's
application where the rules allow it. A listing (SVL-…) is proposed from a decided
case, approved (above a county or city bureau), noticed to the party, decided,
published, and removed on expiry or early on application. Each publication of a
major penalty and each listing is referred (REF-…) to the partner departments that
take it, who owe an acknowledgement and then their measures.

What the public sees (public/credit/) holds current publications and listings only;
withdrawn, ended and removed ones stay on record here, never on the page.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pendulum
from sqlmodel import Session, select

from kernel.errors import InvalidInput, NotFound, StepConflict
from kernel.identity import person_digest
from kernel.settings import get_settings
from rules import cases as machine
from rules import credit as rules
from rules.durations import Due, Period
from rules.files import csv_feed, current
from rules.registers import valid_uscc
from rules.statutes import LoadedRules
from storage import audit
from storage import deadlines as deadline_rows
from storage.authorities import Authority
from storage.cases import Case, get_case
from storage.credit import Listing, Publication, Referral, by_number, of_party, rows
from storage.db import session_scope
from storage.deadlines import Deadline
from storage.incidents import next_number
from tasks import lifecycle as engine
from tasks.board import under
from tasks.cases import CaseContext, Cases, finish
from tasks.lifecycle import Answered, Given
from tasks.render import local_time, public_page, write_public

OWN_LIMIT = "本局设定"  # a limit no text was found to set


def credit_rules() -> rules.CreditRules:
    return current(rules.load_credit_rules, get_settings().credit_rules)


def partners() -> rules.Partners:
    return current(rules.load_partners, get_settings().partners_file)


class CreditContext(CaseContext):
    """A publication's, listing's or referral's context: statutory periods from the
    rule file; the limits no text sets from the conditions file (or, for a referral,
    the partner's), each saying it is the authority's own."""

    table: type | None = None

    def __init__(self, session: Session, case: Case, rules_: LoadedRules | None = None) -> None:
        super().__init__(session, case, rules_)
        self.row = by_number(session, self.table, case.number) if self.table else None

    def due(self, name: str, start: dt.datetime, rule: str | None = None) -> Due:
        stem, _, n = name.rpartition("-")
        own = credit_rules().own_limits.get(stem if n.isdigit() else name)  # publication-review-2: the stem's
        if rule is None and machine.rule_of(name) is None and own is not None:
            return self.due_in(start, own.period, f"{machine.label(name)}（{OWN_LIMIT}：{own.why}）")
        return super().due(name, start, rule)


class PublicationContext(CreditContext):
    table = Publication


class ListingContext(CreditContext):
    table = Listing


class ReferralContext(CreditContext):
    table = Referral

    def due(self, name: str, start: dt.datetime, rule: str | None = None) -> Due:
        if name in ("referral-ack", "referral-feedback") and rule is None:
            period = self.row.ack_within if name == "referral-ack" else self.row.feedback_within
            return self.due_in(start, period, f"{machine.label(name)}（{OWN_LIMIT}：{self.row.department}）")
        return super().due(name, start, rule)


class Publications(Cases):
    kinds = ("publication",)

    def context(self, session: Session, subject: Case) -> PublicationContext:
        return PublicationContext(session, subject)


class Listings(Cases):
    kinds = ("listing",)

    def context(self, session: Session, subject: Case) -> ListingContext:
        return ListingContext(session, subject)


class Referrals(Cases):
    kinds = ("referral",)

    def context(self, session: Session, subject: Case) -> ReferralContext:
        return ReferralContext(session, subject)


def _subject(session: Session, number: str, kind: str, what: str, command: str) -> Case:
    case = get_case(session, number=number)
    if case is None or case.kind != kind:
        raise NotFound(f"no {what} {number.strip()!r} (list them with `regflow {command} list`)")
    return case


def _refused(by: str, number: str, action: str, why: str, now: dt.datetime) -> InvalidInput:
    """A request the rules forbid: on record (in its own transaction, since the caller's
    rolls back), and the one-line error to raise."""
    with session_scope() as session:
        audit.record(session, at=now, actor=by, action=f"{action}.refused", subject=number, reason=why)
    return InvalidInput(why)


def _period(ctx: CreditContext, start: dt.datetime, rule: str) -> Due:
    """A period from the rule file (with the authority's overrides), counted in months."""
    limit = ctx.rules.rules.limit(rule)
    return rules.period_end(start, limit.period, tz=get_settings().timezone, label=f"{limit.label}（{limit.source}）")


def _local_day(value: dt.datetime) -> dt.date:
    return pendulum.instance(value).in_timezone(get_settings().timezone).date()


# --- publishing a penalty ------------------------------------------------------------------


def _published(ctx: PublicationContext, given: Given) -> None:
    """Published (or pushed to the registering province, which publishes it): its
    period starts (Art. 13), the public page changes, a major penalty is referred."""
    row, case, now, limits = ctx.row, ctx.case, given.now, credit_rules()
    if row.party_kind != "person" and not row.uscc:
        if not given.form.uscc:
            raise InvalidInput("the party's unified social credit code is needed to publish (--uscc)")
        try:
            row.uscc = case.party_uscc = valid_uscc(given.form.uscc)
        except ValueError as exc:
            raise InvalidInput(f"uscc: {exc}") from None
    short = rules.short_period(row.measures, row.fine, row.party_kind, limits)
    rule = "publication.period_short" if short else "publication.period"
    period = _period(ctx, now, rule)
    row.period = ctx.rules.rules.limit(rule).period
    longer = row.restriction_months or 0
    if longer > Period.parse(row.period).amount and set(row.measures) & {"restrict", "ban"}:
        # Art. 13 para. 3: a restriction longer than three years is published while it lasts.
        row.period = f"{longer}mo"
        period = rules.period_end(
            now,
            row.period,
            tz=get_settings().timezone,
            label="公示期（限制期限超过三年，按实际限制期限，《市场监督管理行政处罚信息公示规定》第十三条第三款）",
        )
    row.state, row.published_at, row.ends_at = "published", now, period.at
    row.ends_early = rules.early_end_refusal(row.measures, short, listed=False) is None
    ctx.session.add(row)
    # The small-fine line is the province's (Art. 13 para. 2): one not confirmed is shown so.
    small_line = None
    if short and row.fine is not None and not limits.small_fine_confirmed:
        small_line = f"较低数额罚款标准未核实：{limits.small_fine_source}"
    push_to = case.facts.get("push_to")
    if push_to:
        ctx.tell(
            given,
            "pushed",
            ("行政处罚信息推送：请协助公示", "Penalty pushed: please publish it"),
            text=f"{row.party}：{row.matter}（{case.number}，{given.form.where}）",
            tags=ctx.desk(push_to),
        )
    ctx.record(
        "publication",
        given,
        deadline=given.met,
        fields=[
            ("渠道 Where", given.form.where),
            ("推送至 Pushed to", push_to),
            ("公示期 Period", period.rule),
            ("较低数额罚款 Small fine", small_line),
            ("公示内容 Content", json.dumps(public_publication(ctx.session, row), ensure_ascii=False)),
        ],
    )
    case.stage = "published"
    ctx.session.add(case)
    if _major(row, limits):
        refer(ctx, "major_penalty", by=given.by, now=now)
    ctx.session.flush()
    publish_credit(ctx.session, now=now)


def _major(row: Publication, limits: rules.CreditRules) -> bool:
    return any(m in rules.HEAVIER for m in row.measures) or (row.fine is not None and row.fine >= limits.major_fine)


def withdraw(number: str, *, reason: str, fell_on: dt.date, by: str, text: str, now: dt.datetime) -> Publication:
    """The decision was changed, revoked or confirmed illegal or invalid: the
    publication is withdrawn within 3 working days of that (Order 45 Art. 11; the
    procedure rules' Art. 63), a listing resting on a decision that fell entirely
    revoked (Order 44 Art. 19), and the partners told to end their measures."""
    if reason not in rules.REMOVALS:
        raise InvalidInput(f"reason: one of {', '.join(rules.REMOVALS)}")
    with session_scope() as session:
        row = by_number(session, Publication, number, lock=True)
        case = _subject(session, number, "publication", "publication", "publication")
        ctx = PublicationContext(session, case)
        ctx.require(by, "withdraw a publication", now=now, roles=("handler", "head"))
        if row.state not in ("pending", "published"):
            raise StepConflict(f"{case.number} is {row.state} already")
        start = engine.not_future(fell_on, "fell_on", now)
        deadline = ctx.add("publication-withdrawal", start, rule="case.withdraw_publication")
        ctx.close(deadline.name, now)
        row.state, row.ended_at, row.end_reason = "withdrawn", now, reason
        session.add(row)
        finish(ctx, "withdrawn", now=now, by=by, keep=())
        ctx.notify(
            "withdrawn",
            ("撤回行政处罚公示信息", "Publication withdrawn"),
            by=by,
            now=now,
            text=f"{rules.REMOVALS[reason]}（{fell_on}）。{text}".strip(),
            tags=ctx.desk() + (ctx.desk(case.facts["push_to"]) if case.facts.get("push_to") else []),
        )
        audit.record(
            session,
            at=now,
            actor=by,
            action="publication.withdrawn",
            subject=case.number,
            reason=reason,
            fell_on=str(fell_on),
            late=deadline.closed_at > deadline.due_at,
        )
        _end_referrals(session, case.number, "撤回行政处罚公示信息，请停止相应惩戒措施", by=by, now=now)
        if reason != "changed":  # Art. 19: the penalty revoked or confirmed illegal or invalid
            for listing in rows(session, Listing, case=row.case):
                if listing.state in ("proposed", "listed"):
                    _unlist(session, listing, how="revoked", by=by, now=now, start=start)
    refresh_public(now)
    return row


def expire(number: str, *, now: dt.datetime) -> str:
    """The scheduled end of a publication's period or a listing's: it leaves the public
    page (and stays on record). Idempotent; early, it ends nothing."""
    with session_scope() as session:
        case = get_case(session, number=number)
        if case is None or case.kind not in ("publication", "listing"):
            raise NotFound(f"no publication or listing {number.strip()!r}")
        table = Publication if case.kind == "publication" else Listing
        row = by_number(session, table, case.number, lock=True)
        ends = row.ends_at if table is Publication else row.expires_at
        if not row.current:
            return f"{case.number} is {row.state}"
        if ends is None or now < ends:
            return f"{case.number} ends at {local_time(ends)}" if ends else f"{case.number} is not published"
        if table is Publication:
            ctx = PublicationContext(session, case)
            row.state, row.ended_at, row.end_reason = "ended", now, "expired"
            session.add(row)
            finish(ctx, "expired", now=now, by="regflow", keep=())
            ctx.notify("expired", ("公示期满，停止公示", "Publication period ended"), by="regflow", now=now)
            audit.record(session, at=now, actor="regflow", action="publication.expired", subject=case.number)
            _end_referrals(session, case.number, "公示期满，停止公示", by="regflow", now=now)
        else:
            _unlist(session, row, how="expired", by="regflow", now=now)
    refresh_public(now)
    return f"{row.number} ended"


def apply_end(number: str, *, by: str, text: str, now: dt.datetime) -> Deadline:
    """The party applies to end the publication early (credit repair): refused where
    Order 45 Art. 14 para. 3 forbids it, for a short period (it simply expires), while
    the party is listed, or before the waiting period (信用修复管理办法 Art. 6); else
    the authority verifies the conditions within its limit and the head decides."""

    def refusal(session: Session, ctx: CreditContext, row: Publication) -> str | None:
        short = rules.short_period(row.measures, row.fine, row.party_kind, credit_rules())
        why = rules.early_end_refusal(row.measures, short, listed=_listed(session, row.uscc))
        sensitive = row.sector in credit_rules().sensitive_sectors
        wait = "publication.repair_after_sensitive" if sensitive else "publication.repair_after"
        return why or _too_soon(ctx, row.published_at, wait, now)

    return _application(PublicationContext, number, "publication", refusal, by=by, text=text, now=now)


def end_early(number: str, *, grant: bool, by: str, text: str, now: dt.datetime) -> Publication:
    """The head decides on a verified application: granted, the publication ends now."""
    with session_scope() as session:
        row = by_number(session, Publication, number, lock=True)
        case = _subject(session, number, "publication", "publication", "publication")
        ctx = PublicationContext(session, case)
        ctx.require(by, "decide on ending a publication early", now=now, roles=("head",))
        if row.state != "published" or row.applied_at is None:
            ends = f"; it ends by itself at {local_time(row.ends_at)}" if row.ends_at and row.current else ""
            raise StepConflict(f"{case.number}: no application to end it early is pending{ends}")
        ctx.close(case.facts["application"], now)
        row.applied_at = None
        if grant:
            row.state, row.ended_at, row.end_reason = "ended", now, "early"
            finish(ctx, "ended_early", now=now, by=by, keep=())
            _end_referrals(session, case.number, "准予提前停止公示（信用修复），请停止相应惩戒措施", by=by, now=now)
        session.add(row)
        ctx.notify(
            f"end-early:{now.isoformat()}",
            (
                "准予提前停止公示" if grant else "不予提前停止公示",
                "Early end granted" if grant else "Early end refused",
            ),
            by=by,
            now=now,
            text=text,
        )
        audit.record(
            session, at=now, actor=by, action="publication.early_end_decided", subject=case.number, granted=grant
        )
    refresh_public(now)
    return row


Publications.handlers = {"publication": _published}
PUBLICATIONS = Publications()


# --- the serious-violation list --------------------------------------------------------------


def _listed(session: Session, uscc: str) -> bool:
    return bool(uscc) and any(r.current for r in of_party(session, Listing, uscc=uscc))


def propose(case_number: str, *, criterion: str, by: str, text: str, now: dt.datetime) -> Case:
    """A listing proposed from a case decided with a heavier penalty (Order 44 Art. 2)
    in one of the fields of Arts. 5-10; its approval is owed by the head of the bureau
    above a county or city bureau."""
    limits = credit_rules()
    if criterion not in limits.criteria:
        raise InvalidInput(f"criterion: one of {', '.join(limits.criteria)}")
    with session_scope() as session:
        case = get_case(session, number=case_number)
        if case is None or case.kind != "case":
            raise NotFound(f"no case {case_number.strip()!r}")
        publication = by_number(session, Publication, case.facts.get("publication", ""))
        if publication is None or publication.state not in ("pending", "published"):
            raise StepConflict(f"{case.number} has no penalty decision in force to list it on")
        if not rules.heavier(publication.measures, publication.heavier_fine):
            raise InvalidInput(
                f"{case.number}: 《严重违法失信名单管理办法》第二条 needs a heavier penalty (从重罚款, 降低资质等级, "
                "吊销许可证件或营业执照, 限制生产经营, 责令停产停业或关闭, 限制从业)"
            )
        if publication.party_kind == "person":
            raise InvalidInput("the serious-violation list is of market entities; the party is a natural person")
        if any(r.state in ("proposed", "listed") for r in rows(session, Listing, case=case.number)):
            raise StepConflict(f"{case.number} is proposed or listed already")
        CaseContext(session, case).require(by, "propose a listing", now=now, roles=("handler", "head"))
        local = pendulum.instance(now).in_timezone(get_settings().timezone)
        number = machine.case_number(local.year, next_number(session, name=f"SVL-{local.year}"), "listing")
        subject = Case(
            number=number,
            kind="listing",
            title=f"列入严重违法失信名单：{case.party}"[:200],
            party=case.party,
            party_uscc=publication.uscc or None,
            source="credit",
            detail=text,
            authority_code=case.authority_code,
            linked_to=case.number,
            received_at=now,
            stage="listing-approval",
            rules_hash=case.rules_hash,
            facts={"case": case.number, "criterion": criterion},
        )
        session.add(subject)
        session.add(
            Listing(
                number=number,
                case=case.number,
                authority_code=case.authority_code,
                party=case.party,
                uscc=publication.uscc,
                criterion=criterion,
            )
        )
        session.flush()
        ctx = ListingContext(session, subject)
        approver = engine.acting(ctx.tree, case.authority_code, rules.LISTING.step("listing-approval"))[0]
        deadline = ctx.add("listing-approval", now, authority=approver)
        ctx.notify(
            "proposed",
            ("拟列入严重违法失信名单，待审批", "Listing proposed"),
            by=by,
            now=now,
            text=f"{limits.criteria[criterion].article} {limits.criteria[criterion].zh}\n{text}".strip(),
            next_deadline=deadline,
            tags=ctx.desk() + ctx.desk(approver),
        )
        audit.record(
            session, at=now, actor=by, action="listing.proposed", subject=number, case=case.number, criterion=criterion
        )
        case.facts = {**case.facts, "listing": number}
        session.add(case)
        return subject


def _approved(ctx: ListingContext, given: Given) -> None:
    ctx.record(
        "approval", given, deadline=given.met, fields=[("审批 Approved", "同意" if given.data["approve"] else "不同意")]
    )
    if not given.data["approve"]:
        ctx.row.state = "refused"
        ctx.session.add(ctx.row)
        finish(ctx, "refused", now=given.now, by=given.by, keep=())


def _noticed(ctx: ListingContext, given: Given) -> None:
    """The party may state its case or ask for a hearing until the window ends."""
    served = engine.not_future(given.form.served_on, "served_on", given.now)
    window = ctx.due("listing-statement", served)
    ctx.case.facts = {**ctx.case.facts, "statement_until": window.at.isoformat()}
    ctx.session.add(ctx.case)
    ctx.record("notice", given, deadline=given.met, fields=[("陈述申辩期 Statement until", window.rule)])


def _listing_decided(ctx: ListingContext, given: Given) -> None:
    until = dt.datetime.fromisoformat(ctx.case.facts["statement_until"])
    if given.form.party_answer == "none" and given.now < until:
        raise InvalidInput(
            f"the party may state its case until {local_time(until)}; decide after it, or record its answer"
        )
    ctx.record(
        "decision",
        given,
        deadline=given.met,
        fields=[("列入 Listed", "是" if given.form.list else "否"), ("当事人意见 Party", given.form.party_answer)],
    )
    if not given.form.list:
        ctx.row.state = "refused"
        ctx.session.add(ctx.row)
        finish(ctx, "not_listed", now=given.now, by=given.by, keep=())


def _listing_published(ctx: ListingContext, given: Given) -> None:
    row, now = ctx.row, given.now
    period = _period(ctx, now, "listing.period")
    row.state, row.listed_at, row.expires_at = "listed", now, period.at
    ctx.session.add(row)
    ctx.record(
        "publication",
        given,
        deadline=given.met,
        fields=[("渠道 Where", given.form.where), ("列入期限 Period", period.rule)],
    )
    ctx.case.stage = "listed"
    ctx.session.add(ctx.case)
    refer(ctx, "listing", by=given.by, now=now)
    ctx.session.flush()
    publish_credit(ctx.session, now=now)


def apply_removal(number: str, *, by: str, text: str, now: dt.datetime) -> Deadline:
    """The party applies for early removal: only after the minimum period listed; then
    verified within the authority's limit and decided by the head."""

    def refusal(session: Session, ctx: CreditContext, row: Listing) -> str | None:
        return _too_soon(ctx, row.listed_at, "listing.removal_after", now)

    return _application(ListingContext, number, "listing", refusal, by=by, text=text, now=now)


# What an application is, by the kind of subject: its state, its action, the deadline to
# verify it, the heading of its message.
_APPLICATIONS = {
    "publication": (
        "published",
        "publication.early_end",
        "publication-review",
        ("当事人申请提前停止公示，请核实", "Early end asked: verify"),
    ),
    "listing": (
        "listed",
        "listing.early_removal",
        "listing-removal",
        ("当事人申请提前移出，请核实", "Early removal asked: verify"),
    ),
}


def _application(
    context: type[CreditContext], number: str, kind: str, refusal, *, by: str, text: str, now: dt.datetime
) -> Deadline:
    """A party's application recorded by the handler: refused in one line and on record
    where `refusal` says why, else verified within its deadline."""
    state, action, verify, heading = _APPLICATIONS[kind]
    with session_scope() as session:
        case = _subject(session, number, kind, kind, "serious-list" if kind == "listing" else kind)
        ctx = context(session, case)
        ctx.require(by, f"record an application ({action})", now=now, roles=("handler",))
        row = ctx.row
        if row.state != state:
            raise StepConflict(f"{case.number} is {row.state}, not {state}")
        if row.applied_at is not None:
            raise StepConflict(f"{case.number}: an application is being verified since {local_time(row.applied_at)}")
        why = refusal(session, ctx, row)
    if why is not None:
        raise _refused(by, case.number, action, why, now)
    with session_scope() as session:
        row = by_number(session, context.table, number, lock=True)
        if row.state != state or row.applied_at is not None:  # changed in between: say so, as above
            raise StepConflict(f"{row.number} changed meanwhile ({row.state}); look at it again")
        ctx = context(session, get_case(session, number=number))
        row.applied_at = now
        session.add(row)
        n = ctx.case.facts.get("applications", 0) + 1  # each application verified by its own deadline
        deadline = ctx.add(f"{verify}-{n}", now)
        ctx.case.facts = {**ctx.case.facts, "applications": n, "application": deadline.name}
        session.add(ctx.case)
        ctx.notify(f"applied:{now.isoformat()}", heading, by=by, now=now, text=text, next_deadline=deadline)
        audit.record(session, at=now, actor=by, action=f"{action}_asked", subject=ctx.number)
        return deadline


def _too_soon(ctx: CreditContext, start: dt.datetime, rule: str, now: dt.datetime) -> str | None:
    wait = _period(ctx, start, rule)
    return f"{wait.rule}：{local_time(wait.at)[:10]} 之后方可申请" if now < wait.at else None


def remove(number: str, *, grant: bool, by: str, text: str, now: dt.datetime) -> Listing:
    """The head decides on a verified application; granted, the party leaves the list
    now, the removal is published and the partners told."""
    with session_scope() as session:
        row = by_number(session, Listing, number, lock=True)
        case = _subject(session, number, "listing", "listing", "serious-list")
        ctx = ListingContext(session, case)
        ctx.require(by, "decide on an early removal", now=now, roles=("head",))
        if row.state != "listed" or row.applied_at is None:
            ends = f"; it ends by itself at {local_time(row.expires_at)}" if row.expires_at and row.current else ""
            raise StepConflict(f"{case.number}: no application for early removal is pending{ends}")
        ctx.close(case.facts["application"], now)
        row.applied_at = None
        session.add(row)
        if grant:
            _unlist(session, row, how="early", by=by, now=now)
        else:
            ctx.notify(
                f"removal:{now.isoformat()}", ("不予提前移出", "Early removal refused"), by=by, now=now, text=text
            )
        audit.record(
            session, at=now, actor=by, action="listing.early_removal_decided", subject=case.number, granted=grant
        )
    refresh_public(now)
    return row


def _unlist(
    session: Session, row: Listing, *, how: str, by: str, now: dt.datetime, start: dt.datetime | None = None
) -> None:
    """Off the list (its period over, early, or revoked with the penalty it rests on):
    the partners that took it are told, so their measures end too."""
    case = get_case(session, number=row.number)
    ctx = ListingContext(session, case)
    if how == "revoked":
        ctx.close(ctx.add("listing-withdrawal", start or now, rule="listing.withdraw").name, now)
    row.state, row.removed_at, row.removal = "removed", now, how
    session.add(row)
    finish(ctx, f"removed_{how}", now=now, by=by, keep=())
    heading = {
        "expired": "列入期满，移出严重违法失信名单",
        "early": "提前移出严重违法失信名单",
        "revoked": "撤销列入严重违法失信名单",
    }[how]
    ctx.notify(f"removed:{how}", (heading, "Removed from the list"), by=by, now=now)
    audit.record(session, at=now, actor=by, action="listing.removed", subject=row.number, how=how)
    _end_referrals(session, row.number, f"{heading}，请解除相应惩戒措施", by=by, now=now)


Listings.handlers = {
    "listing-approval": _approved,
    "listing-notice": _noticed,
    "listing-decision": _listing_decided,
    "listing-publication": _listing_published,
}
LISTINGS = Listings()


# --- referrals to partner departments ---------------------------------------------------------


def refer(ctx: CreditContext, event: str, *, by: str, now: dt.datetime) -> list[str]:
    """A referral (REF-…) to each partner that takes `event` in the subject's region:
    told by its channel, owing an acknowledgement and then its measures."""
    subject, row = ctx.case, ctx.row
    chain = [subject.authority_code] + [a.code for a in ctx.tree.chain_up(subject.authority_code)]
    made = []
    for partner in partners().for_event(event, chain):
        local = pendulum.instance(now).in_timezone(get_settings().timezone)
        number = machine.case_number(local.year, next_number(ctx.session, name=f"REF-{local.year}"), "referral")
        what = "严重违法失信名单" if event == "listing" else "重大行政处罚"
        referral = Case(
            number=number,
            kind="referral",
            title=f"联合惩戒：{what} {subject.party}"[:200],
            party=subject.party,
            party_uscc=subject.party_uscc,
            source="credit",
            detail="",
            authority_code=subject.authority_code,
            linked_to=subject.number,
            received_at=now,
            stage="referral-ack",
            rules_hash=subject.rules_hash,
            facts={"about": subject.number, "partner": partner.key, "event": event},
        )
        ctx.session.add(referral)
        ctx.session.add(
            Referral(
                number=number,
                about=subject.number,
                partner=partner.key,
                department=partner.department,
                channel=partner.channel,
                ack_within=partner.ack_within,
                feedback_within=partner.feedback_within,
                uscc=row.uscc,
                party=subject.party,
            )
        )
        ctx.session.flush()
        rctx = ReferralContext(ctx.session, referral)
        deadline = rctx.add("referral-ack", now)
        rctx.notify(
            "referred",
            (f"联合惩戒推送：{what}", "Referred for joint discipline"),
            by=by,
            now=now,
            text=f"{subject.party}（{row.uscc or '自然人'}）：{subject.number}。请确认接收并反馈采取的惩戒措施。",
            next_deadline=deadline,
            tags=[partner.channel] + rctx.desk(),
        )
        audit.record(
            ctx.session,
            at=now,
            actor=by,
            action="referral.sent",
            subject=number,
            about=subject.number,
            partner=partner.key,
        )
        made.append(number)
    if made:
        subject.facts = {**subject.facts, "referrals": [*subject.facts.get("referrals", []), *made]}
        ctx.session.add(subject)
    return made


def _end_referrals(session: Session, about: str, heading: str, *, by: str, now: dt.datetime) -> list[str]:
    """What was referred is withdrawn, ended or removed: each partner is told by its
    channel to end its measures; a referral still awaiting acknowledgement or feedback
    ends with it (its deadlines cancelled)."""
    ended = []
    for referral in rows(session, Referral, about=about):
        subject = get_case(session, number=referral.number)
        rctx = ReferralContext(session, subject)
        rctx.notify(
            f"ended:{about}",
            (heading, "Referred matter ended"),
            by=by,
            now=now,
            text=f"{referral.party}：{about}",
            tags=[referral.channel] + rctx.desk(),
        )
        if subject.is_open:
            finish(rctx, "withdrawn", now=now, by=by, keep=())
            ended.append(referral.number)
    return ended


def _acked(ctx: ReferralContext, given: Given) -> None:
    ctx.row.acknowledged_at = given.now
    ctx.session.add(ctx.row)


def _fed_back(ctx: ReferralContext, given: Given) -> None:
    ctx.row.measures, ctx.row.feedback_at = given.form.measures, given.now
    ctx.session.add(ctx.row)
    ctx.record(
        "feedback",
        given,
        deadline=given.met,
        fields=[("协同部门 Partner", ctx.row.department), ("惩戒措施 Measures", given.form.measures)],
    )
    finish(ctx, "feedback", now=given.now, by=given.by, keep=())


Referrals.handlers = {"referral-ack": _acked, "referral-feedback": _fed_back}
REFERRALS = Referrals()
KINDS = {"PUB-": PUBLICATIONS, "SVL-": LISTINGS, "REF-": REFERRALS}


def _kind(number: str):
    kind = KINDS.get(number.strip().upper()[:4])
    if kind is None:
        raise NotFound(f"no publication, listing or referral {number.strip()!r}")
    return kind


def answer(number: str, *, step: str, answer: dict[str, Any], source: str, now: dt.datetime) -> Answered:
    return engine.answer(_kind(number), number.strip().upper(), step=step, answer=answer, source=source, now=now)


def open_step(number: str, name: str, *, now: dt.datetime):
    return engine.open_step(_kind(number), number.strip().upper(), name, now=now)


# --- what the public sees -----------------------------------------------------------------------

PUBLICATION_FIELDS = (
    "number",
    "party",
    "party_kind",
    "uscc",
    "matter",
    "penalties",
    "fine",
    "authority",
    "decided_on",
    "published_on",
    "ends_on",
)
LISTING_FIELDS = ("number", "party", "uscc", "field", "article", "authority", "listed_on", "expires_on")


def _authority_name(session: Session, code: str) -> str:
    authority = session.get(Authority, code)
    return authority.name if authority else code


def public_publication(session: Session, row: Publication) -> dict[str, Any]:
    """What Order 45 Art. 4's summary holds of a publication: never a person's number
    (only the name of a natural person), nothing of the case file beyond it."""
    return {
        "number": row.number,
        "party": row.party,
        "party_kind": rules.PARTY_KINDS[row.party_kind],
        "uscc": row.uscc if row.party_kind != "person" else "",
        "matter": row.matter,
        "penalties": "、".join(rules.MEASURES[m] for m in row.measures),
        "fine": f"{row.fine}" if row.fine is not None else "",
        "authority": _authority_name(session, row.authority_code),
        "decided_on": row.decided_on.isoformat(),
        "published_on": _local_day(row.published_at).isoformat() if row.published_at else "",
        "ends_on": _local_day(row.ends_at).isoformat() if row.ends_at else "",
    }


def public_listing(session: Session, row: Listing) -> dict[str, Any]:
    criterion = credit_rules().criteria.get(row.criterion)
    return {
        "number": row.number,
        "party": row.party,
        "uscc": row.uscc,
        "field": criterion.zh if criterion else row.criterion,
        "article": criterion.cited if criterion else "",
        "authority": _authority_name(session, row.authority_code),
        "listed_on": _local_day(row.listed_at).isoformat() if row.listed_at else "",
        "expires_on": _local_day(row.expires_at).isoformat() if row.expires_at else "",
    }


def refresh_public(now: dt.datetime) -> list[Path]:
    """The public page and feeds from what is committed (after a change commits; the
    watcher checks each minute and renders when what the page shows has changed)."""
    with session_scope() as session:
        return publish_credit(session, now=now)


def refresh_public_if_changed(now: dt.datetime, last: tuple | None) -> tuple[tuple, bool]:
    """The watcher's render: only when the publications or listings changed since `last`
    (the states they are in, and the newest of each), which is all the page shows."""
    import sqlalchemy as sa

    with session_scope() as session:
        seen = tuple(
            tuple(
                session.execute(
                    sa.select(table.state, sa.func.count(), sa.func.max(table.id))
                    .group_by(table.state)
                    .order_by(table.state)
                ).all()
            )
            for table in (Publication, Listing)
        )
        if seen == last:
            return seen, False
        publish_credit(session, now=now)
        return seen, True


def ended_with(number: str) -> list[str]:
    """A publication or listing and the subjects that ended with it (its referrals, a
    listing revoked with a publication), those closed: their runs, if suspended, may
    walk on to their end."""
    number = number.strip().upper()
    with session_scope() as session:
        found = [number]
        publication = by_number(session, Publication, number)
        if publication is not None:
            found += [listing.number for listing in rows(session, Listing, case=publication.case)]
        for about in list(found):
            found += [r.number for r in rows(session, Referral, about=about)]
        closed = [get_case(session, number=n) for n in dict.fromkeys(found)]
        return [c.number for c in closed if c is not None and not c.is_open]


def publish_credit(session: Session, *, now: dt.datetime) -> list[Path]:
    """The public page and feeds, rewritten whole: current publications and listings only."""
    publications = [public_publication(session, r) for r in rows(session, Publication, state="published")]
    listings = [public_listing(session, r) for r in rows(session, Listing, state="listed")]
    at = local_time(now)
    page = public_page("credit.html.j2", publications=publications, listings=listings, at=at)
    written = write_public(
        "credit",
        "index",
        {
            "html": page,
            "json": json.dumps(
                {"updated_at": now.isoformat(), "publications": publications, "serious_list": listings},
                ensure_ascii=False,
                indent=2,
            ),
        },
    )
    written += write_public("credit", "publications", {"csv": csv_feed(publications, PUBLICATION_FIELDS)})
    written += write_public("credit", "serious-list", {"csv": csv_feed(listings, LISTING_FIELDS)})
    return written


# --- an enterprise's credit record ---------------------------------------------------------------


def _party_key(party: str) -> tuple[str, str]:
    """(uscc, digest) from what a user typed: a person's identity number (looked at first,
    so that it is never taken for a code and written down), or a USCC."""
    party = party.strip().upper()
    try:
        return "", person_digest(rules.valid_identity_number(party))
    except ValueError:
        pass
    try:
        return valid_uscc(party), ""
    except ValueError:
        raise InvalidInput("give a unified social credit code (18 characters) or an identity number") from None


def record(party: str, *, by: str, now: dt.datetime) -> dict[str, Any]:
    """Everything on record about one party: cases and their publications, listings,
    failed spot checks, recalls, risk items, and the measures partners took."""
    from storage.risk import Recall, RiskItem
    from storage.samples import SpotSample

    uscc, digest = _party_key(party)
    with session_scope() as session:
        publications = of_party(session, Publication, uscc=uscc, digest=digest)
        case_numbers = {p.case for p in publications}
        if uscc:
            case_numbers |= {
                c.number for c in session.exec(select(Case).where(Case.party_uscc == uscc, Case.kind == "case"))
            }
        cases = [get_case(session, number=n) for n in sorted(case_numbers)]
        found = {
            "party": {
                "uscc": uscc,
                "identity": "（已隐去 withheld）" if digest else "",
                "name": next((p.party for p in publications), cases[0].party if cases else ""),
            },
            "cases": [
                {
                    "number": c.number,
                    "title": c.title,
                    "status": c.status,
                    "outcome": c.outcome,
                    "authority": c.authority_code,
                    "fine": str(c.fine) if c.fine is not None else None,
                    "publication": c.facts.get("publication"),
                }
                for c in cases
            ],
            "publications": [
                {**public_publication(session, p), "state": p.state, "end_reason": p.end_reason} for p in publications
            ],
            "listings": [
                {**public_listing(session, r), "state": r.state, "removal": r.removal}
                for r in of_party(session, Listing, uscc=uscc)
            ],
            "failed_spot_checks": [
                {"number": s.number, "campaign": s.campaign_key, "product": s.product, "failing_items": s.failing_items}
                for s in (
                    session.exec(select(SpotSample).where(SpotSample.uscc == uscc, SpotSample.result == "fail"))
                    if uscc
                    else []
                )
            ],
            "recalls": [
                {"number": r.number, "product": r.product, "mode": r.mode, "rate": r.rate}
                for r in (session.exec(select(Recall).where(Recall.uscc == uscc)) if uscc else [])
            ],
            "risk_items": [
                {"number": i.number, "product": i.product, "grade": i.grade, "status": i.status}
                for i in (session.exec(select(RiskItem).where(RiskItem.uscc == uscc)) if uscc else [])
            ],
            "partner_measures": [
                {
                    "number": r.number,
                    "department": r.department,
                    "about": r.about,
                    "acknowledged": r.acknowledged_at is not None,
                    "measures": r.measures,
                }
                for r in of_party(session, Referral, uscc=uscc)
            ],
        }
        audit.record(session, at=now, actor=by, action="credit.viewed", subject=uscc or "person")
        return found


def export(*, authority: str | None, by: str, now: dt.datetime) -> dict[str, Any]:
    """Every market entity with a publication or a listing on record (of `authority`
    and those below it), each with its credit record, for exchange."""
    with session_scope() as session:
        scope = tuple(under(session, authority)) if authority else None
        usccs = sorted(
            {r.uscc for table in (Publication, Listing) for r in rows(session, table, authorities=scope) if r.uscc}
        )
    return {
        "exported_at": now.isoformat(),
        "authority": authority,
        "records": [record(u, by=by, now=now) for u in usccs],
    }


# --- reading -------------------------------------------------------------------------------------


def publication_view(number: str) -> dict[str, Any]:
    with session_scope() as session:
        case = _subject(session, number, "publication", "publication", "publication")
        row = by_number(session, Publication, case.number)
        return {
            **public_publication(session, row),
            "case": row.case,
            "state": row.state,
            "stage": case.stage,
            "period": row.period,
            "ends_early": row.ends_early,
            "applied_at": local_time(row.applied_at) if row.applied_at else None,
            "end_reason": row.end_reason,
            "push_to": case.facts.get("push_to"),
            "referrals": case.facts.get("referrals", []),
            "end_run": str(row.end_run_id) if row.end_run_id else None,
            "deadlines": deadline_rows.listed_for(session, subject=case.number),
        }


def listing_view(number: str) -> dict[str, Any]:
    with session_scope() as session:
        case = _subject(session, number, "listing", "listing", "serious-list")
        row = by_number(session, Listing, case.number)
        return {
            **public_listing(session, row),
            "case": row.case,
            "state": row.state,
            "stage": case.stage,
            "statement_until": case.facts.get("statement_until"),
            "removal": row.removal,
            "referrals": case.facts.get("referrals", []),
            "end_run": str(row.expiry_run_id) if row.expiry_run_id else None,
            "deadlines": deadline_rows.listed_for(session, subject=case.number),
        }


STATES = {
    "publication": ("pending", "published", "withdrawn", "ended"),
    "listing": ("proposed", "refused", "listed", "removed"),
}


def listing_rows(table: str, *, state: str | None = None, authority: str | None = None) -> list[dict[str, Any]]:
    if state is not None and state not in STATES.get(table, ()):
        raise InvalidInput(f"state: one of {', '.join(STATES[table])}")
    with session_scope() as session:
        scope = tuple(under(session, authority)) if authority else None
        if table == "publication":
            return [
                {**public_publication(session, r), "state": r.state}
                for r in rows(session, Publication, authorities=scope, state=state)
            ]
        if table == "listing":
            return [
                {**public_listing(session, r), "state": r.state}
                for r in rows(session, Listing, authorities=scope, state=state)
            ]
        return [
            {
                "number": r.number,
                "about": r.about,
                "department": r.department,
                "party": r.party,
                "acknowledged": local_time(r.acknowledged_at) if r.acknowledged_at else "",
                "feedback": local_time(r.feedback_at) if r.feedback_at else "",
                "stage": get_case(session, number=r.number).stage,
            }
            for r in rows(session, Referral)
            if scope is None or get_case(session, number=r.number).authority_code in scope
        ]


def referral_view(number: str) -> dict[str, Any]:
    with session_scope() as session:
        case = _subject(session, number, "referral", "referral", "referral")
        row = by_number(session, Referral, case.number)
        return {
            "number": row.number,
            "status": case.status,
            "stage": case.stage,
            "about": row.about,
            "partner": row.partner,
            "department": row.department,
            "party": row.party,
            "uscc": row.uscc,
            "acknowledged": local_time(row.acknowledged_at) if row.acknowledged_at else None,
            "feedback": local_time(row.feedback_at) if row.feedback_at else None,
            "measures": row.measures,
            "deadlines": deadline_rows.listed_for(session, subject=case.number),
        }


# --- scheduled ends --------------------------------------------------------------------------------


def ends_unscheduled(session: Session, *, limit: int = 20) -> list[tuple[str, dt.datetime]]:
    """Current publications and listings whose end run is not created yet."""
    found = session.exec(
        select(Publication.number, Publication.ends_at)
        .where(Publication.state == "published", Publication.end_run_id.is_(None))
        .limit(limit)
    )
    return list(found) + list(
        session.exec(
            select(Listing.number, Listing.expires_at)
            .where(Listing.state == "listed", Listing.expiry_run_id.is_(None))
            .limit(limit)
        )
    )


def end_of(number: str) -> tuple[dt.datetime, Any] | None:
    """A current publication's or listing's end and the run scheduled for it (None if
    not current)."""
    with session_scope() as session:
        row = by_number(session, Publication if number.strip().upper().startswith("PUB-") else Listing, number)
        if row is None or not row.current:
            return None
        if isinstance(row, Publication):
            return row.ends_at, row.end_run_id
        return row.expires_at, row.expiry_run_id


def end_scheduled(number: str, run_id, *, now: dt.datetime) -> None:
    with session_scope() as session:
        table = Publication if number.startswith("PUB-") else Listing
        row = by_number(session, table, number)
        if table is Publication:
            row.end_run_id = row.end_run_id or run_id
        else:
            row.expiry_run_id = row.expiry_run_id or run_id
        session.add(row)
        audit.record(
            session, at=now, actor="regflow", action="credit.end_scheduled", subject=number, flow_run_id=str(run_id)
        )


def overdue_ends(now: dt.datetime, *, grace: dt.timedelta = dt.timedelta(hours=1)) -> list[str]:
    """Publications and listings past their end by `grace` whose scheduled run has not
    ended them (Prefect was down at the time): the watcher ends them, so none stays
    public."""
    before = now - grace
    with session_scope() as session:
        late = list(
            session.exec(
                select(Publication.number).where(Publication.state == "published", Publication.ends_at <= before)
            )
        )
        late += session.exec(select(Listing.number).where(Listing.state == "listed", Listing.expires_at <= before))
    return [n for n in late if expire(n, now=now).endswith("ended")]
