"""Spot-check campaigns on record: the plan as filed, and its draw with everything
needed to re-run it (seed, algorithm, the register rows drawn from and their hashes)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage import authorities  # noqa: F401  the table its foreign key names, mapped with it
from storage.db import UTCDateTime


class Campaign(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    authority_code: str = Field(foreign_key="authority.code", max_length=32, index=True)
    plan_text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    plan_sha256: str = Field(max_length=64)
    status: str = Field(default="approved", max_length=12)  # approved | drawn
    created_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    created_by: str = Field(max_length=100)
    seed: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    algorithm: str | None = Field(default=None, max_length=40)
    # The register rows the draw read (its authority's targets and inspectors) and hashes.
    snapshot: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    samples: list[dict[str, Any]] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    drawn_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    drawn_by: str | None = Field(default=None, max_length=100)
    # The `spot-check-campaign` run that creates the samples and shows their progress.
    flow_run_id: uuid.UUID | None = Field(default=None)
    publications: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0"))
    risk_item: str | None = Field(default=None, max_length=32)  # the risk item it answers (RSK-…)


def get_campaign(session: Session, *, key: str) -> Campaign | None:
    return session.exec(select(Campaign).where(Campaign.key == key.strip().lower())).first()


def list_campaigns(session: Session) -> list[Campaign]:
    return list(session.exec(select(Campaign).order_by(Campaign.created_at.desc())).all())


def without_run(session: Session, *, older_than: dt.datetime, limit: int = 20) -> list[Campaign]:
    """Drawn campaigns whose run could not be started (Prefect was away)."""
    return list(
        session.exec(
            select(Campaign)
            .where(Campaign.status == "drawn", Campaign.flow_run_id.is_(None), Campaign.drawn_at < older_than)
            .limit(limit)
        ).all()
    )


def link_flow_run(key: str, flow_run_id: uuid.UUID) -> None:
    """Record a campaign's run (once: the first run wins)."""
    from storage.db import session_scope

    with session_scope() as session:
        campaign = get_campaign(session, key=key)
        if campaign is not None and campaign.flow_run_id is None:
            campaign.flow_run_id = flow_run_id
            session.add(campaign)
