"""The `emergency-response` flow: one run per incident, from activation to closure.

    activate the plan -> notify -> dispatch the on-site team
    -> arrival -> initial report -> progress reports until closed
    -> final report -> post-incident review (drafts the release notice) -> closed

Each human step suspends the run (no process is held) with a typed form; the CLI
answers the same form. A resumed run starts again from the top, so every task is
idempotent by its own key and the suspension key is the step's name.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow
from prefect.flow_runs import suspend_flow_run

from flows.forms import FORMS
from flows.params import AUTHORITY_HELP, Param, AuthorityCode, PlanKey
from rules import lifecycle
from rules.plans import Level
from tasks.emergency import (activate_plan, deliver_notifications, dispatch_team, keep_alive, open_step,
                             publish_documents, publish_status, record_answer)


@flow(name="emergency-response", log_prints=True)
def emergency_response(
    plan: PlanKey = Param(title="预案 Plan", description="预案 / emergency plan (data/plans)"),
    level: Level = Param(title="响应级别 Level", description="I 特别重大, II 重大, III 较大, IV 一般"),
    title: str = Param(title="事件名称 Title", description="简要描述事件 / short title", max_length=200),
    location: str = Param(title="地点 Location", description="事发地点 / where it happened", max_length=200),
    authority: AuthorityCode = Param(title="承办单位 Authority", description=AUTHORITY_HELP),
    occurred_at: dt.datetime | None = Param(default=None, title="发生时间 Occurred at",
                                            description="留空为当前时间 / empty means now"),
    reporter: str | None = Param(default=None, title="报告人 Reporter", max_length=100,
                                 description="接报人或报告人姓名 / who reported it"),
    incident_number: str | None = Param(default=None, title="事件编号 Incident number",
                                        description="由 regflow CLI 填写，界面触发时留空 / set by the CLI; leave empty"),
) -> str:
    keep_alive()
    params = dict(plan=plan, level=level, title=title, location=location, authority=authority,
                  occurred_at=occurred_at, reporter=reporter)
    number = activate_plan(params, incident_number)
    deliver_notifications(number)
    dispatch_team(number)
    deliver_notifications(number)
    step: lifecycle.StepSpec | None = lifecycle.ARRIVAL
    while step is not None:
        answer = await_human_step(number, step)
        deliver_notifications(number)
        step = lifecycle.following(step.name, answer)
    publish_status(number)
    return number


def await_human_step(number: str, step: lifecycle.StepSpec) -> dict:
    """One human step: wait for its answer unless it was already given (from the CLI,
    or before this re-run), then publish its documents. A refused answer is asked
    for again under a new suspension key."""
    while True:
        state = open_step(number, step.name)
        if state.status == "answered":
            answer = state.answer
            break
        publish_status(number)  # what it waits for, on the run's tags and artifacts
        form = FORMS[step.form]
        given = suspend_flow_run(wait_for_input=form.with_initial_data(description=state.prompt),
                                 key=state.pause_key, timeout=None)
        answer = record_answer(number, step.name, given.model_dump())
        if answer is not None:  # None: refused (a rule, or who may answer), on record; asked again
            break
    publish_documents(number, step.name)
    return answer
