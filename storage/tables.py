"""Every table module, imported once so `SQLModel.metadata` knows them all."""

from storage import audit, authorities, cases, deadlines, escalations, incidents, notifications, plans, steps  # noqa: F401
from sqlmodel import SQLModel

metadata = SQLModel.metadata
