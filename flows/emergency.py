"""The `emergency-response` flow: one run per incident, from activation to closure.

    activate the plan -> notify -> dispatch the on-site team
    -> arrival -> initial report -> progress reports until closed
    -> final report -> post-incident review (drafts the release notice) -> closed

The steps are declared in `rules.incidents.EMERGENCY` and walked by `flows.steps`:
each suspends the run (no process is held) with a typed form the CLI answers too. A
resumed run starts again from the top, so every task is idempotent by its own key.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow

from flows.params import AUTHORITY_HELP, AuthorityCode, Param, PlanKey
from flows.steps import run_form, walk
from rules.incidents import EMERGENCY
from rules.plans import Level
from tasks.emergency import activate_plan, dispatch_team
from tasks.prefect_tasks import deliver_notifications, keep_alive


@flow(name="emergency-response", log_prints=True)
def emergency_response(
    plan: PlanKey = Param(title="预案 Plan", description="预案 / emergency plan (data/plans)"),
    level: Level = Param(title="响应级别 Level", description="I 特别重大, II 重大, III 较大, IV 一般"),
    title: str = Param(title="事件名称 Title", description="简要描述事件 / short title", max_length=200),
    location: str = Param(title="地点 Location", description="事发地点 / where it happened", max_length=200),
    authority: AuthorityCode = Param(title="承办单位 Authority", description=AUTHORITY_HELP),
    occurred_at: dt.datetime | None = Param(
        default=None, title="发生时间 Occurred at", description="留空为当前时间 / empty means now"
    ),
    reporter: str | None = Param(
        default=None, title="报告人 Reporter", max_length=100, description="接报人或报告人姓名 / who reported it"
    ),
    incident_number: str | None = Param(
        default=None,
        title="事件编号 Incident number",
        description="由 regflow CLI 填写，界面触发时留空 / set by the CLI; leave empty",
    ),
) -> str:
    params = run_form(locals(), but="incident_number")
    keep_alive()
    number = activate_plan(params, incident_number)
    deliver_notifications(number)
    dispatch_team(number)
    deliver_notifications(number)
    walk(number, EMERGENCY)
    return number
