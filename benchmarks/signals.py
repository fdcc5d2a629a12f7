"""Benchmark: 100,000 risk signals ingested and grouped, against a naive baseline in the
same process.

    .venv/bin/python -m benchmarks.signals     # 100,000 signals, 2,000 hazards, 10 % repeats

Ours: `tasks.risk.ingest` in files of 5,000 (each file one transaction): every signal
parsed and checked (pydantic, the unified social credit code's check character), keyed
and fingerprinted, repeats found, grouped into risk items over the category's window,
graded over a sliding window, each new item's subject, assessment deadline, message and
audit row written. Baseline: the same signals' rows inserted bare in one transaction,
no check, no grouping. SQLite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import tempfile
import time
from pathlib import Path

from benchmarks import use_sqlite_home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=100_000)
    parser.add_argument("--hazards", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=5_000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="regflow-bench-signals-"))
    use_sqlite_home(workdir)
    from rules.registers import uscc_check_character
    from storage.db import session_scope, utcnow
    from storage.risk import RiskSignal
    from tasks.risk import ingest_file

    rng = random.Random(1)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    codes = [f"91330106MC{n:07d}" for n in range(args.hazards)]
    codes = [c + uscc_check_character(c) for c in codes]
    rows = []
    for i in range(args.signals):
        if rows and rng.random() < 0.10:
            rows.append(dict(rng.choice(rows)))  # a repeat delivery
            continue
        h = rng.randrange(args.hazards)
        rows.append(dict(source="complaint", category=f"品类{h % 20:02d}", product=f"产品{h}",
                         model=rng.choice(("XR-{0}", "xr {0}", "ＸＲ{0}")).format(h), uscc=codes[h], region="330106",
                         harm="injury" if rng.random() < 0.02 else "none", count=1, text=f"信号{i}",
                         at=(start + dt.timedelta(seconds=rng.randrange(0, 20 * 86400))).isoformat()))  # fmt: skip
    files = []
    for n in range(0, len(rows), args.batch):
        path = workdir / f"signals-{n // args.batch:03d}.jsonl"
        path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[n : n + args.batch]), "utf-8")
        files.append(path)

    began = time.perf_counter()
    signals = repeats = items = 0
    for path in files:
        result = ingest_file(path, by="bench", now=start + dt.timedelta(days=21))  # deadlines within 2026
        signals, repeats, items = signals + result.signals, repeats + result.repeats, items + len(result.opened)
    ours = time.perf_counter() - began

    base_start = time.perf_counter()
    with session_scope() as session:
        for i, r in enumerate(rows):
            session.add(RiskSignal(key=f"base-{i}", item="BASE", source=r["source"], category=r["category"],
                                   product=r["product"], model=r["model"], uscc=r["uscc"], region=r["region"],
                                   harm=r["harm"], count=1, text=r["text"],
                                   at=dt.datetime.fromisoformat(r["at"]), received_at=utcnow()))  # fmt: skip
    base = time.perf_counter() - base_start
    print(f"signals: {len(rows):,} in {len(files)} files ({signals:,} new, {repeats:,} repeats) -> "
          f"{items:,} risk items")  # fmt: skip
    print(f"ingested and grouped   {ours:7.2f} s ({len(rows) / ours:,.0f} signals/s)   bare rows {base:7.2f} s   "
          f"ratio {ours / base:.1f}")  # fmt: skip
    print(f"(SQLite in {workdir}; {dt.date.today():%Y-%m-%d})")


if __name__ == "__main__":
    main()
