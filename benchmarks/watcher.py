"""Benchmark: how late reminders are delivered with many deadlines pending, and what
the watcher costs when nothing is due. Compares the watcher (indexed watermark) with
a naive baseline (a full scan of open deadlines every tick), in the same process.

    make bench-watcher    # or: .venv/bin/python -m benchmarks.watcher --sizes 10000,100000
    .venv/bin/python -m benchmarks.watcher --postgres --sizes 1000000 --watchers 2

Per size: seed N deadlines due over the next hours (none fall due during the run),
plus a stream of S deadlines falling due over W seconds; run watcher cycles once a
second; the loopback HTTP receiver stamps each reminder's arrival. Lateness = arrival
minus due time. Idle CPU = process CPU time / wall time while nothing is due.

`--postgres --watchers N`: the deadlines in a scratch PostgreSQL database (dropped
after), worked by N `regflow watch` processes at once, as production runs them
(each row claimed by a conditional update, so none is sent twice); their idle CPU is
read from /proc. The baseline there is one tick of the naive scan over the same rows,
timed in this process.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import stop_cleanly_on_signals, use_sqlite_home

if TYPE_CHECKING:
    from regflow.watcher import Turn

ROOT = Path(__file__).resolve().parents[1]


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def setup(workdir: Path, http_port: int, smtp_port: int, database: str | None = None) -> None:
    """A fresh home; SQLite in it, or the PostgreSQL database `database` if given."""
    if database:
        os.environ.update(REGFLOW_HOME=str(workdir), REGFLOW_DATABASE_URL=database,
                          REGFLOW_APPRISE_CONFIG=str(workdir / "apprise.yml"))  # fmt: skip
        from kernel.settings import get_settings
        from regflow.devstack import prepare_database

        get_settings.cache_clear()
        prepare_database()
    else:
        use_sqlite_home(workdir)
    # Every role `make run` routes: a tag without a channel would fail and retry with
    # backoff in every cycle measured (the on-site team's dispatch orders did).
    from regflow.devstack import write_demo_channels

    write_demo_channels(workdir / "apprise.yml", http_port=http_port, smtp_port=smtp_port)


POLICY_LATER = {
    "reminders": {"fractions": [0.5, 0.8], "overdue_every_s": 1800},
    "escalation": {"ack_timeout_s": 1800, "repeat": 1, "ladder": ["330100", "330000", "100000"]},
}
POLICY_AT_DUE = {
    "reminders": {"fractions": [], "overdue_every_s": 3600},
    "escalation": {"ack_timeout_s": 3600, "repeat": 0, "ladder": ["330100"]},
}


def seed(pending: int, incidents: int = 100) -> list[int]:
    """`incidents` incidents and `pending` deadlines spread over the next 1-6 hours."""
    import sqlalchemy as sa

    from regflow.cli.output import progress
    from rules.incidents import validate_trigger
    from storage.db import session_scope, utcnow
    from storage.deadlines import Deadline
    from tasks.incidents import trigger

    now = utcnow()
    with progress("triggering incidents", incidents) as advance:
        ids = []
        for i in range(incidents):
            ids.append(
                trigger(
                    validate_trigger(
                        dict(plan="product-quality", level="IV", title=f"bench {i}", location="x", authority="330106"),
                        now=now,
                    ),
                    now=now,
                ).number
            )
            advance(1)
    rows = []
    for k in range(pending):
        due = now + dt.timedelta(seconds=3600 + (k * 5 * 3600) // max(pending, 1))
        rows.append(
            dict(
                subject=ids[k % incidents],
                authority="330106",
                name=f"p{k}",
                due_at=due,
                rule="bench",
                status="open",
                created_at=now,
                starts_at=now,
                next_at=now + (due - now) / 2,
                reminders_sent=0,
                policy=POLICY_LATER,
                paused_seconds=0,
                extensions=[],
            )
        )
    with session_scope() as session, progress("seeding deadlines", len(rows)) as advance:
        for start in range(0, len(rows), 5000):
            session.execute(sa.insert(Deadline), rows[start : start + 5000])
            advance(len(rows[start : start + 5000]))
    return ids


def stream(incident_ids: list[str], count: int, window: float, lead: float = 3.0) -> dict[str, dt.datetime]:
    """`count` deadlines falling due evenly over `window` seconds from `lead` seconds on."""
    from storage.db import session_scope, utcnow
    from storage.deadlines import add_deadline

    now, tag = utcnow(), uuid.uuid4().hex[:4]
    due = {}
    with session_scope() as session:
        for i in range(count):
            name = f"s{tag}{i}"
            at = now + dt.timedelta(seconds=lead + window * i / count)
            add_deadline(
                session,
                subject=incident_ids[i % len(incident_ids)],
                name=name,
                due_at=at,
                rule="bench",
                now=now,
                policy=POLICY_AT_DUE,
                authority="330106",
            )
            due[name] = at
    return due


def naive_reminders(turn: Turn) -> int:
    """The baseline: read every open deadline each tick and pick the due ones in Python."""
    from sqlmodel import select

    from storage.db import session_scope
    from storage.deadlines import Deadline
    from tasks.deadlines import Cycle, _remind

    cycle = Cycle()
    with session_scope() as session:
        rows = session.exec(select(Deadline).where(Deadline.status == "open")).all()
        for deadline in [d for d in rows if d.next_at is not None and d.next_at <= turn.now]:
            with session.begin_nested():
                _remind(session, deadline, turn.now, cycle)
    return cycle.done


def run(managers, seconds: float, interval: float = 1.0) -> list[float]:
    """Watcher cycles for `seconds`; returns each cycle's duration."""
    from regflow.watcher import Watcher

    watcher, durations = Watcher(managers), []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        watcher.cycle()
        durations.append(time.monotonic() - started)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    return durations


