"""Statutory time limits as data (data/rules/statutory.yaml), with per-authority
overrides (data/rules/overrides/<code>.yaml). Versioned by content hash, like plans."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kernel.errors import InvalidInput, InvalidPlan
from rules.authorities import first_error
from rules.calendar import WorkCalendar
from rules.durations import Due, Period, due_after


class Limit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: str
    name: str = Field(min_length=1)
    name_en: str = ""
    source: str = Field(min_length=1)
    from_: str = Field(alias="from", min_length=1)
    before: bool = False
    extension: str | None = None
    approver: str | None = None
    max_extensions: int | None = Field(default=None, ge=1)
    # False where the number was not found in the text of the law or rule itself (only in
    # a reproduction, or not at all): shown as unconfirmed wherever the limit is.
    confirmed: bool = True

    @property
    def label(self) -> str:
        return self.name if self.confirmed else f"{self.name}（条文未核实 unconfirmed）"

    @field_validator("period", "extension")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Period.parse(value)
            except InvalidInput as exc:
                raise ValueError(str(exc)) from exc
        return value


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    name: str
    name_en: str = ""
    limits: dict[str, Limit] = Field(min_length=1)

    def limit(self, key: str) -> Limit:
        try:
            return self.limits[key]
        except KeyError:
            raise InvalidInput(f"unknown rule {key!r} (see `regflow rules list`)") from None


class LoadedRules(BaseModel):
    rules: RuleSet
    content_hash: str


def load_rules(path: Path, *, authority: str | None = None) -> LoadedRules:
    """The rule file, with the authority's overrides applied when it has any."""
    raw = _read(path)
    data = _yaml(raw, path)
    digest = hashlib.sha256(raw.encode("utf-8"))
    if authority:
        override = path.parent / "overrides" / f"{authority}.yaml"
        if override.exists():
            extra = _read(override)
            digest.update(extra.encode("utf-8"))
            for key, fields in (_yaml(extra, override) or {}).get("limits", {}).items():
                if key not in data["limits"]:
                    raise InvalidPlan(f"{override}: limits.{key}: no such rule to override")
                data["limits"][key] = {**data["limits"][key], **(fields or {})}
    try:
        return LoadedRules(rules=RuleSet.model_validate(data), content_hash=digest.hexdigest())
    except ValidationError as exc:
        raise InvalidPlan(f"{path}{' + overrides for ' + authority if authority else ''}: {first_error(exc)}") from exc


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidPlan(f"{path}: file not found") from exc


def _yaml(raw: str, path: Path) -> dict:
    try:
        return yaml.safe_load(raw) or {}
    except yaml.YAMLError as exc:
        raise InvalidPlan(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc


def due_by_rule(
    limit: Limit,
    start: dt.datetime,
    *,
    tz: str,
    calendar: WorkCalendar,
    pauses: list[tuple[dt.datetime, dt.datetime]] = (),
) -> Due:
    """When a limit runs out counted from `start` or, for `before` limits, the latest
    time something may happen before the event at `start`."""
    period = Period.parse(limit.period)
    if limit.before:
        return latest_before(start, period, tz=tz, calendar=calendar, label=limit.label)
    return due_after(start, period, tz=tz, calendar=calendar, event=limit.label, pauses=pauses)


def latest_before(event: dt.datetime, period: Period, *, tz: str, calendar: WorkCalendar, label: str = "") -> Due:
    """The end of the last day on which a notice may arrive: the N-th (working) day
    before the event day, the event day not counted."""
    import pendulum

    if period.unit not in ("d", "wd"):
        raise InvalidInput("a 'before' limit must be in days or working days")
    local = pendulum.instance(event).in_timezone(tz)
    day, counted = local.date(), 0
    while counted < period.amount:
        day -= dt.timedelta(days=1)
        if period.unit == "d" or calendar.is_workday(day):
            counted += 1
    due = pendulum.datetime(day.year, day.month, day.day, 23, 59, 59, tz=tz)
    zh, en = period.words()
    rule = (
        f"{label + '：' if label else ''}须于 {local.format('YYYY-MM-DD')} 前 {zh}（当日不计入）送达 / "
        f"at least {en} before {local.format('YYYY-MM-DD')}, the event day not counted"
    )
    return Due(at=due.in_timezone("UTC"), rule=rule)


def late_payment_surcharge(fine: Decimal, *, payment_due: dt.date, paid_on: dt.date) -> Decimal:
    """3 % of the fine for each day after the payment deadline, never more than the
    fine itself (Penalty Law Art. 72; SAMR rules Art. 75). Yuan, to the fen."""
    if fine <= 0:
        raise InvalidInput("the fine must be positive")
    days = max((paid_on - payment_due).days, 0)
    surcharge = min(fine * Decimal("0.03") * days, fine)
    return surcharge.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
