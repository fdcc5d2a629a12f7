"""`regflow sample …`: a spot-check sample's human steps, the same as its forms in the
Prefect UI. A sample is named by its number (SMP-…) or, for a lab, by its blind code."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import typer

from regflow.cli.output import BY, JSON, console, day_or_today, deadline_table, emit_json, mount, who
from storage.db import utcnow

app = typer.Typer(help="Spot-check samples: sampling, results, objections, rectification.", no_args_is_help=True)
SAMPLE = typer.Argument(..., help="The sample's number (SMP-…) or its blind code (BL-…).")
TEXT = typer.Option("", "--text", help="Remarks recorded with the answer.")
NO_WAIT = typer.Option(False, "--no-wait", help="Record and return; the run takes it when it gets there.")


def register(root: typer.Typer) -> None:
    mount(root, {"sample": app})


def _answer(sample: str, step: str, answer: dict[str, Any], json_out: bool, wait: bool) -> None:
    from regflow.cli.records import hand_over
    from rules.samples import SAMPLE as LIFECYCLE
    from tasks.samples import answer as record

    result = record(sample, step=step, answer=answer, source="cli", now=utcnow())
    hand_over(result, LIFECYCLE.step(step).title, json_out=json_out, wait=wait)


def _result(passed: bool | None, failed: bool | None) -> bool:
    from kernel.errors import InvalidInput

    if passed == failed:
        raise InvalidInput("give --pass or --fail")
    return bool(passed)


@app.command()
def record(
    sample: str = SAMPLE,
    product: str = typer.Option(..., help="The product sampled."),
    batch: str = typer.Option(..., help="Date of manufacture or batch number."),
    quantity: str = typer.Option(..., help="How many were taken (and kept as spares)."),
    sampled_on: Optional[dt.datetime] = typer.Option(None, formats=["%Y-%m-%d"], help="Default: today."),
    model: str = typer.Option("", help="Model or specification."),
    producer: str = typer.Option("", help="The producer, when sampled at a seller."),
    producer_authority: str = typer.Option("", help="The producer's own authority code, if elsewhere."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """Record the sampling (one of the inspectors drawn); the sample gets its blind code.

    Example: regflow sample record SMP-2026-000001 --product 电动自行车 --batch 20261101 --quantity 2台 --by wangwu
    """

    day = day_or_today(sampled_on)
    answer = dict(
        by=who(by),
        product=product,
        batch=batch,
        quantity=quantity,
        sampled_on=day,
        model=model,
        producer=producer,
        producer_authority=producer_authority,
        text=text,
    )
    _answer(sample, "sampling", answer, json_out, wait=not no_wait)


def _test(step: str, code: str, passed, failed, lab: str, report: str, items: str, text: str, by, no_wait, json_out):
    answer = dict(
        by=who(by),
        blind_code=code,
        lab=lab,
        report_no=report,
        passed=_result(passed, failed),
        failing_items=items,
        text=text,
    )
    _answer(code, step, answer, json_out, wait=not no_wait)


PASS = typer.Option(None, "--pass", help="The sample passes.")
FAIL = typer.Option(None, "--fail", help="The sample fails (name the failing items).")
LAB = typer.Option(..., "--lab", help="The lab giving the result (one of the campaign's labs).")
REPORT = typer.Option(..., "--report", help="The test report's number.")
ITEMS = typer.Option("", "--items", help="The failing items.")


@app.command()
def result(
    code: str = typer.Argument(..., help="The blind code on the sample (BL-…)."),
    passed: Optional[bool] = PASS,
    failed: Optional[bool] = FAIL,
    lab: str = LAB,
    report: str = REPORT,
    items: str = ITEMS,
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The lab's result, entered against the blind code.

    Example: regflow sample result BL-AB3CD-EF4GH --fail --items 制动性能 --lab 省质检院 --report ZJ-1 --by zj-lab
    """
    _test("testing", code, passed, failed, lab, report, items, text, by, no_wait, json_out)


