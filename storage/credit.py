"""Credit supervision on record: each publication of a penalty decision (PUB-…), each
serious-violation listing (SVL-…) and each referral to a partner department (REF-…),
beside their subject rows (`enforcement_case` rows of kinds `publication`, `listing`,
`referral`, which carry the steps, deadlines and flow runs).

A natural person's identity number is never stored: only a keyed digest, so the
person's record can be found by the number without the number being kept."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage.db import UTCDateTime

MONEY = dict(sa_type=sa.Numeric(14, 2))


class Publication(SQLModel, table=True):
    __tablename__ = "publication"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True)
    case: str = Field(max_length=32, index=True)  # the decided case
    authority_code: str = Field(max_length=32, index=True)
    party: str = Field(max_length=200)
    party_kind: str = Field(max_length=20)  # enterprise | individual_business | person
    uscc: str = Field(default="", max_length=18, index=True)
    person_digest: str = Field(default="", max_length=64, index=True)
    registered_with: str = Field(default="", max_length=32)  # the party's registration authority
    measures: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    restriction_months: int | None = None  # a restriction or ban's length: longer than 3 years, so is publication
    fine: Decimal | None = Field(default=None, **MONEY)
    matter: str = Field(max_length=200)
    decided_on: dt.date
    sector: str = Field(default="general", max_length=20)
    heavier_fine: bool = False  # fined at the heavier end of the benchmark (a listing may follow)
    # pending (to publish) | published | withdrawn | ended
    state: str = Field(default="pending", max_length=12, index=True)
    period: str = Field(default="", max_length=8)  # how long it stays published
    ends_early: bool = True  # whether the party may apply to end it early
    published_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    ends_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    end_run_id: uuid.UUID | None = None
    ended_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    end_reason: str = Field(default="", max_length=16)  # expired | early | revoked | changed
    corrections: int = 0
    applied_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))  # early end asked

    @property
    def current(self) -> bool:
        return self.state == "published"


class Listing(SQLModel, table=True):
    __tablename__ = "serious_listing"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True)
    case: str = Field(max_length=32, index=True)  # the case whose violation it lists
    authority_code: str = Field(max_length=32, index=True)
    party: str = Field(max_length=200)
    uscc: str = Field(default="", max_length=18, index=True)
    criterion: str = Field(max_length=32)  # the key of data/rules/credit.yaml's criteria
    # proposed | refused | listed | removed
    state: str = Field(default="proposed", max_length=12, index=True)
    listed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    expires_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    expiry_run_id: uuid.UUID | None = None
    applied_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    removed_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    removal: str = Field(default="", max_length=16)  # expired | early

    @property
    def current(self) -> bool:
        return self.state == "listed"


class Referral(SQLModel, table=True):
    __tablename__ = "credit_referral"
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True)
    about: str = Field(max_length=32, index=True)  # the publication or listing referred
    partner: str = Field(max_length=40)  # its key in data/partners.yaml
    department: str = Field(max_length=100)
    # As the partners file had them when it was referred: the file may change since.
    channel: str = Field(default="", max_length=60)
    ack_within: str = Field(default="", max_length=8)
    feedback_within: str = Field(default="", max_length=8)
    uscc: str = Field(default="", max_length=18, index=True)
    party: str = Field(max_length=200)
    acknowledged_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    measures: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, server_default=""))
    feedback_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))


def by_number(session: Session, table: type[Any], number: str, *, lock: bool = False) -> Any:
    """One row by its number; `lock`: held until the transaction ends (PostgreSQL), read
    afresh, so two that would change it (a scheduled end and a withdrawal) go in turn."""
    query = select(table).where(table.number == number.strip().upper())
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.exec(query).first()


def rows(session: Session, table: type[Any], *, authorities: tuple[str, ...] | None = None, **equal: Any) -> list:
    """A table's rows, newest first, of the authorities given and with the values given."""
    query = select(table).order_by(table.id.desc())
    if authorities is not None and hasattr(table, "authority_code"):
        query = query.where(table.authority_code.in_(authorities))
    for name, value in equal.items():
        if value is not None:
            query = query.where(getattr(table, name) == value)
    return list(session.exec(query))


def of_party(session: Session, table: type[Any], *, uscc: str = "", digest: str = "") -> list:
    """Every row about one party: by its USCC, or a person by the digest of their number."""
    if uscc:
        return list(session.exec(select(table).where(table.uscc == uscc).order_by(table.id)))
    if digest and hasattr(table, "person_digest"):
        return list(session.exec(select(table).where(table.person_digest == digest).order_by(table.id)))
    return []
