"""Enforcement cases, complaints and look-back reviews: their lifecycles, declared
(`CASE`, `COMPLAINT`, `LOOKBACK`, read by the engine in `tasks/lifecycle.py`), the
rules each deadline follows, and what a valid lead is.

The flow walks a lifecycle and the CLI uses the same declaration to know what a case
awaits, so "twice" and "out of order" have one definition. No step is reached twice
on any path, so a step's name is also its suspension key. Drawn from the
declarations in docs/lifecycles.md; in short:

Case (执法办案):
    filing --not filed--> end
      | filed (the 90-day case clock starts)
    investigation --no penalty--> closure
      |  \\--suspected crime--> transfer-decision --refused--> legal-review
      |                          | approved
      |                        transfer-sent -> police-decision --accepted--> closure
      |                                           | refused
      |                        reconsideration --not asked--> legal-review
      |                          | asked
      |                        reconsideration-answer --accepted--> closure, else legal-review
    legal-review --no penalty--> closure
    pre-penalty -> party-response --hearing--> hearing-notice -> hearing
      -> decision --no penalty--> closure
      -> delivery (party absent) -> payment -> closure -> end (look-back scheduled)

Complaint (12315): acceptance --rejected--> end; mediation -> end (agreed, failed,
or a violation lead that becomes a case).
Look-back review (回头看): lookback -> end (a failed review opens a linked case).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kernel.errors import InvalidInput
from rules.authorities import first_error
from rules.credit import DEADLINES as CREDIT_DEADLINES
from rules.credit import LISTING, PUBLICATION, REFERRAL
from rules.incidents import MAX_TEXT, clean_line, clean_text, require_timezone
from rules.lifecycle import Branch, Document, Lifecycle, Notice, Step
from rules.risk import DEADLINES as RISK_DEADLINES
from rules.risk import RECALL, RECALL_DEADLINES, RISK
from rules.samples import DEADLINES as SAMPLE_DEADLINES
from rules.samples import SAMPLE

LEAD_SOURCES = {
    "complaint": "投诉",
    "report": "举报",
    "spot_check": "监督抽查",
    "referral": "移送/交办",
    "risk_alert": "风险预警",
    "lookback": "回头看",
    "recall": "召回",
    "credit": "信用监管",
}


# --- the lifecycles --------------------------------------------------------------------

_CASE_DOCUMENTS = {
    kind: Document(zh, en, "case.md.j2")
    for kind, (zh, en) in {
        "filing": ("立案审批表", "Filing approval"),
        "not-filed": ("不予立案审批表", "Decision not to file"),
        "transfer": ("涉嫌犯罪案件移送审批表", "Criminal transfer approval"),
        "pre-penalty": ("行政处罚告知书", "Pre-penalty notice"),
        "decision": ("行政处罚决定书（摘要）", "Decision summary"),
        "closure": ("结案审批表", "Closing report"),
        "lookback": ("回头看核查报告", "Look-back review report"),
    }.items()
}
_CLI = "regflow case decide {number} {step} by=姓名 …"
_POLICE_OPENED = Notice("公安机关已立案，移交涉案物品并结案", "Police opened a case: hand over and close")

CASE = Lifecycle(
    name="case",
    title="执法办案 / enforcement case",
    first="filing",
    documents=_CASE_DOCUMENTS,
    cli=_CLI,
    clock="decision",
    steps=(
        Step(
            "filing",
            "核查立案 / verification and filing decision",
            "handler",
            "filing",
            meets=("filing",),
            opens=("decision",),
            documents=("filing", "not-filed"),
            then=Branch("decision", {"file": "investigation"}),
            notice={"file": Notice("立案", "Case filed"), "not_file": Notice("不予立案", "Not filed")},
        ),
        Step(
            "investigation",
            "调查取证 / investigation",
            "handler",
            "investigation",
            then=Branch(
                "finding", {"penalty": "legal-review", "no_penalty": "closure", "transfer": "transfer-decision"}
            ),
            notice={
                "penalty": Notice("调查终结，送法制审核", "Investigation done, to legal review"),
                "no_penalty": Notice("调查终结，拟不予处罚", "Investigation done, no penalty proposed"),
                "transfer": Notice("涉嫌犯罪，报请移送", "Suspected crime: transfer proposed"),
            },
        ),
        Step(
            "transfer-decision",
            "移送审批 / head decides on the criminal transfer",
            "head",
            "approval",
            beside="investigation",
            meets=("transfer-decision",),
            documents=("transfer",),
            then=Branch("approve", {True: "transfer-sent"}, default="legal-review"),
            notice={
                True: Notice("批准移送公安机关", "Transfer approved"),
                False: Notice("不予移送，继续办理", "Transfer refused; the case goes on"),
            },
        ),
        Step(
            "transfer-sent",
            "移送公安机关 / transfer to the police",
            "handler",
            "transfer-sent",
            beside="investigation",
            meets=("transfer-sent",),
            then="police-decision",
            notice=Notice("已移送 {police}", "Transferred to the police"),
        ),
        Step(
            "police-decision",
            "公安机关立案决定 / police decision",
            "handler",
            "police",
            beside="investigation",
            meets=("police-decision",),
            then=Branch("accepted", {True: "closure"}, default="reconsideration"),
            notice={
                True: _POLICE_OPENED,
                False: Notice("公安机关不予立案，可提请复议", "Police refused; reconsideration may be asked"),
            },
        ),
        Step(
            "reconsideration",
            "提请复议 / ask the police to reconsider",
            "head",
            "approval",
            beside="investigation",
            meets=("reconsideration-request",),
            then=Branch("approve", {True: "reconsideration-answer"}, default="legal-review"),
            notice={
                True: Notice("已提请复议", "Reconsideration asked"),
                False: Notice("不提请复议，继续行政处理", "No reconsideration; the case goes on"),
            },
        ),
        Step(
            "reconsideration-answer",
            "复议决定 / police answer the reconsideration",
            "handler",
            "police",
            beside="investigation",
            meets=("reconsideration-answer",),
            then=Branch("accepted", {True: "closure"}, default="legal-review"),
            notice={
                True: _POLICE_OPENED,
                False: Notice("复议仍不予立案，继续行政处理", "Police refused again; the administrative case goes on"),
            },
        ),
        Step(
            "legal-review",
            "法制审核 / legal review",
            "legal",
            "legal-review",
            meets=("legal-review",),
            then=Branch("opinion", {"agree": "pre-penalty"}, default="closure"),
            notice={
                "agree": Notice("法制审核通过", "Legal review agreed"),
                "no_penalty": Notice("法制审核建议不予处罚", "Legal review: no penalty"),
            },
        ),
        Step(
            "pre-penalty",
            "行政处罚告知 / pre-penalty notice",
            "handler",
            "pre-penalty",
            documents=("pre-penalty",),
            starts_from="served_on",
            then="party-response",
            notice=Notice("行政处罚告知书已送达", "Pre-penalty notice served"),
        ),
        Step(
            "party-response",
            "陈述申辩或听证申请 / party's statement or hearing request",
            "handler",
            "party-response",
            meets=("party-statement",),
            handler_opens=("hearing-notice",),
            then=Branch("response", {"hearing": "hearing-notice"}, default="decision"),
            notice={
                "waived": Notice("当事人未陈述申辩", "Party's answer recorded"),
                "statement": Notice("已听取陈述申辩", "Party's answer recorded"),
            },
        ),
        Step(
            "hearing-notice",
            "听证通知送达 / hearing notice served",
            "handler",
            "served",
            beside="party-response",
            meets=("hearing-notice",),
            then="hearing",
            notice=Notice("听证通知已送达", "Hearing notice served"),
        ),
        Step(
            "hearing",
            "听证 / hearing",
            "hearing",
            "hearing",
            beside="party-response",
            then="decision",
            notice=Notice("听证已举行", "Hearing held"),
        ),
        Step(
            "decision",
            "处罚决定 / decision",
            "head",
            "decision",
            meets=("decision",),
            documents=("decision",),
            then=Branch(
                "outcome",
                {"penalty": Branch("party_present", {True: "payment"}, default="delivery")},
                default="closure",
            ),
            notice={
                "penalty": Notice("作出处罚决定", "Decision made", to=("upward",)),
                "no_penalty": Notice("决定不予处罚", "Decision made", to=("upward",)),
            },
        ),
        Step(
            "delivery",
            "送达处罚决定书 / delivery of the decision",
            "handler",
            "served",
            beside="decision",
            meets=("delivery",),
            starts_from="served_on",
            then="payment",
            notice=Notice("处罚决定书已送达", "Decision delivered"),
        ),
        Step(
            "payment",
            "缴纳罚款 / payment of the fine",
            "handler",
            "payment",
            meets=("payment",),
            then="closure",
            notice=Notice("罚款已缴纳", "Fine paid"),
        ),
        Step(
            "closure",
            "结案 / closing the case",
            "head",
            "closure",
            meets=("closure",),
            documents=("closure",),
            notice=Notice("结案", "Case closed", to=("upward", "listing")),
        ),
    ),
)

COMPLAINT = Lifecycle(
    name="complaint",
    title="投诉处理 / 12315 complaint",
    first="acceptance",
    documents=_CASE_DOCUMENTS,
    cli=_CLI,
    steps=(
        # Both answers are told by the handler: the complainant's name and contact lead the text.
        Step(
            "acceptance",
            "投诉受理 / accept the complaint",
            "desk",
            "acceptance",
            meets=("acceptance",),
            then=Branch("accept", {True: "mediation"}),
        ),
        Step(
            "mediation",
            "调解 / mediation",
            "mediator",
            "mediation",
            meets=("mediation",),
            notice_on="outcome",
            notice={
                "agreed": Notice("调解达成协议", "Mediation ended"),
                "failed": Notice("终止调解，请告知双方", "Mediation ended"),
            },
        ),
    ),
)

LOOKBACK = Lifecycle(
    name="lookback",
    title="回头看 / look-back review",
    first="lookback",
    documents=_CASE_DOCUMENTS,
    cli=_CLI,
    answered_once_opened=True,
    steps=(
        Step(
            "lookback",
            "回头看 / look-back review",
            "inspector",
            "lookback",
            meets=("lookback",),
            documents=("lookback",),
            notice_on="rectified",
            notice={True: Notice("回头看：整改到位", "Look-back: rectified")},
        ),
    ),
)

LIFECYCLES = {"case": CASE, "complaint": COMPLAINT, "lookback": LOOKBACK, "sample": SAMPLE, "risk": RISK,
              "recall": RECALL, "publication": PUBLICATION, "listing": LISTING, "referral": REFERRAL}  # fmt: skip
# Every step of them, by name: no name is used twice, so `case decide` needs none but it.
STEPS = {step.name: step for lifecycle in LIFECYCLES.values() for step in lifecycle.steps}


def step_named(name: str) -> Step:
    try:
        return STEPS[name]
    except KeyError:
        raise InvalidInput(f"unknown step {name!r}; steps: {', '.join(STEPS)}") from None


def lifecycle_of(kind: str, step: str | None = None) -> Lifecycle:
    """The lifecycle a case's step belongs to: its look-back review is a lifecycle of
    its own, answered in a scheduled run months after the case closed."""
    return LOOKBACK if step == "lookback" else LIFECYCLES[kind]


# Each deadline of a case: the statutory rule it follows (data/rules/statutory.yaml;
# None: the supervision notice sets it) and its label. Numbered ones (`assistance-2`)
# follow their stem.
# fmt: off
DEADLINES: dict[str, tuple[str | None, str]] = {
    "filing":                  ("case.verify_lead",                 "核查立案"),
    "decision":                ("case.decision",                    "作出处罚决定"),
    "legal-review":            ("case.legal_review",                "法制审核"),
    "party-statement":         ("case.party_statement",             "陈述申辩期"),
    "hearing-notice":          ("case.hearing_notice",              "听证通知送达"),
    "delivery":                ("case.deliver_absent",              "送达决定书"),
    "payment":                 ("case.payment",                     "缴纳罚款"),
    "closure":                 ("case.closure",                     "结案"),
    "preservation":            ("case.preservation_decision",       "先行登记保存处理"),
    "seizure":                 ("case.seizure",                     "查封扣押"),
    "transfer-decision":       ("transfer.head_decision",           "移送审批"),
    "transfer-sent":           ("transfer.to_police",               "移送公安"),
    "police-decision":         ("transfer.police_decision",         "公安立案决定"),
    "reconsideration-request": ("transfer.reconsideration_request", "提请复议"),
    "reconsideration-answer":  ("transfer.reconsideration_answer",  "复议决定"),
    "handover":                ("transfer.handover",                "移交涉案物品"),
    "reporter-notice":         ("complaint.reporter_notice",        "告知实名举报人"),
    "acceptance":              ("complaint.accept",                 "投诉受理"),
    "mediation":               ("complaint.mediation_end",          "调解期限"),
    "lookback":                ("lookback.complete",                "回头看"),
    "supervision-final":       (None,                               "督办办结"),
    "supervision-progress":    ("supervision.progress_every",       "督办进展报告"),
    "assistance":              ("case.assistance",                  "协查"),
    **SAMPLE_DEADLINES,
    **RISK_DEADLINES,
    **RECALL_DEADLINES,
    **CREDIT_DEADLINES,
}
# fmt: on
# The deadlines the case clock governs: paused while testing or appraisal runs
# (Art. 18, 64) and while a criminal transfer is with the police.
CLOCK = ("filing", "decision")
_NUMBERED = re.compile(r"^(?P<stem>.+?)-(?P<n>\d+)$")


def _entry(name: str) -> tuple[tuple[str | None, str] | None, str]:
    """A deadline's table entry and its number, if it is a numbered one ("" if not)."""
    if name in DEADLINES:
        return DEADLINES[name], ""
    match = _NUMBERED.match(name)
    return (DEADLINES.get(match["stem"]), match["n"]) if match else (None, "")


