"""`regflow publication …`, `regflow serious-list …`, `regflow credit …` and
`regflow referral …`: penalties published (SAMR Order 45), the serious-violation list
(Order 44), an enterprise's credit record, and referrals to partner departments; each
human step the same as its form in the Prefect UI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Optional

import typer

from regflow.cli.output import BY, JSON, chosen, console, day_or_today, deadline_table, emit_json, id_table, mount, who
from storage.db import utcnow

publication_app = typer.Typer(
    help="Penalty publications (SAMR Order 45): list, show, publish, withdraw, apply-end, end.", no_args_is_help=True
)
listing_app = typer.Typer(
    help="The serious-violation list (SAMR Order 44): propose, decide, notify, publish, remove, list, show.",
    no_args_is_help=True,
)
credit_app = typer.Typer(help="An enterprise's credit record: show, export.", no_args_is_help=True)
referral_app = typer.Typer(help="Referrals to partner departments: list, show, ack, feedback.", no_args_is_help=True)
TEXT = typer.Option("", "--text", help="Remarks or reasons recorded with the answer.")
NO_WAIT = typer.Option(False, "--no-wait", help="Record and return; the run takes it when it gets there.")
PUB = typer.Argument(..., help="The publication's number (PUB-…).")
SVL = typer.Argument(..., help="The listing's number (SVL-…).")
REF = typer.Argument(..., help="The referral's number (REF-…).")
AUTHORITY = typer.Option(None, help="Only this authority's and those below it.")
DAY = dict(formats=["%Y-%m-%d"])


def register(root: typer.Typer) -> None:
    mount(
        root,
        {"publication": publication_app, "serious-list": listing_app, "credit": credit_app, "referral": referral_app},
    )


def _answer(number: str, step: str, answer: dict[str, Any], json_out: bool, wait: bool) -> None:
    from regflow.cli.records import answer_step
    from tasks.credit import answer as record

    answer_step(record, number, step, answer, json_out=json_out, wait=wait)


def _release(number: str) -> None:
    """The runs of what ended with it walk on to their end (the watcher is not needed for
    this; if Prefect is away they stay suspended, with nothing left to answer)."""
    from kernel.errors import PlatformUnavailable
    from tasks.credit import ended_with
    from tasks.runs import release_runs

    try:
        release_runs(ended_with(number))
    except PlatformUnavailable as exc:
        console().print(f"(their flow runs could not be told: {exc})")


def _table(rows: list[dict[str, Any]], columns: tuple, json_out: bool) -> None:
    if json_out:
        emit_json(rows)
        return
    table = id_table(*columns)
    for r in rows:
        table.add_row(*(str(r.get(c[0] if isinstance(c, tuple) else c, "") or "") for c in columns))
    console().print(table)


# --- publication -------------------------------------------------------------------------------


@publication_app.command("list")
def list_publications(
    state: Optional[str] = typer.Option(None, help="pending | published | withdrawn | ended"),
    authority: Optional[str] = AUTHORITY,
    json_out: bool = JSON,
) -> None:
    """Publications, newest first."""
    from tasks.credit import listing_rows

    rows = listing_rows("publication", state=state, authority=authority)
    _table(rows, (("number", 15), "state", "party", "penalties", "fine", "published_on", "ends_on"), json_out)


@publication_app.command("show")
def show_publication(number: str = PUB, json_out: bool = JSON) -> None:
    """A publication: what the public sees of it, its state, period and deadlines."""
    from tasks.credit import publication_view

    data = publication_view(number)
    if json_out:
        emit_json(data)
        return
    out = console()
    out.print(
        f"{data['number']} · {data['state']} · {data['party']} ({data['uscc'] or data['party_kind']}) · {data['case']}"
    )
    out.print(
        f"{data['penalties']}{'，罚款 ' + data['fine'] + ' 元' if data['fine'] else ''} · {data['authority']} · "
        f"decided {data['decided_on']} · published {data['published_on'] or '-'} · until {data['ends_on'] or '-'}"
        + (f" · pushed to {data['push_to']}" if data["push_to"] else "")
        + ("" if data["ends_early"] else " · may not end early")
        + (f" · referrals {', '.join(data['referrals'])}" if data["referrals"] else "")
    )
    out.print(deadline_table(data["deadlines"]))


@publication_app.command()
def publish(
    number: str = PUB,
    where: str = typer.Option("国家企业信用信息公示系统", help="Where it is published (or pushed)."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """Publish the penalty (or push it to the province where the party is registered),
    once its content is checked.

    Example: regflow publication publish PUB-2026-000001 --by 李四
    """
    _answer(number, "publication", dict(by=who(by), where=where, text=text), json_out, wait=not no_wait)


@publication_app.command()
def withdraw(
    number: str = PUB,
    reason: str = typer.Option(..., help="changed | revoked | illegal | invalid: what befell the decision."),
    on: Optional[dt.datetime] = typer.Option(None, "--on", help="The day it befell it. Default: today.", **DAY),
    text: str = TEXT,
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Withdraw a publication whose decision was changed, revoked or confirmed illegal or
    invalid (within 3 working days, Order 45 Art. 11); a listing on it is revoked too.

    Example: regflow publication withdraw PUB-2026-000001 --reason revoked --on 2026-10-12 --by 李四
    """
    from tasks.credit import withdraw as take_back

    fell_on = dt.date.fromisoformat(day_or_today(on))
    row = take_back(number, reason=reason, fell_on=fell_on, by=who(by), text=text, now=utcnow())
    _release(row.number)
    if json_out:
        emit_json({"number": row.number, "state": row.state, "reason": row.end_reason})
    else:
        console().print(f"{row.number} withdrawn ({row.end_reason}); it is off the public page")


