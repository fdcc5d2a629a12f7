"""Enforcement cases and 12315 complaints: one table, because both are matters a
bureau handles through human steps with statutory deadlines, documents and a flow
run; `kind` tells them apart and the number's prefix says it (CASE-, CMP-)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from rules.cases import LIFECYCLES
from rules.lifecycle import Lifecycle
from rules.risk import VOLUNTARY_RECALL
from storage import authorities  # noqa: F401  the tables its foreign keys name, mapped with it
from storage.db import UTCDateTime

MONEY = dict(sa_type=sa.Numeric(14, 2))


class Case(SQLModel, table=True):
    __tablename__ = "enforcement_case"  # CASE is an SQL keyword
    __table_args__ = (sa.Index("ix_case_without_run", "flow_run_id", "received_at"),)
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True)
    kind: str = Field(default="case", max_length=12)  # case | complaint
    title: str = Field(max_length=200)  # the matter (案由) or the complaint's subject
    party: str = Field(max_length=200)  # 当事人 / the business complained about
    party_uscc: str | None = Field(default=None, max_length=18, index=True)  # as the decision names it
    source: str = Field(max_length=20)  # complaint | report | spot_check | referral | risk_alert | lookback
    detail: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    authority_code: str = Field(foreign_key="authority.code", max_length=32, index=True)
    handler: str | None = Field(default=None, max_length=100)
    reporter: str | None = Field(default=None, max_length=100)  # complainant or reporter
    reporter_contact: str | None = Field(default=None, max_length=200)
    real_name: bool = False  # a real-name reporter is told whether a case was filed
    linked_to: str | None = Field(default=None, max_length=32)  # the case or complaint it came from
    stage: str = Field(default="filing", max_length=32, index=True)  # the step awaited, or the end reached
    status: str = Field(default="open", max_length=16, index=True)  # open | closed
    outcome: str | None = Field(default=None, max_length=24)  # not_filed | penalised | no_penalty | transferred ...
    received_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    filed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    closed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    clock_paused_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    fine: Decimal | None = Field(default=None, **MONEY)
    surcharge: Decimal | None = Field(default=None, **MONEY)
    rectification: bool = False
    rules_hash: str = Field(max_length=64)  # the statutory rule file (with overrides) it started with
    flow_run_id: uuid.UUID | None = Field(default=None, unique=True)
    # Listed supervision (挂牌督办): who listed it, how often progress is owed, by when.
    listed_by: str | None = Field(default=None, max_length=32)
    report_every: str | None = Field(default=None, max_length=16)
    finish_by: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    supervision_reports: int = 0
    lookback_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    lookback_run_id: uuid.UUID | None = Field(default=None)
    facts: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False, server_default="{}")
    )

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @property
    def lifecycle(self) -> Lifecycle:
        """Its own lifecycle; a look-back review after closing is `rules.cases.LOOKBACK`;
        a recall the producer starts itself begins at its plan."""
        if self.kind == "recall" and self.facts.get("mode") == "voluntary":
            return VOLUNTARY_RECALL
        return LIFECYCLES[self.kind]

    @property
    def summary(self) -> str:
        return f"当事人 {self.party}"


def get_case(session: Session, *, number: str) -> Case | None:
    return session.exec(select(Case).where(Case.number == number.strip().upper())).first()


def case_by_run(session: Session, *, flow_run_id: uuid.UUID) -> Case | None:
    return session.exec(select(Case).where(Case.flow_run_id == flow_run_id)).first()


def list_cases(
    session: Session, *, kind: str | None = None, stage: str | None = None, open_only: bool = False, limit: int = 200
) -> list[Case]:
    stmt = select(Case).order_by(Case.received_at.desc()).limit(limit)
    if kind:
        stmt = stmt.where(Case.kind == kind)
    if stage:
        stmt = stmt.where(Case.stage == stage)
    if open_only:
        stmt = stmt.where(Case.status == "open")
    return list(session.exec(stmt).all())


def without_run(session: Session, *, older_than: dt.datetime, limit: int = 20) -> list[Case]:
    """Open matters that have no flow run yet (received while Prefect was down)."""
    return list(
        session.exec(
            select(Case)
            .where(Case.flow_run_id.is_(None), Case.status == "open", Case.received_at < older_than)
            .order_by(Case.received_at)
            .limit(limit)
        ).all()
    )


def lookbacks_unscheduled(session: Session, *, closed_before: dt.datetime, limit: int = 20) -> list[Case]:
    """Cases due a look-back review whose scheduled run could not be created."""
    return list(
        session.exec(
            select(Case)
            .where(Case.lookback_at.is_not(None), Case.lookback_run_id.is_(None), Case.closed_at < closed_before)
            .limit(limit)
        ).all()
    )
