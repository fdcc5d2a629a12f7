"""Log files that rotate, as text or as JSON lines.

`regflow up` reads each child's output through a pipe and writes it to
$REGFLOW_HOME/logs/<component>.log, rotated at REGFLOW_LOG_MAX_BYTES with
REGFLOW_LOG_BACKUPS old files kept (under supervisord, supervisord rotates; under
systemd, journald). With REGFLOW_LOG_FORMAT=json (`--log-format json`) every line is a
JSON object with its time, component and message, for operators who ship logs to a
collector; a line a child already wrote as JSON (the watcher's own) passes unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
import subprocess
import threading
from pathlib import Path
from typing import IO

from kernel.settings import get_settings


def configure(component: str) -> None:
    """Logging of one of regflow's own processes (the watcher), to standard error, in
    the configured format."""
    handler = logging.StreamHandler()
    if get_settings().log_format == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "{levelname}{name}{message}",
                style="{",
                rename_fields={"levelname": "level", "name": "logger"},
                static_fields={"component": component},
                timestamp="time",  # ISO 8601, UTC
            )
        )
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {component} %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def rotating(path: Path) -> logging.handlers.RotatingFileHandler:
    settings = get_settings()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=settings.log_max_bytes, backupCount=settings.log_backups, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def capture(proc: subprocess.Popen, path: Path, component: str) -> threading.Thread:
    """Copy `proc`'s output, line by line, into the rotating log at `path`."""
    handler = rotating(path)
    as_json = get_settings().log_format == "json"

    def copy(stream: IO[str]) -> None:
        with stream:
            for line in stream:
                line = line.rstrip("\n")
                if as_json and not (line.startswith("{") and line.endswith("}")):
                    line = json.dumps(
                        {"time": dt.datetime.now().astimezone().isoformat(), "component": component, "message": line},
                        ensure_ascii=False,
                    )
                handler.emit(logging.makeLogRecord({"msg": line, "args": None}))
        handler.close()

    thread = threading.Thread(target=copy, args=(proc.stdout,), name=f"log-{component}", daemon=True)
    thread.start()
    return thread
