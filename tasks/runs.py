"""The adapter to Prefect's API outside flows: starting an incident's or a case's
run, scheduling look-back reviews, renaming and retagging runs, resuming them with
an answer, rescheduling dead ones, and writing artifacts.

What Prefect's client raises (httpx errors, Prefect's own) is translated into the
project's error tree here, once (`prefect_api`). Prefect is imported lazily so
read-only commands stay quick to start.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import httpx
from sqlmodel import select

from kernel.errors import PlatformUnavailable, RegflowError, StepConflict
from kernel.settings import get_settings
from kernel.waiting import at_most
from storage import audit
from storage.cases import Case, get_case
from storage.db import session_scope, utcnow
from storage.incidents import Incident
from storage.steps import get_step


def start_incident_run(incident: Incident) -> uuid.UUID:
    """Create the incident's `emergency-response` run and record its id."""
    from storage.subjects import link_flow_run

    run_id = _run(
        get_settings().deployment,
        incident_params(incident),
        name=run_name(incident),
        tags=subject_tags(incident),
        key=run_key(incident),
    )
    link_flow_run(incident.number, run_id)
    return run_id


def start_within(start: Callable[[], uuid.UUID], seconds: float) -> uuid.UUID | None:
    """`start()` given `seconds` to create a run: its id, or None if it is still on its way
    (the watcher creates whatever it leaves undone). Its errors within the wait are raised."""
    return at_most(start, seconds)[1]


def incident_params(incident: Incident) -> dict[str, Any]:
    """The `emergency-response` run's parameters for an incident already recorded."""
    return dict(
        plan=incident.plan_key,
        level=incident.level,
        title=incident.title,
        location=incident.location,
        authority=incident.authority_code,
        occurred_at=incident.occurred_at.isoformat(),
        reporter=incident.reporter,
        incident_number=incident.number,
    )


def start_case_run(case: Case) -> uuid.UUID:
    """Create the `enforcement-case` (or `complaint-handling`) run of a case and record its id."""
    from storage.subjects import link_flow_run

    settings = get_settings()
    own = {
        "sample": settings.sample_deployment,
        "risk": settings.risk_deployment,
        "recall": settings.recall_deployment,
        "publication": settings.publication_deployment,
        "listing": settings.listing_deployment,
        "referral": settings.referral_deployment,
    }
    if case.kind in own:
        deployment, params = own[case.kind], dict(number=case.number)
    else:
        deployment = settings.case_deployment if case.kind == "case" else settings.complaint_deployment
        params = dict(
            title=case.title, party=case.party, source=case.source, authority=case.authority_code, number=case.number
        )
    run_id = _run(
        deployment,
        params,
        name=run_name(case),
        tags=subject_tags(case),
        key=f"regflow-{case.kind}:{case.number}:{case.received_at.isoformat()}",
    )
    link_flow_run(case.number, run_id)
    return run_id


def start_campaign_run(key: str, name: str, authority: str) -> uuid.UUID:
    """Create a drawn campaign's `spot-check-campaign` run and record its id."""
    from storage.campaigns import link_flow_run

    tags = ["regflow", f"authority:{authority}", "kind:campaign", f"campaign:{key}"]
    run_id = _run(get_settings().campaign_deployment, {"key": key}, name=f"抽查 {key} {name}", tags=tags,
                  key=f"regflow-campaign:{key}")  # fmt: skip
    link_flow_run(key, run_id)
    return run_id


def schedule_lookback_run(number: str) -> uuid.UUID | None:
    """The look-back review as a real scheduled run of `lookback-review` at the case's
    `lookback_at`, so supervisors see it among upcoming runs. None if none is due."""
    from storage.db import utcnow
    from tasks.cases import lookback_scheduled

    with session_scope() as session:
        case = get_case(session, number=number)
        if case is None or case.lookback_at is None:
            return None
        if case.lookback_run_id is not None:
            return case.lookback_run_id
        when, tags = case.lookback_at, [f"authority:{case.authority_code}", "kind:lookback", f"case:{case.number}"]
        name, key = f"回头看 {case.number} {case.title}", f"regflow-lookback:{case.number}:{case.closed_at.isoformat()}"
    run_id = _run(
        get_settings().lookback_deployment, {"case_number": number}, name=name, tags=tags, key=key, scheduled_time=when
    )
    lookback_scheduled(number, run_id, now=utcnow())
    return run_id


