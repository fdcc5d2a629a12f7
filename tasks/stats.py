"""Supervisors' figures from the records: for an authority and those it supervises,
period by period, each against the period before (`regflow stats`, the monthly report).

Every figure is read from what regflow already keeps: incidents, cases and complaints,
their deadlines (created when a clock starts, closed `met` when the step is done, so a
deadline's `closed_at - created_at` is the time the step took, and `closed_at <= due_at`
says it was on time), escalations, spot-check samples and risk items. Drills are left
out. Rows are read once, column by column, for the whole span, and bucketed here.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections import Counter, defaultdict
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from kernel.settings import get_settings
from rules.cases import NUMBER_PREFIX
from rules.stats import Period, Window, previous, share, summary, windows
from storage.authorities import load_tree
from storage.cases import Case
from storage.deadlines import Deadline
from storage.escalations import Escalation
from storage.incidents import Incident
from storage.risk import RiskItem
from storage.samples import SpotSample
from tasks.board import under

# Subject kinds by number prefix (INC- for incidents, the rest as rules/cases numbers them).
KINDS = {"INC": "emergency", **{prefix: kind for kind, prefix in NUMBER_PREFIX.items()}}
# The incident deadlines whose time-to figures the supervisors watch, in lifecycle order.
TIME_TO = ("dispatch", "arrival", "initial_report", "upward_report")
PARTS = ("emergencies", "deadlines", "escalations", "cases", "complaints", "spot_checks", "risk")


def age_buckets() -> tuple[tuple[int, int | None, str], ...]:
    """Open cases' age since filing in thirds of the decision limit (case.decision, 90 days
    under 《市场监督管理行政处罚程序规定》第六十四条, as data/rules/statutory.yaml holds it), and past it."""
    from rules.durations import Period as Length
    from rules.statutes import load_rules

    limit = Length.parse(load_rules(get_settings().rules_file).rules.limit("case.decision").period).amount
    a, b = limit // 3, 2 * limit // 3
    return (0, a, f"<{a}d"), (a, b, f"{a}-{b}d"), (b, limit, f"{b}-{limit}d"), (limit, None, f">{limit}d")


def judged(d, now: dt.datetime) -> str | None:
    """A deadline that fell due: "on_time" if met by its due time, "late" if met after it
    or still open past it; None while it cannot be judged (not yet due, or paused: the
    clock is stopped and the due time moves on resume). An extension granted after the
    due time had passed does not undo the miss."""
    if d.status == "paused" or (d.status != "met" and d.due_at > now):
        return None
    if any(dt.datetime.fromisoformat(e["at"]) > dt.datetime.fromisoformat(e["from"]) for e in d.extensions or ()):
        return "late"
    return "on_time" if d.status == "met" and d.closed_at <= d.due_at else "late"


def kind_of(number: str) -> str:
    return KINDS.get(number.split("-", 1)[0], "other")


def figures(
    session: Session, authority: str, first: dt.date, last: dt.date, *, by: Period = "month", now: dt.datetime
) -> tuple[dict[str, Any], Records]:
    """The figures of `authority` and those it supervises for each period from the one
    holding `first` to the one holding `last`, the whole span, and the span before it;
    and the rows they were made of, for the plots of any window within."""
    tz = get_settings().timezone
    scope = under(session, authority)
    periods = windows(first, last, by, tz)
    span = Window(f"{periods[0].label}..{periods[-1].label}", periods[0].start, periods[-1].end)
    length = len(periods)
    before_first = periods[0]
    for _ in range(length):
        before_first = previous(before_first, by, tz)
    prior = Window(f"{before_first.label}..{previous(periods[0], by, tz).label}", before_first.start, span.start)
    records = Records.read(session, scope, prior.start, span.end, now=now)
    rows = []
    for window in periods:
        rows.append({"period": window.label, **records.figures(window, now), "previous": None})
    for i, row in enumerate(rows):
        before = rows[i - 1] if i else records.figures(previous(periods[0], by, tz), now)
        row["previous"] = {key: before[key] for key in PARTS}
    return {
        "authority": authority,
        "scope": scope,
        "from": periods[0].start.isoformat(),
        "to": periods[-1].end.isoformat(),
        "by": by,
        "timezone": tz,
        "periods": rows,
        "total": {"period": span.label, **records.figures(span, now)},
        "previous_total": {"period": prior.label, **records.figures(prior, now)},
    }, records


class Records:
    """The rows the figures are made of, read once for a span."""

    def __init__(self) -> None:
        self.incidents: list[tuple] = []
        self.deadlines: list[tuple] = []
        self.escalations: list[tuple] = []
        self.cases: list[tuple] = []
        self.samples: list[tuple] = []
        self.risks: list[tuple] = []
        self.clocks: list[tuple] = []

    @classmethod
    def read(cls, session: Session, scope: list[str], start: dt.datetime, end: dt.datetime, *, now: dt.datetime):
        r, conn, where = cls(), session.connection(), sa.and_
        # Core selects of the columns needed (no ORM objects: a year is ~100,000 rows).
        drills = sa.select(Incident.number).where(Incident.drill.is_(True))
        r.incidents = conn.execute(
            sa.select(Incident.number, Incident.plan_key, Incident.level, Incident.triggered_at).where(
                where(
                    Incident.authority_code.in_(scope),
                    Incident.drill.is_(False),
                    Incident.triggered_at >= start,
                    Incident.triggered_at < end,
                )
            )
        ).all()
        # A deadline counts in the period it fell due in; one still open, once it is due.
        d = Deadline
        r.deadlines = conn.execute(
            sa.select(
                d.id,
                d.subject,
                d.name,
                d.authority,
                d.status,
                d.created_at,
                d.due_at,
                d.closed_at,
                d.reminders_sent,
                d.extensions,
            ).where(
                where(
                    d.authority.in_(scope),
                    d.status != "cancelled",
                    d.due_at >= start,
                    d.due_at < end,
                    d.subject.not_in(drills),
                )
            )
        ).all()
        r.escalations = conn.execute(
            sa.select(Escalation.raised_at, Escalation.acked_at, Escalation.acked_by, d.subject)
            .join(d, d.id == Escalation.deadline_id)
            .where(
                where(
                    d.authority.in_(scope),
                    Escalation.raised_at >= start,
                    Escalation.raised_at < end,
                    d.subject.not_in(drills),
                )
            )
        ).all()
        # The clocks some figures follow from start to end, wherever their due time falls:
        # time to each incident step and to a risk assessment, a case's decision limit.
        r.clocks = conn.execute(
            sa.select(d.subject, d.name, d.status, d.created_at, d.closed_at, d.extensions).where(
                where(
                    d.authority.in_(scope),
                    d.name.in_((*TIME_TO, "risk-assessment", "decision")),
                    d.created_at < end,
                    sa.or_(d.status.in_(("open", "paused")), d.closed_at >= start),
                )
            )
        ).all()
        c = Case
        r.cases = conn.execute(
            sa.select(c.number, c.kind, c.source, c.outcome, c.received_at, c.filed_at, c.closed_at, c.facts).where(
                where(
                    c.authority_code.in_(scope),
                    c.kind.in_(("case", "complaint")),
                    c.received_at < end,
                    sa.or_(c.closed_at.is_(None), c.closed_at >= start),
                )
            )
        ).all()
        r.samples = conn.execute(
            sa.select(SpotSample.category, c.authority_code, SpotSample.result, SpotSample.final_at)
            .join(c, c.number == SpotSample.number)
            .where(where(c.authority_code.in_(scope), SpotSample.final_at >= start, SpotSample.final_at < end))
        ).all()
        r.risks = conn.execute(
            sa.select(RiskItem.number, RiskItem.grade, RiskItem.first_at).where(
                where(RiskItem.region.in_(scope), RiskItem.first_at >= start, RiskItem.first_at < end)
            )
        ).all()
        r._index()
        return r

    def _index(self) -> None:
        """Sorted by the time each part is bucketed by, so a window is a slice (bisect),
        not a scan: a year by month is 26 windows over the same rows."""
        self.deadlines = sorted(self.deadlines, key=lambda d: d.due_at)
        self.due_times = [d.due_at for d in self.deadlines]
        self.incidents = sorted(self.incidents, key=lambda i: i.triggered_at)
        self.trigger_times = [i.triggered_at for i in self.incidents]
        self.met: dict[tuple[str, str], Any] = {
            (d.subject, d.name): d for d in self.clocks if d.status == "met" and d.closed_at is not None
        }
        self.extended = {d.subject for d in self.clocks if d.name == "decision" and d.extensions}
        self.buckets = age_buckets()
        # Cases and complaints as plain tuples, the fields each window reads.
        self.case_rows = [
            (
                c.number,
                c.received_at,
                c.filed_at,
                c.closed_at,
                c.outcome,
                bool((c.facts or {}).get("decided")),
                c.source,
            )
            for c in self.cases
            if c.kind == "case"
        ]

    def _due_in(self, w: Window) -> list:
        return self.deadlines[bisect_left(self.due_times, w.start) : bisect_left(self.due_times, w.end)]

    def _triggered_in(self, w: Window) -> list:
        return self.incidents[bisect_left(self.trigger_times, w.start) : bisect_left(self.trigger_times, w.end)]

    def minutes_to(self, window: Window, name: str) -> list[float]:
        """Minutes from trigger to `name` met, for the incidents triggered in `window`."""
        took = (self.met.get((i.number, name)) for i in self._triggered_in(window))
        return [(d.closed_at - d.created_at).total_seconds() / 60 for d in took if d is not None]

    def figures(self, window: Window, now: dt.datetime) -> dict[str, Any]:
        return {
            "emergencies": self._emergencies(window),
            "deadlines": self._deadlines(window, now),
            "escalations": self._escalations(window),
            "cases": self._cases(window, now),
            "complaints": self._complaints(window, now),
            "spot_checks": self._spot_checks(window),
            "risk": self._risk(window),
        }

    # --- each part ----------------------------------------------------------------

    def _emergencies(self, w: Window) -> dict[str, Any]:
        mine = self._triggered_in(w)
        return {
            "incidents": len(mine),
            "by_plan": dict(sorted(Counter(i.plan_key for i in mine).items())),
            "by_level": dict(sorted(Counter(i.level for i in mine).items())),
            # The incident's own clock, whenever its deadline fell due.
            "minutes_to": {name: summary(self.minutes_to(w, name)) for name in TIME_TO},
        }

    def _deadlines(self, w: Window, now: dt.datetime) -> dict[str, Any]:
        """Each deadline that fell due in the window: on time, late, or still open past due."""
        per: dict[tuple[str, str], Counter] = defaultdict(Counter)
        by_authority: dict[str, Counter] = defaultdict(Counter)
        reminders = 0
        for d in self._due_in(w):
            verdict = judged(d, now)
            if verdict is None:
                continue
            per[(kind_of(d.subject), d.name)][verdict] += 1
            by_authority[d.authority][verdict] += 1
            reminders += d.reminders_sent

        def line(c: Counter) -> dict[str, Any]:  # noqa: E306
            due = c["on_time"] + c["late"]
            return {"due": due, "on_time": c["on_time"], "late": c["late"], "on_time_share": share(c["on_time"], due)}

        total = sum(per.values(), Counter())
        return {
            **line(total),
            "reminders_sent": reminders,
            "by_name": {f"{kind}.{name}": line(c) for (kind, name), c in sorted(per.items())},
            "by_authority": {code: line(c) for code, c in sorted(by_authority.items())},
        }

    def _escalations(self, w: Window) -> dict[str, Any]:
        mine = [e for e in self.escalations if w.start <= e.raised_at < w.end]
        acked = [e for e in mine if e.acked_at is not None]
        return {
            "raised": len(mine),
            "acknowledged": len(acked),
            "minutes_to_acknowledge": summary([(e.acked_at - e.raised_at).total_seconds() / 60 for e in acked]),
            "acknowledged_by": dict(Counter(e.acked_by for e in acked).most_common()),
        }

    def _cases(self, w: Window, now: dt.datetime) -> dict[str, Any]:
        start, end = w.start, w.end
        at = min(end, now)  # open at the end of the window (or now, for the current one)
        received = filed = decided = reopened = 0
        outcomes: Counter = Counter()
        ages: Counter = Counter()
        extended = 0
        buckets = self.buckets
        for number, received_at, filed_at, closed_at, outcome, was_decided, source in self.case_rows:
            if start <= received_at < end:
                received += 1
                reopened += source == "lookback"
            if filed_at is not None:
                filed += start <= filed_at < end
                if filed_at < at and (closed_at is None or closed_at >= at):
                    days = (at - filed_at).total_seconds() / 86400
                    ages[
                        next(label for low, high, label in buckets if days >= low and (high is None or days < high))
                    ] += 1
                    extended += number in self.extended
            if closed_at is not None and start <= closed_at < end:
                outcomes[outcome] += 1
                decided += was_decided
        return {
            "received": received,
            "filed": filed,
            "not_filed": outcomes["not_filed"],
            "decided": decided,
            "penalised": outcomes["penalised"],
            "transferred": outcomes["transferred"],
            "closed": sum(outcomes.values()),
            "open_filed": sum(ages.values()),
            "open_by_age": {label: ages[label] for _, _, label in buckets},
            "open_past_limit": ages[buckets[-1][2]],
            "extended": extended,
            # A failed look-back review reopens the matter as a new lead of source lookback.
            "lookback_failed": reopened,
        }

    def _complaints(self, w: Window, now: dt.datetime) -> dict[str, Any]:
        complaints = [c for c in self.cases if c.kind == "complaint"]
        received = [c for c in complaints if w.start <= c.received_at < w.end]
        closed = [c for c in complaints if c.closed_at is not None and w.start <= c.closed_at < w.end]
        verdicts = [
            judged(d, now) for d in self._due_in(w) if d.name == "acceptance" and kind_of(d.subject) == "complaint"
        ]
        acceptance = [v for v in verdicts if v is not None]  # decided, or left past the limit
        on_time = acceptance.count("on_time")
        outcomes = Counter(c.outcome for c in closed)
        return {
            "received": len(received),
            "acceptance_due": len(acceptance),
            "accepted_within_limit": on_time,
            "within_limit_share": share(on_time, len(acceptance)),
            "mediated": outcomes["mediated"],
            "mediation_failed": outcomes["mediation_failed"],
            "rejected": outcomes["rejected"],
            "closed": len(closed),
        }

    def _spot_checks(self, w: Window) -> dict[str, Any]:
        mine = [s for s in self.samples if s.final_at is not None and w.start <= s.final_at < w.end]

        def rate(rows) -> dict[str, Any]:
            failed = sum(1 for s in rows if s.result == "fail")
            return {"tested": len(rows), "failed": failed, "failure_rate": share(failed, len(rows))}

        by_category, by_region = defaultdict(list), defaultdict(list)
        for s in mine:
            by_category[s.category].append(s)
            by_region[s.authority_code].append(s)
        return {
            **rate(mine),
            "by_category": {k: rate(v) for k, v in sorted(by_category.items())},
            "by_region": {k: rate(v) for k, v in sorted(by_region.items())},
        }

    def _risk(self, w: Window) -> dict[str, Any]:
        mine = [r for r in self.risks if w.start <= r.first_at < w.end]
        took = ((r, self.met.get((r.number, "risk-assessment"))) for r in mine)
        assessed = [(d.closed_at - r.first_at).total_seconds() / 3600 for r, d in took if d is not None]
        return {
            "items": len(mine),
            "by_grade": dict(sorted(Counter(r.grade for r in mine).items())),
            "hours_to_assessment": summary(assessed),
        }


def yearly_failures(session: Session, scope: list[str], last_year: int, years: int) -> dict[str, list[tuple[int, int]]]:
    """Region -> (failed, tested) for each calendar year (local time) up to `last_year`,
    oldest first: what the spot-check rule of the flags looks at."""
    tz = get_settings().timezone
    spans = [
        windows(dt.date(y, 1, 1), dt.date(y, 12, 31), "month", tz) for y in range(last_year - years + 1, last_year + 1)
    ]
    rows = session.execute(
        select(Case.authority_code, SpotSample.result, SpotSample.final_at)
        .join(Case, Case.number == SpotSample.number)
        .where(
            Case.authority_code.in_(scope),
            SpotSample.final_at >= spans[0][0].start,
            SpotSample.final_at < spans[-1][-1].end,
        )
    ).all()
    out: dict[str, list[list[int]]] = defaultdict(lambda: [[0, 0] for _ in spans])
    for region, result, at in rows:
        year = next(i for i, months in enumerate(spans) if months[0].start <= at < months[-1].end)
        out[region][year][1] += 1
        out[region][year][0] += result == "fail"
    return {region: [tuple(pair) for pair in counts] for region, counts in out.items()}


def viewable(session: Session, who: str, authority: str | None, *, now: dt.datetime, making: bool = False) -> str:
    """The authority whose figures `who` asks for (their own where they name none), if
    it is theirs or one they supervise; otherwise the refusal is on the audit log and
    Forbidden raised. Figures of other regions are not theirs to see. `making` a report
    (which raises flags and writes to the head) takes a head or duty officer there or
    above."""
    from kernel.errors import Forbidden, InvalidInput
    from rules.people import load_people
    from storage import audit

    theirs = sorted({p.authority for p in load_people(get_settings().people_file).named(who)})
    if authority is None:
        if len(theirs) != 1:
            raise InvalidInput(f"give --authority: {who!r} is of {', '.join(theirs) or 'no authority'}")
        return theirs[0]
    under(session, authority)  # an unknown code is refused as such (exit 2), not as a forbidden one
    if making:
        from tasks.access import require

        above = tuple(a.code for a in load_tree(session).chain_up(authority))
        require(session, who, roles=("head", "duty"), authorities=(authority, *above), subject=authority,
                action="make the supervision report", now=now)  # fmt: skip
        return authority
    if any(authority in under(session, code) for code in theirs):
        return authority
    audit.record(session, at=now, actor=who[:100], action="stats.forbidden", subject=authority)
    session.commit()
    raise Forbidden(
        f"{who!r} may see the figures of {', '.join(theirs) or 'no authority'} and those they supervise,"
        f" not of {authority}"
    )
