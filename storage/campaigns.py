"""Spot-check campaigns on record: the plan as filed, and its draw with everything
needed to re-run it (seed, algorithm, the register rows drawn from and their hashes)."""

from __future__ import annotations

import datetime as dt
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


def get_campaign(session: Session, *, key: str) -> Campaign | None:
    return session.exec(select(Campaign).where(Campaign.key == key.strip().lower())).first()


def list_campaigns(session: Session) -> list[Campaign]:
    return list(session.exec(select(Campaign).order_by(Campaign.created_at.desc())).all())
