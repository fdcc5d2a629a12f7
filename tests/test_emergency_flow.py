"""The emergency-response lifecycle end to end: a real Prefect server and worker,
the CLI as a duty officer uses it, the resume call the UI form makes, and the
loopback receivers counting what was delivered."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run

from storage.db import session_scope
from storage.deadlines import deadlines_for
from storage.incidents import get_incident, reports_for
from storage.notifications import notifications_for
from tasks.notify import load_channels
from tests.conftest import TOKEN, cli, fresh, on_sqlite, prefect_client, read_run, shell, wait_for_pause, wait_until


def trigger(**extra) -> dict:
    """Trigger through the CLI; title and location carry a token unique to this call,
    since each backend's database numbers its incidents from 1."""
    token = uuid.uuid4().hex[:8]
    args = {
        "--plan": "product-quality",
        "--level": "II",
        "--title": f"电梯困人 {token}",
        "--location": f"杭州市西湖区文三路 1 号 {token}",
        "--authority": "330106",
        "--reporter": "值班员",
        **extra,
    }
    result = cli("incident", "trigger", *[x for kv in args.items() for x in kv], "--json")
    assert result.code == 0, result.err
    return {**json.loads(result.out), "token": token}


@on_sqlite
def test_full_lifecycle_through_cli_and_ui_form(platform, use_database, receivers):
    started = trigger()
    number, run_id = started["number"], uuid.UUID(started["flow_run_id"])
    assert started["url"].endswith(f"/runs/flow-run/{run_id}")

    # The run suspends at "awaiting arrival", named after the incident, tagged, with its form.
    run = wait_for_pause(run_id, "arrival")
    assert run.name.startswith(f"{number} 电梯困人")
    assert {"level:II", "plan:product-quality", "authority:330106", "stage:arrival"} <= set(run.tags)
    with get_client(sync_client=True) as client:
        prompt = client.read_flow_run_input(run_id, "suspended-arrival-description")
        schema = json.loads(client.read_flow_run_input(run_id, "suspended-arrival-schema"))
    assert "截止时间 / Due" in prompt and number in prompt and "regflow incident arrive" in prompt
    assert set(schema["properties"]) == {"officer", "note"}

    assert cli("incident", "arrive", number, "--officer", "张三", "--note", "已封控").code == 0

    # The initial report through the UI path: the same call the Prefect UI's resume form makes.
    wait_for_pause(run_id, "initial-report")
    resume_flow_run(run_id, run_input={"author": "李四", "text": "初报：1 人被困，已救出，无伤亡。"})

    run = wait_for_pause(run_id, "progress-1")
    assert "stage:progress" in run.tags and "stage:arrival" not in run.tags
    assert cli("incident", "report", number, "--kind", "progress", "--text", "续报：设备已停用。").code == 0
    wait_for_pause(run_id, "progress-2")
    # The information release: drafted from the record, approved by the head, then updated.
    before = _counts()
    draft = cli("incident", "release", number, "--draft")
    assert (
        draft.code == 0
        and "启动《产品质量安全事件应急预案》II级应急响应" in draft.out
        and "续报：设备已停用。" in draft.out
    )
    assert _counts() == before  # a draft writes nothing
    assert cli("incident", "release", number, "--by", "赵六").code == 0
    update = cli(
        "incident", "release", number, "--by", "赵六", "--press-conference", "--text", "更新：同型号电梯抽检合格。"
    )
    assert update.code == 0, update.err
    # Handling ends on the on-site line while the run waits for progress report 2: the run
    # is put back to walk on, and the progress report is no longer due.
    assert cli("incident", "close", number, "--summary", "处置结束，现场恢复。").code == 0
    # Answered ahead: the run is restarting, not yet at the final report.
    assert cli("incident", "report", number, "--kind", "final", "--text", "终报：事件原因为制动器故障。").code == 0
    wait_for_pause(run_id, "review")
    assert cli("incident", "review", number, "--lessons", "响应及时；加强维保检查。").code == 0
    wait_until(lambda: read_run(run_id).state.type == StateType.COMPLETED, timeout=120, what="completion")

    # Twice, and out of order: clear one-line refusals that write nothing.
    wait_until(lambda: all(n.status == "sent" for n in fresh(notifications_for, number)), what="all sent")
    before = _counts()
    again = cli("incident", "arrive", number, "--officer", "张三")
    assert again.code == 4 and "already recorded" in again.err and again.err.count("\n") == 1
    late = cli("incident", "report", number, "--kind", "progress", "--text", "x")
    assert late.code == 4 and "is closed" in late.err
    assert _counts() == before

    with session_scope() as session:
        incident = get_incident(session, number=number)
        assert incident.status == "closed"
        deadlines = {d.name: d.status for d in deadlines_for(session, subject=incident.number)}
        kinds = [r.kind for r in reports_for(session, subject=incident.number)]
        sent = notifications_for(session, subject=number)
    assert deadlines == {
        "dispatch": "met",
        "arrival": "met",
        "initial_report": "met",
        "upward_report": "met",
        "progress-1": "met",
        "progress-2": "cancelled",
        "final_report": "met",
        "review": "met",
        "release": "met",
        "press_conference": "met",
    }
    assert kinds == ["initial", "progress", "release", "release", "closure", "final", "review"]
    public = [n for n in sent if n.tag == "330106.public"]
    assert [n.title.split("】")[0] for n in public] == ["【信息发布 1", "【信息发布 2（新闻发布会）"]

    # Every message delivered exactly once to every destination of its tag, although
    # the run re-ran from the top after each of its five suspensions.
    wait_until(lambda: all(n.status == "sent" for n in fresh(notifications_for, number)), what="all sent")
    channels = load_channels()
    expected = Counter()
    for n in fresh(notifications_for, number):
        for _fp, server in channels.destinations(n.tag):
            expected[(n.title, _receiver_address(server))] += 1
    got = Counter((m.title, m.to) for m in receivers.inbox.matching(started["token"]) if number in m.title)
    assert got == expected
    assert max(got.values()) == 1
    purposes = Counter(n.title.split("】")[0] for n in sent)
    # Level II: the district's duty and head, three superiors' duty desks, the district government's duty office.
    assert purposes["【应急响应启动"] == 6 and purposes["【出动指令"] == 1

    # Documents are artifacts, published once each.
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    keys = Counter(a.key for a in artifacts)
    documents = {
        f"{number.lower()}-{s}"
        for s in ("initial-report", "progress-1", "release-1", "release-2", "handling-ended", "final-report", "review")
    }
    status = {f"{number.lower()}-{s}" for s in ("timeline", "deadlines", "progress")}
    assert set(keys) == documents | status
    assert set(keys.values()) == {1}  # documents published once; status artifacts updated in place
    newest = {a.key: a for a in artifacts}
    assert newest[f"{number.lower()}-progress"].data == 100
    assert "派出现场处置组" in newest[f"{number.lower()}-timeline"].data
    table = json.loads(newest[f"{number.lower()}-deadlines"].data)
    assert {row["状态 status"] for row in table} == {"met", "cancelled"}
    assert "stage:closed" in read_run(run_id).tags

    shown = cli("incident", "show", number, "--json")
    data = json.loads(shown.out)
    assert data["status"] == "closed" and data["awaiting"] is None
    sources = {s["name"]: s["source"] for s in data["steps"] if s["source"]}
    assert sources == {"arrival": "cli", "initial-report": "ui", "progress-1": "cli", "release-1": "cli",
                       "release-2": "cli", "handling-ended": "cli", "final-report": "cli", "review": "cli"}  # fmt: skip
    assert TOKEN not in shown.out


