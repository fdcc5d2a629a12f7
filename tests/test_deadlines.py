"""The deadline engine: reminders before, escalation after, moving the clock by hand
(one reading per cycle, as the watcher does), then real watcher processes killed,
restarted and racing. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlmodel import select

from kernel.errors import StepConflict
from rules.incidents import validate_trigger
from storage.audit import events_for
from storage.db import session_scope, utcnow
from storage.deadlines import Deadline, add_deadline
from storage.escalations import Escalation
from storage.incidents import get_incident
from storage.notifications import Notification
from tasks import incidents
from tasks.deadlines import acknowledge, climb_escalations, extend, pause, resume, send_reminders
from tasks.notify import deliver_due
from tests.conftest import cli, prefect_client, wait_until

MIN = dt.timedelta(minutes=1)


def tick(now: dt.datetime) -> tuple[int, int]:
    """One watcher cycle at `now`: reminders, escalations, then the sender."""
    reminded, climbed = send_reminders(now).done, climb_escalations(now).done
    deliver_due()
    return reminded, climbed


def start_incident(t0: dt.datetime, authority: str = "330106", level: str = "IV") -> str:
    request = validate_trigger(
        dict(
            plan="product-quality",
            level=level,
            title=f"时限测试 {uuid.uuid4().hex[:6]}",
            location="测试地点",
            authority=authority,
        ),
        now=t0,
    )
    return incidents.trigger(request, now=t0).number


def received(receivers, number: str) -> list:
    """Messages about this incident. Numbers repeat across the two backends' databases;
    the title carries a token of its own, and every message body names it."""
    with session_scope() as session:
        title = get_incident(session, number=number).title
    return [m for m in receivers.inbox.matching(title) if number in m.title]


def reminded(number: str) -> list[str]:
    """`deadline:index` of every reminder the incident got, from its audit log."""
    with session_scope() as session:
        return [
            f"{e.detail['deadline']}:{e.detail['reminder']}"
            for e in events_for(session, subject=number)
            if e.action == "deadline.reminder"
        ]


def escalation_steps(number: str) -> dict[str, int]:
    with session_scope() as session:
        return {
            session.get(Deadline, e.deadline_id).name: e.step
            for e in session.exec(select(Escalation).where(Escalation.subject == number)).all()
        }


def messages(number: str, kind: str) -> list[Notification]:
    with session_scope() as session:
        return list(
            session.exec(
                select(Notification).where(Notification.subject == number, Notification.key.contains(f":{kind}:"))
            ).all()
        )


def deadline(number: str, name: str) -> Deadline:
    with session_scope() as session:
        incident = get_incident(session, number=number)
        return session.exec(select(Deadline).where(Deadline.subject == incident.number, Deadline.name == name)).one()


def test_reminders_at_half_and_four_fifths_and_none_for_a_deadline_met_first(own_database, receivers):
    t0 = utcnow() - dt.timedelta(hours=10)
    number = start_incident(t0)  # level IV: dispatch 1h (met at the trigger), initial report 1h, arrival 4h
    assert deadline(number, "dispatch").status == "met" and deadline(number, "dispatch").next_at is None
    tick(t0 + 29 * MIN)
    assert reminded(number) == []
    tick(t0 + 31 * MIN)
    assert reminded(number) == ["initial_report:0"]  # 50 % of its 1 h; the dispatch was met: nothing
    tick(t0 + 31 * MIN)
    assert len(reminded(number)) == 1  # the same minute again: nothing twice
    incidents.answer(number, answer={"officer": "张三"}, source="cli", verb="arrive", now=t0 + 40 * MIN)
    assert deadline(number, "arrival").next_at is None  # arrival met before its 50 % reminder (2 h)
    tick(t0 + 50 * MIN)
    assert reminded(number) == ["initial_report:0", "initial_report:1"]
    tick(t0 + 150 * MIN)
    assert not [r for r in reminded(number) if r.startswith(("arrival:", "dispatch:"))]
    got = [
        m
        for m in received(receivers, number)
        if "时限提醒" in m.title and m.to.startswith("/330106/duty") and "初报" in m.title
    ]
    assert len(got) >= 2


def test_a_miss_escalates_two_levels_then_stops_when_acknowledged(own_database, receivers):
    t0 = utcnow() - dt.timedelta(hours=10)
    number = start_incident(t0)
    tick(t0 + 59 * MIN)  # 80 % of the initial report (the 50 % one fell due unsent: only the latest goes)
    assert reminded(number) == ["initial_report:1"]
    tick(t0 + 61 * MIN)  # due: reminder, and escalation to the city; upward report at 50 %
    assert sorted(reminded(number)) == ["initial_report:1", "initial_report:2", "upward_report:0"]
    assert escalation_steps(number) == {"initial_report": 0}
    with session_scope() as session:
        esc = session.exec(select(Escalation).where(Escalation.subject == number)).one()
    assert esc.policy["ladder"] == ["330100", "330000", "100000"]
    tick(t0 + 80 * MIN)
    assert escalation_steps(number) == {"initial_report": 0}  # within the 30 min to acknowledge
    tick(t0 + 92 * MIN)
    assert escalation_steps(number) == {"initial_report": 1}  # nobody acknowledged: the province
    result = cli("escalation", "ack", str(esc.id), "--by", "省局值班员")
    assert result.code == 0, result.err
    tick(t0 + 300 * MIN)
    assert escalation_steps(number)["initial_report"] == 1  # the ladder stopped
    again = cli("escalation", "ack", str(esc.id), "--by", "x")
    assert again.code == 4 and "already acknowledged" in again.err
    told = {
        m.to.split("/")[1]
        for m in received(receivers, number)
        if "督办提醒" in m.title and ":initial_report" not in m.title and "初报" in m.title
    }
    assert {"330100", "330000"} <= told and "100000" not in told
    with session_scope() as session:
        actions = [e.action for e in events_for(session, subject=number)]
    assert actions.count("escalation.climbed") == 1 and "escalation.acknowledged" in actions


def test_an_unacknowledged_miss_climbs_to_the_top_and_repeats_the_ladder_once(own_database, receivers):
    t0 = utcnow() - dt.timedelta(hours=20)
    number = start_incident(t0, authority="330108")
    steps = []
    for minutes in (61, 92, 123, 154, 185, 216, 247, 400):
        tick(t0 + minutes * MIN)
        steps.append(escalation_steps(number)["initial_report"])
    # city, province, national, then once more from the city (repeat: 1), then it stays open
    assert steps == [0, 1, 2, 3, 4, 5, 5, 5]
    with session_scope() as session:
        esc = session.exec(
            select(Escalation)
            .join(Deadline, Deadline.id == Escalation.deadline_id)
            .where(Escalation.subject == number, Deadline.name == "initial_report")
        ).one()
    assert esc.status == "open" and esc.next_at is None


def test_meeting_a_missed_deadline_late_closes_its_escalation(own_database, receivers):
    t0 = utcnow() - dt.timedelta(hours=10)
    number = start_incident(t0)
    tick(t0 + 61 * MIN)  # initial report missed: escalation raised
    incidents.answer(number, answer={"officer": "张三"}, source="cli", verb="arrive", now=t0 + 70 * MIN)
    incidents.answer(
        number, answer={"author": "李四", "text": "初报"}, source="cli", verb="report:initial", now=t0 + 75 * MIN
    )
    with session_scope() as session:
        esc = session.exec(select(Escalation).where(Escalation.subject == number)).one()
    assert esc.status == "resolved" and esc.next_at is None
    tick(t0 + 200 * MIN)
    assert escalation_steps(number)["initial_report"] == 0  # resolved: it climbs no further
    assert deadline(number, "initial_report").status == "met"


def test_a_paused_deadline_sends_nothing_and_moves_by_the_paused_span(own_database, receivers):
    t0 = utcnow() - dt.timedelta(hours=10)
    number = start_incident(t0)
    arrival = deadline(number, "arrival")  # 4 h
    pause(arrival.id, by="张三", reason="送检", now=t0 + 10 * MIN)
    tick(t0 + 3 * 60 * MIN)
    assert reminded(number) and not [r for r in reminded(number) if r.startswith("arrival:")]
    resumed = resume(arrival.id, by="张三", now=t0 + 70 * MIN)
    assert resumed.due_at == arrival.due_at + 60 * MIN and resumed.paused_seconds == 3600
    assert "paused 1h00m" in resumed.rule
    extended = extend(
        arrival.id, due_at=resumed.due_at + 120 * MIN, by="局长", reason="案情复杂", rule="+2h", now=t0 + 80 * MIN
    )
    assert extended.extensions[0]["by"] == "局长" and extended.extensions[0]["reason"] == "案情复杂"


def test_board_shows_overdue_deadlines_and_open_escalations(own_database, receivers, prefect_api):
    from prefect.client.orchestration import get_client

    from tasks.board import publish

    t0 = utcnow() - dt.timedelta(hours=10)
    number = start_incident(t0, authority="320102")
    tick(t0 + 61 * MIN)
    result = cli("board", "--authority", "320100", "--json")
    data = json.loads(result.out)
    rows = [r for r in data["deadlines"] if r["subject"] == number]
    assert {r["deadline"] for r in rows} >= {"initial_report", "arrival"}
    assert all(r["status"] == "overdue" for r in rows if r["deadline"] == "initial_report")
    assert any(r["escalation"] for r in rows)
    assert all(r["authority"] in ("320100", "320102") for r in data["deadlines"])
    assert json.loads(cli("board", "--authority", "330100", "--json").out)["deadlines"] == [] or all(
        r["subject"] != number for r in json.loads(cli("board", "--authority", "330100", "--json").out)["deadlines"]
    )
    assert publish(utcnow(), every=0) == 1
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts(limit=50)
    assert any(a.key == "supervision-board" for a in artifact)


# --- real watcher processes ----------------------------------------------------------


def watcher(database: str, log: Path) -> subprocess.Popen:
    # An empty API address: this watcher works without Prefect (unset, regflow would
    # default to make run's server on 127.0.0.1:4200).
    env = dict(
        os.environ,
        REGFLOW_DATABASE_URL=database,
        REGFLOW_OUTBOX_POLL_SECONDS="0.2",
        PREFECT_API_URL=os.environ.get("PREFECT_API_URL", ""),
    )
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "regflow"), "watch"], env=env, stdout=log.open("a"), stderr=subprocess.STDOUT
    )


def short_deadlines(number: str, count: int, due_in: float) -> list[str]:
    """Deadlines due in a few seconds, reminded once at the due time."""
    now = utcnow()
    names = [f"t{uuid.uuid4().hex[:6]}-{i}" for i in range(count)]
    policy = {
        "reminders": {"fractions": [], "overdue_every_s": 3600},
        "escalation": {"ack_timeout_s": 3600, "repeat": 0, "ladder": ["330100"]},
    }
    with session_scope() as session:
        incident = get_incident(session, number=number)
        for name in names:
            add_deadline(
                session,
                subject=incident.number,
                name=name,
                due_at=now + dt.timedelta(seconds=due_in),
                rule="test",
                now=now,
                policy=policy,
                authority=incident.authority_code,
            )
    return names


def delivered(receivers, number: str, names: list[str]) -> dict[str, int]:
    counts = {name: 0 for name in names}
    for m in received(receivers, number):
        if m.to.startswith("/330106/duty") and "时限已到" in m.title:
            for name in names:
                if f"】{number} {name}" in m.title:
                    counts[name] += 1
    return counts


def test_a_killed_watcher_fires_what_fell_due_once_after_restart(own_database, receivers, tmp_path):
    number = start_incident(utcnow(), authority="330106")
    first = watcher(own_database, tmp_path / "w1.log")
    time.sleep(3)
    first.send_signal(signal.SIGKILL)
    first.wait()
    names = short_deadlines(number, 20, due_in=1.0)
    time.sleep(2)  # they fall due while no watcher runs
    second = watcher(own_database, tmp_path / "w2.log")
    try:
        wait_until(
            lambda: all(v >= 1 for v in delivered(receivers, number, names).values()),
            timeout=60,
            what="every reminder after the restart",
        )
        time.sleep(2)
    finally:
        second.terminate()
        second.wait(timeout=20)
    assert set(delivered(receivers, number, names).values()) == {1}


def test_two_watchers_racing_fire_everything_once(own_database, receivers, tmp_path):
    number = start_incident(utcnow(), authority="330106")
    racers = [watcher(own_database, tmp_path / f"r{i}.log") for i in range(2)]
    try:
        time.sleep(3)
        names = short_deadlines(number, 40, due_in=2.0)
        wait_until(
            lambda: all(v >= 1 for v in delivered(receivers, number, names).values()),
            timeout=60,
            what="every reminder with two watchers",
        )
        time.sleep(2)
    finally:
        for racer in racers:
            racer.terminate()
        for racer in racers:
            racer.wait(timeout=20)
    assert set(delivered(receivers, number, names).values()) == {1}
    with session_scope() as session:
        escalations = session.exec(select(Escalation).where(Escalation.subject == number)).all()
    assert len(escalations) == len(names)  # each miss escalated once


def test_misses_and_escalations_reach_prefects_event_feed(own_database, receivers, prefect_api):
    """Supervisors see them in the UI's event feed, related to the incident."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
    from prefect.events.worker import EventsWorker

    t0 = utcnow() - dt.timedelta(hours=10)
    number = start_incident(t0)
    tick(t0 + 61 * MIN)
    with session_scope() as session:
        esc = session.exec(select(Escalation).where(Escalation.subject == number)).first()
    acknowledge(esc.id, by="市局值班员", now=t0 + 70 * MIN)
    EventsWorker.drain_all()

    def names():
        page = prefect_client().read_events(
            EventFilter(
                event=EventNameFilter(prefix=["regflow."]),
                related=EventRelatedFilter(id=[f"regflow.incident.{number}"]),
            ),
            limit=50,
        )
        return {e.event for e in page.events}

    wanted = {
        "regflow.deadline.reminder",
        "regflow.deadline.missed",
        "regflow.escalation.raised",
        "regflow.escalation.acknowledged",
    }
    assert wait_until(lambda: wanted <= names(), timeout=30, what="the events in Prefect's feed")


