"""The supervision board: open deadlines by authority, time left or overdue, open
escalations, messages failing and watcher managers failing. `regflow board` prints
it; the watcher publishes it as the Prefect table artifact `supervision-board` when it
changes (at most once a minute). Bounded: counts per authority come from the
database, rows are the most urgent few hundred."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from rules.lifecycles import label
from storage.authorities import load_tree
from storage.cases import Case
from storage.db import session_scope
from storage.deadlines import Deadline
from storage.escalations import Escalation
from storage.incidents import Incident
from tasks.render import local_time, time_left

ROWS = 200
ARTIFACT_KEY = "supervision-board"
# A manager is on the board once it has failed this many runs in a row: one failure
# is a blip the next cycle usually clears (a Prefect restart, a locked database).
MANAGER_FAILING_AFTER = 3
# Rows of a watcher not heard from for this long are left off: it is gone, and its
# managers with it (`regflow doctor` says no watcher is alive, if none is).
WATCHER_ALIVE = dt.timedelta(seconds=30)


@dataclass
class Published:
    """What `publish` last published and when; its caller keeps it between calls."""

    at: dt.datetime | None = None
    digest: str | None = None


def under(session: Session, code: str) -> list[str]:
    """`code` and every authority it supervises, directly or not."""
    tree = load_tree(session)
    tree.get(code)
    return [a.code for a in tree.authorities if a.code == code or code in {s.code for s in tree.chain_up(a.code)}]


def board(*, now: dt.datetime, authority: str | None = None, limit: int = ROWS) -> dict[str, Any]:
    with session_scope() as session:
        scope = under(session, authority) if authority else None
        open_ = Deadline.status.in_(("open", "paused"))
        counts = (
            select(Deadline.authority, sa.func.count(), sa.func.sum(sa.case((Deadline.due_at < now, 1), else_=0)))
            .where(open_)
            .group_by(Deadline.authority)
        )
        rows = select(Deadline).where(open_).order_by(Deadline.due_at).limit(limit)
        if scope is not None:
            counts, rows = counts.where(Deadline.authority.in_(scope)), rows.where(Deadline.authority.in_(scope))
        by_authority = [
            {"authority": code, "open": total, "overdue": int(overdue or 0)}
            for code, total, overdue in session.execute(counts).all()
        ]
        found = list(session.exec(rows).all())
        items = _items(session, found, now)
        open_escalations = session.execute(
            select(sa.func.count()).select_from(Escalation).where(Escalation.status == "open")
        ).scalar_one()
        failing = _failing(session, scope)
        managers = failing_managers(session, now)
    return {
        "authorities": sorted(by_authority, key=lambda r: r["authority"]),
        "deadlines": items,
        "open_escalations": open_escalations,
        "failing_messages": failing,
        "failing_managers": managers,
    }


def _items(session: Session, found: list[Deadline], now: dt.datetime) -> list[dict[str, Any]]:
    """The board's rows: each deadline with its subject's title, time left and open escalation."""
    ids = [d.id for d in found]
    opened = select(Escalation).where(Escalation.deadline_id.in_(ids), Escalation.status == "open")
    escalations = {e.deadline_id: e for e in session.exec(opened).all()} if found else {}
    titles = _titles(session, {d.subject for d in found})
    items = []
    for deadline in found:
        escalation = escalations.get(deadline.id)
        status = "paused" if deadline.status == "paused" else "overdue" if deadline.due_at < now else "open"
        items.append({
            "authority": deadline.authority, "subject": deadline.subject, "title": titles.get(deadline.subject, ""),
            "deadline": deadline.name, "label": label(deadline.name), "due_at": deadline.due_at.isoformat(),
            "status": status, "time_left": time_left(deadline.due_at, now),
            "escalation": escalation.id if escalation else None,
            "escalation_step": escalation.step if escalation else None,
        })  # fmt: skip
    return items


def failing_managers(session: Session, now: dt.datetime) -> list[dict[str, Any]]:
    """Managers of live watchers that keep failing. Not scoped to an authority: a
    manager that fails holds back every authority's reminders or messages."""
    from storage.heartbeats import failing

    return [
        {
            "watcher": h.watcher,
            "manager": h.manager,
            "failures": h.failures,
            "since": h.failing_since.isoformat(),
            "error": h.error,
        }
        for h in failing(session, at_least=MANAGER_FAILING_AFTER, alive_since=now - WATCHER_ALIVE)
    ]


