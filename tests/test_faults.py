"""Faults survived: flow-run processes and the worker killed with SIGKILL at random
points of two emergency lifecycles, many times, on a Prefect server of the test's
own (so killing its worker disturbs no other test). Every run must finish, every
deadline be closed as met (or cancelled by the lifecycle), and every notification
reach every destination exactly once, counted at the loopback receivers. The
watcher reschedules runs their worker marked Crashed; a killed worker is restarted
as a supervisor would."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter

import pytest

from storage.db import session_scope, utcnow
from tests.conftest import (
    free_port,
    fresh,
    pg_unavailable_reason,
    prefect_pg_database,
    processes_with_env,
    read_run,
    wait_until,
)

pytestmark = pytest.mark.parametrize("module_database", ["sqlite"], indirect=True)

ANSWERS = {
    "arrival": ("arrive", {"officer": "张三"}),
    "initial-report": ("report:initial", {"author": "李四", "text": "初报"}),
    "progress-1": ("report:progress", {"author": "李四", "text": "续报"}),
    # Handling ends on the on-site line while the run waits for progress report 2.
    "progress-2": ("close", {"officer": "张三", "text": "处置结束"}),
    "final-report": ("report:final", {"author": "王五", "text": "终报"}),
    "review": ("review", {"reviewer": "赵六", "lessons": "经验"}),
}


@pytest.fixture(scope="module")
def chaos(module_database, receivers, home):
    from regflow.devstack import BIN, _spawn, deploy_all, platform_env, start_watcher, start_worker, wait_for_api

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    logs = home / "logs-chaos"
    env = platform_env(home, api)
    env.update(
        REGFLOW_DATABASE_URL=module_database,
        PREFECT_HOME=str(home / "prefect-chaos"),
        REGFLOW_RUN_START_SECONDS="25",
        REGFLOW_RUN_SILENT_SECONDS="12",
    )
    databases = contextlib.ExitStack()
    if pg_unavailable_reason() is None:  # Prefect's own database on PostgreSQL, as in production
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = databases.enter_context(prefect_pg_database("prefect_chaos"))
    serve = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    state = {"worker": None, "watcher": None, "server": _spawn(serve, env, logs / "server.log")}

    def restart_server(down_for: float) -> None:
        state["server"].terminate()
        state["server"].wait(timeout=30)
        time.sleep(down_for)
        state["server"] = _spawn(serve, env, logs / "server.log")
        wait_for_api(api)

    try:
        wait_for_api(api)
        deploy_all(env, logs / "deploy.log")
        state["worker"] = start_worker(env, logs / "worker.log")
        state["watcher"] = start_watcher(env, logs / "watcher.log")
        yield api, env, logs, state, lambda: start_worker(env, logs / "worker.log"), restart_server
    finally:
        procs = [state["worker"], state["watcher"], state["server"]]
        for proc in procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc and proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        databases.close()


def _flow_run_processes(api: str) -> list[int]:
    """The flow-run processes of this test's server (they carry its API address)."""
    return processes_with_env(f"PREFECT_API_URL={api}", prefix="PREFECT__FLOW_RUN_ID=")


