"""The append-only audit log: one row per state change, in the change's transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage.db import UTCDateTime, json_column


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False, index=True))
    actor: str = Field(max_length=100)
    action: str = Field(max_length=64)
    subject: str = Field(max_length=64, index=True)  # e.g. an incident number
    detail: dict[str, Any] = Field(sa_column=json_column())


def record(session: Session, *, at: dt.datetime, actor: str, action: str, subject: str,
           **detail: Any) -> AuditEvent:
    event = AuditEvent(at=at, actor=actor, action=action, subject=subject, detail=detail)
    session.add(event)
    return event


def events_for(session: Session, *, subject: str, action: str | None = None) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.subject == subject)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    return list(session.exec(stmt.order_by(AuditEvent.at, AuditEvent.id)).all())
