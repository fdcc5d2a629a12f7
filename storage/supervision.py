"""Flags of the monthly supervision report: an authority or region whose figures call
for a measure, proposed for the province's head, and the head's decision."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage.db import UTCDateTime, upsert_insert


class SupervisionFlag(SQLModel, table=True):
    __tablename__ = "supervision_flag"
    __table_args__ = (sa.UniqueConstraint("authority", "rule", "period", name="uq_supervision_flag"),)
    id: int | None = Field(default=None, primary_key=True)
    province: str = Field(max_length=32, index=True)  # whose head decides
    authority: str = Field(max_length=32)  # the authority or region flagged
    rule: str = Field(max_length=32)  # on_time | spot_check_failures
    period: str = Field(max_length=16)  # the report's month, 2027-01
    figure: float
    threshold: float
    measure: str = Field(max_length=16)  # proposed: notice | interview | listing
    why: str = Field(max_length=500)
    raised_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    status: str = Field(default="open", max_length=12)  # open | decided
    decision: str | None = Field(default=None, max_length=16)  # a measure's key, or none
    decided_by: str | None = Field(default=None, max_length=100)
    decided_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    reason: str | None = Field(default=None, max_length=500)


def raise_flag(session: Session, *, province: str, now: dt.datetime, **fields) -> bool:
    """Record a flag once per authority, rule and period (a report made again adds
    nothing); True if it is new."""
    result = session.execute(
        upsert_insert(session, SupervisionFlag)
        .values(province=province, raised_at=now, status="open", **fields)
        .on_conflict_do_nothing(index_elements=["authority", "rule", "period"])
    )
    return bool(result.rowcount)


def flags_of(session: Session, *, provinces: list[str], open_only: bool = False) -> list[SupervisionFlag]:
    stmt = select(SupervisionFlag).where(SupervisionFlag.province.in_(provinces))
    if open_only:
        stmt = stmt.where(SupervisionFlag.status == "open")
    return list(session.exec(stmt.order_by(SupervisionFlag.period.desc(), SupervisionFlag.id)).all())
