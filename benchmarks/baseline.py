"""The plain-Prefect baseline the dispatch benchmark compares regflow with: one
minimal flow run per incident, served with Prefect's defaults, whose only work is
to post the dispatch order to the loopback receiver, then wait like a human step
does in plain Prefect (`pause_flow_run`, which keeps the process).

    python -m benchmarks.baseline   # serves `baseline-dispatch/baseline` (PREFECT_API_URL)
"""

from __future__ import annotations

import httpx
from prefect import flow
from prefect.flow_runs import pause_flow_run

DEPLOYMENT = "baseline-dispatch/baseline"


@flow(name="baseline-dispatch")
def baseline_dispatch(number: str, url: str, wait: bool = False) -> str:
    httpx.post(url, json={"title": f"【出动指令】{number}", "body": number, "type": "info"}, timeout=10)
    if wait:  # a human step the plain way: the run keeps its process while it waits
        pause_flow_run(timeout=3600)
    return number


if __name__ == "__main__":
    baseline_dispatch.serve(name="baseline")
