"""`regflow campaign …`: spot-check campaigns (双随机、一公开) — file, draw, re-run the draw."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from regflow.cli.output import BY, JSON, console, emit_json, mount, who
from storage.db import utcnow

app = typer.Typer(help="Spot-check campaigns: file the plan, draw at random, verify the draw.", no_args_is_help=True)
KEY = typer.Argument(..., help="The campaign's key (its plan's `key`).")


def register(root: typer.Typer) -> None:
    mount(root, {"campaign": app})


@app.command()
def create(file: Path = typer.Argument(..., help="The campaign plan (YAML)."), by: Optional[str] = BY) -> None:
    """File a campaign plan, approved by its authority's head; the superior authority is told.

    Example: regflow campaign create data/campaigns/example.yaml --by 赵六
    """
    from tasks.campaigns import create as file_plan

    campaign = file_plan(file, by=who(by), now=utcnow())
    console().print(f"campaign {campaign.key} filed: {campaign.name}")


@app.command()
def draw(
    key: str = KEY,
    seed: Optional[int] = typer.Option(None, min=0, help="The seed (default: a random one, recorded)."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Draw the targets and their inspectors at random, once; the record lets anyone re-run it.

    Example: regflow campaign draw 2027-q1-ebike --by 赵六
    """
    from tasks.campaigns import overview, run_draw

    run_draw(key, by=who(by), now=utcnow(), seed=seed)
    _show(overview(key), json_out)


@app.command("verify-draw")
def verify_draw(key: str = KEY, json_out: bool = JSON) -> None:
    """Re-run the recorded draw from its record (seed, algorithm, rows drawn from); exit 7 if it differs.

    Example: regflow campaign verify-draw 2027-q1-ebike
    """
    from tasks.campaigns import verify

    result = verify(key)
    if json_out:
        emit_json(result)
        return
    changed = ", ".join(result["registers_changed_since"])
    console().print(f"campaign {result['key']}: re-running {result['algorithm']} with seed {result['seed']} gives the "
                    f"recorded draw ({result['samples']} samples)"
                    + (f"; the {changed} register(s) changed since" if changed else ""))  # fmt: skip


@app.command()
def show(key: str = KEY, json_out: bool = JSON) -> None:
    """A campaign: its plan's hash, its draw and what it was drawn from.

    Example: regflow campaign show 2027-q1-ebike --json
    """
    from tasks.campaigns import overview

    _show(overview(key), json_out)


@app.command("list")
def list_(json_out: bool = JSON) -> None:
    """Campaigns, newest first.

    Example: regflow campaign list
    """
    from tasks.campaigns import listing

    rows = listing()
    if json_out:
        emit_json(rows)
        return
    table = Table("key", "name", "authority", "status", "samples", title="Campaigns")
    for r in rows:
        table.add_row(r["key"], r["name"], r["authority"], r["status"], str(r["samples"]))
    console().print(table)


def _show(data: dict, json_out: bool) -> None:
    if json_out:
        emit_json(data)
        return
    out = console()
    out.print(f"{data['key']} {data['name']} · {data['authority']} · {data['status']}")
    if data["seed"] is not None:
        out.print(f"drawn by {data['drawn_by']} with {data['algorithm']}, seed {data['seed']}")
    table = Table("category", "target", "credit code", "inspectors", title="Draw")
    for s in data["samples"]:
        table.add_row(s["category"], s["name"], s["uscc"], ", ".join(s["inspectors"]))
    out.print(table)
