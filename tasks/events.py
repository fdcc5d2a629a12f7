"""Prefect events for what the deadline engine does, so supervisors see them in the
UI's event feed and can hang automations on them. Best effort: the database is the
record; an event that cannot be emitted is logged, never fatal."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("regflow.events")


def prefect_configured() -> bool:
    """True when a Prefect API is set. Without one, Prefect's client would start an
    ephemeral server inside this process: never do that from the watcher."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def emit_all(batch: list[tuple[str, dict[str, Any]]]) -> None:
    if not batch or not prefect_configured():
        return
    from prefect.events import emit_event

    for name, payload in batch:
        related = [
            {
                "prefect.resource.id": f"regflow.incident.{payload['number']}",
                "prefect.resource.role": "incident",
                "prefect.resource.name": payload["number"],
            },
            {"prefect.resource.id": f"regflow.authority.{payload['authority']}", "prefect.resource.role": "authority"},
        ]
        if payload.get("to"):  # where an escalation went (the national-level automation matches it)
            related.append(
                {"prefect.resource.id": f"regflow.authority.{payload['to']}", "prefect.resource.role": "escalated-to"}
            )
        if payload.get("flow_run_id"):
            related.append(
                {
                    "prefect.resource.id": f"prefect.flow-run.{payload['flow_run_id']}",
                    "prefect.resource.role": "flow-run",
                }
            )
        try:
            emit_event(
                event=name,
                resource={
                    "prefect.resource.id": f"regflow.deadline.{payload['deadline_id']}",
                    "prefect.resource.name": f"{payload['number']} {payload['deadline']}",
                },
                related=related,
                payload=payload,
            )
        except Exception as exc:
            log.warning("event %s not emitted: %s", name, type(exc).__name__)


def emit_audit_head(seq: int, digest: str) -> None:
    """The audit chain's head, outside our database: a record to check the chain
    against if the whole of it were ever rewritten."""
    if not prefect_configured():
        return
    from prefect.events import emit_event

    try:
        emit_event(
            event="regflow.audit.sealed",
            resource={"prefect.resource.id": "regflow.audit-chain", "prefect.resource.name": "audit chain"},
            payload={"seq": seq, "hash": digest},
        )
    except Exception as exc:
        log.warning("event regflow.audit.sealed not emitted: %s", type(exc).__name__)
