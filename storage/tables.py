"""Every table module, imported once so `SQLModel.metadata` knows them all."""

from sqlmodel import SQLModel

from storage import (
    incidents,  # noqa: F401
)

metadata = SQLModel.metadata
