"""The append-only audit log: one row per state change, in the change's transaction,
made tamper-evident by a hash chain.

Rows are written by every transaction at once, so they are chained afterwards: the
watcher's sealer takes unsealed rows in id order, gives each the next chain number
(`seq`), the previous row's hash and its own (SHA-256 over the previous hash and the
row's canonical content), and moves the chain head (`audit_chain`, one row, locked
while sealing, so two watchers cannot fork it). `verify` walks the chain and reports
the first row altered, missing or out of place. A row is only covered once sealed
(within a watcher cycle or two of its commit); anchor the head hash elsewhere (it is
emitted as a Prefect event when it moves) to detect a rewrite of the whole chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, Session, SQLModel, select

from storage.db import UTCDateTime, json_column, upsert_insert

GENESIS = "0" * 64


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (sa.Index("ix_audit_event_seq", "seq", unique=True),)
    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(sa_column=sa.Column(UTCDateTime, nullable=False, index=True))
    actor: str = Field(max_length=100)
    action: str = Field(max_length=64)
    subject: str = Field(max_length=64, index=True)  # e.g. an incident number
    detail: dict[str, Any] = Field(sa_column=json_column())
    seq: int | None = Field(default=None)  # place in the chain, once sealed
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)


class AuditChain(SQLModel, table=True):
    """The chain's head: the last sealed row's number and hash (one row, id 1)."""

    __tablename__ = "audit_chain"
    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default=GENESIS, max_length=64)


def record(session: Session, *, at: dt.datetime, actor: str, action: str, subject: str, **detail: Any) -> AuditEvent:
    event = AuditEvent(at=at, actor=actor, action=action, subject=subject, detail=detail)
    session.add(event)
    return event


def events_for(session: Session, *, subject: str, action: str | None = None) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.subject == subject)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    return list(session.exec(stmt.order_by(AuditEvent.at, AuditEvent.id)).all())


def digest(prev_hash: str, event: AuditEvent, seq: int) -> str:
    """The row's hash: SHA-256 of the previous hash and the row's canonical content."""
    content = json.dumps(
        {
            "seq": seq,
            "id": event.id,
            "at": event.at.isoformat(),
            "actor": event.actor,
            "action": event.action,
            "subject": event.subject,
            "detail": event.detail,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256((prev_hash + content).encode("utf-8")).hexdigest()


def _head(session: Session, *, lock: bool) -> AuditChain:
    """The chain head, created on first use; with `lock`, held until the transaction ends."""
    session.execute(
        upsert_insert(session, AuditChain)
        .values(id=1, seq=0, hash=GENESIS)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    stmt = select(AuditChain).where(AuditChain.id == 1)
    if lock:
        stmt = stmt.with_for_update()
    return session.exec(stmt).one()


def seal(session: Session, *, limit: int = 1000) -> tuple[int, AuditChain]:
    """Chain the unsealed rows, oldest id first; returns how many and the new head."""
    head = _head(session, lock=True)
    rows = list(
        session.exec(select(AuditEvent).where(AuditEvent.seq.is_(None)).order_by(AuditEvent.id).limit(limit)).all()
    )
    for row in rows:
        seq = head.seq + 1
        row.seq, row.prev_hash, row.hash = seq, head.hash, digest(head.hash, row, seq)
        head.seq, head.hash = seq, row.hash
        session.add(row)
    session.add(head)
    return len(rows), head


@dataclass
class Verdict:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    unsealed: int
    problem: str | None = None


def verify(session: Session, *, batch: int = 5000) -> Verdict:
    """Walk the chain in order and report the first row altered, deleted or reordered."""
    head = _head(session, lock=False)
    unsealed = session.execute(
        select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))
    ).scalar_one()
    prev, expected, problem = GENESIS, 1, None
    while problem is None:
        rows = list(
            session.exec(
                select(AuditEvent).where(AuditEvent.seq >= expected).order_by(AuditEvent.seq).limit(batch)
            ).all()
        )
        for row in rows:
            problem = _fault(row, expected=expected, prev=prev)
            if problem is not None:
                break
            prev, expected = row.hash, expected + 1
        if len(rows) < batch:
            break
    if problem is None and (head.seq != expected - 1 or head.hash != prev):
        problem = f"the chain ends at #{expected - 1} but its head says #{head.seq}: the last rows were deleted"
    return Verdict(problem is None, expected - 1, head.seq, head.hash, unsealed, problem)


def _fault(row: AuditEvent, *, expected: int, prev: str) -> str | None:
    """What is wrong with the row found where chain row `expected` should be, if anything."""
    if row.seq != expected:
        return f"chain row #{expected} is missing (deleted); the next one is #{row.seq} (id {row.id})"
    if row.prev_hash != prev or digest(prev, row, row.seq) != row.hash:
        return f"audit row id {row.id} (chain #{row.seq}, {row.action} {row.subject}) was altered"
    return None
