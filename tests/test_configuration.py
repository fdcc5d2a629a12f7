"""Configuration from where people keep it: Prefect's API address from Prefect's own
profile or prefect.toml (the `make run` address only where nothing names one), regflow's
settings from a .env file, and a setting with fixed choices refused when mistyped.
Each case runs the `regflow` console script as a new process, as from a shell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REGFLOW = str(Path(sys.executable).parent / "regflow")
PEOPLE = Path(__file__).resolve().parents[1] / "data" / "people.yaml"  # the shipped directory: zj-head is 330000's


@pytest.fixture
def api():
    """A loopback HTTP server standing where a profile points: healthy, and it keeps
    the paths it was asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the standard library's name)
            asked.append(self.path)
            ok = self.path.endswith("/health")
            self.send_response(200 if ok else 404)
            body = b"true" if ok else b'{"detail": "not here"}'
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api", asked
    server.shutdown()


def run(cwd: Path, prefect_home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    """`regflow ARGS` from `cwd` (a home of its own: no launcher takes it), with no
    PREFECT_API_URL or profile choice in its environment and Prefect's home at
    `prefect_home`, and `extra` variables."""
    unset = ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH", "REGFLOW_IDENTITY", "REGFLOW_DATABASE_URL",
             "REGFLOW_AUDIT_ANCHOR")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(PREFECT_HOME=str(prefect_home), REGFLOW_HOME=str(cwd / "home"), **extra)
    return subprocess.run([REGFLOW, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def prefect_api_check(result: subprocess.CompletedProcess) -> dict:
    return next(c for c in json.loads(result.stdout) if c["name"] == "prefect api")


def test_the_api_address_in_a_prefect_profile_is_the_one_used(api, tmp_path):
    url, asked = api
    prefect_home = tmp_path / "prefect"
    prefect_home.mkdir()
    (prefect_home / "profiles.toml").write_text(
        f'active = "office"\n\n[profiles.office]\nPREFECT_API_URL = "{url}"\n\n[profiles.default]\n',
        encoding="utf-8",
    )
    check = prefect_api_check(run(tmp_path, prefect_home, "doctor", "--json"))
    assert check["ok"] and check["detail"] == f"{url}: healthy"
    assert "/api/health" in asked


def test_the_api_address_in_prefect_toml_is_the_one_used(api, tmp_path):
    url, asked = api
    (tmp_path / "prefect.toml").write_text(f'[api]\nurl = "{url}"\n', encoding="utf-8")
    check = prefect_api_check(run(tmp_path, tmp_path / "no-prefect-home", "doctor", "--json"))
    assert check["detail"] == f"{url}: healthy"
    assert "/api/health" in asked


def test_without_any_prefect_configuration_the_make_run_address_is_used(tmp_path):
    check = prefect_api_check(run(tmp_path, tmp_path / "no-prefect-home", "doctor", "--json"))
    assert check["detail"].startswith("http://127.0.0.1:4200/api")


def test_regflow_settings_are_read_from_a_dot_env_file(tmp_path):
    database = tmp_path / "from-dotenv.db"
    (tmp_path / ".env").write_text(
        f"REGFLOW_DATABASE_URL=sqlite:///{database}\nREGFLOW_USER=zj-head\n", encoding="utf-8"
    )
    result = run(tmp_path, tmp_path / "no-prefect-home", "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert database.exists()
    # Into the environment too, for what regflow starts and reads from it: the person
    # acting ($REGFLOW_USER), here the province's head, whose own figures are the default.
    assert run(tmp_path, tmp_path / "no-prefect-home", "authorities", "load").returncode == 0
    env = {k: v for k, v in os.environ.items() if k not in ("REGFLOW_USER", "REGFLOW_DATABASE_URL")}
    env.update(REGFLOW_HOME=str(tmp_path / "home"), PREFECT_API_URL="", REGFLOW_PEOPLE_FILE=str(PEOPLE))
    result = subprocess.run([REGFLOW, "stats", "--json"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["authority"] == "330000"


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_a_mistyped_choice_is_refused_at_start_in_one_line(tmp_path, where):
    if where == ".env":
        (tmp_path / ".env").write_text("REGFLOW_IDENTITY=logn\n", encoding="utf-8")
        result = run(tmp_path, tmp_path / "no-prefect-home", "incident", "list")
    else:
        result = run(tmp_path, tmp_path / "no-prefect-home", "incident", "list", REGFLOW_IDENTITY="logn")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: REGFLOW_IDENTITY: Input should be 'declared' or 'login' (given 'logn')"
    assert result.stdout == ""
