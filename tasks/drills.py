"""Running a drill (应急演练): stage the incident, play the simulated responders and
supervisors as the scenario says, and score the exercise.

The drill incident is a real incident in every way the platform cares about (its own
flow run, deadlines, reminders, escalations, messages, audit), marked as a drill and
on compressed time. Responders answer through the same path as the CLI, so the drill
exercises what a real incident would. The scorecard is computed from the records,
never from the script: what counts is what the platform did.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from typing import Any, Callable

from sqlmodel import Session, select

from kernel.errors import RegflowError, StepConflict
from rules.drills import LoadedScenario
from rules.incidents import EMERGENCY, validate_trigger
from rules.lifecycles import label
from rules.reminders import rung
from storage import audit
from storage.db import session_scope, utcnow
from storage.drills import Drill, get_drill
from storage.escalations import Escalation
from storage.incidents import Incident, get_incident
from storage.steps import answers

log = logging.getLogger("regflow.drill")
DRILL_CONTROL = "演练导调 drill control"


def start(loaded: LoadedScenario, *, plan: str, level: str, speed: int, now: dt.datetime) -> Incident:
    """Trigger the drill incident and record the drill, in one transaction."""
    from tasks.incidents import trigger

    s = loaded.scenario
    request = validate_trigger(
        dict(
            plan=plan,
            level=level,
            title=s.title,
            location=s.location,
            authority=s.authority,
            reporter=DRILL_CONTROL,
            drill=True,
            speed=speed,
        ),
        now=now,
    )

    def record(session: Session, incident: Incident) -> None:
        session.add(
            Drill(
                number=incident.number, scenario=s.name, scenario_hash=loaded.content_hash, speed=speed, started_at=now
            )
        )

    return trigger(request, now=now, also=record)


def exercise(delta: dt.timedelta, speed: int) -> float:
    """Wall-clock time as exercise time, in seconds."""
    return delta.total_seconds() * speed


def respond(
    number: str,
    loaded: LoadedScenario,
    *,
    speed: int,
    started_at: dt.datetime,
    until: dt.datetime,
    say: Callable[[str], None] = print,
    poll: float = 0.25,
) -> str:
    """Play the scenario until the incident closes ("closed") or `until` ("timeout").

    Each scripted answer is given once its exercise time has come and the incident
    awaits that step; open escalations are acknowledged by the authority last told,
    `acknowledge_after` after they were raised. Steps the script leaves out wait for
    a person."""
    from tasks.incidents import answer

    script = {s.step: s for s in loaded.scenario.steps}
    ack = loaded.scenario.acknowledge_seconds
    announced: set[str] = set()
    # A series the script plays (progress reports, releases) is the script's: its further
    # instances are ended by another line, not left to a person.
    played = {EMERGENCY.step(name).base for name in script}
    while True:
        now = utcnow()
        with session_scope() as session:
            incident = get_incident(session, number=number)
            if incident.status == "closed":
                return "closed"
            open_now = EMERGENCY.open_steps(answers(session, subject=number))
            escalations = list(
                session.exec(select(Escalation).where(Escalation.subject == number, Escalation.status == "open")).all()
            )
        # Each line plays on its own: the first open step whose scripted time has come.
        due = [s for s in open_now if s.name in script and now >= started_at + dt.timedelta(
            seconds=script[s.name].at_seconds / speed)]  # fmt: skip
        if due:
            expected = due[0]
            try:
                result = answer(number, answer=script[expected.name].answer, source="drill", step=expected.name,
                                now=now)  # fmt: skip
            except StepConflict:
                continue  # a person answered it first; look again
            _hand_over(result)
            say(f"{_clock(now - started_at, speed)}  {expected.title}: answered by {_by(result)}")
        left = (s for s in open_now if not due and s.base not in played and s.name not in announced)
        for step in left:
            announced.add(step.name)
            say(
                f"{_clock(now - started_at, speed)}  {step.title}: left to a person — answer it in the "
                f"Prefect UI (Resume) or with the regflow CLI"
            )
        if ack is not None:
            _acknowledge(escalations, after=dt.timedelta(seconds=ack / speed), now=now, say=say,
                         clock=_clock(now - started_at, speed))  # fmt: skip
        if now >= until:
            return "timeout"
        time.sleep(poll)


def _acknowledge(
    escalations: list, *, after: dt.timedelta, now: dt.datetime, say: Callable[[str], None], clock: str
) -> None:
    """The simulated supervisors: each escalation acknowledged, `after` it was raised,
    by the authority last told."""
    from tasks.deadlines import acknowledge

    for escalation in escalations:
        if now < escalation.raised_at + after:
            continue
        told = rung(escalation.step, escalation.policy)
        who = f"{told.authority if told else ''} 督办（演练模拟 simulated）"
        try:
            acknowledge(escalation.id, by=who, now=now, source="drill")
            say(f"{clock}  escalation #{escalation.id} acknowledged by {who}")
        except RegflowError:
            pass  # resolved meanwhile: the late step came in


def settle(number: str, *, timeout: float = 20.0, poll: float = 0.5) -> None:
    """Give the watcher a moment to send what the last step queued, so the scorecard
    counts messages delivered, not merely queued (those still failing count as not sent)."""
    from storage.notifications import notifications_for

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            if all(n.status == "sent" for n in notifications_for(session, subject=number)):
                return
        time.sleep(poll)


def _by(result) -> str:
    from rules.forms import author_of

    return author_of(EMERGENCY.step(result.step).form, result.answer)


def _hand_over(result) -> None:
    """Give the run its answer if it is already waiting; otherwise the run takes it
    from the database when it gets there, or the watcher hands it over."""
    from tasks.runs import resume_when_suspended

    if result.flow_run_id is None:
        return
    try:
        resume_when_suspended(result.flow_run_id, result.number, result.step, result.answer, wait_seconds=0)
    except RegflowError as exc:
        log.warning("%s: %s will be handed over by the watcher (%s)", result.number, result.step, exc)


def _clock(delta: dt.timedelta, speed: int) -> str:
    return f"[T+{_span(exercise(delta, speed))}]"


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{int(seconds) // 60}m {int(seconds) % 60:02d}s"
    minutes = int(round(seconds / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    return (f"{days}d " if days else "") + (f"{hours}h " if hours or days else "") + f"{minutes:02d}m"


def scorecard(session: Session, number: str, *, outcome: str, now: dt.datetime) -> dict[str, Any]:
    """What the platform did during the drill, from its records, in exercise time."""
    from storage.deadlines import deadlines_for
    from storage.notifications import notifications_for
    from storage.steps import steps_for

    incident = get_incident(session, number=number)
    drill = get_drill(session, number=number)
    speed, start = drill.speed, incident.triggered_at
    deadlines = []
    for d in deadlines_for(session, subject=number):
        taken = exercise(d.closed_at - d.starts_at, speed) if d.closed_at else None
        if d.status == "met":
            result = "met" if d.closed_at <= d.due_at else "late"
        elif d.status in ("open", "paused"):
            result = "missed" if d.due_at <= now else "open"
        else:
            result = d.status
        deadlines.append(
            {
                "name": d.name,
                "label": label(d.name),
                "limit_s": exercise(d.due_at - d.starts_at, speed),
                "taken_s": taken,
                "result": result,
            }
        )
    steps = [
        {"step": s.name, "at_s": exercise(s.answered_at - start, speed), "by": s.answered_by, "source": s.source}
        for s in steps_for(session, subject=number)
        if s.status == "answered"
    ]
    events = audit.events_for(session, subject=number)
    reminders = Counter(e.detail.get("kind", "") for e in events if e.action == "deadline.reminder")
    escalations = list(session.exec(select(Escalation).where(Escalation.subject == number)).all())
    messages = notifications_for(session, subject=number)
    judged = [d for d in deadlines if d["result"] in ("met", "late", "missed")]
    on_time = sum(d["result"] == "met" for d in judged)
    return {
        "number": number,
        "scenario": drill.scenario,
        "speed": speed,
        "outcome": outcome,
        "exercise_s": exercise(now - start, speed),
        "wall_s": (now - start).total_seconds(),
        "score": round(100 * on_time / len(judged), 1) if judged else None,
        "deadlines": deadlines,
        "deadlines_met": on_time,
        "deadlines_late": sum(d["result"] == "late" for d in judged),
        "deadlines_missed": sum(d["result"] == "missed" for d in judged),
        "reminders": dict(reminders),
        "reminders_sent": sum(reminders.values()),
        "escalations_raised": len(escalations),
        "escalation_levels": sum(e.step + 1 for e in escalations),
        "escalations_acknowledged": sum(e.status == "acknowledged" for e in escalations),
        "escalations_resolved": sum(e.status == "resolved" for e in escalations),
        "messages_queued": len(messages),
        "messages_sent": sum(m.status == "sent" for m in messages),
        "steps": steps,
    }


def finish(number: str, *, outcome: str, now: dt.datetime) -> Drill:
    """Score the drill and store the scorecard (once: a finished drill keeps its card)."""
    from tasks.render import render

    with session_scope() as session:
        drill = get_drill(session, number=number)
        if drill is None:
            raise RegflowError(f"{number} is not a drill")
        if drill.finished_at is not None:
            return drill
        card = scorecard(session, number, outcome=outcome, now=now)
        drill.scorecard, drill.finished_at = card, now
        drill.document = render(
            "documents/scorecard.md.j2", card=card, incident=get_incident(session, number=number), span=_span, now=now
        )
        session.add(drill)
        audit.record(
            session,
            at=now,
            actor=DRILL_CONTROL,
            action="drill.scored",
            subject=number,
            outcome=outcome,
            score=card["score"],
        )
        session.flush()
        session.expunge(drill)
    return drill


def publish(drill: Drill) -> int:
    """The scorecard as the `<number>-scorecard` artifact of the drill's run."""
    from tasks.events import prefect_configured

    with session_scope() as session:
        incident = get_incident(session, number=drill.number)
        run_id = incident.flow_run_id
    if not prefect_configured() or run_id is None or drill.document is None:
        return 0
    from tasks.runs import write_artifacts

    write_artifacts(
        run_id,
        [
            dict(
                key=f"{drill.number.lower()}-scorecard",
                type="markdown",
                data=drill.document,
                description=f"{drill.number} 演练评分 / drill scorecard",
            )
        ],
    )
    return 1
