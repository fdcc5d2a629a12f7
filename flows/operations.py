"""The platform's own operations: `operator-alert`, run by the automations regflow
keeps (tasks/automations.py), tells the operators through the `operators` tag. Its
deployment is not tagged `regflow`, so its own failure cannot set off an alert."""

from __future__ import annotations

from prefect import flow, task

from flows.params import Param
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
