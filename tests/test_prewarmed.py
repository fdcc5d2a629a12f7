"""Flow runs forked from the worker's prewarmed launcher (regflow/prewarmed.py): the
worker still sees one process per run, with the run's exit code, and cancelling or
killing that process ends the run; without a launcher the stock engine runs. A duty
officer's `regflow incident ...` runs there too, as if in their own shell."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling

from regflow.devstack import BIN, POOL
from regflow.prewarmed import flow_run_command
from regflow.standin import run_in_launcher
from tests.conftest import ROOT, on_sqlite, processes_with_env, read_run, shell, wait_until


@pytest.fixture(scope="module")
def sleeper(platform):
    from prefect import flow

    deployment_id = flow.from_source(source=str(ROOT), entrypoint="tests/fixtures/sleeper.py:sleeper").deploy(
        name="launcher-test", work_pool_name=POOL, print_next_steps=False
    )

    def start(**parameters) -> uuid.UUID:
        with get_client(sync_client=True) as client:
            return client.create_flow_run_from_deployment(deployment_id, parameters=parameters).id

    return start


def exit_codes(platform, run_id, what: str = "flow run") -> list[int]:
    """What the launcher saw each process of this run (or command) exit with."""
    log = (platform.logs / "worker.log").read_text(encoding="utf-8", errors="replace")
    return [int(m) for m in re.findall(rf"^launcher: {what} {run_id} \(pid \d+\) exited (-?\d+) ", log, re.M)]


def ended(run_id, *types):
    run = read_run(run_id)
    return run if run.state.type in types else None


@on_sqlite
def test_runs_fork_from_the_launcher_and_keep_their_exit_codes(platform, sleeper):
    wait_until(
        lambda: "launcher: ready on " in (platform.logs / "worker.log").read_text(encoding="utf-8"),
        what="the launcher to be ready",
    )
    ok, failing, dying = sleeper(pool=True), sleeper(fail=True), sleeper(die_with=3)
    finished = (StateType.COMPLETED, StateType.FAILED, StateType.CRASHED)
    assert wait_until(lambda: ended(ok, *finished), what="the run to finish").state.type == StateType.COMPLETED
    assert wait_until(lambda: ended(failing, *finished), what="the run to fail").state.type == StateType.FAILED
    # A process that dies under the engine: the worker sees its exit code and marks the run crashed.
    assert wait_until(lambda: ended(dying, *finished), what="the run to crash").state.type == StateType.CRASHED
    # Prefect's engine exits 0 once it has recorded the outcome, failed or not; and the
    # process ends, even with a thread pool left open (a run that lingered kept its
    # worker from starting it again when resumed).
    assert wait_until(lambda: exit_codes(platform, ok), what="the launcher's line") == [0]
    assert wait_until(lambda: exit_codes(platform, failing), what="the launcher's line") == [0]
    assert wait_until(lambda: exit_codes(platform, dying), what="the launcher's line") == [3]
    assert "Process exited with status code: 3" in (platform.logs / "worker.log").read_text(encoding="utf-8")
    # Each run is niced below its launcher (and the commands it runs beside them).
    with get_client(sync_client=True) as client:
        said = [
            log.message for log in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[ok])))
        ]
    assert f"niceness {min(os.nice(0) + 10, 19)}" in said, said


@on_sqlite
def test_cancelling_a_run_reaches_the_forked_process(platform, sleeper):
    run_id = sleeper(seconds=300)
    wait_until(lambda: ended(run_id, StateType.RUNNING), what="the run to start")
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Cancelling(), force=True)
    assert (
        wait_until(
            lambda: ended(run_id, StateType.CANCELLED, StateType.CRASHED, StateType.COMPLETED),
            timeout=90,
            what="the run to end",
        ).state.type
        == StateType.CANCELLED
    )
    assert wait_until(lambda: exit_codes(platform, run_id), what="the launcher to see the run end")


@on_sqlite
def test_a_killed_stand_in_takes_its_run_with_it(platform, sleeper):
    run_id = sleeper(seconds=300)
    wait_until(lambda: ended(run_id, StateType.RUNNING), what="the run to start")
    stand_in = wait_until(lambda: processes_with_env(f"PREFECT__FLOW_RUN_ID={run_id}"), what="standin.py")
    for pid in stand_in:
        os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: exit_codes(platform, run_id), timeout=30, what="the run process to end") == [-9]


def test_without_a_launcher_the_stock_engine_runs(tmp_path):
    env = {**os.environ, "REGFLOW_LAUNCHER_SOCKET": str(tmp_path / "absent.sock"), "PREFECT__FLOW_RUN_ID": "not-a-run"}
    done = subprocess.run(flow_run_command(), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Invalid flow run id" in done.stdout + done.stderr
    assert flow_run_command()[:4] == [sys.executable, "-I", "-S", str(ROOT / "regflow" / "standin.py")]


def launchers(home: Path) -> list[Path]:
    return sorted((home / "run").glob("launcher-*.sock"))


@on_sqlite
def test_a_duty_officers_trigger_runs_in_the_launcher(platform, receivers, home):
    wait_until(lambda: launchers(home), what="the launcher's socket")
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in launchers(home))  # its user's alone
    token = uuid.uuid4().hex[:8]
    done = shell(
        "incident",
        "trigger",
        "--plan",
        "product-quality",
        "--level",
        "III",
        "--title",
        f"电梯困人 {token}",
        "--location",
        "文三路",
        "--authority",
        "330106",
        REGFLOW_DATABASE_URL=platform.database,
    )
    assert done.returncode == 0, done.stderr
    number = re.search(r"^(INC-\d{4}-\d{6}) triggered", done.stdout, re.M).group(1)
    assert "/runs/flow-run/" in done.stdout
    # It ran in a process the launcher forked, and its dispatch order went out from there.
    assert wait_until(
        lambda: exit_codes(platform, "`regflow incident trigger`", what="command"), what="the launcher's line"
    )
    assert wait_until(
        lambda: [m for m in receivers.inbox.matching(token) if number in m.title], what="the dispatch order"
    )
    # A user's mistake there is the same one line and exit code as anywhere.
    bad = shell(
        "incident",
        "trigger",
        "--plan",
        "product-quality",
        "--level",
        "V",
        "--title",
        "x",
        "--location",
        "x",
        "--authority",
        "330106",
        REGFLOW_DATABASE_URL=platform.database,
    )
    assert (bad.returncode, bad.stdout, len(bad.stderr.strip().splitlines())) == (2, "", 1), bad.stderr
    assert "level" in bad.stderr and "Traceback" not in bad.stderr
    assert 2 in exit_codes(platform, "`regflow incident trigger`", what="command")


@on_sqlite
def test_a_reader_gone_ends_a_command_quietly_and_the_launcher_serves_on(platform, home):
    """`regflow incident show … | head -1`: the command finds its reader gone and ends
    quietly, as a Python of its own would; the launcher keeps serving the next one."""
    socket_path = wait_until(lambda: launchers(home), what="the launcher's socket")[0]
    env = {**os.environ, "REGFLOW_DATABASE_URL": platform.database}
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line is written
    try:
        done = subprocess.run([str(Path(sys.executable).parent / "regflow"), "case", "steps"], env=env,
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)  # fmt: skip
    finally:
        os.close(write)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert wait_until(lambda: exit_codes(platform, "`regflow case steps`", what="command"), what="the launcher's line")
    assert socket_path.exists()
    assert shell("case", "steps", "--json", REGFLOW_DATABASE_URL=platform.database).returncode == 0
    assert len(exit_codes(platform, "`regflow case steps`", what="command")) == 2  # the next one ran there too


@on_sqlite
def test_the_launcher_runs_only_duty_officers_commands(platform, home):
    path = wait_until(lambda: launchers(home), what="the launcher's socket")[0]
    # Nothing that starts a service: a forged request is refused, and the caller runs it itself.
    assert run_in_launcher(str(path), "cli", ["up", "--no-demo"]) is None
    assert wait_until(
        lambda: (
            "launcher: request refused (`regflow up` is not run here)"
            in (platform.logs / "worker.log").read_text(encoding="utf-8")
        ),
        what="the refusal",
    )


def test_without_a_launcher_commands_run_in_their_own_process(tmp_path):
    (tmp_path / "run").mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a launcher that died, leaving its socket
    stale.bind(str(tmp_path / "run" / "launcher-1.sock"))
    stale.close()
    done = shell(
        "incident",
        "show",
        "INC-2026-999999",
        REGFLOW_HOME=str(tmp_path),
        REGFLOW_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}",
    )
    # Run here, against a database never set up: the one-line error only this process could give.
    assert (done.returncode, done.stdout) == (6, ""), done.stderr
    assert done.stderr.startswith("error: database unavailable") and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("module_database", ["postgresql"], indirect=True)
def test_a_command_in_flight_when_the_worker_stops_keeps_its_exit_code(own_database, tmp_path):
    """Stopping the platform (or a worker restarting) while an officer's command runs
    in the launcher: the command finishes and reports its own exit code, and no new
    command is taken there meanwhile."""
    import psycopg

    home = {"REGFLOW_HOME": str(tmp_path), "REGFLOW_DATABASE_URL": own_database}
    # A launcher whose "worker" is a sleep: killing that is the worker going away.
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from regflow.prewarmed import worker; worker(Path(sys.argv[1]), ['sleep', '600'])",
            str(tmp_path / "run" / "launcher-test.sock"),
        ],
        env={**os.environ, **home},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: launchers(tmp_path), what="the launcher's socket")
        # The command is held on a table lock, so it is in flight when the worker goes.
        with psycopg.connect(own_database.replace("+psycopg", "")) as lock:
            lock.execute("LOCK TABLE incident IN ACCESS EXCLUSIVE MODE")
            command = subprocess.Popen(
                [str(BIN / "regflow"), "incident", "show", "INC-2026-999999"],
                env={**os.environ, **home},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            wait_until(
                lambda: lock.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0],
                what="the command to wait on the lock",
            )
            worker.kill()
            worker.wait(timeout=10)
            wait_until(lambda: not launchers(tmp_path), what="the launcher to stop listening")
            assert command.poll() is None
        out, err = command.communicate(timeout=60)
    finally:
        worker.kill()
    # Its own "not found" (3), as run anywhere; not the 1 of a launcher lost mid-command.
    assert (command.returncode, out) == (3, ""), err
    assert "INC-2026-999999" in err and len(err.strip().splitlines()) == 1
