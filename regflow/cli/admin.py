"""Set-up and service commands: database, authorities, plans, watcher, inbox, up."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from kernel.settings import get_settings
from regflow.cli.output import JSON, console, emit_json, mount, one_of, progress

db_app = typer.Typer(help="The application database.", no_args_is_help=True)
authorities_app = typer.Typer(help="Authorities and their hierarchy.", no_args_is_help=True)
plans_app = typer.Typer(help="Emergency plans (预案).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    mount(app, {"db": db_app, "authorities": authorities_app, "plans": plans_app}, (watch, worker, deploy, inbox, up))


@db_app.command()
def upgrade() -> None:
    """Create or migrate the schema to the newest version.

    Example: regflow db upgrade
    """
    from storage.migrate import current_revision
    from storage.migrate import upgrade as migrate

    migrate()
    console().print(f"database at revision {current_revision()}")


@db_app.command("prefect-blocks")
def prefect_blocks() -> None:
    """Register Prefect's block types in Prefect's database, once per release, for API
    replicas that do not (PREFECT_SERVER_REGISTER_BLOCKS_ON_START=false).

    Example: regflow db prefect-blocks
    """
    from regflow.topology import register_blocks

    register_blocks()
    console().print("Prefect's block types registered")


@authorities_app.command("load")
def authorities_load(
    file: Optional[Path] = typer.Argument(None, help="YAML file (default: data/authorities.yaml)."),
) -> None:
    """Load or update authorities from a YAML file.

    Example: regflow authorities load data/authorities.yaml
    """
    from rules.authorities import load_authorities
    from storage.authorities import upsert_authorities
    from storage.db import session_scope

    tree = load_authorities(file or get_settings().authorities_file)
    with session_scope() as session, progress("loading authorities", len(tree.authorities)) as advance:
        count = upsert_authorities(session, tree=tree, advance=advance)
    console().print(f"{count} authorities loaded")


@authorities_app.command("list")
def authorities_list(json_out: bool = JSON) -> None:
    """List authorities with their superiors.

    Example: regflow authorities list --json
    """
    from storage.authorities import load_tree
    from storage.db import session_scope

    with session_scope() as session:
        rows = [a.model_dump(mode="json") for a in load_tree(session).authorities]
    if json_out:
        emit_json(rows)
        return
    table = Table("code", "tier", "name", "superior", "government duty office", title="Authorities")
    for r in rows:
        table.add_row(r["code"], r["tier"], r["name"], r["superior"] or "", r["government"] or "")
    console().print(table)


@plans_app.command("list")
def plans_list(json_out: bool = JSON) -> None:
    """Validate and list the plan files.

    Example: regflow plans list
    """
    from rules.plans import load_plan_file

    rows = []
    paths = sorted(get_settings().plans_dir.glob("*.yaml"))
    with progress("checking plans", len(paths)) as advance:
        for path in paths:
            loaded = load_plan_file(path)
            advance(1)
            rows.append(
                {
                    "key": loaded.plan.key,
                    "name": loaded.plan.name,
                    "levels": [lv.value for lv in loaded.plan.levels],
                    "version": loaded.content_hash[:12],
                    "file": str(path),
                }
            )
    if json_out:
        emit_json(rows)
        return
    table = Table("key", "name", "levels", "version", title="Plans")
    for r in rows:
        table.add_row(r["key"], r["name"], ",".join(r["levels"]), r["version"])
    console().print(table)


@plans_app.command("check")
def plans_check(file: Path = typer.Argument(..., help="A plan file to validate.")) -> None:
    """Validate one plan file; the error names the file, the field and the problem.

    Example: regflow plans check data/plans/product-quality.yaml
    """
    from rules.plans import load_plan_file

    loaded = load_plan_file(file)
    console().print(f"{file}: plan {loaded.plan.key} is valid (version {loaded.content_hash[:12]})")


LOG_FORMAT = one_of(
    None,
    "text",
    "json",
    flag="--log-format",
    help="Log lines as text or JSON objects (default: REGFLOW_LOG_FORMAT, text).",
)


def _log_format(value: str | None) -> None:
    """For this process and every one it starts."""
    import os

    if value is not None:
        os.environ["REGFLOW_LOG_FORMAT"] = value
        get_settings.cache_clear()
    get_settings()  # a value outside the choices is refused here, in one line


def watch(
    once: bool = typer.Option(False, help="Run one cycle and exit."), log_format: str | None = LOG_FORMAT
) -> None:
    """Run the watcher: delivers and retries notifications, hands late answers to runs.

    Example: regflow watch --log-format json
    """
    from regflow.watcher import Watcher

    _log_format(log_format)

    Watcher().run(once=once)


def worker(
    limit: int = typer.Option(4, help="Flow runs at once (each is a process; two cores take about 4)."),
    pool: str = typer.Option("regflow", help="The work pool to poll."),
    socket: Optional[Path] = typer.Option(
        None,
        help="The launcher's socket (default: $REGFLOW_HOME/run/launcher-PID.sock,"
        " where `regflow incident` and case commands find it).",
    ),
) -> None:
    """Run a Prefect worker whose flow runs start from a prewarmed process.

    Example: regflow worker --limit 4
    """
    import os
    import sys

    from regflow.prewarmed import worker as prewarmed_worker
    from regflow.standin import launcher_socket

    path = socket or Path(launcher_socket(os.getpid()))
    prewarmed_worker(
        path,
        [
            str(Path(sys.executable).parent / "prefect"),
            "worker",
            "start",
            "--pool",
            pool,
            "--type",
            "process",
            "--limit",
            str(limit),
        ],
    )


def deploy() -> None:
    """Create the `regflow` work pool (its runs start from each worker's launcher) and
    apply every deployment in prefect.yaml, from this checkout.

    Example: regflow deploy   (REGFLOW_PROJECT_DIR defaults to this checkout)
    """
    import os
    import subprocess

    from kernel.errors import PlatformUnavailable
    from kernel.settings import PROJECT_ROOT
    from regflow.devstack import deploy_all

    env = dict(os.environ)
    env.setdefault("REGFLOW_PROJECT_DIR", str(PROJECT_ROOT))
    try:
        deploy_all(env, None)
    except subprocess.CalledProcessError as exc:
        raise PlatformUnavailable(
            f"`{' '.join(exc.cmd[1:3])}` failed with exit {exc.returncode} (output above)"
        ) from None


def inbox(
    http_port: int = typer.Option(8901, help="Loopback HTTP receiver port."),
    smtp_port: int = typer.Option(8925, help="Loopback SMTP receiver port."),
    directory: Optional[Path] = typer.Option(None, help="Where to write messages (default: $REGFLOW_HOME/inbox)."),
) -> None:
    """Run the demo receivers on loopback; every message lands in a readable file.

    Example: regflow inbox && tail -f .regflow/inbox/messages.log
    """
    from regflow.inbox import serve_forever

    serve_forever(directory or get_settings().home / "inbox", http_port=http_port, smtp_port=smtp_port)


def up(
    demo: Optional[bool] = typer.Option(
        None, help="Start the demo drill once everything is up (default: yes, except with --prod)."
    ),
    prod: bool = typer.Option(
        False,
        "--prod",
        help="Production mode: PostgreSQL for regflow and Prefect, API "
        "auth, migrations first, two workers and two watchers.",
    ),
    port: int = typer.Option(4200, help="Prefect server port (the load balancer's, with --replicas)."),
    replicas: int = typer.Option(
        1,
        min=1,
        max=16,
        help="With --prod: this many Prefect API replicas behind HAProxy, Redis messaging, one services "
        "process, all under supervisord (apt-get install haproxy supervisor; Redis at $REGFLOW_REDIS_URL).",
    ),
    log_format: str | None = LOG_FORMAT,
) -> None:
    """Start the platform: Prefect server, worker(s), watcher(s) and demo inbox (`make run`, `make run-prod`).

    Example: regflow up --prod
    Example: regflow up --prod --replicas 2
    """
    from regflow.devstack import run_platform

    _log_format(log_format)
    run_platform(demo=(not prod) if demo is None else demo, port=port, prod=prod, replicas=replicas)
