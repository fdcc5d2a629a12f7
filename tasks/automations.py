"""What `regflow deploy` keeps in Prefect beside the deployments: the work queues' order
and limits (emergency runs first, enforcement work never in every slot) and the
automations (created or updated by name): what the platform's operators must hear of
at once, told through the `operators` apprise tag by the `operator-alert` deployment:

- a regflow flow run crashed or failed (the runs of regflow's deployments carry the
  `regflow` tag; `operator-alert`'s own do not, so a failing alert cannot loop);
- an escalation reaching the national level (the event regflow emits names the
  authority it went to, `escalated-to`);
- a flow run pending longer than `REGFLOW_PENDING_ALERT_MINUTES` (default 5): no worker
  has picked it up.

They appear on the UI's Automations page; the messages go out through regflow's outbox
like every other, so a failed delivery is retried and nothing is sent twice.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from kernel.settings import get_settings
from storage import notifications as outbox
from storage.db import session_scope

ALERTS = {
    "crashed": ("regflow 流程运行崩溃或失败", "A regflow flow run crashed or failed"),
    "national": ("升级已到达国家级", "An escalation reached the national level"),
    "pending": ("流程运行长时间未被执行", "A flow run has waited too long for a worker"),
}
PREFIX = "regflow: "
POOL = "regflow"


def specs(deployment_id, *, national: list[str], pending_minutes: int) -> list:
    """The automations as Prefect's API takes them, each running `operator-alert`."""
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    def run_alert(what: str) -> list:
        parameters = {
            "what": what,
            "event": "{{ event.event }}",
            "resource": "{{ event.resource.id }}",
            "name": "{{ event.resource.name }}",
        }
        return [RunDeployment(source="selected", deployment_id=deployment_id, parameters=parameters)]

    def on_each(expect: set[str], match_related: dict, what: str, name: str, description: str):
        """An automation that alerts on every single event of a kind."""
        trigger = EventTrigger(expect=expect, match_related=match_related, posture=Posture.Reactive, threshold=1,
                               within=dt.timedelta(0))  # fmt: skip
        return AutomationCore(name=f"{PREFIX}{name}", description=description, trigger=trigger,
                              actions=run_alert(what))  # fmt: skip

    return [
        on_each(
            {"prefect.flow-run.Crashed", "prefect.flow-run.Failed"},
            {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.regflow"},
            "crashed",
            "run crashed or failed",
            "A flow run of a regflow deployment crashed or failed: tell the operators.",
        ),
        on_each(
            {"regflow.escalation.raised"},
            {
                "prefect.resource.role": "escalated-to",
                "prefect.resource.id": [f"regflow.authority.{code}" for code in national],
            },
            "national",
            "escalation at the national level",
            "A missed deadline escalated to a national authority: tell the operators.",
        ),
        AutomationCore(
            name=f"{PREFIX}run pending too long",
            description=f"A flow run pending for {pending_minutes} minutes without starting: tell the operators.",
            trigger=EventTrigger(
                after={"prefect.flow-run.Pending"},
                expect={"prefect.flow-run.Running", "prefect.flow-run.Crashed", "prefect.flow-run.Cancelled"},
                for_each={"prefect.resource.id"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                posture=Posture.Proactive,
                threshold=1,
                within=dt.timedelta(minutes=pending_minutes),
            ),
            actions=run_alert("pending"),
        ),
    ]


QUEUES = {"emergency": 1, "default": 2}  # by priority: a worker takes the first queue's runs first


def queue_limits() -> dict[str, int | None]:
    """Runs each queue may have executing at once (Pending or Running: a run suspended
    on a human step holds no slot). Enforcement work gets `REGFLOW_ENFORCEMENT_RUN_SLOTS`
    of the workers' slots, so however much of it is queued, an incident's run finds a
    free slot; emergencies are not limited. One limit for the whole queue: a limit per
    deployment would let a dozen enforcement deployments fill every slot together."""
    return {"emergency": None, "default": get_settings().enforcement_run_slots}


def ensure_queues(client) -> None:
    """The pool's queues in their order: `emergency` (emergency-response and the
    incident actions) before `default` (everything else), with their limits."""
    from prefect.exceptions import ObjectNotFound

    limits = queue_limits()
    for name, priority in QUEUES.items():
        try:
            queue = client.read_work_queue_by_name(name, work_pool_name=POOL)
        except ObjectNotFound:
            client.create_work_queue(name=name, work_pool_name=POOL, priority=priority, concurrency_limit=limits[name])
            continue
        if (queue.priority, queue.concurrency_limit) != (priority, limits[name]):
            client.update_work_queue(queue.id, priority=priority, concurrency_limit=limits[name])


def ensure() -> list[str]:
    """Create each automation missing, update each that differs (by name); returns the
    names. Idempotent: `regflow deploy` runs it each time."""
    from prefect.client.orchestration import get_client

    from rules.authorities import load_authorities
    from tasks.runs import prefect_api

    tree = load_authorities(get_settings().authorities_file)
    national = [a.code for a in tree.authorities if a.tier.value == "national"]
    minutes = int(os.environ.get("REGFLOW_PENDING_ALERT_MINUTES", "5"))
    with prefect_api("keep the work queues and automations"), get_client(sync_client=True) as client:
        ensure_queues(client)
        deployment = client.read_deployment_by_name("operator-alert/operator-alert")
        wanted = specs(deployment.id, national=national, pending_minutes=minutes)
        for spec in wanted:
            found = client.read_automations_by_name(spec.name)
            if not found:
                client.create_automation(spec)
                continue
            first, *others = found
            for extra in others:  # one of each name
                client.delete_automation(extra.id)
            if _shape(first) != _shape(spec):
                client.update_automation(first.id, spec)
    return [spec.name for spec in wanted]


def _shape(automation) -> dict[str, Any]:
    """What an automation does, without the ids Prefect gives its parts."""
    shape = automation.model_dump(mode="json", include={"trigger", "actions", "description", "enabled"})
    shape["trigger"].pop("id", None)
    return shape


def alert(what: str, *, event: str, resource: str, name: str, now: dt.datetime) -> bool:
    """The operators told (once per event and resource), through the outbox."""
    from tasks.render import local_time

    zh, en = ALERTS.get(what, (what, what))
    body = f"{zh} / {en}\n\n{name or resource}\n事件 event: {event}\n时间 at: {local_time(now)}（北京时间）"
    with session_scope() as session:
        return outbox.enqueue(
            session,
            key=f"operators:{what}:{resource}:{event}",
            subject="operators",
            tag="operators",
            title=f"【运维】{zh}",
            body=body,
            now=now,
        )
