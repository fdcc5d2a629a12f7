"""The Prefect tasks of the emergency-response flow: thin wrappers over
`tasks.incidents` and `tasks.notify`, retried on transient failures only."""

from __future__ import annotations

import uuid
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from kernel.errors import PlatformUnavailable
from rules.incidents import validate_trigger
from storage.db import utcnow
from storage.subjects import link_flow_run
from tasks import incidents, notify


def transient(task, task_run, state) -> bool:
    """Retry when the database or a service was briefly away, never on bad input."""
    try:
        state.result()
    except PlatformUnavailable:
        return True
    except Exception:
        return False
    return False


RETRY = dict(retries=3, retry_delay_seconds=[1, 5, 15], retry_condition_fn=transient, cache_policy=NO_CACHE)


BEAT_SECONDS = 5


def keep_alive() -> None:
    """Stamp `flowrun:<id>` every few seconds while this run's process lives, so the
    watcher can tell a run whose process was killed (it stays Running for ever in
    Prefect, with nobody left to mark it Crashed) from one that is working."""
    import threading
    import time

    from storage.db import session_scope
    from storage.heartbeats import beat

    name = f"flowrun:{flow_run.id}"

    def loop() -> None:
        while True:
            try:
                with session_scope() as session:
                    beat(session, name=name, now=utcnow())
            except Exception:  # a missed beat is retried; the watcher allows several
                pass
            time.sleep(BEAT_SECONDS)
    threading.Thread(target=loop, name="regflow-keep-alive", daemon=True).start()


@task(name="activate-plan", **RETRY)
def activate_plan(params: dict[str, Any], incident_number: str | None) -> str:
    """Create the incident (once per flow run) or adopt the one the CLI created."""
    run_id = uuid.UUID(flow_run.id)
    if incident_number:
        link_flow_run(incident_number, run_id)
        return incident_number
    now = utcnow()
    request = validate_trigger(params, now=now)
    incident = incidents.trigger(request, now=now, flow_run_id=run_id)
    from tasks.runs import rename_run, run_name, subject_tags

    rename_run(run_id, run_name(incident), subject_tags(incident))
    return incident.number


@task(name="publish-status", **RETRY)
def publish_status(number: str, retag: bool = True) -> int:
    """Refresh the subject's timeline, deadlines and progress artifacts on this run,
    and keep the run's `stage:` tag on what it awaits now."""
    from tasks.runs import rename_run, subject_tags
    from storage.db import session_scope
    from storage.subjects import subject_for
    from tasks import status

    run_id = uuid.UUID(flow_run.id)
    if retag:
        with session_scope() as session:
            tags = subject_tags(subject_for(session, number))
        rename_run(run_id, None, tags)
    return status.publish(number, utcnow(), run_id=run_id)


@task(name="deliver-notifications", **RETRY)
def deliver_notifications(number: str) -> int:
    """Send this incident's due messages now; the watcher retries what fails."""
    result = notify.deliver_due(subject=number)
    if result.retrying:
        get_run_logger().warning("%s: %d message(s) failed and will be retried", number, result.retrying)
    return result.sent


@task(name="dispatch-team", **RETRY)
def dispatch_team(number: str) -> bool:
    return incidents.dispatch(number, now=utcnow())


@task(name="open-step", **RETRY)
def open_step(number: str, step: str) -> incidents.StepState:
    return incidents.open_step(number, step, now=utcnow())


@task(name="record-answer", **RETRY)
def record_answer(number: str, step: str, answer: dict[str, Any]) -> dict[str, Any] | None:
    """The answer as recorded, or None when it was refused (then the step is asked again)."""
    return refused_or(lambda: incidents.answer(number, answer=answer, source="ui", step=step, now=utcnow()).answer,
                      number, step, answer)


def refused_or(record, number: str, step: str, answer: dict[str, Any]) -> dict[str, Any] | None:
    """`record()`, or None when the person's own answer was refused: a rule the form
    cannot check (on record here) or who may answer (on record already)."""
    from kernel.errors import RegflowError
    from tasks.access import refuse

    try:
        return record()
    except RegflowError as exc:
        if exc.exit_code not in (2, 5, 8):  # own mistake, a year without holiday data, not allowed
            raise
        if exc.exit_code != 8:
            by = next((str(answer[k]) for k in ("by", "author", "officer", "reviewer") if answer.get(k)), "")
            refuse(number, step, str(exc), by=by, now=utcnow())
        return None


@task(name="publish-documents", **RETRY)
def publish_documents(number: str, step: str) -> int:
    """Publish the step's documents as artifacts, then mark the step passed: a run
    killed in between publishes the rest when it starts again, and none twice."""
    reports = incidents.consume(number, step, now=utcnow(), mark=False)
    for report in reports:
        zh, en = incidents.REPORT_KINDS[report.kind]
        publish_once(f"{number.lower()}-{report.step}", report.document, f"{number} {zh} / {en}")
    incidents.consume(number, step, now=utcnow())
    return len(reports)


def publish_once(key: str, markdown: str, description: str) -> None:
    """A Markdown artifact of this run, unless the run already has one by that key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        if client.read_artifacts(limit=1, artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run.id)]))):
            return
    create_markdown_artifact(key=key, markdown=markdown, description=description)
