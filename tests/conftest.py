"""Real parts only: Prefect's test server, SQLite and PostgreSQL, an HTTP and an SMTP
receiver on loopback for apprise, a real process worker and watcher."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("REGFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ROLES = ("duty", "head", "onsite", "food", "government", "public")
TOKEN = "tok-" + uuid.uuid4().hex  # a planted secret: it must never show up in what we record


def pg_unavailable_reason() -> str | None:
    try:
        import psycopg

        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
        return None
    except Exception as exc:  # any failure means: skip, saying why
        return f"PostgreSQL not reachable at {PG_ADMIN} ({type(exc).__name__})"


# End-to-end tests drive a real worker and watcher, and every human step of a run is
# a new flow-run process (3-5 s here). Run on both backends they doubled the suite;
# so the emergency lifecycle runs end to end on SQLite (the embedded default `make
# run` uses) and the case lifecycle on PostgreSQL (the production backend), while
# every task-level test runs on both.
on_sqlite = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
on_postgresql = pytest.mark.parametrize(
    "database", ["postgresql" if pg_unavailable_reason() is None else "sqlite"], indirect=True
)


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("regflow-home")


@pytest.fixture(scope="session", autouse=True)
def environment(home):
    os.environ.update(
        REGFLOW_HOME=str(home),
        REGFLOW_APPRISE_CONFIG=str(home / "apprise.yml"),
        REGFLOW_OUTBOX_BACKOFF_BASE="0.5",
        REGFLOW_OUTBOX_POLL_SECONDS="0.3",
        REGFLOW_RESUME_WAIT_SECONDS="90",
        # A run id from every start (one test gives none), and the watcher not racing it.
        REGFLOW_RUN_START_WAIT_SECONDS="60",
        REGFLOW_RUN_START_GRACE_SECONDS="15",
        REGFLOW_TEST_TOKEN=TOKEN,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        REGFLOW_USER="测试员",
        REGFLOW_CALENDAR_OVERRIDE=str(Path(__file__).parent / "fixtures" / "calendar-2027.yaml"),
    )
    os.environ.pop("REGFLOW_DATABASE_URL", None)
    # No Prefect API until a test asks for the server (prefect_api): "" says so, as
    # `regflow` itself would otherwise take the `make run` address.
    os.environ.setdefault("PREFECT_API_URL", "")
    os.environ["REGFLOW_PEOPLE_FILE"] = str(write_people(home / "people.yaml"))
    from regflow.prewarmed import share_tls_contexts

    share_tls_contexts()  # as the launcher and the watcher do: tests open Prefect clients by the hundred
    yield
    for client in _CLIENTS.values():
        client.__exit__(None, None, None)


# Everyone the tests sign as holds every role everywhere; tests/test_access.py
# checks the refusals with a directory of its own.
TEST_PEOPLE = (
    "测试员",
    "张三",
    "李四",
    "王五",
    "赵六",
    "孙七",
    "局长",
    "集体讨论",
    "值班员",
    "省局值班员",
    "市局值班员",
    "x",
)


def write_people(path: Path) -> Path:
    import yaml

    from kernel.settings import PROJECT_ROOT
    from rules.people import ROLES

    codes = [a["code"] for a in yaml.safe_load((PROJECT_ROOT / "data" / "authorities.yaml").read_text())["authorities"]]
    people = [
        {"login": f"t{i}-{code}", "name": name, "authority": code, "roles": list(ROLES)}
        for i, name in enumerate(TEST_PEOPLE)
        for code in codes
    ]
    path.write_text(yaml.safe_dump({"people": people}, allow_unicode=True), encoding="utf-8")
    return path


def _reset_settings():
    from kernel.settings import get_settings

    get_settings.cache_clear()


def new_database(backend: str, home: Path) -> tuple[str, callable]:
    """A fresh, migrated database with the demo authorities; returns (url, drop)."""
    from rules.authorities import load_authorities
    from storage.authorities import upsert_authorities
    from storage.db import engine_for, session_scope
    from storage.migrate import upgrade

    name = f"regflow_test_{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        url, drop = f"sqlite:///{home / (name + '.db')}", lambda: None
    else:
        reason = pg_unavailable_reason()
        if reason:
            pytest.skip(reason)
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = pg_url(name)

        def drop():
            engine_for(url).dispose()
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    point_at(url)
    upgrade(url)
    with session_scope() as session:
        upsert_authorities(session, tree=load_authorities(ROOT / "data" / "authorities.yaml"))
    return url, drop


BACKENDS = ["sqlite", "postgresql"]


def _fresh_database(request, home):
    url, drop = new_database(request.param, home)
    yield url
    drop()


# One database per backend for the session (the lifecycle platform runs on it), and
# one per test module for tests that must not share it with that platform's watcher.
database = pytest.fixture(scope="session", params=BACKENDS, name="database")(_fresh_database)
module_database = pytest.fixture(scope="module", params=BACKENDS, name="module_database")(_fresh_database)


def anchor_for(url: str) -> str:
    """The audit chain's anchor file of one database: one file per chain, as in production
    (a database's heads checked against another's would read as a rewrite)."""
    return str(Path(os.environ["REGFLOW_HOME"]) / "anchors" / f"{url.rsplit('/', 1)[-1]}.log")


def point_at(url: str) -> str:
    os.environ.update(REGFLOW_DATABASE_URL=url, REGFLOW_AUDIT_ANCHOR=anchor_for(url))
    _reset_settings()
    return url


@pytest.fixture
def use_database(database):
    """Point this process's settings at the session's database of the current backend."""
    return point_at(database)


@pytest.fixture
def own_database(module_database):
    return point_at(module_database)


@pytest.fixture(scope="session")
def receivers(home):
    from regflow.inbox import HttpReceiver, Inbox, SmtpReceiver

    inbox = Inbox(home / "inbox.log")
    http, smtp = HttpReceiver(inbox).start(), SmtpReceiver(inbox).start()
    write_channels(home / "apprise.yml", http.port, smtp.port)
    yield Receivers(inbox, http, smtp)
    http.stop()
    smtp.stop()


@dataclass
class Receivers:
    inbox: object
    http: object
    smtp: object


def write_channels(path: Path, http_port: int, smtp_port: int) -> None:
    """Every demo authority's roles: duty and head by HTTP (with a token in the
    path, as real webhooks have), on-site teams by mail."""
    from rules.authorities import load_authorities

    lines = ["urls:"]
    for authority in load_authorities(ROOT / "data" / "authorities.yaml").authorities:
        for role in ROLES:
            tag = f"{authority.code}.{role}"
            if role in ("duty", "head"):
                lines += [
                    f"  - json://127.0.0.1:{http_port}/{authority.code}/{role}/${{env:REGFLOW_TEST_TOKEN}}:",
                    f"    - tag: {tag}",
                ]
            else:
                lines += [
                    f"  - mailto://127.0.0.1:{smtp_port}?from=regflow@localhost&to={role}@{authority.code}.test"
                    f"&mode=insecure:",
                    f"    - tag: {tag}",
                ]
    # Personal channels of the people a test puts on a duty roster (the district and the city).
    for code in ("330106", "330100"):
        for i, _name in enumerate(TEST_PEOPLE):
            login = f"t{i}-{code}"
            lines += [f"  - mailto://127.0.0.1:{smtp_port}?from=regflow@localhost&to={login}@person.test&mode=insecure:",
                      f"    - tag: person.{login}"]  # fmt: skip
    # The partner departments' referrals (data/partners.yaml), by HTTP.
    from rules.credit import load_partners

    for partner in load_partners(ROOT / "data" / "partners.yaml").partners:
        lines += [f"  - json://127.0.0.1:{http_port}/partner/{partner.key}:", f"    - tag: {partner.channel}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def prefect_api():
    """Prefect's test server for this pytest worker. The first worker (and a run
    without workers) gets Prefect's test harness on SQLite, the embedded default's
    Prefect; the others the same server on a copy of the PostgreSQL template,
    production's (no migrations to run: ~13 s of a start here; and no 'database is
    locked' retries under the suite's load), where PostgreSQL is up."""
    from prefect.settings import PREFECT_API_URL

    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") == "gw0" or pg_unavailable_reason() is not None:
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=90):
            os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
            yield PREFECT_API_URL.value()
        return
    import prefect.context
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings

    with prefect_pg_database("prefect_harness") as url:
        with temporary_settings({PREFECT_SERVER_DATABASE_CONNECTION_URL: url}):
            server = SubprocessASGIServer(port=free_port())
            server.start(timeout=90)
        try:
            # As the harness does: the address in this thread's settings and in the
            # global ones, which threads started later (a burst's triggers) read.
            with (
                temporary_settings({PREFECT_API_URL: server.api_url}),
                prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()),
            ):
                os.environ["PREFECT_API_URL"] = server.api_url
                yield server.api_url
        finally:
            server.stop()


@pytest.fixture(scope="session")
def deployed(prefect_api, home) -> None:
    """Flows deployed from prefect.yaml exactly as `make run` deploys them, once per
    server: the deployments and the pool do not depend on the database, so both
    backends' platforms share them (a deploy is ~8 s here)."""
    from regflow.devstack import deploy_all, platform_env

    (home / "logs").mkdir(exist_ok=True)
    deploy_all(platform_env(home, prefect_api), home / "logs" / "deploy.log")


