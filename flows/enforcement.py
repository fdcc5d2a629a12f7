"""The enforcement side: one run per case (`enforcement-case`), per 12315 complaint
(`complaint-handling`) and per look-back review (`lookback-review`, a scheduled run
created when a case closes with a penalty or a rectification order).

Each walks its lifecycle, declared in `rules/cases.py`, with `flows.steps`: every
human step suspends the run (no process held) with a typed form the CLI answers too;
a resumed run starts again from the top, so every task is idempotent. Deadlines,
reminders and escalation are rows the watcher fires, not timers in these flows.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from prefect import flow

from flows.params import AUTHORITY_HELP, AuthorityCode, Param
from flows.steps import run_form, walk
from rules.cases import CASE, COMPLAINT, LEAD_SOURCES, LOOKBACK
from tasks.enforcement import receive_lead, schedule_lookback, start_linked_runs, start_lookback
from tasks.prefect_tasks import deliver_notifications, keep_alive

# The lead sources the rules know, as the Run form's drop-down.
Source = Literal[tuple(LEAD_SOURCES)]  # type: ignore[valid-type]


@flow(name="enforcement-case", log_prints=True)
def enforcement_case(
    title: str = Param(title="案由 Matter", description="涉嫌违法行为 / the suspected violation", max_length=200),
    party: str = Param(
        title="当事人 Party", description="当事人名称 / the business or person concerned", max_length=200
    ),
    source: Source = Param(
        default="complaint",
        title="线索来源 Source",
        description="complaint 投诉, report 举报, spot_check 监督抽查, referral 移送/交办, "
        "risk_alert 风险预警, lookback 回头看发现（由系统填写 / set by regflow）",
    ),
    authority: AuthorityCode = Param(title="承办单位 Authority", description=AUTHORITY_HELP),
    detail: str = Param(
        default="", title="线索内容 Detail", description="线索描述 / what the lead says", max_length=20000
    ),
    received_at: dt.datetime | None = Param(
        default=None, title="收到时间 Received at", description="留空为当前时间 / empty means now"
    ),
    reporter: str | None = Param(
        default=None,
        title="举报人 Reporter",
        max_length=100,
        description="举报人或投诉人 / who gave the lead (optional)",
    ),
    real_name: bool = Param(
        default=False,
        title="实名举报 Real-name report",
        description="实名举报人须在立案决定后 5 个工作日内告知 / told within 5 WD of the decision",
    ),
    number: str | None = Param(
        default=None,
        title="案件编号 Case number",
        description="由 regflow CLI 填写，界面触发时留空 / set by the CLI; leave empty",
    ),
) -> str:
    params = {"kind": "case", **run_form(locals(), but="number")}
    keep_alive()
    number = receive_lead(params, number)
    walk(number, CASE)
    start_linked_runs(number)
    schedule_lookback(number)
    deliver_notifications(number)
    return number


@flow(name="complaint-handling", log_prints=True)
def complaint_handling(
    title: str = Param(
        title="投诉事由 Subject", description="投诉内容概要 / what the complaint is about", max_length=200
    ),
    party: str = Param(
        title="被投诉人 Business", description="被投诉经营者 / the business complained about", max_length=200
    ),
    authority: AuthorityCode = Param(title="承办单位 Authority", description=AUTHORITY_HELP),
    detail: str = Param(
        default="",
        title="投诉内容 Detail",
        max_length=20000,
        description="投诉的事实与诉求 / facts and what the consumer asks for",
    ),
    reporter: str | None = Param(
        default=None, title="投诉人 Complainant", max_length=100, description="投诉人姓名 / the consumer complaining"
    ),
    reporter_contact: str | None = Param(
        default=None,
        title="联系方式 Contact",
        max_length=200,
        description="电话或地址，用于告知受理结果 / to tell them the outcome",
    ),
    source: Literal["complaint"] = Param(
        default="complaint", title="来源 Source", description="12315 投诉 / a consumer complaint"
    ),
    number: str | None = Param(
        default=None,
        title="投诉编号 Complaint number",
        description="由 regflow CLI 填写，界面触发时留空 / set by the CLI; leave empty",
    ),
) -> str:
    params = {"kind": "complaint", **run_form(locals(), but="number")}
    keep_alive()
    number = receive_lead(params, number)
    walk(number, COMPLAINT)
    start_linked_runs(number)
    deliver_notifications(number)
    return number


@flow(name="lookback-review", log_prints=True)
def lookback_review(
    case_number: str = Param(
        title="案件编号 Case number", description="回头看的原案件 / the closed case to look back on"
    ),
) -> str:
    keep_alive()
    start_lookback(case_number)
    deliver_notifications(case_number)
    walk(case_number, LOOKBACK, retag=False)
    start_linked_runs(case_number)
    return case_number
