"""`regflow incident ...`: trigger incidents and answer their human steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from kernel.errors import InvalidInput
from kernel.settings import get_settings
from regflow.cli.output import BY, JSON, LEVEL, console, emit_json, one_of, only_open, who
from regflow.cli.records import overview as subject_overview
from regflow.cli.records import start_run
from rules.drills import DRILL_MARK
from rules.incidents import EMERGENCY, MAX_TEXT, parse_when, validate_trigger
from storage.db import session_scope, utcnow


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="incident")


app = typer.Typer(help="Trigger incidents, record arrival and reports, close and review them.", no_args_is_help=True)


@app.command()
def trigger(
    plan: str = typer.Option(..., help="Plan key, e.g. product-quality (see `regflow plans list`)."),
    level: str = LEVEL,
    title: str = typer.Option(..., help="Short title of the incident."),
    location: str = typer.Option(..., help="Where it happened."),
    authority: str = typer.Option(..., help="Code of the handling authority, e.g. 330106."),
    occurred_at: Optional[str] = typer.Option(None, help="ISO 8601 time it happened (default: now)."),
    reporter: Optional[str] = typer.Option(None, help="Who reported it."),
    json_out: bool = JSON,
) -> None:
    """Activate an emergency plan for a new incident and start its flow run.

    Example: regflow incident trigger --plan product-quality --level II --title "电梯困人"
    --location "西湖区文三路 1 号" --authority 330106
    """
    from tasks.incidents import trigger_and_send
    from tasks.runs import start_incident_run

    settings = get_settings()
    now = utcnow()
    occurred = parse_when(occurred_at, tz=settings.timezone) if occurred_at else None
    request = validate_trigger(
        dict(
            plan=plan,
            level=level,
            title=title,
            location=location,
            authority=authority,
            occurred_at=occurred,
            reporter=reporter,
        ),
        now=now,
    )
    incident = trigger_and_send(request, now=now)  # the dispatch order is out before the run exists
    start_run(
        incident.number,
        lambda: start_incident_run(incident),
        json_out=json_out,
        headline=f"{incident.number} triggered: {incident.title} (level {incident.level})",
        show="regflow incident show",
    )


def _answer(number: str, verb: str, answer: dict[str, Any], json_out: bool) -> None:
    from regflow.cli.records import hand_over
    from tasks.incidents import answer as record

    result = record(number, answer=answer, source="cli", verb=verb, now=utcnow())
    hand_over(result, EMERGENCY.step(result.step).title, json_out=json_out)


@app.command()
def arrive(
    number: str = typer.Argument(..., help="Incident number, e.g. INC-2026-000001."),
    officer: str = typer.Option(..., help="Officer in charge on site."),
    note: str = typer.Option("", help="What the team found on arrival."),
    json_out: bool = JSON,
) -> None:
    """Record the on-site team's arrival.

    Example: regflow incident arrive INC-2026-000001 --officer 张三 --note "已封控现场"
    """
    _answer(number, "arrive", {"officer": who(officer), "note": note}, json_out)


def _read_text(text: str | None, file: Path | None) -> str:
    if (text is None) == (file is None):
        raise InvalidInput("give the report either as --text or as --file, not both or neither")
    if file is None:
        return text or ""
    try:
        with file.open("r", encoding="utf-8") as handle:
            content = handle.read(MAX_TEXT * 4 + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file}: {type(exc).__name__}") from exc
    if len(content) > MAX_TEXT:
        raise InvalidInput(f"{file}: the report is longer than {MAX_TEXT} characters")
    return content


@app.command()
def report(
    number: str = typer.Argument(..., help="Incident number."),
    kind: str = one_of(..., "initial", "progress", "final", help="Which report."),
    text: Optional[str] = typer.Option(None, help="The report text."),
    file: Optional[Path] = typer.Option(None, help="Read the report from a UTF-8 text file."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Submit the initial, a progress or the final report.

    Example: regflow incident report INC-2026-000001 --kind initial --file initial.txt
    """
    if kind not in ("initial", "progress", "final"):
        raise InvalidInput(f"--kind must be initial, progress or final, not {kind!r}")
    _answer(number, f"report:{kind}", {"author": who(by), "text": _read_text(text, file)}, json_out)


