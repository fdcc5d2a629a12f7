"""Every table module, imported once so `SQLModel.metadata` knows them all."""

from storage import (audit, authorities, cases, deadlines, drills, escalations, heartbeats, incidents,  # noqa: F401
                     notifications, plans, steps)
from sqlmodel import SQLModel

metadata = SQLModel.metadata
