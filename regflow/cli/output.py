"""Console output: rich tables for people, `--json` for programs."""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import os
import sys
from typing import Any, Callable, Iterator

import typer
from rich.console import Console

# Options every command spells the same way.
JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")
BY = typer.Option(None, "--by", help="Who acts (default: $REGFLOW_USER or your login name).")


def only_open(what: str) -> Any:
    """`--open` on a listing: only the `what` still open."""
    return typer.Option(False, "--open", help=f"Only {what} still open.")


def mount(root: typer.Typer, groups: dict[str, typer.Typer], commands: tuple[Callable, ...] = ()) -> None:
    """A module's command groups (`regflow db …`) and top-level commands, on the root app."""
    for name, group in groups.items():
        root.add_typer(group, name=name)
    for command in commands:
        root.command()(command)


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


def day_or_today(value: dt.datetime | None) -> str:
    """A date option as ISO 8601, today (local time) when it is not given."""
    from storage.db import utcnow
    from tasks.render import local_time

    return (value.date() if value else dt.date.fromisoformat(local_time(utcnow())[:10])).isoformat()


def chosen(value: bool | None, flags: str) -> bool:
    """A required --x/--no-x switch: refused in one line when neither is given."""
    if value is None:
        from kernel.errors import InvalidInput

        raise InvalidInput(f"give {flags}")
    return value


def id_table(*columns: str | tuple[str, int], title: str | None = None) -> Any:
    """A table whose identifiers are never cut, in an 80-column terminal or piped: a
    (name, width) column keeps at least that width, and every cell folds rather than
    ends in an ellipsis."""
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        name, width = column if isinstance(column, tuple) else (column, None)
        table.add_column(name, min_width=width, overflow="fold")
    return table


def deadline_table(deadlines: list[dict[str, Any]], *, owed_by: bool = False) -> Any:
    """A subject's deadlines as `show` prints them: label and name, due (local time), status."""
    from rich.table import Table

    from rules.lifecycles import label
    from tasks.render import local_time

    table = Table("deadline", *(("owed by",) if owed_by else ()), "due", "status", title="Deadlines")
    for d in deadlines:
        owed = (d["authority"],) if owed_by else ()
        table.add_row(f"{label(d['name'])} {d['name']}", *owed, local_time(d["due_at"]), d["status"])
    return table


def who(by: str | None) -> str:
    """The person acting: --by, else $REGFLOW_USER, else the login name. With
    REGFLOW_IDENTITY=login (production) only the login: --by may name only yourself."""
    from kernel.settings import get_settings

    login = getpass.getuser()
    if get_settings().identity != "login":
        return by or os.environ.get("REGFLOW_USER") or login
    if by and by != login:
        from kernel.errors import Forbidden
        from rules.people import load_people

        if login not in {p.login for p in load_people(get_settings().people_file).named(by)}:
            raise Forbidden(f"you are logged in as {login!r}: you may act only as yourself, not as {by!r}")
    return by or login


@contextlib.contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr for long operations; yields `advance(n)`. Hidden when
    stderr is not a terminal, so logs and `--json` output stay clean."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
