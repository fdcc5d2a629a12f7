"""Spot-check samples on record, beside their subject row (an `enforcement_case` row of
kind `sample`, which carries the steps, deadlines and flow run): what the campaign
drew, the blind code the lab sees, each result, and what was last published."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage.db import UTCDateTime


class SpotSample(SQLModel, table=True):
    __tablename__ = "spot_sample"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True)  # its subject: SMP-…
    campaign_key: str = Field(max_length=64, index=True)
    category: str = Field(max_length=100)
    uscc: str = Field(max_length=18, index=True)
    enterprise: str = Field(max_length=200)
    inspectors: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    blind_code: str | None = Field(default=None, max_length=20, unique=True)
    product: str = Field(default="", max_length=100)
    model: str = Field(default="", max_length=100)
    batch: str = Field(default="", max_length=100)
    sampled_on: dt.date | None = None
    producer_authority: str = Field(default="", max_length=32)
    # The lab's result, then the re-test's (another lab) after an objection.
    lab: str = Field(default="", max_length=100)
    passed: bool | None = None
    failing_items: str = Field(default="", max_length=2000)
    retest_lab: str = Field(default="", max_length=100)
    retest_passed: bool | None = None
    retest_failing_items: str = Field(default="", max_length=2000)
    # The final result (pass | fail), once no objection can change it, and when.
    result: str | None = Field(default=None, max_length=8, index=True)
    final_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    # What the public page shows now (None: not published yet), and every correction.
    published: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    published_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    corrections: list[dict[str, Any]] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))


def sample_by_number(session: Session, number: str) -> SpotSample | None:
    return session.exec(select(SpotSample).where(SpotSample.number == number.strip().upper())).first()


def sample_by_code(session: Session, code: str) -> SpotSample | None:
    return session.exec(select(SpotSample).where(SpotSample.blind_code == code.strip().upper())).first()


def samples_of(session: Session, campaign_key: str) -> list[SpotSample]:
    return list(session.exec(select(SpotSample).where(SpotSample.campaign_key == campaign_key).order_by(SpotSample.id)))


def all_samples(session: Session) -> list[SpotSample]:
    return list(session.exec(select(SpotSample)))
