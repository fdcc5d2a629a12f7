"""The watcher: a long-lived loop of managers that keep every promise while flows sleep.

Managers run in a fixed order, once per cycle. The cycle reads the clock once and
hands that reading to every manager, the sender included, so what one manager
queues at `now` the next sees as due at `now`, and a test moves the clock instead of
waiting. Reminders come before escalations (a reminder at the due time raises one),
and the sender runs after them, so whatever they queued goes out in the same cycle;
the status artifacts of what they touched are refreshed last, after the messages
have gone. Every manager is safe with several watchers at once: each row is claimed
by a conditional update before it is acted on.

Each manager has a time budget: those that loop over rows take no new row once it is
spent and leave the rest to the next cycle, so a slow channel or a slow Prefect
cannot hold the reminders of the next cycle back; any manager that overruns it is
logged. A manager's failure is logged, and the next one still runs; one that keeps
failing is recorded in the database (storage/heartbeats.py) and shows on the
supervision board until it succeeds again.

What carries over from one cycle to the next lives on the Watcher (its `State`):
several watchers in one process, as tests and the benchmark run them, share nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from kernel.settings import get_settings
from storage.db import session_scope, utcnow

if TYPE_CHECKING:
    from tasks.board import Published

log = logging.getLogger("regflow.watcher")

# A dead watcher's health rows leave the board as soon as it is no longer seen alive
# (tasks/board.py); after this long they are deleted.
FORGET_DEAD_AFTER = dt.timedelta(days=1)


def _published() -> Published:
    from tasks.board import Published

    return Published()


@dataclass
class State:
    """What a watcher's managers carry from one cycle to the next."""

    name: str  # as its heartbeat and its managers' health rows are keyed: watcher:host:pid
    touched: set[str] = field(default_factory=set)  # subjects reminded or escalated about, status not yet refreshed
    board: Published = field(default_factory=_published)  # what publish-board last published
    credit: tuple | None = None  # the publications' and listings' states the public page last showed


@dataclass
class Turn:
    """A manager's turn in a cycle: the cycle's clock reading, its budget, the watcher's state."""

    now: dt.datetime
    budget: float  # seconds
    state: State
    started: float = field(default_factory=time.monotonic)

    def spent(self) -> bool:
        return time.monotonic() - self.started >= self.budget


@dataclass
class Manager:
    name: str
    update: Callable[[Turn], int]  # acts on what is due at `turn.now`; returns how many
    every: float = 0.0  # seconds between runs; 0: every cycle
    budget: float = 5.0  # seconds; a manager that loops over rows stops taking new ones after it


def hand_over_answers(turn: Turn) -> int:
    """Resume runs that suspended after their answer was already recorded (an answer
    given from the CLI while the run was still on its way to the step)."""
    from tasks.events import prefect_configured
    from tasks.lifecycle import pending_answers
    from tasks.runs import resume_when_suspended

    if not prefect_configured():
        return 0
    with session_scope() as session:
        waiting = pending_answers(session, older_than=turn.now - dt.timedelta(seconds=5))
    resumed = 0
    for tried, (number, step, answer, run_id) in enumerate(waiting):
        if tried and turn.spent():
            break  # still pending: the next cycle finds the rest
        if resume_when_suspended(run_id, number, step, answer, wait_seconds=0) == "resumed":
            log.info("%s: resumed its run with the recorded answer to %s", number, step)
            resumed += 1
    return resumed


def start_incident_runs(turn: Turn) -> int:
    """Create the flow run of an incident recorded without one: the trigger gives
    Prefect a fraction of a second (`run_start_wait_seconds`) and leaves the rest here,
    so a burst of triggers is not held up by Prefect's server. Several watchers share
    the work: each incident is claimed for the time its run is created."""
    from storage import incidents
    from storage.db import claimed
    from tasks.events import prefect_configured
    from tasks.runs import start_incident_run

    if not prefect_configured():
        return 0
    grace = dt.timedelta(seconds=get_settings().run_start_grace_seconds)
    with session_scope() as session:
        numbers = [i.number for i in incidents.without_run(session, older_than=turn.now - grace, limit=200)]
    done = 0
    for number in numbers:
        if done and turn.spent():
            break  # what is left is still without a run next cycle
        with claimed(f"start-run:{number}") as mine:
            if not mine:
                continue  # another watcher is creating it
            with session_scope() as session:
                incident = incidents.get_incident(session, number=number)
            if incident.flow_run_id is not None:
                continue  # created since the query, by the trigger or another watcher
            log.info("%s: started its flow run %s", number, start_incident_run(incident))
        done += 1
    return done


