"""Drills (应急演练): a plan run as an exercise on compressed time, simulated
responders following a scenario file, and a scorecard computed from the records.

The end-to-end test plays a scenario at ×1200 on the real platform (Prefect server,
process worker, watcher, loopback receivers): every message it causes must be marked
as a drill, the late step must set off the same reminders and escalation as a real
miss, and the scorecard must agree with the rows the platform wrote."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from storage.db import session_scope, utcnow
from tests.conftest import cli, fresh, on_sqlite, read_run, wait_until

FAST = Path(__file__).parent / "fixtures" / "drill-fast.yaml"


def _counts() -> tuple[int, ...]:
    with session_scope() as session:
        return tuple(
            session.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("incident", "drill", "deadline", "notification", "audit_event")
        )


def test_scenarios_shipped_load_and_bad_ones_are_refused_by_line(tmp_path):
    from kernel.errors import InvalidInput
    from kernel.settings import PROJECT_ROOT
    from rules.drills import load_scenario

    for path in (PROJECT_ROOT / "data" / "drills").glob("*.yaml"):
        assert load_scenario(path).scenario.steps
    base = FAST.read_text(encoding="utf-8")
    cases = {
        # The initial report may come before the arrival (two lines); the final report may not.
        "out of order": (
            base.replace("step: arrival", "step: final-report", 1),
            "steps[0]: 'final-report' out of order, the lifecycle awaits arrival or initial-report",
        ),
        "a form field missing": (base.replace("officer: 张三, ", ""), "steps[0] (arrival): officer: Field required"),
        "time going back": (base.replace("at: 4h", "at: 1h"), "steps[2]: at 1h is earlier than the step before"),
        "working days": (base.replace("at: 40m", "at: 2wd"), "a drill's clock does not know working days"),
        "bad YAML": (base.replace("name: 测试演练 / test drill", "name: [unclosed"), "not valid YAML at line"),
        "unknown key": (base + "speed: 60\n", "speed: Extra inputs are not permitted"),
    }
    for what, (text, message) in cases.items():
        path = tmp_path / f"{what}.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(InvalidInput) as refused:
            load_scenario(path)
        assert message in str(refused.value), what
        assert "\n" not in str(refused.value)


def test_a_drill_runs_on_compressed_time_and_marks_everything(own_database):
    """Task level, both backends: ×60 turns the 1 h arrival limit into 60 s, the
    30 min escalation timeout into 30 s, and every message and document says drill."""
    from rules.drills import load_scenario
    from storage.deadlines import deadlines_for
    from storage.notifications import notifications_for
    from tasks import board, drills
    from tasks.incidents import answer

    now = utcnow()
    incident = drills.start(load_scenario(FAST), plan="product-quality", level="II", speed=60, now=now)
    with session_scope() as session:
        deadlines = {d.name: d for d in deadlines_for(session, subject=incident.number)}
        messages = notifications_for(session, subject=incident.number)
    arrival = deadlines["arrival"]
    assert arrival.due_at - arrival.starts_at == dt.timedelta(seconds=60)
    assert "演练 ×60 压缩为 1分0秒" in arrival.rule and "1 小时" in arrival.rule
    assert arrival.policy["escalation"]["ack_timeout_s"] == 30 and arrival.policy["reminders"]["overdue_every_s"] == 30
    assert messages and all(m.title.startswith("【演练 DRILL】") and "非真实事件" in m.body for m in messages)
    rows = board.board(now=now)["deadlines"]
    assert {r["title"] for r in rows if r["subject"] == incident.number} == {"【演练 DRILL】测试演练：电梯困人"}

    answer(incident.number, answer={"officer": "张三"}, source="drill", step="arrival", now=now)
    answer(
        incident.number,
        answer={"author": "李四", "text": "初报"},
        source="drill",
        step="initial-report",
        now=now + dt.timedelta(seconds=75),
    )  # 75 exercise minutes: late
    card = drills.finish(incident.number, outcome="interrupted", now=now + dt.timedelta(seconds=80))
    results = {d["name"]: d["result"] for d in card.scorecard["deadlines"]}
    assert results["arrival"] == "met" and results["initial_report"] == "late"
    assert results["dispatch"] == "met"  # the trigger dispatches, no flow run needed
    assert card.scorecard["steps"][1] == {"step": "initial-report", "at_s": 4500.0, "by": "李四", "source": "drill"}
    assert (
        "【演练 DRILL】演练评分" in card.document and "| 到场 arrival | 1h 00m | 0m 00s | 按时 met |" in card.document
    )
    again = drills.finish(incident.number, outcome="closed", now=now + dt.timedelta(seconds=99))
    assert again.scorecard == card.scorecard  # scored once


@pytest.mark.parametrize(
    "args,message",
    [
        (["no-such-plan", "--level", "II"], "unknown plan 'no-such-plan'"),
        (["product-quality", "--level", "V"], "level: Input should be"),
        (["product-quality", "--level", "II", "--speed", "0"], "speed: Input should be greater than or equal to 1"),
        (["product-quality", "--level", "II", "--scenario", "/nonexistent.yaml"], "no drill scenario file"),
    ],
)
def test_bad_drill_input_is_refused_with_nothing_written(own_database, args, message):
    before = _counts()
    result = cli("drill", *args)
    assert result.code == 2, result
    assert message in result.err and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert _counts() == before


@on_sqlite
def test_a_drill_end_to_end_on_the_platform(platform, use_database, receivers, tmp_path):
    from storage.drills import get_drill
    from storage.escalations import Escalation
    from storage.incidents import get_incident
    from storage.notifications import notifications_for
    from tasks.notify import load_channels

    token = uuid.uuid4().hex[:8]  # other tests' databases number their incidents from 1 too
    scenario = tmp_path / "drill.yaml"
    scenario.write_text(FAST.read_text(encoding="utf-8").replace("测试演练：电梯困人", f"测试演练 {token}"), "utf-8")
    result = cli(
        "drill",
        "product-quality",
        "--level",
        "II",
        "--speed",
        "1200",
        "--scenario",
        str(scenario),
        "--max-minutes",
        "3",
        "--json",
    )
    assert result.code == 0, result.err
    card = json.loads(result.out)
    number = card["number"]
    assert card["outcome"] == "closed"
    results = {d["name"]: d["result"] for d in card["deadlines"]}
    assert results["arrival"] == "met" and results["initial_report"] == "late"
    assert results["progress-1"] == "met" and results["final_report"] == "met" and results["review"] == "met"
    assert results["release"] == "met" and results["press_conference"] == "met"
    assert results["progress-2"] == "cancelled"  # handling ended before it fell due
    assert [s["step"] for s in card["steps"]] == [
        "arrival",
        "initial-report",
        "progress-1",
        "release-1",
        "handling-ended",
        "final-report",
        "review",
    ]
    assert {s["source"] for s in card["steps"]} == {"drill"}

    with session_scope() as session:
        incident = get_incident(session, number=number)
        run_id = incident.flow_run_id
        escalations = list(session.exec(sa.select(Escalation).where(Escalation.subject == number)).scalars())
        stored = get_drill(session, number=number)
        reminders = session.execute(
            sa.text("SELECT count(*) FROM audit_event WHERE subject = :n AND action = 'deadline.reminder'"),
            {"n": number},
        ).scalar_one()
    assert incident.drill and incident.time_scale == 1200 and incident.status == "closed"
    # The late initial report was reminded about and escalated, as a real miss would be.
    late = [e for e in escalations if e.deadline_id in _deadline_ids(number, "initial_report")]
    assert late and late[0].status == "acknowledged" and "演练模拟" in late[0].acked_by
    # At ×1200 a watcher cycle spans minutes of drill time; when one passes two marks of
    # a deadline it sends the latest reminder only, so how many is the machine's speed.
    assert card["escalations_raised"] == len(escalations) and card["reminders_sent"] == reminders >= 1
    assert stored.scorecard == card and stored.finished_at is not None
    assert card["messages_sent"] == card["messages_queued"] > 0  # scored once the outbox had drained

    # The run: marked as a drill, at its end stage, with scorecard and status artifacts.
    run = wait_until(
        lambda: (r := read_run(run_id)).state.type == StateType.COMPLETED and r,
        timeout=120,
        what="the drill's run to complete",
    )
    assert run.name.startswith(f"【演练 DRILL】{number}") and {"drill", "stage:closed"} <= set(run.tags)
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        latest = {
            a.key: a
            for a in client.read_latest_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
        }
    key = number.lower()
    assert {f"{key}-scorecard", f"{key}-timeline", f"{key}-deadlines", f"{key}-progress"} <= set(latest)
    assert latest[f"{key}-progress"].data == 100
    assert "演练评分" in latest[f"{key}-scorecard"].data
    assert "{{ 7*7 }}" in _report(number, "initial")  # user text stays text

    # Every message about it is marked as a drill and arrived once per destination.
    wait_until(lambda: all(n.status == "sent" for n in fresh(notifications_for, number)), what="all sent")
    sent = fresh(notifications_for, number)
    assert sent and all(n.title.startswith("【演练 DRILL】") for n in sent)
    channels = load_channels()
    expected = Counter(n.title for n in sent for _ in channels.destinations(n.tag))
    got = Counter(m.title for m in receivers.inbox.matching(token) if number in m.title)
    assert got == expected

    # The platform's watcher sealed everything on record into the audit hash chain.
    def sealed():
        result = cli("audit", "verify", "--json")
        verdict = json.loads(result.out)
        return result.code == 0 and verdict["unsealed"] == 0 and verdict["checked"] > 0

    wait_until(sealed, timeout=30, what="the watcher to seal the audit log")

    listed = cli("drills", "--json")
    assert any(d["number"] == number and d["score"] == card["score"] for d in json.loads(listed.out))


def _deadline_ids(number: str, name: str) -> set[int]:
    from storage.deadlines import deadlines_for

    with session_scope() as session:
        return {d.id for d in deadlines_for(session, subject=number) if d.name == name}


def _report(number: str, kind: str) -> str:
    from storage.incidents import reports_for

    with session_scope() as session:
        return next(r.document for r in reports_for(session, subject=number) if r.kind == kind)