@app.command()
def close(
    number: str = typer.Argument(..., help="Incident number."),
    summary: str = typer.Option(..., help="How handling ended."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Declare that handling has ended (the final report then falls due).

    Example: regflow incident close INC-2026-000001 --summary "现场处置完毕，无人员伤亡"
    """
    _answer(number, "close", {"officer": who(by), "text": summary}, json_out)


@app.command()
def review(
    number: str = typer.Argument(..., help="Incident number."),
    lessons: str = typer.Option(..., help="Assessment, lessons learned and improvements."),
    action: list[str] = typer.Option(
        [], help="An action item, 'what|authority code|owner|due date' (repeat for more); each is a deadline."
    ),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Record the post-incident review; it closes the incident and assigns its action items.

    Example: regflow incident review INC-2026-000001 --lessons "响应及时；需加强夜间值守"
    --action "约谈全区电梯维保单位|330106|张三|2027-01-15"
    """
    items = [_action_item(i, text) for i, text in enumerate(action)]
    _answer(number, "review", {"reviewer": who(by), "lessons": lessons, "actions": items}, json_out)


def _action_item(index: int, text: str) -> dict[str, str]:
    parts = [p.strip() for p in text.split("|")]
    if len(parts) != 4 or not all(parts):
        example = "约谈维保单位|330106|张三|2027-01-15"
        raise InvalidInput(f"--action {index + 1}: give 'what|authority code|owner|due date', e.g. '{example}'")
    return dict(zip(("what", "authority", "owner", "due"), parts, strict=True))


@app.command()
def release(
    number: str = typer.Argument(..., help="Incident number."),
    draft: bool = typer.Option(False, "--draft", help="Print the draft made from the record; publish nothing."),
    text: Optional[str] = typer.Option(None, help="The text to publish instead of the draft."),
    file: Optional[Path] = typer.Option(None, help="Read the text to publish from a UTF-8 file."),
    press_conference: bool = typer.Option(False, "--press-conference", help="It was given at a press conference."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Publish an information release (the head approves it): the draft made from the
    incident's record unless a text is given; to the authority's public channel and
    upward. Again later to update it, while handling goes on.

    Example: regflow incident release INC-2026-000001 --draft
             regflow incident release INC-2026-000001 --by 赵六
    """
    if draft:
        if text is not None or file is not None or press_conference:
            raise InvalidInput("--draft only prints the draft: give no --text, --file or --press-conference with it")
        from tasks.incidents import release_preview

        markdown = release_preview(number, now=utcnow())
        if json_out:
            emit_json({"number": number.strip().upper(), "draft": markdown})
        else:
            console().print(markdown, markup=False, highlight=False)
        return
    given = _read_text(text, file) if (text is not None or file is not None) else ""
    _answer(number, "release", {"approver": who(by), "text": given, "press_conference": press_conference}, json_out)


@app.command()
def relevel(
    number: str = typer.Argument(..., help="Incident number."),
    level: str = one_of(..., "I", "II", "III", "IV", help="The new response level."),
    reason: str = typer.Option(..., help="Why the level changes (on the record and in the notice)."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Re-grade an open incident (the head of its authority or one above): open deadlines
    are recomputed under the new level from their own start, everyone the new level
    concerns is told, the run is retagged.

    Example: regflow incident relevel INC-2026-000001 --level II --reason "伤亡人数上升" --by 赵六
    """
    from kernel.errors import PlatformUnavailable
    from rules.plans import Level
    from tasks.incidents import relevel as regrade
    from tasks.notify import deliver_now
    from tasks.runs import retag

    incident, moved = regrade(number, Level.parse(level), by=who(by), reason=reason, now=utcnow())
    deliver_now(incident.number, wait=get_settings().trigger_delivery_seconds)
    try:
        retag(incident.number)
    except PlatformUnavailable as exc:  # on record and told; the run's tags follow when it moves on
        console().print(f"note: the run's tags were not changed ({exc})")
    if json_out:
        emit_json({"number": incident.number, "level": incident.level, "deadlines_moved": moved})
        return
    console().print(f"{incident.number}: level {incident.level}; deadlines recomputed: {', '.join(moved) or 'none'}")


def overview(number: str) -> dict[str, Any]:
    from storage.incidents import get_incident

    def fields(incident) -> dict[str, Any]:
        return {
            "plan": incident.plan_key, "level": incident.level, "location": incident.location,
            "triggered_at": incident.triggered_at, "occurred_at": incident.occurred_at,
            "reporter": incident.reporter, "drill": incident.drill, "time_scale": incident.time_scale,
            "origin": incident.origin,
        }  # fmt: skip

    from tasks.actions import listing

    data = subject_overview(number, getter=get_incident, what="incident", fields=fields)
    return {**data, "actions": listing(subject=data["number"])}


@app.command()
def show(number: str = typer.Argument(..., help="Incident number."), json_out: bool = JSON) -> None:
    """Status, steps, deadlines, notifications and timeline of one incident.

    Example: regflow incident show INC-2026-000001
    """
    from regflow.cli.records import show as show_subject

    data = overview(number)
    awaiting = f"  awaiting: {', '.join(data['awaiting_all'])}" if data["awaiting_all"] else ""
    mark = DRILL_MARK if data["drill"] else ""
    heading = [
        f"{mark}{data['number']} {data['title']}  level {data['level']}  {data['status']}{awaiting}",
        f"plan {data['plan']} · authority {data['authority']} · {data['location']}"
        + (f" · from complaint {data['origin']}" if data["origin"] else ""),
    ]
    show_subject(data, heading, json_out=json_out)
    if data["actions"] and not json_out:
        from regflow.cli.action import action_table

        console().print(action_table(data["actions"]))


@app.command("list")
def list_(open_only: bool = only_open("incidents"), json_out: bool = JSON) -> None:
    """Recent incidents, newest first.

    Example: regflow incident list --open
    """
    from storage.incidents import list_incidents
    from tasks.render import local_time

    with session_scope() as session:
        rows = [
            {
                "number": i.number,
                "level": i.level,
                "status": i.status,
                "title": i.title,
                "authority": i.authority_code,
                "triggered_at": i.triggered_at,
                "drill": i.drill,
            }
            for i in list_incidents(session, open_only=open_only)
        ]
    if json_out:
        emit_json(rows)
        return
    table = Table("number", "level", "status", "title", "authority", "triggered", title="Incidents")
    for r in rows:
        title = (DRILL_MARK if r["drill"] else "") + r["title"]
        table.add_row(r["number"], r["level"], r["status"], title, r["authority"], local_time(r["triggered_at"]))
    console().print(table)
