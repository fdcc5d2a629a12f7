"""Deadlines as rows: due time in UTC and the rule that produced it, in words."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from rules.reminders import reminder_at
from storage.db import UTCDateTime


class Deadline(SQLModel, table=True):
    """A due time and what the watcher does about it. `next_at` is the watermark:
    when the next reminder is due (NULL once met, cancelled or paused), so the
    watcher reads only the rows whose time has come."""

    # (status, next_at): the watcher's query seeks straight to open rows that are due;
    # with next_at alone SQLite chose the status index and scanned every open row.
    __table_args__ = (
        sa.UniqueConstraint("subject", "name"),
        sa.Index("ix_deadline_open_due", "status", "due_at"),
        sa.Index("ix_deadline_watermark", "status", "next_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=32, index=True)  # the incident or case number that owes it
    name: str = Field(max_length=40)
    # The authority that owes it: the subject's own, or e.g. a bureau asked to assist.
    # Reminders go to its desk and a miss climbs from it.
    authority: str = Field(max_length=32, index=True)
    due_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    rule: str = Field(max_length=500)
    status: str = Field(default="open", max_length=12)  # open | met | cancelled
    created_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    closed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    starts_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    next_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    reminders_sent: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    # The reminder and escalation policy as it was when the deadline was set.
    policy: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False, server_default="{}")
    )
    paused_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    paused_seconds: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    extensions: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False, server_default="[]")
    )


def get_deadline(session: Session, *, subject: str, name: str) -> Deadline | None:
    return session.exec(select(Deadline).where(Deadline.subject == subject, Deadline.name == name)).first()


def add_deadline(
    session: Session,
    *,
    subject: str,
    name: str,
    due_at: dt.datetime,
    rule: str,
    now: dt.datetime,
    policy: dict[str, Any],
    authority: str,
) -> Deadline:
    existing = get_deadline(session, subject=subject, name=name)
    if existing:
        return existing
    row = Deadline(subject=subject, name=name, authority=authority, due_at=due_at, rule=rule, policy=policy)
    # Its clock starts now, and the watcher first looks at it when the first reminder is due.
    row.created_at = row.starts_at = now
    row.next_at = reminder_at(0, starts_at=now, due_at=due_at, policy=policy["reminders"]).at
    session.add(row)
    session.flush()
    return row


def close_deadline(session: Session, *, subject: str, name: str, status: str, now: dt.datetime) -> Deadline | None:
    """Mark an open deadline met or cancelled; a closed one is left as it was."""
    row = get_deadline(session, subject=subject, name=name)
    if row is not None and row.status in ("open", "paused"):
        row.status, row.closed_at, row.next_at = status, now, None
        session.add(row)
    return row


def deadlines_for(session: Session, *, subject: str) -> list[Deadline]:
    return list(session.exec(select(Deadline).where(Deadline.subject == subject).order_by(Deadline.due_at)).all())


def listed_for(session: Session, *, subject: str) -> list[dict[str, Any]]:
    """A subject's deadlines as a `show` command lists them (and prints with `--json`)."""
    return [
        {"name": d.name, "status": d.status, "due_at": d.due_at, "rule": d.rule}
        for d in deadlines_for(session, subject=subject)
    ]


# A table the watcher polls by watermark: an open row is due once its `next_at` has come.
Watermarked = TypeVar("Watermarked", bound=SQLModel)


def due_rows(session: Session, table: type[Watermarked], *, now: dt.datetime, limit: int) -> list[Watermarked]:
    """Open rows of a watermarked table whose `next_at` has come, locked for this
    watcher (other watchers on PostgreSQL skip them rather than wait)."""
    stmt = select(table).where(table.next_at <= now, table.status == "open").order_by(table.next_at).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.exec(stmt).all())


def due_now(session: Session, *, now: dt.datetime, limit: int = 200) -> list[Deadline]:
    """Open deadlines whose next reminder has come."""
    return due_rows(session, Deadline, now=now, limit=limit)


def advance(session: Session, *, deadline: Deadline, sent: int, next_at: dt.datetime) -> bool:
    """Move the watermark past a reminder, if nobody else has; False if they had."""
    result = session.execute(
        sa.update(Deadline)
        .where(
            Deadline.id == deadline.id, Deadline.status == "open", Deadline.reminders_sent == deadline.reminders_sent
        )
        .values(reminders_sent=sent, next_at=next_at)
    )
    return result.rowcount == 1


def open_deadlines(session: Session) -> list[Deadline]:
    return list(
        session.exec(select(Deadline).where(Deadline.status.in_(("open", "paused"))).order_by(Deadline.due_at)).all()
    )
