"""`regflow lead|case|complaint ...`: receive leads and complaints, answer case steps,
and work a case's clock, extensions, measures, assistance and listed supervision."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from kernel.errors import InvalidInput
from kernel.settings import get_settings
from regflow.cli.output import BY, JSON, LEVEL, console, emit_json, one_of, who
from regflow.cli.records import overview as subject_overview
from regflow.cli.records import start_run
from rules import cases as machine
from rules.incidents import parse_when
from storage.db import session_scope, utcnow

lead_app = typer.Typer(
    help="Receive leads (complaints, reports, spot checks, referrals, risk alerts).", no_args_is_help=True
)
complaint_app = typer.Typer(help="Receive 12315 complaints.", no_args_is_help=True)
app = typer.Typer(
    help="Enforcement cases: answer steps, pause the clock, extend, supervise, transfer.", no_args_is_help=True
)

NUMBER = typer.Argument(..., help="Case number, e.g. CASE-2026-000001 (or a complaint, CMP-...).")


def register(root: typer.Typer) -> None:
    root.add_typer(lead_app, name="lead")
    root.add_typer(complaint_app, name="complaint")
    root.add_typer(app, name="case")


def _detail(text: str | None, file: Path | None) -> str:
    from regflow.cli.incident import _read_text

    return "" if text is None and file is None else _read_text(text, file)


def _start(request: dict[str, Any], json_out: bool) -> None:
    from rules.cases import validate_lead
    from tasks.cases import receive
    from tasks.runs import start_case_run

    now = utcnow()
    case = receive(validate_lead(request, now=now), now=now)
    start_run(
        case.number,
        lambda: start_case_run(case),
        json_out=json_out,
        headline=f"{case.number} received: {case.title} ({case.party})",
        show="regflow case show",
    )


@lead_app.command("receive")
def lead_receive(
    title: str = typer.Option(..., help="The suspected violation (案由)."),
    party: str = typer.Option(..., help="The business or person concerned (当事人)."),
    source: str = one_of(..., "complaint", "report", "spot_check", "referral", "risk_alert", help="Its source."),
    authority: str = typer.Option(..., help="Code of the handling authority, e.g. 330106."),
    detail: Optional[str] = typer.Option(None, help="What the lead says."),
    file: Optional[Path] = typer.Option(None, help="Read the detail from a UTF-8 text file."),
    received_at: Optional[str] = typer.Option(None, help="When it was received, ISO 8601 (default: now)."),
    reporter: Optional[str] = typer.Option(None, help="Who reported it."),
    contact: Optional[str] = typer.Option(None, help="The reporter's contact."),
    real_name: bool = typer.Option(False, "--real-name", help="A real-name report: told within 5 WD if filed."),
    json_out: bool = JSON,
) -> None:
    """Record a lead and start its enforcement-case flow run; the 15 WD filing limit starts.

    Example: regflow lead receive --title "销售不合格电动车头盔" --party "某某商贸有限公司"
    --source report --authority 330106 --reporter 李四 --real-name
    """
    when = parse_when(received_at, tz=get_settings().timezone) if received_at else None
    _start(
        dict(
            kind="case",
            title=title,
            party=party,
            source=source,
            authority=authority,
            detail=_detail(detail, file),
            received_at=when,
            reporter=reporter,
            reporter_contact=contact,
            real_name=real_name,
        ),
        json_out,
    )


@complaint_app.command("receive")
def complaint_receive(
    title: str = typer.Option(..., help="What the complaint is about."),
    party: str = typer.Option(..., help="The business complained about."),
    authority: str = typer.Option(..., help="Code of the handling authority."),
    detail: Optional[str] = typer.Option(None, help="The complaint."),
    complainant: Optional[str] = typer.Option(None, help="Who complains."),
    contact: Optional[str] = typer.Option(None, help="The complainant's contact (to tell them the decision)."),
    received_at: Optional[str] = typer.Option(None, help="When it was received, ISO 8601 (default: now)."),
    json_out: bool = JSON,
) -> None:
    """Record a 12315 complaint and start its complaint-handling flow run (acceptance due in 7 WD).

    Example: regflow complaint receive --title "预付卡无法退费" --party "某健身房" --authority 330106
    --complainant 王五 --contact 138xxxx0000
    """
    when = parse_when(received_at, tz=get_settings().timezone) if received_at else None
    _start(
        dict(
            kind="complaint",
            title=title,
            party=party,
            source="complaint",
            authority=authority,
            detail=detail or "",
            received_at=when,
            reporter=complainant,
            reporter_contact=contact,
        ),
        json_out,
    )


@complaint_app.command("escalate")
def complaint_escalate(
    number: str = typer.Argument(..., help="Complaint number (CMP-…)."),
    plan: str = typer.Option(..., help="Plan key, e.g. product-quality (see `regflow plans list`)."),
    level: str = LEVEL,
    location: Optional[str] = typer.Option(None, help="Where it happened (default: the business complained about)."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Turn a complaint that reveals an emergency into an incident, linked both ways; the
    complaint's own steps and limits go on.

    Example: regflow complaint escalate CMP-2026-000001 --plan product-quality --level III --by 李四
    """
    from rules.plans import Level
    from tasks.incidents import escalate_complaint
    from tasks.runs import start_incident_run

    incident = escalate_complaint(number, plan=plan, level=Level.parse(level), by=who(by), now=utcnow(),
                                  location=location)  # fmt: skip
    start_run(
        incident.number,
        lambda: start_incident_run(incident),
        json_out=json_out,
        headline=f"{incident.number} triggered from {incident.origin}: {incident.title} (level {incident.level})",
        show="regflow incident show",
    )


