"""`regflow signal …`, `regflow risk …` and `regflow recall …`: risk signals in, risk
items assessed and decided, defect recalls carried out; each human step the same as
its form in the Prefect UI."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any, Optional

import typer

from regflow.cli.output import (
    BY,
    JSON,
    chosen,
    console,
    day_or_today,
    deadline_table,
    emit_json,
    id_table,
    mount,
    one_of,
    who,
)
from storage.db import utcnow

signal_app = typer.Typer(help="Risk signals: ingest, watch a drop folder, list, snooze a flood.", no_args_is_help=True)
risk_app = typer.Typer(help="Risk items: list, show, assess, decide, record the outcome done.", no_args_is_help=True)
recall_app = typer.Typer(help="Defect recalls (SAMR Order 19): open, each step, progress, show.", no_args_is_help=True)
TEXT = typer.Option("", "--text", help="Remarks or reasons recorded with the answer.")
NO_WAIT = typer.Option(False, "--no-wait", help="Record and return; the run takes it when it gets there.")
ITEM = typer.Argument(..., help="The risk item's number (RSK-…).")
RECALL = typer.Argument(..., help="The recall's number (RCL-…).")
DAY = dict(formats=["%Y-%m-%d"])


def register(root: typer.Typer) -> None:
    mount(root, {"signal": signal_app, "risk": risk_app, "recall": recall_app})


def _answer(number: str, step: str, answer: dict[str, Any], json_out: bool, wait: bool) -> None:
    from regflow.cli.records import answer_step
    from tasks.risk import answer as record

    answer_step(record, number, step, answer, json_out=json_out, wait=wait)


def _print_ingested(result, json_out: bool) -> None:
    if json_out:
        emit_json(result.as_dict())
        return
    out = console()
    out.print(f"{result.signals} signals recorded, {result.repeats} repeats counted; items: {', '.join(result.items)}")
    if result.opened:
        out.print(f"new risk items: {', '.join(result.opened)}")
    if result.urgent:
        out.print(f"一级 told to the duty desks now: {', '.join(result.urgent)}")
    if result.late_reports:
        out.print(f"enterprise reported late (Order 19 Art. 8): leads {', '.join(result.late_reports)}")


# --- signal ----------------------------------------------------------------------------------


@signal_app.command()
def ingest(
    file: Optional[Path] = typer.Option(None, "--file", help="A CSV (with a header) or JSON-lines file of signals."),
    source: str = typer.Option(
        "",
        help="complaint, injury_monitoring, spot_check, recall_notice, media, "
        "foreign_notice, laboratory, enterprise_report",
    ),
    category: str = typer.Option("", help="Product category, e.g. 电动自行车."),
    product: str = typer.Option("", help="The product."),
    model: str = typer.Option("", help="Model or specification."),
    batch: str = typer.Option("", help="Batch or date of manufacture."),
    uscc: str = typer.Option("", help="The enterprise's unified social credit code (checked)."),
    enterprise: str = typer.Option("", help="The enterprise's name."),
    region: str = typer.Option("", help="The authority code of the region it concerns."),
    harm: str = typer.Option("none", help="none | injury | serious_injury | death"),
    count: int = typer.Option(1, help="How many cases this signal reports."),
    text: str = typer.Option("", help="What the signal says."),
    at: str = typer.Option("", help="When (ISO 8601; local time if no offset). Default: now."),
    learned_on: str = typer.Option("", help="An enterprise's report: the day it learned of it."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Record one signal from options, or every signal of a file (all or none); each is
    grouped into its risk item and graded.

    Example: regflow signal ingest --source injury_monitoring --category 电动自行车 --product 电动自行车
    --model XR-200 --uscc 913301063AGYGLUY35 --region 330106 --harm serious_injury --text "充电时起火"
    """
    from tasks import risk
    from tasks.render import local_time

    if file is not None:
        result = risk.ingest_file(file, by=who(by), now=utcnow())
    else:
        data = dict(
            source=source,
            category=category,
            product=product,
            model=model,
            batch=batch,
            uscc=uscc,
            enterprise=enterprise,
            region=region,
            harm=harm,
            count=count,
            text=text,
            at=at or local_time(utcnow()),
            learned_on=learned_on,
        )
        result = risk.ingest_one(data, by=who(by), now=utcnow())
    _print_ingested(result, json_out)


