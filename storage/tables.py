"""Every table module, imported once so `SQLModel.metadata` knows them all (Alembic's
autogenerate compares the database with it: a module left out reads as tables to drop)."""

from sqlmodel import SQLModel

from storage import (  # noqa: F401
    actions,
    audit,
    authorities,
    campaigns,
    cases,
    credit,
    deadlines,
    drills,
    escalations,
    heartbeats,
    incidents,
    notifications,
    plans,
    registers,
    risk,
    rosters,
    samples,
    steps,
    supervision,
)

metadata = SQLModel.metadata
