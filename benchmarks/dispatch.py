"""Benchmark: trigger to dispatch order delivered, a burst of incidents, and what
incidents waiting on people cost — regflow against plain Prefect, in one run.

    make bench     # or: .venv/bin/python -m benchmarks.dispatch --single 50 --burst 100 --waiting 10000

It starts the platform (`regflow up --no-demo` on a scratch home and port, SQLite,
every channel pointed at this process's loopback HTTP and SMTP receivers) and the
baseline (`benchmarks/baseline.py` served with Prefect's defaults on the same Prefect
server). A trigger is what `regflow incident trigger` does after parsing its
options: validate, activate, send the dispatch order, create the flow run; it runs
here in-process, so the figures leave out the CLI's own interpreter start, which is
measured separately (`--cli`). Latency = arrival at the receiver minus the moment
the trigger began.

- single: N triggers one at a time, each on an idle platform (the previous run has
  reached its first human wait, or for the baseline, finished).
- burst: N triggers spread evenly over a window (10 s), each from its own thread as
  N duty officers would (open loop: none waits for another's), the threads spread
  over `--desks` processes (4) that end when their officers have, as officers' own
  commands would; how long each trigger
  call took, when each dispatch order arrived, when all had, and when every regflow
  run reached its first human wait.
- waiting: N incidents waiting on their arrival step (recorded by the trigger path,
  their runs created Paused in Prefect, as a suspended run is) and the platform's
  processes and resident memory before and after; the baseline's waiting runs keep
  their processes, measured with a few and scaled, as labelled. Seeded from 8 threads.

`--prod` runs the platform as `regflow up --prod` does (PostgreSQL for regflow and
Prefect, API auth, two workers and two watchers) on scratch databases dropped after;
with `--replicas N`, as `regflow up --prod --replicas N` does: N API replicas behind
HAProxy, Prefect's services, Redis for its messaging (a Redis database of the
benchmark's own, emptied first), everything under supervisord, every call through
the load balancer.

The 10x load: `--prod --replicas 2 --single 0 --cli 0 --burst 1000 --burst-window 60
--baseline-burst 100 --waiting 0`. Plain Prefect's part of the burst can be smaller
(`--baseline-burst`): each of its runs is a process of its own (~90 MB while it runs),
and 1,000 at once do not fit in the machine's memory.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks import stop_cleanly_on_signals

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The topology's Prefect messaging, in a Redis database no test uses.
BENCH_REDIS = "redis://127.0.0.1:6379/7"
# What every benchmark incident has in common; each adds its own title and location.
INCIDENT = dict(plan="product-quality", level="IV", authority="330106")


def incident_request(title: str, location: str):
    """An incident as `regflow incident trigger` validates it, given no time or reporter."""
    from rules.incidents import validate_trigger
    from storage.db import utcnow

    fields = dict(INCIDENT, title=title, location=location, occurred_at=None, reporter=None)
    return validate_trigger(fields, now=utcnow())


def trigger_incident(i: int) -> tuple[str, float, object]:
    """Exactly what `regflow incident trigger` does after parsing its options: the
    incident recorded and its dispatch order sent, then Prefect given
    `REGFLOW_RUN_START_WAIT_SECONDS` to create its run (a run not created by then is
    created by a watcher, or by this process later if it lives on)."""
    from kernel.errors import PlatformUnavailable
    from kernel.settings import get_settings
    from storage.db import utcnow
    from tasks.incidents import trigger_and_send
    from tasks.runs import start_incident_run, start_within

    began = time.time()
    incident = trigger_and_send(incident_request(f"压测 {i}", "压测地点"), now=utcnow())
    try:
        run_id = start_within(lambda: start_incident_run(incident), get_settings().run_start_wait_seconds)
    except PlatformUnavailable:  # as the CLI says: recorded, and the watcher starts the run
        run_id = None
    return incident.number, began, run_id


def desk_ready(_: int) -> None:
    """A desk's process started and its imports done, before the burst's clock starts."""
    import tasks.incidents  # noqa: F401
    import tasks.runs  # noqa: F401

    time.sleep(0.5)  # held, so the next checks go to the other desks


def desk(indices: list[int], start: float, n: int, window: float) -> list[tuple]:
    """Duty officers at one desk: a process of their own (spawned, not forked: a fork
    of this process inherited locks its threads held, and a desk's sends hung), each
    officer a thread triggering at its moment. The process ends once they all have, as
    each officer's `regflow incident trigger` would, leaving any run still being
    created to the watchers. One process for all would measure its own lock (the GIL)
    instead: a trigger costs ~75 ms of CPU."""

    def officer(i: int) -> tuple:
        time.sleep(max(0.0, start + i * window / n - time.time()))
        began = time.time()
        try:
            number, began, run = trigger_incident(i)
        except Exception as exc:  # what the officer would be told; nothing recorded
            return None, began, f"{type(exc).__name__}: {exc}", time.time() - began
        return number, began, run, time.time() - began

    with ThreadPoolExecutor(len(indices)) as pool:
        return list(pool.map(officer, indices))


def tree_pids(root: int) -> list[int]:
    """A process and all its descendants, from /proc."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


class Bench:
    def __init__(self, home: Path, api_port: int, prod: bool = False, replicas: int = 0):
        from regflow.devstack import write_demo_channels
        from regflow.inbox import HttpReceiver, Inbox, SmtpReceiver

        self.home, self.inbox, self.baseline = home, Inbox(), None
        self.http = HttpReceiver(self.inbox).start()
        self.smtp = SmtpReceiver(self.inbox).start()
        channels = home / "bench-apprise.yml"
        write_demo_channels(channels, http_port=self.http.port, smtp_port=self.smtp.port)
        self.api = f"http://127.0.0.1:{api_port}/api"
        os.environ.update(REGFLOW_HOME=str(home), REGFLOW_APPRISE_CONFIG=str(channels), PREFECT_API_URL=self.api)
        self.databases: list[str] = []
        if prod:
            token = f"bench:{uuid.uuid4().hex}"
            names = [f"{kind}_bench_{uuid.uuid4().hex[:8]}" for kind in ("regflow", "prefect")]
            self.databases = names  # `regflow up --prod` creates them; stop() drops them
            os.environ.update(
                REGFLOW_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{names[0]}",
                PREFECT_API_DATABASE_CONNECTION_URL=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{names[1]}",
                PREFECT_SERVER_API_AUTH_STRING=token,
                PREFECT_API_AUTH_STRING=token,
            )
        if replicas:
            import redis

            os.environ["REGFLOW_REDIS_URL"] = BENCH_REDIS
            redis.Redis.from_url(BENCH_REDIS).flushdb()
        self.env = dict(os.environ)
        from kernel.settings import get_settings

        get_settings.cache_clear()
        mode = ["--prod"] if prod else []
        if replicas:
            mode += ["--replicas", str(replicas)]
        self.platform = self.spawn(
            [str(BIN / "regflow"), "up", "--no-demo", "--port", str(api_port), *mode], stdout=subprocess.PIPE
        )
        for line in self.platform.stdout:
            if "regflow is running" in line:
                break
        else:
            self.stop()
            raise SystemExit("the platform did not start; see " + str(home / "logs"))
        threading.Thread(target=self.platform.stdout.read, daemon=True).start()
        self.deferred = 0  # triggers that returned before their run was created

    def spawn(self, args: list[str], stdout) -> subprocess.Popen:
        """A child with its output and errors together, in a session of its own so that
        stop() can signal it with everything it starts."""
        return subprocess.Popen(
            args, env=self.env, cwd=ROOT, stdout=stdout, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )

    # --- what arrived -------------------------------------------------------------

    def arrival(self, number: str, timeout: float) -> float | None:
        """When the dispatch order about `number` reached the HTTP receiver (epoch s)."""
        found = self.inbox.wait_for(
            lambda m: m.channel == "http" and "出动指令" in m.title and number in m.title, timeout=timeout
        )
        return dt.datetime.fromisoformat(found[0].at).timestamp() if found else None

    def dispatch_counts(self, numbers: list[str]) -> dict[str, int]:
        wanted = set(numbers)
        counts = dict.fromkeys(numbers, 0)
        for m in list(self.inbox.messages):
            if m.channel == "http" and "出动指令" in m.title:
                number = m.title.split("】", 1)[1].split()[0]
                if number in wanted:
                    counts[number] += 1
        return counts

    # --- regflow ------------------------------------------------------------------

    def trigger(self, i: int) -> tuple[str, float, object]:
        number, began, run_id = trigger_incident(i)
        if run_id is None:
            self.deferred += 1
        return number, began, run_id

    def linked_runs(self, numbers: list[str], timeout: float) -> list:
        """The flow runs of these incidents, once each has one (the watcher starts any
        run Prefect refused to create at the trigger)."""
        from sqlmodel import select

        from storage.db import session_scope
        from storage.incidents import Incident

        deadline = time.time() + timeout
        while True:
            with session_scope() as session:
                runs = list(session.exec(select(Incident.flow_run_id).where(Incident.number.in_(numbers))).all())
            if all(runs) or time.time() > deadline:
                return [r for r in runs if r]
            time.sleep(1)

    def states(self, run_ids: list) -> dict[str, int]:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        counts: dict[str, int] = {}
        with get_client(sync_client=True) as client:
            for start in range(0, len(run_ids), 200):
                chunk = run_ids[start : start + 200]
                for run in client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=len(chunk)
                ):
                    counts[run.state.type.value] = counts.get(run.state.type.value, 0) + 1
        return counts

    def wait_state(self, run_ids: list, state: str, timeout: float) -> float | None:
        start = time.time()
        while time.time() - start < timeout:
            if self.states(run_ids).get(state, 0) == len(run_ids):
                return time.time()
            time.sleep(0.5)
        return None

    def cli_trigger(self, i: int) -> float | None:
        """The whole CLI: a new interpreter, options parsed, then the same path."""
        began = time.time()
        options = [word for k, v in dict(INCIDENT, title=f"CLI {i}", location="x").items() for word in (f"--{k}", v)]
        argv = [str(BIN / "regflow"), "incident", "trigger", *options, "--json"]
        out = subprocess.run(argv, env=self.env, cwd=ROOT, capture_output=True, text=True)
        import json

        if out.returncode:
            print(f"  CLI trigger {i}: exit {out.returncode}: {out.stderr.strip()}", flush=True)
            return None
        number = json.loads(out.stdout)["number"]
        arrived = self.arrival(number, 30)
        self.wait_state([uuid.UUID(json.loads(out.stdout)["flow_run_id"])], "PAUSED", 120)
        return arrived - began if arrived else None

    # --- baseline -----------------------------------------------------------------

    def start_baseline(self) -> None:
        from prefect.client.orchestration import get_client

        self.baseline = self.spawn(
            [sys.executable, "-m", "benchmarks.baseline"], stdout=open(self.home / "logs" / "baseline.log", "w")
        )
        from benchmarks.baseline import DEPLOYMENT

        with get_client(sync_client=True) as client:
            for _ in range(120):
                try:
                    client.read_deployment_by_name(DEPLOYMENT)
                    return
                except Exception:
                    time.sleep(0.5)
        raise SystemExit("the baseline did not start serving")

    def baseline_trigger(self, number: str, wait: bool = False) -> tuple[str, float, object]:
        from prefect.deployments import run_deployment

        from benchmarks.baseline import DEPLOYMENT

        began = time.time()
        try:
            run = run_deployment(
                DEPLOYMENT,
                parameters={"number": number, "url": f"http://127.0.0.1:{self.http.port}/330106/onsite", "wait": wait},
                timeout=0,
            )
        except Exception as exc:  # plain Prefect: a run the server refused is an incident lost
            print(f"  baseline {number}: {type(exc).__name__}", flush=True)
            return number, began, None
        return number, began, run.id

    def stop(self) -> None:
        import signal

        for proc in (self.baseline, self.platform):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        for name in self.databases:
            _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg(statement: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(statement)


def single(bench: Bench, n: int) -> dict[str, list[float]]:
    ours, base = [], []
    for i in range(n):
        number, began, run_id = bench.trigger(i)
        arrived = bench.arrival(number, 60)
        ours.append(arrived - began if arrived else float("inf"))
        bench.wait_state(bench.linked_runs([number], 120), "PAUSED", 120)  # idle again before the next
    for i in range(n):
        number, began, run_id = bench.baseline_trigger(f"BASE-S{i:04d}")
        arrived = bench.arrival(number, 120)
        base.append(arrived - began if arrived else float("inf"))
        bench.wait_state([run_id] if run_id else [], "COMPLETED", 120)
    return {"regflow": ours, "baseline": base}


def burst(bench: Bench, count: int, span: float, timeout: float, baseline: tuple[int, float], desks: int) -> dict:
    """`count` triggers over `span` seconds from `desks` processes; the baseline's own
    `(count, span)` after, from threads (its trigger is one API call)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    results = {}
    for label, n, window in (("regflow", count, span), ("baseline", *baseline)):
        if label == "regflow":
            with ProcessPoolExecutor(desks, mp_context=multiprocessing.get_context("spawn")) as pool:
                list(pool.map(desk_ready, range(desks * 4)))  # every desk up (a few each, to reach them all)
                start = time.time() + 3
                shares = [list(range(k, n, desks)) for k in range(desks)]
                fired = [f for share in pool.map(desk, shares, [start] * desks, [n] * desks, [window] * desks)
                         for f in share]  # fmt: skip
            refused = [f for f in fired if f[0] is None]
            fired = [f for f in fired if f[0] is not None]
            bench.deferred = sum(1 for f in fired if f[2] is None)
            for error, times in collections.Counter(f[2].split(":")[0] for f in refused).items():
                print(f"  triggers refused ({error}, the officer told so, nothing recorded): {times}", flush=True)
        else:
            start = time.time() + 3

            def officer(i: int, start=start, n=n, window=window):
                time.sleep(max(0.0, start + i * window / n - time.time()))
                number, began, run = bench.baseline_trigger(f"BASE-B{i:04d}")
                return number, began, run, time.time() - began

            with ThreadPoolExecutor(n) as pool:
                fired = list(pool.map(officer, range(n)))
        calls = [f[3] for f in fired]
        fired = [f[:3] for f in fired]
        first, last = min(f[1] for f in fired), max(f[1] for f in fired)
        numbers = [f[0] for f in fired]
        deadline = time.time() + timeout
        arrivals = {}
        for number, began, _ in fired:
            at = bench.arrival(number, max(0.0, deadline - time.time()))
            if at is not None:
                arrivals[number] = (at - began, at - first)
        time.sleep(3)  # anything sent twice would arrive by now
        counts = bench.dispatch_counts(numbers)
        waited = None
        if label == "regflow":
            runs = bench.linked_runs(numbers, timeout)
            done = bench.wait_state(runs, "PAUSED", timeout) if len(runs) == len(numbers) else None
            waited = (done - first, done - last) if done else None
            if not done:  # what the timeout left: how far the runs had come
                print(f"  after the timeout: {len(runs)} runs created, {bench.states(runs)}", flush=True)
            children = len(tree_pids(bench.platform.pid))
        else:
            bench.wait_state([f[2] for f in fired if f[2]], "COMPLETED", timeout)
            children = None
        results[label] = {
            "count": n,
            "window": last - first,
            "calls": calls,
            "latencies": [a[0] for a in arrivals.values()],
            "all_by": max((a[1] for a in arrivals.values()), default=float("nan")),
            "delivered": len(arrivals),
            "twice": sum(1 for c in counts.values() if c > 1),
            "lost": sum(1 for c in counts.values() if c == 0),
            "first_wait_by": waited,
            "processes_after": children,
            "deferred": bench.deferred if label == "regflow" else 0,
        }
    return results


def retry(call, attempts: int = 10):
    """Prefect's SQLite server answers 503 when its database is busy (the watcher, the
    worker and these writes at once); what a CLI would do is try again."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if "503" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(1 + attempt)


