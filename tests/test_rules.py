"""Pure domain rules: no Prefect, no database; milliseconds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pendulum
import pytest

from kernel.errors import CalendarUnavailable, InvalidInput, InvalidPlan, UnknownAuthority, UnknownPlan
from rules.authorities import load_authorities
from rules.calendar import WorkCalendar, load_calendar
from rules.durations import Period, due_after
from rules.incidents import EMERGENCY, activation_recipients, onsite_recipients, upward_recipients, validate_trigger
from rules.plans import Level, load_plan, load_plan_file

ROOT = Path(__file__).resolve().parents[1]
TZ = "Asia/Shanghai"
CAL = WorkCalendar()
NOW = dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.timezone.utc)


def sh(*args) -> dt.datetime:
    return pendulum.datetime(*args, tz=TZ)


@pytest.mark.parametrize(
    "text,period",
    [
        ("30m", Period(30, "m")),
        ("2h", Period(2, "h")),
        ("10d", Period(10, "d")),
        ("15wd", Period(15, "wd")),
        ("15 working days", Period(15, "wd")),
        ("1 hour", Period(1, "h")),
        ("6mo", Period(6, "mo")),
        ("2 months", Period(2, "mo")),
    ],
)
def test_periods_parse(text, period):
    assert Period.parse(text) == period


@pytest.mark.parametrize("text", ["", "abc", "-1h", "2 weeks", "1.5h"])
def test_bad_periods_are_refused_in_one_line(text):
    with pytest.raises(InvalidInput) as info:
        Period.parse(text)
    assert "\n" not in str(info.value)


def test_hours_are_exact():
    due = due_after(sh(2026, 11, 26, 9, 30), Period(2, "h"), tz=TZ, calendar=CAL)
    assert due.at == sh(2026, 11, 26, 11, 30)
    assert "2 hours from 2026-11-26 09:30" in due.rule


def test_calendar_days_skip_the_start_day_and_end_at_midnight():
    # 7 d from Mon 2026-11-23 14:00: day 1 is the 24th, day 7 the 30th (a Monday, a workday).
    due = due_after(sh(2026, 11, 23, 14, 0), Period(7, "d"), tz=TZ, calendar=CAL)
    assert due.at == sh(2026, 11, 30, 23, 59, 59)
    assert "start day not counted" in due.rule


def test_months_end_on_the_same_day_of_the_month_or_that_months_last():
    # 6 months from 2025-08-31: February has no 31st, so its last day, Sat 2026-02-28 (a make-up workday).
    assert due_after(sh(2025, 8, 31, 9, 0), Period(6, "mo"), tz=TZ, calendar=CAL).at == end(2026, 2, 28)
    # 6 months from 2026-04-05 is 2026-10-05, in National Day: the next working day.
    assert due_after(sh(2026, 4, 5, 9, 0), Period(6, "mo"), tz=TZ, calendar=CAL).at == end(2026, 10, 8)


def end(*day) -> dt.datetime:
    return pendulum.datetime(*day, 23, 59, 59, tz=TZ).in_timezone("UTC")


def test_a_period_ending_in_national_day_moves_to_the_next_working_day():
    # 10 d from 2026-09-25 ends on 2026-10-05, inside the 1-7 Oct holiday -> Thu 8 Oct.
    due = due_after(sh(2026, 9, 25, 10, 0), Period(10, "d"), tz=TZ, calendar=CAL)
    assert due.at == sh(2026, 10, 8, 23, 59, 59)
    assert "moved to 2026-10-08" in due.rule


def test_a_period_ending_in_spring_festival_moves_past_it():
    # 7 d from 2026-02-12 ends on 2026-02-19, inside the 15-23 Feb holiday -> Tue 24 Feb.
    due = due_after(sh(2026, 2, 12, 8, 0), Period(7, "d"), tz=TZ, calendar=CAL)
    assert due.at == sh(2026, 2, 24, 23, 59, 59)


def test_working_days_across_mid_autumn_and_national_day_with_make_up_saturday():
    # From Fri 2026-09-25 (Mid-Autumn): 28, 29, 30 Sep (3); 8, 9 Oct (5); Sat 10 Oct is a
    # make-up workday (6); 12-16 Oct (11); 19-22 Oct (15).
    due = due_after(sh(2026, 9, 25, 16, 0), Period(15, "wd"), tz=TZ, calendar=CAL)
    assert due.at == sh(2026, 10, 22, 23, 59, 59)


def test_a_year_without_holiday_data_fails_loudly(tmp_path):
    with pytest.raises(CalendarUnavailable):
        due_after(sh(2026, 12, 20, 9, 0), Period(20, "wd"), tz=TZ, calendar=CAL)
    override = tmp_path / "override.yaml"
    override.write_text("years: [2027]\nholidays: [2027-01-01]\nworkdays: []\n")
    due = due_after(sh(2026, 12, 30, 9, 0), Period(2, "wd"), tz=TZ, calendar=load_calendar(override))
    assert due.at == sh(2027, 1, 4, 23, 59, 59)  # 31 Dec, (1 Jan holiday, weekend), 4 Jan


def test_shipped_plans_are_valid_and_cover_all_levels():
    for path in (ROOT / "data" / "plans").glob("*.yaml"):
        loaded = load_plan_file(path)
        assert set(loaded.plan.levels) == set(Level)
        assert len(loaded.content_hash) == 64


def test_product_quality_plan_encodes_the_reporting_rules():
    plan = load_plan(ROOT / "data" / "plans", "product-quality").plan
    for level in Level:
        d = plan.rules_for(level).deadlines
        assert (d.initial_report, d.upward_report, d.final_report) == ("1h", "2h", "10d")
    assert plan.rules_for(Level.III).report_up_to.value == "province"
    assert plan.rules_for(Level.IV).report_up_to.value == "city"


def test_an_invalid_plan_names_file_field_and_problem(tmp_path):
    good = (ROOT / "data" / "plans" / "product-quality.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "product-quality.yaml"
    bad.write_text(good.replace("arrival: 1h,", "arrival: soon,", 1), encoding="utf-8")
    with pytest.raises(InvalidPlan) as info:
        load_plan_file(bad)
    message = str(info.value)
    assert str(bad) in message and "levels.I.deadlines.arrival" in message and "soon" in message
    assert "\n" not in message


def test_unknown_plan_and_missing_level(tmp_path):
    with pytest.raises(UnknownPlan, match="known plans: food-safety, product-quality"):
        load_plan(ROOT / "data" / "plans", "../etc/passwd")
    plan = load_plan(ROOT / "data" / "plans", "food-safety").plan
    only_one = plan.model_copy(update={"levels": {Level.IV: plan.levels[Level.IV]}})
    with pytest.raises(UnknownPlan, match="has no level I"):
        only_one.rules_for(Level.I)


def test_recipients_follow_the_hierarchy_up_to_the_plans_limit():
    tree = load_authorities(ROOT / "data" / "authorities.yaml")
    plan = load_plan(ROOT / "data" / "plans", "product-quality").plan
    assert activation_recipients(plan.rules_for(Level.IV), tree, "330106") == ["330106.duty", "330100.duty"]
    # Levels I-III also tell the region's government duty office, of the activation and of every report.
    assert upward_recipients(plan.rules_for(Level.II), tree, "330106") == [
        "330100.duty", "330000.duty", "100000.duty", "330106.government"]  # fmt: skip
    assert upward_recipients(plan.rules_for(Level.IV), tree, "330106") == ["330100.duty"]
    assert activation_recipients(plan.rules_for(Level.III), tree, "330106") == [
        "330106.duty", "330106.head", "330100.duty", "330000.duty", "330106.government"]  # fmt: skip
    assert onsite_recipients(plan.rules_for(Level.II), "330106") == ["330106.onsite"]
    with pytest.raises(UnknownAuthority):
        tree.chain_up("999999")


def test_the_government_scope_names_no_roles_and_the_others_do():
    from pydantic import ValidationError

    from rules.plans import Recipients

    assert Recipients.model_validate({"scope": "government"}).roles == []
    with pytest.raises(ValidationError, match="the government scope has no roles"):
        Recipients.model_validate({"scope": "government", "roles": ["duty"]})
    with pytest.raises(ValidationError, match="handling: name the roles to tell"):
        Recipients.model_validate({"scope": "handling"})


def test_authority_file_with_a_cycle_or_wrong_tier_is_refused(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(
        "authorities:\n  - {code: '10', tier: national, name: N}\n"
        "  - {code: '20', tier: city, superior: '30', name: C}\n"
        "  - {code: '30', tier: county, superior: '10', name: X}\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidPlan, match="superior 30 must be of a higher tier"):
        load_authorities(path)


GOOD = dict(plan="product-quality", level="II", title="电梯困人", location="文三路 1 号", authority="330106")


@pytest.mark.parametrize(
    "change,message",
    [
        ({"level": "V"}, "level: Input should be 'I', 'II', 'III' or 'IV'"),
        ({"title": "   "}, "title: String should have at least 1 character"),
        ({"title": "x" * 201}, "title: String should have at most 200 characters"),
        ({"title": "a\nb"}, "title: must be a single line"),
        ({"location": "a\x07b"}, "location: must be a single line without control characters"),
        ({"occurred_at": dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.timezone.utc)}, "is in the future"),
        ({"occurred_at": dt.datetime(2026, 11, 26, 3, 0)}, "must include a time zone"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_trigger_validation_refuses_bad_input_in_one_line(change, message):
    with pytest.raises(InvalidInput) as info:
        validate_trigger({**GOOD, **change}, now=NOW)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_trigger_validation_accepts_a_past_occurrence_and_trims():
    request = validate_trigger({**GOOD, "title": "  电梯困人 ", "occurred_at": NOW - dt.timedelta(hours=1)}, now=NOW)
    assert request.title == "电梯困人" and request.level is Level.II


def test_lifecycle_order():
    assert EMERGENCY.next_step({}).name == "arrival"
    answered = {"arrival": {}, "initial-report": {}, "progress-1": {}}
    assert EMERGENCY.next_step(answered).name == "progress-2"
    answered["handling-ended"] = {}  # progress reports stop once handling has ended
    assert EMERGENCY.next_step(answered).name == "final-report"
    assert EMERGENCY.following("progress-1", {}, answered).name == "final-report"
    assert EMERGENCY.following("progress-1", {}, {"initial-report": {}}).name == "progress-2"
    answered.update({"final-report": {}, "review": {}})
    assert EMERGENCY.next_step(answered) is None
    assert EMERGENCY.step("progress-7").verbs == ("report:progress",)
    assert EMERGENCY.step("release-3").title == "信息发布 3 / information release 3"


def test_on_site_reporting_and_release_lines_run_side_by_side():
    def open_now(answered):
        return [s.name for s in EMERGENCY.open_steps(answered)]

    assert open_now({}) == ["arrival", "initial-report", "release-1"]
    assert open_now({"initial-report": {}}) == ["arrival", "progress-1", "release-1"]
    assert open_now({"arrival": {}}) == ["initial-report", "handling-ended", "release-1"]
    # Handling may end before the first report; the final report then follows it directly.
    assert open_now({"arrival": {}, "handling-ended": {}}) == ["initial-report", "release-1"]
    assert open_now({"arrival": {}, "handling-ended": {}, "initial-report": {}}) == ["final-report", "release-1"]
    # The final report needs handling ended, the review the final report.
    assert "final-report" not in open_now({"arrival": {}, "initial-report": {}, "progress-1": {}})
    assert open_now({"arrival": {}, "initial-report": {}, "release-1": {}, "release-2": {}}) == [
        "progress-1", "handling-ended", "release-3"]  # fmt: skip
    done = {"arrival": {}, "initial-report": {}, "handling-ended": {}, "final-report": {}}
    assert open_now(done) == ["review", "release-1"]
    assert open_now({**done, "review": {}}) == []  # releases end with the review
    # A step whose answer decides the way on ends what can be seen ahead.
    from rules.cases import CASE

    assert [s.name for s in CASE.open_steps({"filing": {"decision": "file"}})] == ["investigation"]


# --- reminders and escalation ladder (rules/reminders.py) -----------------------------

from rules.reminders import EscalationPolicy, ReminderPolicy, due_reminder, first_pending, reminder_at, rung  # noqa: E402

START = dt.datetime(2026, 11, 26, 0, 0, tzinfo=dt.timezone.utc)
DUE = START + dt.timedelta(hours=10)
POLICY = ReminderPolicy(at=["80%", "50%"], overdue_every="30m").snapshot()


def test_reminder_times_before_at_and_after_the_due_time():
    kinds = [
        (r.at - START, r.kind) for r in (reminder_at(i, starts_at=START, due_at=DUE, policy=POLICY) for i in range(5))
    ]
    h = dt.timedelta(hours=1)
    assert kinds == [(5 * h, "before"), (8 * h, "before"), (10 * h, "due"), (10.5 * h, "overdue"), (11 * h, "overdue")]


def test_after_downtime_only_the_latest_reminder_is_sent():
    current, following = due_reminder(
        0, now=START + dt.timedelta(hours=10, minutes=40), starts_at=START, due_at=DUE, policy=POLICY
    )
    assert (current.index, current.kind, following.index) == (3, "overdue", 4)
    assert due_reminder(0, now=START + dt.timedelta(hours=1), starts_at=START, due_at=DUE, policy=POLICY)[0] is None
    assert first_pending(now=START + dt.timedelta(hours=9), starts_at=START, due_at=DUE, policy=POLICY) == 2


def test_the_ladder_climbs_to_the_top_and_repeats():
    policy = EscalationPolicy(ack_timeout="30m", repeat=1).snapshot(["330100", "330000", "100000"])
    assert [rung(i, policy).authority for i in range(6)] == ["330100", "330000", "100000"] * 2
    assert rung(6, policy) is None
    assert rung(0, EscalationPolicy().snapshot([])) is None  # the national authority has nobody above


@pytest.mark.parametrize(
    "model,data,message",
    [
        (ReminderPolicy, {"at": ["150%"]}, "between 1% and 99%"),
        (ReminderPolicy, {"overdue_every": "2d"}, "minutes or hours"),
        (EscalationPolicy, {"ack_timeout": "soon"}, "invalid period"),
        (EscalationPolicy, {"repeat": 99}, "less than or equal to 10"),
    ],
)
def test_bad_reminder_and_escalation_policies_are_refused(model, data, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        model.model_validate(data)