def manager_line(m: dict[str, Any]) -> str:
    """One failing manager in words, as the CLI and the artifact show it."""
    since = local_time(dt.datetime.fromisoformat(m["since"]))
    return f"watcher manager {m['manager']} failing since {since} ({m['failures']} cycles): {m['error']}"


def _failing(session: Session, scope: list[str] | None, limit: int = 50) -> list[dict[str, Any]]:
    """Messages that could not be delivered yet (errors are already scrubbed of secrets)."""
    from storage.notifications import Notification

    stmt = select(Notification).where(Notification.status == "retrying").order_by(Notification.created_at).limit(limit)
    rows = [n for n in session.exec(stmt).all() if scope is None or n.tag.split(".")[0] in scope]
    return [
        {
            "subject": n.subject,
            "to": n.tag,
            "title": n.title,
            "attempts": n.attempts,
            "error": n.last_error or "",
            "next_attempt_at": n.next_attempt_at.isoformat(),
        }
        for n in rows
    ]


def _titles(session: Session, numbers: set[str]) -> dict[str, str]:
    """Titles by number; a drill's title says it is one, so it is never taken for real."""
    from rules.drills import DRILL_MARK

    found = [
        (number, DRILL_MARK + title if drill else title)
        for number, title, drill in session.execute(
            select(Incident.number, Incident.title, Incident.drill).where(Incident.number.in_(numbers))
        ).all()
    ]
    found += session.execute(select(Case.number, Case.title).where(Case.number.in_(numbers))).all()
    return dict(found)


def table(data: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "单位 authority": r["authority"],
            "事项 subject": r["subject"],
            "标题 title": r["title"],
            "时限 deadline": r["label"],
            "截止 due": local_time(dt.datetime.fromisoformat(r["due_at"])),
            "状态 status": r["status"],
            "剩余 left": r["time_left"],
            "督办 escalation": f"#{r['escalation']} (level {r['escalation_step'] + 1})" if r["escalation"] else "",
        }
        for r in data["deadlines"]
    ]


def publish(now: dt.datetime, *, every: float = 60.0, last: Published | None = None) -> int:
    """Publish the board artifact if it changed since `last` and `every` seconds have
    passed since (without `last`: now); 1 if published. `last` is updated."""
    from tasks.events import prefect_configured

    last = last if last is not None else Published()
    if not prefect_configured() or last.at is not None and (now - last.at).total_seconds() < every:
        return 0
    data = board(now=now)
    digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    last.at = now
    if digest == last.digest:
        return 0
    # The watcher is not a flow run: create the artifact through the API directly
    # (the SDK helper is deprecated outside runs).
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    summary = ", ".join(f"{a['authority']}: {a['open']} open / {a['overdue']} overdue" for a in data["authorities"])
    rows = table(data) or [{"状态 status": "无待办时限 / nothing open"}]
    rows += [
        {
            "单位 authority": m["to"],
            "事项 subject": m["subject"],
            "标题 title": m["title"],
            "状态 status": f"消息发送失败 message failing ({m['attempts']} tries)",
            "督办 escalation": m["error"][:120],
        }
        for m in data["failing_messages"]
    ]
    # First: while a manager fails, the rows above may be stale or their messages unsent.
    rows = [
        {"单位 authority": m["watcher"], "状态 status": "值守程序故障 watcher failing", "标题 title": manager_line(m)}
        for m in data["failing_managers"]
    ] + rows
    managers = f"; {len(data['failing_managers'])} watcher manager(s) failing" if data["failing_managers"] else ""
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                key=ARTIFACT_KEY,
                type="table",
                data=json.dumps(rows, ensure_ascii=False),
                description=f"督办看板 supervision board, {local_time(now)} — {summary or 'nothing open'}; "
                f"{data['open_escalations']} open escalation(s); "
                f"{len(data['failing_messages'])} message(s) failing{managers}",
            )
        )
    last.digest = digest
    return 1