def lateness(inbox, due: dict[str, dt.datetime]) -> list[float]:
    late = []
    for message in inbox.messages:
        if "/duty" not in message.to or "时限已到" not in message.title:
            continue
        name = message.title.rsplit(" ", 1)[-1]
        if name in due:
            late.append((dt.datetime.fromisoformat(message.at) - due[name]).total_seconds())
    return late


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def measure(label: str, managers, incident_ids, inbox, *, count: int, window: float, idle: float) -> dict:
    due = stream(incident_ids, count, window)
    before = len(inbox.messages)
    run(managers, window + 8)
    late = lateness(inbox, due)
    cpu0, wall0 = time.process_time(), time.monotonic()
    cycles = run(managers, idle)
    cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0) * 100
    return {
        "label": label,
        "delivered": len(late),
        "expected": count,
        "p50": pct(late, 50),
        "p99": pct(late, 99),
        "max": max(late) if late else float("nan"),
        "idle_cpu_pct": cpu,
        "idle_cycle_ms": statistics.median(cycles) * 1000,
        "rss_mb": rss_mb(),
        "messages": len(inbox.messages) - before,
    }


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_processes(count_watchers: int, incident_ids, inbox, *, count: int, window: float, idle: float) -> dict:
    """N real `regflow watch` processes over the same database: lateness of a stream,
    then each one's CPU while nothing is due."""
    import subprocess
    import sys

    # The deadlines only: no Prefect, whose managers are then idle ("" keeps `regflow`
    # from defaulting to a local server's address).
    env = dict(os.environ, REGFLOW_OUTBOX_POLL_SECONDS="1", PREFECT_API_URL="")
    logs = Path(os.environ["REGFLOW_HOME"])
    procs = [
        subprocess.Popen([str(Path(sys.executable).parent / "regflow"), "watch"], env=env, cwd=ROOT,
                         stdout=(logs / f"watcher-{i}.log").open("w"), stderr=subprocess.STDOUT)
        for i in range(count_watchers)
    ]  # fmt: skip
    try:
        time.sleep(15)  # started, imported, a few cycles over the pending rows
        due = stream(incident_ids, count, window)
        before = len(inbox.messages)
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        time.sleep(window + 8)
        busy = [cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True)]
        late = lateness(inbox, due)
        cpu0, wall0 = [cpu_seconds(p.pid) for p in procs], time.monotonic()
        time.sleep(idle)
        wall = time.monotonic() - wall0
        idle_cpu = [(cpu_seconds(p.pid) - c) / wall * 100 for p, c in zip(procs, cpu0, strict=True)]
        rss = [rss_mb(p.pid) for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    for i in range(count_watchers):  # what a watcher had to say: over budget, failures
        said = [
            ln for ln in (logs / f"watcher-{i}.log").read_text().splitlines() if " WARNING " in ln or " ERROR " in ln
        ]
        for line in said[:5]:
            print(f"  watcher {i}: {line}")
    return {
        "label": f"{count_watchers} watchers",
        "delivered": len(late),
        "expected": count,
        "twice": duplicates(inbox, due),
        "p50": pct(late, 50),
        "p99": pct(late, 99),
        "max": max(late) if late else float("nan"),
        "idle_cpu_pct": idle_cpu,
        "busy_cpu_s": busy,
        "rss_mb": rss,
        "messages": len(inbox.messages) - before,
    }


def duplicates(inbox, due: dict[str, dt.datetime]) -> int:
    """Deadlines of the stream whose due-time reminder arrived more than once."""
    seen: dict[str, int] = {}
    for message in inbox.messages:
        if "/duty" in message.to and "时限已到" in message.title:
            name = message.title.rsplit(" ", 1)[-1]
            if name in due:
                seen[name] = seen.get(name, 0) + 1
    return sum(1 for c in seen.values() if c > 1)


def naive_tick() -> float:
    """Seconds one tick of the naive scan takes over every open row (nothing due)."""
    from regflow.watcher import State, Turn
    from storage.db import utcnow

    started = time.monotonic()
    naive_reminders(Turn(now=utcnow(), budget=3600, state=State(name="naive")))
    return time.monotonic() - started


def main_postgres(args, inbox, receiver, mail) -> None:
    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    print(
        f"machine: {os.cpu_count()} cores; PostgreSQL; {args.watchers} `regflow watch` processes; stream of "
        f"{args.stream} deadlines due over {args.window:.0f}s; idle measured over {args.idle:.0f}s; cycle every 1 s"
    )
    for size in [int(s) for s in args.sizes.split(",")]:
        name = f"regflow_benchwatch_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            with tempfile.TemporaryDirectory() as tmp:
                setup(
                    Path(tmp), receiver.port, mail.port, database=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                )
                t = time.monotonic()
                ids = seed(size)
                print(f"\nseeded {size} pending deadlines in {time.monotonic() - t:.1f}s")
                r = measure_processes(args.watchers, ids, inbox, count=args.stream, window=args.window, idle=args.idle)
                tick = naive_tick()
            head = f"{'pending':>8} {'delivered':>9} {'twice':>5} {'p50 s':>7} {'p99 s':>7} {'max s':>7}"
            print(f"{head}  idle CPU % per watcher  RSS MB")
            print(
                f"{size:>8} {r['delivered']:>5}/{r['expected']:<3} {r['twice']:>5} {r['p50']:>7.2f} {r['p99']:>7.2f}"
                f" {r['max']:>7.2f}  {' / '.join(f'{c:.2f}' for c in r['idle_cpu_pct']):>22}"
                f"  {' / '.join(f'{m:.0f}' for m in r['rss_mb'])}"
            )
            print(
                f"  CPU while the stream fell due (s, per watcher): {' / '.join(f'{c:.2f}' for c in r['busy_cpu_s'])}"
            )
            share = max(r["idle_cpu_pct"]) / 100
            print(
                f"  baseline, the naive scan: one tick over {size} open rows took {tick:.2f} s;"
                f" ratio against a watcher's idle second ({share:.4f} s of CPU): x{tick / max(share, 1e-9):.0f}"
            )
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--stream", type=int, default=200, help="deadlines falling due during the run")
    parser.add_argument("--window", type=float, default=30.0, help="seconds over which they fall due")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle measurement")
    parser.add_argument("--postgres", action="store_true", help="a scratch PostgreSQL database, watcher processes")
    parser.add_argument("--watchers", type=int, default=2, help="with --postgres: `regflow watch` processes")
    args = parser.parse_args()
    stop_cleanly_on_signals()

    from regflow.inbox import HttpReceiver, Inbox, SmtpReceiver

    inbox = Inbox()
    receiver, mail = HttpReceiver(inbox).start(), SmtpReceiver(inbox).start()
    if args.postgres:
        try:
            main_postgres(args, inbox, receiver, mail)
        finally:
            receiver.stop()
            mail.stop()
        return
    from regflow import watcher as w

    # The watcher's own managers, budgets included: the baseline differs only in how it finds reminders.
    real = {m.name: m for m in w.MANAGERS}
    ours = [real["send-reminders"], real["climb-escalations"], real["send-notifications"]]
    naive = [
        w.Manager("naive-reminders", naive_reminders, budget=real["send-reminders"].budget),
        real["climb-escalations"],
        real["send-notifications"],
    ]
    print(
        f"machine: {os.cpu_count()} cores; SQLite; stream of {args.stream} deadlines due over {args.window:.0f}s; "
        f"idle measured over {args.idle:.0f}s; watcher cycle every 1 s"
    )
    header = (
        f"{'pending':>8} {'variant':<9} {'delivered':>9} {'p50 s':>7} {'p99 s':>7} {'max s':>7} "
        f"{'idle CPU %':>10} {'idle cycle ms':>13} {'RSS MB':>7}"
    )
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            setup(Path(tmp), receiver.port, mail.port)
            t = time.monotonic()
            ids = seed(size)
            print(f"\nseeded {size} pending deadlines in {time.monotonic() - t:.1f}s")
            print(header)
            for label, managers in (("watcher", ours), ("naive", naive)):
                r = measure(label, managers, ids, inbox, count=args.stream, window=args.window, idle=args.idle)
                results.append((size, r))
                print(
                    f"{size:>8} {label:<9} {r['delivered']:>5}/{r['expected']:<3} {r['p50']:>7.2f} {r['p99']:>7.2f} "
                    f"{r['max']:>7.2f} {r['idle_cpu_pct']:>10.2f} {r['idle_cycle_ms']:>13.1f} {r['rss_mb']:>7.0f}"
                )
            ours_r, naive_r = results[-2][1], results[-1][1]
            print(
                f"{size:>8} ratio naive/watcher: p99 lateness x{naive_r['p99'] / max(ours_r['p99'], 1e-9):.1f}, "
                f"idle CPU x{naive_r['idle_cpu_pct'] / max(ours_r['idle_cpu_pct'], 1e-9):.1f}, "
                f"idle cycle x{naive_r['idle_cycle_ms'] / max(ours_r['idle_cycle_ms'], 1e-9):.1f}"
            )
    receiver.stop()
    mail.stop()


if __name__ == "__main__":
    main()
