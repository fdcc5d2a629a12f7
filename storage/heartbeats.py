"""Who is alive: each watcher stamps a row every few seconds, so `regflow doctor` (and
an operator on another machine) can tell whether one is running."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage.db import UTCDateTime, upsert_insert


class Heartbeat(SQLModel, table=True):
    name: str = Field(primary_key=True, max_length=200)  # e.g. watcher:host:pid
    seen_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False, index=True))


def beat(session: Session, *, name: str, now: dt.datetime) -> None:
    stmt = upsert_insert(session, Heartbeat).values(name=name, seen_at=now)
    session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"seen_at": now}))


def alive(session: Session, *, prefix: str, since: dt.datetime) -> list[Heartbeat]:
    return list(
        session.exec(select(Heartbeat).where(Heartbeat.name.startswith(prefix), Heartbeat.seen_at >= since)).all()
    )


def seen(session: Session, *, names: list[str]) -> dict[str, dt.datetime]:
    """When each of these was last stamped (absent: never)."""
    if not names:
        return {}
    return {row.name: row.seen_at for row in session.exec(select(Heartbeat).where(Heartbeat.name.in_(names))).all()}
