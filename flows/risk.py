"""Risk monitoring and recalls: one `risk-item` run per risk item, one `recall` run
per recall, each walking its lifecycle (`rules/risk.py`) with `flows.steps`, so every
human step waits in the UI with its typed form as it does from the CLI; a
`signal-ingest` run takes one signal from the deployment's Run form; `risk-review`
lists, per authority and each quarter, what is open and late."""

from __future__ import annotations

import datetime as dt

from prefect import flow, task

from flows.params import AUTHORITY_HELP, AuthorityCode, Param
from flows.steps import walk
from storage.db import utcnow
from tasks.enforcement import start_linked_runs
from tasks.prefect_tasks import RETRY, deliver_notifications, keep_alive, subject_of_run


@flow(name="risk-item", log_prints=True)
def risk_item(
    number: str = Param(title="风险项 Risk item", description="由信号归集生成 / opened by grouping signals"),
) -> str:
    from rules.risk import RISK

    keep_alive()
    number = subject_of_run(number, None)
    walk(number, RISK, after=start_linked_runs)
    deliver_notifications(number)
    return number


@flow(name="recall", log_prints=True)
def recall(
    number: str = Param(title="召回 Recall", description="regflow recall open 或风险项决定生成 / opened by either"),
) -> str:
    from storage.cases import get_case
    from storage.db import session_scope

    keep_alive()
    number = subject_of_run(number, None)
    with session_scope() as session:
        lifecycle = get_case(session, number=number).lifecycle
    walk(number, lifecycle, after=start_linked_runs)
    deliver_notifications(number)
    return number


@task(name="ingest-signal", **RETRY)
def ingest_signal(data: dict) -> dict:
    from tasks import risk

    fields = {k: v for k, v in data.items() if k != "by"}  # a retry gets the same dict: leave it whole
    return risk.ingest_one(fields, by=data["by"], now=utcnow()).as_dict()


@flow(name="signal-ingest", log_prints=True)
def signal_ingest(
    source: str = Param(
        title="来源 Source",
        description="complaint, injury_monitoring, spot_check, recall_notice, "
        "media, foreign_notice, laboratory, enterprise_report",
    ),
    category: str = Param(title="产品类别 Category", description="如 电动自行车 / e.g. e-bikes"),
    product: str = Param(title="产品 Product", description="产品名称"),
    region: AuthorityCode = Param(title="属地 Region", description=AUTHORITY_HELP),
    by: str = Param(title="录入人 By", description="录入人姓名 / who enters it"),
    harm: str = Param("none", title="伤害 Harm", description="none, injury, serious_injury, death"),
    model: str = Param("", title="型号 Model", description="规格型号"),
    batch: str = Param("", title="批次 Batch", description="生产日期或批号"),
    uscc: str = Param("", title="统一社会信用代码 USCC", description="企业的统一社会信用代码"),
    enterprise: str = Param("", title="企业 Enterprise", description="企业名称"),
    count: int = Param(1, title="数量 Count", description="该信号涉及的案例数"),
    text: str = Param("", title="描述 Text", description="信号内容"),
    at: str = Param("", title="时间 At", description="发生时间，ISO 8601；空为现在 / empty: now"),
) -> dict:
    from tasks.render import local_time

    data = dict(
        source=source,
        category=category,
        product=product,
        region=region,
        harm=harm,
        model=model,
        batch=batch,
        uscc=uscc,
        enterprise=enterprise,
        count=count,
        text=text,
        at=at or local_time(utcnow()),
        by=by,
    )
    result = ingest_signal(data)
    for number in result["items"]:
        deliver_notifications(number)
    print(f"signal recorded: items {', '.join(result['items'])}; new {', '.join(result['opened']) or 'none'}")
    return result


@flow(name="risk-review", log_prints=True)
def risk_review(
    authority: AuthorityCode = Param(title="单位 Authority", description=AUTHORITY_HELP),
) -> dict:
    """The quarter's review: every open risk item and recall of the authority and those
    below it, the late ones first, as the run's artifact."""
    from prefect.artifacts import create_markdown_artifact

    from tasks import risk
    from tasks.render import cell, local_time

    found = risk.review(authority, now=utcnow())
    lines = [
        f"# 风险项与召回季度回顾 / quarterly review — {authority}",
        "",
        f"未结 open: {len(found['open'])}；逾期 late: {len(found['late'])}",
        "",
        "| 编号 | 类型 | 事项 | 阶段 | 单位 | 逾期时限 |",
        "|---|---|---|---|---|---|",
    ]
    for entry in sorted(found["open"], key=lambda e: (not e["late"], e["number"])):
        lines.append(
            f"| {entry['number']} | {entry['kind']} | {cell(entry['title'])} | {entry['stage']} | "
            f"{entry['authority']} | {', '.join(entry['late']) or '—'} |"
        )
    today = dt.date.fromisoformat(local_time(utcnow())[:10])  # the quarter in the authority's time zone
    key = f"risk-review-{authority}-{today:%Y}q{(today.month - 1) // 3 + 1}"
    create_markdown_artifact("\n".join(lines), key=key, description="风险项与召回季度回顾")
    return found