def waiting(bench: Bench, n: int, baseline_n: int) -> dict[str, dict]:
    """What N incidents waiting on people add to the platform, against the plain way
    to wait (pause_flow_run), which keeps each run's process."""
    time.sleep(10)  # let the platform settle after the burst
    pids = tree_pids(bench.platform.pid)
    before_rss, before_procs = rss_mb(pids), len(pids)
    seed_waiting(n)
    time.sleep(30)  # several watcher cycles over them all
    pids = tree_pids(bench.platform.pid)
    ours = dict(incidents=n, rss_before=before_rss, rss_after=rss_mb(pids), processes_before=before_procs,
                processes_after=len(pids))  # fmt: skip
    served = tree_pids(bench.baseline.pid)
    base_before, base_procs = rss_mb(served), len(served)
    fired = [bench.baseline_trigger(f"BASE-W{i:04d}", wait=True) for i in range(baseline_n)]
    bench.wait_state([f[2] for f in fired if f[2]], "PAUSED", 300)
    time.sleep(5)
    served = tree_pids(bench.baseline.pid)
    per_run = (rss_mb(served) - base_before) / baseline_n
    base = dict(incidents=baseline_n, rss_before=base_before, rss_after=rss_mb(served), processes_before=base_procs,
                processes_after=len(served), per_run_mb=per_run, scaled_mb=per_run * n)  # fmt: skip
    return {"regflow": ours, "baseline": base}


