"""The platform's own operations: `operator-alert`, run by the automations regflow
keeps (tasks/automations.py), tells the operators through the `operators` tag. Its
deployment is not tagged `regflow`, so its own failure cannot set off an alert."""

from __future__ import annotations

import datetime as dt

from prefect import flow, task

from flows.params import AUTHORITY_HELP, AuthorityCode, Param
from storage.db import utcnow
from tasks.prefect_tasks import RETRY, deliver_notifications


@task(name="queue-alert", **RETRY)
def queue_alert(what: str, event: str, resource: str, name: str) -> bool:
    from tasks.automations import alert

    return alert(what, event=event, resource=resource, name=name, now=utcnow())


@flow(name="operator-alert", log_prints=True)
def operator_alert(
    what: str = Param(title="类别 What", description="crashed, national, pending"),
    event: str = Param("", title="事件 Event", description="触发的事件 / the event that set it off"),
    resource: str = Param("", title="对象 Resource", description="事件的对象 / what it is about"),
    name: str = Param("", title="名称 Name", description="对象名称 / its name"),
) -> bool:
    queued = queue_alert(what, event, resource, name)
    deliver_notifications("operators")
    print(f"operators told: {what} {name or resource}" if queued else "told already")
    return queued


@task(name="back-up")
def back_up_now(keep: int | None) -> str:
    from prefect.artifacts import create_markdown_artifact

    from tasks.backup import back_up, summary

    made, pruned = back_up(utcnow(), keep=keep)
    create_markdown_artifact(summary(made, pruned), key="regflow-backup", description="regflow 数据库备份")
    return str(made.path)


@flow(name="regflow-backup", log_prints=True)
def regflow_backup(
    keep: int | None = Param(None, title="保留份数 Keep", description="保留最近几份备份 / backups kept (default 14)"),
) -> str:
    """regflow's database, the audit anchor and the identity key, backed up; old backups
    pruned. Tagged `regflow`: a failed backup alerts the operators like any failed run."""
    path = back_up_now(keep)
    print(f"backup: {path}")
    return path


@task(name="make-supervision-report")
def make_supervision_report(authority: str, month: str) -> str:
    import pendulum
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from kernel.settings import get_settings
    from rules.calendar import load_calendar
    from rules.stats import windows
    from tasks.reports import monthly, subject

    settings = get_settings()
    today = pendulum.now(settings.timezone).date()
    window = None
    if month:
        day = dt.date.fromisoformat(f"{month}-01")
        window = windows(day, day, "month", settings.timezone)[0]
    elif today != (first := load_calendar(settings.calendar_override).next_workday_on_or_after(today.replace(day=1))):
        print(f"{today} is not the month's first working day ({first}): no report today")
        return ""
    made = monthly(authority, today=today, now=utcnow(), month=window)
    links = "\n".join(f"- {name}: `{path}`" for name, path in {"report": made.html, **made.plots}.items())
    create_markdown_artifact(f"{made.summary}\n### 文件 Files\n{links}\n", key=f"supervision-report-{authority}",
                             description="监管月报 / supervision report")  # fmt: skip
    by_name = made.data["periods"][-1]["deadlines"]["by_name"]
    rows = [{"deadline": name, **line} for name, line in by_name.items()]
    create_table_artifact(rows, key=f"supervision-deadlines-{authority}", description="各类时限按时率 / on-time shares")
    deliver_notifications.fn(subject(authority, made.folder.name))
    return str(made.html)


@flow(name="supervision-report", log_prints=True)
def supervision_report(
    authority: AuthorityCode = Param(title="省局 Province", description=AUTHORITY_HELP),
    month: str = Param("", title="月份 Month", description="YYYY-MM；留空为上月 / blank: last month"),
) -> str:
    """The monthly supervision report of a province and all it supervises, on the first
    working day of each month (scheduled daily on days 1-10; other days do nothing)."""
    return make_supervision_report(authority, month)
