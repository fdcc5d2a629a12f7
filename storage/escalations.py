"""Escalations: a missed deadline climbing the supervision ladder until acknowledged."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage import deadlines  # also maps the tables its foreign keys name
from storage.db import UTCDateTime


class Escalation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    deadline_id: int = Field(foreign_key="deadline.id", unique=True)
    subject: str = Field(max_length=64, index=True)  # incident number
    status: str = Field(default="open", max_length=16)  # open | acknowledged | resolved
    step: int = 0  # the last rung told (0 = the nearest superior, at the miss)
    policy: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    raised_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    next_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime, index=True))
    acked_by: str | None = Field(default=None, max_length=100)
    acked_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    closed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))


def for_deadline(session: Session, *, deadline_id: int) -> Escalation | None:
    return session.exec(select(Escalation).where(Escalation.deadline_id == deadline_id)).first()


def due_now(session: Session, *, now: dt.datetime, limit: int = 200) -> list[Escalation]:
    return deadlines.due_rows(session, Escalation, now=now, limit=limit)


def climb(session: Session, *, escalation: Escalation, step: int, next_at: dt.datetime | None) -> bool:
    result = session.execute(
        sa.update(Escalation)
        .where(Escalation.id == escalation.id, Escalation.status == "open", Escalation.step == escalation.step)
        .values(step=step, next_at=next_at)
    )
    return result.rowcount == 1


def close(session: Session, *, escalation_id: int, status: str, now: dt.datetime, by: str | None = None) -> bool:
    """Acknowledge or resolve an open escalation; False if it was not open."""
    values: dict[str, Any] = dict(status=status, closed_at=now, next_at=None)
    if status == "acknowledged":
        values.update(acked_by=by, acked_at=now)
    result = session.execute(
        sa.update(Escalation).where(Escalation.id == escalation_id, Escalation.status == "open").values(**values)
    )
    return result.rowcount == 1


def list_escalations(session: Session, *, open_only: bool = False, limit: int = 500) -> list[Escalation]:
    stmt = select(Escalation).order_by(Escalation.raised_at.desc()).limit(limit)
    if open_only:
        stmt = stmt.where(Escalation.status == "open")
    return list(session.exec(stmt).all())