def start_missing_runs(turn: Turn) -> int:
    """Start the flow run of a case recorded while Prefect was unreachable, a drawn
    campaign's run likewise, and schedule look-back reviews and the ends of publication
    and listing periods that could not be scheduled."""
    from storage import campaigns, cases
    from tasks.credit import ends_unscheduled
    from tasks.events import prefect_configured
    from tasks.runs import schedule_end_run, schedule_lookback_run, start_campaign_run, start_case_run

    if not prefect_configured():
        return 0
    older = turn.now - dt.timedelta(seconds=15)
    with session_scope() as session:
        matters = cases.without_run(session, older_than=older)
        lookbacks = [c.number for c in cases.lookbacks_unscheduled(session, closed_before=older)]
        drawn = [(c.key, c.name, c.authority_code) for c in campaigns.without_run(session, older_than=older)]
        ends = ends_unscheduled(session)
    # What is not started within the budget is still without a run next cycle.
    work = (
        [(c.number, "started its flow run", start_case_run, c) for c in matters]
        + [(n, "scheduled its look-back review", schedule_lookback_run, n) for n in lookbacks]
        + [(f"campaign {c[0]}", "started its flow run", lambda c: start_campaign_run(*c), c) for c in drawn]
        + [(n, "scheduled the end of its period", lambda e: schedule_end_run(*e), (n, at)) for n, at in ends]
    )
    done = 0
    for number, what, start, item in work:
        if done and turn.spent():
            break
        log.info("%s: %s %s", number, what, start(item))
        done += 1
    return done


def recover_crashed_runs(turn: Turn) -> int:
    """Reschedule dead runs of open incidents and cases (tasks/runs.py)."""
    from tasks.events import prefect_configured
    from tasks.runs import recover_crashed_runs as recover

    if not prefect_configured():
        return 0
    recovered = recover(turn.now)
    for number, run_id, why in recovered:
        log.warning("%s: run %s rescheduled to start again from the top: %s", number, run_id, why)
    return len(recovered)


def send_reminders(turn: Turn) -> int:
    from tasks.deadlines import send_reminders as remind
    from tasks.risk import leads_for_missed

    cycle = remind(turn.now)
    turn.state.touched.update(payload["number"] for _, payload in cycle.emitted)
    for lead in leads_for_missed(turn.now):  # a producer's missed obligation: a lead against it
        log.info("%s: lead opened for a producer's missed obligation", lead)
    return cycle.done


def end_credit_periods(turn: Turn) -> int:
    """A publication or listing whose period ended an hour ago and whose scheduled run
    has not ended it (Prefect was away): ended here, so none stays public too long."""
    from tasks.credit import overdue_ends

    ended = overdue_ends(turn.now)
    for number in ended:
        log.warning("%s: its period had ended; its scheduled run had not ended it", number)
    return len(ended)


def publish_credit(turn: Turn) -> int:
    """The public page of penalties and listings, from what is committed, once at start
    and then whenever what it shows has changed (an end the watcher itself made, a change
    whose own render failed)."""
    from tasks.credit import refresh_public_if_changed

    turn.state.credit, rendered = refresh_public_if_changed(turn.now, turn.state.credit)
    return int(rendered)


def climb_escalations(turn: Turn) -> int:
    from tasks.deadlines import climb_escalations as climb

    cycle = climb(turn.now)
    turn.state.touched.update(payload["number"] for _, payload in cycle.emitted)
    return cycle.done


def publish_status(turn: Turn) -> int:
    """Refresh the status artifacts of the subjects just reminded or escalated about;
    those the budget leaves out wait for the next cycle."""
    from tasks import status
    from tasks.events import prefect_configured

    touched = turn.state.touched
    if not touched or not prefect_configured():
        touched.clear()
        return 0
    published = 0
    for tried, number in enumerate(sorted(touched)):
        if tried and turn.spent():
            break
        published += status.publish_softly(number, turn.now)
        touched.discard(number)
    return published


def publish_board(turn: Turn) -> int:
    from tasks.board import publish

    return publish(turn.now, last=turn.state.board)


def send_notifications(turn: Turn) -> int:
    from tasks.notify import deliver_due

    result = deliver_due(now=turn.now, budget=turn.budget)
    if result.retrying:
        log.warning("%d notification(s) failed; retrying with backoff", result.retrying)
    if result.left:
        log.warning("%d notification(s) left for the next cycle: the sender's budget was spent", result.left)
    return result.sent


def seal_audit(turn: Turn) -> int:
    """Chain the audit rows written since the last cycle and anchor the head (tasks/audit.py)."""
    from tasks.audit import seal_and_anchor

    return seal_and_anchor(turn.now)[0]


