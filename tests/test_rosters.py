"""Duty rosters: the CSV a duty office keeps, refused line by line; who is on duty
across the 2026 Spring Festival, a gap reported by doctor and to the head a day ahead;
swaps and overrides on the audit log; the officer on duty told by their own channel and
able to acknowledge an escalation. The database is real; no Prefect is needed."""

from __future__ import annotations

import datetime as dt
import json

import pendulum
import pytest
import sqlalchemy as sa
from sqlmodel import select

from kernel.errors import InvalidInput
from rules.people import Directory, Person
from rules.rosters import gaps, parse_roster
from storage.audit import events_for
from storage.db import session_scope, utcnow
from storage.escalations import Escalation
from storage.notifications import Notification
from tasks.rosters import gaps_ahead, warn_of_gaps
from tests.conftest import cli

TZ = "Asia/Shanghai"
HEADER = "authority,start,end,officer,leader\n"


def local(text: str) -> dt.datetime:
    return pendulum.parse(text, tz=TZ)


def spring_festival(skip: str | None = None) -> str:
    """Daily shifts from 08:30, 2026-02-13 to 2026-02-24, but the one starting on `skip`."""
    rows, day = [HEADER.strip()], local("2026-02-13T08:30")
    while day < local("2026-02-24T08:30"):
        if day.to_date_string() != skip:
            officer = ("李四", "王五")[day.day % 2]
            rows.append(f"330106,{day.to_iso8601_string()},{day.add(days=1).to_iso8601_string()},{officer},赵六")
        day = day.add(days=1)
    return "\n".join(rows) + "\n"


def shift_count() -> int:
    with session_scope() as session:
        return session.execute(sa.text("SELECT count(*) FROM duty_shift")).scalar_one()


# --- the file and the arithmetic, no database ---------------------------------------------

PEOPLE = Directory(people=[Person(login="lisi", name="李四", authority="330106", roles=["duty"]),
                           Person(login="zl", name="赵六", authority="330106", roles=["head"])])  # fmt: skip


@pytest.mark.parametrize(
    "text,message",
    [
        ("authority,start,officer\n", "x.csv:1: missing column(s) end, leader"),
        (HEADER + "330106,2026-02-16T08:30,2026-02-17T08:30,李四,赵六\n330106,soon,2026-02-18T08:30,李四,赵六\n",
         "x.csv:3: malformed date/time 'soon'"),
        (HEADER + "330106,2026-02-16T08:30,2026-02-16T08:00,李四,赵六\n", "x.csv:2: end 2026-02-16T08:00 is not after"),
        (HEADER + "999999,2026-02-16T08:30,2026-02-17T08:30,李四,赵六\n", "x.csv:2: unknown authority '999999'"),
        (HEADER + "330106,2026-02-16T08:30,2026-02-17T08:30,路人甲,赵六\n",
         "x.csv:2: officer '路人甲' is not one of 330106's people"),
        (HEADER + "330106,2026-02-16T08:30,2026-02-17T08:30,李四,\n", "x.csv:2: leader is empty"),
        (HEADER + "330106,2026-02-16T08:30,2026-02-17T08:30,李四,赵六\n"
         "330106,2026-02-17T08:00,2026-02-18T08:30,李四,赵六\n", "x.csv:3: overlaps the shift on line 2"),
        (HEADER + "330106,2026-02-16T08:30,2026-03-16T08:30,李四,赵六\n", "x.csv:2: a shift of"),
        (HEADER, "x.csv: no shifts"),
    ],
)  # fmt: skip
def test_a_bad_roster_row_is_refused_with_its_line(text, message):
    with pytest.raises(InvalidInput) as refused:
        parse_roster(text, tz=TZ, source="x.csv", people=PEOPLE, authorities={"330106"})
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_gaps_are_the_stretches_no_shift_covers():
    t = local("2026-02-13T08:30")
    h = dt.timedelta(hours=1)
    assert gaps([(t, t + 3 * h), (t + 5 * h, t + 8 * h)], t, t + 10 * h) == [
        (t + 3 * h, t + 5 * h),
        (t + 8 * h, t + 10 * h),
    ]
    assert gaps([(t - h, t + 11 * h)], t, t + 10 * h) == []
    assert gaps([], t, t + h) == [(t, t + h)]


