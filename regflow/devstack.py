"""The embedded platform on one machine, as `make run` starts it.

Prefect server (SQLite) on 127.0.0.1:4200, a process work pool and worker, every
deployment in prefect.yaml, the watcher and the demo inbox, all children of this
process: Ctrl-C stops them all. Logs go to $REGFLOW_HOME/logs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from kernel.errors import InvalidInput, PlatformUnavailable
from kernel.settings import PROJECT_ROOT, get_settings, prefect_auth_headers
from regflow.prewarmed import flow_run_command

BIN = Path(sys.executable).parent
ROLES = ("duty", "head", "onsite", "food", "government", "public", "lab")
POOL = "regflow"


def platform_env(home: Path, api_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        REGFLOW_HOME=str(home),
        REGFLOW_PROJECT_DIR=str(PROJECT_ROOT),
        PREFECT_API_URL=api_url,
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_CLI_PROMPT="false",
        PREFECT_LOGGING_LEVEL=env.get("PREFECT_LOGGING_LEVEL", "INFO"),
        # A resumed run is Scheduled until a worker polls; Prefect's default 10 s poll
        # would add ~5 s to every human step.
        PREFECT_WORKER_QUERY_SECONDS=env.get("PREFECT_WORKER_QUERY_SECONDS", "1"),
    )
    return env


def wait_for_api(api_url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api_url}/health", timeout=2, headers=prefect_auth_headers()).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise PlatformUnavailable(f"Prefect API at {api_url} did not come up within {timeout:.0f}s")


def deploy_all(env: dict[str, str], log: Path | None) -> None:
    """Create or update the work pool (its runs handed to each worker's launcher) and
    apply every deployment of prefect.yaml. Output to `log`, else to this terminal."""
    import tempfile

    with (
        tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as template,
        log.open("a") if log else contextlib.nullcontext(None) as out,
    ):
        json.dump(pool_template(), template)
        template.flush()
        for cmd in (
            [
                str(BIN / "prefect"),
                "work-pool",
                "create",
                POOL,
                "--type",
                "process",
                "--overwrite",
                "--base-job-template",
                template.name,
            ],
            [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
        ):
            subprocess.run(
                cmd, env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT if out else None, check=True
            )
    from tasks.automations import ensure

    names = ensure()  # the operators' automations, by name, created or updated
    if log:
        with log.open("a") as out:
            out.write(f"automations: {', '.join(names)}\n")


def pool_template() -> dict:
    """The process pool's template, with each run handed to the worker's prewarmed
    launcher (regflow/standin.py runs the engine itself where there is none)."""
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    template["variables"]["properties"]["command"]["default"] = shlex.join(flow_run_command())
    return template


def start_worker(env: dict[str, str], log: Path, limit: int = 4) -> subprocess.Popen:
    # The limit bounds concurrent flow runs: SQLite serialises writers (DESIGN.md
    # decisions 5 and 6). Runs fork from a prewarmed launcher (regflow/prewarmed.py)
    # instead of importing Prefect anew; the launcher nices each run (RUN_NICE) so a
    # burst of runs cannot delay what is urgent: a trigger, the watcher's reminders.
    return _spawn([str(BIN / "regflow"), "worker", "--pool", POOL, "--limit", str(limit)], env, log)


def start_watcher(env: dict[str, str], log: Path) -> subprocess.Popen:
    return _spawn([str(BIN / "regflow"), "watch"], env, log)


def _spawn(cmd: list[str], env: dict[str, str], log: Path, nice: int = 0) -> subprocess.Popen:
    """A child in a session of its own, its output and errors in `log`, rotated (regflow/logs.py)."""
    from regflow.logs import capture

    proc = subprocess.Popen(
        ["nice", "-n", str(nice), *cmd] if nice else cmd,  # not preexec_fn: the log threads are running
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )
    capture(proc, log, log.stem)
    return proc


def write_demo_channels(path: Path, *, http_port: int, smtp_port: int) -> None:
    """Route every authority's roles to the loopback inbox (no secrets involved)."""
    from rules.authorities import load_authorities
    from rules.credit import load_partners
    from rules.people import load_people

    tree = load_authorities(get_settings().authorities_file)
    lines = ["# Demo channels written by `make run`: everything goes to the loopback inbox.", "urls:"]
    for authority in tree.authorities:
        for role in ROLES:
            tag = f"{authority.code}.{role}"
            lines += [f"  - json://127.0.0.1:{http_port}/{authority.code}/{role}:", f"    - tag: {tag}"]
            if role in ("onsite", "food"):
                lines += [
                    f"  - mailto://127.0.0.1:{smtp_port}?from=regflow@localhost"
                    f"&to={role}@{authority.code}.demo&mode=insecure:",
                    f"    - tag: {tag}",
                ]
    # Each person's own channel: a duty desk's message reaches the officer on duty too.
    for person in load_people(get_settings().people_file).people:
        lines += [f"  - json://127.0.0.1:{http_port}/person/{person.login}:", f"    - tag: person.{person.login}"]
    # The platform's operators (the automations' alerts).
    lines += [f"  - json://127.0.0.1:{http_port}/operators:", "    - tag: operators"]
    # Partner departments' referrals (data/partners.yaml), each by its own tag.
    for partner in load_partners(get_settings().partners_file).partners:
        lines += [f"  - json://127.0.0.1:{http_port}/partner/{partner.key}:", f"    - tag: {partner.channel}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_demo_roster(path: Path) -> None:
    """The demo authority's duty roster for the days around now (daily shifts from
    08:30, 李四 and 王五 in turn, 赵六 leading), imported as the platform's own; the
    days already on the roster from an earlier start stay as they are."""
    import pendulum

    from storage.db import utcnow
    from tasks.rosters import import_roster

    tz = get_settings().timezone
    day = pendulum.now(tz).start_of("day").add(hours=8, minutes=30).subtract(days=1)
    rows = ["authority,start,end,officer,leader"]
    for i in range(9):
        start, end = day.add(days=i), day.add(days=i + 1)
        officer = ("李四", "王五")[start.date().toordinal() % 2]  # the same day, the same officer, run after run
        rows.append(f"330106,{start.isoformat()},{end.isoformat()},{officer},赵六")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    try:
        import_roster(path, by="regflow", now=utcnow(), system=True)
    except InvalidInput as exc:  # a roster kept from an earlier run overlaps: it stands
        print(f"regflow: demo roster not loaded ({exc})", flush=True)


def prepare_database() -> None:
    from rules.authorities import load_authorities
    from storage.authorities import upsert_authorities
    from storage.db import session_scope, utcnow
    from storage.migrate import upgrade
    from tasks.rosters import load_rosters

    upgrade()
    with session_scope() as session:
        upsert_authorities(session, tree=load_authorities(get_settings().authorities_file))
    load_rosters(get_settings().rosters_dir, now=utcnow())


def _interrupt(*_):
    raise KeyboardInterrupt


# Production on this machine (`make run-prod`): both databases on the local PostgreSQL.
PROD_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/regflow"
PROD_PREFECT_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/prefect"


def production_env(env: dict[str, str], home: Path) -> dict[str, str]:
    """Production settings over the embedded ones: PostgreSQL for regflow and for
    Prefect, and Basic auth on the API (the server checks PREFECT_SERVER_API_AUTH_STRING,
    every client sends PREFECT_API_AUTH_STRING). The auth string comes from the
    environment, else from $REGFLOW_HOME/prefect-auth (created once, mode 600)."""
    import secrets

    env = dict(env)
    env.setdefault("REGFLOW_DATABASE_URL", PROD_DATABASE)
    env.setdefault("PREFECT_API_DATABASE_CONNECTION_URL", PROD_PREFECT_DATABASE)
    if not env["REGFLOW_DATABASE_URL"].startswith("postgresql"):
        raise PlatformUnavailable("production runs on PostgreSQL: set REGFLOW_DATABASE_URL=postgresql+psycopg://…")
    auth = env.get("PREFECT_SERVER_API_AUTH_STRING") or env.get("PREFECT_API_AUTH_STRING")
    if not auth:
        path = home / "prefect-auth"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(f"regflow:{secrets.token_urlsafe(24)}\n")
        auth = path.read_text().strip()
    env.update(PREFECT_SERVER_API_AUTH_STRING=auth, PREFECT_API_AUTH_STRING=auth)
    return env


def run_platform(*, demo: bool = True, port: int = 4200, prod: bool = False, replicas: int = 1) -> None:
    """Start every part as a child of this process. `prod`: PostgreSQL for both
    databases, API auth, migrations as their own step, two workers, two watchers;
    with `replicas` of 2 or more, Prefect's distributed topology under supervisord
    (regflow/topology.py)."""
    # Explicit handlers: a process started in the background inherits SIGINT ignored,
    # and a supervisor stops us with SIGTERM; both must stop every child.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    settings = get_settings()
    home = settings.home.resolve()
    logs = home / "logs"
    api_url = f"http://127.0.0.1:{port}/api"
    env = platform_env(home, api_url)
    if prod:
        env = production_env(env, home)
    if replicas > 1:
        from regflow import topology

        if not prod:
            raise InvalidInput("API replicas need production mode: regflow up --prod --replicas N")
        env = topology.redis_env(env)
    shared = (
        "PREFECT_API_URL",
        "PREFECT_HOME",
        "REGFLOW_PROJECT_DIR",
        "REGFLOW_DATABASE_URL",
        "PREFECT_API_AUTH_STRING",
    )
    os.environ.update({k: env[k] for k in shared if k in env})
    get_settings.cache_clear()
    children: list[subprocess.Popen] = []
    try:
        _prepare_databases(env, logs, prod=prod)
        demo_channels = not settings.apprise_config_path.exists()
        if demo_channels:
            write_demo_channels(settings.apprise_config_path, http_port=8901, smtp_port=8925)
        if replicas > 1:
            children.append(_start_topology(env, home, api_url, port=port, replicas=replicas, inbox=demo_channels))
        else:
            if demo_channels or not prod:  # production with its own channels needs no demo inbox
                children.append(_spawn([str(BIN / "regflow"), "inbox"], env, logs / "inbox.log"))
            children += _start_services(env, logs, api_url, port=port, prod=prod)
        services = list(children)  # the demo drill ends by itself once reviewed; the platform stays up
        number = campaign = None
        if demo:
            write_demo_roster(home / "rosters" / "demo-330106.csv")
            drill, number = _start_demo_drill(env, logs)
            children.append(drill)
            campaign = _start_demo_campaign()
        _welcome(api_url, home, number, env if prod else None, inbox=demo_channels or not prod, campaign=campaign)
        while all(child.poll() is None for child in services):
            time.sleep(1)
        print("regflow: a component stopped; see the logs in", logs, flush=True)
    except KeyboardInterrupt:
        print("\nregflow: stopping ...", flush=True)
    finally:
        _stop(children)


def _start_topology(
    env: dict[str, str], home: Path, api_url: str, *, port: int, replicas: int, inbox: bool
) -> subprocess.Popen:
    """supervisord with every component; the deployments once the load balancer answers."""
    from regflow import topology

    print(
        f"regflow: starting {replicas} API replicas, services, HAProxy, workers and watchers under "
        f"supervisord (logs in {home / 'logs'}) ...",
        flush=True,
    )
    supervisor = topology.start(env, home, port=port, replicas=replicas, inbox=inbox)
    try:
        wait_for_api(api_url, timeout=180)
        print("regflow: deploying flows ...", flush=True)
        deploy_all(env, home / "logs" / "deploy.log")
    except BaseException:
        topology.stop(supervisor)
        raise
    return supervisor


def _prepare_databases(env: dict[str, str], logs: Path, *, prod: bool) -> None:
    """The embedded database migrated in-process; production's migrated as a step of its own."""
    if not prod:
        print("regflow: preparing the database ...", flush=True)
        prepare_database()
        return
    from storage.db import ensure_postgres_database

    print("regflow: migrating the databases (their own step) ...", flush=True)
    for url in (env["REGFLOW_DATABASE_URL"], env["PREFECT_API_DATABASE_CONNECTION_URL"]):
        ensure_postgres_database(url)
    logs.mkdir(parents=True, exist_ok=True)
    steps = [["regflow", "db", "upgrade"], ["regflow", "authorities", "load"], ["regflow", "duty", "load"]]
    if env.get("PREFECT_MESSAGING_BROKER"):  # several server processes: Prefect's schema first, once
        steps[:0] = [["prefect", "server", "database", "upgrade", "--yes"], ["regflow", "db", "prefect-blocks"]]
    for step in steps:
        with (logs / "migrate.log").open("a") as out:
            command = [str(BIN / step[0]), *step[1:]]
            subprocess.run(command, env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT, check=True)


def _start_services(env: dict[str, str], logs: Path, api_url: str, *, port: int, prod: bool) -> list:
    """Prefect's server, the deployments, then workers and watchers (two of each in
    production: no single one to lose)."""
    print(f"regflow: starting Prefect server on {api_url} (logs in {logs}) ...", flush=True)
    server = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    started = [_spawn(server, env, logs / "server.log")]
    wait_for_api(api_url)
    print("regflow: deploying flows ...", flush=True)
    deploy_all(env, logs / "deploy.log")
    for i in range(2 if prod else 1):
        suffix = f"-{i + 1}" if prod else ""
        started.append(start_worker(env, logs / f"worker{suffix}.log", limit=2 if prod else 4))
        started.append(start_watcher(env, logs / f"watcher{suffix}.log"))
    return started


def _stop(children: list[subprocess.Popen]) -> None:
    for child in reversed(children):
        if child.poll() is None:
            child.terminate()  # supervisord, in the topology, stops its programs on SIGTERM
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()


def _start_demo_drill(env: dict[str, str], logs: Path) -> tuple[subprocess.Popen, str]:
    """The demo: a level II product-quality drill at ×60 whose responders answer by
    themselves, one step late, and leave the post-incident review to the person
    trying regflow. Its output (and, at the end, the scorecard) goes to drill.log."""
    from storage.db import session_scope
    from storage.drills import list_drills

    print("regflow: starting the demo drill ...", flush=True)
    with session_scope() as session:
        before = {d.number for d in list_drills(session)}
    drill = _spawn(
        [
            str(BIN / "regflow"),
            "drill",
            "product-quality",
            "--level",
            "II",
            "--speed",
            "60",
            "--scenario",
            str(PROJECT_ROOT / "data" / "drills" / "demo.yaml"),
            "--max-minutes",
            "240",
        ],
        env,
        logs / "drill.log",
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and drill.poll() is None:
        with session_scope() as session:
            new = [d.number for d in list_drills(session) if d.number not in before]
        if new:
            return drill, new[0]
        time.sleep(0.5)
    raise PlatformUnavailable(f"the demo drill did not start; see {logs / 'drill.log'}")


DEMO_CAMPAIGN = "2027-q1-xihu"


def _start_demo_campaign() -> str | None:
    """The demo spot-check campaign, once per home: the demo registers imported, the
    example plan filed and drawn (a fixed seed), its run creating a sample run per target,
    each waiting for its sampling. A failure is told and the platform goes on."""
    from kernel.errors import RegflowError
    from storage.campaigns import get_campaign
    from storage.db import session_scope, utcnow
    from tasks import campaigns, registers
    from tasks.runs import start_campaign_run

    try:
        with session_scope() as session:
            campaign = get_campaign(session, key=DEMO_CAMPAIGN)
        if campaign is None:
            for kind in ("targets", "inspectors"):
                path = PROJECT_ROOT / "data" / "registers" / f"{kind}.csv"
                registers.import_register(kind, path, by="杭州市局局长", now=utcnow())
            campaigns.create(PROJECT_ROOT / "data" / "campaigns" / "example.yaml", by="赵六", now=utcnow())
            campaign = campaigns.run_draw(DEMO_CAMPAIGN, by="赵六", now=utcnow(), seed=20270105)
        if campaign.flow_run_id is None and campaign.status == "drawn":
            start_campaign_run(campaign.key, campaign.name, campaign.authority_code)
        return campaign.key
    except RegflowError as exc:
        print(f"regflow: demo campaign not started ({exc})", flush=True)
        return None


def _welcome_campaign(key: str) -> None:
    print(
        f""" Demo spot-check campaign {key} (双随机): three targets drawn, each a sample run
 waiting in the UI for its sampling by a drawn inspector. Follow it with
   regflow campaign show {key}     regflow campaign progress {key}     regflow sample show SMP-…
""",
        flush=True,
    )


def _welcome(
    api_url: str,
    home: Path,
    number: str | None,
    prod: dict[str, str] | None = None,
    inbox: bool = True,
    campaign: str | None = None,
) -> None:
    from sqlalchemy.engine import make_url

    ui = api_url.removesuffix("/api")
    print(
        f"""
==============================================================================
 regflow is running{" in production mode" if prod else ""}.
   Prefect UI ............ {ui}"""
        + (
            f"""
   Demo messages ......... {home / "inbox" / "messages.log"}"""
            if inbox
            else ""
        )
        + f"""
   Logs .................. {home / "logs"}
""",
        flush=True,
    )
    if prod:
        where = (
            "$PREFECT_API_AUTH_STRING" if os.environ.get("PREFECT_SERVER_API_AUTH_STRING") else home / "prefect-auth"
        )
        print(
            f"""   regflow database ...... {make_url(prod["REGFLOW_DATABASE_URL"]).render_as_string(hide_password=True)}
   Prefect database ...... {make_url(prod["PREFECT_API_DATABASE_CONNECTION_URL"]).render_as_string(hide_password=True)}
   Workers, watchers ..... 2 and 2 (logs worker-N.log, watcher-N.log)
   API login ............. the UI asks for the auth string in {where};
                           CLI users export PREFECT_API_AUTH_STRING with it.
   Who may act ........... {get_settings().people_file} — CLI users export
                           REGFLOW_IDENTITY=login (they act as their OS login).
""",
            flush=True,
        )
    if number:
        print(
            f"""   Demo drill ............ {number} (【演练 DRILL】, product-quality level II, ×60)
   Drill log ............. {home / "logs" / "drill.log"}

 The demo drill plays an emergency at 60 times real speed: simulated responders
 report before the team is on site, then arrive 15 minutes late (watch the reminders and
 the escalation to the city bureau), close handling and send the final report,
 all within about six minutes. Then the post-incident review is yours:
   in the UI: Runs -> "【演练 DRILL】{number} ..." -> Resume, signed 赵六 (the head), or
   regflow incident review {number} --by 赵六 --lessons "……"   (source .venv/bin/activate first)
 and the scorecard appears in the drill log and as the run's artifact. Only the head
 may review (data/people.yaml says who may do what): sign with another name and the
 refusal goes on record and the form is asked again. Meanwhile:
   regflow incident show {number}     regflow board     regflow drills
""",
            flush=True,
        )
    if campaign:
        _welcome_campaign(campaign)
    print(
        " Ctrl-C stops everything.\n==============================================================================",
        flush=True,
    )
