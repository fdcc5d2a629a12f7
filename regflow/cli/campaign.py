"""`regflow campaign …`: spot-check campaigns (双随机、一公开) — file, draw, re-run the draw."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from kernel.settings import get_settings
from regflow.cli.output import BY, JSON, console, emit_json, id_table, mount, who
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
    Then start the campaign's run, which creates a sample (and its run) per target drawn.

    Example: regflow campaign draw 2027-q1-ebike --by 赵六
    """
    from kernel.errors import PlatformUnavailable
    from tasks.campaigns import overview, run_draw
    from tasks.runs import start_campaign_run

    campaign = run_draw(key, by=who(by), now=utcnow(), seed=seed)
    try:
        start_campaign_run(campaign.key, campaign.name, campaign.authority_code)
        failed = None
    except PlatformUnavailable as exc:
        failed = exc
    _show(overview(key), json_out)  # the draw stands whether or not its run started
    if failed is not None:
        raise PlatformUnavailable(
            f"campaign {campaign.key} is drawn, but its run could not be started ({failed}); "
            "the watcher starts it once Prefect is reachable"
        )
    if not json_out:
        console().print(f"flow run: {get_settings().flow_run_url(overview(key)['flow_run_id'])}")


@app.command()
def publish(key: str = KEY, by: Optional[str] = BY, json_out: bool = JSON) -> None:
    """Publish the final results not yet public (and corrections) on the public page and
    feeds; the superior authority is told. Results are due within 20 working days.

    Example: regflow campaign publish 2027-q1-xihu --by 赵六
    """
    from tasks.samples import publish as publish_results
    from tasks.samples import publish_progress

    now = utcnow()
    result = publish_results(key, by=who(by), now=now)
    try:
        publish_progress(key, now=now)
    except Exception:  # the progress page is a view: the publication stands without it
        pass
    if json_out:
        emit_json({k: v for k, v in result.items() if k != "document"})
        return
    console().print(f"campaign {key}: publication {result['publication']}, {len(result['published'])} result(s) "
                    f"new or corrected")  # fmt: skip
    for path in result["files"]:
        console().print(f"  {path}")


@app.command()
def progress(key: str = KEY, json_out: bool = JSON) -> None:
    """A campaign's samples by category (drawn, sampled, tested, objected, failed,
    published) and those late.

    Example: regflow campaign progress 2027-q1-xihu
    """
    from tasks.render import local_time
    from tasks.samples import progress as read

    data = read(key, now=utcnow())
    if json_out:
        emit_json(data)
        return
    out = console()
    out.print(f"{data['campaign']} {data['name']}: {data['created']}/{data['drawn']} samples created, "
              f"{data['publications']} publication(s)")  # fmt: skip
    columns = ("drawn", "sampled", "tested", "objected", "failed", "published")
    table = Table("category", *columns, title="Progress")
    for category, counts in data["by_category"].items():
        table.add_row(category, *(str(counts[c]) for c in columns))
    out.print(table)
    if data["late"]:
        late = Table("sample", "deadline", "owed by", "due", title="Late")
        for x in data["late"]:
            late.add_row(x["number"], x["deadline"], x["authority"], local_time(x["due_at"]))
        out.print(late)


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
    table = id_table("category", "target", ("credit code", 18), "inspectors", ("sample", 15), title="Draw")
    numbers = {(s["uscc"], s["category"]): s["number"] for s in data.get("created", [])}
    for s in data["samples"]:
        table.add_row(s["category"], s["name"], s["uscc"], ", ".join(s["inspectors"]),
                      numbers.get((s["uscc"], s["category"]), ""))  # fmt: skip
    out.print(table)
    for reason in data["excluded"].values():
        out.print(f"excluded: {reason}")