def schedule_end_run(number: str, ends_at: dt.datetime) -> uuid.UUID:
    """The end of a publication's or a listing's period as a real scheduled run of
    `credit-expiry`, so supervisors see it among upcoming runs."""
    from tasks.credit import end_scheduled

    with session_scope() as session:
        case = get_case(session, number=number)
        tags = ["regflow", f"authority:{case.authority_code}", f"kind:{case.kind}-end", f"subject:{number}"]
        name = f"期满 {number} {case.party}"
    run_id = _run(get_settings().expiry_deployment, {"number": number}, name=name, tags=tags,
                  key=f"regflow-end:{number}:{ends_at.isoformat()}", scheduled_time=ends_at)  # fmt: skip
    end_scheduled(number, run_id, now=utcnow())
    return run_id


CREDENTIALS = "Prefect API refused our credentials (HTTP 401): set PREFECT_API_AUTH_STRING to the server's auth string"


@contextmanager
def prefect_api(doing: str, *, missing: str | None = None) -> Iterator[None]:
    """Talk to Prefect inside this: what its client raises leaves as the project's
    errors (`translate`)."""
    try:
        yield
    except Exception as exc:
        mapped = translate(exc, doing=doing, missing=missing)
        if mapped is None:
            raise
        raise mapped from exc


def translate(exc: Exception, *, doing: str = "answer", missing: str | None = None) -> RegflowError | None:
    """What Prefect's client raised, as the project's error (None: not Prefect's).
    Refused credentials and an unreachable or failing API are PlatformUnavailable
    (exit 6); a request Prefect refused says what Prefect said; an object it does not
    have says `missing`, what to do about it."""
    from prefect.exceptions import ObjectNotFound

    if isinstance(exc, ObjectNotFound):
        return PlatformUnavailable(missing or f"Prefect has no such object ({doing})")
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status in (401, 403):
            return PlatformUnavailable(CREDENTIALS)
        if status < 500:  # reachable, but it refused: say what it said
            detail = exc.response.json().get("detail", "") if exc.response.content else ""
            return RegflowError(f"Prefect refused to {doing}: {str(detail)[:300]}")
        return PlatformUnavailable(f"Prefect API unavailable: HTTP {status}")
    if isinstance(exc, (httpx.HTTPError, OSError, RuntimeError)):  # RuntimeError: the client gave up connecting
        return PlatformUnavailable(f"Prefect API unreachable: {type(exc).__name__}")
    return None


def _run(
    deployment: str, params: dict[str, Any], *, name: str, tags: list[str], key: str, scheduled_time=None
) -> uuid.UUID:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    from tasks.events import prefect_configured

    if not prefect_configured():  # else Prefect's client would start a throwaway server of its own
        raise PlatformUnavailable("no Prefect API is configured (PREFECT_API_URL)")
    missing = f"deployment {deployment!r} not found: deploy with `regflow deploy`"
    with prefect_api(f"create a run of {deployment}", missing=missing):
        with temporary_settings({PREFECT_CLIENT_MAX_RETRIES: get_settings().run_start_retries}):
            run = run_deployment(
                deployment,
                parameters=params,
                timeout=0,
                as_subflow=False,
                flow_run_name=name[:200],
                tags=tags,
                idempotency_key=key,
                scheduled_time=scheduled_time,
            )
    return run.id


