"""Engine, sessions and the column types every table shares."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

from kernel.errors import PlatformUnavailable
from kernel.settings import get_settings


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@lru_cache(maxsize=8)
def engine_for(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_discipline(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    return engine


def _sqlite_discipline(engine: sa.Engine) -> None:
    # Take the write lock at BEGIN: a deferred transaction that later writes can fail
    # with "database is locked" instead of waiting (DESIGN.md decision 6).
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def get_engine() -> sa.Engine:
    return engine_for(get_settings().db_url)


@contextmanager
def session_scope() -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    try:
        with Session(get_engine(), expire_on_commit=False) as session:
            yield session
            session.commit()
    except OperationalError as exc:
        raise PlatformUnavailable(f"database unavailable: {_first_line(exc.orig)}") from exc


def _first_line(error: object) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def upsert_insert(session: Session, table):
    """An INSERT supporting ON CONFLICT for the session's database (PostgreSQL or SQLite):
    the insert-or-ignore that lets two first writers of the same row both succeed."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


@contextmanager
def claimed(key: str) -> Iterator[bool]:
    """Whether this process may act on `key` alone for the block: a PostgreSQL advisory
    lock on a connection of its own, so that two watchers do not both do the same slow
    work; the block's own sessions are free to write. SQLite serves one machine, whose
    writers take turns anyway (and a held transaction would lock them out): always True."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        yield True
        return
    query = sa.text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))")
    with engine.connect() as connection, connection.begin():  # the lock ends with the transaction
        yield bool(connection.execute(query, {"key": key}).scalar())


def json_column() -> sa.Column:
    return sa.Column(sa.JSON, nullable=False, default=dict)


def ensure_postgres_database(url: str) -> None:
    """Create the database of `url` if the server lacks it (a DBA may have made it)."""
    import psycopg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{target.database}"')
    except psycopg.Error as exc:
        raise PlatformUnavailable(f"PostgreSQL at {target.host}:{target.port}: {str(exc).splitlines()[0]}") from exc