# --- on record ------------------------------------------------------------------------------


def test_a_roster_across_the_spring_festival_with_a_gap(own_database, tmp_path):
    path = tmp_path / "330106-spring.csv"
    before = shift_count()
    path.write_text(spring_festival(skip="2026-02-18").replace("王五,赵六", "王五,路人甲", 1), encoding="utf-8")
    refused = cli("duty", "import", str(path), "--by", "赵六")
    assert refused.code == 2 and f"{path}:" in refused.err and "leader '路人甲'" in refused.err
    assert refused.err.count("\n") == 1 and shift_count() == before  # nothing half imported

    path.write_text(spring_festival(skip="2026-02-18"), encoding="utf-8")
    assert cli("duty", "import", str(path), "--by", "路人甲").code == 8  # only a head imports
    done = cli("duty", "import", str(path), "--by", "赵六", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out) == {"added": 10, "unchanged": 0}
    assert json.loads(cli("duty", "import", str(path), "--by", "赵六", "--json").out) == {"added": 0, "unchanged": 10}

    on = json.loads(cli("duty", "who", "--authority", "330106", "--at", "2026-02-17T10:00", "--json").out)["on_duty"]
    assert (on["officer"], on["leader"]) == ("王五", "赵六")
    nobody = cli("duty", "who", "--authority", "330106", "--at", "2026-02-18T10:00")
    assert nobody.code == 0 and "nobody is on duty" in nobody.out

    # The week ahead from 2026-02-13: one gap, in the Spring Festival holiday.
    with session_scope() as session:
        found = gaps_ahead(session, now=local("2026-02-13T09:00"))
    assert [(g["authority"], g["start"], g["end"], g["holiday"]) for g in found] == [
        ("330106", local("2026-02-18T08:30"), local("2026-02-19T08:30"), "春节 Spring Festival")]  # fmt: skip
    # The head is told a day ahead, once however often the watcher looks.
    assert warn_of_gaps(local("2026-02-16T09:00")) == 0  # two days ahead: not yet
    assert warn_of_gaps(local("2026-02-17T09:00")) == 1
    warn_of_gaps(local("2026-02-17T09:01"))
    with session_scope() as session:
        told = session.exec(select(Notification).where(Notification.subject == "DUTY-330106")).all()
    # The desk, the head, and the officer on duty by their own channel (王五 that day).
    assert sorted(n.tag for n in told) == ["330106.duty", "330106.head", "person.t3-330106"]
    assert "2026-02-18 08:30" in told[0].body and "春节" in told[0].body

    # An override fills it; a swap exchanges two officers; both on the audit log.
    fill = ("duty", "override", "--authority", "330106", "--from", "2026-02-18T08:30", "--to", "2026-02-19T08:30",
            "--officer", "张三", "--reason", "春节补排", "--by", "赵六")  # fmt: skip
    leaderless = cli(*fill)
    assert leaderless.code == 2 and leaderless.err.startswith("error: --leader: nobody is on the roster then")
    filled = cli(*fill, "--leader", "赵六", "--json")
    assert filled.code == 0, filled.err
    with session_scope() as session:
        assert gaps_ahead(session, now=local("2026-02-13T09:00")) == []
    rows = json.loads(cli("duty", "list", "--authority", "330106", "--from", "2026-02-16T09:00", "--days", "1",
                          "--json").out)  # fmt: skip
    first, second = rows[0]["id"], rows[1]["id"]
    assert cli("duty", "swap", str(first), str(second), "--reason", "家中有事", "--by", "赵六").code == 0
    swapped = json.loads(cli("duty", "list", "--authority", "330106", "--from", "2026-02-16T09:00", "--days", "1",
                             "--json").out)  # fmt: skip
    assert [r["officer"] for r in swapped] == [rows[1]["officer"], rows[0]["officer"]]
    with session_scope() as session:
        actions = [e.action for e in events_for(session, subject="DUTY-330106")]
    assert {"duty.imported", "duty.overridden", "duty.swapped"} <= set(actions)
    bad = cli("duty", "override", "--authority", "330106", "--from", "2026-02-19T08:30", "--to", "2026-02-19T08:00",
              "--officer", "张三", "--reason", "x", "--by", "赵六")  # fmt: skip
    assert bad.code == 2 and "is not after" in bad.err