def _parse_fields(fields: list[str]) -> dict[str, Any]:
    answer: dict[str, Any] = {}
    for item in fields:
        if "=" not in item:
            raise InvalidInput(f"{item!r}: write FIELD=VALUE (see `regflow case steps`)")
        key, value = item.split("=", 1)
        answer[key.strip()] = value
    return answer


def _answer(number: str, step: str, answer: dict[str, Any], json_out: bool, wait: bool = True) -> None:
    from regflow.cli.records import hand_over
    from tasks.cases import answer as record

    result = record(number, answer=answer, source="cli", step=step, now=utcnow())
    hand_over(result, machine.step_named(result.step).title, json_out=json_out, wait=wait)


@app.command()
def decide(
    number: str = NUMBER,
    step: str = typer.Argument(..., help="The step answered (see `regflow case steps`)."),
    fields: Optional[list[str]] = typer.Argument(None, help="The form's fields as FIELD=VALUE."),
    by: Optional[str] = BY,
    no_wait: bool = typer.Option(False, "--no-wait", help="Record and return; the run takes it when it gets there."),
    json_out: bool = JSON,
) -> None:
    """Answer the step a case awaits with the same fields as its form in the Prefect UI.
    Several steps in a row may be answered with --no-wait; the run then walks through
    them in one go.

    Example: regflow case decide CASE-2026-000001 filing decision=file handler=张三 text="证据充分"
    Example: regflow case decide CASE-2026-000001 pre-penalty fine=5000 served_on=2026-10-09
    """
    answer = {"by": who(by), **_parse_fields(fields or [])}
    _answer(number, machine.step_named(step).name, answer, json_out, wait=not no_wait)


@app.command()
def steps(json_out: bool = JSON) -> None:
    """Every case, complaint and look-back step, who answers it and its form's fields.

    Example: regflow case steps
    """
    from rules.forms import form_class
    from rules.people import describe

    rows = []
    for step in machine.STEPS.values():
        schema = form_class(step.form).model_json_schema()["properties"]
        fields = [
            f"{k}={'|'.join(map(str, v['enum'])) if 'enum' in v else v.get('type', v.get('format', 'value'))}"
            for k, v in schema.items()
            if k not in ("by", "text")
        ]
        rows.append(
            {
                "step": step.name,
                "title": step.title,
                "answered_by": describe((step.role,)),
                "fields": fields,
                "deadline": step.deadline,
            }
        )
    if json_out:
        emit_json(rows)
        return
    table = Table("step", "title", "answered by", "fields (plus by=, text=)", "meets deadline", title="Case steps")
    for r in rows:
        table.add_row(r["step"], r["title"], r["answered_by"], " ".join(r["fields"]), r["deadline"] or "")
    console().print(table)


