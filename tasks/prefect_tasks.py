"""The Prefect tasks every lifecycle's flow calls: thin wrappers over the engine
(`tasks.lifecycle`), the outbox and the status artifacts, retried on transient
failures only. The flows' own first tasks (activating a plan, receiving a lead)
are in `tasks/emergency.py` and `tasks/enforcement.py`."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Callable

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from kernel.errors import CalendarUnavailable, Forbidden, InvalidInput, PlatformUnavailable, StepConflict
from rules.forms import signers
from storage.db import utcnow
from storage.subjects import Subject
from tasks import cases, incidents, lifecycle, notify, samples
from tasks.lifecycle import Kind, StepState


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


def kind_of(number: str) -> Kind:
    """Incidents are numbered INC-…; spot-check samples SMP-…; risk items RSK-…; recalls
    RCL-…; publications PUB-…, listings SVL-…, referrals REF-…; cases and complaints
    CASE-… and CMP-…."""
    from tasks import credit, risk

    prefix = number.strip().upper()[:4]
    kinds = {"INC-": incidents.INCIDENTS, "SMP-": samples.SAMPLES, "RSK-": risk.RISKS, "RCL-": risk.RECALLS,
             **credit.KINDS}  # fmt: skip
    return kinds.get(prefix, cases.CASES)


def subject_of_run(number: str | None, record: Callable[[uuid.UUID, dt.datetime], Subject]) -> str:
    """This run's subject: the one the CLI recorded before starting the run (linked to
    it now), or the one `record` makes from the Run form (once per run: it looks the
    run up first), the run then named and tagged after it."""
    from storage.subjects import link_flow_run
    from tasks.runs import rename_run, run_name, subject_tags

    run_id = uuid.UUID(flow_run.id)
    if number:
        link_flow_run(number, run_id)
        return number
    subject = record(run_id, utcnow())
    rename_run(run_id, run_name(subject), subject_tags(subject))
    return subject.number


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


@task(name="publish-status", **RETRY)
def publish_status(number: str, retag: bool = True) -> int:
    """Refresh the subject's timeline, deadlines and progress artifacts on this run,
    and keep the run's `stage:` tag on what it awaits now."""
    from tasks import runs, status

    run_id = uuid.UUID(flow_run.id)
    if retag:
        runs.retag(number, run_id)
    published = status.publish(number, utcnow(), run_id=run_id)
    campaign = samples.campaign_of(number) if number.upper().startswith("SMP-") else None
    if campaign:  # a sample moving moves its campaign's progress
        published += samples.publish_progress(campaign, now=utcnow())
    return published


@task(name="deliver-notifications", **RETRY)
def deliver_notifications(number: str) -> int:
    """Send this subject's due messages now; the watcher retries what fails."""
    result = notify.deliver_due(subject=number)
    if result.retrying:
        get_run_logger().warning("%s: %d message(s) failed and will be retried", number, result.retrying)
    return result.sent


@task(name="open-step", **RETRY)
def open_step(number: str, step: str) -> StepState:
    return lifecycle.open_step(kind_of(number), number, step, now=utcnow())


@task(name="steps-to-visit", **RETRY)
def steps_to_visit(number: str, lifecycle_name: str) -> list[str]:
    """What the run has still to go past, the step to suspend on first among the open."""
    from rules.lifecycles import LIFECYCLES

    return lifecycle.to_visit(kind_of(number), number, LIFECYCLES[lifecycle_name])


@task(name="record-answer", **RETRY)
def record_answer(number: str, step: str, answer: dict[str, Any]) -> dict[str, Any] | None:
    """The answer as recorded, or None when the person's own answer was refused (then
    the walk looks again): a rule the form cannot check, or a step no longer awaited
    (another line ended it), recorded here; or who may answer, recorded already."""
    from tasks.access import refuse

    try:
        return lifecycle.answer(
            kind_of(number), number, step=step, answer=answer, source="ui", now=utcnow(), from_flow=True
        ).answer
    except Forbidden:
        return None
    except (InvalidInput, CalendarUnavailable, StepConflict) as exc:
        by = next((str(answer[k]) for k in signers() if answer.get(k)), "")
        refuse(number, step, str(exc), by=by, now=utcnow())
        return None


@task(name="publish-documents", **RETRY)
def publish_documents(number: str, step: str) -> int:
    """Publish the step's documents as artifacts, then mark the step passed: a run
    killed in between publishes the rest when it starts again, and none twice."""
    kind = kind_of(number)
    reports = lifecycle.consume(kind, number, step, now=utcnow(), mark=False)
    for passed in reports:
        publish_once(
            f"{number.lower()}-{passed.step}", passed.markdown, f"{number} {passed.declared.zh} / {passed.declared.en}"
        )
    lifecycle.consume(kind, number, step, now=utcnow())
    return len(reports)


def publish_once(key: str, markdown: str, description: str) -> None:
    """A Markdown artifact of this run, unless the run already has one by that key."""
    from tasks.runs import write_artifacts

    artifact = dict(key=key, type="markdown", data=markdown, description=description)
    write_artifacts(uuid.UUID(flow_run.id), [artifact], in_place=False)


@task(name="forget-input", **RETRY)
def forget_input(pause_key: str) -> None:
    """Delete the answer Prefect stored for a suspension (a form with personal data:
    the identity number a person typed into the UI must not stay in Prefect's database;
    the step's record keeps what may be kept)."""
    from prefect.input.actions import delete_flow_run_input

    delete_flow_run_input(f"suspended-{pause_key}-response", flow_run_id=uuid.UUID(flow_run.id))