@pytest.fixture(scope="session")
def platform(database, receivers, prefect_api, deployed, home):
    """A process worker and a watcher on the session's database, running the
    session server's deployments."""
    from regflow.devstack import platform_env, start_watcher, start_worker

    backend = "pg" if database.startswith("postgresql") else "sqlite"
    env = platform_env(home, prefect_api)
    env.update(
        REGFLOW_DATABASE_URL=database,
        REGFLOW_AUDIT_ANCHOR=anchor_for(database),
        PREFECT_HOME=str(home / f"prefect-{backend}"),
    )
    logs = home / f"logs-{backend}"
    logs.mkdir(exist_ok=True)
    worker = start_worker(env, logs / "worker.log")
    watcher = start_watcher(env, logs / "watcher.log")
    yield Platform(database, logs)
    for proc in (worker, watcher):
        proc.terminate()
    for proc in (worker, watcher):
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    _delete_unfinished_runs()


def _delete_unfinished_runs() -> None:
    """The platforms of both backends take turns on this session's Prefect server and
    its `regflow` pool: runs one leaves unfinished (waiting, or resumed but not yet
    picked up) would be picked up by the next one's worker, against a database where
    their incident number means another incident."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    unfinished = FlowRunFilter(
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(
                any_=[StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING]
            )
        )
    )
    with get_client(sync_client=True) as client:
        while runs := client.read_flow_runs(flow_run_filter=unfinished, limit=200):
            for run in runs:
                client.delete_flow_run(run.id)


@dataclass
class Platform:
    database: str
    logs: Path


@dataclass
class Result:
    code: int
    out: str
    err: str


def shell(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """`regflow ARGS` as a new process, as a duty officer runs it from a shell (handed to
    a launcher of the same REGFLOW_HOME if one listens), with `env` over this one's."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "regflow"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli(*args: str) -> Result:
    """Run `regflow ARGS` in this process, as a user would from a shell."""
    from regflow.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def incident_on_site(title: str, authority: str = "330108") -> str:
    """An incident triggered and its team arrived, through the task functions (no Prefect
    needed): real state changes, each with its audit row. Its number."""
    from rules.incidents import validate_trigger
    from storage.db import utcnow
    from tasks.incidents import answer, trigger

    now = utcnow()
    data = dict(plan="product-quality", level="IV", title=title, location="l", authority=authority)
    incident = trigger(validate_trigger(data, now=now), now=now)
    answer(incident.number, answer={"officer": "张三"}, source="cli", verb="arrive", now=utcnow())
    return incident.number


