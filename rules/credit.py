"""Credit supervision (国质检监〔2017〕207号 sections 八 and 十二): penalties published
(《市场监督管理行政处罚信息公示规定》, SAMR Order 45), serious violators listed
(《市场监督管理严重违法失信名单管理办法》, SAMR Order 44) and both referred to partner
departments for joint discipline. Pure: no Prefect, no database.

    publication:  publication -> end (published; it ends by its period, early on a
                  granted application, or withdrawn when the decision falls)
    listing:      listing-approval --refused--> end
                    -> listing-notice -> listing-decision --not listed--> end
                    -> listing-publication -> end (listed; removed on expiry or early)
    referral:     referral-ack -> referral-feedback -> end

The statutory periods are in data/rules/statutory.yaml (`publication.*`, `listing.*`);
the conditions (what may not end early, the small-fine threshold, the listing
criteria, the limits no text sets) in data/rules/credit.yaml; the partner departments
in data/partners.yaml.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pendulum
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kernel.errors import InvalidInput
from rules.authorities import first_error
from rules.durations import Due, Period
from rules.files import read_text
from rules.lifecycle import Branch, Document, Lifecycle, Notice, Step

# The kinds of penalty a decision imposes (行政处罚法 Art. 9, as SAMR imposes them).
MEASURES = {
    "warning": "警告",
    "criticism": "通报批评",
    "fine": "罚款",
    "confiscation": "没收违法所得、没收非法财物",
    "licence_suspended": "暂扣许可证件",
    "downgrade": "降低资质等级",
    "revoke_licence": "吊销许可证件",
    "revoke_business_licence": "吊销营业执照",
    "restrict": "限制开展生产经营活动",
    "suspension": "责令停产停业",
    "closure": "责令关闭",
    "ban": "限制从业",
}
# Order 45 Art. 14 para. 3: publication of these never ends early.
NO_EARLY_END = ("suspension", "restrict", "ban", "downgrade", "revoke_licence", "revoke_business_licence")
# Order 44 Art. 2 para. 2: the heavier penalties (较重行政处罚) a listing needs; a fine
# counts only where it was set by the heavier end of the discretion benchmark.
HEAVIER = ("downgrade", "revoke_licence", "revoke_business_licence", "restrict", "suspension", "closure", "ban")
PARTY_KINDS = {"enterprise": "企业", "individual_business": "个体工商户", "person": "自然人"}
SECTORS = {"general": "一般", "food": "食品", "drug": "药品", "special_equipment": "特种设备"}
REMOVALS = {"changed": "处罚决定被变更", "revoked": "处罚决定被撤销", "illegal": "处罚决定被确认违法",
            "invalid": "处罚决定被确认无效"}  # fmt: skip

_ID = re.compile(r"^\d{17}[\dX]$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def valid_identity_number(value: str) -> str:
    """A resident identity number (GB 11643), upper-cased, or ValueError. The message
    never repeats the number: it is personal data."""
    value = value.strip().upper()
    if not _ID.match(value):
        raise ValueError("the identity number is not 17 digits and a check character")
    check = "10X98765432"[sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True)) % 11]
    if check != value[17]:
        raise ValueError("the identity number's check character is wrong")
    if value[:2] not in _PROVINCES:
        raise ValueError("the identity number's region code is not a province's")
    try:
        born = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise ValueError("the identity number's date of birth is not a date") from None
    if born.year < 1900:
        raise ValueError("the identity number's date of birth is not a date")
    return value


# GB/T 2260's province-level codes, the first two digits of an identity number.
_PROVINCES = {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
              "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
              "81", "82"}  # fmt: skip


def province_of(code: str) -> str:
    """An authority's province by its administrative division code (330106 -> 33)."""
    return code.strip()[:2]


# --- the conditions file ------------------------------------------------------------------


class OwnLimit(BaseModel):
    """A limit no text was found to set: the authority's own, and shown as such."""

    model_config = ConfigDict(extra="forbid")
    period: str
    why: str

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        Period.parse(value)
        return value


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    article: str
    zh: str
    confirmed: bool = False  # the article's number read in the order's text

    @property
    def cited(self) -> str:
        return f"《市场监督管理严重违法失信名单管理办法》{self.article}" + ("" if self.confirmed else "（条文未核实）")


class CreditRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Order 45 Art. 13 para. 2: the province sets what a small fine is; below it (not
    # included) a fine's publication lasts the short period.
    small_fine: dict[Literal["person", "organisation"], Decimal]
    small_fine_source: str
    small_fine_confirmed: bool = False
    # 信用修复管理办法 Art. 6: these sectors wait the longer period before repair.
    sensitive_sectors: list[Literal[tuple(SECTORS)]]  # type: ignore[valid-type]
    own_limits: dict[str, OwnLimit]
    criteria: dict[str, Criterion]  # Order 44 Arts. 5-10, by field
    # A penalty referred to partner departments as a major one: a fine of at least this,
    # or a heavier penalty (the authority's own line: no text draws it).
    major_fine: Decimal

    def small(self, fine: Decimal | None, party_kind: str) -> bool:
        if fine is None:
            return True
        line = self.small_fine["person" if party_kind == "person" else "organisation"]
        return fine < line

    def limit(self, name: str) -> OwnLimit:
        return self.own_limits[name]


def load_credit_rules(path: Path) -> CreditRules:
    return _load(CreditRules, path)


class Partner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    department: str = Field(min_length=1, max_length=100)
    region: str = Field(min_length=2, max_length=32)  # an authority code: it covers that authority and those below
    channel: str = Field(min_length=1, max_length=60)  # the apprise tag its referrals go to
    takes: list[Literal["listing", "major_penalty"]] = Field(min_length=1)
    ack_within: str = "5wd"
    feedback_within: str = "30d"

    @field_validator("ack_within", "feedback_within")
    @classmethod
    def _period(cls, value: str) -> str:
        Period.parse(value)
        return value


class Partners(BaseModel):
    model_config = ConfigDict(extra="forbid")
    partners: list[Partner]

    def for_event(self, event: str, chain: list[str]) -> list[Partner]:
        """The partners that take `event` and whose region is the authority or above it
        (`chain`: the authority's code, then its superiors')."""
        return [p for p in self.partners if event in p.takes and p.region in chain]


def load_partners(path: Path) -> Partners:
    partners = _load(Partners, path)
    keys = [p.key for p in partners.partners]
    if len(set(keys)) != len(keys):
        raise InvalidInput(f"{path}: a partner key is used twice")
    return partners


def _load(model, path: Path):
    try:
        return model.model_validate(yaml.safe_load(read_text(path)))
    except ValidationError as exc:
        raise InvalidInput(f"{path}: {first_error(exc)}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not YAML ({type(exc).__name__})") from None


# --- what a publication may do ------------------------------------------------------------


def published_at_all(measures: list[str]) -> bool:
    """Order 45 Art. 2: a decision of a warning alone is not published."""
    return any(m != "warning" for m in measures)


def short_period(measures: list[str], fine: Decimal | None, party_kind: str, rules: CreditRules) -> bool:
    """Order 45 Art. 13: only a public criticism or a small fine (a warning beside them
    changes nothing) is published for the short period."""
    rest = set(measures) - {"warning"}
    return rest <= {"criticism", "fine"} and ("fine" not in rest or rules.small(fine, party_kind))


def early_end_refusal(measures: list[str], short: bool, listed: bool) -> str | None:
    """Why the party may not apply to end a publication early (None: it may, once the
    waiting period has passed and the conditions hold)."""
    barred = [MEASURES[m] for m in measures if m in NO_EARLY_END]
    if barred:
        return f"《市场监督管理行政处罚信息公示规定》第十四条第三款：{'、'.join(barred)}的处罚信息不得提前停止公示"
    if short:
        return "仅受通报批评或较低数额罚款的处罚信息公示三个月期满自动停止，不适用信用修复（信用修复管理办法第六条）"
    if listed:
        return "当事人在严重违法失信名单中（《市场监督管理行政处罚信息公示规定》第十四条第一款第四项）"
    return None


def heavier(measures: list[str], heavier_fine: bool) -> bool:
    """Order 44 Art. 2 para. 2: the penalty is a heavier one."""
    return heavier_fine and "fine" in measures or any(m in HEAVIER for m in measures)


def period_end(start: dt.datetime, period: str, *, tz: str, label: str) -> Due:
    """When a publication or listing period (or the wait before an application) has run:
    the same day N months on, at its end. Not a time limit for an act, so a holiday
    does not move it (and years without holiday data can be counted)."""
    amount = Period.parse(period)
    if amount.unit != "mo":
        raise InvalidInput(f"{label}: a publication or listing period is counted in months, not {period!r}")
    local = pendulum.instance(start).in_timezone(tz)
    last = local.add(months=amount.amount).set(hour=23, minute=59, second=59, microsecond=0)
    zh, en = amount.words()
    since = local.format("YYYY-MM-DD")
    return Due(last.in_timezone("UTC"), f"{label}：自 {since} 起 {zh}，至 {last.date()} 届满 / {en} from {since}")


# --- the lifecycles -----------------------------------------------------------------------

PUBLICATION = Lifecycle(
    name="publication",
    title="行政处罚信息公示 / penalty publication",
    first="publication",
    documents={"publication": Document("行政处罚信息公示", "Penalty published", "case.md.j2")},
    cli="regflow publication {step} {number} --by 姓名 …",
    steps=(
        Step(
            "publication",
            "公示行政处罚信息 / publish the penalty",
            "handler",
            "publication",
            meets=("publication",),
            documents=("publication",),
            verbs=("publish",),
            cli="regflow publication publish {number} --by 承办人",
            ask="核对公示内容（自然人身份证件号码等个人信息不公示），公示或推送至登记地 / check the content "
            "(no identity number or other personal data) and publish it, or push it to the registering province",
        ),
    ),
)

LISTING = Lifecycle(
    name="listing",
    title="严重违法失信名单 / serious-violation listing",
    first="listing-approval",
    documents={
        kind: Document(zh, en, "case.md.j2")
        for kind, (zh, en) in {
            "approval": ("列入严重违法失信名单审批表", "Listing approval"),
            "notice": ("列入严重违法失信名单告知书", "Prior notice of listing"),
            "decision": ("列入严重违法失信名单决定书", "Listing decision"),
            "publication": ("严重违法失信名单公示", "Listing published"),
            "removal": ("移出严重违法失信名单决定书", "Removal from the list"),
        }.items()
    },
    cli="regflow serious-list {step} {number} --by 姓名 …",
    steps=(
        Step(
            "listing-approval",
            "列入审批 / approval of the proposal",
            "head",
            "approval",
            meets=("listing-approval",),
            documents=("approval",),
            above=True,
            then=Branch("approve", {True: "listing-notice"}),
            verbs=("decide",),
            cli="regflow serious-list decide {number} --approve|--refuse --by 负责人",
            ask="县级、设区的市级市场监管部门列入须报经上一级部门同意 / a county or city bureau's listing needs "
            "the consent of the bureau above it",
            notice={
                True: Notice("同意列入严重违法失信名单，告知当事人", "Listing approved: tell the party"),
                False: Notice("不同意列入严重违法失信名单", "Listing refused"),
            },  # fmt: skip
        ),
        Step(
            "listing-notice",
            "事先告知 / prior notice to the party",
            "handler",
            "served",
            meets=("listing-notice",),
            documents=("notice",),
            starts_from="served_on",
            then="listing-decision",
            verbs=("notify",),
            cli="regflow serious-list notify {number} --served-on 日期 --by 承办人",
            notice=Notice("列入告知书已送达，当事人可陈述申辩、要求听证", "Prior notice served"),
        ),
        Step(
            "listing-decision",
            "列入决定 / listing decision",
            "head",
            "listing-decision",
            meets=("listing-decision",),
            documents=("decision",),
            then=Branch("list", {True: "listing-publication"}),
            verbs=("decide",),
            cli="regflow serious-list decide {number} --list|--not-list --party-answer waived|statement|hearing "
            "--by 负责人",
            notice={
                True: Notice("决定列入严重违法失信名单", "Decided to list", to=("upward",)),
                False: Notice("决定不予列入", "Decided not to list"),
            },  # fmt: skip
        ),
        Step(
            "listing-publication",
            "列入公示 / listing published",
            "handler",
            "publication",
            meets=("listing-publication",),
            documents=("publication",),
            verbs=("publish",),
            cli="regflow serious-list publish {number} --by 承办人",
        ),
    ),
)

REFERRAL = Lifecycle(
    name="referral",
    title="联合惩戒推送 / referral to a partner department",
    first="referral-ack",
    documents={"feedback": Document("联合惩戒反馈", "Measures taken", "case.md.j2")},
    cli="regflow referral {step} {number} --by 姓名 …",
    steps=(
        Step(
            "referral-ack",
            "接收确认 / the partner acknowledges",
            "handler",
            "referral-ack",
            meets=("referral-ack",),
            then="referral-feedback",
            verbs=("ack",),
            cli="regflow referral ack {number} --contact 对方经办人 --by 承办人",
            notice=Notice("协同部门已确认接收", "The partner acknowledged the referral", text="contact"),
        ),
        Step(
            "referral-feedback",
            "惩戒措施反馈 / measures taken",
            "handler",
            "referral-feedback",
            meets=("referral-feedback",),
            documents=("feedback",),
            verbs=("feedback",),
            cli="regflow referral feedback {number} --measures '…' --by 承办人",
            ask="登记协同部门采取的惩戒措施及其效果 / record the measures the partner took and their effect",
            notice=Notice("协同部门已反馈惩戒措施", "The partner reported its measures", text="measures"),
        ),
    ),
)

# Deadline names, their rule (None: the conditions file, the partners file or the
# decision sets it) and label.
DEADLINES: dict[str, tuple[str | None, str]] = {
    "publication": ("publication.publish", "公示行政处罚信息"),
    "publication-review": (None, "提前停止公示申请核实"),
    "listing-approval": (None, "列入审批"),
    "listing-notice": (None, "送达列入告知书"),
    "listing-decision": (None, "作出列入决定"),
    "listing-publication": ("listing.publish", "列入公示"),
    "listing-removal": (None, "提前移出申请核实"),
    "referral-ack": (None, "协同部门接收确认"),
    "referral-feedback": (None, "协同部门反馈惩戒措施"),
}