@app.command()
def retest(
    code: str = typer.Argument(..., help="The blind code on the sample (BL-…)."),
    passed: Optional[bool] = PASS,
    failed: Optional[bool] = FAIL,
    lab: str = LAB,
    report: str = REPORT,
    items: str = ITEMS,
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The re-test's result after an objection, by another lab than the first.

    Example: regflow sample retest BL-AB3CD-EF4GH --pass --lab 市检测院 --report HZ-9 --by hz-lab
    """
    _test("retest", code, passed, failed, lab, report, items, text, by, no_wait, json_out)


@app.command()
def notify(
    sample: str = SAMPLE,
    served_on: dt.datetime = typer.Option(..., formats=["%Y-%m-%d"], help="The day the result reached the enterprise."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The result served on the enterprise (a failing one with its right to object).

    Example: regflow sample notify SMP-2026-000001 --served-on 2026-12-03 --by 李四
    """
    from kernel.errors import StepConflict
    from tasks.samples import show as read

    awaiting = [s for s in read(sample)["awaiting"] if s in ("pass-notice", "result-notice")]
    if not awaiting:
        raise StepConflict(f"{sample} is not awaiting the result's notice")
    answer = dict(by=who(by), served_on=served_on.date().isoformat(), text=text)
    _answer(sample, awaiting[0], answer, json_out, wait=not no_wait)


@app.command()
def objection(
    sample: str = SAMPLE,
    received_on: Optional[dt.datetime] = typer.Option(
        None, formats=["%Y-%m-%d"], help="The day the objection was received."
    ),
    none: bool = typer.Option(False, "--none", help="No objection came within the period."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """An objection received (within 15 days of the result: 产品质量法第十五条), or none once that period is over.

    Example: regflow sample objection SMP-2026-000001 --received-on 2026-12-10 --by 李四
    """
    from kernel.errors import InvalidInput

    if none == (received_on is not None):
        raise InvalidInput("give --received-on DATE or --none")
    answer = dict(
        by=who(by), objected=not none, received_on=received_on.date().isoformat() if received_on else None, text=text
    )
    _answer(sample, "objection", answer, json_out, wait=not no_wait)


@app.command()
def rectify(
    sample: str = SAMPLE,
    served_on: dt.datetime = typer.Option(..., formats=["%Y-%m-%d"], help="The day the order reached the enterprise."),
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The order to stop and rectify a failed product; a lead opens in the case flow.

    Example: regflow sample rectify SMP-2026-000001 --served-on 2026-12-20 --by 李四
    """
    answer = dict(by=who(by), served_on=served_on.date().isoformat(), text=text)
    _answer(sample, "rectification-order", answer, json_out, wait=not no_wait)


@app.command()
def recheck(
    sample: str = SAMPLE,
    passed: Optional[bool] = PASS,
    failed: Optional[bool] = FAIL,
    items: str = ITEMS,
    text: str = TEXT,
    by: Optional[str] = BY,
    no_wait: bool = NO_WAIT,
    json_out: bool = JSON,
) -> None:
    """The re-check after rectification.

    Example: regflow sample recheck SMP-2026-000001 --pass --by wangwu
    """
    answer = dict(by=who(by), passed=_result(passed, failed), failing_items=items, text=text)
    _answer(sample, "recheck", answer, json_out, wait=not no_wait)


@app.command()
def correct(
    sample: str = SAMPLE,
    passed: Optional[bool] = PASS,
    failed: Optional[bool] = FAIL,
    items: str = ITEMS,
    reason: str = typer.Option(..., "--reason", help="Why the result is corrected."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Correct a final result (the head); the next publication replaces the published one.

    Example: regflow sample correct SMP-2026-000001 --pass --reason "复核报告编号错录" --by 赵六
    """
    from tasks.samples import correct as fix

    number = fix(sample, passed=_result(passed, failed), failing_items=items, reason=reason, by=who(by), now=utcnow())
    if json_out:
        emit_json({"number": number, "corrected": True})
    else:
        console().print(f"{number}: result corrected; publish the campaign again to replace the published one")


@app.command()
def lab(code: str = typer.Argument(..., help="The blind code (BL-…)."), json_out: bool = JSON) -> None:
    """What a lab sees of a sample: its code, category and the result awaited, never the enterprise.

    Example: regflow sample lab BL-AB3CD-EF4GH
    """
    from tasks.render import local_time
    from tasks.samples import lab_view

    data = lab_view(code)
    if json_out:
        emit_json(data)
        return
    due = f", due {local_time(data['due_at'])}" if data["due_at"] else ""
    console().print(
        f"{data['blind_code']} {data['category']} · awaiting {', '.join(data['awaiting']) or 'nothing'}{due}"
    )


@app.command()
def show(sample: str = SAMPLE, json_out: bool = JSON) -> None:
    """A sample: its target, results, what it awaits, its deadlines.

    Example: regflow sample show SMP-2026-000001
    """
    from tasks.samples import show as read

    data = read(sample)
    if json_out:
        emit_json(data)
        return
    out = console()
    out.print(f"{data['number']} · {data['campaign']} · {data['category']} · {data['enterprise']} ({data['uscc']})")
    out.print(
        f"status {data['status']}{' (' + data['outcome'] + ')' if data['outcome'] else ''}; "
        f"awaiting {', '.join(data['awaiting']) or 'nothing'}; result {data['result'] or '-'}"
        + (f"; lead {data['lead']}" if data["lead"] else "")
    )
    out.print(deadline_table(data["deadlines"], owed_by=True))