def test_reports_do_not_wait_for_arrival_at_level_iv(own_database, receivers):
    """Level IV gives the team 4 h to arrive and the initial report 1 h: the reporting
    line and the on-site line run side by side, so both reports are on time."""
    t0 = utcnow() - dt.timedelta(hours=5)
    number = start_incident(t0)
    incidents.answer(number, answer={"author": "李四", "text": "初报"}, source="cli", verb="report:initial",
                     now=t0 + 30 * MIN)  # fmt: skip
    for name in ("initial_report", "upward_report"):
        met = deadline(number, name)
        assert met.status == "met" and met.closed_at <= met.due_at, name
    assert deadline(number, "arrival").status == "open"
    # A progress report may follow before arrival too; arrival then comes in its own time.
    incidents.answer(number, answer={"author": "李四", "text": "续报"}, source="cli", verb="report:progress",
                     now=t0 + 2 * 60 * MIN)  # fmt: skip
    incidents.answer(number, answer={"officer": "张三"}, source="cli", verb="arrive", now=t0 + 3 * 60 * MIN)
    assert deadline(number, "arrival").status == "met" and deadline(number, "progress-1").status == "met"
    with pytest.raises(StepConflict, match="initial report of .* was already recorded"):
        incidents.answer(number, answer={"author": "李四", "text": "x"}, source="cli", verb="report:initial",
                         now=t0 + 4 * 60 * MIN)  # fmt: skip
    with pytest.raises(StepConflict, match="awaiting 续报 2 .* and 结束处置 .*, not 终报"):
        incidents.answer(number, answer={"author": "李四", "text": "x"}, source="cli", verb="report:final",
                         now=t0 + 4 * 60 * MIN)  # fmt: skip


