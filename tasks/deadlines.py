"""The deadline engine: reminders before, escalation after, nothing lost or repeated.

The watcher calls `send_reminders` and `climb_escalations` once a cycle with one
clock reading. Each works only on rows whose watermark (`next_at`) has come, claims
each row by a conditional update (and, on PostgreSQL, skips rows another watcher
has locked), and queues its messages in the same transaction, so a watcher that
dies, or two that race, cannot lose or double anything. Prefect events are emitted
after commit.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from kernel.errors import NotFound, StepConflict
from rules.calendar import WorkCalendar
from rules.lifecycles import label
from rules.reminders import due_reminder, first_pending, next_step_at, reminder_at, rung
from storage import audit
from storage import deadlines as deadline_rows
from storage import escalations as escalation_rows
from storage.authorities import Authority
from storage.db import session_scope
from storage.deadlines import Deadline
from storage.escalations import Escalation
from storage.subjects import Subject, subject_for
from tasks import events
from tasks.access import and_superiors, require
from tasks.notify import queue

log = logging.getLogger("regflow.deadlines")


@dataclass
class Cycle:
    """What one pass did, and the events to emit once it has committed."""

    done: int = 0
    emitted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _queue(
    session: Session,
    subject: Subject,
    deadline: Deadline,
    *,
    key: str,
    tags: list[str],
    template: str,
    now: dt.datetime,
    **variables: Any,
) -> None:
    """A message about one deadline, worded by `templates/messages/<template>.j2`."""
    authority = session.get(Authority, deadline.authority)
    queue(
        session,
        number=subject.number,
        key=key,
        tags=tags,
        template=template,
        now=now,
        subject=subject,
        deadline=deadline,
        authority=authority,
        label=label(deadline.name),
        **variables,
    )


def _escalation_news(
    session: Session,
    subject: Subject,
    deadline: Deadline,
    escalation: Escalation,
    *,
    event: str,
    tags: list[str],
    now: dt.datetime,
    step: int | None = None,
) -> None:
    """An escalation raised, climbed, acknowledged or resolved, keyed by its step or event;
    a raised or climbed one names who is on duty where it has just arrived."""
    from storage.rosters import on_duty

    key = f"escalation:{escalation.id}:{event if step is None else step}"
    ladder = escalation.policy.get("ladder", [])
    reached = ladder[escalation.step] if escalation.step < len(ladder) else None
    on_call = on_duty(session, authority=reached, at=now) if reached and event in ("raised", "climbed") else None
    _queue(
        session,
        subject,
        deadline,
        key=key,
        tags=tags,
        template="escalation",
        now=now,
        event=event,
        escalation=escalation,
        on_duty=on_call,
    )


def _audit(session: Session, now: dt.datetime, action: str, number: str, actor: str = "watcher", **detail: Any) -> None:
    audit.record(session, at=now, actor=actor, action=action, subject=number, **detail)


def _desk(code: str) -> list[str]:
    return [f"{code}.duty", f"{code}.head"]


def send_reminders(now: dt.datetime, *, limit: int = 200) -> Cycle:
    cycle = Cycle()
    with session_scope() as session:
        for deadline in deadline_rows.due_now(session, now=now, limit=limit):
            try:
                with session.begin_nested():
                    _remind(session, deadline, now, cycle)
            except Exception as exc:  # one bad row must not hold back the others
                log.error("deadline %s: %s", deadline.id, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    events.emit_all(cycle.emitted)
    return cycle


def _remind(session: Session, deadline: Deadline, now: dt.datetime, cycle: Cycle) -> None:
    policy = deadline.policy["reminders"]
    current, following = due_reminder(
        deadline.reminders_sent, now=now, starts_at=deadline.starts_at, due_at=deadline.due_at, policy=policy
    )
    if current is None or not deadline_rows.advance(
        session, deadline=deadline, sent=following.index, next_at=following.at
    ):
        return
    incident = subject_for(session, deadline.subject)
    code = deadline.authority
    tags = [f"{code}.duty"] + ([f"{code}.head"] if current.kind != "before" else [])
    key = f"reminder:{deadline.name}:{current.index}"
    _queue(session, incident, deadline, key=key, tags=tags, template="reminder", now=now, reminder=current)
    _audit(
        session,
        now,
        "deadline.reminder",
        incident.number,
        deadline=deadline.name,
        reminder=current.index,
        kind=current.kind,
    )
    cycle.done += 1
    cycle.emitted.append(("regflow.deadline.reminder", _payload(incident, deadline, kind=current.kind)))
    if current.kind != "before" and escalation_rows.for_deadline(session, deadline_id=deadline.id) is None:
        _raise(session, incident, deadline, now, cycle)


def _raise(
    session: Session,
    incident: Subject,
    deadline: Deadline,
    now: dt.datetime,
    cycle: Cycle,
    why: str = "deadline.missed",
) -> Escalation:
    policy = deadline.policy["escalation"]
    first = rung(0, policy)
    escalation = Escalation(
        deadline_id=deadline.id,
        subject=incident.number,
        policy=policy,
        raised_at=now,
        next_at=next_step_at(0, raised_at=now, policy=policy),
    )
    session.add(escalation)
    session.flush()
    actor = "watcher" if why == "deadline.missed" else "regflow"
    _audit(session, now, why, incident.number, actor, deadline=deadline.name, due_at=deadline.due_at.isoformat())
    _audit(
        session,
        now,
        "escalation.raised",
        incident.number,
        escalation=escalation.id,
        to=first.authority if first else None,
    )
    if first:
        _escalation_news(
            session, incident, deadline, escalation, event="raised", step=0, tags=_desk(first.authority), now=now
        )
    cycle.emitted.append((f"regflow.{why}", _payload(incident, deadline)))
    cycle.emitted.append(
        (
            "regflow.escalation.raised",
            _payload(incident, deadline, escalation=escalation.id, to=first.authority if first else None),
        )
    )
    return escalation


def escalate(session: Session, subject: Subject, deadline: Deadline, *, why: str, now: dt.datetime) -> Cycle:
    """Raise an escalation now, not for a miss but for what a step found (a failed
    look-back review); it climbs and is acknowledged like any other. Emit the
    returned cycle's events after commit."""
    cycle = Cycle()
    if escalation_rows.for_deadline(session, deadline_id=deadline.id) is None:
        _raise(session, subject, deadline, now, cycle, why=why)
    return cycle


