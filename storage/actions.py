"""Action items a post-incident review assigns: each owned by an authority and a
person, due on a day, tracked by a deadline of the incident (`action-<seq>`)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage import authorities  # noqa: F401  the table its foreign key names, mapped with it
from storage.db import UTCDateTime


class ActionItem(SQLModel, table=True):
    __tablename__ = "action_item"
    __table_args__ = (sa.UniqueConstraint("subject", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(max_length=32, index=True)  # the incident it came from
    seq: int  # its number within the incident: its deadline is action-<seq>
    what: str = Field(max_length=200)
    authority_code: str = Field(foreign_key="authority.code", max_length=32, index=True)
    owner: str = Field(max_length=100)
    due_on: dt.date
    status: str = Field(default="open", max_length=12, index=True)  # open | done
    created_at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False))
    done_at: dt.datetime | None = Field(default=None, sa_column=sa.Column(UTCDateTime))
    done_by: str | None = Field(default=None, max_length=100)
    note: str = Field(default="", max_length=2000)

    @property
    def deadline(self) -> str:
        return f"action-{self.seq}"


def list_actions(
    session: Session, *, open_only: bool = False, authority: str | None = None, subject: str | None = None
) -> list[ActionItem]:
    query = select(ActionItem).order_by(ActionItem.due_on, ActionItem.id)
    if subject is not None:
        query = query.where(ActionItem.subject == subject)
    if open_only:
        query = query.where(ActionItem.status == "open")
    if authority is not None:
        query = query.where(ActionItem.authority_code == authority)
    return list(session.exec(query).all())
