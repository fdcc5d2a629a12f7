"""`regflow action …`: the action items post-incident reviews assign."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from regflow.cli.output import BY, JSON, console, emit_json, mount, only_open, who
from storage.db import utcnow

app = typer.Typer(help="Action items from post-incident reviews: list them, mark them done.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    mount(root, {"action": app})


@app.command("list")
def list_(
    open_only: bool = only_open("action items"),
    authority: Optional[str] = typer.Option(None, help="Only those this authority owns."),
    json_out: bool = JSON,
) -> None:
    """Action items with their owner, due date and deadline.

    Example: regflow action list --open --authority 330106
    """
    from tasks.actions import listing

    rows = listing(open_only=open_only, authority=authority)
    if json_out:
        emit_json(rows)
        return
    console().print(action_table(rows))


def action_table(rows: list[dict]) -> Table:
    from tasks.render import local_time

    table = Table("id", "incident", "what", "authority", "owner", "due", "status", title="Action items")
    for r in rows:
        status = f"done by {r['done_by']}" if r["status"] == "done" else f"open ({r['deadline']})"
        table.add_row(str(r["id"]), r["incident"], r["what"], r["authority"], r["owner"],
                      local_time(r["due_at"]) if r["due_at"] else r["due_on"], status)  # fmt: skip
    return table


@app.command()
def done(
    item: int = typer.Argument(..., help="The action item's id (regflow action list)."),
    note: str = typer.Option(..., help="What was done."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Mark an action item done (its owner, or the owner authority's duty officer or head).

    Example: regflow action done 3 --by 张三 --note "已完成全区电梯维保单位约谈"
    """
    from kernel.settings import get_settings
    from tasks.actions import complete
    from tasks.notify import deliver_now

    done_item = complete(item, by=who(by), note=note, now=utcnow())
    deliver_now(done_item.subject, wait=get_settings().trigger_delivery_seconds)
    if json_out:
        emit_json({"id": done_item.id, "incident": done_item.subject, "status": done_item.status})
        return
    console().print(f"action item {done_item.id} of {done_item.subject} done")