def test_the_officer_on_duty_is_told_and_may_acknowledge(own_database, receivers, tmp_path, monkeypatch):
    """The district's officer on duty gets the activation by their own channel; a missed
    report escalates to the city, whose message names its officer on duty, who may
    acknowledge it though the people file gives them no duty role."""
    from kernel.settings import get_settings
    from rules.incidents import validate_trigger
    from tasks import incidents
    from tasks.deadlines import climb_escalations, send_reminders

    people = tmp_path / "people.yaml"
    people.write_text(
        "people:\n"
        "  - {login: lisi, name: 李四, authority: '330106', roles: [duty]}\n"
        "  - {login: zl, name: 赵六, authority: '330106', roles: [head]}\n"
        "  - {login: jia, name: 市局甲, authority: '330100', roles: [inspector]}\n"
        "  - {login: yi, name: 市局乙, authority: '330100', roles: [inspector]}\n"
        "  - {login: hz-head, name: 市局长, authority: '330100', roles: [head]}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("REGFLOW_PEOPLE_FILE", str(people))
    get_settings.cache_clear()
    now = utcnow()
    start = pendulum.instance(now).subtract(hours=6)
    roster = tmp_path / "now.csv"
    roster.write_text(HEADER + f"330106,{start.isoformat()},{start.add(hours=24).isoformat()},李四,赵六\n"
                      f"330100,{start.isoformat()},{start.add(hours=24).isoformat()},市局甲,市局长\n",
                      encoding="utf-8")  # fmt: skip
    assert cli("duty", "import", str(roster), "--by", "zl").code == 8  # the district's head: not the city's roster
    assert cli("duty", "import", str(roster), "--by", "市局长").code == 0  # the city's head: its own and below

    t0 = now - dt.timedelta(hours=2)
    request = validate_trigger(dict(plan="product-quality", level="IV", title="值班测试", location="l",
                                    authority="330106"), now=t0)  # fmt: skip
    number = incidents.trigger(request, now=t0).number
    with session_scope() as session:
        tags = {n.tag for n in session.exec(select(Notification).where(Notification.subject == number)).all()}
    assert {"330106.duty", "person.lisi"} <= tags and "person.zl" not in tags

    send_reminders(t0 + dt.timedelta(minutes=61))
    climb_escalations(t0 + dt.timedelta(minutes=61))  # the initial report missed: the city is told
    with session_scope() as session:
        esc = session.exec(select(Escalation).where(Escalation.subject == number)).one()
        raised = session.exec(select(Notification).where(Notification.subject == number,
                                                         Notification.tag == "330100.duty")).all()  # fmt: skip
    news = [n for n in raised if "督办" in n.title]
    assert news and "值班员 市局甲，带班领导 市局长" in news[0].body
    assert "person.jia" in {n.tag for n in fresh_notifications(number)}  # the city's officer on duty, in person
    # The roster ends 18 hours from now: doctor names the gap of the week ahead at both.
    checks = {c["name"]: c for c in json.loads(cli("doctor", "--json").out)}
    rosters = checks["duty rosters"]
    assert not rosters["ok"] and "330100" in rosters["detail"] and "330106" in rosters["detail"]
    assert rosters["fix"].startswith("regflow duty import")
    assert cli("escalation", "ack", str(esc.id), "--by", "yi").code == 8  # not on duty, no duty role
    assert cli("escalation", "ack", str(esc.id), "--by", "jia").code == 0  # on duty at the city


def fresh_notifications(number: str):
    with session_scope() as session:
        return session.exec(select(Notification).where(Notification.subject == number)).all()
