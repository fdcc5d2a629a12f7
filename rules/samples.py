"""A spot-check sample (监督抽查样品): the lifecycle each drawn target goes through, its
blind code, the repeated-check bar, and what a publication of results holds. Pure: no
Prefect, no database.

    sampling -> testing --passed--> pass-notice -> end (published)
                  | failed
               result-notice -> objection --none--> rectification-order -> recheck -> end
                                  | objected                 ^
                               retest --failed---------------/
                                  | passed -> end

Sampling is kept apart from testing: the lab is given the blind code, never the
enterprise (国质检监〔2017〕207号 section 七), and enters its result against that code.
An objection is taken within 15 days of the result reaching the enterprise (Product
Quality Law Art. 15) and leads to a re-test by another lab. Each sample's final result
is due for publication within 20 working days (企业信息公示暂行条例 Art. 6).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from rules.files import csv_feed
from rules.lifecycle import Branch, Document, Lifecycle, Notice, Step

# Blind codes: 10 characters from an alphabet without look-alikes (0/O, 1/I/L), 50 bits.
_BLIND_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def blind_code() -> str:
    code = "".join(secrets.choice(_BLIND_ALPHABET) for _ in range(10))
    return f"BL-{code[:5]}-{code[5:]}"


def normal_code(text: str) -> str:
    return text.strip().upper()


_DOCUMENTS = {
    kind: Document(zh, en, "case.md.j2")
    for kind, (zh, en) in {
        "sampling": ("抽样单", "Sampling record"),
        "test-report": ("检验结果（盲样）", "Test result (blind)"),
        "retest-report": ("复检结果（盲样）", "Re-test result (blind)"),
        "rectification": ("责令整改通知书", "Order to stop and rectify"),
        "recheck": ("整改复查记录", "Re-check after rectification"),
    }.items()
}

SAMPLE = Lifecycle(
    name="sample",
    title="监督抽查样品 / spot-check sample",
    first="sampling",
    documents=_DOCUMENTS,
    cli="regflow sample {step} {number} --by 姓名 …",
    steps=(
        Step(
            "sampling",
            "抽样 / sampling",
            "inspector",
            "sampling",
            meets=("sampling",),
            documents=("sampling",),
            then="testing",
            verbs=("record",),
            cli="regflow sample record {number} --product … --batch … --by 抽样人",
            ask="由抽中的执法人员填写抽样单；系统生成盲样编号交检验机构 / one of the inspectors drawn records the "
            "sample; regflow gives it the blind code the lab sees",
        ),
        Step(
            "testing",
            "检验 / testing",
            "lab",
            "test-result",
            meets=("testing",),
            documents=("test-report",),
            then=Branch("passed", {True: "pass-notice", False: "result-notice"}),
            verbs=("result",),
            cli="regflow sample result 盲样编号 --pass|--fail … --lab … --by 检验员",
            ask="检验机构按盲样编号录入结果 / the lab enters its result against the blind code",
        ),
        Step(
            "pass-notice",
            "告知检验结果（合格）/ result notified: passed",
            "handler",
            "served",
            meets=("result-notice",),
            verbs=("notify",),
            notice=Notice("抽查合格结果已告知企业", "Passing result notified"),
        ),
        Step(
            "result-notice",
            "告知不合格结果及异议权利 / failing result and the right to object notified",
            "handler",
            "served",
            meets=("result-notice",),
            starts_from="served_on",
            then="objection",
            verbs=("notify",),
            notice=Notice("不合格结果已告知企业，异议期开始", "Failing result notified: the objection period runs"),
        ),
        Step(
            "objection",
            "异议 / objection",
            "handler",
            "objection",
            meets=("objection",),
            then=Branch("objected", {True: "retest", False: "rectification-order"}),
            notice_on="objected",
            notice={
                True: Notice("企业提出异议，安排复检", "Objection received: re-test by another lab"),
                False: Notice("异议期满未提出异议，结果为最终结果", "No objection: the result is final"),
            },
        ),
        Step(
            "retest",
            "复检 / re-test by another lab",
            "lab",
            "test-result",
            meets=("retest",),
            documents=("retest-report",),
            then=Branch("passed", {False: "rectification-order"}),
            verbs=("retest",),
            cli="regflow sample retest 盲样编号 --pass|--fail … --lab … --by 检验员",
        ),
        Step(
            "rectification-order",
            "责令停止生产销售并整改 / order to stop and rectify",
            "handler",
            "served",
            meets=("rectification-order",),
            documents=("rectification",),
            starts_from="served_on",
            then="recheck",
            verbs=("rectify",),
        ),
        Step(
            "recheck",
            "整改复查 / re-check after rectification",
            "inspector",
            "recheck",
            meets=("recheck",),
            documents=("recheck",),
            verbs=("recheck",),
        ),
    ),
)

# Each deadline of a sample: the rule it follows (data/rules/statutory.yaml; None: the
# campaign's plan sets it) and its label.
DEADLINES: dict[str, tuple[str | None, str]] = {
    "sampling": (None, "抽样"),
    "testing": (None, "检验"),
    "result-notice": (None, "告知检验结果"),
    "objection": ("sample.objection", "异议期"),
    "retest": (None, "复检"),
    "rectification-order": (None, "责令整改"),
    "recheck": ("sample.recheck", "整改复查"),
    "publication": ("sample.publication", "结果公示"),
    "republication": ("sample.publication", "更正公示"),
}
# The deadlines the campaign plan sets (its `limits`), by the plan's name for each.
PLAN_LIMITS = {"testing": "testing", "result-notice": "result_notice", "retest": "retest",
               "rectification-order": "rectification_order"}  # fmt: skip
RECTIFICATION_RULE = "sample.rectification"  # the enterprise's period, told in the order
REPEAT_RULE = "sample.repeat_bar"

# What a publication holds of each sample, in order; nothing else leaves the record
# (no inspector, no blind code, no person).
PUBLIC_FIELDS = ("campaign", "number", "category", "enterprise", "uscc", "product", "model", "batch", "result",
                 "failing_items", "lab", "final_on", "corrected")  # fmt: skip
RESULT_WORDS = {"pass": "合格", "fail": "不合格"}


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k, "") for k in PUBLIC_FIELDS}


def feed_csv(rows: list[dict[str, Any]]) -> str:
    """The public feed as CSV: a header, then one line per sample."""
    return csv_feed([public_row(row) for row in rows], PUBLIC_FIELDS)


def within_bar(earlier: dt.date, bar_end: dt.date, window_start: dt.date) -> bool:
    """A check on `earlier` bars a new one whose window starts on or before `bar_end`."""
    return window_start <= bar_end and earlier <= window_start