def _receiver_address(server) -> str:
    """Where a receiver files a message from this server: the mail recipient or the HTTP path."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(server.url(privacy=False))
    return unquote(parts.path.lstrip("/")) if parts.scheme == "mailto" else unquote(parts.path)


@on_sqlite
def test_a_run_triggered_from_the_deployment_form_activates_itself(platform, use_database):
    """The UI's "Run" form passes the trigger parameters and no incident number."""
    from prefect.deployments import run_deployment

    run = run_deployment(
        "emergency-response/emergency-response",
        timeout=0,
        as_subflow=False,
        parameters=dict(
            plan="food-safety",
            level="III",
            title="学校食堂疑似食物中毒",
            location="南京市玄武区某小学",
            authority="320102",
        ),
    )
    paused = wait_for_pause(run.id, "arrival")
    number = paused.name.split()[0]
    assert number.startswith("INC-") and "plan:food-safety" in paused.tags
    with session_scope() as session:
        incident = get_incident(session, number=number)
        assert incident.flow_run_id == run.id and incident.level == "III"


@on_sqlite
def test_the_initial_report_does_not_wait_for_the_team_to_arrive(platform, use_database):
    """Level IV: 4 h to arrive, 1 h for the initial report. The reporting line runs
    beside the on-site line: the report is taken while the run waits for arrival."""
    started = trigger(**{"--level": "IV"})
    number, run_id = started["number"], uuid.UUID(started["flow_run_id"])
    run = wait_for_pause(run_id, "arrival")
    assert {"awaits:arrival", "awaits:initial-report"} <= set(run.tags)
    reported = cli("incident", "report", number, "--kind", "initial", "--text", "初报：冷柜断电，已下架。", "--json")
    assert reported.code == 0, reported.err
    assert json.loads(reported.out)["run"] == "pending"  # the run waits for arrival; it takes this later
    shown = json.loads(cli("incident", "show", number, "--json").out)
    assert shown["awaiting_all"] == ["arrival", "progress-1", "release-1"]
    met = {d["name"]: d for d in shown["deadlines"]}
    assert met["initial_report"]["status"] == met["upward_report"]["status"] == "met"
    run = read_run(run_id)
    assert run.state.state_details.pause_key == "arrival"  # still waiting for the team
    assert {"awaits:arrival", "awaits:progress-1"} <= set(run.tags) and "awaits:initial-report" not in run.tags

    assert cli("incident", "arrive", number, "--officer", "张三").code == 0
    run = wait_for_pause(run_id, "progress-1")  # past the initial report without asking for it again
    assert "awaits:progress-1" in run.tags and "awaits:arrival" not in run.tags
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    mine = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    keys = Counter(a.key for a in prefect_client().read_artifacts(artifact_filter=mine))
    assert keys[f"{number.lower()}-initial-report"] == 1

    # Re-graded while it waits: the run's level tag follows, its stage and awaits stay.
    assert cli("incident", "relevel", number, "--level", "II", "--reason", "影响扩大", "--by", "张三").code == 0
    tags = set(read_run(run_id).tags)
    assert {"level:II", "stage:progress", "awaits:progress-1"} <= tags and "level:IV" not in tags

    # The other lines and re-grading from the UI: small deployments whose Run forms act on
    # the incident while its run waits for progress report 1.
    from prefect.deployments import run_deployment

    def from_ui(name: str, **parameters):
        return run_deployment(f"{name}/{name}", parameters={"number": number, **parameters}, timeout=120)

    assert from_ui("incident-release", approver="赵六").state.is_completed()
    assert from_ui("incident-relevel", level="III", reason="影响可控", by="赵六").state.is_completed()
    assert "level:III" in read_run(run_id).tags
    refused = from_ui("incident-relevel", level="III", reason="再调", by="赵六")
    assert refused.state.is_failed() and "already at level III" in (refused.state.message or "")
    assert from_ui("incident-close", officer="张三", summary="现场处置完毕").state.is_completed()
    # Handling ended while the run waited for a progress report: it walks on to the final report.
    wait_for_pause(run_id, "final-report")
    shown = json.loads(cli("incident", "show", number, "--json").out)
    sources = {s["name"]: s["source"] for s in shown["steps"] if s["source"]}
    assert sources["release-1"] == sources["handling-ended"] == "ui" and shown["level"] == "III"
    assert {d["name"]: d["status"] for d in shown["deadlines"]}["progress-1"] == "cancelled"