def test_flow_runs_and_workers_killed_at_random_lose_and_repeat_nothing(chaos, own_database, receivers):
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from rules.incidents import EMERGENCY, validate_trigger
    from storage.deadlines import deadlines_for
    from storage.incidents import get_incident
    from storage.notifications import notifications_for
    from storage.steps import steps_for
    from tasks.incidents import answer, trigger
    from tasks.notify import load_channels
    from tasks.runs import resume_when_suspended, start_incident_run

    api, env, logs, state, restart_worker, _ = chaos
    rng = random.Random(20261126)
    token = uuid.uuid4().hex[:8]
    kills = Counter()
    given: list[str] = []  # answers given so far, of the 10 the two lifecycles need
    stop = threading.Event()

    def monkey():
        # A run's process lives from its start or resume to its next suspension (about
        # a second here): watch for one, then strike at a random point of its life.
        while not stop.is_set() and sum(kills.values()) < 7:
            if not _flow_run_processes(api):
                time.sleep(0.2)
                continue
            time.sleep(rng.uniform(0.0, 0.8))
            if stop.is_set():
                return
            if rng.random() < 0.2:
                state["worker"].send_signal(signal.SIGKILL)
                state["worker"].wait()
                kills["worker"] += 1
                time.sleep(rng.uniform(0.5, 2.0))  # a supervisor restarts it
                state["worker"] = restart_worker()
            else:
                victims = _flow_run_processes(api)
                if victims:
                    os.kill(rng.choice(victims), signal.SIGKILL)
                    kills["flow-run process"] += 1

    with temporary_settings(updates={PREFECT_API_URL: api}):
        numbers, runs = [], {}
        for i in range(2):
            now = utcnow()
            incident = trigger(
                validate_trigger(
                    dict(
                        plan="product-quality", level="II", title=f"故障 {token} {i}", location="l", authority="330106"
                    ),
                    now=now,
                ),
                now=now,
            )
            runs[incident.number] = start_incident_run(incident)
            numbers.append(incident.number)
        chaos_thread = threading.Thread(target=monkey, daemon=True)
        chaos_thread.start()
        try:

            def all_closed() -> bool:
                open_ = 0
                for number in numbers:
                    with session_scope() as session:
                        incident = get_incident(session, number=number)
                        done = {
                            s.name: s.answer or {} for s in steps_for(session, subject=number) if s.status == "answered"
                        }
                    if incident.status == "closed":
                        continue
                    open_ += 1
                    step = EMERGENCY.next_step(done)
                    opened = {s.name for s in _steps(number)}
                    if step is None or step.name not in opened:
                        continue  # answer only what the run has reached: kills land mid-step
                    if sum(kills.values()) < len(given) * 7 // 10:
                        continue  # keep pace with the monkey, however fast this machine runs lifecycles
                    verb, data = ANSWERS[step.name]
                    result = answer(number, answer=data, source="cli", verb=verb, now=utcnow())
                    given.append(step.name)
                    try:
                        resume_when_suspended(result.flow_run_id, number, result.step, result.answer, wait_seconds=0)
                    except Exception:
                        pass  # the watcher hands it over
                return open_ == 0

            began = time.monotonic()
            wait_until(all_closed, timeout=300, interval=1.0, what="every incident to close under fire")
            phases = {"closed": time.monotonic() - began}
        finally:
            stop.set()
            chaos_thread.join(timeout=10)
        if state["worker"].poll() is not None:
            state["worker"] = restart_worker()

        def completed() -> bool:
            return all(read_run(run_id).state.type == StateType.COMPLETED for run_id in runs.values())

        wait_until(completed, timeout=240, interval=2.0, what="every run to complete after the kills")
        phases["completed"] = time.monotonic() - began

    with session_scope() as session:
        deadlines = [d.status for n in numbers for d in deadlines_for(session, subject=n)]
        sent = [m for n in numbers for m in notifications_for(session, subject=n)]
        recovered = session.execute(
            __import__("sqlalchemy").text("SELECT count(*) FROM audit_event WHERE action = 'run.recovered'")
        ).scalar_one()
    print(
        f"\nfaults: {dict(kills)} kills; {recovered} dead run(s) rescheduled by the watcher; "
        f"{len(sent)} messages; all closed after {phases['closed']:.0f} s, all runs completed after "
        f"{phases['completed']:.0f} s"
    )
    assert kills["flow-run process"] + kills["worker"] >= 6 and recovered >= 1
    assert set(deadlines) <= {"met", "cancelled"}
    wait_until(
        lambda: all(m.status == "sent" for n in numbers for m in fresh(notifications_for, n)), what="every message sent"
    )
    channels = load_channels()
    expected = Counter(
        m.title for n in numbers for m in fresh(notifications_for, n) for _ in channels.destinations(m.tag)
    )
    got = Counter(m.title for m in receivers.inbox.matching(token))
    assert got == expected  # every message at every destination, once: none lost, none twice


def _steps(number):
    from storage.steps import steps_for

    return fresh(steps_for, number)


def test_a_prefect_server_restart_mid_lifecycle_loses_nothing(chaos, own_database, receivers):
    """The Prefect server goes away while an incident waits at arrival: the answer
    given meanwhile is recorded (the CLI says the run will get it), the watcher keeps
    sending what it can and reconnects, the run resumes and moves on, and every
    message so far arrived once."""
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from rules.incidents import validate_trigger
    from storage.notifications import notifications_for
    from tasks.incidents import trigger
    from tasks.notify import load_channels
    from tests.conftest import cli

    api, env, logs, state, restart_worker, restart_server = chaos
    token = uuid.uuid4().hex[:8]
    with temporary_settings(updates={PREFECT_API_URL: api}):
        from tasks.runs import start_incident_run

        now = utcnow()
        incident = trigger(
            validate_trigger(
                dict(plan="product-quality", level="III", title=f"重启 {token}", location="l", authority="330106"),
                now=now,
            ),
            now=now,
        )
        number, run_id = incident.number, start_incident_run(incident)

        def paused_at(key):
            run = read_run(run_id)
            return run.state.type == StateType.PAUSED and run.state.state_details.pause_key == key

        wait_until(lambda: paused_at("arrival"), timeout=120, what="the run to wait at arrival")

        state["server"].terminate()
        state["server"].wait(timeout=30)
        answered = cli("incident", "arrive", number, "--officer", "张三")
        assert answered.code == 6 and "is recorded, but its flow run could not be resumed" in answered.err
        assert answered.err.count("\n") == 1 and "Traceback" not in answered.err
        time.sleep(3)  # the watcher cycles against a dead API meanwhile
        restart_server(down_for=0)

        wait_until(lambda: paused_at("initial-report"), timeout=120, what="the watcher to hand the answer over")
        assert cli("incident", "report", number, "--kind", "initial", "--text", "初报").code == 0  # the CLI reconnects
        wait_until(lambda: paused_at("progress-1"), timeout=120, what="the run to move on after the restart")

    wait_until(lambda: all(m.status == "sent" for m in fresh(notifications_for, number)), what="every message sent")
    channels = load_channels()
    expected = Counter(m.title for m in fresh(notifications_for, number) for _ in channels.destinations(m.tag))
    assert Counter(m.title for m in receivers.inbox.matching(token)) == expected
    assert "watcher ERROR" in (logs / "watcher.log").read_text()  # it saw the outage, and carried on
