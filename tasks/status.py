"""One incident's or case's status at a glance, for supervisors in the Prefect UI.

Three artifacts on the subject's flow run, updated in place whenever its flow
reaches a step and whenever the watcher reminds or escalates about it:

- `<number>-timeline`: every recorded action, in order, in local time (Markdown);
- `<number>-deadlines`: its deadlines with owner, due time, status and time left (table);
- `<number>-progress`: how far the lifecycle has come (progress, 0-100).

Each carries the time it was taken in its description: time left is as of then.
`records` is also what `incident show` and `case show` print.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any

from sqlmodel import Session, select

from storage.db import session_scope
from storage.subjects import Subject, subject_for

log = logging.getLogger("regflow.status")

ACTIONS = {
    "incident.triggered": "启动预案 plan activated",
    "incident.dispatched": "派出现场处置组 team dispatched",
    "incident.handling_ended": "处置结束 handling ended",
    "incident.closed": "结案 closed",
    "step.opened": "等待 awaiting",
    "step.answered": "已填报 answered",
    "step.refused": "填报被退回 refused",
    "deadline.reminder": "时限提醒 reminder",
    "deadline.missed": "逾期 missed",
    "escalation.raised": "上报督办 escalated",
    "escalation.climbed": "督办升级 escalation climbed",
    "escalation.acknowledged": "督办已签收 acknowledged",
    "escalation.resolved": "督办解除 resolved",
    "deadline.paused": "时限中止 clock paused",
    "deadline.resumed": "时限恢复 clock resumed",
    "deadline.extended": "时限延长 extended",
    "case.received": "收到线索 lead received",
    "case.closed": "结案 closed",
    "drill.scored": "演练评分 drill scored",
    "step.forbidden": "无权填报，已拒绝 not allowed",
    "run.recovered": "流程运行已恢复 run recovered",
}


def records(session: Session, number: str) -> dict[str, Any]:
    """Everything on record about one subject, as plain data."""
    from storage.audit import events_for
    from storage.deadlines import deadlines_for
    from storage.escalations import Escalation
    from storage.incidents import reports_for
    from storage.notifications import notifications_for
    from storage.steps import steps_for

    escalations = session.exec(select(Escalation).where(Escalation.subject == number)).all()
    return {
        "steps": _plain(steps_for(session, subject=number),
                        "name status opened_at answered_at by=answered_by source answer"),
        "deadlines": _plain(deadlines_for(session, subject=number),
                            "id name authority due_at status starts_at closed_at rule extensions reminders_sent"),
        "notifications": _plain(notifications_for(session, subject=number),
                                "tag title status attempts sent_at last_error"),
        "escalations": _plain(escalations, "id deadline_id status level raised_at acked_by",
                              level=lambda e: e.step + 1),
        "reports": _plain(reports_for(session, subject=number), "kind step author submitted_at"),
        "timeline": _plain(events_for(session, subject=number), "at actor action detail"),
    }  # fmt: skip


def _plain(rows, fields: str, **computed) -> list[dict[str, Any]]:
    """Rows as dicts of the named fields (`key=attribute` renames; `computed` derives)."""

    def one(row) -> dict[str, Any]:
        item = {}
        for field in fields.split():
            key, _, attribute = field.partition("=")
            item[key] = computed[key](row) if key in computed else getattr(row, attribute or key)
        return item

    return [one(row) for row in rows]


def progress(subject: Subject, data: dict[str, Any]) -> tuple[float, str]:
    """Percent of the lifecycle done, and what it waits for now (zh / en)."""
    if not subject.is_open:
        return 100.0, "已结案 / closed"
    answered = {s["name"]: s["answer"] or {} for s in data["steps"] if s["status"] == "answered"}
    steps = subject.lifecycle.open_steps(answered)
    titles = "；".join(s.title for s in steps) if steps else "已结案 / closed"
    return subject.lifecycle.progress(steps[0] if steps else None), titles


def timeline_markdown(subject: Subject, data: dict[str, Any], now: dt.datetime) -> str:
    from rules.lifecycles import label
    from tasks.render import cell, local_time

    lines = [
        f"# {subject.number} {subject.title}",
        "",
        f"时间线（{local_time(now)} 时点）/ Timeline as of {local_time(now)} Asia/Shanghai",
        "",
        "| 时间 time | 人员 who | 事项 what |",
        "|---|---|---|",
    ]
    for event in data["timeline"]:
        what = ACTIONS.get(event["action"], event["action"])
        detail = event["detail"]
        for key in ("step", "deadline"):
            if detail.get(key):
                what += f" · {label(detail[key]) if key == 'deadline' else detail[key]}"
        if detail.get("to"):
            what += f" → {detail['to']}"
        lines.append(f"| {local_time(event['at'])} | {cell(event['actor'])} | {cell(what)} |")
    return "\n".join(lines) + "\n"


def deadline_table(data: dict[str, Any], now: dt.datetime) -> list[dict[str, str]]:
    from rules.lifecycles import label
    from tasks.render import local_time, time_left

    escalated = {e["deadline_id"]: e for e in data["escalations"] if e["status"] == "open"}
    rows = []
    for d in data["deadlines"]:
        status = d["status"]
        if status == "open" and d["due_at"] < now:
            status = "overdue 逾期"
        left = time_left(d["due_at"], now) if d["status"] in ("open", "paused") else local_time(d["closed_at"])
        escalation = escalated.get(d["id"])
        rows.append(
            {
                "时限 deadline": f"{label(d['name'])} {d['name']}",
                "承办 owed by": d["authority"],
                "截止 due": local_time(d["due_at"]),
                "状态 status": status,
                "剩余/完成 left or done": left,
                "督办 escalation": f"#{escalation['id']} level {escalation['level']}" if escalation else "",
            }
        )
    return rows


def publish(number: str, now: dt.datetime, *, run_id: uuid.UUID | None = None) -> int:
    """Publish the three artifacts on the subject's flow run (or `run_id`, a look-back
    run); 0 when Prefect is not configured or there is no run yet."""
    from tasks.events import prefect_configured
    from tasks.render import local_time

    if not prefect_configured():
        return 0
    with session_scope() as session:
        subject = subject_for(session, number)
        run_id = run_id or (subject.flow_run_id if subject is not None else None)
        if subject is None or run_id is None:
            return 0
        data = records(session, subject.number)
        percent, awaiting = progress(subject, data)
        timeline = timeline_markdown(subject, data, now)
        table = deadline_table(data, now)
        key = subject.number.lower()
    from tasks.runs import write_artifacts

    at = local_time(now)
    deadlines = json.dumps(table or [{"状态 status": "无时限 / no deadlines"}], ensure_ascii=False)
    artifacts = [
        dict(key=f"{key}-timeline", type="markdown", data=timeline, description=f"{number} 时间线 / timeline, {at}"),
        dict(key=f"{key}-deadlines", type="table", data=deadlines, description=f"{number} 时限 / deadlines, {at}"),
        dict(
            key=f"{key}-progress",
            type="progress",
            data=percent,
            description=f"{number}: {percent:.0f}% — 当前 / now: {awaiting}",
        ),
    ]
    write_artifacts(run_id, artifacts)  # updated in place: the run shows one of each, always the latest
    return len(artifacts)


def publish_softly(number: str, now: dt.datetime) -> bool:
    """For the watcher: `publish`, a failure logged; a status page is a view, and it
    must not stop the watcher."""
    try:
        return bool(publish(number, now))
    except Exception as exc:
        log.warning("%s: status not published: %s", number, str(exc).splitlines()[0] if str(exc) else exc)
        return False
