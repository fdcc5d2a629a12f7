"""Who may act: each step's role checked against data/people.yaml, from the CLI and
from the UI's form alike, refusals one line and on the audit log, nothing else
written. SQLite and PostgreSQL; the UI path on the real platform."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlmodel import func, select

from kernel.settings import PROJECT_ROOT, get_settings
from rules.incidents import validate_trigger
from storage.audit import AuditEvent, events_for
from storage.db import session_scope, utcnow
from storage.deadlines import deadlines_for
from storage.escalations import Escalation
from storage.notifications import Notification
from storage.steps import Step
from tasks import incidents
from tasks.deadlines import climb_escalations, send_reminders
from tests.conftest import cli, fresh, read_run, wait_for_pause

MIN = dt.timedelta(minutes=1)


@pytest.fixture
def demo_people(monkeypatch):
    """The shipped directory: 张三 on site and handler, 李四 duty, 赵六 head at 330106;
    杭州市局值班员 (hz-duty) at the city, and so on."""
    monkeypatch.setenv("REGFLOW_PEOPLE_FILE", str(PROJECT_ROOT / "data" / "people.yaml"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def trigger(now: dt.datetime, authority: str = "330106") -> str:
    request = validate_trigger(
        dict(
            plan="product-quality", level="IV", title=f"权限 {uuid.uuid4().hex[:6]}", location="l", authority=authority
        ),
        now=now,
    )
    return incidents.trigger(request, now=now).number


def counts() -> dict[str, int]:
    with session_scope() as session:
        return {
            t.__name__: session.exec(select(func.count()).select_from(t)).one()
            for t in (Step, Notification, Escalation)
        } | {
            "audit": session.exec(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.action != "step.forbidden")
            ).one()
        }


def forbidden(number: str) -> list[AuditEvent]:
    with session_scope() as session:
        return [e for e in events_for(session, subject=number) if e.action == "step.forbidden"]


def test_each_incident_step_only_by_its_role_refusals_one_line_and_on_record(own_database, demo_people):
    number = trigger(utcnow())
    before = counts()
    wrong = cli("incident", "arrive", number, "--officer", "李四")  # duty, not on site
    assert wrong.code == 8 and wrong.err.count("\n") == 1
    assert "'李四' may not answer 到达现场" in wrong.err and "现场处置人员 on-site officer of 330106" in wrong.err
    assert "张三 (zhangsan)" in wrong.err  # who may
    stranger = cli("incident", "arrive", number, "--officer", "路人甲")
    assert stranger.code == 8 and "not in the people file" in stranger.err
    assert counts() == before  # nothing written but the refusals themselves
    assert [(e.actor, e.detail["step"], e.detail["roles"]) for e in forbidden(number)] == [
        ("李四", "arrival", ["onsite"]),
        ("路人甲", "arrival", ["onsite"]),
    ]

    assert cli("incident", "arrive", number, "--officer", "zhangsan").code == 0  # by login as well as name
    assert cli("incident", "report", number, "--kind", "initial", "--text", "初报", "--by", "张三").code == 8
    assert cli("incident", "report", number, "--kind", "initial", "--text", "初报", "--by", "李四").code == 0
    # Handling ends on the on-site line: the team's leader says so, not the duty desk.
    assert cli("incident", "close", number, "--summary", "结束", "--by", "lisi").code == 8
    assert cli("incident", "close", number, "--summary", "结束", "--by", "zhangsan").code == 0
    assert cli("incident", "report", number, "--kind", "final", "--text", "终报", "--by", "王五").code == 0
    # Only the head approves an information release.
    assert cli("incident", "release", number, "--by", "李四").code == 8
    assert cli("incident", "release", number, "--by", "赵六").code == 0
    # Another authority's head is not this one's.
    assert cli("incident", "review", number, "--lessons", "l", "--by", "郑强").code == 8
    assert cli("incident", "review", number, "--lessons", "l", "--by", "李四").code == 8
    assert cli("incident", "review", number, "--lessons", "l", "--by", "赵六").code == 0
    assert len(forbidden(number)) == 7


def test_only_an_authority_told_acknowledges_and_only_a_head_extends(own_database, demo_people):
    t0 = utcnow() - dt.timedelta(hours=10)
    number = trigger(t0)
    send_reminders(t0 + 61 * MIN), climb_escalations(t0 + 61 * MIN)  # initial report missed: the city is told
    with session_scope() as session:
        esc = session.exec(select(Escalation).where(Escalation.subject == number)).one()
    assert esc.step == 0 and esc.policy["ladder"][0] == "330100"
    for by in ("李四", "浙江省局值班员", "zhangsan"):  # the county itself; the province, not yet told; no role
        result = cli("escalation", "ack", str(esc.id), "--by", by)
        assert result.code == 8 and f"acknowledge escalation {esc.id}" in result.err, result.err
    assert fresh(lambda s, subject: s.get(Escalation, esc.id), number).status == "open"
    assert cli("escalation", "ack", str(esc.id), "--by", "hz-duty").code == 0

    with session_scope() as session:
        arrival = [d for d in deadlines_for(session, subject=number) if d.name == "arrival"][0]
    refused = cli("deadline", "extend", str(arrival.id), "--period", "2h", "--reason", "r", "--approved-by", "李四")
    assert refused.code == 8 and "负责人 head" in refused.err
    assert (
        cli("deadline", "extend", str(arrival.id), "--period", "2h", "--reason", "r", "--approved-by", "hz-head").code
        == 0
    )  # a head above may
    assert cli("deadline", "pause", str(arrival.id), "--reason", "r", "--by", "总局值班员").code == 8
    assert len(forbidden(number)) == 5


def test_case_steps_and_clock_by_their_roles(own_database, demo_people):
    from rules.cases import validate_lead
    from tasks import cases

    now = utcnow()
    number = cases.receive(
        validate_lead(dict(kind="case", title="t", party="p", source="report", authority="330106"), now=now), now=now
    ).number
    refused = cli("case", "decide", number, "filing", "--by", "赵六", "decision=file", "handler=张三", "text=立案")
    assert refused.code == 8 and "承办人 handler" in refused.err  # the head is not the handler
    assert (
        cli("case", "decide", number, "filing", "--by", "张三", "decision=file", "handler=张三", "text=立案").code == 0
    )
    assert cli("case", "pause-clock", number, "--reason", "送检", "--by", "王五").code == 8
    assert cli("case", "pause-clock", number, "--reason", "送检", "--by", "张三").code == 0


def test_production_identity_is_the_login_alone(own_database, demo_people, monkeypatch):
    import getpass

    monkeypatch.setenv("REGFLOW_IDENTITY", "login")
    get_settings.cache_clear()
    number = trigger(utcnow())
    result = cli("incident", "arrive", number, "--officer", "张三")
    assert result.code == 8 and f"logged in as {getpass.getuser()!r}" in result.err
    assert forbidden(number) == []  # refused before anything was attempted


@pytest.mark.parametrize(
    "content,message",
    [
        ("people: [{login: a, name: A, authority: '330106', roles: [janitor]}]", "unknown role 'janitor'"),
        ("people: [{login: 'a b', name: A, authority: '330106', roles: [duty]}]", "login: String should match"),
        (
            "people: [{login: a, name: A, authority: '330106', roles: [duty]}, "
            "{login: a, name: B, authority: '330106', roles: [head]}]",
            "login 'a' is listed twice",
        ),
        ("people: [{login: a", "not valid YAML (line 1)"),
    ],
)
def test_a_bad_people_file_is_one_line_naming_it(own_database, tmp_path, monkeypatch, content, message):
    path = tmp_path / "people.yaml"
    path.write_text(content, encoding="utf-8")
    monkeypatch.setenv("REGFLOW_PEOPLE_FILE", str(path))
    get_settings.cache_clear()
    number = trigger(utcnow())
    result = cli("incident", "arrive", number, "--officer", "a")
    assert result.code == 2 and str(path) in result.err and message in result.err, result.err
    assert result.err.count("\n") == 1
    get_settings.cache_clear()


def test_the_ui_form_signed_by_someone_not_allowed_is_refused_and_asked_again(platform):
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    result = cli(
        "incident",
        "trigger",
        "--plan",
        "product-quality",
        "--level",
        "IV",
        "--title",
        "界面权限",
        "--location",
        "l",
        "--authority",
        "330106",
        "--json",
    )
    import json

    run_id = uuid.UUID(json.loads(result.out)["flow_run_id"])
    number = json.loads(result.out)["number"]
    wait_for_pause(run_id, "arrival")
    resume_flow_run(run_id, run_input={"officer": "冒名者", "note": "n"})
    wait_for_pause(run_id, "arrival-again-1")  # refused on record, the same step asked again
    with get_client(sync_client=True) as client:
        prompt = client.read_flow_run_input(run_id, "suspended-arrival-again-1-description")
    assert "the last answer was refused" in prompt and "冒名者" in prompt
    assert [e.detail["step"] for e in forbidden(number)] == ["arrival"]
    resume_flow_run(run_id, run_input={"officer": "张三", "note": "已到场"})
    wait_for_pause(run_id, "initial-report")
    assert "stage:initial-report" in read_run(run_id).tags
    answered = fresh(
        lambda s, subject: [x.actor for x in events_for(s, subject=subject) if x.action == "step.answered"], number
    )
    assert answered == ["张三"]
