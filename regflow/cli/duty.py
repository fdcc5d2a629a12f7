"""`regflow duty …`: duty rosters (值班表) — import, who is on duty, swaps, overrides."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from kernel.settings import get_settings
from regflow.cli.output import BY, JSON, console, emit_json, mount, who
from storage.db import utcnow

app = typer.Typer(help="Duty rosters: who is on duty when, per authority.", no_args_is_help=True)
REASON = typer.Option(..., help="Why (on the audit log).")


def register(root: typer.Typer) -> None:
    mount(root, {"duty": app})


def _when(text: Optional[str]) -> dt.datetime:
    from rules.incidents import parse_when

    return parse_when(text, tz=get_settings().timezone) if text else utcnow()


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="The roster CSV: authority,start,end,officer,leader."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Import a roster (the authority's head): every row valid, or nothing is imported.

    Example: regflow duty import data/rosters/330106.csv --by 赵六
    """
    from tasks.rosters import import_roster

    result = import_roster(file, by=who(by), now=utcnow())
    if json_out:
        emit_json(result)
        return
    console().print(f"{file}: {result['added']} shift(s) added, {result['unchanged']} already on the roster")


@app.command()
def load(
    directory: Optional[Path] = typer.Argument(None, help="Directory of roster CSVs (default: data/rosters)."),
) -> None:
    """Load every roster file of a directory, as the platform does when it starts.

    Example: regflow duty load data/rosters
    """
    from tasks.rosters import load_rosters

    result = load_rosters(directory or get_settings().rosters_dir, now=utcnow())
    console().print(f"{result['added']} shift(s) added, {result['unchanged']} already on the roster")


@app.command("who")
def who_(
    authority: str = typer.Option(..., help="Authority code, e.g. 330106."),
    at: Optional[str] = typer.Option(None, help="ISO 8601 time (default: now)."),
    json_out: bool = JSON,
) -> None:
    """Who is on duty: the duty officer and the leader on duty.

    Example: regflow duty who --authority 330106 --at 2026-02-17T10:00
    """
    from tasks.rosters import who as on_duty

    when = _when(at)
    shift = on_duty(authority, when)
    if json_out:
        emit_json({"authority": authority, "at": when, "on_duty": shift})
        return
    if shift is None:
        console().print(f"{authority}: nobody is on duty at {_local(when)} (see `regflow doctor`)")
        return
    console().print(
        f"{authority} at {_local(when)}: 值班员 officer {shift['officer']}, 带班领导 leader {shift['leader']} "
        f"(shift {shift['id']}, {_local(shift['starts_at'])} – {_local(shift['ends_at'])}"
        + (", override)" if shift["source"] == "override" else ")")
    )


@app.command("list")
def list_(
    authority: str = typer.Option(..., help="Authority code."),
    start: Optional[str] = typer.Option(None, "--from", help="ISO 8601 (default: now)."),
    days: int = typer.Option(7, min=1, max=366, help="How many days."),
    json_out: bool = JSON,
) -> None:
    """The shifts of an authority over the coming days.

    Example: regflow duty list --authority 330106 --from 2026-02-14 --days 10
    """
    from tasks.rosters import shifts

    begin = _when(start)
    rows = shifts(authority, begin, begin + dt.timedelta(days=days))
    if json_out:
        emit_json(rows)
        return
    table = Table("id", "from", "to", "officer", "leader", "source", title=f"Duty roster of {authority}")
    for r in rows:
        table.add_row(str(r["id"]), _local(r["starts_at"]), _local(r["ends_at"]), r["officer"], r["leader"],
                      r["source"])  # fmt: skip
    console().print(table)


@app.command()
def swap(
    first: int = typer.Argument(..., help="A shift's id (regflow duty list)."),
    second: int = typer.Argument(..., help="The other shift's id."),
    reason: str = REASON,
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Exchange the officers of two shifts (the authority's head), on the audit log.

    Example: regflow duty swap 12 15 --reason "家中有事，与王五换班" --by 赵六
    """
    from tasks.rosters import swap as exchange

    a, b = exchange(first, second, by=who(by), reason=reason, now=utcnow())
    if json_out:
        emit_json({"shifts": [{"id": a.id, "officer": a.officer}, {"id": b.id, "officer": b.officer}]})
        return
    console().print(f"shift {a.id}: {a.officer}; shift {b.id}: {b.officer}")


@app.command()
def override(
    authority: str = typer.Option(..., help="Authority code."),
    start: str = typer.Option(..., "--from", help="ISO 8601 start."),
    end: str = typer.Option(..., "--to", help="ISO 8601 end."),
    officer: str = typer.Option(..., help="Who is on duty instead."),
    leader: Optional[str] = typer.Option(None, help="The leader on duty (default: the roster's)."),
    reason: str = REASON,
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Put someone else on duty for a stretch of time (the authority's head); it outranks
    the roster there and is on the audit log.

    Example: regflow duty override --authority 330106 --from 2026-02-17T08:30 --to 2026-02-18T08:30
    --officer 王五 --reason "李四病假" --by 赵六
    """
    from tasks.rosters import override as put_on_duty

    row = put_on_duty(authority, _when(start), _when(end), officer=officer, leader=leader, by=who(by),
                      reason=reason, now=utcnow())  # fmt: skip
    if json_out:
        emit_json({"id": row.id, "officer": row.officer, "leader": row.leader})
        return
    console().print(f"shift {row.id}: {row.officer} on duty {_local(row.starts_at)} – {_local(row.ends_at)}")


def _local(when: Any) -> str:
    from tasks.render import local_time

    return local_time(when)