def subject_tags(subject: Incident | Case, awaited: list[str] | None = None) -> list[str]:
    """The run tags a supervisor filters by: authority, level or kind, the stage it
    awaits (kept current), every step open on its lines (`awaits:`; by default those
    open at its start), and `drill` on an exercise."""
    if awaited is None:
        awaited = [s.name for s in subject.lifecycle.open_steps({})] if subject.is_open else []
    awaits = [f"awaits:{name}" for name in awaited]
    if isinstance(subject, Case):
        return [f"kind:{subject.kind}", f"authority:{subject.authority_code}", f"stage:{subject.stage}", *awaits]
    tags = [f"level:{subject.level}", f"plan:{subject.plan_key}", f"authority:{subject.authority_code}"]
    return [*tags, f"stage:{subject.stage}", *awaits] + (["drill"] if subject.drill else [])


def run_name(subject: Incident | Case) -> str:
    from rules.drills import DRILL_MARK

    return (DRILL_MARK if getattr(subject, "drill", False) else "") + f"{subject.number} {subject.title}"


def rename_run(run_id: uuid.UUID, name: str | None, tags: list[str]) -> None:
    """Name a run and set its tags; a `key:value` tag replaces the run's tags of that key
    (`level:`, `stage:`), and a `stage:` tag the `awaits:` tags too."""
    from prefect.client.orchestration import get_client

    with prefect_api(f"rename flow run {run_id}"), get_client(sync_client=True) as client:
        current = client.read_flow_run(run_id)
        prefixes = {t.split(":", 1)[0] for t in tags if ":" in t}
        if "stage" in prefixes:
            prefixes.add("awaits")
        kept = [t for t in current.tags if t.split(":", 1)[0] not in prefixes]
        merged = list(dict.fromkeys([*kept, *tags]))
        if name is None and merged == current.tags:
            return
        client.update_flow_run(run_id, name=name[:200] if name else None, tags=merged)


def retag(number: str, run_id: uuid.UUID | None = None) -> None:
    """A subject's run (or `run_id`) tagged as the subject stands now: its stage and
    open steps, after each step, an answer on another line or a re-grading."""
    from storage.subjects import subject_for
    from tasks.lifecycle import awaited

    with session_scope() as session:
        subject = subject_for(session, number)
        run_id, tags = run_id or subject.flow_run_id, subject_tags(subject, awaited(session, subject))
    if run_id is not None:
        rename_run(run_id, None, tags)


def run_key(incident: Incident) -> str:
    """Identifies the incident's run across retries. The number alone is not enough:
    another regflow database (a restore, a second instance) sharing the Prefect
    server numbers its incidents from 1 too."""
    return f"regflow-incident:{incident.number}:{incident.triggered_at.isoformat()}"


