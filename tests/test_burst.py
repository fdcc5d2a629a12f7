"""A burst of 100 incidents on the embedded default (SQLite), triggered from eight
threads the way `regflow incident trigger` does it: none lost, each with its own
flow run, every dispatch order delivered exactly once (counted at the loopback
mail receiver), with a watcher racing the triggers' own sends. Where Prefect's
SQLite server stays locked past its client's retries (HTTP 503, seen on a slow
machine), the trigger says so and the watcher starts that run later, as it does for
`regflow incident trigger`: every incident still ends with exactly one run.

The runs are created in a work pool no worker polls: what a flow run does after it
starts is covered by the lifecycle and fault tests, and how long 100 take to reach
their first human wait is measured by `make bench` (benchmarks/dispatch.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlmodel import func, select

from tests.conftest import wait_until

BURST = 100


def idle_deployment() -> str:
    """`emergency-response/burst`, in a pool with no worker: runs are created, never run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="burst-idle", type="process"))
        except Exception:  # already there (a rerun in the same session)
            pass
        flow_id = client.create_flow_from_name("emergency-response")
        client.create_deployment(
            flow_id=flow_id,
            name="burst",
            work_pool_name="burst-idle",
            entrypoint="flows/emergency.py:emergency_response",
        )
    return "emergency-response/burst"


# A database of its own: the session platform's watcher would otherwise race for the sends too.
@pytest.mark.parametrize("module_database", ["sqlite"], indirect=True)
def test_a_burst_of_100_incidents_loses_none_and_dispatches_each_once(
    own_database, receivers, prefect_api, home, monkeypatch
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterName

    from kernel.errors import PlatformUnavailable
    from kernel.settings import get_settings
    from rules.incidents import validate_trigger
    from storage.db import session_scope, utcnow
    from storage.incidents import Dispatch, Incident
    from storage.notifications import Notification
    from tasks.incidents import trigger_and_send
    from tasks.runs import start_incident_run

    monkeypatch.setenv("REGFLOW_DEPLOYMENT", idle_deployment())
    get_settings.cache_clear()
    token = uuid.uuid4().hex[:6]
    log = home / f"burst-watcher-{token}.log"
    watcher = subprocess.Popen(
        [str(Path(sys.executable).parent / "regflow"), "watch"],
        env=dict(os.environ, REGFLOW_DATABASE_URL=own_database, REGFLOW_OUTBOX_POLL_SECONDS="0.2"),
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )
    try:

        def fire(i: int):
            now = utcnow()
            request = validate_trigger(
                dict(plan="product-quality", level="III", title=f"突发 {token} {i}", location="l", authority="330106"),
                now=now,
            )
            incident = trigger_and_send(request, now=now)
            try:
                return incident.number, time.monotonic(), start_incident_run(incident)
            except PlatformUnavailable:  # recorded and dispatched; the watcher starts its run
                return incident.number, time.monotonic(), None

        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            fired = list(pool.map(fire, range(BURST)))
        window = time.monotonic() - start
        numbers = {number for number, _, _ in fired}
        assert len(numbers) == BURST  # a number each, none reused

        def orders() -> dict[str, int]:
            counts = dict.fromkeys(numbers, 0)
            for m in receivers.inbox.matching(token):
                if m.channel == "smtp" and "出动指令" in m.title:
                    counts[next(n for n in numbers if n in m.title)] += 1
            return counts

        wait_until(lambda: all(orders().values()), timeout=180, what="every dispatch order")
        delivered_after = time.monotonic() - start
        time.sleep(3)  # a second copy, were one coming, would be here by now
        counts = orders()
        assert set(counts.values()) == {1}, {n: c for n, c in counts.items() if c != 1}

        def linked() -> dict[str, object]:
            with session_scope() as session:
                return {
                    i.number: i.flow_run_id
                    for i in session.exec(select(Incident).where(Incident.title.contains(token))).all()
                }

        runs_of = wait_until(
            lambda: (found := linked()) and all(found.values()) and found,
            timeout=120,
            what="every incident's run, the ones Prefect refused started by the watcher",
        )
        with session_scope() as session:
            ours = select(Incident.id).where(Incident.title.contains(token))
            assert (
                session.exec(select(func.count()).select_from(Incident).where(Incident.title.contains(token))).one()
                == BURST
            )
            assert (
                session.exec(select(func.count()).select_from(Dispatch).where(Dispatch.incident_id.in_(ours))).one()
                == BURST
            )
            unsent = session.exec(
                select(func.count())
                .select_from(Notification)
                .where(Notification.subject.in_(numbers), Notification.status != "sent")
            ).one()
        assert unsent == 0
        run_ids = set(runs_of.values())
        refused = sum(1 for _, _, run_id in fired if run_id is None)
        assert {run_id for _, _, run_id in fired if run_id} <= run_ids and len(run_ids) == BURST
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(run_ids))), limit=BURST + 1
            )
            ours_anywhere = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=token)), limit=2 * BURST
            )
        assert len(runs) == BURST and {r.parameters["incident_number"] for r in runs} == numbers
        assert len(ours_anywhere) == BURST  # a 503 whose run was made anyway got no second run
        print(
            f"\nburst: {BURST} incidents triggered in {window:.1f}s from 8 threads; every dispatch order "
            f"delivered once, the last {delivered_after:.1f}s after the first trigger; {len(runs)} runs created, "
            f"{refused} of them by the watcher after Prefect answered 503"
        )
    finally:
        watcher.terminate()
        watcher.wait(20)
        get_settings.cache_clear()
