"""The enforcement-case and lookback-review flows end to end: a real Prefect server and
worker, the CLI as a case handler uses it, the resume call the UI form makes, and
the look-back review as a real scheduled run that is then started and answered."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter

import pendulum
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run
from prefect.states import Scheduled
from sqlmodel import select

from storage.cases import get_case
from storage.db import session_scope
from storage.escalations import Escalation
from storage.notifications import notifications_for
from tests.conftest import TOKEN, cli, on_postgresql, read_run, wait_for_pause, wait_until


def decide(number: str, step: str, *fields: str) -> str:
    result = cli("case", "decide", number, step, *fields, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)["run"]


def case_of(number: str):
    with session_scope() as session:
        return get_case(session, number=number)


@on_postgresql
def test_case_from_lead_to_closure_and_a_scheduled_lookback_that_reopens_it(platform, use_database, receivers):
    token = uuid.uuid4().hex[:8]
    started = cli(
        "lead",
        "receive",
        "--title",
        f"销售不合格电动车头盔 {token}",
        "--party",
        "某某商贸有限公司",
        "--source",
        "report",
        "--authority",
        "330106",
        "--reporter",
        "李四",
        "--json",
    )
    assert started.code == 0, started.err
    started = json.loads(started.out)
    number, run_id = started["number"], uuid.UUID(started["flow_run_id"])
    # A 12315 complaint alongside, on its own complaint-handling run.
    complaint = cli(
        "complaint",
        "receive",
        "--title",
        f"预付卡无法退费 {token}",
        "--party",
        "某健身房",
        "--authority",
        "330106",
        "--complainant",
        "王五",
        "--contact",
        "138****0000",
        "--json",
    )
    assert complaint.code == 0, complaint.err
    complaint = json.loads(complaint.out)

    # Suspended at the filing decision: named after the case, tagged, its form and prompt.
    run = wait_for_pause(run_id, "filing")
    assert run.name.startswith(f"{number} 销售不合格电动车头盔")
    assert {"kind:case", "authority:330106", "stage:filing"} <= set(run.tags)
    with get_client(sync_client=True) as client:
        prompt = client.read_flow_run_input(run_id, "suspended-filing-description")
        schema = json.loads(client.read_flow_run_input(run_id, "suspended-filing-schema"))
    assert "截止时间 / Due" in prompt and "核查并决定是否立案" in prompt and f"regflow case decide {number}" in prompt
    assert {"by", "decision", "handler", "text"} == set(schema["properties"])

    decide(number, "filing", "decision=file", "handler=王五")
    # The investigation's finding through the UI path, the call the resume form makes.
    wait_for_pause(run_id, "investigation")
    assert "stage:investigation" in read_run(run_id).tags
    resume_flow_run(run_id, run_input={"by": "王五", "finding": "penalty", "text": "证据确凿"})
    wait_for_pause(run_id, "legal-review")  # the run records a UI answer when it resumes
    decide(number, "legal-review", "opinion=agree")

    # A form answer breaking a rule the form cannot check is refused and asked again.
    wait_for_pause(run_id, "pre-penalty")
    tomorrow = (pendulum.now("Asia/Shanghai") + dt.timedelta(days=2)).format("YYYY-MM-DD")
    resume_flow_run(run_id, run_input={"by": "王五", "fine": "5000", "served_on": tomorrow})
    wait_for_pause(run_id, "pre-penalty-again-1")
    with get_client(sync_client=True) as client:
        again = client.read_flow_run_input(run_id, "suspended-pre-penalty-again-1-description")
    assert "the last answer was refused" in again and "in the future" in again

    today = pendulum.now("Asia/Shanghai").format("YYYY-MM-DD")
    assert decide(number, "pre-penalty", "fine=5000", f"served_on={today}") == "resumed"
    # Answered ahead while the run restarts: it walks through them in one go.
    assert decide(number, "party-response", "response=waived", "--no-wait") == "pending"
    decide(number, "decision", "outcome=penalty", "fine=5000", "party_present=true", "rectification=true", "--no-wait")
    decide(number, "payment", f"paid_on={today}", "amount=5000", "--no-wait")
    decide(number, "closure", "text=罚款已缴清")
    wait_until(lambda: read_run(run_id).state.type == StateType.COMPLETED, timeout=120, what="completion")

    case = case_of(number)
    assert (case.status, case.outcome) == ("closed", "penalised")
    steps = json.loads(cli("case", "show", number, "--json").out)["steps"]
    assert [(s["name"], s["source"]) for s in steps] == [
        ("filing", "cli"),
        ("investigation", "ui"),
        ("legal-review", "cli"),
        ("pre-penalty", "cli"),
        ("party-response", "cli"),
        ("decision", "cli"),
        ("payment", "cli"),
        ("closure", "cli"),
    ]

    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    keys = Counter(a.key for a in artifacts)
    documents = {f"{number.lower()}-{k}" for k in ("filing", "pre-penalty", "decision", "closure")}
    status = {f"{number.lower()}-{k}" for k in ("timeline", "deadlines", "progress")}
    assert set(keys) == documents | status
    assert set(keys.values()) == {1}  # documents published once; status artifacts updated in place
    latest = {a.key: a for a in artifacts}
    assert latest[f"{number.lower()}-progress"].data == 100
    assert "收到线索" in latest[f"{number.lower()}-timeline"].data
    assert "stage:closed" in read_run(run_id).tags

    # The look-back review is a real scheduled run of its own deployment, 90 days out.
    lookback_id = wait_until(lambda: case_of(number).lookback_run_id, what="the look-back run")
    lookback = read_run(lookback_id)
    assert lookback.state.type == StateType.SCHEDULED
    assert lookback.parameters == {"case_number": number}
    assert lookback.idempotency_key.startswith(f"regflow-lookback:{number}:")
    expected = pendulum.instance(case.closed_at).in_timezone("Asia/Shanghai").add(days=90).date()
    start = pendulum.instance(lookback.expected_start_time).in_timezone("Asia/Shanghai")
    assert start.date() >= expected and (start.hour, start.minute) == (9, 0)
    assert (start.date() - expected).days <= 4  # moved past a weekend or a holiday at most
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(lookback.deployment_id)
    assert deployment.name == "lookback-review"

    # Bring it forward: the inspector finds the rectification not done; the matter is
    # reopened as a linked case with its own run, and the supervising authority told.
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(lookback_id, Scheduled(scheduled_time=pendulum.now("UTC")), force=True)
    wait_for_pause(lookback_id, "lookback")
    decide(number, "lookback", "rectified=false", "text=仍在销售同型号头盔")
    wait_until(lambda: read_run(lookback_id).state.type == StateType.COMPLETED, timeout=120, what="look-back done")
    reopened = case_of(case_of(number).facts["reopened_as"])
    assert (reopened.linked_to, reopened.source, reopened.status) == (number, "lookback", "open")
    wait_for_pause(wait_until(lambda: case_of(reopened.number).flow_run_id, what="the reopened case's run"), "filing")
    with session_scope() as session:
        escalation = session.exec(select(Escalation).where(Escalation.subject == number)).one()
    assert escalation.policy["ladder"][0] == "330100" and escalation.status == "open"

    # The complaint waited at its acceptance decision all along; not accepted, it ends.
    complaint_run = uuid.UUID(complaint["flow_run_id"])
    assert "kind:complaint" in wait_for_pause(complaint_run, "acceptance").tags
    decide(complaint["number"], "acceptance", "accept=false", "text=不属于本局管辖")
    wait_until(lambda: read_run(complaint_run).state.type == StateType.COMPLETED, timeout=120, what="complaint done")
    assert case_of(complaint["number"]).outcome == "rejected"

    # Every message delivered, each once per destination, though the runs re-ran from the top.
    def all_sent():
        with session_scope() as session:
            rows = notifications_for(session, subject=number)
        return rows if rows and all(n.status == "sent" for n in rows) else None

    sent = wait_until(all_sent, what="all messages sent")
    got = Counter((m.title, m.to) for m in receivers.inbox.matching(token) if number in m.title)
    assert got and max(got.values()) == 1
    assert len({n.title for n in sent}) == len({title for title, _ in got})
    assert TOKEN not in cli("case", "show", number, "--json").out
