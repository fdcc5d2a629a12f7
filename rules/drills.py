"""Drill scenarios (应急演练): what the simulated responders do, and when.

A scenario file names the incident to stage and, step by step in lifecycle order,
when (exercise time after the trigger) each responder answers and what they enter.
The drill runs the plan on compressed time (`--speed`): at speed 60 an hour of the
exercise passes in a minute, the statutory periods with it, so a step scheduled after
its limit is late and sets off the same reminders and escalations as a real miss.
Steps the scenario leaves out are left to people (the Prefect UI or the CLI).

    name: 标准演练 / standard drill
    title: 【演练】商场电梯困人
    location: 杭州市西湖区文三路 1 号
    authority: "330106"
    acknowledge_after: 20m        # supervisors acknowledge an escalation after this
    steps:
      - {step: arrival, at: 40m, officer: 张三, note: 已到场}
      - {step: initial-report, at: 75m, author: 李四, text: …}   # due 1h: late
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kernel.errors import InvalidInput
from rules.authorities import first_error
from rules.durations import Period
from rules.incidents import EMERGENCY, clean_line

# How a drill is marked wherever it shows: run names, messages, documents, boards.
DRILL_MARK = "【演练 DRILL】"


def _seconds(value: str) -> int:
    try:
        period = Period.parse(value)
    except InvalidInput as exc:  # pydantic reports only ValueError with the field's path
        raise ValueError(str(exc)) from exc
    if period.unit == "wd":
        raise ValueError("use m, h or d: a drill's clock does not know working days")
    return period.amount * {"m": 60, "h": 3600, "d": 86400}[period.unit]


def _duration(value: str | None) -> str | None:
    """A scenario's time, checked when the file is read."""
    if value is not None:
        _seconds(value)
    return value


class ScriptedStep(BaseModel):
    """One simulated answer: the step, when, and the form's fields."""

    model_config = ConfigDict(extra="allow")
    step: str
    at: str = Field(description="exercise time after the trigger, e.g. 40m, 3h, 2d")

    _at = field_validator("at")(lambda v: _duration(v))

    @property
    def at_seconds(self) -> int:
        return _seconds(self.at)

    @property
    def answer(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    title: str = Field(min_length=1, max_length=200)
    location: str = Field(min_length=1, max_length=200)
    authority: str = Field(min_length=1, max_length=32)
    acknowledge_after: str | None = None  # None: nobody acknowledges, escalations climb to the top
    steps: list[ScriptedStep] = Field(default_factory=list)

    _lines = field_validator("name", "title", "location", "authority", mode="before")(
        lambda v: clean_line(v) if isinstance(v, str) else v
    )

    _ack = field_validator("acknowledge_after")(lambda v: _duration(v))

    @property
    def acknowledge_seconds(self) -> int | None:
        return _seconds(self.acknowledge_after) if self.acknowledge_after else None


@dataclass(frozen=True)
class LoadedScenario:
    scenario: Scenario
    path: Path
    content_hash: str


def load_scenario(path: Path) -> LoadedScenario:
    """Read and check a scenario: steps in lifecycle order, times not going back,
    every answer valid for its form. One-line InvalidInput naming the file otherwise."""
    from rules.forms import FORMS

    if not path.is_file():
        raise InvalidInput(f"no drill scenario file {str(path)!r}")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
        scenario = Scenario.model_validate(data if isinstance(data, dict) else {})
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidInput(f"{path}: not valid YAML{where} ({getattr(exc, 'problem', None) or exc})") from exc
    except ValidationError as exc:
        raise InvalidInput(f"{path}: {first_error(exc)}") from exc
    answered: dict[str, dict[str, Any]] = {}
    last = -1
    for i, scripted in enumerate(scenario.steps):
        open_now = {step.name: step for step in EMERGENCY.open_steps(answered)}
        where = f"{path}: steps[{i}]"
        expected = open_now.get(scripted.step)
        if expected is None:
            wanted = " or ".join(open_now) or "nothing (the incident is closed)"
            raise InvalidInput(f"{where}: {scripted.step!r} out of order, the lifecycle awaits {wanted}")
        if scripted.at_seconds < last:
            raise InvalidInput(f"{where}: at {scripted.at} is earlier than the step before")
        last = scripted.at_seconds
        try:
            answer = FORMS[expected.form].model_validate(scripted.answer).model_dump()
        except ValidationError as exc:
            raise InvalidInput(f"{where} ({scripted.step}): {first_error(exc)}") from exc
        answered[scripted.step] = answer
    return LoadedScenario(scenario, path, hashlib.sha256(raw).hexdigest())
