"""Benchmark: a spot-check draw from large registers, and a campaign of many samples
created on the engine, each against a naive baseline in the same process.

    .venv/bin/python -m benchmarks.campaign     # 100,000 targets, 5,000 inspectors, 1,000 samples

1. The draw (`rules.campaigns.draw`, pure): weighted targets without replacement,
   superior-covered and recently checked ones left out, at least two qualified inspectors
   without a conflict per target. Baseline: `random.sample` of targets per category and
   of inspectors per target, with no weights, exclusions or conflict checks.
2. The registers imported (CSV parsed and checked line by line, upserted) and the draw on
   record (`tasks.campaigns.run_draw`: rows read, snapshot and hashes stored, the draw
   published as JSON), on SQLite.
3. The samples created (`tasks.samples.create_samples`: per sample a subject row, its
   `spot_sample` row, the sampling deadline with its policy, the inspectors' message
   in the outbox, an audit row). Baseline: the same number of bare subject rows
   inserted in one transaction.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import tempfile
import time
from pathlib import Path

from benchmarks import use_sqlite_home

CATEGORIES = [f"品类{i:02d}" for i in range(20)]


def uscc(n: int) -> str:
    from rules.registers import uscc_check_character

    first17 = f"91330106MA{n:07d}"
    return first17 + uscc_check_character(first17)


def write_registers(folder: Path, targets: int, inspectors: int, rng: random.Random) -> tuple[Path, Path]:
    t_path, i_path = folder / "targets.csv", folder / "inspectors.csv"
    with t_path.open("w", encoding="utf-8") as f:
        f.write("name,uscc,address,authority,categories,risk\n")
        for n in range(targets):
            cats = ";".join(rng.sample(CATEGORIES, 2))
            f.write(f"企业{n},{uscc(n)},杭州市西湖区{n}号,330106,{cats},{'ABCD'[n % 4]}\n")
    with i_path.open("w", encoding="utf-8") as f:
        f.write("name,login,authority,qualifications,conflicts\n")
        for n in range(inspectors):
            quals = ";".join(rng.sample(CATEGORIES, 4))
            conflicts = ";".join(uscc(rng.randrange(targets)) for _ in range(3))
            f.write(f"检查员{n},insp{n},330106,{quals},{conflicts}\n")
    return t_path, i_path


def plan_text(key: str, samples: int) -> str:
    per = samples // len(CATEGORIES)
    draw = "\n".join(f"  - {{category: {c}, targets: {per}}}" for c in CATEGORIES)
    return f"""key: {key}
name: 基准抽查
authority: "330106"
basis: [《产品质量法》第十五条]
window: {{start: 2026-10-01, end: 2026-12-31}}
labs: [甲检测院, 乙检测院]
limits: {{testing: 20d, result_notice: 5wd, retest: 20d, rectification_order: 5wd}}
draw:
{draw}
weights: {{A: 1, B: 2, C: 3, D: 4}}
"""


def naive_draw(plan, targets, inspectors, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for quota in plan.draw:
        pool = [t for t in targets if quota.category in t.categories]
        for target in rng.sample(pool, quota.targets):
            staff = [i for i in inspectors if quota.category in i.qualifications]
            out.append({"uscc": target.uscc, "inspectors": [i.login for i in rng.sample(staff, 2)]})
    return out


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--inspectors", type=int, default=5_000)
    parser.add_argument("--samples", type=int, default=1_000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="regflow-bench-campaign-"))
    use_sqlite_home(workdir)
    from rules.campaigns import draw, parse_plan
    from rules.registers import parse_inspectors, parse_targets
    from storage.cases import Case
    from storage.db import session_scope, utcnow
    from tasks import campaigns, registers, samples

    rng = random.Random(1)
    t_path, i_path = write_registers(workdir, args.targets, args.inspectors, rng)
    key = "bench-draw"
    plan_path = workdir / "plan.yaml"
    plan_path.write_text(plan_text(key, args.samples), encoding="utf-8")
    plan = parse_plan(plan_path.read_text(encoding="utf-8"), source="plan")
    codes = {"330106"}
    targets = parse_targets(t_path.read_text(encoding="utf-8"), source="t", authorities=codes)
    inspectors = parse_inspectors(i_path.read_text(encoding="utf-8"), source="i", authorities=codes)
    print(f"registers: {len(targets):,} targets, {len(inspectors):,} inspectors; plan: {args.samples:,} samples "
          f"over {len(CATEGORIES)} categories")  # fmt: skip

    ours, drawn = timed(lambda: draw(plan, targets, inspectors, 42))
    base, _ = timed(lambda: naive_draw(plan, targets, inspectors, 42))
    print(f"draw (pure)            regflow-draw/1 {ours:7.2f} s   naive random.sample {base:7.2f} s   "
          f"ratio {ours / base:5.2f}")  # fmt: skip
    assert len(drawn) == args.samples

    now = utcnow()
    by = "局长"  # demo people are not loaded: act as the head the test directory names
    os.environ["REGFLOW_PEOPLE_FILE"] = str(_people(workdir))
    from kernel.settings import get_settings

    get_settings.cache_clear()
    imported, _ = timed(lambda: (registers.import_register("targets", t_path, by=by, now=now),
                                 registers.import_register("inspectors", i_path, by=by, now=now)))  # fmt: skip
    print(f"registers imported     {imported:7.2f} s")
    campaigns.create(plan_path, by=by, now=now)
    recorded, _ = timed(lambda: campaigns.run_draw(key, by=by, now=now, seed=42))
    print(f"draw on record         {recorded:7.2f} s   (rows read, snapshot, hashes, public JSON)")
    verified, _ = timed(lambda: campaigns.verify(key))
    print(f"verify-draw            {verified:7.2f} s")

    created, numbers = timed(lambda: samples.create_samples(key, now=now))

    def bare() -> None:
        with session_scope() as session:
            for n in range(len(numbers)):
                session.add(Case(number=f"BASE-{n:06d}", kind="sample", title="t", party="p", source="spot_check",
                                 detail="", authority_code="330106", received_at=now, rules_hash="x"))  # fmt: skip

    base, _ = timed(bare)
    each = 1000 * created / len(numbers)
    print(f"samples created        {created:7.2f} s for {len(numbers):,} ({each:.1f} ms each)   "
          f"bare rows {base:6.2f} s   ratio {created / base:5.1f}")  # fmt: skip
    started = dt.datetime.now()
    print(f"(SQLite in {workdir}; {started:%Y-%m-%d})")


def _people(folder: Path) -> Path:
    path = folder / "people.yaml"
    path.write_text('people:\n  - {login: head, name: 局长, authority: "330106", roles: [head]}\n', encoding="utf-8")
    return path


if __name__ == "__main__":
    main()
