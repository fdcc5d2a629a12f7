"""Duty rosters: importing a duty office's roster, who is on duty, swaps and
overrides (each on the audit log), the gaps of the week ahead, and the person on duty
as a recipient: a message for an authority's duty desk also goes to the officer on
duty by their own channel (apprise tag `person.<login>`)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import pendulum
from sqlmodel import Session

from kernel.errors import InvalidInput, NotFound
from kernel.settings import get_settings
from rules.calendar import load_calendar
from rules.files import read_text
from rules.people import load_people
from rules.rosters import Shift, check_shift, gaps, parse_roster
from storage import audit
from storage.authorities import load_tree
from storage.db import session_scope
from storage.rosters import DutyShift, on_duty, rostered_authorities, shifts_between
from tasks.access import require_head
from tasks.notify import queue
from tasks.render import local_time

AHEAD = dt.timedelta(days=7)  # how far `regflow doctor` looks for gaps
WARN_BEFORE = dt.timedelta(days=1)  # when the authority's head is told of one


def subject_of(code: str) -> str:
    """What a roster's audit rows and messages are filed under."""
    return f"DUTY-{code}"


def import_roster(path: Path, *, by: str, now: dt.datetime, system: bool = False) -> dict[str, int]:
    """Load a roster file: every row valid and none clashing with the roster already
    kept, or nothing is imported (one line naming the first bad row). A row already on
    the roster as it stands is left as it is, so importing a file again changes nothing.
    The head of each authority in it (or of one above) imports it; `system`: the
    platform loading data/rosters at start-up."""
    settings = get_settings()
    text = read_text(path)
    with session_scope() as session:
        tree = load_tree(session)
        people = load_people(settings.people_file)
        shifts = parse_roster(text, tz=settings.timezone, source=str(path), people=people,
                              authorities={a.code for a in tree.authorities})  # fmt: skip
        codes = sorted({s.authority for s in shifts})
        for code in [] if system else codes:
            require_head(
                session, by, tree, code, subject=subject_of(code), action=f"import the duty roster of {code}", now=now
            )
        added = unchanged = 0
        for shift in shifts:
            kept = [r for r in shifts_between(session, authority=shift.authority, start=shift.starts_at,
                                              end=shift.ends_at) if r.source == "roster"]  # fmt: skip
            if any(_same(r, shift) for r in kept):
                unchanged += 1
                continue
            if kept:
                r = kept[0]
                raise InvalidInput(f"{path}:{shift.line}: overlaps shift {r.id} already on the roster "
                                   f"({r.officer}, {local_time(r.starts_at)} – {local_time(r.ends_at)})")  # fmt: skip
            session.add(DutyShift(authority_code=shift.authority, starts_at=shift.starts_at, ends_at=shift.ends_at,
                                  officer=shift.officer, leader=shift.leader, note=f"roster {path.name}",
                                  created_at=now, created_by=by))  # fmt: skip
            added += 1
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
        for code in codes:
            mine = [s for s in shifts if s.authority == code]
            audit.record(session, at=now, actor=by, action="duty.imported", subject=subject_of(code), file=path.name,
                         sha256=digest, shifts=len(mine), first=mine[0].starts_at.isoformat(),
                         last=mine[-1].ends_at.isoformat())  # fmt: skip
        return {"added": added, "unchanged": unchanged}


def load_rosters(directory: Path, *, now: dt.datetime) -> dict[str, int]:
    """Every roster file (*.csv) of a directory, as the platform starts."""
    totals = {"added": 0, "unchanged": 0}
    for path in sorted(directory.glob("*.csv")) if directory.is_dir() else []:
        for key, count in import_roster(path, by="regflow", now=now, system=True).items():
            totals[key] += count
    return totals


def _same(row: DutyShift, shift: Shift) -> bool:
    return (row.starts_at, row.ends_at, row.officer, row.leader) == (
        shift.starts_at, shift.ends_at, shift.officer, shift.leader)  # fmt: skip


def who(code: str, at: dt.datetime) -> dict[str, Any] | None:
    with session_scope() as session:
        load_tree(session).get(code)
        shift = on_duty(session, authority=code, at=at)
        return _plain(shift) if shift is not None else None