@on_sqlite
def test_answering_before_the_run_reaches_the_step_is_handed_over(platform, use_database):
    """An answer given while the run is still starting reaches it (the CLI waits, and
    the watcher hands it over if the CLI gave up)."""
    started = trigger()
    number, run_id = started["number"], uuid.UUID(started["flow_run_id"])
    result = cli("incident", "arrive", number, "--officer", "赵六", "--json")
    assert result.code == 0 and json.loads(result.out)["run"] in ("resumed", "consumed")
    wait_for_pause(run_id, "initial-report")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--plan", "no-such-plan"], "unknown plan 'no-such-plan'"),
        (["--level", "V"], "level: Input should be"),
        (["--title", ""], "title: String should have at least 1 character"),
        (["--authority", "999999"], "unknown authority '999999'"),
        (["--occurred-at", "2999-01-01T00:00+08:00"], "is in the future"),
        (["--occurred-at", "yesterday-ish"], "malformed date/time 'yesterday-ish'"),
        (["--title", "长" * 300], "title: String should have at most 200 characters"),
    ],
)
def test_bad_trigger_input_is_refused_with_nothing_written(use_database, args, message):
    base = {"--plan": "product-quality", "--level": "II", "--title": "t", "--location": "l", "--authority": "330106"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    before = _counts()
    result = cli("incident", "trigger", *[x for kv in base.items() for x in kv])
    assert result.code == 2, result
    assert message in result.err and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert _counts() == before


def test_oversized_or_malformed_answers_are_refused_with_nothing_written(own_database, tmp_path):
    from rules.incidents import validate_trigger
    from storage.db import utcnow
    from tasks.incidents import trigger as activate

    incident = activate(
        validate_trigger(
            dict(plan="product-quality", level="IV", title="t", location="l", authority="330108"), now=utcnow()
        ),
        now=utcnow(),
    )
    number = incident.number
    before = _counts()
    assert cli("incident", "arrive", number, "--officer", "x", "--note", "n" * 2001).code == 2
    assert cli("incident", "arrive", "INC-1999-000001", "--officer", "x").code == 3
    assert _counts() == before
    assert cli("incident", "arrive", number, "--officer", "张三").code == 0  # no run yet: recorded, pending
    big = tmp_path / "big.txt"
    big.write_text("字" * 20_001, encoding="utf-8")
    result = cli("incident", "report", number, "--kind", "initial", "--file", str(big))
    assert result.code == 2 and "longer than 20000 characters" in result.err
    result = cli("incident", "report", number, "--kind", "initial", "--text", "a", "--file", str(big))
    assert result.code == 2 and "not both" in result.err
    result = cli("incident", "report", number, "--kind", "summary", "--text", "a")
    assert result.code == 2 and "--kind must be initial, progress or final" in result.err


def _counts() -> tuple[int, ...]:
    import sqlalchemy as sa

    with session_scope() as session:
        return tuple(
            session.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("incident", "deadline", "notification", "audit_event", "step", "report")
        )


@on_sqlite
def test_the_watcher_hands_over_an_answer_whose_cli_never_resumed_the_run(platform, use_database):
    """The answer is on record but nobody resumed the suspended run (the CLI was
    killed right after committing): the watcher resumes it with that answer."""
    from storage.db import utcnow
    from tasks.incidents import answer

    started = trigger()
    number, run_id = started["number"], uuid.UUID(started["flow_run_id"])
    wait_for_pause(run_id, "arrival")
    answer(number, answer={"officer": "孙七", "note": ""}, source="cli", verb="arrive", now=utcnow())
    wait_for_pause(run_id, "initial-report")


@on_sqlite
def test_no_secret_reaches_logs_or_records(platform, use_database):
    """The channel URLs carry a token; it is in no log, no table, no artifact, no flow
    run log and no event, after the lifecycles above have sent (and failed to send)
    their messages."""
    import sqlalchemy as sa

    leaks = [p.name for p in platform.logs.iterdir() if TOKEN in p.read_text(errors="replace")]
    assert leaks == []
    with session_scope() as session:
        for table in (
            "notification",
            "audit_event",
            "step",
            "report",
            "incident",
            "deadline",
            "escalation",
            "enforcement_case",
            "drill",
            "heartbeat",
        ):
            rows = session.execute(sa.text(f"SELECT * FROM {table}")).all()
            assert TOKEN not in repr(rows), table
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(limit=200)
        logs = client.read_logs(limit=200)
        page = client.request("POST", "/events/filter", json={"limit": 50}).json()
        events = list(page["events"])
        for _ in range(10):  # the feed pages by 50
            if not page.get("next_page"):
                break
            page = client.request(
                "GET", "/events/filter/next", params={"page-token": page["next_page"].split("page-token=")[-1]}
            ).json()
            events += page["events"]
        runs = client.read_flow_runs(limit=200)
    assert artifacts and logs and events  # there was output to search
    assert not [a.key for a in artifacts if TOKEN in f"{a.data} {a.description}"]
    assert not [log.message for log in logs if TOKEN in log.message]
    assert TOKEN not in json.dumps(events) and not [r.name for r in runs if TOKEN in str(r.parameters)]


@on_sqlite
def test_an_incident_recorded_while_prefect_was_down_is_started_by_the_watcher(platform, use_database, tmp_path):
    """Trigger with Prefect unreachable: a clear error saying the incident is on record;
    then the platform's watcher starts its run, which reaches its first human step."""
    token = uuid.uuid4().hex[:8]
    result = shell(
        "incident",
        "trigger",
        "--plan",
        "product-quality",
        "--level",
        "IV",
        "--title",
        f"断网触发 {token}",
        "--location",
        "l",
        "--authority",
        "330108",
        "--json",
        REGFLOW_DATABASE_URL=use_database,
        PREFECT_API_URL="http://127.0.0.1:9/api",
    )
    assert result.returncode == 6 and "is recorded and its notices are queued" in result.stderr
    assert result.stderr.count("\n") == 1
    number = result.stderr.split("error: ")[1].split()[0]
    printed = json.loads(result.stdout)  # with --json, the record's number also when the run could not start
    assert printed["number"] == number and printed["flow_run_id"] is None and printed["error"].startswith(number)

    def run_id():
        with session_scope() as session:
            return get_incident(session, number=number).flow_run_id

    started = wait_until(run_id, timeout=90, what="the watcher to start the run")
    wait_for_pause(started, "arrival")


@on_sqlite
def test_a_trigger_returns_at_once_and_the_watcher_creates_a_run_prefect_was_slow_to_make(platform, use_database):
    """Given no time to create the run (`REGFLOW_RUN_START_WAIT_SECONDS=0`, as a busy
    Prefect gives none), the trigger returns with the incident recorded and says the run
    is on its way; the watcher creates exactly one run, which reaches the first human step."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    token = uuid.uuid4().hex[:8]
    result = shell("incident", "trigger", "--plan", "product-quality", "--level", "IV", "--title", f"稍后建 {token}",
                   "--location", "l", "--authority", "330108", REGFLOW_DATABASE_URL=use_database,
                   REGFLOW_RUN_START_WAIT_SECONDS="0")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "flow run: on its way" in result.stdout and "regflow incident show" in result.stdout
    number = result.stdout.split()[0]

    def run_id():
        with session_scope() as session:
            return get_incident(session, number=number).flow_run_id

    started = wait_until(run_id, timeout=60, what="the watcher to create the run")
    wait_for_pause(started, "arrival")
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=number)))
    assert [r.id for r in runs] == [started]


@on_sqlite
def test_a_busy_prefect_holds_a_trigger_for_seconds_not_minutes(use_database):
    """Prefect answering 503 to everything (its SQLite locked in a burst): the trigger
    records the incident, retries once (run_start_retries) instead of Prefect's five
    (126 s of sleeps), and says the watcher will start the run."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Busy(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = uuid.uuid4().hex[:8]
    try:
        result = shell(
            "incident",
            "trigger",
            "--plan",
            "product-quality",
            "--level",
            "IV",
            "--title",
            f"繁忙 {token}",
            "--location",
            "l",
            "--authority",
            "330108",
            REGFLOW_DATABASE_URL=use_database,
            PREFECT_API_URL=f"http://127.0.0.1:{server.server_port}/api",
        )
    finally:
        server.shutdown()
    assert result.returncode == 6, result.stderr
    assert "is recorded and its notices are queued" in result.stderr and "HTTP 503" in result.stderr
    assert result.stderr.count("\n") == 1
    assert len(seen) == 2, seen  # the first try and one retry of the deployment's look-up
    number = result.stderr.split("error: ")[1].split()[0]
    with session_scope() as session:
        assert get_incident(session, number=number).title == f"繁忙 {token}"


@on_sqlite
def test_a_complaint_that_reveals_an_emergency_becomes_an_incident(platform, use_database):
    """`regflow complaint escalate`: an incident of the complaint's authority, linked both
    ways, its own run; the complaint keeps its steps and its acceptance limit."""
    from storage.cases import get_case

    token = uuid.uuid4().hex[:8]
    received = cli("complaint", "receive", "--title", f"多名消费者食用后腹泻 {token}", "--party", "某餐饮店",
                   "--authority", "330106", "--json")  # fmt: skip
    assert received.code == 0, received.err
    complaint = json.loads(received.out)["number"]
    before = _counts()
    for args, code, message in (
        (("--level", "V"), 2, "--level must be I, II, III or IV"),
        (("--level", "III", "--plan", "nuclear"), 2, "unknown plan 'nuclear'"),
        (("--level", "III", "--by", "路人甲"), 8, "not in the people file"),
    ):
        plan = () if "--plan" in args else ("--plan", "food-safety")
        refused = cli("complaint", "escalate", complaint, *plan, *args)
        assert refused.code == code and message in refused.err and refused.err.count("\n") == 1, refused.err
    assert cli("complaint", "escalate", "CMP-2099-999999", "--plan", "food-safety", "--level", "III").code == 3
    assert _counts()[:3] == before[:3]  # no incident, deadline or message: only the refusal is on record

    escalated = cli("complaint", "escalate", complaint, "--plan", "food-safety", "--level", "III", "--by", "李四",
                    "--json")  # fmt: skip
    assert escalated.code == 0, escalated.err
    started = json.loads(escalated.out)
    number = started["number"]
    run = wait_for_pause(uuid.UUID(started["flow_run_id"]), "arrival")
    assert {"level:III", "plan:food-safety"} <= set(run.tags)
    with session_scope() as session:
        incident, case = get_incident(session, number=number), get_case(session, number=complaint)
        accept = {d.name: d.status for d in deadlines_for(session, subject=complaint)}
    assert (incident.origin, incident.title, incident.location) == (
        complaint,
        f"多名消费者食用后腹泻 {token}",
        "某餐饮店",
    )
    assert case.facts["incident"] == number and case.status == "open" and accept["acceptance"] == "open"
    shown = cli("incident", "show", number)
    assert f"from complaint {complaint}" in shown.out
    assert f"escalated to incident {number}" in cli("case", "show", complaint).out
    again = cli("complaint", "escalate", complaint, "--plan", "food-safety", "--level", "III", "--by", "李四")
    assert again.code == 4 and f"already escalated to {number}" in again.err
