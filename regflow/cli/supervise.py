"""Supervision commands: the board, escalations, deadline clocks, and deadline arithmetic."""

from __future__ import annotations

import datetime as dt
from typing import Optional

import typer
from rich.table import Table

from kernel.errors import InvalidInput
from kernel.settings import get_settings
from regflow.cli.output import BY, JSON, console, emit_json, mount, only_open, who
from storage.db import session_scope, utcnow

escalation_app = typer.Typer(help="Escalations of missed deadlines to supervising authorities.", no_args_is_help=True)
deadline_app = typer.Typer(help="Pause, resume or extend a deadline's clock.", no_args_is_help=True)


rules_app = typer.Typer(help="Statutory time limits (data/rules/statutory.yaml).", no_args_is_help=True)


@rules_app.command("list")
def rules_list(
    authority: Optional[str] = typer.Option(None, help="Show this authority's overrides applied."),
    json_out: bool = JSON,
) -> None:
    """List the statutory limits with their periods, extensions and sources.

    Example: regflow rules list --authority 330106
    """
    from rules.statutes import load_rules

    loaded = load_rules(get_settings().rules_file, authority=authority)
    rows = [{"key": k, **v.model_dump(by_alias=True)} for k, v in loaded.rules.limits.items()]
    if json_out:
        emit_json({"version": loaded.content_hash[:12], "limits": rows})
        return
    table = Table(
        "key", "limit", "period", "extension", "source", title=f"Statutory limits ({loaded.content_hash[:12]})"
    )
    for r in rows:
        table.add_row(
            r["key"],
            r["name"] if r["confirmed"] else f"{r['name']} (unconfirmed)",
            ("before " if r["before"] else "") + r["period"],
            r["extension"] or "",
            r["source"],
        )
    console().print(table)
    for r in rows:
        if not r["confirmed"]:  # said in full: a table may cut the name
            line = f"(unconfirmed) {r['key']} {r['period']}: not confirmed from an official text ({r['source']})"
            console().print(line)


def register(app: typer.Typer) -> None:
    mount(app, {"rules": rules_app, "escalation": escalation_app, "deadline": deadline_app}, (board, due))


def board(
    authority: Optional[str] = typer.Option(None, help="Only this authority and those it supervises."),
    json_out: bool = JSON,
) -> None:
    """Open deadlines by authority with time left or overdue, open escalations, and
    what is failing: messages, and watcher managers.

    Example: regflow board --authority 330100
    """
    from tasks.board import board as read
    from tasks.board import manager_line, table

    data = read(now=utcnow(), authority=authority)
    if json_out:
        emit_json(data)
        return
    out = console()
    # First: while a manager fails, what follows may be stale and its messages unsent.
    for m in data["failing_managers"]:
        out.print(f"{m['watcher']}: {manager_line(m)}", style="bold red")
    summary = Table("authority", "open", "overdue", title="Supervision board")
    for row in data["authorities"]:
        summary.add_row(row["authority"], str(row["open"]), str(row["overdue"]))
    out.print(summary)
    rows = table(data)
    if rows:
        detail = Table(*rows[0].keys(), title=f"Most urgent (open escalations: {data['open_escalations']})")
        for row in rows:
            detail.add_row(*row.values())
        out.print(detail)
    if data["failing_messages"]:
        failing = Table("subject", "to", "message", "tries", "error", title="Messages failing (retried with backoff)")
        for m in data["failing_messages"]:
            failing.add_row(m["subject"], m["to"], m["title"], str(m["attempts"]), m["error"])
        out.print(failing)


@escalation_app.command("list")
def escalation_list(open_only: bool = only_open("escalations"), json_out: bool = JSON) -> None:
    """Escalations, newest first, with who was told and who acknowledged.

    Example: regflow escalation list --open
    """
    from rules.reminders import rung
    from storage.deadlines import Deadline
    from storage.escalations import list_escalations
    from tasks.render import local_time

    with session_scope() as session:
        rows = []
        for e in list_escalations(session, open_only=open_only):
            deadline = session.get(Deadline, e.deadline_id)
            told = rung(e.step, e.policy)
            rows.append(
                {
                    "id": e.id,
                    "subject": e.subject,
                    "deadline": deadline.name,
                    "status": e.status,
                    "level": e.step + 1,
                    "told": told.authority if told else None,
                    "raised_at": e.raised_at,
                    "next_at": e.next_at,
                    "acked_by": e.acked_by,
                    "acked_at": e.acked_at,
                }
            )
    if json_out:
        emit_json(rows)
        return
    table = Table(
        "id", "subject", "deadline", "status", "told", "raised", "next step", "acknowledged", title="Escalations"
    )
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["subject"],
            r["deadline"],
            r["status"],
            r["told"] or "",
            local_time(r["raised_at"]),
            local_time(r["next_at"]),
            f"{r['acked_by']} {local_time(r['acked_at'])}" if r["acked_by"] else "",
        )
    console().print(table)


@escalation_app.command("ack")
def escalation_ack(
    escalation_id: int = typer.Argument(..., help="Escalation id (see `regflow escalation list`)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who acknowledges."),
    json_out: bool = JSON,
) -> None:
    """Acknowledge an escalation: the ladder stops climbing, and this is recorded.

    Example: regflow escalation ack 12 --by 王科长
    """
    from tasks.deadlines import acknowledge

    escalation = acknowledge(escalation_id, by=who(by), now=utcnow())
    if json_out:
        emit_json({"id": escalation.id, "status": escalation.status, "acked_by": escalation.acked_by})
    else:
        console().print(f"escalation {escalation.id} of {escalation.subject} acknowledged by {escalation.acked_by}")


