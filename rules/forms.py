"""The typed forms of human steps, as plain pydantic models.

The rules and the CLI validate answers with these classes; `flows/forms.py` makes
each a Prefect RunInput of the same name, which the UI renders when a run is
suspended, so an answer from either side passes the same checks.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rules.credit import MEASURES, PARTY_KINDS, SECTORS, valid_identity_number
from rules.incidents import MAX_TEXT, clean_line, clean_text
from rules.registers import valid_uscc

MAX_FINE = Decimal("1000000000")


def _name(title: str, description: str) -> Any:
    """A name on one line: who answers, or the person or unit the answer names."""
    return Field(min_length=1, max_length=100, title=title, description=description)


def _account(title: str, description: str) -> Any:
    """The free text a step exists to collect, so it may not be left empty."""
    return Field(min_length=1, max_length=MAX_TEXT, title=title, description=description)


def _yuan(title: str, description: str, *, le: Decimal = MAX_FINE, **more: Any) -> Any:
    """A sum in yuan, to the fen."""
    return Field(gt=0, le=le, max_digits=14, decimal_places=2, title=title, description=description, **more)


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid")  # as Prefect's RunInput has it

    @field_validator("*", mode="before")
    @classmethod
    def _clean(cls, value, info):
        if not isinstance(value, str):
            return value
        return clean_text(value) if info.field_name in cls.multiline else clean_line(value)

    multiline: ClassVar[tuple[str, ...]] = ()
    signer: ClassVar[str] = "by"  # the field naming who answers, as the step and the audit log record it
    # The form may carry personal data `recorded()` drops (a person's identity number).
    personal: ClassVar[bool] = False

    @property
    def signed_by(self) -> str:
        return getattr(self, self.signer, "")

    def recorded(self) -> dict[str, Any]:
        """The answer as the step, the run and the audit trail keep it."""
        return self.model_dump(mode="json")


class ArrivalForm(_Form):
    signer: ClassVar[str] = "officer"
    officer: str = _name(
        "到场负责人 Officer in charge on site", "现场处置组负责人姓名 / name of the on-site team leader"
    )
    note: str = Field(
        default="",
        max_length=2000,
        title="现场情况 Situation on arrival",
        description="到场时的现场情况（可选）/ what the team found (optional)",
    )
    multiline: ClassVar[tuple[str, ...]] = ("note",)


class _Report(_Form):
    """The reports on an incident, each an author's text."""

    signer: ClassVar[str] = "author"
    multiline: ClassVar[tuple[str, ...]] = ("text",)


class ReportForm(_Report):
    author: str = _name("报告人 Author", "报告人姓名 / who writes the report")
    text: str = _account(
        "报告内容 Report", "事件经过、伤亡、已采取措施、下一步 / what happened, casualties, actions, next steps"
    )


class HandlingEndedForm(_Form):
    signer: ClassVar[str] = "officer"
    officer: str = _name("现场负责人 Officer in charge", "宣布处置结束的现场负责人 / who ends handling on site")
    text: str = _account("处置结束小结 Summary", "处置经过与结果 / how handling went and ended")
    multiline: ClassVar[tuple[str, ...]] = ("text",)


class ReleaseForm(_Form):
    signer: ClassVar[str] = "approver"
    approver: str = _name("批准人 Approved by", "批准发布的负责人 / the head who approves the release")
    text: str = Field(
        default="",
        max_length=MAX_TEXT,
        title="发布内容 Release text",
        description="留空则发布依据事件记录起草的通稿 / empty publishes the draft made from the incident's record",
    )
    press_conference: bool = Field(
        default=False,
        title="新闻发布会 Press conference",
        description="本次发布是否以新闻发布会形式进行 / was this release given at a press conference",
    )
    multiline: ClassVar[tuple[str, ...]] = ("text",)


