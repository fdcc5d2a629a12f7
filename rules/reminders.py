"""When to remind about a deadline and how a miss climbs the supervision ladder.

Reminders: at fractions of the period (e.g. 50 % and 80 %), at the due time, then
every `overdue_every` while it stays open. Reminder i of a deadline has one time;
the watcher keeps the index of the next one and its time (`next_at`) on the row.

Escalation: when a deadline is missed, the authorities above the handling one are
told in order, nearest first, each given `ack_timeout` to acknowledge before the
next is told; the ladder is run `1 + repeat` times, then it stays open on the board.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rules.durations import Period


class ReminderPolicy(BaseModel):
    """As written in a plan: `at: ["50%", "80%"]`, `overdue_every: 30m`."""

    model_config = ConfigDict(extra="forbid")
    at: list[str] = Field(default_factory=lambda: ["50%", "80%"])
    overdue_every: str = "30m"

    @field_validator("at")
    @classmethod
    def _percentages(cls, values: list[str]) -> list[str]:
        for value in values:
            number = value.strip().removesuffix("%")
            if not number.isdigit() or not 0 < int(number) < 100:
                raise ValueError(f"{value!r} must be a percentage between 1% and 99%")
        return values

    @field_validator("overdue_every")
    @classmethod
    def _every(cls, value: str) -> str:
        period = _period(value)
        if period.unit not in ("m", "h"):
            raise ValueError("overdue_every must be in minutes or hours")
        return value

    def snapshot(self) -> dict[str, Any]:
        return {
            "fractions": sorted(int(v.strip().removesuffix("%")) / 100 for v in self.at),
            "overdue_every_s": _seconds(self.overdue_every),
        }


class EscalationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ack_timeout: str = "30m"
    repeat: int = Field(default=1, ge=0, le=10)

    @field_validator("ack_timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        if _period(value).unit not in ("m", "h"):
            raise ValueError("ack_timeout must be in minutes or hours")
        return value

    def snapshot(self, ladder: list[str]) -> dict[str, Any]:
        return {"ack_timeout_s": _seconds(self.ack_timeout), "repeat": self.repeat, "ladder": ladder}


def _period(value: str) -> Period:
    from kernel.errors import InvalidInput

    try:
        return Period.parse(value)
    except InvalidInput as exc:
        raise ValueError(str(exc)) from exc


def _seconds(value: str) -> int:
    period = _period(value)
    return period.amount * (60 if period.unit == "m" else 3600)


@dataclass(frozen=True)
class Reminder:
    index: int
    at: dt.datetime
    kind: str  # before | due | overdue


def reminder_at(index: int, *, starts_at: dt.datetime, due_at: dt.datetime, policy: dict[str, Any]) -> Reminder:
    fractions = policy["fractions"]
    if index < len(fractions):
        return Reminder(index, starts_at + (due_at - starts_at) * fractions[index], "before")
    overdue = index - len(fractions)
    at = due_at + dt.timedelta(seconds=policy["overdue_every_s"] * overdue)
    return Reminder(index, at, "due" if overdue == 0 else "overdue")


def due_reminder(
    sent: int, *, now: dt.datetime, starts_at: dt.datetime, due_at: dt.datetime, policy: dict[str, Any]
) -> tuple[Reminder | None, Reminder]:
    """The reminder to send now (the latest one whose time has come, so a watcher
    back from downtime sends one, not a burst) and the one after it."""
    current = None
    index = sent
    while (candidate := reminder_at(index, starts_at=starts_at, due_at=due_at, policy=policy)).at <= now:
        current = candidate
        index += 1
    return current, reminder_at(index, starts_at=starts_at, due_at=due_at, policy=policy)


def first_pending(*, now: dt.datetime, starts_at: dt.datetime, due_at: dt.datetime, policy: dict[str, Any]) -> int:
    """The index of the first reminder still in the future (after a due time moved)."""
    index = 0
    while reminder_at(index, starts_at=starts_at, due_at=due_at, policy=policy).at <= now:
        index += 1
    return index


@dataclass(frozen=True)
class Rung:
    step: int
    authority: str
    round: int


def rung(step: int, policy: dict[str, Any]) -> Rung | None:
    """Who is told at escalation step `step` (0 = at the miss); None past the last."""
    ladder = policy["ladder"]
    if not ladder or step >= len(ladder) * (1 + policy["repeat"]):
        return None
    return Rung(step, ladder[step % len(ladder)], step // len(ladder))


def step_at(step: int, *, raised_at: dt.datetime, policy: dict[str, Any]) -> dt.datetime:
    return raised_at + dt.timedelta(seconds=policy["ack_timeout_s"] * step)


def next_step_at(step: int, *, raised_at: dt.datetime, policy: dict[str, Any]) -> dt.datetime | None:
    """When the rung after `step` is told if nobody acknowledges; None after the last."""
    return step_at(step + 1, raised_at=raised_at, policy=policy) if rung(step + 1, policy) else None
