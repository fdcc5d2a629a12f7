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