def test_the_regions_government_is_told_at_level_iii_not_iv(own_database, receivers):
    """Levels I-III of the demo plans tell the duty office of the handling authority's
    people's government (data/authorities.yaml), of the activation and of every report."""
    from storage.authorities import load_tree

    with session_scope() as session:
        assert load_tree(session).get("330106").government == "杭州市西湖区人民政府总值班室"
    t0 = utcnow()
    serious, minor = start_incident(t0, level="III"), start_incident(t0, level="IV")
    incidents.answer(serious, answer={"author": "李四", "text": "初报"}, source="cli", verb="report:initial", now=t0)

    def told(number: str) -> set[str]:
        with session_scope() as session:
            return {n.key.split(":")[1] for n in session.exec(select(Notification).where(
                Notification.subject == number, Notification.tag == "330106.government")).all()}  # fmt: skip

    assert told(serious) == {"activation", "initial-report"}
    assert told(minor) == set()
    deliver_due(now=utcnow())
    assert wait_until(lambda: [m for m in receivers.inbox.matching(serious) if m.channel == "smtp"
                               and "government@330106" in m.to], what="the government's copy")  # fmt: skip


def test_relevel_iv_to_ii_recomputes_open_deadlines_and_tells_the_newly_concerned(own_database, receivers):
    """Re-grading from the original trigger time: at IV the team has 4 h to arrive, at II
    1 h; the national desk, not concerned at IV, is told; only a head may do it."""
    from kernel.errors import Forbidden, NotFound
    from rules.plans import Level

    t0 = utcnow() - dt.timedelta(minutes=30)
    number = start_incident(t0, level="IV")
    assert deadline(number, "arrival").due_at == t0 + dt.timedelta(hours=4)
    with pytest.raises(Forbidden):
        incidents.relevel(number, Level.II, by="路人甲", reason="伤亡上升", now=utcnow())  # holds no role
    assert deadline(number, "arrival").due_at == t0 + dt.timedelta(hours=4)  # a refusal writes nothing but itself

    result = cli("incident", "relevel", number, "--level", "II", "--reason", "伤亡人数上升", "--by", "赵六", "--json")
    assert result.code == 0, result.err
    assert set(json.loads(result.out)["deadlines_moved"]) >= {"arrival"}
    arrival = deadline(number, "arrival")
    assert arrival.due_at == t0 + dt.timedelta(hours=1) and arrival.status == "open"
    assert arrival.extensions[-1]["reason"].startswith("响应级别调整 IV→II")
    assert deadline(number, "dispatch").status == "met"  # what was met stays met
    with session_scope() as session:
        assert get_incident(session, number=number).level == "II"
        told = {n.tag for n in session.exec(select(Notification).where(
            Notification.subject == number, Notification.key.contains(":relevel:"))).all()}  # fmt: skip
        event = [e for e in events_for(session, subject=number) if e.action == "incident.relevelled"][-1]
    assert {"100000.duty", "330000.duty", "330106.government"} <= told
    assert event.detail["level_from"] == "IV" and "100000.duty" in event.detail["newly_told"]

    for args, code, message in (
        (["--level", "II"], 4, "already at level II"),
        (["--level", "V"], 2, "--level must be I, II, III or IV"),
    ):
        refused = cli("incident", "relevel", number, *args, "--reason", "r", "--by", "赵六")
        assert (refused.code, refused.err.count("\n")) == (code, 1) and message in refused.err, refused.err
    with pytest.raises(NotFound):
        incidents.relevel("INC-1999-000001", Level.I, by="赵六", reason="r", now=utcnow())


