"""Risk monitoring (国质检监〔2017〕207号 section 六): signals from monitoring points
grouped into risk items, graded by thresholds, assessed and decided on the lifecycle
engine. Pure: no Prefect, no database.

    risk-assessment -> risk-decision --warning/close--> end
                                     --spot_check/recall/incident--> risk-outcome -> end

A signal joins the open item with the same fingerprint (category, and the fields its
category groups on, normalised so that "XR-200" and "ｘｒ２００ " are one model) whose
signals lie within the category's window; a repeated signal counts, it opens nothing.
Grades come from data/risk/thresholds.yaml: a death or serious injury grades 一级 at
once, enough signals within a window 二级, the rest 三级. Each grade has its own
assessment limit; none of these is statutory (no text sets one), the file says so.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kernel.errors import InvalidInput
from rules.authorities import first_error
from rules.durations import Period
from rules.files import read_text
from rules.incidents import clean_line, clean_text, parse_when
from rules.lifecycle import Branch, Document, Lifecycle, Notice, Step
from rules.registers import valid_uscc

SOURCES = {
    "complaint": "投诉举报",
    "injury_monitoring": "伤害监测点",
    "spot_check": "抽查结果",
    "recall_notice": "召回通告",
    "media": "媒体",
    "foreign_notice": "境外通报",
    "laboratory": "实验室",
    "enterprise_report": "企业报告",
}
HARMS = ("none", "injury", "serious_injury", "death")  # in order of gravity
HARM_WORDS = {"none": "无伤害", "injury": "伤害", "serious_injury": "严重伤害", "death": "死亡"}
GRADES = ("一级", "二级", "三级")  # 一级 the gravest
GROUP_FIELDS = ("product", "model", "batch", "enterprise")
SIGNAL_COLUMNS = ("source", "category", "product", "model", "batch", "uscc", "enterprise", "region", "harm",
                  "count", "text", "at", "learned_on")  # fmt: skip


class Signal(BaseModel):
    """One signal as a monitoring point delivers it."""

    model_config = ConfigDict(extra="forbid")
    source: Literal[tuple(SOURCES)]  # type: ignore[valid-type]
    category: str = Field(min_length=1, max_length=60)
    product: str = Field(min_length=1, max_length=200)
    model: str = Field(default="", max_length=100)
    batch: str = Field(default="", max_length=100)
    uscc: str = Field(default="", max_length=18)
    enterprise: str = Field(default="", max_length=200)
    region: str = Field(min_length=1, max_length=32)
    harm: Literal[HARMS] = "none"  # type: ignore[valid-type]
    count: int = Field(default=1, ge=1, le=1_000_000)
    text: str = Field(default="", max_length=4000)
    at: dt.datetime
    # An enterprise's report: the day it learned of the death, injury or recall abroad.
    learned_on: dt.date | None = None

    @field_validator("category", "product", "model", "batch", "enterprise", "region", mode="before")
    @classmethod
    def _line(cls, value: Any) -> Any:
        return clean_line(value) if isinstance(value, str) else value

    @field_validator("text", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return clean_text(value) if isinstance(value, str) else value

    @field_validator("uscc")
    @classmethod
    def _uscc(cls, value: str) -> str:
        return valid_uscc(value) if value.strip() else ""

    @field_validator("at")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("at: give a time with its zone, or a local time as 2026-12-01 09:30")
        return value

    @model_validator(mode="after")
    def _report(self) -> "Signal":
        if self.source == "enterprise_report" and (self.learned_on is None or not self.uscc):
            raise ValueError("an enterprise's report names its uscc and learned_on (the day it learned of it)")
        return self

    @property
    def enterprise_key(self) -> str:
        return self.uscc or normal(self.enterprise)


def normal(text: str) -> str:
    """A field as grouping compares it: full-width folded, case and spacing and
    punctuation ignored."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if unicodedata.category(c)[0] in "LN")


# --- thresholds -------------------------------------------------------------------------


class Grouping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: str
    fields: tuple[Literal[GROUP_FIELDS], ...]  # type: ignore[valid-type]

    @field_validator("window")
    @classmethod
    def _period(cls, value: str) -> str:
        Period.parse(value)  # refused in one line if it is not a period
        return value


class GradeRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grade: Literal[GRADES]  # type: ignore[valid-type]
    harm: tuple[Literal[HARMS], ...] = ()  # type: ignore[valid-type]
    signals: int | None = Field(default=None, ge=1)  # this many signals (their counts summed)
    within: str | None = None
    assess_within: str  # the assessment limit of an item of this grade
    decide_within: str  # the head's decision after assessment
    source: str | None = None  # the text that sets those limits, where one does

    @model_validator(mode="after")
    def _shape(self) -> "GradeRule":
        for period in (self.within, self.assess_within, self.decide_within):
            if period is not None:
                Period.parse(period)
        if (self.signals is None) != (self.within is None):
            raise ValueError(f"{self.grade}: give signals and within together")
        return self


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grouping: dict[str, Grouping]  # by category; `default` for any other
    grades: list[GradeRule]
    snooze_max: str = "7d"
    recall_target_rate: float = Field(ge=0, le=1)  # below it, more effective measures are ordered
    recall_target_source: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> "Thresholds":
        if "default" not in self.grouping:
            raise ValueError("grouping: give a `default` for categories not listed")
        if [g.grade for g in self.grades] != list(GRADES):
            raise ValueError(f"grades: one rule each, in order {', '.join(GRADES)}")
        return self

    def grouping_for(self, category: str) -> Grouping:
        return self.grouping.get(category, self.grouping["default"])

    def rule(self, grade: str) -> GradeRule:
        return next(g for g in self.grades if g.grade == grade)

    @property
    def widest_window(self) -> dt.timedelta:
        """How far back grading looks: the widest `within` of the grades."""
        return max((span_of(g.within) for g in self.grades if g.within), default=dt.timedelta(0))


def load_thresholds(path: Path) -> Thresholds:
    try:
        return Thresholds.model_validate(yaml.safe_load(read_text(path)))
    except ValidationError as exc:
        raise InvalidInput(f"{path}: {first_error(exc)}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not YAML ({type(exc).__name__})") from None


def fingerprint(signal: Signal, grouping: Grouping) -> str:
    parts = [normal(signal.category)] + [
        signal.enterprise_key if f == "enterprise" else normal(getattr(signal, f)) for f in grouping.fields
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:24]


def grade(thresholds: Thresholds, harms: set[str], times: list[tuple[dt.datetime, int]]) -> str:
    """An item's grade from its signals: the first rule it meets, the last rule else."""
    for rule in thresholds.grades[:-1]:
        if rule.harm and harms & set(rule.harm):
            return rule.grade
        if rule.signals and _most_within(times, span_of(rule.within)) >= rule.signals:
            return rule.grade
    return thresholds.grades[-1].grade


def graver(a: str, b: str) -> str:
    return min(a, b, key=GRADES.index)


def _most_within(times: list[tuple[dt.datetime, int]], span: dt.timedelta) -> int:
    """The most signals (counts summed) in any window of `span`: a sliding window."""
    ordered = sorted(times)
    best = total = start = 0
    for at, count in ordered:
        total += count
        while ordered[start][0] < at - span:
            total -= ordered[start][1]
            start += 1
        best = max(best, total)
    return best


def span_of(period: str) -> dt.timedelta:
    """A period as a span of time for windows (working days taken generously)."""
    p = Period.parse(period)
    return {"m": dt.timedelta(minutes=p.amount), "h": dt.timedelta(hours=p.amount),
            "d": dt.timedelta(days=p.amount), "wd": dt.timedelta(days=p.amount * 7 / 5 + 2),
            "mo": dt.timedelta(days=31 * p.amount)}[p.unit]  # fmt: skip


def worst(harms: set[str]) -> str:
    return max(harms, key=HARMS.index) if harms else "none"


# --- reading signals --------------------------------------------------------------------


def parse_signal(data: dict[str, Any], *, tz: str, where: str = "") -> Signal:
    """One signal, or InvalidInput in one line naming where it came from."""
    fields = {k: v for k, v in data.items() if v not in (None, "")}
    try:
        if isinstance(fields.get("at"), str):
            fields["at"] = parse_when(fields["at"], tz=tz)
        return Signal.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInput(f"{where}{first_error(exc)}") from None
    except (ValueError, InvalidInput) as exc:
        raise InvalidInput(f"{where}{str(exc).splitlines()[0]}") from None


