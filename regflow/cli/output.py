"""Console output: rich tables for people, `--json` for programs."""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import os
import re
import sys
from typing import Any, Callable, Iterator

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

# Options every command spells the same way.
JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")
BY = typer.Option(None, "--by", help="Who acts (default: $REGFLOW_USER or your login name).")


def one_of(default: Any, *values: str, help: str, flag: str | None = None) -> Any:
    """An option with fixed choices: shown in help as a|b|c and offered by shell
    completion. The rules check the value (one message, whatever the caller)."""
    names = (flag,) if flag else ()
    return typer.Option(default, *names, metavar="|".join(values), help=help, autocompletion=lambda: list(values))


LEVEL = one_of(..., "I", "II", "III", "IV", flag="--level", help="Response level (响应级别).")


def only_open(what: str) -> Any:
    """`--open` on a listing: only the `what` still open."""
    return typer.Option(False, "--open", help=f"Only {what} still open.")


def mount(root: typer.Typer, groups: dict[str, typer.Typer], commands: tuple[Callable, ...] = ()) -> None:
    """A module's command groups (`regflow db …`) and top-level commands, on the root app."""
    for name, group in groups.items():
        root.add_typer(group, name=name)
    for command in commands:
        root.command()(command)


# Columns whose values are identifiers a user copies into the next command.
ID_HEADERS = frozenset(
    {"number", "id", "incident", "case", "sample", "subject", "item", "code", "key", "login", "credit code", "period"}
)
# A cell that reads as a record number (INC-2027-000123, CASE-…), whatever its header.
_NUMBER = re.compile(r"^[A-Z]{2,}(-[A-Z0-9]+)+$")


class _Console(Console):
    def print(self, *objects: Any, **kwargs: Any) -> None:
        for item in objects:
            if isinstance(item, Table):
                keep_identifiers_whole(item)
        super().print(*objects, **kwargs)


def keep_identifiers_whole(table: Table) -> Table:
    """However narrow the terminal (80 columns, or a pipe, which rich takes as 80), an
    identifier is never cut or wrapped: its column keeps its widest value, and the
    other columns fold their text onto more lines instead of ending in an ellipsis."""
    for column in table.columns:
        column.overflow = "fold"
        cells = [str(cell) for cell in column.cells]
        if str(column.header) in ID_HEADERS or (cells and all(_NUMBER.match(c) for c in cells if c)):
            column.no_wrap = True
            column.min_width = max([cell_len(str(column.header)), *(cell_len(c) for c in cells)])
    return table


def console() -> Console:
    # Built per call so the current sys.stdout is used (tests redirect it).
    return _Console(file=sys.stdout, highlight=False, soft_wrap=True, markup=False)


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
    """A table with a (name, width) column kept at least that wide (console() also keeps
    every identifier whole)."""
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
