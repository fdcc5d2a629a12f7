"""Risk monitoring and recalls: 1,000 signals with repeats and near-duplicates grouped
into the expected items and graded; a death told to the duty desk at once; an
assessment missed and escalated; bad files refused whole by the drop folder; a snooze
that quiets a flood without losing it; each decision opening what it names, linked
both ways; a recall carried out under Order 19 whose summary comes late, escalated
and opening a lead; an enterprise's late report. The rules and storage with the
engine, without Prefect: the flows only walk these steps."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

import pendulum
import pytest
from prefect.flow_runs import resume_flow_run
from sqlmodel import func, select

from kernel.errors import InvalidInput, NotFound, StepConflict
from kernel.settings import get_settings
from rules.registers import uscc_check_character
from storage.cases import get_case
from storage.db import session_scope
from storage.deadlines import deadlines_for
from storage.escalations import list_escalations
from storage.incidents import get_incident
from storage.notifications import Notification
from storage.risk import RiskSignal, item_by_number
from tests.conftest import cli, on_postgresql

REGION = "330106"


def at(day: str, hour: int = 10) -> dt.datetime:
    return pendulum.parse(f"{day}T{hour:02d}:00:00", tz="Asia/Shanghai").in_timezone("UTC")


def uscc(n: int) -> str:
    first17 = f"91330106MB{n:07d}"
    return first17 + uscc_check_character(first17)


def signal(when: dt.datetime, **kw) -> dict:
    base = dict(
        source="complaint",
        category="电动自行车",
        product="电动自行车",
        model="XR-200",
        uscc=uscc(1),
        enterprise="某车业公司",
        region=REGION,
        harm="none",
        count=1,
        text="",
        at=when.isoformat(),
    )
    return {**base, **kw}


def ingest(rows: list[dict], now: dt.datetime):
    from rules.risk import parse_signal
    from tasks.risk import ingest as record

    return record([parse_signal(r, tz="Asia/Shanghai") for r in rows], by="测试员", now=now, deliver=False)


def tags(number: str, key: str = "") -> set[str]:
    with session_scope() as session:
        query = select(Notification.tag).where(Notification.subject == number)
        if key:
            query = query.where(Notification.key.contains(key))
        return set(session.exec(query))


def deadline(number: str, name: str):
    with session_scope() as session:
        return next(d for d in deadlines_for(session, subject=number) if d.name == name)


def answer(number: str, step: str, now: dt.datetime, **fields):
    from tasks.risk import answer as record

    return record(number, step=step, answer={"by": fields.pop("by", "李四"), **fields}, source="cli", now=now)


def test_a_thousand_signals_with_repeats_and_near_duplicates_group_into_the_expected_items(own_database, tmp_path):
    rnd = random.Random(20261205)
    start = at("2026-11-02")
    spellings = ("XR-{n}", "xr {n}", "ＸＲ－{n}", " XR{n} ", "Xr_{n}")  # one model, as people type it
    rows, expected = [], {}
    for h in range(20):  # 20 hazards: product model n by enterprise n
        for i in range(48):
            when = start + dt.timedelta(hours=10 * i, minutes=h)  # 17 in any 7 days: 二级, not 一级's 20
            model = rnd.choice(spellings).format(n=200 + h)
            harm = "death" if (h == 0 and i == 0) else "none"
            rows.append(signal(when, model=model, uscc=uscc(h), text=f"第{i}条", harm=harm))
        expected[uscc(h)] = 48
    # Hazard 20: three signals ten days apart, within the 30-day window of each other: one
    # item, 三级; hazard 21: two signals 40 days apart: two items.
    for d in (0, 10, 20):
        rows.append(signal(start + dt.timedelta(days=d), model="Q-1", uscc=uscc(20), text=f"q{d}"))
    rows += [
        signal(start - dt.timedelta(days=40), model="Z-9", uscc=uscc(21), text="z-early"),
        signal(start + dt.timedelta(days=1), model="Z-9", uscc=uscc(21), text="z-late"),
    ]
    rows += [dict(r) for r in rows[:35]]  # delivered twice: counted, nothing opened
    rnd.shuffle(rows)  # delivered in any order
    assert len(rows) == 1000
    path = tmp_path / "signals.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")

    from tasks.risk import ingest_file

    result = ingest_file(path, by="测试员", now=start + dt.timedelta(days=21))
    assert (result.signals, result.repeats) == (965, 35)
    assert len(result.opened) == 23 == len(result.items)
    with session_scope() as session:
        items = {n: item_by_number(session, n) for n in result.items}
        assert session.exec(select(func.count()).select_from(RiskSignal)).one() == 965
    by_enterprise: dict[str, list] = {}
    for item in items.values():
        by_enterprise.setdefault(item.uscc, []).append(item)
    assert all(len(by_enterprise[uscc(h)]) == 1 for h in range(21))
    assert len(by_enterprise[uscc(21)]) == 2
    repeats = {uscc(h): 0 for h in range(20)}
    seen: set[str] = set()
    for r in rows:
        text = json.dumps(r, sort_keys=True)
        repeats[r["uscc"]] = repeats.get(r["uscc"], 0) + (text in seen)
        seen.add(text)
    for h in range(20):  # every signal counted, a repeat too
        assert by_enterprise[uscc(h)][0].signals == 48 + repeats[uscc(h)]
    assert by_enterprise[uscc(0)][0].grade == "一级"  # a death
    assert {by_enterprise[uscc(h)][0].grade for h in range(1, 20)} == {"二级"}  # 48 within 20 days
    assert by_enterprise[uscc(20)][0].grade == "三级"

    again = ingest_file(path, by="测试员", now=start + dt.timedelta(days=22))
    assert (again.signals, again.repeats, again.opened) == (0, 1000, [])


def test_a_death_is_first_class_at_once_told_up_the_chain_and_a_missed_assessment_escalates(own_database):
    from tasks.deadlines import send_reminders

    now = at("2026-11-10")
    result = ingest([signal(now, harm="injury", model="D-1")], now)
    number = result.opened[0]
    assert item_by_number_grade(number) == "三级"
    assessment = deadline(number, "risk-assessment")
    assert "本局设定" in assessment.rule  # no statute sets it, and it says so
    later = now + dt.timedelta(hours=2)
    result = ingest([signal(later, harm="death", model="d 1", text="致死")], later)
    assert result.opened == [] and result.graver == [number] and result.urgent == [number]
    assert item_by_number_grade(number) == "一级"
    moved = deadline(number, "risk-assessment")
    assert moved.due_at == now + dt.timedelta(hours=24)  # brought forward to 一级's 24 hours
    assert {"330106.duty", "330106.head", "330100.duty"} <= tags(number, "graded-一级")

    send_reminders(moved.due_at + dt.timedelta(minutes=5))
    with session_scope() as session:
        assert [e for e in list_escalations(session) if e.subject == number and e.deadline_id == moved.id]


def item_by_number_grade(number: str) -> str:
    with session_scope() as session:
        return item_by_number(session, number).grade


def test_bad_files_are_refused_whole_and_a_snooze_quiets_a_flood_without_losing_it(own_database, tmp_path):
    from tasks.risk import snooze, watch_once

    drop = tmp_path / "drop"
    drop.mkdir()
    good = "source,category,product,model,uscc,region,harm,at\n" + "".join(
        f"complaint,电动自行车,电动自行车,W-1,{uscc(5)},{REGION},injury,2026-11-1{i} 09:00\n" for i in range(3)
    )
    (drop / "a-good.csv").write_text(good, encoding="utf-8")
    bad = good + f"complaint,电动自行车,电动自行车,W-1,{uscc(5)[:-1]}X,{REGION},none,2026-11-14 09:00\n"
    (drop / "b-bad.csv").write_text(bad, encoding="utf-8")
    (drop / "c-region.jsonl").write_text(json.dumps(signal(at("2026-11-12"), region="999999")), encoding="utf-8")
    (drop / "d-writing.part").write_text("half", encoding="utf-8")
    with session_scope() as session:
        before = session.exec(select(func.count()).select_from(RiskSignal)).one()
    done = dict(watch_once(drop, by="监测点", now=at("2026-11-15")))
    assert done["a-good.csv"].startswith("3 signals")
    assert "b-bad.csv:5: " in done["b-bad.csv"] and "check character" in done["b-bad.csv"]
    assert "999999" in done["c-region.jsonl"]
    assert (drop / "read" / "a-good.csv").exists() and (drop / "rejected" / "b-bad.csv").exists()
    assert "b-bad.csv:5" in (drop / "rejected" / "b-bad.csv.reason").read_text(encoding="utf-8")
    assert (drop / "d-writing.part").exists()  # still being written: left alone
    (drop / "e-later.csv").write_text(good.replace(uscc(5), uscc(6)), encoding="utf-8")
    watched = cli("signal", "watch", str(drop), "--once", "--by", "监测点")
    assert watched.code == 0 and "e-later.csv: 3 signals" in watched.out
    with session_scope() as session:
        assert session.exec(select(func.count()).select_from(RiskSignal)).one() == before + 6  # nothing of the bad ones

    number = item_for(uscc(5))
    with pytest.raises(InvalidInput, match="at most 7d"):
        snooze(number, period="8d", reason="同一批次集中投诉", by="赵六", now=at("2026-11-15"))
    snooze(number, period="2d", reason="同一批次集中投诉", by="赵六", now=at("2026-11-15"))
    before = len(tags_rows(number))
    ingest(
        [signal(at("2026-11-15", 12), model="W-1", uscc=uscc(5), harm="injury", text="又一起")], at("2026-11-15", 12)
    )
    assert len(tags_rows(number)) == before  # quiet
    with session_scope() as session:
        assert item_by_number(session, number).signals == 4  # but counted
    ingest([signal(at("2026-11-18"), model="W-1", uscc=uscc(5), harm="injury", text="两日后")], at("2026-11-18"))
    assert len(tags_rows(number)) > before  # the snooze is over
    assert cli("signal", "snooze", number, "--for", "1h", "--reason", "x", "--by", "路人甲").code != 0


def tags_rows(number: str) -> list:
    with session_scope() as session:
        return list(session.exec(select(Notification.id).where(Notification.subject == number)))


def item_for(code: str) -> str:
    from tasks.risk import listing

    return next(r["number"] for r in listing(kind="risk") if r["uscc"] == code)


def test_each_decision_opens_what_it_names_linked_both_ways(own_database, tmp_path):
    now = at("2026-11-16")
    numbers = {}
    for i, outcome in enumerate(("warning", "recall", "incident", "close", "spot_check")):
        numbers[outcome] = ingest(
            [signal(now, model=f"M-{i}", uscc=uscc(30 + i), enterprise=f"<b>企业{i}</b>")], now
        ).opened[0]
        answer(numbers[outcome], "risk-assessment", now, hazard="电池起火", exposure="在用 3000 辆", grade="二级")
    with pytest.raises(InvalidInput, match="warning"):
        answer(numbers["warning"], "risk-decision", now, by="赵六", outcome="warning")
    warning = "<script>alert(1)</script>请勿在室内充电"
    answer(numbers["warning"], "risk-decision", now, by="赵六", outcome="warning", warning=warning)
    page = (get_settings().home / "public" / "warnings" / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert "330106.public" in tags(numbers["warning"], "warning")
    with session_scope() as session:
        assert get_case(session, number=numbers["warning"]).status == "closed"
    # Drafted by the handler with the assessment, approved as it stands by the head.
    drafted = ingest([signal(now, model="M-9", uscc=uscc(39))], now).opened[0]
    answer(
        drafted,
        "risk-assessment",
        now,
        hazard="电池起火",
        exposure="在用",
        grade="三级",
        draft_warning="请选购合格充电器",
    )
    answer(drafted, "risk-decision", now, by="赵六", outcome="warning")
    assert "请选购合格充电器" in (get_settings().home / "public" / "warnings" / "index.json").read_text(
        encoding="utf-8"
    )

    answer(numbers["recall"], "risk-decision", now, by="赵六", outcome="recall")
    with session_scope() as session:
        item = get_case(session, number=numbers["recall"])
        recall = get_case(session, number=item.facts["recall"])
        assert recall.linked_to == item.number and recall.kind == "recall" and item.status == "open"
    with pytest.raises(StepConflict, match="still"):
        answer(numbers["recall"], "risk-outcome", now)
    recall_number = recall.number
    for args, shown in (
        (("risk", "show", numbers["recall"]), recall_number),
        (("recall", "show", recall_number), "recall-investigation"),
        (("risk", "list"), numbers["recall"]),
        (("recall", "list"), recall_number),
        (("signal", "list"), numbers["recall"]),
    ):
        for more in ((), ("--json",)):  # read as people and as programs do
            read = cli(*args, *more)
            assert read.code == 0 and shown in read.out, (args, more, read.err)

    answer(
        numbers["incident"], "risk-decision", now, by="赵六", outcome="incident", plan="product-quality", level="III"
    )
    with session_scope() as session:
        item = get_case(session, number=numbers["incident"])
        incident = get_incident(session, number=item.facts["incident"])
        assert incident.origin == item.number and incident.level == "III"
    with pytest.raises(StepConflict, match="not closed"):
        answer(numbers["incident"], "risk-outcome", now)

    from storage.campaigns import get_campaign
    from tasks import campaigns
    from tests.test_samples import campaign as plan_file

    with pytest.raises(NotFound, match="campaign create"):
        answer(numbers["spot_check"], "risk-decision", now, by="赵六", outcome="spot_check", campaign="risk-m4")
    campaigns.create(plan_file(tmp_path, "risk-m4"), by="赵六", now=now)
    answer(numbers["spot_check"], "risk-decision", now, by="赵六", outcome="spot_check", campaign="risk-m4")
    with session_scope() as session:
        assert get_campaign(session, key="risk-m4").risk_item == numbers["spot_check"]
        assert get_case(session, number=numbers["spot_check"]).facts["campaign"] == "risk-m4"
    with pytest.raises(StepConflict, match="not published"):
        answer(numbers["spot_check"], "risk-outcome", now)

    with pytest.raises(InvalidInput, match="reason"):
        answer(numbers["close"], "risk-decision", now, by="赵六", outcome="close")
    answer(numbers["close"], "risk-decision", now, by="赵六", outcome="close", text="经评估为个例")
    with session_scope() as session:
        assert get_case(session, number=numbers["close"]).outcome == "close"


def test_a_recall_under_order_19_late_summary_escalates_and_opens_a_lead(own_database):
    from tasks.deadlines import send_reminders
    from tasks.risk import open_recall, progress

    with pytest.raises(InvalidInput, match="check character"):
        open_recall(
            uscc=uscc(40)[:-1] + "X",
            producer="某公司",
            product="XR",
            authority=REGION,
            voluntary=False,
            defect_on=None,
            by="李四",
            now=at("2026-09-01"),
        )
    number = open_recall(
        uscc=uscc(40),
        producer="某车业公司",
        product="XR-200",
        authority=REGION,
        voluntary=False,
        defect_on=None,
        by="李四",
        now=at("2026-09-01"),
    )
    # Within 3 working days of finding it (Art. 9): 2, 3, 4 September.
    assert deadline(number, "recall-investigation").due_at == at("2026-09-04", 23) + dt.timedelta(
        minutes=59, seconds=59
    )
    answer(number, "recall-investigation", at("2026-09-02"), served_on="2026-09-02", findings_by="2026-09-20")
    answer(number, "recall-findings", at("2026-09-18"), defect=True)
    answer(number, "recall-notice", at("2026-09-21"), by="赵六", served_on="2026-09-21")
    # 10 working days from 21 September, across the Mid-Autumn (25-27 Sep) and National Day
    # (1-7 Oct) holidays, Saturday 10 October worked: 22-24, 28-30 Sep, 8, 9, 10, 12 Oct.
    plan_due = deadline(number, "recall-plan").due_at
    assert pendulum.instance(plan_due).in_timezone("Asia/Shanghai").date() == dt.date(2026, 10, 12)
    answer(number, "recall-plan", at("2026-10-09"), filed_on="2026-10-09", affected=1000)
    answer(number, "recall-public-notice", at("2026-10-12"), published_on="2026-10-12", where="企业官网")
    assert pendulum.instance(deadline(number, "recall-progress-1").due_at).in_timezone(
        "Asia/Shanghai"
    ).date() == dt.date(2027, 1, 11)  # three months from 9 October, 9 January a Saturday
    with pytest.raises(StepConflict, match="completion first"):
        answer(number, "recall-summary", at("2026-12-01"), recalled=500)
    progress(number, recalled=400, completed_on=None, by="李四", now=at("2026-12-01"))
    assert deadline(number, "recall-progress-1").status == "met"
    progress(number, recalled=600, completed_on=dt.date(2026, 12, 10), by="李四", now=at("2026-12-10"))
    assert deadline(number, "recall-progress-2").status == "met"
    summary = deadline(number, "recall-summary")
    assert "第二十一条" in summary.rule or "15" in summary.rule
    late = summary.due_at + dt.timedelta(minutes=5)
    send_reminders(late)  # the producer's summary is late: escalated, and the watcher's sweep opens a lead
    from tasks.risk import leads_for_missed

    assert len(leads_for_missed(late)) == 1 and leads_for_missed(late) == []  # once
    with session_scope() as session:
        case = get_case(session, number=number)
        assert [e for e in list_escalations(session) if e.subject == number and e.deadline_id == summary.id]
        lead = get_case(session, number=case.facts["leads"][0])
        assert lead.source == "recall" and lead.linked_to == number and lead.party == "某车业公司"
    answer(number, "recall-summary", at("2027-01-05"), recalled=600)
    with pytest.raises(InvalidInput, match="below the target"):
        answer(number, "recall-assessment", at("2027-01-06"), by="赵六", effective=True)
    answer(number, "recall-assessment", at("2027-01-06"), by="赵六", effective=False)
    answer(number, "recall-again", at("2027-01-07"), by="赵六", served_on="2027-01-07")
    with session_scope() as session:
        case = get_case(session, number=number)
        again = get_case(session, number=case.facts["again"])
        assert case.status == "closed" and again.linked_to == number and again.stage == "recall-plan"


def test_an_enterprise_reporting_late_opens_a_lead(own_database):
    learned = "2026-11-02"
    on_time = ingest(
        [
            signal(
                at("2026-11-04", 9), source="enterprise_report", learned_on=learned, harm="serious_injury", model="E-1"
            )
        ],
        at("2026-11-04", 9),
    )
    assert on_time.late_reports == []
    late = ingest(
        [
            signal(
                at("2026-11-06", 9), source="enterprise_report", learned_on=learned, harm="serious_injury", model="E-2"
            )
        ],
        at("2026-11-06", 9),
    )
    assert len(late.late_reports) == 1
    with session_scope() as session:
        lead = get_case(session, number=late.late_reports[0])
        assert lead.source == "recall" and "第八条" in lead.detail
        assert "生产者报告（条文未核实 unconfirmed）" in lead.detail
    with pytest.raises(InvalidInput, match="learned_on"):
        ingest([signal(at("2026-11-06"), source="enterprise_report", model="E-3")], at("2026-11-06"))


@on_postgresql
def test_a_signal_from_the_run_form_a_risk_run_and_its_recall_run_answered_from_the_cli_and_the_ui(
    platform, use_database
):
    """On a real Prefect server: the signal-ingest deployment's Run form opens a 一级
    item, whose run waits for each step; the decision (the UI's Resume) opens a recall
    with its own run; the quarterly review lists both; the item closes only after the
    recall has ended."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from tests.conftest import read_run, wait_for_pause, wait_until

    model = f"UI-{uuid.uuid4().hex[:6]}"
    run = run_deployment(
        "signal-ingest/signal-ingest",
        timeout=120,
        as_subflow=False,
        parameters=dict(
            source="injury_monitoring",
            category="电动自行车",
            product="电动自行车",
            model=model,
            uscc=uscc(90),
            enterprise="某车业公司",
            region=REGION,
            harm="death",
            text="充电起火致死",
            by="测试员",
        ),
    )
    assert read_run(run.id).state.is_completed()
    number = item_for(uscc(90))
    assert "330100.duty" in tags(number, "opened")  # 一级: told up the chain at once

    def item_run():
        with session_scope() as session:
            return get_case(session, number=number).flow_run_id

    risk_run = wait_until(item_run, timeout=60, what="the risk item's run (started by the watcher)")
    wait_for_pause(risk_run, "risk-assessment")
    done = cli(
        "risk",
        "assess",
        number,
        "--hazard",
        "电池热失控",
        "--exposure",
        "在用约 3000 辆",
        "--grade",
        "一级",
        "--by",
        "李四",
        "--json",
    )
    assert done.code == 0, done.err
    wait_for_pause(risk_run, "risk-decision")
    resume_flow_run(
        risk_run,
        run_input={
            "by": "赵六",
            "outcome": "recall",
            "warning": "",
            "campaign": "",
            "plan": "",
            "level": "",
            "text": "组织缺陷调查",
        },
    )
    wait_for_pause(risk_run, "risk-outcome")
    recall = json.loads(cli("risk", "show", number, "--json").out)["links"]["recall"]

    def recall_run():
        with session_scope() as session:
            return get_case(session, number=recall).flow_run_id

    run_id = wait_until(recall_run, timeout=60, what="the recall's own run")
    wait_for_pause(run_id, "recall-investigation")

    review = run_deployment(
        "risk-review/risk-review", timeout=120, as_subflow=False, parameters={"authority": "330100"}
    )
    assert read_run(review.id).state.is_completed()
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[review.id]))
        )
    assert len(found) == 1 and found[0].key.startswith("risk-review-330100-")
    assert number in found[0].data and recall in found[0].data  # a district's items are the city's to review

    refused = cli("risk", "done", number, "--by", "李四")
    assert refused.code != 0 and "still" in refused.err
    today = str(dt.datetime.now(dt.timezone.utc).astimezone(dt.timezone(dt.timedelta(hours=8))).date())
    later = str(dt.date.fromisoformat(today) + dt.timedelta(days=10))
    done = cli("recall", "investigate", recall, "--served-on", today, "--findings-by", later, "--by", "李四", "--json")
    assert done.code == 0, done.err
    wait_for_pause(run_id, "recall-findings")
    resume_flow_run(run_id, run_input={"by": "李四", "defect": False, "text": "未发现缺陷"})
    wait_until(lambda: read_run(run_id).state.is_completed(), timeout=90, what="the recall run to complete")
    assert cli("risk", "done", number, "--by", "李四", "--json").code == 0
    wait_until(lambda: read_run(risk_run).state.is_completed(), timeout=90, what="the risk run to complete")

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("risk-review/risk-review")
    crons = {(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules}
    assert crons == {("0 9 1 1,4,7,10 *", "Asia/Shanghai")} and len(deployment.schedules) == 8
