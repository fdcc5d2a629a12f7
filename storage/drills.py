"""Drills (应急演练): which scenario an exercise incident followed, at what speed, and
its scorecard once it ended."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage.db import UTCDateTime


class Drill(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True)  # the drill incident's number
    scenario: str = Field(max_length=200)
    scenario_hash: str = Field(max_length=64)  # the scenario file as it was run
    speed: int
    started_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    finished_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    scorecard: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    document: str | None = Field(default=None, sa_column=sa.Column(sa.Text))  # the scorecard in Markdown


def get_drill(session: Session, *, number: str) -> Drill | None:
    return session.exec(select(Drill).where(Drill.number == number.strip().upper())).first()


def list_drills(session: Session, *, limit: int = 50) -> list[Drill]:
    return list(session.exec(select(Drill).order_by(Drill.started_at.desc()).limit(limit)).all())
