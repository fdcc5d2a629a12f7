"""Duty shifts: who is on duty when at each authority. A roster's shifts come from
its file (`source` roster); a swap exchanges two shifts' officers; an override (a
stand-in for a stretch of time) outranks the roster where they overlap."""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage import authorities  # noqa: F401  the table its foreign key names, mapped with it
from storage.db import UTCDateTime


class DutyShift(SQLModel, table=True):
    __tablename__ = "duty_shift"
    __table_args__ = (sa.Index("ix_duty_shift_when", "authority_code", "starts_at", "ends_at"),)
    id: int | None = Field(default=None, primary_key=True)
    authority_code: str = Field(foreign_key="authority.code", max_length=32)
    starts_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    ends_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    officer: str = Field(max_length=100)  # 值班员
    leader: str = Field(max_length=100)  # 带班领导
    source: str = Field(default="roster", max_length=12)  # roster | override
    note: str = Field(default="", max_length=500)  # where it came from, why it changed
    created_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    created_by: str = Field(max_length=100)


def shifts_between(session: Session, *, authority: str, start: dt.datetime, end: dt.datetime) -> list[DutyShift]:
    return list(
        session.exec(
            select(DutyShift)
            .where(DutyShift.authority_code == authority, DutyShift.starts_at < end, DutyShift.ends_at > start)
            .order_by(DutyShift.starts_at, DutyShift.id)
        ).all()
    )


def on_duty(session: Session, *, authority: str, at: dt.datetime) -> DutyShift | None:
    """The shift covering `at`: an override before the roster, the latest override first."""
    covering = shifts_between(session, authority=authority, start=at, end=at + dt.timedelta(microseconds=1))
    covering.sort(key=lambda s: (s.source == "override", s.created_at, s.id or 0), reverse=True)
    return covering[0] if covering else None


def rostered_authorities(session: Session, *, since: dt.datetime) -> list[str]:
    """Authorities that keep a roster: a shift ending after `since`."""
    return list(session.exec(select(DutyShift.authority_code).where(DutyShift.ends_at > since).distinct()).all())


def personal_tags(session: Session, tags: list[str], *, at: dt.datetime, people: Callable[[], Any]) -> list[str]:
    """The personal channels (`person.<login>`) of the officers on duty at `at` at the
    duty desks among `tags`: a message for the desk reaches the person on duty too.
    `people` gives the directory, read only where someone is on duty."""
    found = []
    for tag in tags:
        code, _, role = tag.partition(".")
        shift = on_duty(session, authority=code, at=at) if role == "duty" else None
        if shift is not None:
            found += [f"person.{p.login}" for p in people().named(shift.officer) if p.authority == code][:1]
    return found