def rule_of(name: str) -> str | None:
    """The statutory rule key of a deadline name (`assistance-2` -> case.assistance)."""
    entry, _ = _entry(name)
    return entry[0] if entry else None


def label(name: str) -> str | None:
    entry, n = _entry(name)
    return f"{entry[1]} {n}".strip() if entry else None


def at_noon(day: dt.date, tz: str) -> dt.datetime:
    """A calendar date given on a form, as the moment a period counts from (the day
    itself is not counted, so any time of it gives the same due date)."""
    import pendulum

    return pendulum.datetime(day.year, day.month, day.day, 12, tz=tz).in_timezone("UTC")


# --- receiving a lead or a complaint ---------------------------------------------------


class LeadRequest(BaseModel):
    """A lead (or a 12315 complaint) as a desk officer or the UI form gives it."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(default="case", pattern="^(case|complaint)$")
    title: str = Field(min_length=1, max_length=200)
    party: str = Field(min_length=1, max_length=200)
    source: str = "complaint"
    detail: str = Field(default="", max_length=MAX_TEXT)
    authority: str = Field(min_length=1, max_length=32)
    received_at: dt.datetime | None = None
    reporter: str | None = Field(default=None, max_length=100)
    reporter_contact: str | None = Field(default=None, max_length=200)
    real_name: bool = False
    linked_to: str | None = Field(default=None, max_length=32)

    _lines = field_validator("title", "party", "authority", "reporter", "reporter_contact", mode="before")(
        lambda v: clean_line(v) if isinstance(v, str) else v
    )
    _text = field_validator("detail", mode="before")(lambda v: clean_text(v) if isinstance(v, str) else v)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value not in LEAD_SOURCES:
            raise ValueError(f"unknown source {value!r}; one of {', '.join(LEAD_SOURCES)}")
        return value

    _aware = field_validator("received_at")(lambda v: require_timezone(v))


def validate_lead(data: dict[str, Any], *, now: dt.datetime) -> LeadRequest:
    try:
        request = LeadRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(first_error(exc)) from exc
    if request.received_at is not None and request.received_at > now + dt.timedelta(minutes=1):
        raise InvalidInput("received_at: is in the future")
    if request.real_name and not request.reporter:
        raise InvalidInput("a real-name report needs --reporter")
    return request


NUMBER_PREFIX = {"case": "CASE", "complaint": "CMP", "sample": "SMP", "risk": "RSK", "recall": "RCL",
                 "publication": "PUB", "listing": "SVL", "referral": "REF"}  # fmt: skip


def case_number(year: int, n: int, kind: str = "case") -> str:
    return f"{NUMBER_PREFIX[kind]}-{year}-{n:06d}"