def parse_signals(text: str, *, source: str, tz: str) -> list[Signal]:
    """Every signal of a file (CSV with a header, or JSON lines), or InvalidInput
    naming the first bad line: a file is taken whole or not at all."""
    body = text.lstrip("\ufeff")
    if body.lstrip().startswith("{"):
        signals = []
        for line, raw in enumerate(body.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except json.JSONDecodeError:
                raise InvalidInput(f"{source}:{line}: not a JSON object") from None
            if not isinstance(data, dict):
                raise InvalidInput(f"{source}:{line}: not a JSON object")
            signals.append(parse_signal(data, tz=tz, where=f"{source}:{line}: "))
        if not signals:
            raise InvalidInput(f"{source}: no signals")
        return signals
    reader = csv.DictReader(io.StringIO(body))
    header = [h.strip() for h in reader.fieldnames or []]
    required = ("source", "category", "product", "region", "at")
    if missing := [c for c in required if c not in header]:
        raise InvalidInput(f"{source}:1: missing column(s) {', '.join(missing)} (columns: {','.join(SIGNAL_COLUMNS)})")
    if unknown := [c for c in header if c not in SIGNAL_COLUMNS]:
        raise InvalidInput(f"{source}:1: unknown column(s) {', '.join(unknown)}")
    signals = [
        parse_signal(
            {k.strip(): (v or "").strip() for k, v in row.items() if k}, tz=tz, where=f"{source}:{reader.line_num}: "
        )  # fmt: skip
        for row in reader
    ]
    if not signals:
        raise InvalidInput(f"{source}: no signals")
    return signals


def signal_key(signal: Signal) -> str:
    """What makes two deliveries the same signal (the same report delivered twice)."""
    body = signal.model_dump(mode="json")
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()[:32]


# --- the risk item's lifecycle ------------------------------------------------------------

OUTCOMES = {
    "warning": "发布消费提示",
    "spot_check": "组织专项抽查",
    "recall": "缺陷调查与召回",
    "incident": "启动应急预案",
    "close": "结束（说明理由）",
}

RISK = Lifecycle(
    name="risk",
    title="风险项 / risk item",
    first="risk-assessment",
    documents={
        "assessment": Document("风险评估", "Risk assessment", "case.md.j2"),
        "decision": Document("风险处置决定", "Risk decision", "case.md.j2"),
        "outcome": Document("处置结果", "Outcome", "case.md.j2"),
    },
    cli="regflow risk {step} {number} --by 姓名 …",
    steps=(
        Step(
            "risk-assessment",
            "风险评估 / assessment",
            "handler",
            "risk-assessment",
            meets=("risk-assessment",),
            documents=("assessment",),
            then="risk-decision",
            verbs=("assess",),
            cli="regflow risk assess {number} --hazard … --exposure … --grade 一级|二级|三级 --by 承办人",
            ask="评估危害与暴露程度，确认或调整风险等级 / assess hazard and exposure; confirm or change the grade",
        ),
        Step(
            "risk-decision",
            "处置决定 / decision",
            "head",
            "risk-decision",
            meets=("risk-decision",),
            documents=("decision",),
            then=Branch(
                "outcome", {"spot_check": "risk-outcome", "recall": "risk-outcome", "incident": "risk-outcome"}
            ),  # fmt: skip
            verbs=("decide",),
            cli="regflow risk decide {number} --warning '…' | --spot-check KEY | --recall | --incident PLAN --level II"
            " | --close '理由' --by 负责人",
            ask="负责人决定：消费提示、专项抽查、缺陷调查召回、启动应急预案或说明理由结束 / the head decides: "
            "a consumer warning, a spot check, a recall investigation, an incident, or closure with a reason",
        ),
        Step(
            "risk-outcome",
            "处置完成 / outcome done",
            "handler",
            "risk-outcome",
            documents=("outcome",),
            verbs=("done",),
            cli="regflow risk done {number} --by 承办人",
            notice=Notice("风险处置已完成", "The risk item's outcome is done"),
            ask="所决定的处置（抽查、召回、应急事件）办结后登记 / record once the decided work is finished",
        ),
    ),
)

# Deadline names of a risk item, their rule (None: the grade's limit in the thresholds file)
# and label.
DEADLINES: dict[str, tuple[str | None, str]] = {
    "risk-assessment": (None, "风险评估"),
    "risk-decision": (None, "风险处置决定"),
}


# --- defect recalls (《消费品召回管理暂行规定》, SAMR Order 19) -----------------------------

_RECALL_DOCUMENTS = {
    kind: Document(zh, en, "case.md.j2")
    for kind, (zh, en) in {
        "investigation": ("缺陷调查通知书", "Notice to investigate a possible defect"),
        "findings": ("调查分析结果", "The producer's findings"),
        "notice-to-recall": ("召回通知书", "Notice to recall"),
        "plan": ("召回计划备案", "Recall plan filed"),
        "public-notice": ("召回信息发布", "Recall published"),
        "summary": ("召回总结", "Recall summary"),
        "assessment": ("召回效果评估", "Recall effectiveness assessment"),
        "rerecall": ("重新召回通知书", "Notice to recall again"),
    }.items()
}

RECALL = Lifecycle(
    name="recall",
    title="缺陷消费品召回 / defect recall",
    first="recall-investigation",
    documents=_RECALL_DOCUMENTS,
    cli="regflow recall {step} {number} --by 姓名 …",
    steps=(
        Step(
            "recall-investigation",
            "通知生产者调查分析 / notice to investigate",
            "handler",
            "recall-investigation",
            meets=("recall-investigation",),
            documents=("investigation",),
            handler_opens=("recall-findings",),  # due on the day the notice names (Art. 9)
            then="recall-findings",
            verbs=("investigate",),
            cli="regflow recall investigate {number} --served-on 日期 --findings-by 日期 --by 承办人",
            ask="自发现可能存在缺陷之日起三个工作日内通知生产者调查分析，并写明报告期限 / within 3 working days, "
            "tell the producer to investigate, naming the day its findings are due",
        ),
        Step(
            "recall-findings",
            "生产者调查分析结果 / the producer's findings",
            "handler",
            "recall-findings",
            meets=("recall-findings",),
            documents=("findings",),
            then=Branch("defect", {True: "recall-notice"}),
            verbs=("findings",),
            cli="regflow recall findings {number} --defect|--no-defect --by 承办人",
            notice_on="defect",
            notice={False: Notice("生产者调查认为不存在缺陷，召回程序结束", "No defect found: the recall ends")},
        ),
        Step(
            "recall-notice",
            "通知召回 / notice to recall",
            "head",
            "served",
            documents=("notice-to-recall",),
            starts_from="served_on",
            opens=("recall-objection",),
            then="recall-plan",
            verbs=("notify",),
            cli="regflow recall notify {number} --served-on 日期 --by 负责人",
            notice=Notice(
                "已通知生产者召回，十个工作日内报告召回计划", "Notice to recall served: plan due in 10 working days"
            ),  # fmt: skip
        ),
        Step(
            "recall-plan",
            "召回计划 / recall plan filed",
            "handler",
            "recall-plan",
            meets=("recall-plan",),
            documents=("plan",),
            starts_from="filed_on",
            opens=("recall-progress-1",),
            then="recall-public-notice",
            verbs=("plan",),
            cli="regflow recall plan {number} --filed-on 日期 --affected 数量 --by 承办人",
        ),
        Step(
            "recall-public-notice",
            "发布召回信息 / recall published",
            "handler",
            "recall-public-notice",
            meets=("recall-public-notice",),
            documents=("public-notice",),
            handler_opens=("recall-summary",),  # due once the plan is completed (regflow recall progress)
            then="recall-summary",
            verbs=("notice",),
            cli="regflow recall notice {number} --published-on 日期 --where … --by 承办人",
            notice=Notice("召回信息已发布", "Recall published", to=("desk",), text="where"),
        ),
        Step(
            "recall-summary",
            "召回总结 / recall summary",
            "handler",
            "recall-summary",
            meets=("recall-summary",),
            documents=("summary",),
            then="recall-assessment",
            verbs=("summary",),
            cli="regflow recall summary {number} --recalled 数量 --by 承办人",
            ask="召回计划完成后十五个工作日内提交召回总结（先以 regflow recall progress --completed-on 登记完成）/ the "
            "summary, within 15 working days of completing the plan",
        ),
        Step(
            "recall-assessment",
            "召回效果评估 / effectiveness assessment",
            "head",
            "recall-assessment",
            documents=("assessment",),
            then=Branch("effective", {False: "recall-again"}),
            verbs=("assess",),
            cli="regflow recall assess {number} --effective|--not-effective --by 负责人",
        ),
        Step(
            "recall-again",
            "通知重新召回 / notice to recall again",
            "head",
            "served",
            documents=("rerecall",),
            verbs=("again",),
            cli="regflow recall again {number} --served-on 日期 --by 负责人",
            notice=Notice(
                "召回未能消除风险，已通知重新召回", "Recall not effective: told to recall again", to=("upward",)
            ),  # fmt: skip
        ),
    ),
)

RECALL_DEADLINES: dict[str, tuple[str | None, str]] = {
    "recall-investigation": ("recall.investigation_notice", "通知调查分析"),
    "recall-findings": (None, "生产者报告调查分析结果"),  # the notice names the day (Art. 9)
    "recall-objection": ("recall.objection", "召回异议期"),
    "recall-plan": ("recall.plan", "报告召回计划"),
    "recall-public-notice": ("recall.public_notice", "发布召回信息"),
    "recall-progress": ("recall.progress", "召回阶段性总结"),
    "recall-summary": ("recall.summary", "召回总结"),
}
# Deadlines the producer owes: reminders go to the handler who chases it; a miss
# escalates and opens a lead against the producer.
OWED_BY_PRODUCER = ("recall-findings", "recall-plan", "recall-public-notice", "recall-progress", "recall-summary")
# The objection window is the producer's right, not a duty: it reminds nobody.
WINDOWS = ("recall-objection",)
# A recall the producer starts itself (Order 19 Art. 17: its plan within 10 working days
# of finding the defect) begins at the plan.
VOLUNTARY_RECALL = replace(RECALL, first="recall-plan")