class ActionItem(_Form):
    """An improvement the review assigns: what, to which authority and person, by when."""

    what: str = Field(min_length=1, max_length=200, title="整改事项 What", description="要做什么 / what is to be done")
    authority: str = Field(
        min_length=1, max_length=32, title="责任单位 Authority", description="责任单位代码 / owner authority's code"
    )
    owner: str = _name("责任人 Owner", "责任人姓名 / the person who owns it")
    due: dt.date = Field(title="完成期限 Due", description="完成日期（当日 24 时前）/ due by the end of this day")


class ReviewForm(_Form):
    signer: ClassVar[str] = "reviewer"
    reviewer: str = _name("评估人 Reviewer", "事后评估负责人 / who led the review")
    lessons: str = _account(
        "经验教训 Lessons learned", "处置评估、经验教训与改进措施 / assessment, lessons and improvements"
    )
    actions: list[ActionItem] = Field(
        default_factory=list,
        max_length=50,
        title="整改事项 Action items",
        description="每项一个时限，到期提醒、逾期督办 / each is a deadline, reminded and escalated",
    )
    multiline: ClassVar[tuple[str, ...]] = ("lessons",)


FORMS: dict[str, type[_Form]] = {
    "arrival": ArrivalForm,
    "report": ReportForm,
    "handling-ended": HandlingEndedForm,
    "review": ReviewForm,
    "release": ReleaseForm,
}


def author_of(form: str, answer: dict) -> str:
    """Who signed an answer given as plain data."""
    return answer.get(form_class(form).signer, "")


# --- enforcement cases, complaints, look-back reviews ----------------------------------
# Every case form starts with `by`: who answers, as recorded on the step and the audit
# log. Dates the person gives (served, delivered, paid) are calendar dates in
# Asia/Shanghai; periods counted from them do not count the day itself.


class _CaseForm(_Form):
    by: str = _name("办理人 By", "填写人姓名 / who records this answer")
    text: str = Field(
        default="", max_length=MAX_TEXT, title="说明 Text", description="理由、经过或意见 / reasons, facts or opinion"
    )
    multiline: ClassVar[tuple[str, ...]] = ("text",)


class FilingForm(_CaseForm):
    decision: Literal["file", "not_file"] = Field(
        title="立案决定 Decision", description="file = 立案 / open a case; not_file = 不予立案 / do not file"
    )
    handler: str = Field(
        default="",
        max_length=100,
        title="承办人 Case handler",
        description="立案后的承办人（可选）/ who handles the case once filed (optional)",
    )


class InvestigationForm(_CaseForm):
    finding: Literal["penalty", "no_penalty", "transfer"] = Field(
        title="调查结论 Finding",
        description="penalty = 拟处罚，送法制审核 / propose a penalty, to legal review; no_penalty = 不予处罚，结案 / "
        "close without penalty; transfer = 涉嫌犯罪，报请移送 / suspected crime, ask the head to transfer",
    )


class ApprovalForm(_CaseForm):
    approve: bool = Field(title="批准 Approve", description="负责人是否批准 / does the head approve")


class TransferSentForm(_CaseForm):
    police: str = _name("接收公安机关 Police unit", "移送至哪个公安机关 / which police unit received it")


class PoliceForm(_CaseForm):
    accepted: bool = Field(
        title="公安机关立案 Police opened a case",
        description="公安机关是否决定立案（或复议后立案）/ did the police open a case",
    )


class LegalReviewForm(_CaseForm):
    opinion: Literal["agree", "no_penalty"] = Field(
        title="审核意见 Opinion", description="agree = 同意处罚意见 / agree; no_penalty = 建议不予处罚 / no penalty"
    )


class PrePenaltyForm(_CaseForm):
    fine: Decimal = _yuan("拟罚款 Proposed fine (yuan)", "拟处罚款金额（元）/ the proposed fine in yuan")
    served_on: dt.date = Field(
        title="告知书送达日期 Notice served on",
        description="当事人收到告知书的日期 / the day the party received the notice",
    )


