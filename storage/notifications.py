"""The notification outbox: one row per message per destination.

A row is inserted in the same transaction as the state change that causes it, under
a unique idempotency key, so a re-executed step cannot queue it twice. Only the
sender sends: it claims a row (a conditional update, safe with several senders),
sends, then marks it sent or schedules a retry. A row is addressed to an apprise tag;
`delivered` lists the fingerprints of the tag's URLs that have it, so a retry skips
them. URLs themselves are never stored (they carry tokens).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage.db import UTCDateTime

SENDABLE = ("pending", "retrying")


class Notification(SQLModel, table=True):
    __table_args__ = (sa.Index("ix_notification_due", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300, unique=True)
    subject: str = Field(max_length=64, index=True)  # incident number
    tag: str = Field(max_length=100)
    delivered: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    title: str = Field(max_length=300)
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(default="pending", max_length=12)  # pending | sending | retrying | sent
    attempts: int = 0
    created_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    next_attempt_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    claimed_until: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    sent_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    last_error: str | None = Field(default=None, max_length=500)


def enqueue(session: Session, *, key: str, subject: str, tag: str, title: str, body: str, now: dt.datetime) -> bool:
    """Queue a message once per key; False if it was already queued."""
    exists = session.exec(select(Notification.id).where(Notification.key == key)).first()
    if exists is not None:
        return False
    session.add(
        Notification(key=key, subject=subject, tag=tag, title=title, body=body, created_at=now, next_attempt_at=now)
    )
    session.flush()
    return True


def due_ids(session: Session, *, now: dt.datetime, subject: str | None = None, limit: int = 100) -> list[int]:
    """Rows ready to send, and rows whose sender died mid-claim (their claim expired)."""
    ready = sa.and_(Notification.status.in_(SENDABLE), Notification.next_attempt_at <= now)
    stale = sa.and_(Notification.status == "sending", Notification.claimed_until < now)
    stmt = select(Notification.id).where(sa.or_(ready, stale)).order_by(Notification.next_attempt_at)
    if subject is not None:
        stmt = stmt.where(Notification.subject == subject)
    return list(session.exec(stmt.limit(limit)).all())


def claim(session: Session, *, notification_id: int, now: dt.datetime, until: dt.datetime) -> Notification | None:
    """Take a row for sending; None if another sender has it or it is no longer due."""
    ready = sa.and_(Notification.status.in_(SENDABLE), Notification.next_attempt_at <= now)
    stale = sa.and_(Notification.status == "sending", Notification.claimed_until < now)
    result = session.execute(
        sa.update(Notification)
        .where(Notification.id == notification_id, sa.or_(ready, stale))
        .values(status="sending", claimed_until=until, attempts=Notification.attempts + 1)
    )
    if result.rowcount != 1:
        return None
    return session.get(Notification, notification_id, populate_existing=True)


def mark_sent(session: Session, *, notification_id: int, now: dt.datetime, delivered: list[str]) -> None:
    session.execute(
        sa.update(Notification)
        .where(Notification.id == notification_id)
        .values(status="sent", sent_at=now, claimed_until=None, last_error=None, delivered=delivered)
    )


def mark_retry(
    session: Session, *, notification_id: int, error: str, retry_at: dt.datetime, delivered: list[str]
) -> None:
    session.execute(
        sa.update(Notification)
        .where(Notification.id == notification_id)
        .values(
            status="retrying", next_attempt_at=retry_at, claimed_until=None, last_error=error[:500], delivered=delivered
        )
    )


def notifications_for(session: Session, *, subject: str) -> list[Notification]:
    return list(
        session.exec(
            select(Notification)
            .where(Notification.subject == subject)
            .order_by(Notification.created_at, Notification.id)
        ).all()
    )
