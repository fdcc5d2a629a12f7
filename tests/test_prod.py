"""Production mode as `make run-prod` starts it (regflow up --prod): Prefect on
PostgreSQL, regflow on PostgreSQL, migrations as their own step, API Basic auth,
two workers and two watchers; a duty officer's CLI needs the auth string, an
incident goes through; the auth string is in no log; Ctrl-C leaves no process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ROOT,
    free_port,
    pg_unavailable_reason,
    pg_url,
    prefect_pg_database,
    processes_with_env,
    scratch_pg_database,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    pg_unavailable_reason() is not None, reason=f"production mode runs on PostgreSQL: {pg_unavailable_reason()}"
)
BIN = Path(sys.executable).parent


@pytest.fixture
def databases():
    with scratch_pg_database("regflow_prod") as app, prefect_pg_database("prefect_prod") as prefect:
        yield pg_url(app), prefect


def test_production_mode_end_to_end(databases, receivers, tmp_path):
    app_db, prefect_db = databases
    home = tmp_path / "home"
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    secret = f"regflow:{uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REGFLOW_DATABASE"))}
    env.update(
        REGFLOW_HOME=str(home),
        REGFLOW_DATABASE_URL=app_db,
        PREFECT_API_DATABASE_CONNECTION_URL=prefect_db,
        PREFECT_SERVER_API_AUTH_STRING=secret,
    )
    out = tmp_path / "up.log"
    up = subprocess.Popen(
        [str(BIN / "regflow"), "up", "--prod", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=out.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: "regflow is running in production mode" in out.read_text() or up.poll() is not None,
            timeout=180,
            what="the production platform",
        )
        assert up.poll() is None, out.read_text()
        assert "Workers, watchers ..... 2 and 2" in out.read_text()
        assert "database at revision" in (home / "logs" / "migrate.log").read_text()  # its own step, done first

        # The API refuses anyone without the auth string.
        assert httpx.post(f"{api}/flow_runs/filter", json={}).status_code == 401
        auth = (secret.split(":")[0], secret.split(":", 1)[1])
        client = httpx.Client(base_url=api, auth=auth, timeout=10)
        cli_env = {k: v for k, v in env.items() if k != "PREFECT_SERVER_API_AUTH_STRING"}
        cli_env.update(PREFECT_API_URL=api)

        def regflow(*args: str, authed: bool = True) -> subprocess.CompletedProcess:
            e = dict(cli_env, **({"PREFECT_API_AUTH_STRING": secret} if authed else {}))
            return subprocess.run([str(BIN / "regflow"), *args], env=e, capture_output=True, text=True, timeout=120)

        refused = regflow(
            "incident",
            "trigger",
            "--plan",
            "product-quality",
            "--level",
            "IV",
            "--title",
            "无凭据",
            "--location",
            "l",
            "--authority",
            "330108",
            authed=False,
        )
        assert refused.returncode == 6 and "set PREFECT_API_AUTH_STRING" in refused.stderr
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr

        # Two workers polling the pool, two watchers heartbeating.
        # (each first warms its launcher, a few seconds on two busy cores)
        wait_until(
            lambda: (
                len(
                    [
                        w
                        for w in client.post("/work_pools/regflow/workers/filter", json={}).json()
                        if w["status"] == "ONLINE"
                    ]
                )
                == 2
            ),
            timeout=60,
            what="two workers online",
        )
        doctor = json.loads(regflow("doctor", "--json").stdout)
        watcher = next(c for c in doctor if c["name"] == "watcher")
        assert watcher["ok"] and watcher["detail"].startswith("2 watcher(s) alive")

        # An incident through its first steps: the run refused without credentials is
        # started by a watcher (it has them), and the next one goes straight through.
        started = regflow(
            "incident",
            "trigger",
            "--plan",
            "product-quality",
            "--level",
            "II",
            "--title",
            "生产模式",
            "--location",
            "l",
            "--authority",
            "330106",
            "--json",
        )
        assert started.returncode == 0, started.stderr
        run_id = json.loads(started.stdout)["flow_run_id"]

        def paused_at(key):
            run = client.get(f"/flow_runs/{run_id}").json()
            return run["state_type"] == "PAUSED" and run["state"]["state_details"].get("pause_key") == key

        wait_until(lambda: paused_at("arrival"), timeout=120, what="the run to reach arrival")
        number = json.loads(started.stdout)["number"]
        arrived = regflow("incident", "arrive", number, "--officer", "张三")
        assert arrived.returncode == 0, arrived.stderr
        wait_until(lambda: paused_at("initial-report"), timeout=120, what="the run to reach the initial report")
        wait_until(
            lambda: json.loads(regflow("incident", "show", "INC-2026-000001", "--json").stdout)["flow_run"],
            timeout=60,
            what="the watcher to start the refused incident's run",
        )
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
    # Launchers notice their worker gone within a second, then end once idle.
    wait_until(
        lambda: processes_with_env(f"REGFLOW_HOME={home}") == [],
        timeout=10,
        what="every process of the platform to end",
    )
    leaks = [p.name for p in (home / "logs").iterdir() if secret.split(":", 1)[1] in p.read_text(errors="replace")]
    assert leaks == [] and secret.split(":", 1)[1] not in out.read_text()
