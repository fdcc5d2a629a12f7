"""The registers on record: inspection targets and inspectors (rules/registers.py)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage import authorities  # noqa: F401  the table its foreign keys name, mapped with it
from storage.db import UTCDateTime


class InspectionTarget(SQLModel, table=True):
    __tablename__ = "inspection_target"
    uscc: str = Field(primary_key=True, max_length=18)  # 统一社会信用代码
    name: str = Field(max_length=200)
    address: str = Field(default="", max_length=300)
    authority_code: str = Field(foreign_key="authority.code", max_length=32, index=True)
    categories: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    risk: str = Field(max_length=1)  # A (lowest) .. D (highest)
    updated_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))


class Inspector(SQLModel, table=True):
    __tablename__ = "inspector"
    login: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=100)
    authority_code: str = Field(foreign_key="authority.code", max_length=32, index=True)
    qualifications: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    conflicts: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    updated_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))


def targets(session: Session, *, authority: str | None = None) -> list[InspectionTarget]:
    query = select(InspectionTarget).order_by(InspectionTarget.uscc)
    if authority is not None:
        query = query.where(InspectionTarget.authority_code == authority)
    return list(session.exec(query).all())


def inspectors(session: Session, *, authority: str | None = None) -> list[Inspector]:
    query = select(Inspector).order_by(Inspector.login)
    if authority is not None:
        query = query.where(Inspector.authority_code == authority)
    return list(session.exec(query).all())
