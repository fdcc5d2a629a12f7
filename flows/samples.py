"""Spot checks (双随机、一公开): one `spot-check-campaign` run per drawn campaign, and
one `spot-check-sample` run per sample.

The campaign run creates the samples (once: a re-run finds them), starts their runs
and shows the campaign's progress by category and its late samples as artifacts,
which each sample's run keeps current. A sample run walks its lifecycle
(`rules/samples.py`) with `flows.steps`: each human step suspends the run with its
typed form, answered from the UI or with `regflow sample …`.
"""

from __future__ import annotations

import uuid

from prefect import flow, task

from flows.params import Param
from flows.steps import walk
from rules.samples import SAMPLE
from storage.db import utcnow
from tasks.enforcement import start_linked_runs
from tasks.prefect_tasks import RETRY, deliver_notifications, keep_alive, subject_of_run


@task(name="create-samples", **RETRY)
def create_samples(key: str) -> list[str]:
    from tasks import samples

    return samples.create_samples(key, now=utcnow())


@task(name="start-sample-runs", **RETRY)
def start_sample_runs(numbers: list[str]) -> int:
    """Start the run of each sample that has none yet (the watcher starts any left over)."""
    from storage.cases import get_case
    from storage.db import session_scope
    from tasks.runs import start_case_run

    started = 0
    for number in numbers:
        with session_scope() as session:
            case = get_case(session, number=number)
        if case.flow_run_id is None:
            start_case_run(case)
            started += 1
    return started


@task(name="publish-campaign-progress", **RETRY)
def publish_progress(key: str) -> int:
    from tasks import samples

    return samples.publish_progress(key, now=utcnow())


@flow(name="spot-check-campaign", log_prints=True)
def spot_check_campaign(
    key: str = Param(title="抽查计划 Campaign", description="已抽取的抽查计划编号 / the drawn campaign's key"),
) -> list[str]:
    from prefect.runtime import flow_run

    from storage.campaigns import link_flow_run

    keep_alive()
    link_flow_run(key, uuid.UUID(flow_run.id))
    numbers = create_samples(key)
    for number in numbers:
        deliver_notifications(number)
    started = start_sample_runs(numbers)
    publish_progress(key)
    print(f"campaign {key}: {len(numbers)} samples, {started} runs started")
    return numbers


@flow(name="spot-check-sample", log_prints=True)
def spot_check_sample(
    number: str = Param(title="样品编号 Sample", description="由抽查计划运行创建 / set by the campaign's run"),
) -> str:
    keep_alive()
    number = subject_of_run(number, None)
    walk(number, SAMPLE, after=start_linked_runs)
    deliver_notifications(number)
    return number
