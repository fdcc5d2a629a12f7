"""Benchmarks: each prints its figures and a ratio against a baseline run in the same process."""

from __future__ import annotations

import os
from pathlib import Path


def use_sqlite_home(workdir: Path) -> None:
    """Point regflow at a fresh home and SQLite database in `workdir`, migrated."""
    os.environ.update(
        REGFLOW_HOME=str(workdir),
        REGFLOW_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
        REGFLOW_APPRISE_CONFIG=str(workdir / "apprise.yml"),
    )
    from kernel.settings import get_settings

    get_settings.cache_clear()
    from regflow.devstack import prepare_database

    prepare_database()
