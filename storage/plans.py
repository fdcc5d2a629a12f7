"""Plan versions: each distinct plan file content is kept, keyed by its hash."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from rules.plans import LoadedPlan, Plan
from storage.db import UTCDateTime, upsert_insert, utcnow


class PlanVersion(SQLModel, table=True):
    __tablename__ = "plan_version"
    __table_args__ = (sa.UniqueConstraint("key", "content_hash"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, index=True)
    content_hash: str = Field(max_length=64)
    name: str = Field(max_length=200)
    source: str = Field(max_length=500)
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    loaded_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))

    def plan(self) -> Plan:
        from rules.plans import parse_plan

        return parse_plan(self.body)


def register_plan(session: Session, *, loaded: LoadedPlan) -> PlanVersion:
    """The stored version for this content, created the first time it is seen.
    Insert-or-ignore: two first triggers of a new plan version at once both succeed."""
    session.execute(
        upsert_insert(session, PlanVersion)
        .values(
            key=loaded.plan.key,
            content_hash=loaded.content_hash,
            name=loaded.plan.name,
            source=loaded.source,
            body=loaded.raw,
            loaded_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["key", "content_hash"])
    )
    return session.exec(
        select(PlanVersion).where(PlanVersion.key == loaded.plan.key, PlanVersion.content_hash == loaded.content_hash)
    ).one()
