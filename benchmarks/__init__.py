"""Benchmarks: each prints its figures and a ratio against a baseline run in the same process."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def stop_cleanly_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit, so a benchmark that is killed (a
    timeout, a closed terminal) still runs its `finally:` and stops the platform and
    processes it started in sessions of their own, which no signal to its group reaches."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, _frame: sys.exit(128 + signum))


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