def climb_escalations(now: dt.datetime, *, limit: int = 200) -> Cycle:
    cycle = Cycle()
    with session_scope() as session:
        for escalation in escalation_rows.due_now(session, now=now, limit=limit):
            step = escalation.step + 1
            target = rung(step, escalation.policy)
            if target is None or not escalation_rows.climb(
                session,
                escalation=escalation,
                step=step,
                next_at=next_step_at(step, raised_at=escalation.raised_at, policy=escalation.policy),
            ):
                continue
            deadline = session.get(Deadline, escalation.deadline_id)
            incident = subject_for(session, deadline.subject)
            _escalation_news(
                session,
                incident,
                deadline,
                escalation,
                event="climbed",
                step=step,
                tags=_desk(target.authority),
                now=now,
            )
            _audit(
                session,
                now,
                "escalation.climbed",
                incident.number,
                escalation=escalation.id,
                step=step,
                to=target.authority,
                round=target.round,
            )
            cycle.done += 1
            cycle.emitted.append(
                (
                    "regflow.escalation.raised",
                    _payload(incident, deadline, escalation=escalation.id, to=target.authority, step=step),
                )
            )
    events.emit_all(cycle.emitted)
    return cycle


def acknowledge(escalation_id: int, *, by: str, now: dt.datetime, source: str = "cli") -> Escalation:
    """Stop the ladder: a supervising authority has taken it in hand. Only a duty
    officer or head of an authority it has told may (a drill's simulated one too)."""
    with session_scope() as session:
        escalation = session.get(Escalation, escalation_id)
        if escalation is None:
            raise NotFound(f"no escalation {escalation_id}")
        told = tuple(escalation.policy.get("ladder", [])[: escalation.step + 1])
        if source != "drill" and escalation.status == "open" and not _on_duty(session, by, told, now):
            require(
                session,
                by,
                roles=("duty", "head"),
                authorities=told,
                subject=escalation.subject,
                action=f"acknowledge escalation {escalation_id}",
                now=now,
            )
        if not escalation_rows.close(session, escalation_id=escalation_id, status="acknowledged", now=now, by=by):
            raise StepConflict(f"escalation {escalation_id} is already {escalation.status}")
        session.refresh(escalation)
        deadline = session.get(Deadline, escalation.deadline_id)
        incident = subject_for(session, deadline.subject)
        _notify_told(session, incident, deadline, escalation, "acknowledged", now)
        _audit(session, now, "escalation.acknowledged", incident.number, by, escalation=escalation_id)
        payload = _payload(incident, deadline, escalation=escalation_id, by=by)
    events.emit_all([("regflow.escalation.acknowledged", payload)])
    return escalation


