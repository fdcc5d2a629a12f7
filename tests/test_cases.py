"""Enforcement cases, complaints, listed supervision and assistance through the task
layer the flows and the CLI both call, on a real database (SQLite and PostgreSQL),
with the clock given explicitly so due dates can be checked against examples
worked by hand across the 2026 Mid-Autumn and National Day holidays (9-25..27 and
10-1..7 off, 9-20 and 10-10 make-up workdays). The flows themselves run in
test_case_flow.py."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pendulum
import pytest
import sqlalchemy as sa
from sqlmodel import select

from kernel.errors import InvalidInput, StepConflict
from rules.cases import validate_lead
from storage.audit import events_for
from storage.cases import get_case
from storage.db import session_scope
from storage.deadlines import deadlines_for
from storage.escalations import Escalation
from storage.incidents import reports_for
from storage.notifications import Notification
from tasks import cases
from tasks.deadlines import send_reminders
from tests.conftest import cli

TZ = "Asia/Shanghai"


def at(text: str) -> dt.datetime:
    """A local (Asia/Shanghai) time, as the UTC datetime the code works with."""
    return pendulum.parse(text, tz=TZ).in_timezone("UTC")


def local(value: dt.datetime) -> str:
    return pendulum.instance(value).in_timezone(TZ).format("YYYY-MM-DD HH:mm:ss")


def lead(now: dt.datetime, **extra) -> str:
    data = dict(
        kind="case",
        title=f"销售不合格头盔 {uuid.uuid4().hex[:6]}",
        party="某商贸有限公司",
        source="report",
        authority="330106",
        **extra,
    )
    return cases.receive(validate_lead(data, now=now), now=now).number


def step(number: str, name: str, now: dt.datetime, **fields) -> dict:
    return cases.answer(number, answer={"by": "张三", **fields}, source="cli", step=name, now=now).answer


def due(number: str) -> dict[str, tuple[str, str]]:
    with session_scope() as session:
        return {d.name: (local(d.due_at), d.status) for d in deadlines_for(session, subject=number)}


def case_of(number: str):
    with session_scope() as session:
        return get_case(session, number=number)


def counts() -> dict[str, int]:
    with session_scope() as session:
        return {
            t: session.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("enforcement_case", "deadline", "step", "report", "notification", "audit_event")
        }


def test_hand_worked_due_dates_across_the_autumn_holidays(own_database):
    # Received Thu 9-24: 15 WD, the day itself not counted: 9-28, 29, 30 (3), the
    # holidays 10-1..7, 10-8, 9, Sat 10-10 make-up (6), 12..16 (11), 19..22 (15).
    number = lead(at("2026-09-24 10:00"))
    assert due(number)["filing"] == ("2026-10-22 23:59:59", "open")
    step(number, "filing", at("2026-09-28 09:00"), decision="file", handler="王五")
    # Filed Mon 9-28: 90 calendar days -> 12-27, a Sunday -> Mon 12-28 (Art. 80).
    assert due(number)["decision"] == ("2026-12-28 23:59:59", "open")
    step(number, "investigation", at("2026-09-29 09:00"), finding="penalty")
    # Legal review 10 WD from 9-29: 9-30, 10-8, 9, 10 (4), 12..16 (9), 19 (10).
    assert due(number)["legal-review"] == ("2026-10-19 23:59:59", "open")
    step(number, "legal-review", at("2026-09-29 15:00"), opinion="agree")
    # Notice served 9-29: 5 WD: 9-30, 10-8, 10-9, Sat 10-10 (make-up), 10-12.
    step(number, "pre-penalty", at("2026-09-29 16:00"), fine="5000", served_on="2026-09-29")
    assert due(number)["party-statement"] == ("2026-10-12 23:59:59", "open")
    # A hearing on Mon 10-19 needs the notice 7 WD before it, the day itself not counted:
    # 10-16, 15, 14, 13, 12, Sat 10-10 (make-up), 10-9 -> by the end of 10-9.
    step(number, "party-response", at("2026-09-30 10:00"), response="hearing", hearing_at="2026-10-19T09:00+08:00")
    assert due(number)["hearing-notice"] == ("2026-10-09 23:59:59", "open")
    assert due(number)["party-statement"][1] == "met"


def test_hearing_too_soon_and_late_notice_are_refused_without_a_trace(own_database):
    number = lead(at("2026-09-01 10:00"))
    for name, fields, now in [
        ("filing", dict(decision="file"), "2026-09-02 09:00"),
        ("investigation", dict(finding="penalty"), "2026-09-03 09:00"),
        ("legal-review", dict(opinion="agree"), "2026-09-04 09:00"),
        ("pre-penalty", dict(fine="800", served_on="2026-09-04"), "2026-09-04 10:00"),
    ]:
        step(number, name, at(now), **fields)
    before = counts()
    # Hearing on 9-15: the notice had to arrive by 9-4 (7 WD before), which has passed.
    with pytest.raises(InvalidInput, match="too soon"):
        step(number, "party-response", at("2026-09-07 10:00"), response="hearing", hearing_at="2026-09-15T09:00+08:00")
    with pytest.raises(InvalidInput, match="hearing_at"):
        step(number, "party-response", at("2026-09-07 10:00"), response="hearing")
    with pytest.raises(InvalidInput, match="time zone"):
        step(number, "party-response", at("2026-09-07 10:00"), response="hearing", hearing_at="2026-10-20T09:00")
    assert counts() == before


def test_clock_paused_for_appraisal_then_extended_by_the_head_then_by_collective_decision(own_database):
    number = lead(at("2026-06-08 09:00"))
    step(number, "filing", at("2026-06-10 09:00"), decision="file")
    # 6-10 + 90 d = 9-8 (Tue).
    assert due(number)["decision"] == ("2026-09-08 23:59:59", "open")
    cases.pause_clock(number, by="王五", reason="送检：头盔质量检验", now=at("2026-07-01 10:00"))
    assert due(number)["decision"][1] == "paused"
    with pytest.raises(StepConflict, match="already paused"):
        cases.pause_clock(number, by="王五", reason="again", now=at("2026-07-02 10:00"))
    # 17 days paused: 9-8 + 17 d = 9-25, Mid-Autumn Festival -> next working day 9-28.
    cases.resume_clock(number, by="王五", now=at("2026-07-18 10:00"))
    assert due(number)["decision"] == ("2026-09-28 23:59:59", "open")
    with pytest.raises(InvalidInput, match="head's 30-day extension comes first"):
        cases.extend(number, "decision", by="局长", reason="x", now=at("2026-09-01 10:00"), collective_period="60d")
    # The head's 30 days: 9-28 + 30 = 10-28 (Wed).
    cases.extend(number, "decision", by="局长", reason="案情复杂", now=at("2026-09-01 10:00"))
    assert due(number)["decision"] == ("2026-10-28 23:59:59", "open")
    with pytest.raises(StepConflict, match="collective decision"):
        cases.extend(number, "decision", by="局长", reason="again", now=at("2026-09-02 10:00"))
    # Then a collective decision sets 60 more days: 10-28 + 60 = 12-27 (Sun) -> 12-28.
    row = cases.extend(
        number, "decision", by="集体讨论", reason="重大复杂", now=at("2026-10-20 10:00"), collective_period="60d"
    )
    assert local(row.due_at) == "2026-12-28 23:59:59"
    assert [e["by"] for e in row.extensions] == ["局长", "集体讨论"]
    assert "collective decision" in row.rule
    # Filing cannot be extended once filed (it was met); seizure once by 30 d.
    with pytest.raises(StepConflict, match="met"):
        cases.extend(number, "filing", by="局长", reason="x", now=at("2026-10-20 10:00"))
    cases.measure(number, "seizure", by="张三", end=False, now=at("2026-09-01 10:00"))
    assert due(number)["seizure"] == ("2026-10-08 23:59:59", "open")  # 10-1 is a holiday -> 10-8
    cases.extend(number, "seizure", by="局长", reason="检验未完成", now=at("2026-09-20 10:00"))
    assert due(number)["seizure"] == ("2026-11-09 23:59:59", "open")  # 10-8 + 30 = 11-7 (Sat) -> 11-9
    with pytest.raises(StepConflict, match="already extended"):
        cases.extend(number, "seizure", by="局长", reason="x", now=at("2026-09-21 10:00"))


def test_not_filed_is_an_outcome_with_its_record_and_the_reporter_is_told(own_database):
    number = lead(at("2026-10-12 09:00"), reporter="李四", real_name=True)
    step(number, "filing", at("2026-10-14 09:00"), decision="not_file", text="不构成违法")
    case = case_of(number)
    assert (case.status, case.outcome, case.stage) == ("closed", "not_filed", "closed")
    deadlines = due(number)
    assert "decision" not in deadlines and deadlines["filing"][1] == "met"
    # The real-name reporter is owed the answer within 5 WD of the decision: 10-15..10-21.
    assert deadlines["reporter-notice"] == ("2026-10-21 23:59:59", "open")
    with session_scope() as session:
        assert [r.kind for r in reports_for(session, subject=number)] == ["not-filed"]
    assert cli("case", "notify-reporter", number).code == 0
    assert due(number)["reporter-notice"][1] == "met"
    again = cli("case", "notify-reporter", number)
    assert again.code == 4 and "already told" in again.err
    closed = cli("case", "decide", number, "investigation", "finding=penalty")
    assert closed.code == 4 and "closed" in closed.err and closed.err.count("\n") == 1


def test_penalised_paid_late_with_surcharge_closed_and_look_back_due_90_days_later(own_database):
    number = lead(at("2026-08-03 09:00"))
    for name, fields, now in [
        ("filing", dict(decision="file"), "2026-08-04 09:00"),
        ("investigation", dict(finding="penalty"), "2026-08-20 09:00"),
        ("legal-review", dict(opinion="agree"), "2026-08-24 09:00"),
        ("pre-penalty", dict(fine="5000", served_on="2026-08-25"), "2026-08-25 10:00"),
        ("party-response", dict(response="statement", text="陈述：初次违法"), "2026-08-28 10:00"),
        ("decision", dict(outcome="penalty", fine="5000", party_present=False, rectification=True), "2026-09-14 10:00"),
    ]:
        step(number, name, at(now), **fields)
    # Party absent: delivery within 7 WD of the decision: 9-15..18, Sun 9-20 (make-up), 9-21, 22.
    assert due(number)["delivery"] == ("2026-09-22 23:59:59", "open")
    step(number, "delivery", at("2026-09-16 15:00"), served_on="2026-09-16")
    # 15 days from delivery on 9-16 = 10-1, National Day -> the first working day, 10-8.
    assert due(number)["payment"] == ("2026-10-08 23:59:59", "open")
    before = counts()
    with pytest.raises(InvalidInput, match="in the future"):
        step(number, "payment", at("2026-10-12 10:00"), paid_on="2026-10-13", amount="5600")
    with pytest.raises(InvalidInput, match="5600.00 owed"):  # 4 days late: 4 x 3 % x 5000 = 600
        step(number, "payment", at("2026-10-12 10:00"), paid_on="2026-10-12", amount="5000")
    assert counts() == before
    step(number, "payment", at("2026-10-12 10:00"), paid_on="2026-10-12", amount="5600")
    assert case_of(number).surcharge == Decimal("600.00")
    step(number, "closure", at("2026-10-13 10:00"), text="已缴清罚没款，结案")
    case = case_of(number)
    assert (case.status, case.outcome) == ("closed", "penalised")
    # The look-back review: 90 days after closing (10-13 + 90 = 1-11-2027), 09:00.
    assert local(case.lookback_at) == "2027-01-11 09:00:00"
    assert {n: s for n, (_, s) in due(number).items()} == {
        "filing": "met",
        "decision": "met",
        "legal-review": "met",
        "party-statement": "met",
        "delivery": "met",
        "payment": "met",
        "closure": "met",
    }
    with session_scope() as session:
        kinds = [r.kind for r in reports_for(session, subject=number)]
        closing = [r for r in reports_for(session, subject=number) if r.kind == "closure"][0].document
    assert kinds == ["filing", "pre-penalty", "decision", "closure"]
    assert "予以处罚" in closing and "600.00 元" in closing and "2027-01-11" in closing


def _transfer(number: str) -> None:
    step(number, "filing", at("2026-05-06 09:00"), decision="file")
    step(number, "investigation", at("2026-05-20 09:00"), finding="transfer", text="涉案货值超过追诉标准")
    assert due(number)["decision"][1] == "paused"  # the case clock stops while the transfer is decided
    assert due(number)["transfer-decision"] == ("2026-05-25 23:59:59", "open")  # 3 d: 5-23 is a Saturday
    step(number, "transfer-decision", at("2026-05-21 09:00"), approve=True)
    assert due(number)["transfer-sent"] == ("2026-05-22 09:00:00", "open")  # 24 h
    step(number, "transfer-sent", at("2026-05-21 16:00"), police="杭州市公安局西湖区分局")
    assert due(number)["police-decision"] == ("2026-05-25 23:59:59", "open")  # 3 d: 5-24 is a Sunday


def test_transfer_accepted_closes_the_administrative_case(own_database):
    number = lead(at("2026-05-05 09:00"))
    _transfer(number)
    step(number, "police-decision", at("2026-05-22 10:00"), accepted=True)
    assert due(number)["handover"] == ("2026-05-25 23:59:59", "open")  # hand over items within 3 d
    step(number, "closure", at("2026-05-25 10:00"), text="已移送公安机关立案侦查")
    case = case_of(number)
    assert (case.outcome, case.lookback_at) == ("transferred", None)
    assert due(number)["decision"][1] == "cancelled"
    with session_scope() as session:
        assert "transfer" in [r.kind for r in reports_for(session, subject=number)]


def test_transfer_refused_then_reconsidered_and_refused_again_resumes_the_case(own_database):
    number = lead(at("2026-05-05 09:00"))
    _transfer(number)
    step(number, "police-decision", at("2026-05-22 10:00"), accepted=False, text="不予立案")
    assert due(number)["reconsideration-request"] == ("2026-05-25 23:59:59", "open")
    step(number, "reconsideration", at("2026-05-23 10:00"), approve=True)
    assert due(number)["reconsideration-answer"] == ("2026-05-26 23:59:59", "open")
    step(number, "reconsideration-answer", at("2026-05-26 10:00"), accepted=False)
    # Filed 5-6 (due 8-4 = 5-6 + 90); paused 5-20 09:00 .. 5-26 10:00, 6 whole days (a day-
    # counted limit moves by whole days, as `regflow due --pause` counts): 8-10, a Monday.
    assert due(number)["decision"] == ("2026-08-10 23:59:59", "open")
    assert case_of(number).stage == "legal-review"
    assert due(number)["legal-review"][1] == "open"
    with pytest.raises(StepConflict, match="awaiting 法制审核"):
        step(number, "pre-penalty", at("2026-05-27 10:00"), fine="1", served_on="2026-05-27")


def test_listed_case_owes_progress_and_a_miss_escalates_to_the_listing_authority(own_database, receivers):
    now = pendulum.now("UTC")
    number = lead(now)
    step(number, "filing", now, decision="file")
    finish = (pendulum.now(TZ) + dt.timedelta(days=60)).format("YYYY-MM-DD")
    refused = cli("case", "supervise", number, "--by", "330108", "--report-every", "15d", "--finish-by", finish)
    assert refused.code == 2 and "does not supervise" in refused.err
    listed = cli(
        "case", "supervise", number, "--by", "330100", "--report-every", "15d", "--finish-by", finish, "--json"
    )
    assert listed.code == 0, listed.err
    assert json.loads(listed.out)["listed_by"] == "330100"
    assert cli("case", "supervise", number, "--by", "330000", "--finish-by", finish).code == 4
    assert due(number)["supervision-final"][0].startswith(finish)

    # The watcher 18 days on (15 d, plus a weekend at most): the progress report is
    # overdue; the listing authority is told.
    later = now + dt.timedelta(days=18)
    send_reminders(later)
    with session_scope() as session:
        escalation = session.exec(select(Escalation).where(Escalation.subject == number)).one()
        told = [
            n.tag
            for n in session.exec(
                select(Notification).where(
                    Notification.subject == number, Notification.key.contains(f"escalation:{escalation.id}:0")
                )
            ).all()
        ]
    assert escalation.policy["ladder"][0] == "330100"
    assert sorted(told) == ["330100.duty", "330100.head"]
    # The report, late, resolves the escalation; the next one is due 15 days on.
    assert cli("case", "report-progress", number, "--text", "已完成抽样送检").code == 0
    with session_scope() as session:
        assert session.get(Escalation, escalation.id).status == "resolved"
    assert due(number)["supervision-progress-1"][1] == "met"
    assert due(number)["supervision-progress-2"][1] == "open"
    assert cli("case", "unlist", number, "--reason", "督办事项已办结").code == 0
    assert {n: s for n, (_, s) in due(number).items() if n.startswith("supervision")} == {
        "supervision-progress-1": "met",
        "supervision-progress-2": "cancelled",
        "supervision-final": "cancelled",
    }
    with session_scope() as session:
        actions = [e.action for e in events_for(session, subject=number)]
    assert {"case.listed", "case.supervision.reported", "case.unlisted", "escalation.raised"} <= set(actions)


def test_assistance_is_owed_and_escalated_by_the_assisting_authority(own_database):
    now = pendulum.now("UTC")
    number = lead(now)
    step(number, "filing", now, decision="file")
    assert cli("case", "assist", number, "--to", "330106", "--request", "x").code == 2
    assert cli("case", "assist", number, "--to", "320102", "--request", "核查供货商进货记录").code == 0
    with session_scope() as session:
        row = [d for d in deadlines_for(session, subject=number) if d.name == "assistance-1"][0]
        asked = session.exec(
            select(Notification.tag).where(Notification.subject == number, Notification.key.contains("assistance-1"))
        ).all()
    assert row.authority == "320102" and row.policy["escalation"]["ladder"][0] == "320100"
    assert sorted(asked) == ["320102.duty", "320102.head"]
    send_reminders(row.due_at + dt.timedelta(minutes=1))
    with session_scope() as session:
        escalation = session.exec(select(Escalation).where(Escalation.deadline_id == row.id)).one()
        reminded = session.exec(
            select(Notification.tag).where(
                Notification.subject == number, Notification.key.contains("reminder:assistance-1")
            )
        ).all()
    assert escalation.policy["ladder"][:2] == ["320100", "320000"]
    assert "320102.duty" in reminded and "330106.duty" not in reminded
    assert cli("case", "assist-reply", number, "1", "--text", "已核实").code == 0
    assert cli("case", "assist-reply", number, "1", "--text", "again").code == 4


def test_complaint_accepted_then_a_lead_found_in_mediation_becomes_a_case(own_database):
    received = at("2026-09-21 10:00")
    request = validate_lead(
        dict(
            kind="complaint",
            title="预付卡无法退费",
            party="某健身房",
            authority="330106",
            reporter="王五",
            reporter_contact="138****0000",
        ),
        now=received,
    )
    number = cases.receive(request, now=received).number
    assert number.startswith("CMP-")
    # 7 WD from Mon 9-21: 22, 23, 24, 28, 29, 30, 10-8 (the holidays in between).
    assert due(number)["acceptance"] == ("2026-10-08 23:59:59", "open")
    step(number, "acceptance", at("2026-09-22 10:00"), accept=True)
    with session_scope() as session:
        told = session.exec(
            select(Notification.body).where(Notification.subject == number, Notification.key.contains(":acceptance:"))
        ).first()
    assert "请告知投诉人 王五（138****0000）：已受理" in told
    # Mediation ends 45 WD after acceptance (9-22): 9-23..24 (2), 28..30 (5), 10-8..10 (8),
    # then 37 ordinary working days through 11-30 (7 weeks and 2 days), the 45th on 12-1.
    assert due(number)["mediation"] == ("2026-12-01 23:59:59", "open")
    step(number, "mediation", at("2026-10-12 10:00"), outcome="lead", text="发现销售过期商品")
    complaint = case_of(number)
    assert (complaint.status, complaint.outcome) == ("closed", "lead")
    new = case_of(complaint.facts["lead"])
    assert (new.kind, new.source, new.linked_to) == ("case", "complaint", number)
    # A lead found in mediation is checked within 15 WD (Art. 23): 10-13 .. 11-2.
    assert due(new.number)["filing"] == ("2026-11-02 23:59:59", "open")
    with session_scope() as session:
        assert [d.rule for d in deadlines_for(session, subject=new.number)][0].startswith("核查违法线索")


def test_bad_case_input_is_one_line_and_writes_nothing(own_database):
    before = counts()
    for args, code, words in [
        (
            ["lead", "receive", "--title", "t", "--party", "p", "--source", "rumour", "--authority", "330106"],
            2,
            "unknown source",
        ),
        (
            ["lead", "receive", "--title", "t", "--party", "p", "--source", "report", "--authority", "999999"],
            2,
            "unknown authority",
        ),
        (
            [
                "lead",
                "receive",
                "--title",
                "t",
                "--party",
                "p",
                "--source",
                "report",
                "--authority",
                "330106",
                "--received-at",
                "2026-13-40",
            ],
            2,
            "malformed",
        ),
        (
            [
                "lead",
                "receive",
                "--title",
                "t",
                "--party",
                "p",
                "--source",
                "report",
                "--authority",
                "330106",
                "--real-name",
            ],
            2,
            "needs --reporter",
        ),
        (
            ["lead", "receive", "--title", "x" * 201, "--party", "p", "--source", "report", "--authority", "330106"],
            2,
            "title",
        ),
        (["case", "show", "CASE-1999-000001"], 3, "no case"),
        (["case", "decide", "CASE-1999-000001", "nonsense"], 2, "unknown step"),
        (["case", "extend", "CASE-1999-000001", "decision", "--reason", "x", "--collective"], 2, "go together"),
    ]:
        result = cli(*args)
        assert result.code == code, (args, result.err)
        assert words in result.err and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert counts() == before

    number = lead(pendulum.now("UTC"))
    before = counts()
    for args, code, words in [
        (["case", "decide", number, "investigation", "finding=penalty"], 4, "awaiting 核查立案"),
        (["case", "decide", number, "filing", "decision=maybe"], 2, "decision"),
        (["case", "decide", number, "filing", "decision"], 2, "FIELD=VALUE"),
        (["case", "decide", number, "filing", "decision=file", "text=" + "x" * 20001], 2, "text"),
        (["case", "measure", number, "--kind", "seizure"], 4, "not filed"),
        (["case", "resume-clock", number], 4, "not paused"),
        (["case", "extend", number, "closure", "--reason", "x"], 3, "no deadline"),
    ]:
        result = cli(*args)
        assert result.code == code, (args, result.err)
        assert words in result.err and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert counts() == before
    assert cli("case", "decide", number, "filing", "decision=file").code == 0
    twice = cli("case", "decide", number, "filing", "decision=not_file")
    assert twice.code == 4 and "already recorded" in twice.err
    listed = json.loads(cli("case", "list", "--stage", "investigation", "--json").out)
    assert number in [r["number"] for r in listed]
    assert json.loads(cli("case", "show", number, "--json").out)["awaiting"] == "investigation"