@signal_app.command()
def watch(
    folder: Path = typer.Argument(..., help="The drop folder a monitoring point delivers into."),
    every: float = typer.Option(5.0, help="Seconds between passes."),
    once: bool = typer.Option(False, "--once", help="One pass, then exit."),
    by: Optional[str] = BY,
) -> None:
    """Read each file dropped into FOLDER whole: moved to read/ once on record, or to
    rejected/ with a .reason file (nothing of it recorded).

    Example: regflow signal watch /srv/regflow/drop/injury --by 监测点
    """
    from kernel.errors import InvalidInput
    from tasks.risk import watch_once

    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder")
    actor = who(by)
    while True:
        for name, what in watch_once(folder, by=actor, now=utcnow()):
            console().print(f"{name}: {what}")
        if once:
            return
        time.sleep(every)


@signal_app.command("list")
def list_signals(limit: int = typer.Option(50, help="How many, newest first."), json_out: bool = JSON) -> None:
    """The newest signals and the items they count in."""
    from tasks.risk import signal_listing

    rows = signal_listing(limit=limit)
    if json_out:
        emit_json(rows)
        return
    from tasks.render import local_time

    table = id_table("id", ("item", 15), "source", "category", "product", "harm", "count", "repeats", ("at", 16))
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["item"],
            r["source"],
            r["category"],
            f"{r['product']} {r['model']}".strip(),
            r["harm"],
            str(r["count"]),
            str(r["repeats"]),
            local_time(dt.datetime.fromisoformat(r["at"])),
        )
    console().print(table)


@signal_app.command()
def snooze(
    item: str = ITEM,
    period: str = typer.Option(..., "--for", help="How long, e.g. 6h, 2d (at most the thresholds' snooze_max)."),
    reason: str = typer.Option(..., help="Why (on the audit log)."),
    by: Optional[str] = BY,
) -> None:
    """Quiet a known flood on one item: its signals are still recorded, counted and
    graded; a rise in grade is still told.

    Example: regflow signal snooze RSK-2026-000001 --for 12h --reason "同一批次集中投诉" --by 赵六
    """
    from tasks.render import local_time
    from tasks.risk import snooze as quiet

    row = quiet(item, period=period, reason=reason, by=who(by), now=utcnow())
    console().print(f"{row.number} snoozed until {local_time(row.snoozed_until)}")


# --- risk ------------------------------------------------------------------------------------


@risk_app.command("list")
def list_items(
    status: Optional[str] = typer.Option(None, help="open | closed"),
    authority: Optional[str] = typer.Option(None, help="Only this region's."),
    json_out: bool = JSON,
) -> None:
    """Risk items, newest first."""
    from tasks.risk import listing

    rows = listing(kind="risk", status=status, authority=authority)
    if json_out:
        emit_json(rows)
        return
    table = id_table(
        ("number", 15), "grade", "status", "category", "product", "enterprise", "region", "signals", "harm"
    )
    for r in rows:
        table.add_row(
            r["number"],
            r["grade"],
            r["status"],
            r["category"],
            r["product"],
            r["enterprise"],
            r["region"],
            str(r["signals"]),
            r["worst_harm"],
        )
    console().print(table)


@risk_app.command("show")
def show_item(item: str = ITEM, json_out: bool = JSON) -> None:
    """A risk item: its grade, signals, links, what it awaits and its deadlines."""
    from tasks.risk import item_view

    data = item_view(item)
    if json_out:
        emit_json(data)
        return
    out = console()
    out.print(
        f"{data['number']} · {data['grade']} · {data['category']} · {data['product']} {data['model']} "
        f"{data['batch']} · {data['enterprise'] or data['uscc']} · {data['region']}"
    )
    out.print(
        f"status {data['status']}; awaiting {', '.join(data['awaits']) or 'nothing'}; signals "
        f"{data['signals']}, worst harm {data['worst_harm']}; outcome {data['outcome'] or '-'}"
        + "".join(f"; {k} {v}" for k, v in data["links"].items())
    )
    out.print(deadline_table(data["deadlines"]))


