"""`regflow doctor`: is this set-up able to keep its promises, and if not, what to fix."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import typer
from rich.table import Table

from kernel.settings import get_settings
from regflow.cli.output import console, emit_json

WORKER_FRESH = dt.timedelta(seconds=90)  # Prefect workers heartbeat every 30 s
WATCHER_FRESH = dt.timedelta(seconds=30)  # watchers stamp every 5 s


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _database() -> list[Check]:
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config, current_revision

    settings = get_settings()
    where = settings.db_url.split("@")[-1]  # never the password
    try:
        current = current_revision()
    except Exception as exc:
        fix = (
            "regflow db upgrade (creates it)"
            if settings.db_url.startswith("sqlite")
            else "start the database or fix REGFLOW_DATABASE_URL"
        )
        return [Check("database", False, f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}", fix)]
    head = ScriptDirectory.from_config(alembic_config(settings.db_url)).get_current_head()
    if current != head:
        return [Check("database", False, f"{where}: at revision {current}, newest is {head}", "regflow db upgrade")]
    return [Check("database", True, f"{where}: reachable, at the newest revision {head}")]


def _prefect(now: dt.datetime) -> list[Check]:
    import os

    import httpx

    from kernel.settings import prefect_auth_headers

    # Unset, it is where `make run` serves it; never let the client start a server of its own.
    api = os.environ.get("PREFECT_API_URL") or "http://127.0.0.1:4200/api"
    try:
        httpx.get(f"{api.rstrip('/')}/health", timeout=3, headers=prefect_auth_headers()).raise_for_status()
    except httpx.HTTPError as exc:
        return [
            Check(
                "prefect api",
                False,
                f"{api}: {type(exc).__name__}",
                "start it (`make run`, or `prefect server start`) or set PREFECT_API_URL",
            )
        ]
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    checks = [Check("prefect api", True, f"{api}: healthy")]
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        checks += _pool_and_workers(client, now)
        if checks[-1].name == "worker":
            checks.append(_deployments(client))
    return checks


def _pool_and_workers(client, now: dt.datetime) -> list[Check]:
    from prefect.exceptions import ObjectNotFound

    try:
        pool = client.read_work_pool("regflow")
    except ObjectNotFound:
        return [Check("work pool", False, "no work pool 'regflow'", "prefect work-pool create regflow --type process")]
    workers = [
        w
        for w in client.read_workers_for_work_pool("regflow")
        if w.last_heartbeat_time and now - w.last_heartbeat_time < WORKER_FRESH
    ]
    fix = "" if workers else "prefect worker start --pool regflow --limit 4"
    return [
        Check("work pool", True, f"regflow ({pool.type})"),
        Check("worker", bool(workers), f"{len(workers)} worker(s) polling 'regflow'", fix),
    ]


def _deployments(client) -> Check:
    from prefect.exceptions import ObjectNotFound

    settings = get_settings()
    names = (settings.deployment, settings.case_deployment, settings.complaint_deployment, settings.lookback_deployment)
    missing = []
    for name in names:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            missing.append(name.split("/")[0])
    if missing:
        return Check(
            "deployments",
            False,
            f"missing: {', '.join(missing)}",
            "REGFLOW_PROJECT_DIR=$PWD prefect --no-prompt deploy --all",
        )
    return Check("deployments", True, ", ".join(name.split("/")[0] for name in names))


def _watcher(now: dt.datetime) -> Check:
    from storage.db import session_scope
    from storage.heartbeats import alive

    try:
        with session_scope() as session:
            found = alive(session, prefix="watcher:", since=now - WATCHER_FRESH)
    except Exception as exc:
        return Check("watcher", False, f"cannot read heartbeats: {type(exc).__name__}", "regflow db upgrade")
    return Check(
        "watcher",
        bool(found),
        f"{len(found)} watcher(s) alive: " + ", ".join(h.name for h in found)
        if found
        else "no watcher stamped in the last 30 s: reminders and escalations are not firing",
        "" if found else "regflow watch (under a supervisor)",
    )


def _channels() -> Check:
    from tasks.notify import load_channels

    path = get_settings().apprise_config_path
    if not path.exists():
        return Check(
            "channels",
            False,
            f"{path}: no apprise config; messages wait in the outbox",
            "write it and set REGFLOW_APPRISE_CONFIG (see README, Notifications)",
        )
    try:
        channels = load_channels(path)
    except Exception as exc:
        return Check("channels", False, f"{path}: {str(exc).splitlines()[0][:160]}", "fix the apprise config")
    tags = {tag for server in channels.servers for tag in server.tags}
    return Check(
        "channels",
        bool(channels.urls),
        f"{path}: {len(channels.urls)} destination(s), {len(tags)} tag(s)",
        "" if channels.urls else "add destinations to the apprise config",
    )


def _partners() -> Check:
    """The credit conditions and the partner departments load, and each partner's
    referrals have somewhere to go."""
    from rules.credit import load_credit_rules, load_partners
    from tasks.notify import load_channels

    settings = get_settings()
    try:
        load_credit_rules(settings.credit_rules)
        partners = load_partners(settings.partners_file).partners
    except Exception as exc:
        return Check(
            "partners", False, str(exc).splitlines()[0][:200], "fix data/rules/credit.yaml or data/partners.yaml"
        )
    try:
        channels = load_channels(settings.apprise_config_path)
        tags = {tag for server in channels.servers for tag in server.tags}
    except Exception:
        tags = set()
    unrouted = [p.channel for p in partners if p.channel not in tags]
    return Check(
        "partners",
        not unrouted,
        f"{len(partners)} partner department(s)"
        + (f"; no channel for {', '.join(unrouted)}: their referrals wait in the outbox" if unrouted else ""),
        "add their tags to the apprise config" if unrouted else "",
    )


def _people() -> Check:
    from rules.people import load_people

    path = get_settings().people_file
    try:
        directory = load_people(path)
    except Exception as exc:
        return Check("people", False, str(exc).splitlines()[0][:200], "fix it (see data/people.yaml)")
    heads = {p.authority for p in directory.people if "head" in p.roles}
    return Check(
        "people",
        bool(directory.people),
        f"{path}: {len(directory.people)} people, heads at {len(heads)} authorities",
        "" if directory.people else "list who may act",
    )


def _calendar(now: dt.datetime) -> Check:
    import pendulum

    from kernel.errors import CalendarUnavailable, InvalidInput
    from rules.calendar import load_calendar

    settings = get_settings()
    year = pendulum.instance(now).in_timezone(settings.timezone).year
    try:
        calendar = load_calendar(settings.calendar_override)
        for y in (year, year + 1):
            calendar.is_workday(dt.date(y, 1, 1))
            calendar.is_workday(dt.date(y, 12, 31))
    except CalendarUnavailable as exc:
        return Check(
            "holiday calendar",
            False,
            str(exc).split(":")[0],
            f"enter the State Council's schedule in {settings.calendar_override}",
        )
    except InvalidInput as exc:
        return Check("holiday calendar", False, str(exc), f"fix {settings.calendar_override}")
    return Check("holiday calendar", True, f"covers {year} and {year + 1}")


def _rosters(now: dt.datetime) -> Check:
    from storage.db import session_scope
    from tasks.render import local_time
    from tasks.rosters import AHEAD, gaps_ahead

    try:
        with session_scope() as session:
            found = gaps_ahead(session, now=now)
    except Exception as exc:
        return Check("duty rosters", False, f"cannot read rosters: {type(exc).__name__}", "regflow db upgrade")
    if not found:
        return Check("duty rosters", True, f"nobody missing in the next {AHEAD.days} days")
    shown = "; ".join(
        f"{g['authority']} {local_time(g['start'])} – {local_time(g['end'])}"
        + (f" ({g['holiday']})" if g["holiday"] else "")
        for g in found[:5]
    )
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return Check(
        "duty rosters", False, f"nobody on duty: {shown}{more}", "regflow duty import FILE, or regflow duty override"
    )


def run_checks() -> list[Check]:
    from storage.db import utcnow

    now = utcnow()
    return [
        *_database(),
        *_prefect(now),
        _watcher(now),
        _channels(),
        _partners(),
        _people(),
        _calendar(now),
        _rosters(now),
    ]


def doctor(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> int:
    """Check the set-up: database migrated, Prefect reachable, pool, worker and deployments,
    a watcher alive, channels loading, holidays known for this year and the next. Exits 1
    if anything needs fixing, and says how.

    Example: regflow doctor
    """
    checks = run_checks()
    if json_out:
        emit_json([asdict(c) for c in checks])
    else:
        table = Table("check", "", "found", "to fix", title="regflow doctor")
        for c in checks:
            table.add_row(c.name, "ok" if c.ok else "FAIL", c.detail, c.fix)
        console().print(table)
    return 0 if all(c.ok for c in checks) else 1


def register(app: typer.Typer) -> None:
    app.command()(doctor)