def resume_when_suspended(
    flow_run_id: uuid.UUID, number: str, step: str, answer: dict[str, Any], *, wait_seconds: float
) -> str:
    """Hand a recorded answer to the run once it is suspended on `step`.

    Returns "resumed", "consumed" (the run took the answer from the database by
    itself), or "pending" (the run did not get there in time; the watcher will
    resume it when it does).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL

    deadline = time.monotonic() + wait_seconds
    # Not found: another Prefect server than the one that runs it.
    missing = (
        f"flow run {flow_run_id} is not on the Prefect API at {PREFECT_API_URL.value()}: is PREFECT_API_URL right?"
    )
    with prefect_api(f"resume {number}", missing=missing), get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(flow_run_id).state
            key = state.state_details.pause_key if state is not None else None
            if state is not None and state.type == StateType.PAUSED and key and key.split("-again-")[0] == step:
                result = client.resume_flow_run(flow_run_id, run_input=answer)
                if result.status.value == "ACCEPT":
                    return "resumed"
                now_state = client.read_flow_run(flow_run_id).state
                if now_state is not None and now_state.type != StateType.PAUSED:
                    # Resumed meanwhile by the watcher's hand-over (or the UI): the run
                    # takes the recorded answer, which wins over any other.
                    return "resumed"
                reason = getattr(result.details, "reason", "") or "refused"
                # Prefect sets Paused before it saves the form's schema: just suspended, try again.
                if "schema not found" not in reason or time.monotonic() > deadline:
                    raise StepConflict(f"Prefect refused to resume {number}: {reason}")
            if _consumed(number, step):
                return "consumed"
            if state is not None and state.type == StateType.PAUSED and key and _awaits_a_person(number, key):
                if not _still_open(number, key):  # this answer ended the step it waits on (handling ended)
                    _walk_again(client, flow_run_id, number, key)
                return "pending"  # suspended on another line's step: the run takes this one when it gets there
            if state is not None and state.is_final() or time.monotonic() > deadline:
                return "pending"
            time.sleep(0.3)


def hand_over(result, *, wait_seconds: float | None = None) -> str:
    """After an answer is recorded: resume the run waiting for it ("resumed"), or find it
    took the answer itself ("consumed"); else ("pending") the run takes it when it gets
    there, and its `awaits:` tags say what is open now. PlatformUnavailable if Prefect
    is away (the watcher hands it over later)."""
    wait = get_settings().resume_wait_seconds if wait_seconds is None else wait_seconds
    if result.flow_run_id is None:
        return "pending"
    outcome = resume_when_suspended(result.flow_run_id, result.number, result.step, result.answer, wait_seconds=wait)
    if outcome == "pending":
        with contextlib.suppress(PlatformUnavailable):  # else the tags follow when the run moves on
            retag(result.number)
    return outcome


def _awaits_a_person(number: str, pause_key: str) -> bool:
    """The step a run is suspended on has no answer yet."""
    with session_scope() as session:
        row = get_step(session, subject=number.strip().upper(), name=pause_key.split("-again-")[0])
        return row is None or row.status != "answered"


def _still_open(number: str, pause_key: str) -> bool:
    from storage.subjects import subject_for
    from tasks.lifecycle import awaited

    with session_scope() as session:
        subject = subject_for(session, number.strip().upper())
        return subject is not None and pause_key.split("-again-")[0] in awaited(session, subject)


def release_runs(numbers: list[str]) -> int:
    """Runs of subjects that ended outside them (a publication withdrawn, a referral
    ended with it) while suspended on a step: they walk on to their end. Returns how many."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType

    with session_scope() as session:
        runs = [(c.number, c.flow_run_id) for n in numbers if (c := get_case(session, number=n)) and c.flow_run_id]
    released = 0
    with prefect_api("release ended runs"), get_client(sync_client=True) as client:
        for number, run_id in runs:
            state = client.read_flow_run(run_id).state
            if state is not None and state.type == StateType.PAUSED and state.state_details.pause_key:
                _walk_again(client, run_id, number, state.state_details.pause_key)
                released += 1
    return released


def _walk_again(client, flow_run_id: uuid.UUID, number: str, pause_key: str) -> None:
    """A run suspended on a step no line awaits any more (a progress report once
    handling has ended) would wait for ever: schedule it again, and it walks on from
    the top to what is open now (every task is idempotent by its own key)."""
    from prefect.states import Scheduled

    step = pause_key.split("-again-")[0]
    client.set_flow_run_state(flow_run_id, Scheduled(message=f"regflow: {step} is no longer awaited"), force=True)
    with session_scope() as session:
        audit.record(session, at=utcnow(), actor="regflow", action="run.rewalked", subject=number.strip().upper(),
                     flow_run_id=str(flow_run_id), step=step)  # fmt: skip


def _consumed(number: str, step: str) -> bool:
    with session_scope() as session:
        row = get_step(session, subject=number.strip().upper(), name=step)
        return row is not None and row.consumed_at is not None