def wait_until(predicate, timeout: float = 90.0, interval: float = 0.3, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


_CLIENTS: dict[str, object] = {}


def prefect_client():
    """An open client to the current PREFECT_API_URL, kept for the session. Wait loops
    poll every 0.3 s, and a new client per poll cost ~0.1 s of CPU here, half of it
    the server's (Prefect's client asks for a CSRF token first)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if url not in _CLIENTS:
        _CLIENTS[url] = get_client(sync_client=True).__enter__()
    return _CLIENTS[url]


def read_run(run_id):
    return prefect_client().read_flow_run(run_id)


def wait_for_pause(run_id, key: str, timeout: float = 120):
    """The run, once it is suspended under this key with its form saved. Prefect sets
    the Paused state first and writes the form's schema and description just after."""
    from prefect.client.schemas.objects import StateType
    from prefect.exceptions import PrefectHTTPStatusError

    def paused():
        run = read_run(run_id)
        if run.state.type != StateType.PAUSED or run.state.state_details.pause_key != key:
            return None
        try:
            prefect_client().read_flow_run_input(run_id, f"suspended-{key}-description")
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code == 404:
                return None
            raise
        return run

    return wait_until(paused, timeout=timeout, what=f"the run to suspend at {key!r}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def scratch_pg_database(prefix: str, *, template: str | None = None):
    """A PostgreSQL database for a test's own server (a copy of `template` if given),
    dropped afterwards; yields its name."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def processes_with_env(*entries: str, prefix: str | None = None) -> list[int]:
    """Live processes (not this one) whose environment has every `NAME=value` entry,
    and a variable starting with `prefix` if given."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(e.encode() in environ for e in entries) and (
            prefix is None or any(v.startswith(prefix.encode()) for v in environ)
        ):
            found.append(int(entry.name))
    return found


def fresh(query, number: str):
    """Rows of one subject read in a new session (what the platform has committed)."""
    from storage.db import session_scope

    with session_scope() as session:
        return query(session, subject=number)


def prefect_pg_template() -> str:
    """A PostgreSQL database with Prefect's schema at the pinned version, for servers
    of tests of their own to start from a copy: Prefect's migrations take ~8 s of a
    server's start here, a copy 0.5 s. Made once per PostgreSQL server and version
    and kept there (named for the version), under an advisory lock so pytest's workers
    make it once; it appears only complete (built under another name, then renamed)."""
    import prefect
    import psycopg

    name = "regflow_test_prefect_" + prefect.__version__.replace(".", "_").replace("+", "_")
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
        try:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                building = f"{name}_building"
                conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{building}"')
                subprocess.run(
                    [str(Path(sys.executable).parent / "prefect"), "server", "database", "upgrade", "-y"],
                    env=dict(os.environ, PREFECT_API_DATABASE_CONNECTION_URL=pg_url(building, "asyncpg")),
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
                conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))
    return name


@contextlib.contextmanager
def prefect_pg_database(prefix: str):
    """A copy of the template for a Prefect server of a test's own, dropped
    afterwards; yields Prefect's connection URL for it."""
    with scratch_pg_database(prefix, template=prefect_pg_template()) as name:
        yield pg_url(name, "asyncpg")


def pg_url(name: str, driver: str = "psycopg") -> str:
    """Database `name` on the server REGFLOW_TEST_PG points at, for `driver`."""
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN).set(drivername=f"postgresql+{driver}", database=name)
    return url.render_as_string(hide_password=False)
