"""Supervisors' figures: `regflow stats`, the monthly report (`regflow report monthly`),
and the flags it raises for the province's head (`regflow flag list|decide`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from regflow.cli.output import BY, JSON, console, emit_json, mount, one_of, only_open, who

report_app = typer.Typer(help="Supervision reports.", no_args_is_help=True)
flag_app = typer.Typer(help="Flags of the supervision report, for the province's head.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    mount(app, {"report": report_app, "flag": flag_app}, (stats,))


def _day(value: str | None, what: str) -> dt.date | None:
    from kernel.errors import InvalidInput

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what} {value!r}: give a date as YYYY-MM-DD") from None


def stats(
    authority: Optional[str] = typer.Option(None, help="Whose figures, with all it supervises (default: your own)."),
    since: Optional[str] = typer.Option(None, "--from", help="First day, YYYY-MM-DD (default: a year ago)."),
    until: Optional[str] = typer.Option(None, "--to", help="Last day, YYYY-MM-DD (default: today)."),
    by: str = one_of("month", "month", "quarter", flag="--by", help="One row per month or per quarter."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Also draw the PNG plots into this folder."),
    json_out: bool = JSON,
) -> None:
    """How an authority and those it supervises performed, period by period, each figure
    against the period before: incidents and time to dispatch, arrival and reports,
    deadlines met on time, reminders, escalations and who acknowledged them, cases and
    their age against the decision limit, complaints, spot checks, risk items.

    You see your own authority's figures and those of the authorities it supervises
    ($REGFLOW_USER or your login, as data/people.yaml has you).
    Example: regflow stats --authority 330100 --from 2027-01-01 --to 2027-06-30 --by quarter
    """
    import pendulum

    from kernel.errors import InvalidInput
    from kernel.settings import get_settings
    from rules.stats import Window
    from storage.db import session_scope, utcnow
    from tasks.reports import plot
    from tasks.stats import figures, viewable

    if by not in ("month", "quarter"):
        raise InvalidInput(f"--by {by!r}: give month or quarter")
    now = utcnow()
    today = pendulum.now(get_settings().timezone).date()
    last = _day(until, "--to") or today
    first = _day(since, "--from") or pendulum.date(last.year, last.month, last.day).subtract(years=1)
    if first > last:
        raise InvalidInput(f"--from {first} is after --to {last}")
    if first.year < 2000 or last.year > 2999:
        raise InvalidInput("give dates from 2000 on")
    with session_scope() as session:
        code = viewable(session, who(None), authority, now=now)
        data, records = figures(session, code, first, last, by=by, now=now)  # type: ignore[arg-type]
    if plots is not None:
        span = Window("", dt.datetime.fromisoformat(data["from"]), dt.datetime.fromisoformat(data["to"]))
        try:
            drawn = plot(data, records, span, plots)
        except OSError as exc:
            raise InvalidInput(f"--plots {plots}: {exc.strerror or type(exc).__name__}") from None
        data["plots"] = {name: str(path) for name, path in drawn.items()}
    if json_out:
        emit_json(data)
        return
    _print(data)


def _print(data: dict[str, Any]) -> None:
    out = console()
    out.print(f"Figures of {data['authority']} and those it supervises ({', '.join(data['scope'])}), by {data['by']}")
    rows = [*data["periods"], {**data["total"], "previous": {k: data["previous_total"][k] for k in data["total"]}}]
    columns = ("period", "incidents", "dispatch min p50/p90", "deadlines on time", "escalations",
               "cases rec/filed/closed", "open >limit", "complaints in limit")  # fmt: skip
    table = Table(*columns, title="By period (previous in brackets)")
    for row in rows:
        p = row["previous"]
        e, d, c, q = row["emergencies"], row["deadlines"], row["cases"], row["complaints"]
        ship = e["minutes_to"]["dispatch"]
        table.add_row(
            row["period"],
            f"{e['incidents']} ({p['emergencies']['incidents']})",
            f"{_n(ship['median'])}/{_n(ship['p90'])}",
            f"{d['on_time']}/{d['due']} {_pct(d['on_time_share'])} ({_pct(p['deadlines']['on_time_share'])})",
            f"{row['escalations']['raised']} ({p['escalations']['raised']})",
            f"{c['received']}/{c['filed']}/{c['closed']}",
            str(c["open_past_limit"]),
            f"{q['accepted_within_limit']}/{q['acceptance_due']}",
        )
    out.print(table)
    names = Table("deadline", "due", "on time", "late", "share", title=f"Deadlines, {data['total']['period']}")
    for name, line in data["total"]["deadlines"]["by_name"].items():
        names.add_row(name, str(line["due"]), str(line["on_time"]), str(line["late"]), _pct(line["on_time_share"]))
    out.print(names)
    if data.get("plots"):
        out.print("plots: " + ", ".join(data["plots"].values()))


def _n(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


@report_app.command("monthly")
def monthly(
    authority: str = typer.Option(..., help="The province (or any authority): the report covers all it supervises."),
    month: Optional[str] = typer.Option(None, help="YYYY-MM (default: last month)."),
    json_out: bool = JSON,
) -> None:
    """Make the monthly supervision report now, as the `supervision-report` deployment does
    on the first working day of each month: figures against the month before, plots, the
    flags for the head's decision, under $REGFLOW_HOME/reports/<authority>/<month>/.

    Example: regflow report monthly --authority 330000 --month 2027-01
    """
    import pendulum

    from kernel.errors import InvalidInput
    from kernel.settings import get_settings
    from rules.stats import windows
    from storage.db import session_scope, utcnow
    from tasks.reports import monthly as make
    from tasks.stats import viewable

    now = utcnow()
    window = None
    if month is not None:
        if len(month) != 7:
            raise InvalidInput(f"--month {month!r}: give a month as YYYY-MM")
        day = _day(f"{month}-01", "--month")
        window = windows(day, day, "month", get_settings().timezone)[0]
    with session_scope() as session:
        code = viewable(session, who(None), authority, now=now, making=True)
    made = make(code, today=pendulum.now(get_settings().timezone).date(), now=now, month=window)
    if json_out:
        plots = {k: str(v) for k, v in made.plots.items()}
        emit_json({"report": str(made.html), "figures": str(made.figures), "plots": plots,
                   "flags": [vars(f) for f in made.flags]})  # fmt: skip
        return
    console().print(made.summary)
    console().print(f"report: {made.html}")


@flag_app.command("list")
def flag_list(
    authority: Optional[str] = typer.Option(None, help="The province whose head decides (default: your own)."),
    open_only: bool = only_open("flags"),
    json_out: bool = JSON,
) -> None:
    """Flags the monthly report raised, with the measure proposed and the decision.

    Example: regflow flag list --authority 330000 --open
    """
    from storage.db import session_scope, utcnow
    from storage.supervision import flags_of
    from tasks.board import under
    from tasks.stats import viewable

    with session_scope() as session:
        code = viewable(session, who(None), authority, now=utcnow())
        found = [f.model_dump() for f in flags_of(session, provinces=under(session, code), open_only=open_only)]
    if json_out:
        emit_json(found)
        return
    table = Table("id", "period", "authority", "rule", "figure", "proposed", "status", "decision", title="Flags")
    for f in found:
        table.add_row(str(f["id"]), f["period"], f["authority"], f["rule"], f"{f['figure']:.1%}", f["measure"],
                      f["status"], f"{f['decision'] or ''} {f['decided_by'] or ''}".strip())  # fmt: skip
    console().print(table)


@flag_app.command("decide")
def flag_decide(
    flag_id: int = typer.Argument(..., help="The flag's id (regflow flag list)."),
    decision: str = one_of(..., "notice", "interview", "listing", "none", flag="--decision", help="The measure taken."),
    reason: str = typer.Option(..., help="Why (on the record)."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """The province head's decision on a flag: notice (通报), interview (约谈), listing
    (挂牌督办), or none; on the record and the audit log.

    Example: regflow flag decide 3 --decision interview --reason "连续两年不合格率偏高" --by zj-head
    """
    from storage.db import utcnow
    from tasks.reports import decide

    flag = decide(flag_id, decision=decision, by=who(by), reason=reason, now=utcnow())
    if json_out:
        emit_json(flag.model_dump())
        return
    console().print(
        f"flag {flag.id} ({flag.authority}, {flag.rule}, {flag.period}): {flag.decision}, by {flag.decided_by}"
    )
