"""Every table module, imported once so `SQLModel.metadata` knows them all."""

from sqlmodel import SQLModel

from storage import (
    actions,  # noqa: F401
    incidents,  # noqa: F401
)

metadata = SQLModel.metadata
