"""Production on Prefect's own distributed topology (`regflow up --prod --replicas N`):
PostgreSQL for both databases; Redis for Prefect's messaging broker and cache, event
ordering, concurrency leases and docket (the `prefect-redis` package); N API replicas
started `--no-services`, one `prefect server services start`; HAProxy in front of the
replicas at the address users and workers use; two workers and two watchers; all of
it under supervisord, which restarts what dies.

On one machine this module writes the HAProxy and supervisord files under
$REGFLOW_HOME/topology/ and runs supervisord in the foreground. The same components
spread over several machines with the systemd units in deploy/ (docs/operations.md):
nothing here is cluster code, only configuration of those tools.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from kernel.errors import PlatformUnavailable
from kernel.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/0"
POOL = "regflow"  # the work pool (regflow/devstack.py deploys into it)


def redis_env(env: dict[str, str]) -> dict[str, str]:
    """Prefect's settings for more than one server process (Prefect's self-hosted
    scaling guide): every replica and the services share events, ordering, leases
    and the docket through Redis. `REGFLOW_REDIS_URL` names the Redis."""
    url = env.get("REGFLOW_REDIS_URL") or REDIS_URL
    return {
        **env,
        "REGFLOW_REDIS_URL": url,
        "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
        "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
        "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
        "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
        "PREFECT_REDIS_MESSAGING_URL": url,
        "PREFECT_SERVER_DOCKET_URL": url,
        # The schema is migrated and the block types registered once, before any of them
        # starts (regflow/devstack.py): two replicas registering at once collided, and
        # one exited to be restarted.
        "PREFECT_API_DATABASE_MIGRATE_ON_START": "false",
        "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
    }


def register_blocks() -> None:
    """Register Prefect's block types in its database (PREFECT_API_DATABASE_CONNECTION_URL),
    as a server does at start, for servers that do not."""
    import asyncio

    from prefect.server.database import provide_database_interface
    from prefect.server.models.block_registration import run_block_auto_registration

    async def register() -> None:
        session = await provide_database_interface().session()
        async with session:  # run_block_auto_registration opens its own transactions
            await run_block_auto_registration(session=session)

    asyncio.run(register())


def replica_ports(port: int, replicas: int) -> list[int]:
    """The replicas listen beside the load balancer's port: 4201, 4202, … for 4200."""
    return [port + 1 + i for i in range(replicas)]


def haproxy_config(port: int, replicas: list[int]) -> str:
    """HAProxy in front of the API replicas: each checked by Prefect's health endpoint,
    a request that found a dead one retried on another (`redispatch`), long-lived
    connections (the UI's and workers' websockets) kept open."""
    servers = "\n".join(
        f"    server api-{i + 1} 127.0.0.1:{p} check inter 1s fall 2 rise 2" for i, p in enumerate(replicas)
    )
    return f"""# Written by `regflow up --prod --replicas {len(replicas)}`; regenerated at each start.
global
    maxconn 4096

defaults
    mode http
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    retries 3
    option redispatch
    retry-on conn-failure empty-response response-timeout 502 503

frontend prefect
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /api/health
{servers}
"""


def supervisor_config(home: Path, *, port: int, replicas: list[int], inbox: bool) -> str:
    """Every component as a supervisord program that is restarted when it dies."""
    logs, run = home / "logs", home / "run"
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    programs = {
        f"api-{i + 1}": f"{BIN}/prefect server start --no-services --host 127.0.0.1 --port {p}"
        for i, p in enumerate(replicas)
    }
    programs["services"] = f"{BIN}/prefect server services start"
    programs["loadbalancer"] = f"{haproxy} -db -f {home / 'topology' / 'haproxy.cfg'}"
    for i in (1, 2):
        programs[f"worker-{i}"] = f"{BIN}/regflow worker --pool {POOL} --limit 2"
        programs[f"watcher-{i}"] = f"{BIN}/regflow watch"
    if inbox:
        programs["inbox"] = f"{BIN}/regflow inbox"
    sections = [
        f"""; Written by `regflow up --prod --replicas {len(replicas)}`; regenerated at each start.
[supervisord]
nodaemon=true
logfile={logs / "supervisord.log"}
pidfile={run / "supervisord.pid"}
childlogdir={logs}

[unix_http_server]
file={run / "supervisor.sock"}
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{run / "supervisor.sock"}
"""
    ]
    for name, command in programs.items():
        sections.append(
            f"""[program:{name}]
command={command}
directory={PROJECT_ROOT}
autorestart=true
startsecs=3
startretries=1000
stopasgroup=true
killasgroup=true
stopwaitsecs=20
redirect_stderr=true
stdout_logfile={logs / f"{name}.log"}
stdout_logfile_maxbytes=50MB
stdout_logfile_backups=5
"""
        )
    return "\n".join(sections)


def supervisorctl(home: Path, *args: str) -> str:
    """`supervisorctl` against this home's supervisord: its output."""
    conf = home / "topology" / "supervisord.conf"
    done = subprocess.run(
        [_tool("supervisorctl", "supervisor"), "-c", str(conf), *args], capture_output=True, text=True, timeout=60
    )
    return done.stdout


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PlatformUnavailable(f"{name} is not installed: apt-get install {package}")
    return found


def start(env: dict[str, str], home: Path, *, port: int, replicas: int, inbox: bool) -> subprocess.Popen:
    """Write the files and start supervisord (which starts everything); returns it."""
    if replicas < 2:
        raise PlatformUnavailable("the distributed topology has two API replicas at least (--replicas 2)")
    supervisord = _tool("supervisord", "supervisor")
    _tool("haproxy", "haproxy")
    _check_redis(env["REGFLOW_REDIS_URL"])
    ports = replica_ports(port, replicas)
    where = home / "topology"
    for folder in (where, home / "logs", home / "run"):
        folder.mkdir(parents=True, exist_ok=True)
    (where / "haproxy.cfg").write_text(haproxy_config(port, ports), encoding="utf-8")
    conf = where / "supervisord.conf"
    conf.write_text(supervisor_config(home, port=port, replicas=ports, inbox=inbox), encoding="utf-8")
    log = (home / "logs" / "supervisord.out").open("a")
    return subprocess.Popen(
        [supervisord, "-c", str(conf)],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(supervisor: subprocess.Popen) -> None:
    """supervisord stops every program (their process groups) on SIGTERM."""
    if supervisor.poll() is None:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(supervisor.pid, signal.SIGKILL)


def _check_redis(url: str, timeout: float = 5.0) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while True:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
            return
        except redis.RedisError as exc:
            if time.monotonic() > deadline:
                raise PlatformUnavailable(f"Redis at {url} does not answer ({type(exc).__name__})") from None
            time.sleep(0.5)