@publication_app.command("apply-end")
def apply_end(number: str = PUB, text: str = TEXT, by: Optional[str] = BY, json_out: bool = JSON) -> None:
    """Record the party's application to end the publication early (credit repair):
    refused at once where the rules forbid it, else verified within the limit.

    Example: regflow publication apply-end PUB-2026-000001 --text "已履行处罚决定" --by 李四
    """
    from tasks.credit import apply_end as ask
    from tasks.render import local_time

    deadline = ask(number, by=who(by), text=text, now=utcnow())
    if json_out:
        emit_json({"number": number.strip().upper(), "deadline": deadline.name, "due_at": deadline.due_at.isoformat()})
    else:
        console().print(f"{number.strip().upper()}: application recorded; verify by {local_time(deadline.due_at)}")


@publication_app.command()
def end(
    number: str = PUB,
    grant: Optional[bool] = typer.Option(None, "--grant/--refuse", help="Grant or refuse the application."),
    text: str = TEXT,
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """The head's decision on an application to end the publication early. (At the end
    of its period a publication ends by its scheduled `credit-expiry` run.)

    Example: regflow publication end PUB-2026-000001 --grant --by 赵六
    """
    from tasks.credit import end_early

    row = end_early(number, grant=chosen(grant, "--grant or --refuse"), by=who(by), text=text, now=utcnow())
    _release(row.number)
    if json_out:
        emit_json({"number": row.number, "state": row.state})
    else:
        console().print(f"{row.number}: {'ended early' if row.state == 'ended' else 'application refused'}")


# --- the serious-violation list -------------------------------------------------------------------


@listing_app.command()
def propose(
    case: str = typer.Argument(..., help="The decided case (CASE-…)."),
    criterion: str = typer.Option(..., help="food | drug | quality | consumer | competition | obstruction"),
    text: str = TEXT,
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Propose listing the party of a case decided with a heavier penalty (Order 44 Art. 2).

    Example: regflow serious-list propose CASE-2026-000001 --criterion quality --text "多次生产不合格产品" --by 李四
    """
    from regflow.cli.records import start_run
    from tasks.credit import propose as put_forward
    from tasks.runs import start_case_run

    subject = put_forward(case, criterion=criterion, by=who(by), text=text, now=utcnow())
    start_run(
        subject.number,
        lambda: start_case_run(subject),
        headline=f"listing {subject.number} proposed",
        show="regflow serious-list show",
        json_out=json_out,
    )


@listing_app.command()
def decide(
    number: str = SVL,
    approve: Optional[bool] = typer.Option(None, "--approve/--refuse", help="The approval of the proposal."),
    listed: Optional[bool] = typer.Option(None, "--list/--not-list", help="The listing decision, after the notice."),
    party_answer: str = typer.Option("", help="With --list/--not-list: none | waived | statement | hearing."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The approval (--approve/--refuse; by the bureau above a county or city bureau),
    or after the notice the decision (--list/--not-list with --party-answer).

    Example: regflow serious-list decide SVL-2026-000001 --approve --by 杭州市局局长
    """
    from kernel.errors import InvalidInput

    if (approve is None) == (listed is None):
        raise InvalidInput("give --approve/--refuse (the approval) or --list/--not-list (the decision)")
    if approve is not None and party_answer:
        raise InvalidInput("--party-answer goes with --list/--not-list (the decision after the notice)")
    if approve is not None:
        _answer(number, "listing-approval", dict(by=who(by), approve=approve, text=text), json_out, not no_wait)
        return
    answer = dict(by=who(by), list=listed, party_answer=party_answer or "none", text=text)
    _answer(number, "listing-decision", answer, json_out, wait=not no_wait)


@listing_app.command()
def notify(
    number: str = SVL,
    served_on: Optional[dt.datetime] = typer.Option(None, help="Default: today.", **DAY),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The prior notice served on the party (its statement window starts).

    Example: regflow serious-list notify SVL-2026-000001 --served-on 2026-10-12 --by 李四
    """
    answer = dict(by=who(by), served_on=day_or_today(served_on), text=text)
    _answer(number, "listing-notice", answer, json_out, wait=not no_wait)


@listing_app.command("publish")
def publish_listing(
    number: str = SVL,
    where: str = typer.Option("国家企业信用信息公示系统", help="Where it is published."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """Publish the listing: the period starts, partner departments are told.

    Example: regflow serious-list publish SVL-2026-000001 --by 李四
    """
    _answer(number, "listing-publication", dict(by=who(by), where=where, text=text), json_out, wait=not no_wait)


@listing_app.command()
def remove(
    number: str = SVL,
    apply: bool = typer.Option(False, "--apply", help="Record the party's application for early removal."),
    grant: Optional[bool] = typer.Option(None, "--grant/--refuse", help="The head's decision on it."),
    text: str = TEXT,
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Early removal: --apply records the party's application (refused before the
    minimum period), --grant/--refuse decides it. On expiry the listing ends by its
    scheduled `credit-expiry` run.

    Example: regflow serious-list remove SVL-2026-000001 --apply --by 李四
    """
    from kernel.errors import InvalidInput
    from tasks import credit
    from tasks.render import local_time

    if apply == (grant is not None):
        raise InvalidInput("give --apply, or --grant/--refuse")
    if apply:
        deadline = credit.apply_removal(number, by=who(by), text=text, now=utcnow())
        data = {"number": number.strip().upper(), "deadline": deadline.name, "due_at": deadline.due_at.isoformat()}
        message = f"{data['number']}: application recorded; verify by {local_time(deadline.due_at)}"
    else:
        row = credit.remove(number, grant=grant, by=who(by), text=text, now=utcnow())
        _release(row.number)
        data = {"number": row.number, "state": row.state}
        message = f"{row.number}: {'removed from the list' if row.state == 'removed' else 'application refused'}"
    emit_json(data) if json_out else console().print(message)


@listing_app.command("list")
def list_listings(
    state: Optional[str] = typer.Option(None, help="proposed | refused | listed | removed"),
    authority: Optional[str] = AUTHORITY,
    json_out: bool = JSON,
) -> None:
    """Listings, newest first."""
    from tasks.credit import listing_rows

    rows = listing_rows("listing", state=state, authority=authority)
    _table(rows, (("number", 15), "state", "party", ("uscc", 18), "field", "listed_on", "expires_on"), json_out)


@listing_app.command("show")
def show_listing(number: str = SVL, json_out: bool = JSON) -> None:
    """A listing: its party, state, period and deadlines."""
    from tasks.credit import listing_view

    data = listing_view(number)
    if json_out:
        emit_json(data)
        return
    out = console()
    out.print(
        f"{data['number']} · {data['state']} ({data['stage']}) · {data['party']} ({data['uscc']}) · {data['case']}"
    )
    out.print(
        f"{data['article']} {data['field']} · {data['authority']} · listed {data['listed_on'] or '-'} · "
        f"until {data['expires_on'] or '-'}"
        + (f" · referrals {', '.join(data['referrals'])}" if data["referrals"] else "")
    )
    out.print(deadline_table(data["deadlines"]))


# --- credit records ---------------------------------------------------------------------------------


@credit_app.command("show")
def show_record(
    party: str = typer.Argument(
        ..., help="The unified social credit code, or - to read it (or a person's identity number) from stdin."
    ),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Everything on record about one party: cases and publications, listings, failed
    spot checks, recalls, risk items, measures partners took. A person's number is
    looked up by its digest and never printed; give it on standard input (`-`) so it
    stays out of the shell's history and the process list.

    Example: regflow credit show 913301063AGYGLUY35
    Example: regflow credit show - < number.txt
    """
    import sys

    from tasks.credit import record

    if party == "-":
        party = sys.stdin.readline()
    data = record(party, by=who(by), now=utcnow())
    if json_out:
        emit_json(data)
        return
    out = console()
    head = data["party"]
    out.print(f"{head['name'] or '-'} · {head['uscc'] or head['identity']}")
    sections = (
        ("cases", ("number", "status", "outcome", "fine", "publication")),
        ("publications", ("number", "state", "penalties", "published_on", "ends_on")),
        ("listings", ("number", "state", "field", "listed_on", "expires_on")),
        ("failed_spot_checks", ("number", "campaign", "product", "failing_items")),
        ("recalls", ("number", "product", "mode", "rate")),
        ("risk_items", ("number", "grade", "status", "product")),
        ("partner_measures", ("number", "department", "about", "measures")),
    )
    for name, columns in sections:
        if data[name]:
            table = id_table(*((c, 15) if c == "number" else c for c in columns), title=name)
            for r in data[name]:
                table.add_row(*(str(r.get(c) if r.get(c) is not None else "-") for c in columns))
            out.print(table)
        else:
            out.print(f"{name}: none")


@credit_app.command()
def export(
    authority: Optional[str] = AUTHORITY,
    out: Optional[Path] = typer.Option(None, "--out", help="Write to this file (default: standard output)."),
    by: Optional[str] = BY,
) -> None:
    """Every market entity with a publication or listing on record, each with its credit
    record, as JSON for exchange.

    Example: regflow credit export --authority 330000 --out credit.json
    """
    import json

    from kernel.errors import InvalidInput
    from tasks.credit import export as gather

    data = gather(authority=authority, by=who(by), now=utcnow())
    if out is None:
        emit_json(data)
        return
    part = out.with_suffix(out.suffix + ".part")
    try:
        part.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        part.replace(out)
    except OSError as exc:
        raise InvalidInput(f"cannot write {out}: {exc.strerror or type(exc).__name__}") from None
    console().print(f"{len(data['records'])} records written to {out}")


# --- referrals ----------------------------------------------------------------------------------------


@referral_app.command("list")
def list_referrals(authority: Optional[str] = AUTHORITY, json_out: bool = JSON) -> None:
    """Referrals to partner departments, newest first, with what each awaits."""
    from tasks.credit import listing_rows

    rows = listing_rows("referral", authority=authority)
    _table(rows, (("number", 15), "stage", "department", ("about", 15), "party", "acknowledged", "feedback"), json_out)


@referral_app.command("show")
def show_referral(number: str = REF, json_out: bool = JSON) -> None:
    """A referral: the partner, what it is about, its acknowledgement, the measures
    reported, and its deadlines."""
    from tasks.credit import referral_view

    data = referral_view(number)
    if json_out:
        emit_json(data)
        return
    out = console()
    out.print(f"{data['number']} · {data['status']} ({data['stage']}) · {data['department']} · {data['about']}")
    out.print(
        f"{data['party']} · acknowledged {data['acknowledged'] or '-'} · feedback {data['feedback'] or '-'}"
        + (f"\nmeasures: {data['measures']}" if data["measures"] else "")
    )
    out.print(deadline_table(data["deadlines"]))


@referral_app.command()
def ack(
    number: str = REF,
    contact: str = typer.Option(..., help="Who acknowledged it at the partner department."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The partner acknowledged the referral (its feedback falls due).

    Example: regflow referral ack REF-2026-000001 --contact 税务王 --by 李四
    """
    _answer(number, "referral-ack", dict(by=who(by), contact=contact, text=text), json_out, wait=not no_wait)


@referral_app.command()
def feedback(
    number: str = REF,
    measures: str = typer.Option(..., help="The measures the partner took and their effect."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The partner's feedback: the measures it took (joint discipline's effect).

    Example: regflow referral feedback REF-2026-000001 --measures "限制参与政府采购" --by 李四
    """
    _answer(number, "referral-feedback", dict(by=who(by), measures=measures, text=text), json_out, wait=not no_wait)
