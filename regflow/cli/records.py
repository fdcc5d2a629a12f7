"""What `incident show` and `case show` both print: a subject's steps, deadlines,
escalations, notifications, documents and timeline, read by its number."""

from __future__ import annotations

from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from storage.db import utcnow


def overview(number: str, *, getter: Callable, what: str, fields: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """What `show` prints of a subject: who, what, where it stands, what it awaits,
    its run, then everything on record; `fields`, what its kind adds."""
    from kernel.errors import NotFound
    from kernel.settings import get_settings
    from storage.db import session_scope
    from storage.steps import answers
    from tasks.status import records

    url = get_settings().flow_run_url
    with session_scope() as session:
        subject = getter(session, number=number)
        if subject is None:
            raise NotFound(f"no {what} {number.strip()!r}")
        open_now = subject.lifecycle.open_steps(answers(session, subject=subject.number)) if subject.is_open else []
        return {
            "number": subject.number, "title": subject.title, "authority": subject.authority_code,
            "status": subject.status, "awaiting": open_now[0].name if open_now else None,
            "awaiting_all": [s.name for s in open_now], **fields(subject),
            "flow_run": url(subject.flow_run_id) if subject.flow_run_id else None,
            **records(session, subject.number),
        }  # fmt: skip


def show(data: dict[str, Any], heading: list[str], *, json_out: bool, runs: tuple[str, ...] = ("flow_run",)) -> None:
    """`show` of a subject: its `overview` as JSON, or its heading lines, its runs'
    addresses and its records as tables."""
    from regflow.cli.output import console, emit_json

    if json_out:
        emit_json(data)
        return
    out = console()
    for line in heading:
        out.print(line)
    for key in runs:
        if data[key]:
            out.print(f"{key.replace('_', ' ')}: {data[key]}")
    print_records(out, data)


def print_records(out: Console, data: dict[str, Any]) -> None:
    from tasks.render import local_time
    from tasks.status import deadline_table

    rows = deadline_table(data, utcnow())
    if rows:
        table = Table(*rows[0], title="Deadlines")
        for row in rows:
            table.add_row(*row.values())
        out.print(table)
    if data["escalations"]:
        table = Table("id", "deadline", "status", "level", "raised", "acknowledged by", title="Escalations")
        names = {d["id"]: d["name"] for d in data["deadlines"]}
        for e in data["escalations"]:
            table.add_row(
                str(e["id"]),
                names.get(e["deadline_id"], ""),
                e["status"],
                str(e["level"]),
                local_time(e["raised_at"]),
                e["acked_by"] or "",
            )
        out.print(table)
    if data["reports"]:
        table = Table("document", "step", "by", "at", title="Documents")
        for r in data["reports"]:
            table.add_row(r["kind"], r["step"], r["author"], local_time(r["submitted_at"]))
        out.print(table)
    table = Table("to", "message", "status", "tries", "sent", "error", title="Notifications")
    for n in data["notifications"]:
        table.add_row(
            n["tag"], n["title"], n["status"], str(n["attempts"]), local_time(n["sent_at"]), n["last_error"] or ""
        )
    out.print(table)
    table = Table("at", "who", "what", title="Timeline")
    for e in data["timeline"]:
        what = e["action"] + (f" {e['detail'].get('step')}" if e["detail"].get("step") else "")
        table.add_row(local_time(e["at"]), e["actor"], what)
    out.print(table)


def start_run(number: str, start, *, headline: str, json_out: bool, show: str) -> None:
    """Start the flow run of what was just recorded and say where to watch it. The
    record is the commitment: a run Prefect has not created within the wait
    (`REGFLOW_RUN_START_WAIT_SECONDS`), or cannot create, the watcher creates; `show`
    is the command that gives its link then."""
    from kernel.errors import PlatformUnavailable
    from kernel.settings import get_settings
    from regflow.cli.output import console, emit_json
    from tasks.runs import start_within

    settings = get_settings()
    try:
        run_id = start_within(start, settings.run_start_wait_seconds)
    except PlatformUnavailable as exc:
        failure = PlatformUnavailable(
            f"{number} is recorded and its notices are queued, but its flow run could not be started "
            f"({exc}); the watcher starts it once Prefect is reachable"
        )
        if json_out:  # the record exists: a program gets its number whatever the exit code
            emit_json({"number": number, "flow_run_id": None, "url": None, "error": str(failure)})
        raise failure from exc
    url = settings.flow_run_url(run_id) if run_id else None
    if json_out:
        emit_json({"number": number, "flow_run_id": str(run_id) if run_id else None, "url": url})
        return
    console().print(headline)
    if url:
        console().print(f"flow run: {url}")
    else:
        console().print(f"flow run: on its way (Prefect is busy; the watcher creates it); its link: {show} {number}")


def answer_step(record, number: str, step: str, answer: dict, *, json_out: bool, wait: bool) -> None:
    """Record a step's answer with `record` (the subject kind's `answer`) and hand it to
    the run waiting for it."""
    from storage.cases import get_case
    from storage.db import session_scope, utcnow

    result = record(number, step=step, answer=answer, source="cli", now=utcnow())
    with session_scope() as session:
        title = get_case(session, number=result.number).lifecycle.step(step).title
    hand_over(result, title, json_out=json_out, wait=wait)


def hand_over(result, title: str, *, json_out: bool, wait: bool = True) -> None:
    """After an answer is recorded: resume the run waiting for it, and say what
    happened. Without `wait`, leave that to the run (it reads recorded answers before
    suspending) and the watcher (it resumes a run suspended on an answered step)."""
    from kernel.errors import PlatformUnavailable
    from regflow.cli.output import console, emit_json
    from tasks.runs import hand_over as give

    outcome = "pending"
    if wait:
        try:
            outcome = give(result)
        except PlatformUnavailable as exc:
            failure = PlatformUnavailable(
                f"{title} of {result.number} is recorded, but its flow run could not be "
                f"resumed ({exc}); the watcher hands it over once Prefect is reachable"
            )
            if json_out:
                emit_json({"number": result.number, "step": result.step, "run": "unreachable", "error": str(failure)})
            raise failure from exc
    if json_out:
        emit_json({"number": result.number, "step": result.step, "run": outcome})
        return
    console().print(f"{result.number}: {title} recorded.")
    console().print(
        {
            "resumed": "The flow run is moving on.",
            "consumed": "The flow run has taken it.",
            "pending": "The flow run will take it when it reaches this step (the watcher makes sure).",
        }[outcome]
    )
