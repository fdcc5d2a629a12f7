"""Small deployments that act on an open incident from the Prefect UI's Run form, for
what the incident's own run is not suspended on: another line's step (the end of
handling, an information release) and re-grading. Each records the action as the CLI
does, hands the answer to the incident's run, and completes; a refusal (who may act,
a step not open, bad input) fails the run with the one-line reason."""

from __future__ import annotations

from prefect import flow

from flows.params import Param
from rules.plans import Level
from tasks.emergency import act_on_incident, regrade_incident
from tasks.prefect_tasks import deliver_notifications

NUMBER = Param(title="事件编号 Incident number", description="如 INC-2026-000001", max_length=32)


@flow(name="incident-close", log_prints=True)
def incident_close(
    number: str = NUMBER,
    officer: str = Param(title="现场负责人 Officer in charge", max_length=100),
    summary: str = Param(title="处置结束小结 Summary", description="处置经过与结果", max_length=20000),
) -> str:
    """结束处置（现场处置线） / End of handling, on the on-site line."""
    outcome = act_on_incident(number, "close", {"officer": officer, "text": summary})
    deliver_notifications(number)
    return outcome


@flow(name="incident-release", log_prints=True)
def incident_release(
    number: str = NUMBER,
    approver: str = Param(title="批准人 Approved by", description="批准发布的负责人", max_length=100),
    text: str = Param(
        default="", title="发布内容 Release text", description="留空则发布依据事件记录起草的通稿", max_length=20000
    ),  # fmt: skip
    press_conference: bool = Param(default=False, title="新闻发布会 Press conference"),
) -> str:
    """信息发布 / Information release, approved by the head."""
    outcome = act_on_incident(
        number, "release", {"approver": approver, "text": text, "press_conference": press_conference}
    )
    deliver_notifications(number)
    return outcome


@flow(name="incident-relevel", log_prints=True)
def incident_relevel(
    number: str = NUMBER,
    level: Level = Param(title="新响应级别 New level", description="I 特别重大, II 重大, III 较大, IV 一般"),
    reason: str = Param(title="调整理由 Reason", max_length=2000),
    by: str = Param(title="负责人 Head", description="本单位或上级单位负责人", max_length=100),
) -> list[str]:
    """响应级别调整 / Re-grade an incident (the head of its authority or one above)."""
    moved = regrade_incident(number, level, reason, by)
    deliver_notifications(number)
    return moved
