"""Supervisors' figures, the pure part: periods in the authority's time zone, the
summaries (median, 90th percentile, on-time share) and the flags the supervision rules
raise (data/rules/supervision.yaml). No database here: tasks/stats.py reads the records
and hands the values in."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pendulum
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Period = Literal["month", "quarter"]


@dataclass(frozen=True)
class Window:
    label: str  # 2027-01, 2027-Q1
    start: dt.datetime  # UTC, inclusive
    end: dt.datetime  # UTC, exclusive


def windows(first: dt.date, last: dt.date, by: Period, tz: str) -> list[Window]:
    """The months or quarters from the one holding `first` to the one holding `last`,
    bounded by local midnight in `tz`."""
    months = 3 if by == "quarter" else 1
    start = pendulum.datetime(first.year, first.month - (first.month - 1) % months, 1, tz=tz)
    out = []
    while start.date() <= last:
        end = start.add(months=months)
        label = f"{start.year}-Q{(start.month - 1) // 3 + 1}" if by == "quarter" else start.format("YYYY-MM")
        out.append(Window(label, _utc(start), _utc(end)))
        start = end
    return out


def previous(window: Window, by: Period, tz: str) -> Window:
    """The period just before `window`, of the same kind."""
    start = pendulum.instance(window.start).in_timezone(tz).subtract(months=3 if by == "quarter" else 1)
    return windows(start.date(), start.date(), by, tz)[0]


def month_before(day: dt.date, tz: str) -> Window:
    """The calendar month before the one holding `day` (a monthly report's month)."""
    start = pendulum.date(day.year, day.month, 1).subtract(months=1)
    return windows(start, start, "month", tz)[0]


def _utc(value: pendulum.DateTime) -> dt.datetime:
    return dt.datetime.fromtimestamp(value.timestamp(), tz=dt.timezone.utc)


def quantile(values: list[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between closest ranks (numpy's default,
    and Excel's PERCENTILE.INC), so a figure can be checked by hand."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(minutes: list[float]) -> dict[str, float | int | None]:
    return {"n": len(minutes), "median": _round(quantile(minutes, 0.5)), "p90": _round(quantile(minutes, 0.9))}


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- flags ------------------------------------------------------------------------------


class OnTimeRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    below: float = Field(gt=0, le=1)  # an authority's on-time share under this is flagged
    at_least: int = Field(ge=1)  # deadlines due in the period, fewer and the share says too little
    measure: str
    source: str


class FailureRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    above: float = Field(gt=0, le=1)  # a region's spot-check failure rate over this, in a year
    years: int = Field(ge=1)  # so many years running
    at_least: int = Field(ge=1)  # samples with a final result in each of those years
    measure: str
    source: str


class SupervisionRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirmed: bool  # false: no text confirms these numbers; the report says so
    measures: dict[str, str]  # key -> the measure's name in the opinion's words
    on_time: OnTimeRule
    spot_check_failures: FailureRule


def load_supervision_rules(path: Path) -> SupervisionRules:
    from kernel.errors import InvalidPlan
    from rules.authorities import first_error

    try:
        rules = SupervisionRules.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidPlan(f"{path}: {exc}") from None
    except ValidationError as exc:
        raise InvalidPlan(f"{path}: {first_error(exc)}") from None
    for rule in (rules.on_time, rules.spot_check_failures):
        if rule.measure not in rules.measures:
            raise InvalidPlan(f"{path}: measure {rule.measure!r} is not one of {', '.join(rules.measures)}")
    return rules


@dataclass(frozen=True)
class Flag:
    authority: str
    rule: str  # on_time | spot_check_failures
    period: str
    figure: float
    threshold: float
    measure: str
    why: str


def flags(
    rules: SupervisionRules,
    *,
    period: str,
    year: int,
    on_time: dict[str, tuple[int, int]],
    failures: dict[str, list[tuple[int, int]]],
) -> list[Flag]:
    """`on_time`: authority -> (on time, due) in the month `period`; `failures`: region
    -> (failed, tested) for each whole year up to `year`, oldest first. A spot-check flag
    is the year's (its period is the year), raised once however many months' reports
    see it."""
    found = []
    rule = rules.on_time
    for code, (met, due) in sorted(on_time.items()):
        if due >= rule.at_least and met / due < rule.below:
            found.append(
                Flag(
                    code,
                    "on_time",
                    period,
                    round(met / due, 4),
                    rule.below,
                    rule.measure,
                    f"按时办结率 {met}/{due} = {met / due:.1%}，低于 {rule.below:.0%}",
                )
            )
    spot = rules.spot_check_failures
    for code, years in sorted(failures.items()):
        recent = years[-spot.years :]
        if len(recent) == spot.years and all(t >= spot.at_least and f / t > spot.above for f, t in recent):
            rates = "、".join(f"{f}/{t} = {f / t:.1%}" for f, t in recent)
            found.append(
                Flag(
                    code,
                    "spot_check_failures",
                    str(year),
                    round(recent[-1][0] / recent[-1][1], 4),
                    spot.above,
                    spot.measure,
                    f"抽查不合格率连续 {spot.years} 年高于 {spot.above:.0%}：{rates}",
                )
            )
    return found
