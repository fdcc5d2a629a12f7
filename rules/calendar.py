"""Chinese working days: the `chinese_calendar` library plus an operator override file.

A day with no data (a year the library does not cover and the override does not
declare) raises CalendarUnavailable: never silently treat a holiday as a workday.

Override file (YAML)::

    years: [2027]              # years the file fully covers (weekends + lists below)
    holidays: [2027-01-01]     # statutory holidays (days off)
    workdays: [2027-02-07]     # make-up workdays (调休) falling on weekends
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field, replace
from pathlib import Path

import chinese_calendar
import yaml

from kernel.errors import CalendarUnavailable, InvalidPlan

HOLIDAY_NAMES = {"New Year's Day": "元旦", "Spring Festival": "春节", "Tomb-sweeping Day": "清明节",
                 "Labour Day": "劳动节", "Dragon Boat Festival": "端午节", "National Day": "国庆节",
                 "Mid-autumn Festival": "中秋节"}  # fmt: skip


@dataclass(frozen=True)
class WorkCalendar:
    holidays: frozenset[dt.date] = field(default_factory=frozenset)
    workdays: frozenset[dt.date] = field(default_factory=frozenset)
    years: frozenset[int] = field(default_factory=frozenset)

    def is_workday(self, day: dt.date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        if day.year in self.years:
            return day.weekday() < 5
        try:
            return chinese_calendar.is_workday(day)
        except NotImplementedError as exc:
            raise CalendarUnavailable(
                f"no holiday calendar for {day.year}: add the year to the calendar override file "
                "(REGFLOW_CALENDAR_OVERRIDE) once the State Council publishes it"
            ) from exc

    def holiday(self, day: dt.date) -> str | None:
        """The statutory holiday a day falls in (a duty roster needs one of its own), if any."""
        if day in self.holidays:
            return "法定节假日 public holiday"
        if day.year in self.years or day in self.workdays:
            return None
        try:
            off, name = chinese_calendar.get_holiday_detail(day)
        except NotImplementedError:
            return None
        return f"{HOLIDAY_NAMES.get(name, name)} {name}" if off and name else None

    def weekends_where_unknown(self, around: int) -> tuple["WorkCalendar", list[int]]:
        """This calendar with the years near `around` that nothing covers counted as
        weekends only, and those years: for a drill, whose compressed days are an
        exercise, never for a real deadline."""
        missing = []
        for year in range(around - 1, around + 3):
            try:
                self.is_workday(dt.date(year, 1, 1))
            except CalendarUnavailable:
                missing.append(year)
        return replace(self, years=self.years | frozenset(missing)), missing

    def next_workday_on_or_after(self, day: dt.date) -> dt.date:
        while not self.is_workday(day):
            day += dt.timedelta(days=1)
        return day


def load_calendar(path: Path | None) -> WorkCalendar:
    """The working-day calendar with the override file's years; parsed once per
    version of the file (every deadline asks for it)."""
    if path is None or not path.exists():
        return WorkCalendar()
    return _load_override(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load_override(path: Path, mtime_ns: int) -> WorkCalendar:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return WorkCalendar(
            holidays=frozenset(_dates(raw.get("holidays", []))),
            workdays=frozenset(_dates(raw.get("workdays", []))),
            years=frozenset(int(y) for y in raw.get("years", [])),
        )
    except (yaml.YAMLError, TypeError, ValueError) as exc:
        raise InvalidPlan(f"{path}: not a valid calendar override: {exc}") from exc


def _dates(values: list) -> list[dt.date]:
    return [v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)) for v in values]
