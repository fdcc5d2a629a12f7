"""Enforcement cases, complaints and look-back reviews as step machines.

Each human step names its form, the deadline it meets and who answers it; the
flow walks `following(step, answer)` and the CLI uses the same machine to know what
a case awaits, so "twice" and "out of order" have one definition. No step is
reached twice on any path, so a step's name is also its suspension key.

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
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kernel.errors import InvalidInput
from rules.authorities import first_error
from rules.incidents import MAX_TEXT, clean_line, clean_text, require_timezone

LEAD_SOURCES = {"complaint": "投诉", "report": "举报", "spot_check": "监督抽查", "referral": "移送/交办",
                "risk_alert": "风险预警", "lookback": "回头看"}


@dataclass(frozen=True)
class CaseStep:
    name: str  # also the suspension key
    form: str  # key of the form class in rules.forms.CASE_FORMS
    title: str  # zh / en
    deadline: str | None  # the deadline row this step meets, if it has its own
    role: str  # who answers: handler, head, legal, police liaison, inspector ...
    document: str | None = None  # the document this step produces, if any

    @property
    def roles(self) -> tuple[str, ...]:
        """The role key (rules/people.py) of `role`: who may answer it."""
        for key in ("head", "legal", "hearing", "desk", "mediator", "inspector", "handler"):
            if key in self.role:
                return (key,)
        raise ValueError(f"{self.name}: no role key in {self.role!r}")


STEPS = {s.name: s for s in (
    CaseStep("filing", "filing", "核查立案 / verification and filing decision", "filing", "承办人 handler",
             "filing"),
    CaseStep("investigation", "investigation", "调查取证 / investigation", None, "承办人 handler"),
    CaseStep("transfer-decision", "approval", "移送审批 / head decides on the criminal transfer", "transfer-decision",
             "负责人 head", "transfer"),
    CaseStep("transfer-sent", "transfer-sent", "移送公安机关 / transfer to the police", "transfer-sent",
             "承办人 handler"),
    CaseStep("police-decision", "police", "公安机关立案决定 / police decision", "police-decision",
             "承办人 handler (records the police answer)"),
    CaseStep("reconsideration", "approval", "提请复议 / ask the police to reconsider", "reconsideration-request",
             "负责人 head"),
    CaseStep("reconsideration-answer", "police", "复议决定 / police answer the reconsideration",
             "reconsideration-answer", "承办人 handler (records the police answer)"),
    CaseStep("legal-review", "legal-review", "法制审核 / legal review", "legal-review", "法制审核人员 legal reviewer"),
    CaseStep("pre-penalty", "pre-penalty", "行政处罚告知 / pre-penalty notice", None, "承办人 handler", "pre-penalty"),
    CaseStep("party-response", "party-response", "陈述申辩或听证申请 / party's statement or hearing request",
             "party-statement", "承办人 handler (records the party's answer)"),
    CaseStep("hearing-notice", "served", "听证通知送达 / hearing notice served", "hearing-notice", "承办人 handler"),
    CaseStep("hearing", "hearing", "听证 / hearing", None, "听证主持人 hearing officer"),
    CaseStep("decision", "decision", "处罚决定 / decision", "decision", "负责人 head", "decision"),
    CaseStep("delivery", "served", "送达处罚决定书 / delivery of the decision", "delivery", "承办人 handler"),
    CaseStep("payment", "payment", "缴纳罚款 / payment of the fine", "payment", "承办人 handler (records payment)"),
    CaseStep("closure", "closure", "结案 / closing the case", "closure", "负责人 head", "closure"),
    CaseStep("acceptance", "acceptance", "投诉受理 / accept the complaint", "acceptance", "12315 承办人 desk officer"),
    CaseStep("mediation", "mediation", "调解 / mediation", "mediation", "调解人 mediator"),
    CaseStep("lookback", "lookback", "回头看 / look-back review", "lookback", "核查人员 inspector", "lookback"),
)}

# Where each machine starts.
FIRST = {"case": "filing", "complaint": "acceptance", "lookback": "lookback"}


def _case_following(name: str, a: dict[str, Any]) -> str | None:
    return {
        "filing": lambda: "investigation" if a.get("decision") == "file" else None,
        "investigation": lambda: {"penalty": "legal-review", "no_penalty": "closure",
                                  "transfer": "transfer-decision"}[a["finding"]],
        "transfer-decision": lambda: "transfer-sent" if a.get("approve") else "legal-review",
        "transfer-sent": lambda: "police-decision",
        "police-decision": lambda: "closure" if a.get("accepted") else "reconsideration",
        "reconsideration": lambda: "reconsideration-answer" if a.get("approve") else "legal-review",
        "reconsideration-answer": lambda: "closure" if a.get("accepted") else "legal-review",
        "legal-review": lambda: "pre-penalty" if a.get("opinion") == "agree" else "closure",
        "pre-penalty": lambda: "party-response",
        "party-response": lambda: "hearing-notice" if a.get("response") == "hearing" else "decision",
        "hearing-notice": lambda: "hearing",
        "hearing": lambda: "decision",
        "decision": lambda: ("closure" if a.get("outcome") != "penalty"
                             else "payment" if a.get("party_present") else "delivery"),
        "delivery": lambda: "payment",
        "payment": lambda: "closure",
        "closure": lambda: None,
    }[name]()


MACHINES: dict[str, Callable[[str, dict[str, Any]], str | None]] = {
    "case": _case_following,
    "complaint": lambda name, a: "mediation" if name == "acceptance" and a.get("accept") else None,
    "lookback": lambda name, a: None,
}


def following(kind: str, name: str, answer: dict[str, Any]) -> CaseStep | None:
    """The step after `name` given its answer; None when the machine has ended."""
    nxt = MACHINES[kind](name, answer)
    return STEPS[nxt] if nxt else None


def next_step(kind: str, answered: dict[str, dict[str, Any]]) -> CaseStep | None:
    """The first step not yet answered, given answers by step name; None when done."""
    step: CaseStep | None = STEPS[FIRST[kind]]
    while step is not None and step.name in answered:
        step = following(kind, step.name, answered[step.name])
    return step


def step_named(name: str) -> CaseStep:
    try:
        return STEPS[name]
    except KeyError:
        raise InvalidInput(f"unknown step {name!r}; steps: {', '.join(STEPS)}") from None


# Deadlines of a case and the statutory rule (data/rules/statutory.yaml) each follows.
DEADLINE_RULES = {
    "filing": "case.verify_lead", "decision": "case.decision", "legal-review": "case.legal_review",
    "party-statement": "case.party_statement", "hearing-notice": "case.hearing_notice",
    "delivery": "case.deliver_absent", "payment": "case.payment", "closure": "case.closure",
    "preservation": "case.preservation_decision", "seizure": "case.seizure",
    "transfer-decision": "transfer.head_decision", "transfer-sent": "transfer.to_police",
    "police-decision": "transfer.police_decision", "reconsideration-request": "transfer.reconsideration_request",
    "reconsideration-answer": "transfer.reconsideration_answer", "handover": "transfer.handover",
    "reporter-notice": "complaint.reporter_notice", "acceptance": "complaint.accept",
    "mediation": "complaint.mediation_end", "lookback": "lookback.complete",
    "supervision-final": None, "supervision-progress": "supervision.progress_every", "assistance": "case.assistance",
}
# The deadlines the case clock governs: paused while testing or appraisal runs
# (Art. 18, 64) and while a criminal transfer is with the police.
CLOCK = ("filing", "decision")

LABELS = {
    "filing": "核查立案", "decision": "作出处罚决定", "legal-review": "法制审核", "party-statement": "陈述申辩期",
    "hearing-notice": "听证通知送达", "delivery": "送达决定书", "payment": "缴纳罚款", "closure": "结案",
    "preservation": "先行登记保存处理", "seizure": "查封扣押", "transfer-decision": "移送审批",
    "transfer-sent": "移送公安", "police-decision": "公安立案决定", "reconsideration-request": "提请复议",
    "reconsideration-answer": "复议决定", "handover": "移交涉案物品", "reporter-notice": "告知实名举报人",
    "acceptance": "投诉受理", "mediation": "调解期限", "lookback": "回头看", "supervision-final": "督办办结",
}


def rule_of(name: str) -> str | None:
    """The statutory rule key of a deadline name (`assistance-2` -> case.assistance)."""
    return DEADLINE_RULES.get(re.sub(r"-\d+$", "", name))


def label(name: str) -> str | None:
    match = re.match(r"^(supervision-progress|assistance)-(\d+)$", name)
    if match:
        return {"supervision-progress": "督办进展报告", "assistance": "协查"}[match.group(1)] + f" {match.group(2)}"
    return LABELS.get(name)


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
        lambda v: clean_line(v) if isinstance(v, str) else v)
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


def case_number(year: int, n: int, kind: str = "case") -> str:
    return f"{'CASE' if kind == 'case' else 'CMP'}-{year}-{n:06d}"
