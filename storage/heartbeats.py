"""Who is alive: each watcher stamps a row every few seconds, so `regflow doctor` (and
an operator on another machine) can tell whether one is running. Beside it, each
watcher's managers that are failing, so the supervision board can say which, since
when and why: a reminder that is not going out must be seen by those it is for, not
only by whoever reads the watcher's log."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage.db import UTCDateTime, upsert_insert

ERROR_CHARS = 200
# Errors come from drivers and HTTP clients, which name the URL they failed on, and a
# URL may carry a password or a webhook token; a board is read by many.
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S+")
_CREDENTIAL = re.compile(r"(?i)\b(password|passwd|pwd|token|secret|key|apikey)\s*[=:]\s*\S+")


class Heartbeat(SQLModel, table=True):
    name: str = Field(primary_key=True, max_length=200)  # e.g. watcher:host:pid
    seen_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False, index=True))


class ManagerHealth(SQLModel, table=True):
    """A watcher's manager whose runs fail, one row while it keeps failing; gone once
    it succeeds again."""

    __tablename__ = "manager_health"
    watcher: str = Field(primary_key=True, max_length=200)  # the watcher's heartbeat name
    manager: str = Field(primary_key=True, max_length=64)
    failures: int = 1  # runs in a row
    failing_since: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    failed_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False, index=True))
    error: str = Field(default="", max_length=ERROR_CHARS)


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


def redact(text: str) -> str:
    """The first line of an error, without URLs or credentials, short enough for a board."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = _CREDENTIAL.sub(lambda m: f"{m.group(1)}=***", _URL.sub("<url>", line))
    return line if len(line) <= ERROR_CHARS else line[: ERROR_CHARS - 1] + "…"


def failed(session: Session, *, watcher: str, manager: str, error: str, now: dt.datetime) -> None:
    """Count one more failed run of a manager; the first one of a streak sets since when."""
    error = redact(error)
    stmt = upsert_insert(session, ManagerHealth).values(
        watcher=watcher, manager=manager, failures=1, failing_since=now, failed_at=now, error=error
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["watcher", "manager"],
            set_={"failures": ManagerHealth.failures + 1, "failed_at": now, "error": error},
        )
    )


def recovered(session: Session, *, watcher: str, manager: str) -> None:
    session.execute(sa.delete(ManagerHealth).where(ManagerHealth.watcher == watcher, ManagerHealth.manager == manager))


def failing(session: Session, *, at_least: int, alive_since: dt.datetime) -> list[ManagerHealth]:
    """Managers that failed `at_least` runs in a row, of watchers alive since then: by
    their heartbeat, or by a failure recorded since (a watcher whose heartbeat is what
    fails is alive all the same). A dead watcher's rows stay behind, unseen."""
    fresh = select(Heartbeat.name).where(Heartbeat.seen_at >= alive_since)
    stmt = (
        select(ManagerHealth)
        .where(
            ManagerHealth.failures >= at_least,
            sa.or_(ManagerHealth.failed_at >= alive_since, ManagerHealth.watcher.in_(fresh)),
        )
        .order_by(ManagerHealth.failing_since, ManagerHealth.watcher, ManagerHealth.manager)
    )
    return list(session.exec(stmt).all())


def forget_dead(session: Session, *, before: dt.datetime) -> int:
    """Drop the rows of watchers gone before then (a live one's failing manager renews its row each run)."""
    return session.execute(sa.delete(ManagerHealth).where(ManagerHealth.failed_at < before)).rowcount
