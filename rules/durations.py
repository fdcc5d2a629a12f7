"""Statutory periods and their due times.

Counting rules (RULES.md): the starting day is not counted; "within N" includes N;
day-based periods end at the end of the last day in local time; a period whose last
day is not a working day ends on the next working day. Minute and hour periods are
exact. Every due time comes with the rule in words, so a person can check it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

import pendulum

from kernel.errors import InvalidInput
from rules.calendar import WorkCalendar

Unit = Literal["m", "h", "d", "wd", "mo"]
_PATTERN = re.compile(r"^\s*(\d{1,5})\s*(m|min|minutes?|h|hours?|d|days?|wd|working days?|mo|months?)\s*$", re.I)
_CANON = {
    "min": "m",
    "minute": "m",
    "minutes": "m",
    "hour": "h",
    "hours": "h",
    "day": "d",
    "days": "d",
    "working day": "wd",
    "working days": "wd",
    "month": "mo",
    "months": "mo",
}
_WORDS = {
    "m": ("分钟", "minutes"),
    "h": ("小时", "hours"),
    "d": ("日", "calendar days"),
    "wd": ("个工作日", "working days"),
    "mo": ("个月", "months"),
}


@dataclass(frozen=True)
class Period:
    amount: int
    unit: Unit

    @classmethod
    def parse(cls, text: str | int) -> Period:
        match = _PATTERN.match(str(text))
        if not match:
            raise InvalidInput(f"invalid period {text!r}: use a number and a unit, e.g. 30m, 2h, 10d, 15wd, 6mo")
        unit = match.group(2).lower()
        return cls(int(match.group(1)), _CANON.get(unit, unit))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def words(self) -> tuple[str, str]:
        zh, en = _WORDS[self.unit]
        return f"{self.amount} {zh}", f"{self.amount} {en.removesuffix('s') if self.amount == 1 else en}"


@dataclass(frozen=True)
class Due:
    at: dt.datetime  # UTC, timezone-aware
    rule: str  # the arithmetic in words, zh / en


def by_end_of(day: dt.date, *, tz: str, label: str) -> Due:
    """Due by the end of a day someone set (an action item's date), local time."""
    local = pendulum.datetime(day.year, day.month, day.day, 23, 59, 59, tz=tz)
    return Due(
        local.in_timezone("UTC"),
        f"{label}：须于 {day.isoformat()} 24 时前完成 / due by the end of {day.isoformat()} ({tz})",
    )


def due_after(
    start: dt.datetime,
    period: Period,
    *,
    tz: str,
    calendar: WorkCalendar,
    event: str = "",
    pauses: list[tuple[dt.datetime, dt.datetime]] = (),
) -> Due:
    """When `period` counted from `start` runs out.

    `pauses` (testing, appraisal...) do not count: minute, hour and calendar-day
    periods move by each paused span; working-day periods skip the days paused."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    local = pendulum.instance(start).in_timezone(tz)
    zh_amount, en_amount = period.words()
    start_text = local.format("YYYY-MM-DD HH:mm")
    suffix_zh, suffix_en = "", ""
    paused = sum((end - begin for begin, end in pauses), dt.timedelta())
    if paused < dt.timedelta(0) or any(end < begin for begin, end in pauses):
        raise InvalidInput("a pause must end after it starts")
    if period.unit in ("m", "h"):
        delta = {"m": dt.timedelta(minutes=period.amount), "h": dt.timedelta(hours=period.amount)}
        due_local = local + delta[period.unit] + paused
    else:
        day = local.date()
        paused_days = {
            begin.astimezone(local.tzinfo).date() + dt.timedelta(days=i)
            for begin, end in pauses
            for i in range((end.astimezone(local.tzinfo).date() - begin.astimezone(local.tzinfo).date()).days + 1)
        }
        if period.unit in ("d", "mo"):
            last = day + dt.timedelta(days=period.amount if period.unit == "d" else 0) + dt.timedelta(days=paused.days)
            if period.unit == "mo":  # the same day of the month N months on (or that month's last day)
                last = pendulum.date(last.year, last.month, last.day).add(months=period.amount)
                last = dt.date(last.year, last.month, last.day)
            moved = calendar.next_workday_on_or_after(last)
            if moved != last:
                suffix_zh = f"，期满日 {last} 非工作日，顺延至 {moved}"
                suffix_en = f"; {last} is not a working day, moved to {moved}"
            last = moved
        else:
            last, counted = day, 0
            while counted < period.amount:
                last += dt.timedelta(days=1)
                if last not in paused_days and calendar.is_workday(last):
                    counted += 1
        due_local = pendulum.datetime(last.year, last.month, last.day, 23, 59, 59, tz=tz)
        suffix_zh = "，起算日不计入，截至当日 24 时" + suffix_zh
        suffix_en = ", start day not counted, until end of day" + suffix_en
    if pauses:
        suffix_zh += f"，暂停 {len(pauses)} 次不计入"
        suffix_en += f", {len(pauses)} pause(s) not counted"
    label_zh = f"{event}：" if event else ""
    rule = f"{label_zh}自 {start_text} 起 {zh_amount}{suffix_zh} / {en_amount} from {start_text} ({tz}){suffix_en}"
    return Due(at=due_local.in_timezone("UTC"), rule=rule)


def compressed(due: Due, start: dt.datetime, speed: int) -> Due:
    """A drill's due time: the statutory period, run `speed` times faster. The rule
    keeps the real arithmetic and says what the drill made of it."""
    if speed == 1:
        return due
    span = (due.at - start) / speed
    seconds = int(span.total_seconds())
    return Due(
        at=start + span,
        rule=f"{due.rule}; 演练 ×{speed} 压缩为 {seconds // 60}分{seconds % 60}秒 / "
        f"drill at ×{speed}: {seconds // 60}m {seconds % 60}s",
    )