class PartyResponseForm(_CaseForm):
    response: Literal["waived", "statement", "hearing"] = Field(
        title="当事人意见 Party's answer",
        description="waived = 未提出/放弃; statement = 陈述申辩 / statement or defence; hearing = 要求听证 / hearing",
    )
    hearing_at: dt.datetime | None = Field(
        default=None,
        title="听证时间 Hearing at",
        description="要求听证时必填，须含时区，如 2026-10-20T09:00+08:00 / required for a hearing, with time zone",
    )


class ServedForm(_CaseForm):
    served_on: dt.date = Field(
        title="送达日期 Served on", description="文书送达当事人的日期 / the day it reached the party"
    )


class HearingForm(_CaseForm):
    pass


class DecisionForm(_CaseForm):
    outcome: Literal["penalty", "no_penalty"] = Field(
        title="决定 Outcome", description="penalty = 处罚 / penalty; no_penalty = 不予处罚"
    )
    fine: Decimal | None = _yuan("罚款 Fine (yuan)", "处罚时填写 / with a penalty", default=None)
    party_present: bool = Field(
        default=True,
        title="当场送达 Delivered on the spot",
        description="当事人在场、当场送达决定书 / the party was present and received it",
    )
    rectification: bool = Field(
        default=False,
        title="责令改正 Rectification ordered",
        description="是否责令改正（结案后安排回头看）/ rectification ordered (look-back follows)",
    )
    # What publication (SAMR Order 45) and a listing (Order 44) need to know of it.
    measures: list[Literal[tuple(MEASURES)]] = Field(  # type: ignore[valid-type]
        default_factory=list,
        title="处罚种类 Penalties",
        description="warning 警告, criticism 通报批评, fine 罚款, confiscation 没收, licence_suspended 暂扣许可证件, "
        "downgrade 降低资质等级, revoke_licence 吊销许可证件, revoke_business_licence 吊销营业执照, "
        "restrict 限制生产经营, suspension 责令停产停业, closure 责令关闭, ban 限制从业；"
        "空则为罚款 / empty: a fine",
    )
    party_kind: Literal[tuple(PARTY_KINDS)] = Field(  # type: ignore[valid-type]
        default="enterprise",
        title="当事人类型 Party",
        description="enterprise 企业, individual_business 个体工商户, person 自然人",
    )
    party_id: str = Field(
        default="",
        max_length=18,
        title="统一社会信用代码或身份证件号码 Party's number",
        description="企业、个体工商户的统一社会信用代码；自然人的身份证件号码（只存摘要，从不公示）/ USCC, or a "
        "person's identity number (only its digest is kept, never published)",
    )
    registered_with: str = Field(
        default="",
        pattern=r"^(\d{6})?$",
        title="登记地 Registered with",
        description="当事人登记地（住所地）市场监管部门代码；空为本局 / the registering authority's code; empty: ours",
    )
    restriction_months: int | None = Field(
        default=None,
        ge=1,
        le=1200,
        title="限制期限（月）Restriction (months)",
        description="限制生产经营或限制从业的期限；超过三年的，公示期按实际限制期限 / a restriction's length",
    )
    sector: Literal[tuple(SECTORS)] = Field(  # type: ignore[valid-type]
        default="general", title="领域 Sector", description="general, food 食品, drug 药品, special_equipment 特种设备"
    )
    heavier_fine: bool = Field(
        default=False,
        title="从重处罚 Heavier fine",
        description="罚款依裁量基准从重处罚（可列入严重违法失信名单）/ fined at the heavier end of the benchmark",
    )

    @field_validator("measures", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        """From the CLI's FIELD=VALUE: `measures=fine,revoke_licence`."""
        return [m.strip() for m in value.split(",") if m.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _party(self) -> "DecisionForm":
        if self.party_id:  # no message repeats the value: it may be a person's number
            if self.party_kind == "person":
                self.party_id = valid_identity_number(self.party_id)
            elif _is_identity_number(self.party_id):
                raise ValueError("party_id: this is a person's identity number; give party_kind=person")
            else:
                try:
                    self.party_id = valid_uscc(self.party_id)
                except ValueError:
                    raise ValueError("party_id: not a valid unified social credit code") from None
        if self.outcome == "penalty" and not self.measures:
            self.measures = ["fine"]  # a warning alone is said so, not assumed from a missing fine
        if self.fine and "fine" not in self.measures and self.outcome == "penalty":
            raise ValueError("measures: a fine is given but `fine` is not among the penalties")
        return self

    personal: ClassVar[bool] = True
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # no error repeats the number

    def recorded(self) -> dict[str, Any]:
        """A person's identity number is never kept with the answer (only its digest,
        on the publication)."""
        data = super().recorded()
        if self.party_kind == "person":
            data["party_id"] = ""
        return data


class PaymentForm(_CaseForm):
    paid_on: dt.date = Field(title="缴款日期 Paid on", description="当事人缴纳罚款的日期 / the day the fine was paid")
    # The surcharge for paying late never exceeds the fine (行政强制法 art. 45), so twice the largest fine.
    amount: Decimal = _yuan("缴款金额 Amount paid (yuan)", "含加处罚款 / including any surcharge", le=2 * MAX_FINE)


class ClosureForm(_CaseForm):
    pass


class AcceptanceForm(_CaseForm):
    accept: bool = Field(
        title="受理 Accept", description="是否受理该投诉（将告知投诉人）/ accept (the complainant is told)"
    )


class MediationForm(_CaseForm):
    outcome: Literal["agreed", "failed", "lead"] = Field(
        title="调解结果 Outcome",
        description="agreed = 达成协议; failed = 终止调解 / ended without agreement; lead = 发现违法线索 / a violation "
        "lead was found (becomes a case)",
    )


class LookbackForm(_CaseForm):
    rectified: bool = Field(title="整改到位 Rectified", description="核查整改是否到位 / was the rectification verified")


# --- spot-check samples (rules/samples.py) --------------------------------------------


class SamplingForm(_CaseForm):
    product: str = _name("产品名称 Product", "抽取的产品 / the product sampled")
    model: str = Field(default="", max_length=100, title="规格型号 Model", description="规格型号（可选）/ model")
    batch: str = Field(
        min_length=1, max_length=100, title="生产日期或批号 Batch", description="生产日期或批号 / date or batch"
    )
    quantity: str = Field(
        min_length=1, max_length=100, title="抽样数量 Quantity", description="抽样数量及备样 / how many, spares"
    )
    sampled_on: dt.date = Field(title="抽样日期 Sampled on", description="抽样的日期 / the day of sampling")
    producer: str = Field(
        default="",
        max_length=200,
        title="生产者 Producer",
        description="在销售者处抽样时填写生产者 / the producer, when sampled at a seller",
    )
    producer_authority: str = Field(
        default="",
        max_length=32,
        title="生产者所在地监管部门 Producer's authority",
        description="生产者不在本辖区时填写其属地监管部门代码 / the authority where the producer is, if elsewhere",
    )


class TestResultForm(_CaseForm):
    blind_code: str = Field(
        min_length=1, max_length=20, title="盲样编号 Blind code", description="样品上的盲样编号 / on the sample"
    )
    lab: str = _name("检验机构 Lab", "出具结果的检验机构 / the lab giving the result")
    report_no: str = Field(min_length=1, max_length=60, title="报告编号 Report no.", description="检验报告编号")
    passed: bool = Field(title="合格 Passed", description="检验结论是否合格 / does the sample pass")
    failing_items: str = Field(
        default="",
        max_length=2000,
        title="不合格项目 Failing items",
        description="不合格时必填 / required when it fails",
    )

    @model_validator(mode="after")
    def _items(self) -> "TestResultForm":
        if not self.passed and not self.failing_items:
            raise ValueError("failing_items: a failing result names its failing items")
        return self


class ObjectionForm(_CaseForm):
    objected: bool = Field(
        title="提出异议 Objected",
        description="企业是否在期限内书面提出异议 / did the enterprise object in writing within the period",
    )
    received_on: dt.date | None = Field(
        default=None,
        title="收到异议日期 Received on",
        description="提出异议时必填 / the day the objection reached the authority",
    )

    @model_validator(mode="after")
    def _received(self) -> "ObjectionForm":
        if self.objected and self.received_on is None:
            raise ValueError("received_on: an objection names the day it was received")
        return self


class RecheckForm(_CaseForm):
    passed: bool = Field(title="整改到位 Passed", description="复查是否合格 / does the re-check pass")
    failing_items: str = Field(default="", max_length=2000, title="仍不合格项目 Still failing", description="")


# --- risk items and recalls ---


class RiskAssessmentForm(_CaseForm):
    hazard: str = Field(
        min_length=1, max_length=2000, title="危害 Hazard", description="危害的性质与严重程度 / the harm"
    )
    exposure: str = Field(
        min_length=1,
        max_length=2000,
        title="暴露 Exposure",
        description="涉及的产品数量、人群与地域 / who and how many",
    )
    grade: Literal["一级", "二级", "三级"] = Field(
        title="风险等级 Grade", description="确认或调整 / confirmed or changed"
    )
    draft_warning: str = Field(
        default="",
        max_length=4000,
        title="消费提示草稿 Draft warning",
        description="建议发布消费提示时起草，由负责人决定时审定 / a draft for the head to approve or rewrite",
    )
    multiline: ClassVar[tuple[str, ...]] = ("text", "draft_warning")


class RiskDecisionForm(_CaseForm):
    outcome: Literal["warning", "spot_check", "recall", "incident", "close"] = Field(
        title="处置 Outcome",
        description="warning 消费提示 / spot_check 专项抽查 / recall 缺陷调查召回 / incident 启动预案 / close 结束",
    )
    warning: str = Field(
        default="",
        max_length=4000,
        title="消费提示 Warning",
        description="发布的正文；空则发布评估时的草稿 / the text published; empty: the assessment's draft",
    )
    campaign: str = Field(
        default="",
        max_length=32,
        title="抽查计划 Campaign",
        description="已备案的专项抽查计划编号 / a filed plan's key",
    )
    plan: str = Field(default="", max_length=64, title="应急预案 Plan", description="启动预案时 / the plan to trigger")
    level: Literal["", "I", "II", "III", "IV"] = Field(default="", title="响应级别 Level", description="I–IV")
    multiline: ClassVar[tuple[str, ...]] = ("text", "warning")

    @model_validator(mode="after")
    def _needs(self) -> "RiskDecisionForm":
        need = {"spot_check": ("campaign",), "incident": ("plan", "level"),
                "close": ("text",)}.get(self.outcome, ())  # fmt: skip
        if missing := [f for f in need if not getattr(self, f)]:
            what = "reason (text)" if missing == ["text"] else missing[0]
            raise ValueError(f"{missing[0]}: the outcome {self.outcome} needs its {what}")
        return self


class RiskOutcomeForm(_CaseForm):
    pass


class RecallInvestigationForm(_CaseForm):
    served_on: dt.date = Field(title="送达日期 Served on", description="通知送达生产者的日期 / the day it reached it")
    findings_by: dt.date = Field(
        title="报告期限 Findings by", description="通知写明的调查分析结果报告日期 / the day the notice names"
    )

    @model_validator(mode="after")
    def _order(self) -> "RecallInvestigationForm":
        if self.findings_by <= self.served_on:
            raise ValueError("findings_by: the day the findings are due comes after the notice is served")
        return self


class RecallFindingsForm(_CaseForm):
    defect: bool = Field(title="存在缺陷 Defect", description="调查分析是否认定存在缺陷 / is there a defect")


class RecallPlanForm(_CaseForm):
    filed_on: dt.date = Field(title="报告日期 Filed on", description="召回计划报告之日 / the day the plan was filed")
    affected: int = Field(ge=1, le=1_000_000_000, title="涉及数量 Units", description="召回计划涉及的产品数量")


class RecallPublicNoticeForm(_CaseForm):
    published_on: dt.date = Field(title="发布日期 Published on", description="召回信息发布之日")
    where: str = Field(min_length=1, max_length=500, title="发布渠道 Where", description="网站、门店等 / where")


class RecallSummaryForm(_CaseForm):
    recalled: int = Field(ge=0, le=1_000_000_000, title="已召回数量 Recalled", description="召回的产品数量")


class RecallAssessmentForm(_CaseForm):
    effective: bool = Field(
        title="召回有效 Effective", description="召回是否消除缺陷或降低安全风险 / did it remove the risk"
    )


def _is_identity_number(value: str) -> bool:
    try:
        valid_identity_number(value)
    except ValueError:
        return False
    return True


class PublicationForm(_CaseForm):
    uscc: str = Field(
        default="",
        max_length=18,
        title="统一社会信用代码 USCC",
        description="决定未载明时填写（企业、个体工商户）/ the party's code, if the decision did not give it",
    )
    where: str = Field(
        default="国家企业信用信息公示系统",
        min_length=1,
        max_length=200,
        title="公示渠道 Where",
        description="公示或推送的渠道 / where it is published (or pushed)",
    )


class ListingDecisionForm(_CaseForm):
    list: bool = Field(title="列入 List", description="是否列入严重违法失信名单 / list the party")
    party_answer: Literal["none", "waived", "statement", "hearing"] = Field(
        title="当事人意见 Party's answer",
        description="none 尚未答复, waived 书面放弃, statement 陈述申辩, hearing 听证 / what the party said after the "
        "notice (none: only once its window has ended)",
    )


class ReferralAckForm(_CaseForm):
    contact: str = _name("对方经办人 Contact", "协同部门确认接收的经办人 / who acknowledged it at the partner")


class ReferralFeedbackForm(_CaseForm):
    measures: str = _account(
        "惩戒措施 Measures", "协同部门采取的措施及效果 / the measures the partner took and their effect"
    )
    multiline: ClassVar[tuple[str, ...]] = ("text", "measures")


CASE_FORMS: dict[str, type[_CaseForm]] = {
    "filing": FilingForm,
    "investigation": InvestigationForm,
    "approval": ApprovalForm,
    "transfer-sent": TransferSentForm,
    "police": PoliceForm,
    "legal-review": LegalReviewForm,
    "pre-penalty": PrePenaltyForm,
    "party-response": PartyResponseForm,
    "served": ServedForm,
    "hearing": HearingForm,
    "decision": DecisionForm,
    "payment": PaymentForm,
    "closure": ClosureForm,
    "acceptance": AcceptanceForm,
    "mediation": MediationForm,
    "lookback": LookbackForm,
    "sampling": SamplingForm,
    "test-result": TestResultForm,
    "objection": ObjectionForm,
    "recheck": RecheckForm,
    "risk-assessment": RiskAssessmentForm,
    "risk-decision": RiskDecisionForm,
    "risk-outcome": RiskOutcomeForm,
    "recall-investigation": RecallInvestigationForm,
    "recall-findings": RecallFindingsForm,
    "recall-plan": RecallPlanForm,
    "recall-public-notice": RecallPublicNoticeForm,
    "recall-summary": RecallSummaryForm,
    "recall-assessment": RecallAssessmentForm,
    "publication": PublicationForm,
    "listing-decision": ListingDecisionForm,
    "referral-ack": ReferralAckForm,
    "referral-feedback": ReferralFeedbackForm,
}


def signers() -> tuple[str, ...]:
    """Every field a form is signed with, for an answer whose form is not at hand."""
    return tuple(dict.fromkeys(form.signer for form in (*FORMS.values(), *CASE_FORMS.values())))


def form_class(key: str) -> type[_Form]:
    """A step's form by the key its declaration names (rules/lifecycle.py)."""
    return FORMS.get(key) or CASE_FORMS[key]