def test_review_action_items_are_reminded_escalated_and_done(own_database, receivers):
    """The review assigns action items; each is a deadline owed by its authority: reminded,
    escalated when missed, listed, and done by its owner (the escalation then resolved)."""
    import pendulum

    t0 = utcnow() - dt.timedelta(hours=3)
    number = start_incident(t0)
    for verb, data, at in (
        ("arrive", {"officer": "张三"}, 30 * MIN),
        ("report:initial", {"author": "李四", "text": "初报"}, 40 * MIN),
        ("close", {"officer": "张三", "text": "处置结束"}, 60 * MIN),
        ("report:final", {"author": "王五", "text": "终报"}, 90 * MIN),
    ):
        incidents.answer(number, answer=data, source="cli", verb=verb, now=t0 + at)
    tomorrow = pendulum.now("Asia/Shanghai").date() + dt.timedelta(days=1)
    yesterday = tomorrow - dt.timedelta(days=2)

    def counts() -> tuple[int, ...]:
        import sqlalchemy as sa

        with session_scope() as session:
            return tuple(session.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                         for t in ("action_item", "deadline", "notification", "step"))  # fmt: skip

    before = counts()
    review = ("incident", "review", number, "--lessons", "需加强维保监管", "--by", "赵六")
    for action, message in (
        ("约谈维保单位|330106|张三", "--action 1: give 'what|authority code|owner|due date'"),
        (f"约谈维保单位|999999|张三|{tomorrow}", "actions[0].authority: unknown authority '999999'"),
        (f"约谈维保单位|330106|张三|{yesterday}", f"actions[0].due: {yesterday} is in the past"),
        ("约谈维保单位|330106|张三|明天", "actions.0.due"),
    ):
        refused = cli(*review, "--action", action)
        assert refused.code == 2 and message in refused.err and refused.err.count("\n") == 1, refused.err
    assert counts() == before  # nothing half written: no review, no item, no deadline

    done = cli(*review, "--action", f"约谈全区电梯维保单位|330106|张三|{tomorrow}",
               "--action", f"修订维保检查规程|330100|钱七|{tomorrow + dt.timedelta(days=30)}")  # fmt: skip
    assert done.code == 0, done.err
    listed = json.loads(cli("action", "list", "--open", "--authority", "330106", "--json").out)
    assert [(a["incident"], a["seq"], a["owner"], a["deadline"]) for a in listed] == [(number, 1, "张三", "open")]
    shown = json.loads(cli("incident", "show", number, "--json").out)
    assert [a["what"] for a in shown["actions"]] == ["约谈全区电梯维保单位", "修订维保检查规程"]
    with session_scope() as session:
        first = session.exec(select(Deadline).where(Deadline.subject == number, Deadline.name == "action-1")).one()
        second = session.exec(select(Deadline).where(Deadline.subject == number, Deadline.name == "action-2")).one()
    assert first.authority == "330106" and second.authority == "330100"
    assert pendulum.instance(first.due_at).in_timezone("Asia/Shanghai").to_time_string() == "23:59:59"
    assert "整改事项 1：约谈全区电梯维保单位" in first.rule

    # Missed: reminded before, then escalated to the city bureau, on the board.
    tick(first.due_at - dt.timedelta(minutes=1))
    assert any(r.startswith("action-1:") for r in reminded(number))
    tick(first.due_at + MIN)
    assert escalation_steps(number) == {"action-1": 0}
    board = json.loads(cli("board", "--json").out)
    assert number in json.dumps(board, ensure_ascii=False) and "整改事项 1" in json.dumps(board, ensure_ascii=False)

    item = listed[0]["id"]
    stranger = cli("action", "done", str(item), "--by", "路人甲", "--note", "x")
    assert stranger.code == 8 and stranger.err.count("\n") == 1
    assert cli("action", "done", str(item), "--by", "张三", "--note", "已约谈 12 家维保单位").code == 0
    again = cli("action", "done", str(item), "--by", "张三", "--note", "again")
    assert again.code == 4 and "already done" in again.err
    assert cli("action", "done", "99999", "--by", "张三", "--note", "x").code == 3
    rows = {a["seq"]: a for a in json.loads(cli("action", "list", "--json").out) if a["incident"] == number}
    assert rows[1]["status"] == "done" and rows[1]["done_by"] == "张三" and rows[1]["deadline"] == "met"
    assert rows[2]["status"] == "open"
    with session_scope() as session:
        esc = session.exec(select(Escalation).where(Escalation.subject == number)).one()
        actions = [e.action for e in events_for(session, subject=number)]
    assert esc.status != "open" and "action.done" in actions and "incident.actions_assigned" in actions


