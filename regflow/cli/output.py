"""Console output: rich tables for people, `--json` for programs."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sys
from typing import Any

from rich.console import Console


def console() -> Console:
    # Built per call so the current sys.stdout is used (tests redirect it).
    return Console(file=sys.stdout, highlight=False, soft_wrap=True, markup=False)


def err(message: str) -> None:
    print(message.splitlines()[0] if message else "error", file=sys.stderr)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=_default) + "\n")


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def who(by: str | None) -> str:
    """The person answering: --by, else $REGFLOW_USER, else the login name."""
    return by or os.environ.get("REGFLOW_USER") or getpass.getuser()
