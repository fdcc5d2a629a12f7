"""Action items from post-incident reviews: listed, and marked done by their owner or
a duty officer or head of the owner authority (or one above it). Each is assigned by
the review (`tasks.incidents`) with a deadline `action-<seq>` of its incident."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kernel.errors import InvalidInput, NotFound, StepConflict
from rules.incidents import clean_text
from storage import audit
from storage.actions import ActionItem, list_actions
from storage.db import session_scope
from storage.deadlines import get_deadline
from tasks.access import and_superiors, require
from tasks.incidents import INCIDENTS, IncidentContext
from tasks.render import local_time


def listing(
    *, open_only: bool = False, authority: str | None = None, subject: str | None = None
) -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = []
        for item in list_actions(session, open_only=open_only, authority=authority, subject=subject):
            deadline = get_deadline(session, subject=item.subject, name=item.deadline)
            rows.append({
                "id": item.id, "incident": item.subject, "seq": item.seq, "what": item.what,
                "authority": item.authority_code, "owner": item.owner, "due_on": item.due_on.isoformat(),
                "due_at": deadline.due_at if deadline else None, "status": item.status,
                "deadline": deadline.status if deadline else None, "done_at": item.done_at,
                "done_by": item.done_by, "note": item.note,
            })  # fmt: skip
        return rows


def complete(item_id: int, *, by: str, note: str, now: dt.datetime) -> ActionItem:
    """Mark an action item done: its deadline met (an escalation of it resolved), the
    owner authority and the incident's desk told, on the audit log."""
    note = clean_text(note)
    if not note or len(note) > 2000:
        raise InvalidInput("--note: say what was done (1 to 2000 characters)")
    with session_scope() as session:
        item = session.get(ActionItem, item_id)
        if item is None:
            raise NotFound(f"no action item {item_id} (list them with `regflow action list`)")
        if item.status == "done":
            raise StepConflict(
                f"action item {item_id} was already done at {local_time(item.done_at)} by {item.done_by}"
            )
        ctx = IncidentContext(session, INCIDENTS.load(session, item.subject))
        if by != item.owner:  # its owner, or the owner authority's desk or head (or one above)
            require(session, by, roles=("duty", "head"), authorities=and_superiors(ctx.tree, item.authority_code),
                    subject=item.subject, action=f"complete action item {item_id}", now=now)  # fmt: skip
        item.status, item.done_at, item.done_by, item.note = "done", now, by, note
        session.add(item)
        deadline = ctx.close(item.deadline, now)
        heading = (f"整改事项 {item.seq} 已完成", f"Action item {item.seq} done")
        tags = list(dict.fromkeys([f"{item.authority_code}.duty", *ctx.recipients(("desk",))]))
        ctx.notify(f"action-{item.seq}:done", heading, by=by, now=now, text=f"{item.what}\n\n{note}", tags=tags)
        audit.record(session, at=now, actor=by, action="action.done", subject=item.subject, action_item=item_id,
                     seq=item.seq, late=bool(deadline and now > deadline.due_at))  # fmt: skip
        session.flush()
        session.expunge(item)
        return item