def test_a_drill_runs_on_into_a_year_without_holiday_data_and_a_real_incident_does_not(own_database):
    """Thirty days after a final report in late December reach a year whose holidays are
    not entered: a real incident's final report is refused (exit 5) rather than count a
    guessed calendar; a drill, an exercise on compressed time, counts weekends only there
    and says so in the deadline's rule."""
    from kernel.errors import CalendarUnavailable

    t0 = dt.datetime(2027, 12, 20, 2, 0, tzinfo=dt.timezone.utc)  # the tests' calendar enters 2027, not 2028
    answers = (
        ("arrive", {"officer": "张三"}),
        ("report:initial", {"author": "李四", "text": "初报"}),
        ("close", {"officer": "张三", "text": "处置结束"}),
    )
    numbers = {}
    for drill in (False, True):
        request = validate_trigger(dict(plan="product-quality", level="IV", title=f"跨年 {uuid.uuid4().hex[:6]}",
                                        location="l", authority="330106", drill=drill,
                                        speed=60 if drill else 1), now=t0)  # fmt: skip
        numbers[drill] = number = incidents.trigger(request, now=t0).number
        for i, (verb, data) in enumerate(answers):
            incidents.answer(number, answer=data, source="cli", verb=verb, now=t0 + (i + 1) * MIN)
    final = {"author": "王五", "text": "终报"}
    with pytest.raises(CalendarUnavailable, match="no holiday calendar for 2028"):
        incidents.answer(numbers[False], answer=final, source="cli", verb="report:final", now=t0 + 10 * MIN)
    incidents.answer(numbers[True], answer=final, source="cli", verb="report:final", now=t0 + 10 * MIN)
    review = deadline(numbers[True], "review")
    assert review.status == "open" and "2028、2029 年节假日未录入，仅按周末计" in review.rule and "×60" in review.rule
