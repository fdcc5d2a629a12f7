"""The watcher's cycle, in this process on a database of its own (SQLite and
PostgreSQL): one clock reading for every manager, a budget per manager, and a
manager that keeps failing on the supervision board until it succeeds again.
Cycles are given their clock reading, so nothing here waits for real time to pass.
Prefect is left out: the managers that need it skip, as they do without one."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
import uuid

import pytest
from sqlmodel import select

from regflow.watcher import MANAGERS, Manager, Turn, Watcher, send_notifications
from storage import notifications as outbox
from storage.db import session_scope, utcnow
from storage.heartbeats import ManagerHealth, beat
from tasks.board import WATCHER_ALIVE, board, manager_line
from tests.conftest import cli

SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def use_database(own_database):
    """A database of its own: the session platform's watcher must not send these rows."""
    return own_database


@contextlib.contextmanager
def without_prefect():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield


def watcher_name() -> str:
    return f"watcher:test:{uuid.uuid4().hex[:8]}"


def queue(subject: str, n: int, *, at: dt.datetime, tag: str = "330106.duty") -> None:
    with session_scope() as session:
        for i in range(n):
            outbox.enqueue(
                session,
                key=f"{subject}:m{i}:{tag}",
                subject=subject,
                tag=tag,
                title=f"{subject} 消息 {i}",
                body="正文",
                now=at,
            )


def rows(subject: str) -> list[outbox.Notification]:
    with session_scope() as session:
        stmt = select(outbox.Notification).where(outbox.Notification.subject == subject)
        return list(session.exec(stmt.order_by(outbox.Notification.id)).all())


def on_board(name: str, now: dt.datetime) -> list[dict]:
    return [m for m in board(now=now)["failing_managers"] if m["watcher"] == name]


def test_one_clock_reading_reaches_every_manager(use_database, receivers):
    seen: dict[str, dt.datetime] = {}

    def recording(manager: Manager) -> Manager:
        def update(turn: Turn) -> int:
            seen[manager.name] = turn.now
            return manager.update(turn)

        return Manager(manager.name, update, every=manager.every, budget=manager.budget)

    # A message due an hour from now goes out only if the sender works by the cycle's clock.
    later = utcnow() + dt.timedelta(hours=1)
    subject = f"W-{uuid.uuid4().hex[:8]}"
    queue(subject, 1, at=later)
    with without_prefect():
        done = Watcher([recording(m) for m in MANAGERS], name=watcher_name()).cycle(later)
    assert list(seen) == [m.name for m in MANAGERS]
    assert set(seen.values()) == {later}
    assert all(count >= 0 for count in done.values()), done  # none failed
    (row,) = rows(subject)
    assert row.status == "sent" and row.sent_at == later
    assert len(receivers.inbox.matching(subject)) == 1


def test_a_manager_that_keeps_failing_shows_on_the_board_until_it_succeeds(use_database):
    failing = {"now": True}

    def flaky(turn: Turn) -> int:
        if failing["now"]:
            raise RuntimeError(
                "cannot reach postgresql://regflow:hunter2@db.internal:5432/regflow (password=hunter2)\nsecond line"
            )
        return 1

    name, other = watcher_name(), watcher_name()
    watcher = Watcher([Manager("flaky", flaky)], name=name)
    t0 = utcnow()
    for i in range(2):
        assert watcher.cycle(t0 + i * SECOND) == {"flaky": -1}
    assert on_board(name, t0 + SECOND) == []  # twice may be a blip
    watcher.cycle(t0 + 2 * SECOND)
    (shown,) = on_board(name, t0 + 2 * SECOND)
    assert shown["manager"] == "flaky" and shown["failures"] == 3
    assert dt.datetime.fromisoformat(shown["since"]) == t0
    assert shown["error"].startswith("RuntimeError: cannot reach <url>")
    assert "hunter2" not in shown["error"] and "second line" not in shown["error"]
    line = manager_line(shown)
    assert line.startswith("watcher manager flaky failing since ") and line.endswith(f"(3 cycles): {shown['error']}")

    # Another watcher's managers have rows of their own.
    second = Watcher([Manager("flaky", flaky)], name=other)
    for i in range(3):
        second.cycle(t0 + i * SECOND)
    assert [m["failures"] for m in on_board(other, t0 + 2 * SECOND)] == [3]

    # `regflow board` says so, by the current clock: these failures are a second old.
    result = cli("board", "--json")
    assert [m["manager"] for m in json.loads(result.out)["failing_managers"] if m["watcher"] == name] == ["flaky"]
    assert f"{name}: watcher manager flaky failing since " in cli("board").out

    # A watcher not heard from is gone: its rows are left off, unless its heartbeat is fresh.
    gone = t0 + 2 * SECOND + WATCHER_ALIVE + SECOND
    assert on_board(name, gone) == [] and on_board(other, gone) == []
    with session_scope() as session:
        beat(session, name=name, now=gone)
    assert [m["manager"] for m in on_board(name, gone)] == ["flaky"]
    assert on_board(other, gone) == []

    failing["now"] = False
    assert watcher.cycle(t0 + 3 * SECOND) == {"flaky": 1}
    assert on_board(name, t0 + 3 * SECOND) == []
    with session_scope() as session:
        assert session.exec(select(ManagerHealth).where(ManagerHealth.watcher == name)).all() == []
    assert [m["failures"] for m in on_board(other, t0 + 3 * SECOND)] == [3]  # that one still fails

    failing["now"] = True  # a new streak counts from one
    watcher.cycle(t0 + 4 * SECOND)
    assert on_board(name, t0 + 4 * SECOND) == []


def test_the_sender_stops_at_its_budget_and_the_next_cycle_sends_the_rest(use_database, receivers):
    subject = f"W-{uuid.uuid4().hex[:8]}"
    # Queued a day ago, these come first among whatever else is due in this database.
    queue(subject, 5, at=utcnow() - dt.timedelta(days=1))
    sender = Manager("send-notifications", send_notifications, budget=0.0)
    watcher = Watcher([sender], name=watcher_name())
    now = utcnow()
    watcher.cycle(now)
    # The first row is always taken, so that a slow channel still makes progress.
    assert [r.status for r in rows(subject)] == ["sent"] + ["pending"] * 4
    sender.budget = next(m.budget for m in MANAGERS if m.name == "send-notifications")
    watcher.cycle(now + SECOND)
    assert all(r.status == "sent" and r.attempts == 1 for r in rows(subject))
    got = receivers.inbox.matching(subject)
    assert sorted(m.title for m in got) == sorted(r.title for r in rows(subject))  # each once, none twice


def test_a_manager_over_its_budget_is_logged(use_database, caplog):
    def slow(turn: Turn) -> int:
        time.sleep(0.05)
        return 0

    with caplog.at_level(logging.WARNING, logger="regflow.watcher"):
        assert Watcher([Manager("slow", slow, budget=0.01)], name=watcher_name()).cycle(utcnow()) == {"slow": 0}
    assert any("slow took" in r.getMessage() and "over its budget" in r.getMessage() for r in caplog.records)


def test_watchers_share_no_state(use_database):
    first, second = Watcher(name=watcher_name()), Watcher(name=watcher_name())
    first.state.touched.add("X-1")
    assert second.state.touched == set() and first.state.board is not second.state.board
