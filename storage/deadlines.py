"""Deadlines as rows: due time in UTC and the rule that produced it, in words."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage.db import UTCDateTime


class Deadline(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("incident_id", "name"),
                      sa.Index("ix_deadline_open_due", "status", "due_at"))
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    name: str = Field(max_length=40)
    due_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    rule: str = Field(max_length=500)
    status: str = Field(default="open", max_length=12)  # open | met | cancelled
    created_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    closed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))


def add_deadline(session: Session, *, incident_id: int, name: str, due_at: dt.datetime, rule: str,
                 now: dt.datetime) -> Deadline:
    existing = session.exec(select(Deadline).where(Deadline.incident_id == incident_id,
                                                   Deadline.name == name)).first()
    if existing:
        return existing
    row = Deadline(incident_id=incident_id, name=name, due_at=due_at, rule=rule, created_at=now)
    session.add(row)
    session.flush()
    return row


def close_deadline(session: Session, *, incident_id: int, name: str, status: str,
                   now: dt.datetime) -> Deadline | None:
    """Mark an open deadline met or cancelled; a closed one is left as it was."""
    row = session.exec(select(Deadline).where(Deadline.incident_id == incident_id,
                                              Deadline.name == name)).first()
    if row is not None and row.status == "open":
        row.status, row.closed_at = status, now
        session.add(row)
    return row


def deadlines_for(session: Session, *, incident_id: int) -> list[Deadline]:
    return list(session.exec(select(Deadline).where(Deadline.incident_id == incident_id)
                             .order_by(Deadline.due_at)).all())
