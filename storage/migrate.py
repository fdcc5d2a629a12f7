"""Bring the database to the newest schema with Alembic (run before anything else)."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from kernel.errors import PlatformUnavailable
from kernel.settings import get_settings
from storage.db import engine_for

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def wait_for_database(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with engine_for(url).connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return
        except sa.exc.OperationalError as exc:
            if time.monotonic() > deadline:
                raise PlatformUnavailable(f"database unreachable: {str(exc.orig).splitlines()[0]}") from exc
            time.sleep(0.5)


def upgrade(url: str | None = None) -> None:
    url = url or get_settings().db_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    wait_for_database(url)
    command.upgrade(alembic_config(url), "head")


def current_revision(url: str | None = None) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine_for(url or get_settings().db_url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