def _on_duty(session: Session, who: str, authorities: tuple[str, ...], now: dt.datetime) -> bool:
    """`who` (login or name) is the officer or leader on duty now at one of `authorities`."""
    from kernel.settings import get_settings
    from rules.people import load_people
    from storage.rosters import on_duty

    names = {who, *(p.name for p in load_people(get_settings().people_file).named(who))}
    for code in authorities:
        shift = on_duty(session, authority=code, at=now)
        if shift is not None and names & {shift.officer, shift.leader}:
            return True
    return False


def resolve_late(session: Session, *, deadline: Deadline, now: dt.datetime) -> None:
    """A missed deadline met after all: close its escalation and tell those who were told."""
    escalation = escalation_rows.for_deadline(session, deadline_id=deadline.id)
    if escalation is None or not escalation_rows.close(
        session, escalation_id=escalation.id, status="resolved", now=now
    ):
        return
    session.refresh(escalation)
    incident = subject_for(session, deadline.subject)
    _notify_told(session, incident, deadline, escalation, "resolved", now)
    _audit(
        session,
        now,
        "escalation.resolved",
        incident.number,
        "regflow",
        escalation=escalation.id,
        deadline=deadline.name,
    )


def _notify_told(
    session: Session, incident: Subject, deadline: Deadline, escalation: Escalation, event: str, now: dt.datetime
) -> None:
    told = {rung(s, escalation.policy).authority for s in range(escalation.step + 1) if rung(s, escalation.policy)}
    tags = [f"{deadline.authority}.duty"] + [t for code in sorted(told) for t in _desk(code)]
    _escalation_news(session, incident, deadline, escalation, event=event, tags=tags, now=now)


def pause(deadline_id: int, *, by: str, reason: str, now: dt.datetime) -> Deadline:
    with session_scope() as session:
        deadline = _allowed(session, _open(session, deadline_id), by, ("duty", "head", "handler"), "pause", now)
        return pause_row(session, deadline, by=by, reason=reason, now=now)


def resume(deadline_id: int, *, by: str, now: dt.datetime) -> Deadline:
    with session_scope() as session:
        deadline = session.get(Deadline, deadline_id)
        if deadline is None or deadline.status != "paused":
            raise StepConflict(f"deadline {deadline_id} is not paused")
        _allowed(session, deadline, by, ("duty", "head", "handler"), "resume", now)
        return resume_row(session, deadline, by=by, now=now)


def extend(deadline_id: int, *, due_at: dt.datetime, by: str, reason: str, rule: str, now: dt.datetime) -> Deadline:
    with session_scope() as session:
        deadline = _allowed(session, _open(session, deadline_id), by, ("head",), "extend", now, above=True)
        return extend_row(session, deadline, due_at=due_at, by=by, reason=reason, rule=rule, now=now)


def _allowed(
    session: Session,
    deadline: Deadline,
    by: str,
    roles: tuple[str, ...],
    verb: str,
    now: dt.datetime,
    above: bool = False,
) -> Deadline:
    """A deadline's clock is its authority's; with `above`, a superior's too (extensions)."""
    from storage.authorities import load_tree

    code = deadline.authority
    authorities = and_superiors(load_tree(session), code) if above else (code,)
    require(
        session,
        by,
        roles=roles,
        authorities=authorities,
        subject=deadline.subject,
        action=f"{verb} deadline {deadline.name}",
        now=now,
    )
    return deadline


def pause_row(session: Session, deadline: Deadline, *, by: str, reason: str, now: dt.datetime) -> Deadline:
    """Stop a deadline's clock (testing, appraisal...): no reminders while paused."""
    deadline.status, deadline.paused_at, deadline.next_at = "paused", now, None
    session.add(deadline)
    _audit(session, now, "deadline.paused", deadline.subject, by, deadline=deadline.name, reason=reason)
    return deadline


