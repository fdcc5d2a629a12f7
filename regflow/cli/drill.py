"""`regflow drill`: run an emergency plan as an exercise (应急演练), and `regflow drills`."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from kernel.settings import PROJECT_ROOT
from regflow.cli.output import JSON, LEVEL, console, emit_json
from storage.db import session_scope, utcnow

STANDARD = PROJECT_ROOT / "data" / "drills" / "standard.yaml"


def drill(
    plan: str = typer.Argument(..., help="Plan key, e.g. product-quality (see `regflow plans list`)."),
    level: str = LEVEL,
    speed: int = typer.Option(60, "--speed", help="Time compression: 60 runs an hour of the exercise in a minute."),
    scenario: Path = typer.Option(STANDARD, "--scenario", help="Scenario file (see data/drills/)."),
    max_minutes: float = typer.Option(60.0, "--max-minutes", help="Give up (and score) after this many real minutes."),
    json_out: bool = typer.Option(False, "--json", help="Print the scorecard as JSON."),
) -> None:
    """Run a plan as a drill: a real flow run on compressed time, simulated responders
    answering on time or late as the scenario says, then a scorecard.

    The drill incident is marked as a drill in its run name and tags, in every message
    and document, and on the supervision board. Steps the scenario leaves out wait for
    a person (Prefect UI or CLI). Ctrl-C stops the responders and scores what happened.

    Example: regflow drill product-quality --level II --speed 60
    """
    from regflow.cli.records import start_run
    from rules.drills import DRILL_MARK, load_scenario
    from tasks import drills
    from tasks.runs import start_incident_run

    loaded = load_scenario(scenario)
    now = utcnow()
    incident = drills.start(loaded, plan=plan, level=level, speed=speed, now=now)
    say = (lambda line: None) if json_out else _say
    if not json_out:
        start_run(
            incident.number,
            lambda: start_incident_run(incident),
            json_out=False,
            headline=f"{DRILL_MARK}{incident.number} {incident.title}: plan {plan} level {incident.level}, "
            f"×{speed}, scenario {loaded.scenario.name}",
            show="regflow incident show",
        )
    else:
        start_incident_run(incident)
    outcome = "interrupted"
    try:
        outcome = drills.respond(
            incident.number, loaded, speed=speed, started_at=now, say=say, until=now + dt.timedelta(minutes=max_minutes)
        )
    finally:
        if outcome == "closed":
            drills.settle(incident.number)
        card = drills.finish(incident.number, outcome=outcome, now=utcnow())
        drills.publish(card)
        _print(card.scorecard, json_out)


def _say(line: str) -> None:
    console().print(line)
    sys.stdout.flush()  # the demo's drill log is a file: show each step as it happens


def _print(card: dict[str, Any], json_out: bool) -> None:
    from tasks.drills import _span

    if json_out:
        emit_json(card)
        return
    out = console()
    table = Table(
        "deadline",
        "limit",
        "taken",
        "result",
        title=f"Drill scorecard {card['number']} (exercise time, ×{card['speed']})",
    )
    for d in card["deadlines"]:
        table.add_row(f"{d['label']} {d['name']}", _span(d["limit_s"]), _span(d["taken_s"]), d["result"])
    out.print(table)
    score = "-" if card["score"] is None else f"{card['score']}%"
    out.print(
        f"outcome {card['outcome']} · score {score} (deadlines met on time) · met {card['deadlines_met']}, "
        f"late {card['deadlines_late']}, missed {card['deadlines_missed']} · reminders {card['reminders_sent']} · "
        f"escalations {card['escalations_raised']} (acknowledged {card['escalations_acknowledged']}, "
        f"resolved {card['escalations_resolved']}) · messages sent {card['messages_sent']}/"
        f"{card['messages_queued']}"
    )


def drills(json_out: bool = JSON) -> None:
    """Past and running drills with their scores, newest first.

    Example: regflow drills
    """
    from storage.drills import list_drills
    from tasks.render import local_time

    with session_scope() as session:
        rows = [
            {
                "number": d.number,
                "scenario": d.scenario,
                "speed": d.speed,
                "started_at": d.started_at,
                "finished_at": d.finished_at,
                "outcome": (d.scorecard or {}).get("outcome"),
                "score": (d.scorecard or {}).get("score"),
            }
            for d in list_drills(session)
        ]
    if json_out:
        emit_json(rows)
        return
    table = Table("number", "scenario", "speed", "started", "outcome", "score", title="Drills")
    for r in rows:
        table.add_row(
            r["number"],
            r["scenario"],
            f"×{r['speed']}",
            local_time(r["started_at"]),
            r["outcome"] or "running",
            "-" if r["score"] is None else f"{r['score']}%",
        )
    console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(drill)
    app.command()(drills)
