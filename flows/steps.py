"""Walking a lifecycle inside a flow run, the same for every flow.

Each human step suspends the run (no process is held) with the step's form, under a
key deterministic per logical wait (the step's name; `<step>-again-<n>` after a
refused answer). A resumed run starts again from the top: the steps already
answered are read from the database and walked past.
"""

from __future__ import annotations

from prefect.flow_runs import suspend_flow_run
from pydantic import ValidationError

from flows.forms import run_input
from rules.lifecycle import Lifecycle, Step
from tasks.prefect_tasks import (
    deliver_notifications,
    forget_input,
    open_step,
    publish_documents,
    publish_status,
    record_answer,
    steps_to_visit,
)


def run_form(parameters: dict, *, but: str) -> dict:
    """What a person entered on a deployment's Run form: a flow's parameters, read
    with `locals()` first thing, less the number the CLI sets for what it recorded."""
    return {name: value for name, value in parameters.items() if name != but}


def walk(number: str, lifecycle: Lifecycle, *, retag: bool = True, after=None) -> None:
    """Every step of the lifecycle, on each of its lines, until none is open: what was
    answered meanwhile is gone past (its documents published), then the run suspends on
    the first open step. `retag=False` in a run that is not the subject's own (a
    look-back review). `after(number)` runs after each step (starting the runs of what
    an answer opened)."""
    while todo := steps_to_visit(number, lifecycle.name):
        await_step(number, lifecycle.step(todo[0]), retag=retag)
        deliver_notifications(number)
        if after is not None:
            after(number)
    publish_status(number, retag=retag)


def await_step(number: str, step: Step, *, retag: bool = True) -> None:
    """One human step: wait for its answer unless it was already given (from the CLI,
    or before this re-run), then publish its documents. A refused answer (a rule the
    form cannot check, who may answer, a step another line ended) is on record, and the
    walk looks again at what is open."""
    state = open_step(number, step.name)
    if state.status != "answered":
        publish_status(number, retag=retag)  # what it waits for, on the run's tags and artifacts
        form = run_input(step.form)
        try:
            given = suspend_flow_run(
                wait_for_input=form.with_initial_data(description=state.prompt), key=state.pause_key, timeout=None
            )
        except ValidationError:  # an answer the form refuses: what a person typed must not stay either
            if form.personal:
                forget_input(state.pause_key)
            raise
        recorded = record_answer(number, step.name, given.model_dump(mode="json"))
        if given.personal:  # Prefect keeps what the UI sent: only the record's version may stay
            forget_input(state.pause_key)
        if recorded is None:
            return
    publish_documents(number, step.name)