def recover_crashed_runs(now: dt.datetime | None = None, *, limit: int = 50) -> list[tuple[str, uuid.UUID, str]]:
    """Put dead runs of open incidents and cases back in the queue.

    A flow-run process killed mid-lifecycle (OOM, SIGKILL, a machine lost) is marked
    Crashed by its worker, and nothing in Prefect runs it again; if its worker died
    too, the run stays Running (or Pending, if it died starting) for ever. All are
    found here: Crashed runs, Pending runs that never started, and Running runs whose
    process stopped stamping its heartbeat (tasks.prefect_tasks.keep_alive). Every
    task of our flows is idempotent by its own key, so such a run simply starts again
    from the top: scheduling it again hands it to a live worker. Runs whose subject
    is closed are left alone. Returns (number, run id, why)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    from storage.heartbeats import seen

    now, recovered = now or utcnow(), []
    with prefect_api("reschedule dead runs"), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=limit, flow_run_filter=_live_regflow_runs())
        with session_scope() as session:
            beats = seen(session, names=[f"flowrun:{r.id}" for r in runs])
        for run in runs:
            why = _dead(run, beats.get(f"flowrun:{run.id}"), now)
            number = _open_subject(run.id) if why else None
            if number is None:
                continue
            client.set_flow_run_state(run.id, Scheduled(message=f"regflow: rescheduled, {why}"), force=True)
            with session_scope() as session:
                audit.record(
                    session,
                    at=now,
                    actor="watcher",
                    action="run.recovered",
                    subject=number,
                    flow_run_id=str(run.id),
                    why=why,
                )
            recovered.append((number, run.id, why))
    return recovered


def _live_regflow_runs():
    """Runs of our deployments that Prefect thinks are alive, or that crashed."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType

    alive = FlowRunFilterStateType(any_=[StateType.CRASHED, StateType.RUNNING, StateType.PENDING])
    return FlowRunFilter(state=FlowRunFilterState(type=alive), tags=FlowRunFilterTags(all_=["regflow"]))


def _dead(run, last_beat, now) -> str | None:
    """Why this run is dead, or None while it may be alive. A process beats every 5 s;
    silence for `run_silent_seconds` means it is gone, and a run gets
    `run_start_seconds` to start its process (import, connect) before it must beat."""
    from prefect.client.schemas.objects import StateType

    settings = get_settings()
    if run.state is None:
        return None
    since = (now - run.state.timestamp).total_seconds()
    if run.state.type == StateType.CRASHED:
        return "it had crashed"
    if run.state.type == StateType.PENDING:
        return f"its process never started ({int(since)} s pending)" if since > settings.run_start_seconds else None
    if last_beat is None or last_beat < run.state.timestamp:  # this process has not beaten yet
        return "its process never reported" if since > settings.run_start_seconds else None
    if (now - last_beat).total_seconds() > settings.run_silent_seconds:
        return f"its process stopped ({int((now - last_beat).total_seconds())} s without a heartbeat)"
    return None


def _open_subject(run_id: uuid.UUID) -> str | None:
    from storage.cases import case_by_run
    from storage.incidents import incident_by_run

    with session_scope() as session:
        subject = incident_by_run(session, flow_run_id=run_id) or case_by_run(session, flow_run_id=run_id)
        if subject is None:  # a look-back run: its case names it, not by flow_run_id
            subject = session.exec(select(Case).where(Case.lookback_run_id == run_id)).first()
        return subject.number if subject is not None and subject.status != "closed" else None


def write_artifacts(run_id: uuid.UUID, artifacts: list[dict[str, Any]], *, in_place: bool = True) -> None:
    """Artifacts of a run, each a dict of ArtifactCreate's fields. `in_place`: one of
    each key on the run, always the latest (a status page); else an artifact already
    there by that key is left as it is (a document, published once)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    keys = [a["key"] for a in artifacts]
    with prefect_api(f"write artifacts of flow run {run_id}"), get_client(sync_client=True) as client:
        existing = {
            a.key: a.id
            for a in client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]), key=ArtifactFilterKey(any_=keys)
                )
            )
        }
        for artifact in artifacts:
            if artifact["key"] not in existing:
                client.create_artifact(ArtifactCreate(flow_run_id=run_id, **artifact))
            elif in_place:
                client.update_artifact(
                    existing[artifact["key"]],
                    ArtifactUpdate(data=artifact["data"], description=artifact.get("description")),
                )