def seed_waiting(n: int) -> None:
    """N incidents recorded by the trigger path, each with its run created Suspended at
    its arrival step, as a run that reached it would be."""
    from prefect.client.orchestration import get_client
    from prefect.states import Suspended

    from kernel.settings import get_settings
    from storage.db import utcnow
    from storage.subjects import link_flow_run
    from tasks.incidents import open_step, trigger
    from tasks.runs import incident_params, run_key, run_name, subject_tags

    started, local = time.time(), threading.local()
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(get_settings().deployment)

    def seed(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = get_client(sync_client=True).__enter__()
        incident = trigger(incident_request(f"等待 {i}", "x"), now=utcnow())
        run = retry(
            lambda: local.client.create_flow_run_from_deployment(
                deployment.id, parameters=incident_params(incident), name=run_name(incident),
                tags=subject_tags(incident), idempotency_key=run_key(incident),
                state=Suspended(pause_key="arrival"),
            )
        )  # fmt: skip
        link_flow_run(incident.number, run.id)
        open_step(incident.number, "arrival", now=utcnow())
        if i and i % 1000 == 0:
            print(f"  waiting: {i} recorded ({time.time() - started:.0f}s)", flush=True)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(seed, range(n)))


def plot(path: Path, single_r: dict, burst_r: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, title, data in (
        (axes[0], "single trigger, idle platform", single_r),
        (axes[1], "burst: each incident's dispatch", {k: v["latencies"] for k, v in burst_r.items()}),
    ):
        for label, values in data.items():
            xs = sorted(v for v in values if v != float("inf"))
            if xs:
                ax.step(
                    xs,
                    [(i + 1) / len(values) for i in range(len(xs))],
                    where="post",
                    label=f"{label} (p50 {pct(xs, 50):.2f}s)",
                )
        ax.set_xscale("log")
        ax.set_xlabel("trigger → dispatch order delivered (s, log)")
        ax.set_ylabel("share of incidents")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(f"regflow vs plain Prefect on {os.cpu_count()} cores (benchmarks/dispatch.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=50)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--burst-window", type=float, default=10.0, help="seconds the burst's triggers spread over")
    parser.add_argument("--prod", action="store_true", help="production mode: PostgreSQL, 2 workers, 2 watchers")
    parser.add_argument(
        "--replicas", type=int, default=0, help="with --prod: API replicas behind HAProxy (0: one server)"
    )
    parser.add_argument("--desks", type=int, default=4, help="processes the burst's officers trigger from")
    parser.add_argument("--baseline-burst", type=int, default=None, help="plain Prefect's burst (default: --burst)")
    parser.add_argument("--baseline-window", type=float, default=None, help="its window (default: --burst-window)")
    parser.add_argument("--waiting", type=int, default=10000)
    parser.add_argument("--baseline-waiting", type=int, default=20, help="baseline runs held waiting (scaled up)")
    parser.add_argument("--cli", type=int, default=5, help="triggers through the CLI's own process")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--port", type=int, default=4390)
    parser.add_argument(
        "--plot", type=Path, default=ROOT / "docs" / "dispatch-latency.png", help="PNG to write ('': none)"
    )
    args = parser.parse_args()
    stop_cleanly_on_signals()

    with tempfile.TemporaryDirectory(prefix="regflow-bench-") as tmp:
        if args.replicas and not args.prod:
            parser.error("--replicas needs --prod")
        bench = Bench(Path(tmp), args.port, prod=args.prod, replicas=args.replicas)
        try:
            bench.start_baseline()
            mode = (
                f"production topology (PostgreSQL, API auth, Redis); {args.replicas} Prefect API replicas behind"
                " HAProxy, Prefect's services, 2 workers (limit 2 each) and 2 watchers under supervisord, from"
                f" `regflow up --prod --replicas {args.replicas}`"
                if args.replicas
                else "production (PostgreSQL, API auth); Prefect server, 2 workers (limit 2 each) and 2 watchers"
                " from `regflow up --prod`"
                if args.prod
                else "embedded default (SQLite); Prefect server, worker (limit 4) and watcher from `regflow up`"
            )
            print(
                f"machine: {os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') // 2**30}"
                f" GB; {mode}; baseline served with defaults on the same server",
                flush=True,
            )
            # Each part is printed as soon as it is measured: a long run keeps what it got.
            # A part given 0 is skipped (e.g. `--single 0 --burst 0 --cli 0` measures waiting only).
            if args.single:
                s = single(bench, args.single)
                cli = [bench.cli_trigger(i) for i in range(args.cli)]
                report_single(args, s, cli)
            if args.burst:
                baseline = (args.baseline_burst or args.burst, args.baseline_window or args.burst_window)
                b = burst(bench, args.burst, args.burst_window, args.timeout, baseline, args.desks)
                b["regflow"]["run_cpu"] = run_cpu(bench.home / "logs")
                report_burst(args, b)
            if args.single and args.burst and args.plot and str(args.plot) not in ("", "."):
                plot(args.plot, {**s, "regflow, CLI": [c for c in cli if c is not None]}, b)
                print(f"\nplot: {args.plot}", flush=True)
            if args.waiting:
                report_waiting(waiting(bench, args.waiting, args.baseline_waiting))
        finally:
            bench.stop()


def row(name, ours, base, unit="s"):
    ratio = base / ours if ours and ours == ours and base == base else float("nan")
    print(f"{name:<44} {ours:>10.2f} {base:>10.2f} {unit:<3} {ratio:>8.1f}x", flush=True)


def report_single(args, s, cli) -> None:
    print(f"\n{'figure':<44} {'regflow':>10} {'baseline':>10}     {'baseline/regflow':>8}")
    row(f"single trigger p50 ({args.single} triggers)", pct(s["regflow"], 50), pct(s["baseline"], 50))
    row("single trigger p95", pct(s["regflow"], 95), pct(s["baseline"], 95))
    row("single trigger max", max(s["regflow"]), max(s["baseline"]))
    cli_ok = [c for c in cli if c is not None]
    if cli_ok:  # what a duty officer types: a new `regflow` process (handed to the launcher if one runs)
        row(f"  via `regflow incident trigger` ({len(cli_ok)}), p50", pct(cli_ok, 50), pct(s["baseline"], 50))
        row("  via `regflow incident trigger`, p95", pct(cli_ok, 95), pct(s["baseline"], 95))


def report_burst(args, b) -> None:
    ours, base = b["regflow"], b["baseline"]
    print(
        f"burst: regflow {ours['count']} triggered within {ours['window']:.1f}s, baseline {base['count']} within"
        f" {base['window']:.1f}s, one officer (thread) each"
    )
    row("  trigger call returned after, p50", pct(ours["calls"], 50), pct(base["calls"], 50))
    row("  trigger call returned after, p95", pct(ours["calls"], 95), pct(base["calls"], 95))
    row("  all dispatch orders delivered, after first", ours["all_by"], base["all_by"])
    row("  per-incident latency p50", pct(ours["latencies"], 50), pct(base["latencies"], 50))
    row("  per-incident latency p95", pct(ours["latencies"], 95), pct(base["latencies"], 95))
    print(
        f"{'  delivered / lost / twice':<44} {ours['delivered']:>4}/{ours['lost']}/{ours['twice']:<5}"
        f" {base['delivered']:>6}/{base['lost']}/{base['twice']}",
        flush=True,
    )
    if ours["deferred"]:
        print(
            f"  runs not created within the trigger's wait (created after it returned): {ours['deferred']}",
            flush=True,
        )
    if ours["first_wait_by"] is not None:
        print(
            f"{'  every regflow run at its first human wait':<44} {ours['first_wait_by'][0]:>10.1f} s after the first"
            f" trigger, {ours['first_wait_by'][1]:.1f} s after the last; platform processes afterwards:"
            f" {ours['processes_after']}",
            flush=True,
        )
    if ours.get("run_cpu"):
        print(
            f"{'  CPU of a flow run (launcher log), p50 / p95':<44} {pct(ours['run_cpu'], 50):>10.2f}"
            f" {pct(ours['run_cpu'], 95):>10.2f} s  ({len(ours['run_cpu'])} runs and resumes)",
            flush=True,
        )


def run_cpu(logs: Path) -> list[float]:
    """CPU each flow-run process used, as the workers' launchers log it."""
    pattern = re.compile(r"^launcher: flow run \S+ \(pid \d+\) exited -?\d+ after ([\d.]+) s of CPU", re.M)
    return [
        float(x) for log in sorted(logs.glob("worker*.log")) for x in pattern.findall(log.read_text(errors="replace"))
    ]


def report_waiting(w) -> None:
    if w:
        o, bl = w["regflow"], w["baseline"]
        print(f"waiting on a human step: {o['incidents']} regflow incidents, {bl['incidents']} baseline runs")
        print(
            f"{'  processes added':<44} {o['processes_after'] - o['processes_before']:>10d}"
            f" {bl['processes_after'] - bl['processes_before']:>10d}"
        )
        print(
            f"{'  resident memory added (MB)':<44} {o['rss_after'] - o['rss_before']:>10.0f}"
            f" {bl['rss_after'] - bl['rss_before']:>10.0f}"
        )
        print(
            f"{'  baseline scaled to ' + str(o['incidents']) + ' (MB, extrapolated)':<44} {'':>10}"
            f" {bl['scaled_mb']:>10.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