@deadline_app.command("pause")
def deadline_pause(
    deadline_id: int = typer.Argument(..., help="Deadline id (see `incident show --json`)."),
    reason: str = typer.Option(..., help="Why the clock stops (testing, appraisal ...)."),
    by: Optional[str] = BY,
) -> None:
    """Stop a deadline's clock; no reminders while it is paused.

    Example: regflow deadline pause 42 --reason "送检，检验期间不计入"
    """
    from tasks.deadlines import pause

    deadline = pause(deadline_id, by=who(by), reason=reason, now=utcnow())
    console().print(f"deadline {deadline.id} ({deadline.name}) paused")


@deadline_app.command("resume")
def deadline_resume(
    deadline_id: int = typer.Argument(..., help="Deadline id (see `incident show --json`)."), by: Optional[str] = BY
) -> None:
    """Restart a paused clock; the due time moves by the paused span.

    Example: regflow deadline resume 42
    """
    from tasks.deadlines import resume
    from tasks.render import local_time

    deadline = resume(deadline_id, by=who(by), now=utcnow())
    console().print(f"deadline {deadline.id} ({deadline.name}) resumed, now due {local_time(deadline.due_at)}")


@deadline_app.command("extend")
def deadline_extend(
    deadline_id: int = typer.Argument(..., help="Deadline id (see `incident show --json`)."),
    period: str = typer.Option(..., help="How much longer, counted from the current due time: 2h, 15wd ..."),
    approved_by: str = typer.Option(..., help="Who approved the extension."),
    reason: str = typer.Option(..., help="Why."),
) -> None:
    """Extend a deadline, recording who approved it, why and the new due time.

    Example: regflow deadline extend 42 --period 15wd --approved-by 局长 --reason "案情复杂"
    """
    from rules.calendar import load_calendar
    from rules.durations import Period, due_after
    from storage.deadlines import Deadline
    from tasks.deadlines import extend
    from tasks.render import local_time

    settings = get_settings()
    with session_scope() as session:
        current = session.get(Deadline, deadline_id)
        if current is None:
            raise InvalidInput(f"no deadline {deadline_id}")
        new = due_after(
            current.due_at,
            Period.parse(period),
            tz=settings.timezone,
            calendar=load_calendar(settings.calendar_override),
            event="延长",
        )
    deadline = extend(deadline_id, due_at=new.at, by=approved_by, reason=reason, rule=new.rule, now=utcnow())
    console().print(f"deadline {deadline.id} ({deadline.name}) extended to {local_time(deadline.due_at)}")


def due(
    period: Optional[str] = typer.Argument(None, help='The period: "2h", "10d", "15 working days" ...'),
    start: str = typer.Option(..., "--from", help="Start (or, for a 'before' rule, the event): a date or ISO time."),
    rule: Optional[str] = typer.Option(None, help="A statutory limit by key instead of a period (regflow rules list)."),
    authority: Optional[str] = typer.Option(None, help="Apply this authority's overrides to --rule."),
    pause: list[str] = typer.Option([], "--pause", help="A paused span FROM..TO (dates or times); repeatable."),
    json_out: bool = JSON,
) -> None:
    """When a period runs out, by the statutory counting rules, and the rule in words.

    Example: regflow due "15 working days" --from 2026-09-25 --pause 2026-10-12..2026-10-13
    Example: regflow due --rule case.hearing_notice --from 2026-10-20
    """
    from rules.calendar import load_calendar
    from rules.durations import Period, due_after
    from rules.incidents import parse_when
    from rules.statutes import due_by_rule, load_rules
    from tasks.render import local_time

    if (period is None) == (rule is None):
        raise InvalidInput("give either a period or --rule KEY, not both or neither")

    settings = get_settings()
    tz = settings.timezone
    begin = _when(start, tz, parse_when)
    spans = []
    for item in pause:
        if ".." not in item:
            raise InvalidInput(f"--pause {item!r}: write FROM..TO")
        a, b = item.split("..", 1)
        spans.append((_when(a, tz, parse_when), _when(b, tz, parse_when, end_of_day=True)))
    calendar = load_calendar(settings.calendar_override)
    if rule is not None:
        limit = load_rules(settings.rules_file, authority=authority).rules.limit(rule)
        result = due_by_rule(limit, begin, tz=tz, calendar=calendar, pauses=spans)
    else:
        result = due_after(begin, Period.parse(period), tz=tz, calendar=calendar, pauses=spans)
    if json_out:
        emit_json(
            {"due_at": result.at.isoformat(), "due_local": local_time(result.at), "timezone": tz, "rule": result.rule}
        )
    else:
        console().print(f"due {local_time(result.at)} ({tz})")
        console().print(result.rule)


def _when(text: str, tz: str, parse_when, end_of_day: bool = False) -> dt.datetime:
    text = text.strip()
    if len(text) == 10:  # a bare date
        text += "T23:59:59" if end_of_day else "T00:00"
    return parse_when(text, tz=tz)
