"""Risk monitoring on record: every signal as delivered (never lost, never counted
twice), the risk item it was grouped into (beside its subject row, an
`enforcement_case` row of kind `risk`, RSK-…), and each recall (kind `recall`, RCL-…)
with its figures."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage.db import UTCDateTime


class RiskSignal(SQLModel, table=True):
    __tablename__ = "risk_signal"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=32, unique=True)  # the same signal delivered twice is one row
    item: str = Field(max_length=32, index=True)  # the risk item it counts in
    source: str = Field(max_length=24)
    category: str = Field(max_length=60)
    product: str = Field(max_length=200)
    model: str = Field(default="", max_length=100)
    batch: str = Field(default="", max_length=100)
    uscc: str = Field(default="", max_length=18, index=True)
    enterprise: str = Field(default="", max_length=200)
    region: str = Field(max_length=32)
    harm: str = Field(max_length=16)
    count: int = 1
    text: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    received_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    repeats: int = 0  # deliveries of the same signal after the first


class RiskItem(SQLModel, table=True):
    __tablename__ = "risk_item"
    __table_args__ = (sa.Index("ix_risk_item_open", "fingerprint", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True)
    fingerprint: str = Field(max_length=32)
    status: str = Field(default="open", max_length=16)  # open | closed (mirrors its subject)
    category: str = Field(max_length=60)
    product: str = Field(max_length=200)
    model: str = Field(default="", max_length=100)
    batch: str = Field(default="", max_length=100)
    uscc: str = Field(default="", max_length=18, index=True)
    enterprise: str = Field(default="", max_length=200)
    region: str = Field(max_length=32)
    grade: str = Field(max_length=8)
    worst_harm: str = Field(default="none", max_length=16)
    signals: int = 0  # signals counted (their counts summed, repeats included)
    first_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    last_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    snoozed_until: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    outcome: str | None = Field(default=None, max_length=16)  # the head's decision


class Recall(SQLModel, table=True):
    __tablename__ = "recall"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True)
    uscc: str = Field(max_length=18, index=True)
    producer: str = Field(max_length=200)
    product: str = Field(max_length=200)
    mode: str = Field(max_length=12)  # voluntary | notified
    affected: int | None = None  # units the plan covers
    recalled: int = 0  # units recalled so far (its latest report)
    progress_reports: int = 0
    completed_on: dt.date | None = None
    rate: float | None = None  # at the assessment


def item_by_number(session: Session, number: str) -> RiskItem | None:
    return session.exec(select(RiskItem).where(RiskItem.number == number.strip().upper())).first()


def open_items(session: Session, fingerprints: list[str]) -> list[RiskItem]:
    if not fingerprints:
        return []
    query = select(RiskItem).where(RiskItem.status == "open", RiskItem.fingerprint.in_(fingerprints))
    return list(session.exec(query))


def signals_by_key(session: Session, keys: list[str]) -> dict[str, RiskSignal]:
    found: dict[str, RiskSignal] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        found.update({s.key: s for s in session.exec(select(RiskSignal).where(RiskSignal.key.in_(chunk)))})
    return found


def signals_of(
    session: Session, item: str, *, since: dt.datetime | None = None, last: int | None = None
) -> list[RiskSignal]:
    """An item's signals in time order: from `since`, or only the `last` few."""
    query = select(RiskSignal).where(RiskSignal.item == item)
    if since is not None:
        query = query.where(RiskSignal.at >= since)
    if last is not None:
        return list(reversed(session.exec(query.order_by(RiskSignal.at.desc()).limit(last)).all()))
    return list(session.exec(query.order_by(RiskSignal.at)))


def items(session: Session, *, authorities: tuple[str, ...] | None = None, status: str | None = None) -> list[RiskItem]:
    query = select(RiskItem).order_by(RiskItem.id.desc())
    if authorities is not None:
        query = query.where(RiskItem.region.in_(authorities))
    if status:
        query = query.where(RiskItem.status == status)
    return list(session.exec(query))


def recall_by_number(session: Session, number: str) -> Recall | None:
    return session.exec(select(Recall).where(Recall.number == number.strip().upper())).first()


def recent_signals(session: Session, *, limit: int = 50) -> list[RiskSignal]:
    return list(session.exec(select(RiskSignal).order_by(RiskSignal.id.desc()).limit(limit)))