def shifts(code: str, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    with session_scope() as session:
        load_tree(session).get(code)
        return [_plain(s) for s in shifts_between(session, authority=code, start=start, end=end)]


def _plain(shift: DutyShift) -> dict[str, Any]:
    return {"id": shift.id, "authority": shift.authority_code, "starts_at": shift.starts_at,
            "ends_at": shift.ends_at, "officer": shift.officer, "leader": shift.leader, "source": shift.source,
            "note": shift.note}  # fmt: skip


def swap(first: int, second: int, *, by: str, reason: str, now: dt.datetime) -> tuple[DutyShift, DutyShift]:
    """Two officers exchange their shifts (换班), at one authority; its head approves."""
    with session_scope() as session:
        a, b = session.get(DutyShift, first), session.get(DutyShift, second)
        for shift_id, row in ((first, a), (second, b)):
            if row is None:
                raise NotFound(f"no shift {shift_id} (list them with `regflow duty list`)")
        if a.authority_code != b.authority_code or a.id == b.id:
            raise InvalidInput("a swap exchanges two different shifts of one authority")
        tree = load_tree(session)
        require_head(
            session,
            by,
            tree,
            a.authority_code,
            subject=subject_of(a.authority_code),
            action="swap duty shifts",
            now=now,
        )
        a.officer, b.officer = b.officer, a.officer
        for row in (a, b):
            row.note = f"swapped by {by}: {reason}"[:500]
        session.add_all([a, b])
        audit.record(session, at=now, actor=by, action="duty.swapped", subject=subject_of(a.authority_code),
                     shifts=[a.id, b.id], officers=[a.officer, b.officer], reason=reason)  # fmt: skip
        session.flush()
        session.expunge_all()
        return a, b


def override(code: str, start: dt.datetime, end: dt.datetime, *, officer: str, leader: str | None, by: str,
             reason: str, now: dt.datetime) -> DutyShift:  # fmt: skip
    """Someone else on duty for a stretch (illness, an emergency): outranks the roster
    there; its head (or one above) decides. The leader stays the roster's unless named."""
    settings = get_settings()
    with session_scope() as session:
        tree = load_tree(session)
        tree.get(code)
        current = on_duty(session, authority=code, at=start)
        leader = leader or (current.leader if current is not None else "")
        if not leader:
            raise InvalidInput("--leader: nobody is on the roster then to take the leader on duty from; name one")
        values = dict(authority=code, start=start.isoformat(), end=end.isoformat(), officer=officer, leader=leader)
        try:  # the checks of a roster row, said of the options
            shift = check_shift(values, tz=settings.timezone, people=load_people(settings.people_file),
                                authorities={code})  # fmt: skip
        except (InvalidInput, ValueError) as exc:
            raise InvalidInput(str(exc).splitlines()[0]) from None
        require_head(
            session, by, tree, code, subject=subject_of(code), action=f"override the duty roster of {code}", now=now
        )
        row = DutyShift(authority_code=code, starts_at=shift.starts_at, ends_at=shift.ends_at, officer=shift.officer,
                        leader=shift.leader, source="override", note=f"{by}: {reason}"[:500], created_at=now,
                        created_by=by)  # fmt: skip
        session.add(row)
        session.flush()
        audit.record(session, at=now, actor=by, action="duty.overridden", subject=subject_of(code), shift=row.id,
                     officer=row.officer, leader=row.leader, start=row.starts_at.isoformat(),
                     end=row.ends_at.isoformat(), reason=reason)  # fmt: skip
        session.expunge(row)
        return row


def gaps_ahead(session: Session, *, now: dt.datetime, ahead: dt.timedelta = AHEAD) -> list[dict[str, Any]]:
    """Every stretch of the coming days with no one on duty, at each authority that keeps
    a roster, with the holiday it falls in (holidays need rosters of their own)."""
    settings = get_settings()
    calendar = load_calendar(settings.calendar_override)
    found = []
    for code in sorted(rostered_authorities(session, since=now - dt.timedelta(days=30))):
        kept = shifts_between(session, authority=code, start=now, end=now + ahead)
        for start, end in gaps([(s.starts_at, s.ends_at) for s in kept], now, now + ahead):
            first = pendulum.instance(start).in_timezone(settings.timezone).date()
            last = pendulum.instance(end).in_timezone(settings.timezone).date()
            days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
            holiday = next((name for d in days if (name := calendar.holiday(d))), None)
            found.append({"authority": code, "start": start, "end": end, "holiday": holiday})
    return found


def warn_of_gaps(now: dt.datetime) -> int:
    """Tell each authority's head, a day ahead, of a gap in its roster (once per gap)."""
    told = 0
    with session_scope() as session:
        tree = load_tree(session)
        for gap in gaps_ahead(session, now=now, ahead=WARN_BEFORE):
            code = gap["authority"]
            authority = next(a for a in tree.authorities if a.code == code)
            queue(session, number=subject_of(code), key=f"roster-gap:{gap['start'].isoformat()}",
                  tags=[f"{code}.head", f"{code}.duty"], template="roster_gap", now=now, subject=None,
                  authority=authority, gap=gap)  # fmt: skip
            told += 1
    return told