@risk_app.command()
def assess(
    item: str = ITEM,
    hazard: str = typer.Option(..., help="The harm, its nature and gravity."),
    exposure: str = typer.Option(..., help="Who and how many are exposed."),
    grade: str = one_of(..., "一级", "二级", "三级", help="The grade, confirmed or changed."),
    draft_warning: str = typer.Option("", help="A consumer warning drafted for the head's decision."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The assessment (hazard, exposure, grade).

    Example: regflow risk assess RSK-2026-000001 --hazard 电池热失控 --exposure "约 3000 辆在用" --grade 一级 --by 李四
    """
    answer = dict(by=who(by), hazard=hazard, exposure=exposure, grade=grade, draft_warning=draft_warning, text=text)
    _answer(item, "risk-assessment", answer, json_out, wait=not no_wait)


@risk_app.command()
def decide(
    item: str = ITEM,
    warning: str = typer.Option("", help="Publish this consumer warning (消费提示)."),
    draft: bool = typer.Option(False, "--draft", help="Publish the warning drafted in the assessment."),
    spot_check: str = typer.Option("", "--spot-check", help="Answer it by this filed campaign (its key)."),
    recall: bool = typer.Option(False, "--recall", help="Open a defect investigation and recall."),
    incident: str = typer.Option("", "--incident", help="Trigger an incident under this plan (with --level)."),
    level: str = typer.Option("", help="I | II | III | IV, with --incident."),
    close: str = typer.Option("", "--close", help="Close it, for this reason."),
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The head's decision: exactly one of --warning (or --draft), --spot-check, --recall, --incident, --close.

    Example: regflow risk decide RSK-2026-000001 --recall --by 赵六
    """
    from kernel.errors import InvalidInput

    picked = [
        o
        for o, on in (
            ("warning", warning or draft),
            ("spot_check", spot_check),
            ("recall", recall),
            ("incident", incident),
            ("close", close),
        )
        if on
    ]
    if len(picked) != 1:
        raise InvalidInput("give exactly one of --warning (or --draft), --spot-check, --recall, --incident, --close")
    answer = dict(
        by=who(by), outcome=picked[0], warning=warning, campaign=spot_check, plan=incident, level=level, text=close
    )
    _answer(item, "risk-decision", answer, json_out, wait=not no_wait)


@risk_app.command()
def done(
    item: str = ITEM, text: str = TEXT, by: Optional[str] = BY, no_wait: bool = NO_WAIT, json_out: bool = JSON
) -> None:
    """Record the decided work finished (refused while its recall, incident or campaign is not).

    Example: regflow risk done RSK-2026-000001 --by 李四
    """
    _answer(item, "risk-outcome", dict(by=who(by), text=text), json_out, wait=not no_wait)


# --- recall ----------------------------------------------------------------------------------


@recall_app.command("open")
def open_(
    uscc: str = typer.Option(..., help="The producer's unified social credit code."),
    producer: str = typer.Option(..., help="The producer's name."),
    product: str = typer.Option(..., help="The product (and model)."),
    authority: str = typer.Option(..., help="The authority that receives the plan."),
    voluntary: bool = typer.Option(False, "--voluntary", help="The producer recalls of its own accord."),
    defect_on: Optional[dt.datetime] = typer.Option(None, help="Voluntary: the day it found the defect.", **DAY),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Open a recall: a defect investigation (notice to investigate due in 3 working days)
    or a voluntary recall (plan due in 10 working days from the defect found).

    Example: regflow recall open --uscc 913301063AGYGLUY35 --producer 某公司 --product "XR-200 电动自行车"
    --authority 330106 --by 李四
    """
    from tasks.risk import open_recall

    number = open_recall(
        uscc=uscc,
        producer=producer,
        product=product,
        authority=authority,
        voluntary=voluntary,
        defect_on=defect_on.date() if defect_on else None,
        by=who(by),
        now=utcnow(),
    )
    if json_out:
        emit_json({"number": number})
    else:
        console().print(f"recall {number} opened")


def _served(number: str, step: str, served_on, text, by, no_wait, json_out) -> None:
    _answer(number, step, dict(by=who(by), served_on=day_or_today(served_on), text=text), json_out, wait=not no_wait)


@recall_app.command()
def investigate(
    number: str = RECALL,
    findings_by: dt.datetime = typer.Option(..., help="The day the notice names for the findings.", **DAY),
    served_on: Optional[dt.datetime] = typer.Option(None, help="Default: today.", **DAY),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The notice to the producer to investigate, with the day its findings are due."""
    answer = dict(by=who(by), served_on=day_or_today(served_on), findings_by=findings_by.date().isoformat(), text=text)
    _answer(number, "recall-investigation", answer, json_out, wait=not no_wait)


@recall_app.command()
def findings(
    number: str = RECALL,
    defect: Optional[bool] = typer.Option(None, "--defect/--no-defect", help="Does it find a defect."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The producer's findings (no defect ends the recall)."""
    answer = dict(by=who(by), defect=chosen(defect, "--defect or --no-defect"), text=text)
    _answer(number, "recall-findings", answer, json_out, wait=not no_wait)


@recall_app.command()
def notify(
    number: str = RECALL,
    served_on: Optional[dt.datetime] = typer.Option(None, help="Default: today.", **DAY),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The notice to recall, served (the plan falls due in 10 working days)."""
    _served(number, "recall-notice", served_on, text, by, no_wait, json_out)


@recall_app.command()
def plan(
    number: str = RECALL,
    affected: int = typer.Option(..., help="Units the plan covers."),
    filed_on: Optional[dt.datetime] = typer.Option(None, help="Default: today.", **DAY),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The recall plan filed (publication due in 3 working days; progress every 3 months)."""
    answer = dict(by=who(by), filed_on=day_or_today(filed_on), affected=affected, text=text)
    _answer(number, "recall-plan", answer, json_out, wait=not no_wait)


@recall_app.command()
def notice(
    number: str = RECALL,
    where: str = typer.Option(..., help="Where it was published."),
    published_on: Optional[dt.datetime] = typer.Option(None, help="Default: today.", **DAY),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The recall published by the producer."""
    answer = dict(by=who(by), published_on=day_or_today(published_on), where=where, text=text)
    _answer(number, "recall-public-notice", answer, json_out, wait=not no_wait)


@recall_app.command("progress")
def progress_(
    number: str = RECALL,
    recalled: int = typer.Option(..., help="Units recalled so far."),
    completed_on: Optional[dt.datetime] = typer.Option(None, help="The day the plan was completed.", **DAY),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """A progress report (every three months); with --completed-on the summary falls due."""
    from tasks.render import local_time
    from tasks.risk import progress

    data = progress(
        number, recalled=recalled, completed_on=completed_on.date() if completed_on else None, by=who(by), now=utcnow()
    )
    if json_out:
        emit_json(data)
    else:
        console().print(
            f"{data['number']} progress report {data['report']}: {recalled} recalled; next "
            f"{data['next']} due {local_time(data['due_at'])}"
        )


@recall_app.command()
def summary(
    number: str = RECALL,
    recalled: int = typer.Option(..., help="Units recalled in all."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The recall summary, within 15 working days of completing the plan."""
    _answer(number, "recall-summary", dict(by=who(by), recalled=recalled, text=text), json_out, wait=not no_wait)


@recall_app.command("assess")
def assess_recall(
    number: str = RECALL,
    effective: Optional[bool] = typer.Option(None, "--effective/--not-effective", help="Did it remove the risk."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The effectiveness assessment (the recall rate against the target)."""
    answer = dict(by=who(by), effective=chosen(effective, "--effective or --not-effective"), text=text)
    _answer(number, "recall-assessment", answer, json_out, wait=not no_wait)


@recall_app.command()
def again(
    number: str = RECALL,
    served_on: Optional[dt.datetime] = typer.Option(None, help="Default: today.", **DAY),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The notice to recall again (a new recall opens, linked to this one)."""
    _served(number, "recall-again", served_on, text, by, no_wait, json_out)


@recall_app.command("show")
def show_recall(number: str = RECALL, json_out: bool = JSON) -> None:
    """A recall: its figures, what it awaits, its deadlines and any leads."""
    from tasks.risk import recall_view

    data = recall_view(number)
    if json_out:
        emit_json(data)
        return
    out = console()
    out.print(f"{data['number']} · {data['mode']} · {data['producer']} ({data['uscc']}) · {data['product']}")
    out.print(
        f"status {data['status']}; awaiting {', '.join(data['awaits']) or 'nothing'}; recalled "
        f"{data['recalled']}/{data['affected'] or '-'}; progress reports {data['progress_reports']}"
        + (f"; leads {', '.join(data['leads'])}" if data["leads"] else "")
    )
    out.print(deadline_table(data["deadlines"]))


@recall_app.command("list")
def list_recalls(status: Optional[str] = typer.Option(None, help="open | closed"), json_out: bool = JSON) -> None:
    """Recalls, newest first."""
    from tasks.risk import listing

    rows = listing(kind="recall", status=status)
    if json_out:
        emit_json(rows)
        return
    table = id_table(("number", 15), "status", "stage", "mode", "producer", "product", "recalled")
    for r in rows:
        table.add_row(
            r["number"],
            r["status"],
            r["stage"],
            r["mode"],
            r["producer"],
            r["product"],
            f"{r['recalled']}/{r['affected'] or '-'}",
        )
    console().print(table)
