"""The watcher: a long-lived loop of managers that keep every promise while flows sleep.

Managers run in a fixed order, once per cycle, with one clock reading per cycle.
A manager's failure is logged and the next one still runs. Reminders come before
escalations (a reminder at the due time raises one), and the sender runs after them,
so whatever they queued goes out in the same cycle; the status artifacts of what
they touched are refreshed last, after the messages have gone. Every manager is safe with
several watchers at once: each row is claimed by a conditional update before it is
acted on.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import time
from dataclasses import dataclass
from typing import Callable

from kernel.settings import get_settings
from storage.db import session_scope, utcnow

log = logging.getLogger("regflow.watcher")


@dataclass
class Manager:
    name: str
    update: Callable[[dt.datetime], int]  # acts on what is due at `now`; returns how many
    every: float = 0.0  # seconds between runs; 0: every cycle


def hand_over_answers(now: dt.datetime) -> int:
    """Resume runs that suspended after their answer was already recorded (an answer
    given from the CLI while the run was still on its way to the step)."""
    from tasks.events import prefect_configured
    from tasks.lifecycle import pending_answers
    from tasks.runs import resume_when_suspended

    if not prefect_configured():
        return 0
    with session_scope() as session:
        waiting = pending_answers(session, older_than=now - dt.timedelta(seconds=5))
    if not waiting:
        return 0
    resumed = 0
    for number, step, answer, run_id in waiting:
        if resume_when_suspended(run_id, number, step, answer, wait_seconds=0) == "resumed":
            log.info("%s: resumed its run with the recorded answer to %s", number, step)
            resumed += 1
    return resumed


def start_missing_runs(now: dt.datetime) -> int:
    """Start the flow run of an incident or case recorded while Prefect was
    unreachable, and schedule look-back reviews that could not be scheduled."""
    from storage import cases, incidents
    from tasks.events import prefect_configured
    from tasks.runs import schedule_lookback_run, start_case_run, start_incident_run

    if not prefect_configured():
        return 0
    older = now - dt.timedelta(seconds=15)
    with session_scope() as session:
        orphans = incidents.without_run(session, older_than=older)
        matters = cases.without_run(session, older_than=older)
        lookbacks = [c.number for c in cases.lookbacks_unscheduled(session, closed_before=older)]
    for incident in orphans:
        log.info("%s: started its flow run %s", incident.number, start_incident_run(incident))
    for case in matters:
        log.info("%s: started its flow run %s", case.number, start_case_run(case))
    for number in lookbacks:
        log.info("%s: scheduled its look-back review %s", number, schedule_lookback_run(number))
    return len(orphans) + len(matters) + len(lookbacks)


_touched: set[str] = set()  # subjects reminded or escalated about since the last status refresh


def recover_crashed_runs(now: dt.datetime) -> int:
    """Reschedule dead runs of open incidents and cases (tasks/runs.py)."""
    from tasks.events import prefect_configured
    from tasks.runs import recover_crashed_runs as recover

    if not prefect_configured():
        return 0
    recovered = recover()
    for number, run_id, why in recovered:
        log.warning("%s: run %s rescheduled to start again from the top: %s", number, run_id, why)
    return len(recovered)


def send_reminders(now: dt.datetime) -> int:
    from tasks.deadlines import send_reminders as remind

    cycle = remind(now)
    _touched.update(payload["number"] for _, payload in cycle.emitted)
    return cycle.done


def climb_escalations(now: dt.datetime) -> int:
    from tasks.deadlines import climb_escalations as climb

    cycle = climb(now)
    _touched.update(payload["number"] for _, payload in cycle.emitted)
    return cycle.done


def publish_status(now: dt.datetime) -> int:
    """Refresh the status artifacts of the subjects just reminded or escalated about."""
    from tasks import status
    from tasks.events import prefect_configured

    if not _touched or not prefect_configured():
        _touched.clear()
        return 0
    numbers = set(_touched)
    _touched.clear()
    return status.publish_many(numbers, now)


def publish_board(now: dt.datetime) -> int:
    from tasks.board import publish

    return publish(now)


def send_notifications(now: dt.datetime) -> int:
    from tasks.notify import deliver_due

    result = deliver_due()
    if result.retrying:
        log.warning("%d notification(s) failed; retrying with backoff", result.retrying)
    return result.sent


def seal_audit(now: dt.datetime) -> int:
    """Chain the audit rows written since the last cycle (storage/audit.py)."""
    from storage.audit import seal
    from tasks.events import emit_audit_head

    with session_scope() as session:
        count, head = seal(session)
        seq, digest = head.seq, head.hash
    if count:
        emit_audit_head(seq, digest)
    return count


def heartbeat(now: dt.datetime) -> int:
    """Stamp this watcher's row, for `regflow doctor`."""
    import os
    import socket

    from storage.heartbeats import beat

    with session_scope() as session:
        beat(session, name=f"watcher:{socket.gethostname()}:{os.getpid()}", now=now)
    return 1


# Reminders, escalations and messages are checked every cycle: they are the clock.
# Orphans and answers are acted on only once 15 s and 5 s old, and sealing the audit
# chain has no deadline, so checking them every cycle only cost CPU (an idle cycle was
# 25 ms here, 18-20 ms without).
MANAGERS = [
    Manager("heartbeat", heartbeat, every=5),
    Manager("start-missing-runs", start_missing_runs, every=5),
    Manager("recover-crashed-runs", recover_crashed_runs, every=5),
    Manager("hand-over-answers", hand_over_answers, every=2),
    Manager("send-reminders", send_reminders),
    Manager("climb-escalations", climb_escalations),
    Manager("publish-board", publish_board),
    Manager("send-notifications", send_notifications),
    Manager("publish-status", publish_status),
    Manager("seal-audit", seal_audit, every=2),
]


class Watcher:
    def __init__(self, managers: list[Manager] | None = None):
        self.managers = managers or MANAGERS
        self.stopping = False
        self.last_run: dict[str, dt.datetime] = {}

    def cycle(self, now: dt.datetime | None = None) -> dict[str, int]:
        now = now or utcnow()
        done = {}
        for manager in self.managers:
            last = self.last_run.get(manager.name)
            if manager.every and last is not None and (now - last).total_seconds() < manager.every:
                continue
            self.last_run[manager.name] = now
            try:
                done[manager.name] = manager.update(now)
            except Exception as exc:  # one manager's trouble must not stop the others
                log.error("%s failed: %s", manager.name, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                done[manager.name] = -1
        return done

    def run(self, *, once: bool = False) -> None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s watcher %(levelname)s %(message)s")
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
