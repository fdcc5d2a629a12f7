"""Benchmark: a year of a province's supervisors' figures (`regflow stats --by month`)
over 50,000 cases and 2,000 incidents with their deadlines and escalations, against a
baseline in the same process: the same rows only fetched, no figure made of them.

    .venv/bin/python -m benchmarks.stats                     # SQLite, 50,000 cases, 2,000 incidents
    .venv/bin/python -m benchmarks.stats --postgres          # the same on a scratch PostgreSQL database

The history is inserted in bulk (what matters here is reading it): cases and complaints
spread over twelve months and the province's five authorities, each with its filing
deadline (met on time, late or still open) and for filed cases the decision deadline;
incidents with their dispatch, arrival, initial-report and upward-report deadlines;
one escalation in ten missed deadlines, most acknowledged.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks import stop_cleanly_on_signals, use_sqlite_home

START = dt.datetime(2025, 12, 1, tzinfo=dt.timezone.utc)
PROVINCE = "330000"


def seed(cases: int, incidents: int) -> None:
    import sqlalchemy as sa

    from rules.incidents import validate_trigger
    from storage.cases import Case
    from storage.db import get_engine, session_scope
    from storage.deadlines import Deadline
    from storage.escalations import Escalation
    from storage.incidents import Incident
    from tasks.board import under
    from tasks.incidents import trigger

    rng = random.Random(7)
    first = trigger(validate_trigger(dict(plan="product-quality", level="IV", title="t", location="l",
                                          authority="330106"), now=START), now=START)  # fmt: skip
    with session_scope() as session:
        codes = [c for c in under(session, PROVINCE) if c != PROVINCE]
        plan_version = session.get(Incident, first.id).plan_version_id
    deadlines, escalations = [], []

    def deadline(subject, name, authority, created, period_h, outcome):
        due = created + dt.timedelta(hours=period_h)
        closed = {"on_time": due - dt.timedelta(hours=period_h * rng.random()), "late": due + dt.timedelta(hours=5),
                  "open": None}[outcome]  # fmt: skip
        deadlines.append(dict(subject=subject, name=name, authority=authority, due_at=due, rule="bench",
                              status="open" if closed is None else "met", created_at=created, closed_at=closed,
                              reminders_sent=rng.randint(0, 2), policy={}, extensions=[]))  # fmt: skip

    case_rows = []
    for i in range(cases):
        kind = "complaint" if i % 5 == 0 else "case"
        authority = codes[i % len(codes)]
        received = START + dt.timedelta(minutes=rng.randrange(365 * 24 * 60))
        filed = received + dt.timedelta(days=rng.randint(1, 20)) if kind == "case" and rng.random() < 0.8 else None
        closed = filed + dt.timedelta(days=rng.randint(10, 120)) if filed and rng.random() < 0.7 else None
        number = f"{'CMP' if kind == 'complaint' else 'CASE'}-B-{i:06d}"
        case_rows.append(dict(number=number, kind=kind, title="t", party="p", source="report", detail="",
                              authority_code=authority, stage="closed" if closed else "investigation",
                              status="closed" if closed else "open", outcome="penalised" if closed else None,
                              received_at=received, filed_at=filed, closed_at=closed, rules_hash="bench",
                              facts={"decided": "penalty"} if closed else {}, real_name=False, rectification=False,
                              supervision_reports=0))  # fmt: skip
        outcome = rng.choices(["on_time", "late", "open"], [85, 10, 5])[0]
        deadline(number, "acceptance" if kind == "complaint" else "filing", authority, received, 15 * 24, outcome)
        if filed:
            deadline(number, "decision", authority, filed, 90 * 24, "on_time" if closed else "open")
    incident_rows = []
    for i in range(incidents):
        authority = codes[i % len(codes)]
        at = START + dt.timedelta(minutes=rng.randrange(365 * 24 * 60))
        number = f"INC-B-{i:06d}"
        incident_rows.append(dict(number=number, plan_key="product-quality", level=rng.choice(["II", "III", "IV"]),
                                  title="t", location="l", authority_code=authority, plan_version_id=plan_version,
                                  status="closed", stage="closed", triggered_at=at))  # fmt: skip
        for name, hours in (("dispatch", 1), ("arrival", 4), ("initial_report", 1), ("upward_report", 2)):
            deadline(number, name, authority, at, hours, rng.choices(["on_time", "late"], [90, 10])[0])
    with session_scope() as session:
        session.execute(sa.insert(Case), case_rows)
        session.execute(sa.insert(Incident), incident_rows)
        for start in range(0, len(deadlines), 5000):
            session.execute(sa.insert(Deadline), deadlines[start : start + 5000])
    with get_engine().connect() as conn:
        late = conn.execute(
            sa.select(Deadline.id, Deadline.due_at).where(
                Deadline.closed_at > Deadline.due_at, Deadline.rule == "bench"
            )
        ).all()
    for deadline_id, due in late[::10]:
        acked = rng.random() < 0.8
        escalations.append(dict(deadline_id=deadline_id, subject="x", status="acknowledged" if acked else "open",
                                step=0, policy={}, raised_at=due, acked_by="值班员" if acked else None,
                                acked_at=due + dt.timedelta(minutes=rng.randint(1, 90)) if acked else None,
                                ))  # fmt: skip
    with session_scope() as session:
        session.execute(sa.insert(Escalation), escalations)
    print(f"seeded {cases:,} cases and complaints, {incidents:,} incidents, {len(deadlines):,} deadlines, "
          f"{len(escalations):,} escalations", flush=True)  # fmt: skip


def measure() -> tuple[float, float, dict]:
    from rules.stats import windows
    from storage.db import session_scope, utcnow
    from tasks.board import under
    from tasks.stats import Records, figures

    now = utcnow()
    with session_scope() as session:
        scope = under(session, PROVINCE)
        t0 = time.perf_counter()
        data, _ = figures(session, PROVINCE, dt.date(2025, 12, 1), dt.date(2026, 11, 30), by="month", now=now)
        ours = time.perf_counter() - t0
        months = windows(dt.date(2024, 12, 1), dt.date(2026, 11, 30), "month", "Asia/Shanghai")
        t0 = time.perf_counter()
        Records.read(session, scope, months[0].start, months[-1].end, now=now)  # the same two years of rows
        bare = time.perf_counter() - t0
    return ours, bare, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--incidents", type=int, default=2_000)
    parser.add_argument("--postgres", action="store_true", help="a scratch PostgreSQL database on 127.0.0.1:5432")
    args = parser.parse_args()
    stop_cleanly_on_signals()
    with tempfile.TemporaryDirectory(prefix="regflow-bench-stats-") as tmp:
        name = None
        if args.postgres:
            import os

            import psycopg

            name = f"regflow_bench_stats_{uuid.uuid4().hex[:8]}"
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            os.environ["REGFLOW_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        try:
            use_sqlite_home(Path(tmp)) if not args.postgres else _migrate(Path(tmp))
            t0 = time.perf_counter()
            seed(args.cases, args.incidents)
            print(f"seeding took {time.perf_counter() - t0:.1f} s", flush=True)
            ours, bare, data = measure()
        finally:
            if name:
                from storage.db import get_engine

                get_engine().dispose()
                with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    total = data["total"]
    print(f"\n{'PostgreSQL' if args.postgres else 'SQLite'}: {PROVINCE} and {len(data['scope']) - 1} authorities below,"
          f" 12 months by month, each against the month before, plus the year against the year before")  # fmt: skip
    print(
        f"  figures made:        {ours:.2f} s   ({total['cases']['received']:,} cases received, "
        f"{total['deadlines']['due']:,} deadlines due, {total['escalations']['raised']:,} escalations in the year)"
    )
    print(f"  baseline, rows only: {bare:.2f} s   (the same two years of rows fetched, no figure made)")
    print(f"  ratio:               {ours / bare:.1f}x")


def _migrate(home: Path) -> None:
    import os

    os.environ["REGFLOW_HOME"] = str(home)
    from kernel.settings import get_settings

    get_settings.cache_clear()
    from regflow.devstack import prepare_database

    prepare_database()


if __name__ == "__main__":
    main()
