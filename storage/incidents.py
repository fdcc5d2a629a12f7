"""Incidents, their dispatches and reports, and the yearly number counter."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from rules.incidents import EMERGENCY
from rules.lifecycle import Lifecycle
from storage import authorities, plans  # noqa: F401  the tables its foreign keys name, mapped with it
from storage.db import UTCDateTime, upsert_insert


class IncidentBase(SQLModel):
    number: str = Field(max_length=32, unique=True)
    plan_key: str = Field(max_length=64)
    level: str = Field(max_length=4)
    title: str = Field(max_length=200)
    location: str = Field(max_length=200)
    authority_code: str = Field(foreign_key="authority.code", max_length=32, index=True)
    reporter: str | None = Field(default=None, max_length=100)


class Incident(IncidentBase, table=True):
    # The watcher looks for incidents without a flow run every second.
    __table_args__ = (sa.Index("ix_incident_without_run", "flow_run_id", "triggered_at"),)
    id: int | None = Field(default=None, primary_key=True)
    plan_version_id: int = Field(foreign_key="plan_version.id")
    status: str = Field(default="active", max_length=20, index=True)  # active | handling_ended | closed
    stage: str = Field(
        default="dispatch", max_length=32, index=True, sa_column_kwargs={"server_default": "dispatch"}
    )  # the step awaited, or "closed"
    # An exercise (应急演练): marked in every message, board and run, never counted as real.
    drill: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false()))
    # A drill's compressed time: statutory periods and policy intervals run this many times faster.
    time_scale: int = Field(default=1, sa_column=sa.Column(sa.Integer, nullable=False, server_default="1"))
    occurred_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    triggered_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    handling_ended_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    closed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    flow_run_id: uuid.UUID | None = Field(default=None, unique=True)
    # The 12315 complaint it was escalated from (the complaint names it back in its facts).
    origin: str | None = Field(default=None, max_length=32)

    @property
    def is_open(self) -> bool:
        return self.status != "closed"

    @property
    def lifecycle(self) -> Lifecycle:
        return EMERGENCY

    @property
    def summary(self) -> str:
        """One line for messages about any subject (incident or case)."""
        return f"{self.level}级，{self.location}"


class Counter(SQLModel, table=True):
    name: str = Field(primary_key=True, max_length=32)
    value: int = 0


class Dispatch(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", unique=True)
    team: str = Field(max_length=500)  # apprise tags of the on-site team
    dispatched_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))


class Report(SQLModel, table=True):
    """A written document of the incident: reports, the review, the release notice."""

    __table_args__ = (sa.UniqueConstraint("subject", "step"),)
    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=32, index=True)  # the incident or case number
    kind: str = Field(max_length=20)  # initial | progress | final | review | release | filing | decision ...
    step: str = Field(max_length=40)
    author: str = Field(max_length=100)
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    document: str = Field(sa_column=sa.Column(sa.Text, nullable=False))  # rendered Markdown
    submitted_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))


def next_number(session: Session, *, name: str) -> int:
    """The next value of a named counter, allocated inside the caller's transaction.

    Insert-if-absent first, so two first allocations of a new counter cannot both
    insert; the update then holds the row until the transaction ends."""
    session.execute(
        upsert_insert(session, Counter).values(name=name, value=0).on_conflict_do_nothing(index_elements=["name"])
    )
    stmt = sa.update(Counter).where(Counter.name == name).values(value=Counter.value + 1).returning(Counter.value)
    return session.execute(stmt).scalar_one()


def get_incident(session: Session, *, number: str) -> Incident | None:
    return session.exec(select(Incident).where(Incident.number == number.strip().upper())).first()


def incident_by_run(session: Session, *, flow_run_id: uuid.UUID) -> Incident | None:
    return session.exec(select(Incident).where(Incident.flow_run_id == flow_run_id)).first()


def list_incidents(session: Session, *, open_only: bool = False, limit: int = 200) -> list[Incident]:
    stmt = select(Incident).order_by(Incident.triggered_at.desc()).limit(limit)
    if open_only:
        stmt = stmt.where(Incident.status != "closed")
    return list(session.exec(stmt).all())


def reports_for(session: Session, *, subject: str) -> list[Report]:
    return list(
        session.exec(select(Report).where(Report.subject == subject).order_by(Report.submitted_at, Report.id)).all()
    )


def without_run(session: Session, *, older_than: dt.datetime, limit: int = 20) -> list[Incident]:
    """Open incidents that have no flow run yet (triggered while Prefect was down)."""
    return list(
        session.exec(
            select(Incident)
            .where(Incident.flow_run_id.is_(None), Incident.status != "closed", Incident.triggered_at < older_than)
            .order_by(Incident.triggered_at)
            .limit(limit)
        ).all()
    )
