"""The outbox and its sender against real receivers, on SQLite and PostgreSQL. The
sender works by the clock reading it is given, as the watcher gives it its cycle's:
backoff is waited out by moving that reading, not by sleeping."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from pathlib import Path

import pytest
from sqlmodel import select

from storage import notifications as outbox
from storage.db import session_scope, utcnow
from storage.incidents import next_number
from storage.migrate import current_revision
from tasks.notify import backoff, deliver_due, load_channels
from tests.conftest import TOKEN

SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def use_database(own_database):
    """A database of its own: no watcher of the lifecycle tests delivers these rows."""
    return own_database


def queue(subject: str, tag: str, n: int = 1) -> None:
    with session_scope() as session:
        for i in range(n):
            outbox.enqueue(
                session,
                key=f"{subject}:m{i}:{tag}",
                subject=subject,
                tag=tag,
                title=f"{subject} 消息 {i}",
                body="正文",
                now=utcnow(),
            )


def rows(subject: str) -> list[outbox.Notification]:
    with session_scope() as session:
        return list(session.exec(select(outbox.Notification).where(outbox.Notification.subject == subject)).all())


def test_schema_is_at_the_newest_migration(use_database):
    assert current_revision() is not None


def test_timestamps_come_back_in_utc(use_database):
    subject = f"T-{uuid.uuid4().hex[:8]}"
    queue(subject, "330106.duty")
    (row,) = rows(subject)
    assert row.created_at.tzinfo is not None and row.created_at.utcoffset() == dt.timedelta(0)


def test_enqueue_is_idempotent_by_key(use_database):
    subject = f"T-{uuid.uuid4().hex[:8]}"
    queue(subject, "330106.duty")
    queue(subject, "330106.duty")
    assert len(rows(subject)) == 1


def test_counter_allocates_distinct_numbers_under_concurrency(use_database):
    name, got, lock = f"C-{uuid.uuid4().hex[:8]}", [], threading.Lock()

    def take():
        for _ in range(10):
            with session_scope() as session:
                value = next_number(session, name=name)
            with lock:
                got.append(value)

    threads = [threading.Thread(target=take) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(got) == list(range(1, 41))


def test_concurrent_senders_deliver_each_message_once(use_database, receivers):
    subject = f"T-{uuid.uuid4().hex[:8]}"
    queue(subject, "330106.duty", n=30)
    queue(subject, "330106.onsite", n=10)
    channels = load_channels()
    threads = [threading.Thread(target=deliver_due, kwargs=dict(subject=subject, channels=channels)) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert all(r.status == "sent" and r.attempts == 1 for r in rows(subject))
    got = receivers.inbox.matching(subject)
    assert len(got) == 40
    assert len({(m.to, m.title) for m in got}) == 40  # no message twice
    assert {m.channel for m in got} == {"http", "smtp"}


def test_a_failing_channel_is_retried_with_backoff_and_the_secret_stays_out(use_database, receivers):
    subject = f"T-{uuid.uuid4().hex[:8]}"
    queue(subject, "330100.duty")
    channels = load_channels()
    now = utcnow()
    receivers.http.fail_with = 500
    try:
        deliver_due(subject=subject, channels=channels, now=now)
        (row,) = rows(subject)
        assert row.status == "retrying" and row.attempts == 1 and row.sent_at is None
        assert row.next_attempt_at > row.created_at
        assert row.next_attempt_at == now + backoff(1)  # backoff counted from the reading given
        assert row.last_error and "330100.duty" in row.last_error
        assert TOKEN not in row.last_error
        deliver_due(subject=subject, channels=channels, now=now)  # not due yet: backoff holds it back
        assert rows(subject)[0].attempts == 1
        now += 0.6 * SECOND
        deliver_due(subject=subject, channels=channels, now=now)  # due again, still failing
        assert rows(subject)[0].attempts == 2
    finally:
        receivers.http.fail_with = None
    now += 1.1 * SECOND
    deliver_due(subject=subject, channels=channels, now=now)
    (row,) = rows(subject)
    assert row.status == "sent" and row.attempts == 3 and row.last_error is None
    assert row.sent_at == now
    assert len(receivers.inbox.matching(subject)) == 1


def test_a_retry_skips_destinations_that_already_have_the_message(use_database, receivers, tmp_path):
    # One tag, two destinations: the HTTP one fails at first, the mail one works.
    config = tmp_path / "two.yml"
    config.write_text(
        "urls:\n"
        f"  - json://127.0.0.1:{receivers.http.port}/two/${{env:REGFLOW_TEST_TOKEN}}:\n    - tag: two.duty\n"
        f"  - mailto://127.0.0.1:{receivers.smtp.port}?from=r@localhost&to=two@x.test&mode=insecure:\n"
        "    - tag: two.duty\n",
        encoding="utf-8",
    )
    channels = load_channels(config)
    subject = f"T-{uuid.uuid4().hex[:8]}"
    queue(subject, "two.duty")
    now = utcnow()
    receivers.http.fail_with = 503
    try:
        deliver_due(subject=subject, channels=channels, now=now)
    finally:
        receivers.http.fail_with = None
    (row,) = rows(subject)
    assert row.status == "retrying" and len(row.delivered) == 1
    deliver_due(subject=subject, channels=channels, now=now + 0.6 * SECOND)
    got = receivers.inbox.matching(subject)
    assert sorted(m.channel for m in got) == ["http", "smtp"]  # mail once, not again on the retry


def test_an_escalation_whose_channel_keeps_failing_goes_out_by_the_fallback_once(use_database, receivers, tmp_path):
    from tasks.board import board

    config = tmp_path / "fallback.yml"
    config.write_text(
        "urls:\n"
        f"  - json://127.0.0.1:{receivers.http.port}/330100/duty/${{env:REGFLOW_TEST_TOKEN}}:\n    - tag: 330100.duty\n"
        f"  - mailto://127.0.0.1:{receivers.smtp.port}?from=r@localhost&to=sms@330100.test&mode=insecure:\n"
        "    - tag: 330100.fallback\n",
        encoding="utf-8",
    )
    channels = load_channels(config)
    subject = f"T-{uuid.uuid4().hex[:8]}"
    with session_scope() as session:
        outbox.enqueue(
            session,
            key=f"{subject}:escalation:1:0:330100.duty",
            subject=subject,
            tag="330100.duty",
            title=f"【督办】{subject} 初报逾期",
            body="请督促办理",
            now=utcnow(),
        )
    now = utcnow()
    receivers.http.fail_with = 500
    try:
        deliver_due(subject=subject, channels=channels, now=now)  # first failure: retried, no fallback yet
        assert [r.tag for r in rows(subject)] == ["330100.duty"]
        failing = board(now=now)["failing_messages"]
        assert any(m["subject"] == subject and m["to"] == "330100.duty" and TOKEN not in m["error"] for m in failing)
        for _ in range(3):  # keeps failing: the fallback is queued once and delivered
            now += 1.1 * SECOND
            deliver_due(subject=subject, channels=channels, now=now)
        tags = sorted(r.tag for r in rows(subject))
        assert tags == ["330100.duty", "330100.fallback"]
        fallback = next(r for r in rows(subject) if r.tag == "330100.fallback")
        assert fallback.status == "sent" and fallback.title.startswith("【备用通道 FALLBACK】")
    finally:
        receivers.http.fail_with = None
    now += 2.5 * SECOND
    deliver_due(subject=subject, channels=channels, now=now)  # the primary recovers: delivered once, late
    got = sorted(m.channel for m in receivers.inbox.matching(subject))
    assert got == ["http", "smtp"]
    assert all(r.status == "sent" for r in rows(subject))
    assert not [m for m in board(now=now)["failing_messages"] if m["subject"] == subject]


def test_a_tag_without_a_channel_stays_on_record_as_retrying(use_database, receivers):
    subject = f"T-{uuid.uuid4().hex[:8]}"
    queue(subject, "nobody.duty")
    deliver_due(subject=subject, channels=load_channels())
    (row,) = rows(subject)
    assert row.status == "retrying" and "no channel configured for tag nobody.duty" in row.last_error


def test_channel_config_with_a_missing_secret_is_a_clear_error(tmp_path):
    from kernel.errors import InvalidInput

    config = tmp_path / "c.yml"
    config.write_text("urls:\n  - json://127.0.0.1:1/${env:REGFLOW_NOT_SET_ANYWHERE}:\n    - tag: a.duty\n")
    try:
        load_channels(config)
    except InvalidInput as exc:
        assert "env 'REGFLOW_NOT_SET_ANYWHERE' is not set" in str(exc)
    else:
        raise AssertionError("a missing secret must be refused")
    assert Path(config).exists()