def resume_row(
    session: Session,
    deadline: Deadline,
    *,
    by: str,
    now: dt.datetime,
    calendar: WorkCalendar | None = None,
    tz: str = "Asia/Shanghai",
) -> Deadline:
    """Restart the clock: the due time moves by the paused span. With a calendar (a
    day-counted limit), by the whole days paused, as `rules.durations.due_after`
    counts pauses, and a due day that lands on a holiday moves to the next working
    day, end of day (Art. 80)."""
    span = now - deadline.paused_at
    shift = dt.timedelta(days=span.days) if calendar is not None else span
    old = deadline.due_at
    deadline.due_at, deadline.starts_at = deadline.due_at + shift, deadline.starts_at + shift
    deadline.paused_seconds += int(span.total_seconds())
    deadline.paused_at, deadline.status = None, "open"
    deadline.rule = f"{deadline.rule}; paused {_span(span)}, due moved from {old.isoformat()}"[:500]
    if calendar is not None:
        import pendulum

        day = pendulum.instance(deadline.due_at).in_timezone(tz).date()
        moved = calendar.next_workday_on_or_after(day)
        if moved != day:
            deadline.due_at = pendulum.datetime(moved.year, moved.month, moved.day, 23, 59, 59, tz=tz).in_timezone(
                "UTC"
            )
            deadline.rule = f"{deadline.rule}; {day} is not a working day, moved to {moved}"[:500]
    _rewind(deadline, now)
    session.add(deadline)
    _audit(
        session,
        now,
        "deadline.resumed",
        deadline.subject,
        by,
        deadline=deadline.name,
        paused_seconds=int(span.total_seconds()),
    )
    return deadline


def extend_row(
    session: Session, deadline: Deadline, *, due_at: dt.datetime, by: str, reason: str, rule: str, now: dt.datetime
) -> Deadline:
    """A new due time, with who approved it and why."""
    if due_at <= deadline.due_at:
        raise StepConflict("an extension must move the due time later")
    return move_row(session, deadline, due_at=due_at, by=by, reason=reason, rule=rule, now=now)


def move_row(
    session: Session,
    deadline: Deadline,
    *,
    due_at: dt.datetime,
    by: str,
    reason: str,
    rule: str,
    now: dt.datetime,
    action: str = "deadline.extended",
) -> Deadline:
    """A deadline's due time moved (an extension, a re-graded incident), earlier or
    later: its history kept on the row, its reminders rewound, on the audit log."""
    extension = dict(by=by, reason=reason, at=now.isoformat(), to=due_at.isoformat(), rule=rule)
    deadline.extensions = [*deadline.extensions, {**extension, "from": deadline.due_at.isoformat()}]
    deadline.due_at, deadline.rule = due_at, rule[:500]  # the rule now governing it; history in extensions
    _rewind(deadline, now)
    session.add(deadline)
    _audit(
        session,
        now,
        action,
        deadline.subject,
        by,
        deadline=deadline.name,
        to=due_at.isoformat(),
        reason=reason,
    )
    return deadline


def _rewind(deadline: Deadline, now: dt.datetime) -> None:
    """After the due time moved: the next reminder is the first still ahead."""
    policy = deadline.policy["reminders"]
    deadline.reminders_sent = first_pending(
        now=now, starts_at=deadline.starts_at, due_at=deadline.due_at, policy=policy
    )
    deadline.next_at = reminder_at(
        deadline.reminders_sent, starts_at=deadline.starts_at, due_at=deadline.due_at, policy=policy
    ).at


def _open(session: Session, deadline_id: int) -> Deadline:
    deadline = session.get(Deadline, deadline_id)
    if deadline is None:
        raise NotFound(f"no deadline {deadline_id}")
    if deadline.status != "open":
        raise StepConflict(f"deadline {deadline_id} is {deadline.status}")
    return deadline


def _span(span: dt.timedelta) -> str:
    hours, rest = divmod(int(span.total_seconds()), 3600)
    return f"{hours}h{rest // 60:02d}m"


def _payload(incident: Subject, deadline: Deadline, **extra: Any) -> dict[str, Any]:
    return dict(
        number=incident.number,
        flow_run_id=str(incident.flow_run_id) if incident.flow_run_id else None,
        authority=deadline.authority,
        deadline_id=deadline.id,
        deadline=deadline.name,
        due_at=deadline.due_at.isoformat(),
        **extra,
    )
