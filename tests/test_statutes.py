"""Statutory limits as data: hand-worked due dates across the 2026 holidays, the
late-payment surcharge, per-authority overrides. Pure: milliseconds."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pendulum
import pytest

from kernel.errors import InvalidInput, InvalidPlan
from rules.calendar import WorkCalendar
from rules.statutes import due_by_rule, late_payment_surcharge, load_rules
from tests.conftest import cli

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "data" / "rules" / "statutory.yaml"
TZ = "Asia/Shanghai"


def due(key: str, *start) -> dt.datetime:
    limit = load_rules(RULES).rules.limit(key)
    return due_by_rule(limit, pendulum.datetime(*start, tz=TZ), tz=TZ, calendar=WorkCalendar()).at


def end_of(y, m, d) -> dt.datetime:
    return pendulum.datetime(y, m, d, 23, 59, 59, tz=TZ)


def test_every_limit_of_rules_md_is_there_with_its_source():
    limits = load_rules(RULES).rules.limits
    assert len(limits) == 55
    assert all(limit.source for limit in limits.values())
    # Numbers not found in the text of their rule are marked, and say so wherever they are used.
    unconfirmed = {k for k, limit in limits.items() if not limit.confirmed}
    recalls = {k for k in limits if k.startswith("recall.")}  # Order 19 read only in a copy of its text
    # Order 45 Art. 10 read only in a copy; Order 44's text not found at all.
    credit = {"publication.push", "listing.publish", "listing.period", "listing.removal_after", "listing.withdraw"}
    assert (
        len(recalls) == 7
        and unconfirmed
        == {
            "sample.rectification",
            "sample.recheck",
            "sample.repeat_bar",
        }
        | recalls
        | credit
    )
    assert limits["publication.publish"].confirmed and limits["publication.publish"].period == "20wd"
    assert limits["publication.period"].period == "36mo" and "第十三条" in limits["publication.period"].source
    assert limits["sample.objection"].confirmed and limits["sample.objection"].period == "15d"
    assert limits["sample.publication"].period == "20wd" and "第六条" in limits["sample.publication"].source
    assert limits["case.decision"].extension == "30d" and limits["case.decision"].approver == "head"
    assert limits["case.seizure"].max_extensions == 1


@pytest.mark.parametrize(
    "key,start,expected",
    [
        # 15 WD from Fri 25 Sep (Mid-Autumn): 28-30 Sep, 8-10 Oct (10 Oct a make-up Saturday), 12-16, 19-22 Oct.
        ("case.verify_lead", (2026, 9, 25, 9, 0), (2026, 10, 22)),
        # 5 WD from 30 Sep: 8, 9, 10 (make-up), 12, 13 Oct.
        ("case.party_statement", (2026, 9, 30, 15, 0), (2026, 10, 13)),
        # 90 d from 3 Aug ends Sun 1 Nov, not a working day: Mon 2 Nov.
        ("case.decision", (2026, 8, 3, 10, 0), (2026, 11, 2)),
        # 15 d from 20 Sep ends 5 Oct, inside National Day: Thu 8 Oct.
        ("case.payment", (2026, 9, 20, 10, 0), (2026, 10, 8)),
        # 7 WD from 12 Feb: 13 Feb, Sat 14 Feb (make-up), Spring Festival 15-23 Feb, 24-27 Feb,
        # and Sat 28 Feb, the second make-up day.
        ("case.deliver_absent", (2026, 2, 12, 10, 0), (2026, 2, 28)),
        # 3 d to decide on a transfer, from Tue 29 Sep: ends 2 Oct (holiday): 8 Oct.
        ("transfer.head_decision", (2026, 9, 29, 10, 0), (2026, 10, 8)),
        # An objection to a spot-check result, 15 d from 20 Sep: 5 Oct is in National Day: 8 Oct.
        ("sample.objection", (2026, 9, 20, 10, 0), (2026, 10, 8)),
        # A result published within 20 WD of 25 Sep: the 15 to 22 Oct above, then 23, 26-29 Oct.
        ("sample.publication", (2026, 9, 25, 16, 0), (2026, 10, 29)),
        # 60 d to rectify from Thu 22 Oct: Mon 21 Dec.
        ("sample.rectification", (2026, 10, 22, 12, 0), (2026, 12, 21)),
    ],
)
def test_hand_worked_due_dates_across_2026_holidays(key, start, expected):
    assert due(key, *start) == end_of(*expected)


def test_hours_are_exact_and_hearing_notices_count_back():
    assert due("transfer.to_police", 2026, 9, 30, 20, 0) == pendulum.datetime(2026, 10, 1, 20, 0, tz=TZ)
    # A hearing on Tue 20 Oct: the notice must arrive by the 7th working day before,
    # counting 19, 16, 15, 14, 13, 12 Oct and the make-up Saturday 10 Oct.
    assert due("case.hearing_notice", 2026, 10, 20, 9, 0) == end_of(2026, 10, 10)


@pytest.mark.parametrize(
    "paid_on,expected",
    [
        (dt.date(2026, 10, 8), "0.00"),  # on the last day: no surcharge
        (dt.date(2026, 10, 18), "3000.00"),  # 10 days late: 10 x 3 % of 10,000
        (dt.date(2026, 12, 31), "10000.00"),  # 84 days would be 25,200: capped at the fine
    ],
)
def test_late_payment_surcharge(paid_on, expected):
    assert late_payment_surcharge(Decimal("10000"), payment_due=dt.date(2026, 10, 8), paid_on=paid_on) == Decimal(
        expected
    )


def test_surcharge_rounds_to_the_fen_and_refuses_nonsense():
    assert late_payment_surcharge(
        Decimal("333.33"), payment_due=dt.date(2026, 1, 1), paid_on=dt.date(2026, 1, 2)
    ) == Decimal("10.00")
    with pytest.raises(InvalidInput):
        late_payment_surcharge(Decimal("0"), payment_due=dt.date(2026, 1, 1), paid_on=dt.date(2026, 1, 2))


def test_an_authority_overrides_a_limit_and_the_version_changes(tmp_path):
    shutil.copy(RULES, tmp_path / "statutory.yaml")
    (tmp_path / "overrides").mkdir()
    (tmp_path / "overrides" / "330106.yaml").write_text("limits:\n  supervision.progress_every: {period: 10d}\n")
    base = load_rules(tmp_path / "statutory.yaml")
    local = load_rules(tmp_path / "statutory.yaml", authority="330106")
    other = load_rules(tmp_path / "statutory.yaml", authority="330108")
    assert local.rules.limit("supervision.progress_every").period == "10d"
    assert local.rules.limit("supervision.progress_every").name == base.rules.limit("supervision.progress_every").name
    assert other.rules.limit("supervision.progress_every").period == "15d"
    assert local.content_hash != base.content_hash == other.content_hash


@pytest.mark.parametrize(
    "override,message",
    [
        ("limits:\n  case.nothing: {period: 1d}\n", "limits.case.nothing: no such rule to override"),
        ("limits:\n  case.payment: {period: soon}\n", "limits.case.payment.period: invalid period 'soon'"),
    ],
)
def test_a_bad_override_names_the_file_and_field(tmp_path, override, message):
    shutil.copy(RULES, tmp_path / "statutory.yaml")
    (tmp_path / "overrides").mkdir()
    (tmp_path / "overrides" / "330106.yaml").write_text(override)
    with pytest.raises(InvalidPlan, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_rules(tmp_path / "statutory.yaml", authority="330106")


def test_officers_ask_the_cli():
    result = cli("due", "--rule", "case.verify_lead", "--from", "2026-09-25", "--json")
    assert result.code == 0 and json.loads(result.out)["due_local"] == "2026-10-22 23:59"
    assert "核查并决定是否立案" in json.loads(result.out)["rule"]
    assert cli("due", "--rule", "case.nope", "--from", "2026-09-25").code == 2
    listed = json.loads(cli("rules", "list", "--json").out)
    assert len(listed["limits"]) == 55 and len(listed["version"]) == 12
    shown = cli("rules", "list")
    assert shown.code == 0 and "(unconfirmed)" in shown.out