@app.command()
def transfer(
    number: str = NUMBER,
    reason: str = typer.Option(..., help="Why a crime is suspected."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Report a suspected crime found in investigation: the head decides on the transfer within 3 days.

    Example: regflow case transfer CASE-2026-000001 --reason "涉案金额超过立案追诉标准"
    """
    _answer(number, "investigation", {"by": who(by), "finding": "transfer", "text": reason}, json_out)


def _deadline_rows(rows, json_out: bool, heading: str) -> None:
    from tasks.render import local_time

    data = [
        {"number": d.subject, "deadline": d.name, "status": d.status, "due_at": d.due_at, "rule": d.rule} for d in rows
    ]
    if json_out:
        emit_json(data)
        return
    for d in data:
        console().print(f"{heading}: {d['number']} {d['deadline']} {d['status']}, due {local_time(d['due_at'])}")
        console().print(f"  {d['rule']}")


@app.command("pause-clock")
def pause_clock(
    number: str = NUMBER,
    reason: str = typer.Option(..., help="Testing, appraisal, inspection ..."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Stop the case clock (filing and decision limits) while testing or appraisal runs.

    Example: regflow case pause-clock CASE-2026-000001 --reason "送检：头盔质量检验"
    """
    from tasks.cases import pause_clock as pause

    _deadline_rows(pause(number, by=who(by), reason=reason, now=utcnow()), json_out, "paused")


@app.command("resume-clock")
def resume_clock(number: str = NUMBER, by: Optional[str] = BY, json_out: bool = JSON) -> None:
    """Restart the case clock; its due dates move by the time paused.

    Example: regflow case resume-clock CASE-2026-000001
    """
    from tasks.cases import resume_clock as resume

    _deadline_rows(resume(number, by=who(by), now=utcnow()), json_out, "resumed")


@app.command()
def extend(
    number: str = NUMBER,
    deadline: str = typer.Argument(..., help="filing, decision, seizure ..."),
    reason: str = typer.Option(..., help="Why, as approved."),
    collective: bool = typer.Option(False, "--collective", help="A collective decision (decision only)."),
    period: Optional[str] = typer.Option(None, help="The further period a collective decision set, e.g. 30d."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Extend a deadline as its rule allows (filing +15 WD, seizure +30 d, decision +30 d by
    the head; beyond that a collective decision with its own period).

    Example: regflow case extend CASE-2026-000001 decision --reason "案情复杂" --by 局长
    """
    from tasks.cases import extend as lengthen

    if collective != (period is not None):
        raise InvalidInput("--collective and --period go together")
    row = lengthen(number, deadline, by=who(by), reason=reason, now=utcnow(), collective_period=period)
    _deadline_rows([row], json_out, "extended")


@app.command()
def measure(
    number: str = NUMBER,
    kind: str = one_of(..., "preservation", "seizure", help="The measure."),
    end: bool = typer.Option(False, "--end", help="Record that the measure was decided on / lifted."),
    note: str = typer.Option("", help="What was preserved or seized, or how it ended."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Evidence preservation (decide within 7 WD) or sealing/seizure (30 d, +30 d once).

    Example: regflow case measure CASE-2026-000001 --kind seizure --note "扣押头盔 200 顶"
    """
    from tasks.cases import measure as take

    _deadline_rows([take(number, kind, by=who(by), end=end, now=utcnow(), text=note)], json_out, kind)


@app.command()
def assist(
    number: str = NUMBER,
    to: str = typer.Option(..., help="Code of the authority asked to assist."),
    request: str = typer.Option(..., help="What is asked."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Ask another authority for assistance (协查): it owes the answer within 15 WD.

    Example: regflow case assist CASE-2026-000001 --to 320102 --request "核查供货商营业执照及进货记录"
    """
    from tasks.cases import request_assistance

    _deadline_rows(
        [request_assistance(number, to=to, by=who(by), text=request, now=utcnow())], json_out, "assistance requested"
    )


@app.command("assist-reply")
def assist_reply(
    number: str = NUMBER,
    request: int = typer.Argument(..., help="The request's number (1, 2 ...)."),
    text: str = typer.Option(..., help="The assisting authority's answer."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Record the assisting authority's answer.

    Example: regflow case assist-reply CASE-2026-000001 1 --text "已核实，供货商为……"
    """
    from tasks.cases import answer_assistance

    _deadline_rows([answer_assistance(number, request, by=who(by), text=text, now=utcnow())], json_out, "answered")


@app.command()
def supervise(
    number: str = NUMBER,
    by: str = typer.Option(..., "--by", help="Code of the listing (supervising) authority."),
    report_every: str = typer.Option("15d", help="How often progress is owed, e.g. 15d."),
    finish_by: str = typer.Option(..., help="The date the result is owed, e.g. 2027-03-31."),
    officer: Optional[str] = typer.Option(None, help="Who lists it (default: $REGFLOW_USER)."),
    json_out: bool = JSON,
) -> None:
    """List a case for supervision (挂牌督办): progress reports at the interval, the result
    by the date, every miss escalated to the listing authority.

    Example: regflow case supervise CASE-2026-000001 --by 330100 --report-every 15d --finish-by 2026-12-31
    """
    from tasks.cases import supervise as list_case

    tz = get_settings().timezone
    text = finish_by.strip() + ("T23:59:59" if len(finish_by.strip()) == 10 else "")
    case = list_case(
        number,
        by_authority=by,
        report_every=report_every,
        finish_by=parse_when(text, tz=tz),
        by=who(officer),
        now=utcnow(),
    )
    if json_out:
        emit_json(
            {
                "number": case.number,
                "listed_by": case.listed_by,
                "report_every": case.report_every,
                "finish_by": case.finish_by,
            }
        )
    else:
        console().print(f"{case.number} listed by {case.listed_by}: progress every {case.report_every}")


@app.command("report-progress")
def report_progress(
    number: str = NUMBER,
    text: str = typer.Option(..., help="The progress report."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Report progress on a listed case to the listing authority.

    Example: regflow case report-progress CASE-2026-000001 --text "已完成证据固定，待检验结果"
    """
    from tasks.cases import supervision_report

    _deadline_rows([supervision_report(number, by=who(by), text=text, now=utcnow())], json_out, "next report")


@app.command()
def unlist(
    number: str = NUMBER, reason: str = typer.Option(..., help="Why the listing is lifted."), by: Optional[str] = BY
) -> None:
    """Lift a case's listing for supervision (recorded, its supervision deadlines cancelled).

    Example: regflow case unlist CASE-2026-000001 --reason "已按期办结"
    """
    from tasks.cases import lift_listing

    case = lift_listing(number, by=who(by), reason=reason, now=utcnow())
    console().print(f"{case.number}: listing lifted")


@app.command("notify-reporter")
def notify_reporter(number: str = NUMBER, by: Optional[str] = BY) -> None:
    """Record that the real-name reporter was told whether a case was filed (due within 5 WD).

    Example: regflow case notify-reporter CASE-2026-000001
    """
    from tasks.cases import reporter_notified

    reporter_notified(number, by=who(by), now=utcnow())
    console().print(f"{number.strip().upper()}: reporter notice recorded")


def overview(number: str) -> dict[str, Any]:
    from storage.cases import get_case

    url = get_settings().flow_run_url

    def fields(case) -> dict[str, Any]:
        money = {k: str(v) if v is not None else None for k, v in (("fine", case.fine), ("surcharge", case.surcharge))}
        return {
            "kind": case.kind, "party": case.party, "source": case.source, "stage": case.stage,
            "outcome": case.outcome, "received_at": case.received_at, "filed_at": case.filed_at,
            "closed_at": case.closed_at, "clock_paused_at": case.clock_paused_at, **money,
            "listed_by": case.listed_by, "linked_to": case.linked_to, "lookback_at": case.lookback_at,
            "lookback_run": url(case.lookback_run_id) if case.lookback_run_id else None, "facts": case.facts,
            "rules_version": case.rules_hash[:12],
        }  # fmt: skip

    return subject_overview(number, getter=get_case, what="case or complaint", fields=fields)


@app.command()
def show(number: str = NUMBER, json_out: bool = JSON) -> None:
    """Stage, deadlines, documents, notifications and timeline of one case or complaint.

    Example: regflow case show CASE-2026-000001
    """
    from regflow.cli.records import show as show_subject
    from tasks.render import local_time

    data = overview(number)
    awaiting = f" ({data['outcome']})" if data["outcome"] else f"  awaiting: {data['awaiting']}"
    listed = f" · listed by {data['listed_by']}" if data["listed_by"] else ""
    heading = [
        f"{data['number']} {data['title']} · {data['party']} · {data['status']}{awaiting}",
        f"authority {data['authority']} · source {data['source']}{listed}"
        + (" · clock paused" if data["clock_paused_at"] else ""),
    ]
    if data["lookback_at"]:
        heading.append(f"look-back review scheduled for {local_time(data['lookback_at'])}")
    if data["facts"].get("incident"):
        heading.append(f"escalated to incident {data['facts']['incident']}")
    show_subject(data, heading, json_out=json_out, runs=("flow_run", "lookback_run"))


@app.command("list")
def list_(
    stage: Optional[str] = typer.Option(None, help="Only cases at this stage (a step name, or closed)."),
    kind: Optional[str] = one_of(None, "case", "complaint", help="Only this kind."),
    open_only: bool = typer.Option(False, "--open", help="Only open ones."),
    json_out: bool = JSON,
) -> None:
    """Recent cases and complaints, newest first.

    Example: regflow case list --stage legal-review
    """
    from storage.cases import list_cases
    from tasks.render import local_time

    with session_scope() as session:
        rows = [
            {
                "number": c.number,
                "kind": c.kind,
                "stage": c.stage,
                "status": c.status,
                "outcome": c.outcome,
                "title": c.title,
                "party": c.party,
                "authority": c.authority_code,
                "received_at": c.received_at,
                "listed_by": c.listed_by,
            }
            for c in list_cases(session, kind=kind, stage=stage, open_only=open_only)
        ]
    if json_out:
        emit_json(rows)
        return
    table = Table("number", "stage", "status", "title", "party", "authority", "received", title="Cases")
    for r in rows:
        table.add_row(
            r["number"],
            r["stage"],
            r["outcome"] or r["status"],
            r["title"],
            r["party"],
            r["authority"],
            local_time(r["received_at"]),
        )
    console().print(table)
