"""Emergency plans (预案) as data: a YAML file per plan, validated here.

A plan says, per level (I-IV): who is told on activation, which team goes on site,
how far up the reports travel, and the deadline of every step. A plan is versioned
by the hash of its file's content; an incident keeps the version it started with.
"""

from __future__ import annotations

import functools
import hashlib
import re
from enum import Enum
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kernel.errors import InvalidInput, InvalidPlan, UnknownPlan
from rules.authorities import Tier, first_error
from rules.durations import Period
from rules.reminders import EscalationPolicy, ReminderPolicy

_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{1,63}$")


class Level(str, Enum):
    I = "I"  # noqa: E741  the level's Roman numeral, as the plans write it
    II = "II"
    III = "III"
    IV = "IV"

    @classmethod
    def parse(cls, text: str) -> "Level":
        """A level as a person types it (`--level II`), or a one-line refusal."""
        if text not in {lv.value for lv in cls}:
            raise InvalidInput(f"--level must be I, II, III or IV, not {text!r}")
        return cls(text)

    @property
    def label(self) -> str:
        return {"I": "特别重大", "II": "重大", "III": "较大", "IV": "一般"}[self.value]

    @property
    def label_en(self) -> str:
        return {"I": "extraordinarily serious", "II": "serious", "III": "relatively serious", "IV": "ordinary"}[
            self.value
        ]


class Scope(str, Enum):
    handling = "handling"  # the authority handling the incident
    superiors = "superiors"  # every authority above it, up to the level's report_up_to
    government = "government"  # the duty office of the people's government of its region


class Recipients(BaseModel):
    """Who is told: an authority's roles, or its region's government duty office,
    which is told of the activation and of every report sent upward."""

    model_config = ConfigDict(extra="forbid")
    scope: Scope
    roles: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _roles(self) -> "Recipients":
        if self.scope is Scope.government and self.roles:
            raise ValueError("the government scope has no roles: its duty office is told")
        if self.scope is not Scope.government and not self.roles:
            raise ValueError(f"{self.scope.value}: name the roles to tell")
        return self


# Deadline names a plan must give, with what starts each clock.
STEP_DEADLINES = {
    "dispatch": "activation",
    "arrival": "activation",
    "initial_report": "activation",
    "upward_report": "activation",
    "progress_every": "the previous report",
    "final_report": "the end of handling",
    "review": "the final report",
    "release": "activation",
    "press_conference": "activation",
}


class LevelDeadlines(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dispatch: str
    arrival: str
    initial_report: str
    upward_report: str
    progress_every: str
    final_report: str
    review: str
    # Information release: authoritative information within `release`, a press
    # conference within `press_conference` where the level requires one.
    release: str
    press_conference: str | None = None

    @field_validator("*")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            Period.parse(value)
        except InvalidInput as exc:  # pydantic reports only ValueError with the field's path
            raise ValueError(str(exc)) from exc
        return value

    def period(self, name: str) -> Period:
        return Period.parse(getattr(self, name))


class LevelRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    report_up_to: Tier
    notify: list[Recipients] = Field(min_length=1)
    onsite_roles: list[str] = Field(min_length=1)
    deadlines: LevelDeadlines


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=_KEY.pattern)
    name: str = Field(min_length=1, max_length=200)
    name_en: str = Field(default="", max_length=200)
    basis: list[str] = Field(default_factory=list)
    reminders: ReminderPolicy = Field(default_factory=ReminderPolicy)
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)
    levels: dict[Level, LevelRules] = Field(min_length=1)

    def rules_for(self, level: Level) -> LevelRules:
        try:
            return self.levels[level]
        except KeyError:
            have = ", ".join(lv.value for lv in self.levels)
            raise UnknownPlan(f"plan {self.key!r} has no level {level.value} (it has {have})") from None


class LoadedPlan(BaseModel):
    plan: Plan
    content_hash: str
    source: str
    raw: str


@functools.lru_cache(maxsize=64)
def parse_plan(raw: str) -> Plan:
    """A plan from its YAML text, parsed once per text (a trigger reads its plan twice:
    the file, then the version it registered). Callers treat plans as read-only."""
    return Plan.model_validate(yaml.safe_load(raw))


def load_plan_file(path: Path) -> LoadedPlan:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidPlan(f"{path}: file not found") from exc
    try:
        plan = parse_plan(raw)
    except yaml.YAMLError as exc:
        raise InvalidPlan(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    except ValidationError as exc:
        raise InvalidPlan(f"{path}: {first_error(exc)}") from exc
    if plan.key != path.stem:
        raise InvalidPlan(f"{path}: key: {plan.key!r} must match the file name {path.stem!r}")
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()
    return LoadedPlan(plan=plan, content_hash=digest, source=str(path), raw=raw)


def load_plan(plans_dir: Path, key: str) -> LoadedPlan:
    path = plans_dir / f"{key}.yaml"
    if not _KEY.match(key) or not path.exists():
        known = ", ".join(sorted(p.stem for p in plans_dir.glob("*.yaml"))) or "none"
        raise UnknownPlan(f"unknown plan {key!r} (known plans: {known})")
    return load_plan_file(path)
