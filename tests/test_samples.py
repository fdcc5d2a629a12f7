"""Spot-check samples: each drawn target walked from sampling to its final result on the
lifecycle engine (blind code, the objection window across the 2026 holidays, a re-test by
another lab, the order to rectify opening a lead and asking the producer's authority,
the re-check), one publication with hostile names shown as text in a real browser, a
correction replacing the published result, the repeated-check bar; then the same through
real Prefect runs, answered from the CLI and the UI's resume call. The rules and storage
tests need no Prefect."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import uuid
from pathlib import Path

import pendulum
import pytest
from prefect.flow_runs import resume_flow_run

from kernel.errors import Forbidden, InvalidInput, StepConflict
from kernel.settings import PROJECT_ROOT, get_settings
from rules.calendar import load_calendar
from rules.registers import uscc_check_character
from storage.cases import get_case
from storage.db import session_scope
from storage.deadlines import deadlines_for
from storage.samples import sample_by_number
from storage.steps import get_step
from tests.conftest import cli, on_postgresql, read_run, wait_for_pause, wait_until

REGISTERS = PROJECT_ROOT / "data" / "registers"
PLAN = PROJECT_ROOT / "data" / "campaigns" / "example.yaml"
LAB, OTHER_LAB = "浙江省产品质量安全检测研究院", "杭州市质量技术监督检测院"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HOSTILE = "<script>alert('x')</script>&<b>某某</b>"
FORMULA = '=HYPERLINK("http://x","y")公司'


def at(day: str, hour: int = 10) -> dt.datetime:
    return pendulum.parse(f"{day}T{hour:02d}:00:00", tz="Asia/Shanghai").in_timezone("UTC")


def local_day(value: dt.datetime) -> dt.date:
    return pendulum.instance(value).in_timezone("Asia/Shanghai").date()


def campaign(tmp_path: Path, key: str, *, window: str | None = None, targets: Path | None = None) -> Path:
    assert cli("register", "import", "targets", str(targets or REGISTERS / "targets.csv"), "--by", "赵六").code == 0
    assert cli("register", "import", "inspectors", str(REGISTERS / "inspectors.csv"), "--by", "赵六").code == 0
    text = PLAN.read_text(encoding="utf-8").replace("key: 2027-q1-xihu", f"key: {key}")
    if window:
        text = text.replace("{start: 2027-01-05, end: 2027-03-31}", window)
    path = tmp_path / f"{key}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def drawn_samples(tmp_path: Path, key: str, now: dt.datetime, **kw) -> list[str]:
    from tasks import campaigns, samples

    campaigns.create(campaign(tmp_path, key, **kw), by="赵六", now=now)
    campaigns.run_draw(key, by="赵六", now=now, seed=7)
    numbers = samples.create_samples(key, now=now)
    assert samples.create_samples(key, now=now) == numbers  # once: a re-run finds them
    return numbers


def answer(number: str, step: str, now: dt.datetime, **fields):
    from tasks.samples import answer as record

    return record(number, step=step, answer={"by": fields.pop("by", "李四"), **fields}, source="cli", now=now)


def sampler(number: str) -> str:
    with session_scope() as session:
        return get_case(session, number=number).facts["inspector_names"][0]


def row(number: str):
    with session_scope() as session:
        return sample_by_number(session, number)


def deadline(number: str, name: str):
    with session_scope() as session:
        return next(d for d in deadlines_for(session, subject=number) if d.name == name)


def record_sample(number: str, now: dt.datetime, **more) -> str:
    answer(number, "sampling", now, by=sampler(number), product="电动自行车", batch="20260801", quantity="2 台",
           sampled_on=str(local_day(now)), **more)  # fmt: skip
    return row(number).blind_code


def _working_days(start: dt.date, n: int) -> dt.date:
    calendar = load_calendar(get_settings().calendar_override)
    day, counted = start, 0
    while counted < n:
        day += dt.timedelta(days=1)
        counted += calendar.is_workday(day)
    return day


def test_one_publication_with_hostile_names_a_correction_and_the_repeat_bar(own_database, tmp_path):
    """First in this module: its register holds only the hostile names."""
    from tasks import campaigns, samples

    rows = list(csv.DictReader(io.StringIO((REGISTERS / "targets.csv").read_text(encoding="utf-8"))))
    for i, r in enumerate(rows):  # other enterprises than the first test's, under their own codes
        r["name"] = f"{(HOSTILE, FORMULA)[i % 2]}{i}"
        first17 = f"91330106MA{i:07d}"
        r["uscc"] = first17 + uscc_check_character(first17)
    hostile = tmp_path / "targets.csv"
    with hostile.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    numbers = drawn_samples(tmp_path, "smp-pub", at("2026-09-01"), targets=hostile)
    for n in numbers:
        code = record_sample(n, at("2026-09-10"))
        answer(n, "testing", at("2026-09-25"), by="测试员", blind_code=code, lab=LAB, report_no=f"R-{n}", passed=True)
        answer(n, "pass-notice", at("2026-09-28"), served_on="2026-09-28")
        # Due within 20 working days of the final result (the 2026 holidays not counted).
        assert local_day(deadline(n, "publication").due_at) == _working_days(dt.date(2026, 9, 25), 20)
    with pytest.raises(Forbidden):
        samples.publish("smp-pub", by="路人甲", now=at("2026-10-10"))
    result = samples.publish("smp-pub", by="赵六", now=at("2026-10-10"))
    assert sorted(result["published"]) == sorted(numbers)
    assert {deadline(n, "publication").status for n in numbers} == {"met"}
    with pytest.raises(StepConflict, match="no final result is waiting"):
        samples.publish("smp-pub", by="赵六", now=at("2026-10-11"))

    public = get_settings().home / "public" / "spot-checks"
    page = (public / "smp-pub.html").read_text(encoding="utf-8")
    names = {r["enterprise"] for r in json.loads((public / "smp-pub.json").read_text(encoding="utf-8"))["results"]}
    assert all(n.startswith((HOSTILE, FORMULA)) for n in names)
    assert "<script" not in page and "<b>" not in page
    feed = list(csv.DictReader(io.StringIO((public / "smp-pub.csv").read_text(encoding="utf-8"))))
    assert all(not r["enterprise"].startswith("=") for r in feed)  # a spreadsheet shows text, not a formula
    assert any(r["enterprise"].startswith("'=") for r in feed) or all(n.startswith(HOSTILE) for n in names)
    assert {r["uscc"] for r in feed} == {row(n).uscc for n in numbers}
    for secret in ("BL-", "inspector", "wangwu", "lisi"):  # no blind code, no inspector
        assert secret not in page and secret not in (public / "smp-pub.json").read_text(encoding="utf-8")

    # A corrected result replaces the published one; the correction is on record.
    with pytest.raises(InvalidInput, match="reason"):
        samples.correct(numbers[0], passed=False, failing_items="标识", reason=" ", by="赵六", now=at("2026-10-12"))
    samples.correct(numbers[0], passed=False, failing_items="标识", reason="报告录入错误", by="赵六",
                    now=at("2026-10-12"))  # fmt: skip
    assert deadline(numbers[0], "republication-1").status == "open"
    again = samples.publish("smp-pub", by="赵六", now=at("2026-10-13"))
    assert again["published"] == [numbers[0]] and again["publication"] == 2
    feed = json.loads((public / "smp-pub.json").read_text(encoding="utf-8"))["results"]
    fixed = next(r for r in feed if r["number"] == numbers[0])
    assert (fixed["result"], fixed["failing_items"], fixed["corrected"]) == ("fail", "标识", True)
    assert "结果已更正" in (public / "smp-pub.html").read_text(encoding="utf-8")

    # The same authority may not check the same producer's product again within the bar
    # (six months, unconfirmed) from its sampling; after it, it may.
    checked = {f"{row(n).uscc}|{row(n).category}" for n in numbers}
    soon = campaign(tmp_path, "smp-soon", window="{start: 2027-02-01, end: 2027-03-31}", targets=hostile)
    campaigns.create(soon, by="赵六", now=at("2026-10-20"))
    drawn = campaigns.run_draw("smp-soon", by="赵六", now=at("2026-10-20"), seed=7)
    assert checked.isdisjoint(f"{s['uscc']}|{s['category']}" for s in drawn.samples)
    reasons = drawn.snapshot["excluded"]
    assert checked <= set(reasons)
    assert all(reasons[k].startswith("checked by 330106 in smp-pub (2026-09-10), within 6mo") for k in checked)
    assert all("unconfirmed" in reasons[k] for k in checked)
    later = campaign(tmp_path, "smp-later", window="{start: 2027-03-11, end: 2027-04-30}", targets=hostile)
    campaigns.create(later, by="赵六", now=at("2026-10-20"))
    drawn = campaigns.run_draw("smp-later", by="赵六", now=at("2026-10-20"), seed=7)
    assert not [r for r in drawn.snapshot["excluded"].values() if "smp-pub" in r]  # past the bar


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_real_browser_shows_hostile_names_on_the_public_page_as_text(own_database):
    """No script runs, no markup is made: exactly the text given is shown."""
    from playwright.sync_api import sync_playwright

    from rules.samples import public_row
    from tasks.samples import write_public
    from tests.test_ui import CHROMIUM_ARGS

    names = {f"{HOSTILE}{i}" for i in range(3)} | {FORMULA}
    rows = [public_row({"number": f"SMP-{i}", "enterprise": n, "result": "pass"}) for i, n in enumerate(sorted(names))]
    page = next(p for p in write_public("smp-browser", "<i>抽查</i>", rows, at("2026-10-10")) if p.suffix == ".html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page()
        dialogs = []
        tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        tab.goto(page.as_uri())
        shown = tab.locator("tbody tr td:nth-child(3)").all_inner_texts()
        made = tab.locator("tbody b, body p i").count()
        browser.close()
    assert dialogs == [] and made == 0
    assert set(shown) == names


def test_a_failing_sample_from_sampling_to_re_check(own_database, tmp_path):
    [number, *_] = drawn_samples(tmp_path, "smp-fail", at("2026-09-01"))
    # Only an inspector drawn for it samples; the refusal leaves the step awaited.
    with pytest.raises(InvalidInput, match="was not drawn for"):
        answer(number, "sampling", at("2026-09-10"), by="测试员", product="p", batch="b", quantity="1",
               sampled_on="2026-09-10")  # fmt: skip
    code = record_sample(number, at("2026-09-10"), producer="外地某厂", producer_authority="330108")
    assert code.startswith("BL-") and row(number).blind_code == code
    assert deadline(number, "testing").due_at == at("2026-09-30", 0) + dt.timedelta(hours=23, minutes=59, seconds=59)

    # The lab enters its result against the blind code, never the enterprise's name.
    from tasks.samples import lab_view

    seen = json.dumps(lab_view(code), default=str, ensure_ascii=False)
    assert code in seen and row(number).enterprise not in seen and row(number).uscc not in seen
    for wrong, message in (({"blind_code": "BL-00000-00000"}, "is not this sample's"),
                           ({"lab": "某某检测公司"}, "is not one of the campaign's labs")):  # fmt: skip
        fields = dict(blind_code=code, lab=LAB, report_no="R1", passed=False, failing_items="制动性能") | wrong
        with pytest.raises(InvalidInput, match=message):
            answer(number, "testing", at("2026-09-15"), by="测试员", **fields)
    with session_scope() as session:
        step = get_step(session, subject=number, name="testing")
        assert step is None or step.status == "awaiting"  # nothing half written
    answer(number, "testing", at("2026-09-15"), by="测试员", blind_code=code.lower(), lab=LAB, report_no="R1",
           passed=False, failing_items="制动性能")  # fmt: skip
    answer(number, "result-notice", at("2026-09-21"), served_on="2026-09-20")

    # 15 days from 2026-09-20 is 10-05, inside the National Day holiday: the period ends
    # on the next working day (the deadline's own arithmetic says so in words).
    window = deadline(number, "objection")
    last = local_day(window.due_at)
    calendar = load_calendar(get_settings().calendar_override)
    assert last > dt.date(2026, 10, 5) and calendar.is_workday(last) and "顺延" in window.rule
    assert all(not calendar.is_workday(dt.date(2026, 10, 5) + dt.timedelta(days=i))
               for i in range((last - dt.date(2026, 10, 5)).days))  # fmt: skip
    with pytest.raises(InvalidInput, match="the objection period runs until"):
        answer(number, "objection", at("2026-09-25"), objected=False)
    day_after = last + dt.timedelta(days=1)
    with pytest.raises(InvalidInput, match="after the period ended"):
        answer(number, "objection", at(str(day_after)), objected=True, received_on=str(day_after))
    answer(number, "objection", at(str(day_after)), objected=True, received_on=str(last))  # the last day: in time

    with pytest.raises(InvalidInput, match="by another lab"):
        answer(number, "retest", at("2026-10-20"), by="测试员", blind_code=code, lab=LAB, report_no="R2", passed=False,
               failing_items="制动性能")  # fmt: skip
    answer(number, "retest", at("2026-10-20"), by="x", blind_code=code, lab=OTHER_LAB, report_no="R2",
           passed=False, failing_items="制动性能")  # fmt: skip
    assert row(number).result == "fail"
    publication = deadline(number, "publication")
    assert publication.status == "open" and local_day(publication.due_at) == _working_days(dt.date(2026, 10, 20), 20)

    answer(number, "rectification-order", at("2026-10-23"), served_on="2026-10-22")
    with session_scope() as session:
        sample = get_case(session, number=number)
        lead = get_case(session, number=sample.facts["lead"])
        assert (lead.kind, lead.source, lead.linked_to, lead.party) == ("case", "spot_check", number, sample.party)
        owed = {d.name: d for d in deadlines_for(session, subject=number)}
    assert owed["assistance-1"].authority == "330108"  # the producer's own authority is asked to assist
    # Re-check within 75 days of the order (Order 18 Art. 47, marked unconfirmed in its rule).
    assert local_day(owed["recheck"].due_at) >= dt.date(2026, 10, 22) + dt.timedelta(days=75)
    assert "unconfirmed" in owed["recheck"].rule
    answer(number, "recheck", at("2026-12-01"), by=sampler(number), passed=True)
    with session_scope() as session:
        sample = get_case(session, number=number)
        assert (sample.status, sample.outcome) == ("closed", "rectified")
    assert deadline(number, "publication").status == "open"  # the campaign still owes its publication


@on_postgresql
def test_a_campaign_run_and_a_sample_run_answered_from_the_cli_and_the_ui(platform, use_database, tmp_path):
    key = f"e2e-{uuid.uuid4().hex[:6]}"
    plan = campaign(tmp_path, key)
    assert cli("campaign", "create", str(plan), "--by", "赵六").code == 0
    drawn = cli("campaign", "draw", key, "--seed", "3", "--by", "赵六", "--json")
    assert drawn.code == 0, drawn.err
    campaign_run = uuid.UUID(json.loads(cli("campaign", "show", key, "--json").out)["flow_run_id"])

    def created():
        found = json.loads(cli("campaign", "show", key, "--json").out)["created"]
        return found if len(found) == 3 else None

    number = wait_until(created, timeout=120, what="the campaign's run to create its samples")[0]["number"]
    run_id = wait_until(lambda: row_run(number), timeout=60, what="the sample's run")
    wait_for_pause(run_id, "sampling")
    today = str(local_day(dt.datetime.now(dt.timezone.utc)))

    def step(*args: str, pause: str | None) -> None:
        done = cli("sample", *args, "--json")
        assert done.code == 0, done.err
        if pause:
            wait_for_pause(run_id, pause)

    step("record", number, "--product", "电动自行车", "--batch", "B1", "--quantity", "2", "--by", sampler(number),
         pause="testing")  # fmt: skip
    code = row(number).blind_code
    seen = cli("sample", "lab", code)
    assert seen.code == 0 and code in seen.out and row(number).enterprise not in seen.out
    step("result", code, "--fail", "--items", "制动性能", "--lab", LAB, "--report", "R1", "--by", "测试员",
         pause="result-notice")  # fmt: skip
    step("notify", number, "--served-on", today, "--by", "李四", pause="objection")
    step("objection", number, "--received-on", today, "--by", "李四", pause="retest")
    step("retest", code, "--fail", "--items", "制动性能", "--lab", OTHER_LAB, "--report", "R2", "--by", "x",
         pause="rectification-order")  # fmt: skip
    step("rectify", number, "--served-on", today, "--by", "李四", pause="recheck")
    with session_scope() as session:
        lead = get_case(session, number=get_case(session, number=number).facts["lead"]).number

    def lead_run():
        with session_scope() as session:
            return get_case(session, number=lead).flow_run_id

    wait_until(lead_run, timeout=60, what="the lead's own enforcement-case run")
    # The UI's form answers the last step, as a supervisor's Resume does.
    resume_flow_run(run_id, run_input={"by": sampler(number), "passed": True, "failing_items": "", "text": ""})
    wait_until(lambda: read_run(run_id).state.is_completed(), timeout=90, what="the sample run to complete")
    assert json.loads(cli("sample", "show", number, "--json").out)["outcome"] == "rectified"

    published = cli("campaign", "publish", key, "--by", "赵六", "--json")
    assert published.code == 0, published.err and json.loads(published.out)["published"] == [number]
    progress = json.loads(cli("campaign", "progress", key, "--json").out)
    assert progress["by_category"][row(number).category]["failed"] == 1

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[campaign_run])))}  # fmt: skip
    assert {f"campaign-{key}-progress", f"campaign-{key}-late", f"campaign-{key}-published"} <= keys


def row_run(number: str):
    with session_scope() as session:
        return get_case(session, number=number).flow_run_id