def warn_of_roster_gaps(turn: Turn) -> int:
    """Tell an authority's head, a day ahead, of a stretch with nobody on duty."""
    from tasks.rosters import warn_of_gaps

    return warn_of_gaps(turn.now)


def heartbeat(turn: Turn) -> int:
    """Stamp this watcher's row, for `regflow doctor` and the board; drop the health
    rows dead watchers left behind."""
    from storage.heartbeats import beat, forget_dead

    with session_scope() as session:
        beat(session, name=turn.state.name, now=turn.now)
        forget_dead(session, before=turn.now - FORGET_DEAD_AFTER)
    return 1


# Reminders, escalations and messages are checked every cycle: they are the clock, and
# so are incidents waiting for their run, whose creation gets a short budget so that a
# busy Prefect cannot hold the reminders back. Other orphans and answers are acted on
# only once 15 s and 5 s old, and sealing the audit chain has no deadline, so checking
# them every cycle only cost CPU. The sender gets the longest budget: it is the one
# that waits on the network, row after row.
MANAGERS = (
    Manager("heartbeat", heartbeat, every=5),
    Manager("start-incident-runs", start_incident_runs, budget=2),
    Manager("start-missing-runs", start_missing_runs, every=5),
    Manager("recover-crashed-runs", recover_crashed_runs, every=5),
    Manager("hand-over-answers", hand_over_answers, every=2),
    Manager("send-reminders", send_reminders),
    Manager("end-credit-periods", end_credit_periods, every=60),
    Manager("publish-credit", publish_credit, every=60),
    Manager("climb-escalations", climb_escalations),
    Manager("publish-board", publish_board),
    Manager("send-notifications", send_notifications, budget=10),
    Manager("publish-status", publish_status),
    Manager("seal-audit", seal_audit, every=2),
    Manager("warn-of-roster-gaps", warn_of_roster_gaps, every=60),
)


def error_line(exc: BaseException) -> str:
    """An exception as one line fit for a log and the board: no URL, no credential."""
    from storage.heartbeats import redact

    return redact(f"{type(exc).__name__}: {exc}") if str(exc) else type(exc).__name__


class Watcher:
    def __init__(self, managers: list[Manager] | tuple[Manager, ...] | None = None, *, name: str | None = None):
        self.managers = list(managers or MANAGERS)
        self.state = State(name=name or f"watcher:{socket.gethostname()}:{os.getpid()}")
        self.stopping = False
        self.last_run: dict[str, dt.datetime] = {}
        self.failures: dict[str, int] = {}  # runs in a row that failed, by manager

    def cycle(self, now: dt.datetime | None = None) -> dict[str, int]:
        now = now or utcnow()
        done = {}
        for manager in self.managers:
            last = self.last_run.get(manager.name)
            if manager.every and last is not None and (now - last).total_seconds() < manager.every:
                continue
            self.last_run[manager.name] = now
            turn = Turn(now=now, budget=manager.budget, state=self.state)
            try:
                done[manager.name] = manager.update(turn)
            except Exception as exc:  # one manager's trouble must not stop the others
                error = error_line(exc)
                log.error("%s failed: %s", manager.name, error)
                done[manager.name] = -1
                self._failed(manager.name, error, now)
            else:
                if self.failures.get(manager.name):
                    self._recovered(manager.name)
            took = time.monotonic() - turn.started
            if took > manager.budget:
                log.warning("%s took %.1fs, over its budget of %.1fs", manager.name, took, manager.budget)
        return done

    def _failed(self, manager: str, error: str, now: dt.datetime) -> None:
        from storage.heartbeats import failed

        self.failures[manager] = self.failures.get(manager, 0) + 1
        try:
            with session_scope() as session:
                failed(session, watcher=self.state.name, manager=manager, error=error, now=now)
        except Exception as exc:  # the database may be what fails: the log has it already
            log.debug("%s: failure not recorded: %s", manager, error_line(exc))

    def _recovered(self, manager: str) -> None:
        from storage.heartbeats import recovered

        try:
            with session_scope() as session:
                recovered(session, watcher=self.state.name, manager=manager)
        except Exception as exc:  # kept as failing, to clear on its next success
            log.warning("%s: recovery not recorded: %s", manager, error_line(exc))
            return
        log.info("%s recovered after %d failed run(s)", manager, self.failures.pop(manager))

    def run(self, *, once: bool = False) -> None:
        from regflow.logs import configure

        configure("watcher")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per Prefect request drowned the log
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        interval = get_settings().outbox_poll_seconds
        if not once:
            from regflow.prewarmed import share_tls_contexts

            share_tls_contexts()  # it opens Prefect clients every cycle
        log.info("watching (every %.1fs)", interval)
        while not self.stopping:
            started = time.monotonic()
            self.cycle()
            if once:
                return
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
