"""Human steps: what an incident is waiting for, and the answer once given.

A step row is opened when the flow reaches it and answered once, from the CLI or
the Prefect UI form; the conditional update makes "answered twice" impossible.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage.db import UTCDateTime, upsert_insert


class Step(SQLModel, table=True):
    # (status, consumed_at): the watcher looks for answered, unconsumed steps every
    # second; a status index alone would walk every step ever answered.
    __table_args__ = (sa.UniqueConstraint("subject", "name"), sa.Index("ix_step_unconsumed", "status", "consumed_at"))
    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=32, index=True)  # the incident or case number
    name: str = Field(max_length=40)  # arrival, progress-3, filing, legal-review, ...
    status: str = Field(default="awaiting", max_length=12)  # awaiting | answered
    opened_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    answered_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    answered_by: str | None = Field(default=None, max_length=100)
    source: str | None = Field(default=None, max_length=8)  # cli | ui
    answer: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    # Set when the flow run has gone past the step; until then the watcher makes sure
    # an answer given while the run was not yet suspended still reaches it.
    consumed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))


def get_step(session: Session, *, subject: str, name: str) -> Step | None:
    return session.exec(select(Step).where(Step.subject == subject, Step.name == name)).first()


def open_step(session: Session, *, subject: str, name: str, now: dt.datetime) -> Step:
    """The step row, inserted if absent. The flow opening a step and a person
    answering it may insert at the same moment: insert-or-ignore, then read."""
    session.execute(
        upsert_insert(session, Step)
        .values(subject=subject, name=name, status="awaiting", opened_at=now)
        .on_conflict_do_nothing(index_elements=["subject", "name"])
    )
    return get_step(session, subject=subject, name=name)


def awaiting_step(session: Session, *, subject: str) -> Step | None:
    return session.exec(
        select(Step).where(Step.subject == subject, Step.status == "awaiting").order_by(Step.opened_at.desc())
    ).first()


def claim_answer(
    session: Session, *, step: Step, answer: dict[str, Any], by: str, source: str, now: dt.datetime
) -> bool:
    """Record the answer if the step is still awaiting; False if someone answered first."""
    result = session.execute(
        sa.update(Step)
        .where(Step.id == step.id, Step.status == "awaiting")
        .values(status="answered", answer=answer, answered_by=by, source=source, answered_at=now)
    )
    session.refresh(step)
    return result.rowcount == 1


def steps_for(session: Session, *, subject: str) -> list[Step]:
    return list(session.exec(select(Step).where(Step.subject == subject).order_by(Step.opened_at, Step.id)).all())


def answers(session: Session, *, subject: str) -> dict[str, dict[str, Any]]:
    """The answers given so far, by step name: what the step machines walk."""
    return {r.name: r.answer or {} for r in steps_for(session, subject=subject) if r.status == "answered"}


def unconsumed_answers(session: Session, *, older_than: dt.datetime, limit: int = 50) -> list[Step]:
    return list(
        session.exec(
            select(Step)
            .where(Step.status == "answered", Step.consumed_at.is_(None), Step.answered_at < older_than)
            .limit(limit)
        ).all()
    )
