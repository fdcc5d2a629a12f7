"""What owns a deadline, a step or a document: an incident or a case, by its number."""

from __future__ import annotations

from sqlmodel import Session

from storage.cases import Case, get_case
from storage.incidents import Incident, get_incident

Subject = Incident | Case


def subject_for(session: Session, number: str) -> Subject | None:
    if number.strip().upper().startswith("INC-"):
        return get_incident(session, number=number)
    return get_case(session, number=number)


def run_for(subject: Subject, step: str):
    """The flow run that waits for this step: a case's look-back step is answered in
    its own scheduled run, every other step in the subject's run."""
    return getattr(subject, "lookback_run_id", None) if step == "lookback" else subject.flow_run_id


def link_flow_run(number: str, flow_run_id) -> None:
    """Record the flow run of an incident or case (once: the first run wins)."""
    from kernel.errors import NotFound
    from storage.db import session_scope

    with session_scope() as session:
        subject = subject_for(session, number)
        if subject is None:
            raise NotFound(f"no incident or case {number.strip()!r}")
        if subject.flow_run_id is None:
            subject.flow_run_id = flow_run_id
            session.add(subject)
