"""Duty rosters (值班表) as data: who is on duty when, per authority — the duty
officer (值班员) and the leader on duty (带班领导) of each shift — read from the CSV a
duty office keeps, and the gaps a roster leaves.

CSV columns (a header row first)::

    authority,start,end,officer,leader
    330106,2026-02-16T08:30,2026-02-17T08:30,李四,赵六

Times are ISO 8601; without an offset they are local time. Pure: no database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from kernel.errors import InvalidInput
from rules.files import csv_rows
from rules.incidents import clean_line, parse_when
from rules.people import Directory

COLUMNS = ("authority", "start", "end", "officer", "leader")
# A shift longer than this is a typo (a wrong month), not a shift.
LONGEST_SHIFT = dt.timedelta(hours=48)


@dataclass(frozen=True)
class Shift:
    authority: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    officer: str
    leader: str
    line: int = 0  # where it was read, for errors

    def overlaps(self, start: dt.datetime, end: dt.datetime) -> bool:
        return self.starts_at < end and start < self.ends_at


def parse_roster(text: str, *, tz: str, source: str, people: Directory, authorities: set[str]) -> list[Shift]:
    """Every shift of a roster file, or InvalidInput naming the first bad line: a
    missing column, a malformed time, an end not after the start, an unknown authority,
    an officer or leader who is not one of its people, two shifts at once."""
    shifts: list[Shift] = []
    for line, values in csv_rows(text, source=source, columns=COLUMNS, what="shifts"):
        try:
            shift = check_shift(values, tz=tz, people=people, authorities=authorities, line=line)
        except (InvalidInput, ValueError) as exc:
            raise InvalidInput(f"{source}:{line}: {str(exc).splitlines()[0]}") from None
        clash = next(
            (s for s in shifts if s.authority == shift.authority and s.overlaps(shift.starts_at, shift.ends_at)), None
        )
        if clash is not None:
            raise InvalidInput(f"{source}:{line}: overlaps the shift on line {clash.line}")
        shifts.append(shift)
    return shifts


def check_shift(values: dict[str, str], *, tz: str, people: Directory, authorities: set[str], line: int = 0) -> Shift:
    """One shift from its columns' text, or InvalidInput / ValueError saying what is wrong."""
    for column in COLUMNS:
        if not values.get(column):
            raise InvalidInput(f"{column} is empty")
    authority = values["authority"]
    if authority not in authorities:
        raise InvalidInput(f"unknown authority {authority!r}")
    start, end = parse_when(values["start"], tz=tz), parse_when(values["end"], tz=tz)
    if end <= start:
        raise InvalidInput(f"end {values['end']} is not after start {values['start']}")
    if end - start > LONGEST_SHIFT:
        raise InvalidInput(f"a shift of {end - start} is longer than {LONGEST_SHIFT}")
    names = {}
    for column in ("officer", "leader"):
        name = clean_line(values[column])
        if not any(p.authority == authority for p in people.named(name)):
            raise InvalidInput(f"{column} {name!r} is not one of {authority}'s people (data/people.yaml)")
        names[column] = name
    return Shift(authority, start, end, names["officer"], names["leader"], line)


def gaps(
    shifts: list[tuple[dt.datetime, dt.datetime]], start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The stretches of [start, end) no shift covers."""
    found, cursor = [], start
    for s, e in sorted(shifts):
        if e <= cursor:
            continue
        if s > cursor:
            found.append((cursor, min(s, end)))
        cursor = max(cursor, e)
        if cursor >= end:
            break
    if cursor < end:
        found.append((cursor, end))
    return [(s, e) for s, e in found if s < e]
