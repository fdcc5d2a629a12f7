"""What a valid incident trigger is, who hears of it, and how incidents are numbered."""

from __future__ import annotations

import datetime as dt
import re

import pendulum
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kernel.errors import InvalidInput
from rules.authorities import AuthorityTree, first_error
from rules.lifecycle import Document, Lifecycle, Notice, Step
from rules.plans import Level, LevelRules, Scope

# Control characters other than tab and newline never belong in user text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Clocks differ; an occurrence a minute "in the future" is a skewed clock, not a lie.
CLOCK_SKEW = dt.timedelta(minutes=1)


def clean_line(value: str) -> str:
    value = value.strip()
    if "\n" in value or "\r" in value or _CONTROL.search(value):
        raise ValueError("must be a single line without control characters")
    return value


def clean_text(value: str) -> str:
    value = value.replace("\r\n", "\n").strip()
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def require_timezone(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("must include a time zone (e.g. +08:00)")
    return value


class TriggerRequest(BaseModel):
    """The parameters a duty officer gives when triggering an incident."""

    model_config = ConfigDict(extra="forbid")
    plan: str = Field(min_length=1, max_length=64)
    level: Level
    title: str = Field(min_length=1, max_length=200)
    location: str = Field(min_length=1, max_length=200)
    authority: str = Field(min_length=1, max_length=32)
    occurred_at: dt.datetime | None = None
    reporter: str | None = Field(default=None, max_length=100)
    drill: bool = False  # an exercise (regflow drill); marked everywhere, never counted as real
    speed: int = Field(default=1, ge=1, le=3600)  # a drill's time compression

    @model_validator(mode="after")
    def _speed_is_for_drills(self) -> "TriggerRequest":
        if self.speed != 1 and not self.drill:
            raise ValueError("speed: only a drill runs on compressed time")
        return self

    _lines = field_validator("plan", "title", "location", "authority", "reporter", mode="before")(
        lambda v: clean_line(v) if isinstance(v, str) else v
    )

    _aware = field_validator("occurred_at")(lambda v: require_timezone(v))


def validate_trigger(data: dict, *, now: dt.datetime) -> TriggerRequest:
    """Validate trigger parameters; one-line InvalidInput on any problem."""
    try:
        request = TriggerRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(first_error(exc)) from exc
    if request.occurred_at is not None and request.occurred_at > now + CLOCK_SKEW:
        raise InvalidInput(f"occurred_at: {request.occurred_at.isoformat()} is in the future")
    return request


def parse_when(text: str, *, tz: str) -> dt.datetime:
    """An ISO 8601 time; without an offset it is read as local time in `tz`."""
    try:
        parsed = pendulum.parse(text, tz=tz, strict=True)
    except (ValueError, pendulum.parsing.exceptions.ParserError) as exc:
        raise InvalidInput(f"malformed date/time {text!r}: use ISO 8601, e.g. 2026-11-26T09:30+08:00") from exc
    if not isinstance(parsed, dt.datetime):
        raise InvalidInput(f"malformed date/time {text!r}: a date and a time are needed")
    return parsed


def activation_recipients(rules: LevelRules, tree: AuthorityTree, handling: str) -> list[str]:
    """Apprise tags (`<authority code>.<role>`) to tell when the plan is activated."""
    tags: list[str] = []
    for group in rules.notify:
        if group.scope is Scope.government:
            tags += _government(rules, handling)
            continue
        for authority in _scope(group.scope, rules, tree, handling):
            tags += [f"{authority}.{role}" for role in group.roles]
    return list(dict.fromkeys(tags))


def upward_recipients(rules: LevelRules, tree: AuthorityTree, handling: str) -> list[str]:
    """Who receives reports: the duty desks of every authority up to `report_up_to`,
    and the region's government duty office where the level names it."""
    return [f"{a}.duty" for a in _scope(Scope.superiors, rules, tree, handling)] + _government(rules, handling)


def _government(rules: LevelRules, handling: str) -> list[str]:
    """The handling authority's government duty office, if the level tells it. Queued
    even where no channel routes it yet: a message that cannot go shows on the board."""
    return [f"{handling}.government"] if any(g.scope is Scope.government for g in rules.notify) else []


def onsite_recipients(rules: LevelRules, handling: str) -> list[str]:
    return [f"{handling}.{role}" for role in rules.onsite_roles]


def _scope(scope: Scope, rules: LevelRules, tree: AuthorityTree, handling: str) -> list[str]:
    tree.get(handling)
    if scope is Scope.handling:
        return [handling]
    return [a.code for a in tree.chain_up(handling) if a.tier.rank <= rules.report_up_to.rank]


def incident_number(year: int, seq: int) -> str:
    return f"INC-{year}-{seq:06d}"


# The longest report or note a form accepts (characters); longer text is refused.
MAX_TEXT = 20_000


# What each deadline of an incident is called; its period is the plan's, by the same name.
DEADLINE_LABELS = {"dispatch": "出动", "arrival": "到场", "initial_report": "初报", "upward_report": "报送上级",
                   "final_report": "终报", "review": "事后评估", "release": "信息发布",
                   "press_conference": "新闻发布会"}  # fmt: skip

# The deadlines a trigger opens, counted from activation; the plan's level may leave
# out the press conference (the State Council's rule names it for levels I and II).
TRIGGER_DEADLINES = ("dispatch", "arrival", "initial_report", "upward_report", "release", "press_conference")


def trigger_deadlines(rules: LevelRules) -> list[str]:
    return [name for name in TRIGGER_DEADLINES if getattr(rules.deadlines, name) is not None]


# --- the emergency-response lifecycle ---------------------------------------------------
# Three lines run side by side, each answered whenever its step is open:
#   on-site work:  arrival -> end of handling
#   reporting:     initial report -> progress 1, 2, ... (until handling ends) -> final report -> review
#   release:       release 1, 2, ... (authoritative information, updated until the review)
_REPORT = (
    "填写报告内容；提交后报告将报送上级单位。\n\n"
    "Write the report; on submission it is sent to the superior authorities."
)

EMERGENCY = Lifecycle(
    name="emergency",
    title="突发事件应急处置 / emergency response",
    first="arrival",
    lines=("initial-report", "release"),
    documents={
        "initial": Document("初报", "initial report", "report.md.j2"),
        "progress": Document("续报", "progress report", "report.md.j2"),
        "final": Document("终报", "final report", "report.md.j2"),
        "closure": Document("处置结束小结", "end of handling", "report.md.j2"),
        "review": Document("事后评估", "post-incident review", "report.md.j2"),
        "release": Document("信息发布", "information release", "release.md.j2"),
    },
    steps=(
        Step(
            "arrival",
            "到达现场 / arrival on site",
            "onsite",
            "arrival",
            meets=("arrival",),
            then="handling-ended",
            notice=Notice("现场到达", "Arrival on site", to=("desk", "head"), text="note"),
            verbs=("arrive",),
            cli="regflow incident arrive {number} --officer 姓名",
            ask="现场处置组到达现场后，填写到场负责人和现场情况。\n\n"
            "When the on-site team arrives, enter who leads it and what it found.",
        ),
        Step(
            "initial-report",
            "初报 / initial report",
            "duty",
            "report",
            meets=("initial_report", "upward_report"),
            documents=("initial",),
            then="progress",
            notice=Notice("初报", "Initial report", to=("upward",)),
            verbs=("report:initial",),
            cli="regflow incident report {number} --kind initial --text '…'",
            ask=_REPORT,
        ),
        Step(
            "progress",
            "续报 {n} / progress report {n}",
            "duty",
            "report",
            meets=("{name}",),
            documents=("progress",),
            repeats=True,
            until="handling-ended",
            then="final-report",
            notice=Notice("续报 {n}", "Progress report {n}", to=("upward",)),
            verbs=("report:progress",),
            cli="regflow incident report {number} --kind progress --text '…'",
            ask="事件仍在处置时按时续报；处置结束后由现场登记结束处置，续报随之停止。\n\n"
            "While handling goes on, report progress on time; once the end of handling is "
            "recorded, progress reports stop.",
        ),
        Step(
            "handling-ended",
            "结束处置 / end of handling",
            "onsite",
            "handling-ended",
            handler_opens=("final_report",),  # its line ends here; the reporting line's limit starts
            documents=("closure",),
            notice=Notice("处置结束", "End of handling", to=("upward",)),
            verbs=("close",),
            cli="regflow incident close {number} --summary '…'",
            ask="现场处置结束时填写小结；此后不再续报，终报时限开始计算。\n\n"
            "When handling on site has ended, summarise it; progress reports stop and the "
            "final report's limit starts.",
        ),
        Step(
            "final-report",
            "终报 / final report",
            "duty",
            "report",
            meets=("final_report",),
            requires=("initial-report", "handling-ended"),
            documents=("final",),
            then="review",
            notice=Notice("终报", "Final report", to=("upward",)),
            verbs=("report:final",),
            cli="regflow incident report {number} --kind final --text '…'",
            ask=_REPORT,
        ),
        Step(
            "review",
            "事后评估 / post-incident review",
            "head",
            "review",
            meets=("review",),
            documents=("review",),
            notice=Notice("事后评估完成，事件结案", "Review done, incident closed", to=("upward", "head"), text=""),
            verbs=("review",),
            cli="regflow incident review {number} --lessons '…'",
            ask="事后评估：处置评估、经验教训与改进措施。提交后事件结案。\n\n"
            "Post-incident review: assessment, lessons, improvements. Submitting it closes the incident.",
        ),
        Step(
            "release",
            "信息发布 {n} / information release {n}",
            "head",
            "release",
            meets=("release",),
            documents=("release",),
            repeats=True,
            until="review",
            beside="review",
            verbs=("release",),
            cli="regflow incident release {number} --draft  |  regflow incident release {number} --by 负责人",
            ask="信息发布：正文留空则发布依据事件记录起草的通稿（regflow incident release 编号 --draft 可预览）；"
            "经负责人批准后发布至本单位公开渠道。处置期间可多次更新。\n\n"
            "Information release: leave the text empty to publish the draft made from the incident's record "
            "(preview it with --draft); approved by the head, it goes to the authority's public channel. "
            "It may be updated while handling goes on.",
        ),
    ),
)
