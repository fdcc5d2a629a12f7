"""The append-only audit log: one row per state change, in the change's transaction,
made tamper-evident by a hash chain.

Rows are written by every transaction at once, so they are chained afterwards: the
watcher's sealer takes unsealed rows in id order, gives each the next chain number
(`seq`), the previous row's hash and its own (SHA-256 over the previous hash and the
row's canonical content), and moves the chain head (`audit_chain`, one row, locked
while sealing, so two watchers cannot fork it). `verify` walks the chain and reports
the first row altered, missing or out of place. A row is only covered once sealed
(within a watcher cycle or two of its commit).

A chain can be rewritten whole: alter a row, recompute every hash after it, move the
head. So each head the sealer reaches is also appended to an anchor file outside the
database (beside the backups, and copied into each), and `verify` checks the chain
against it: a row altered, deleted or re-chained after it was anchored is found. The
head is also emitted as a Prefect event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
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
    # Names this chain in the anchor file, which may hold other databases' heads too.
    chain_id: str | None = Field(default=None, max_length=32)


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
    if head.chain_id is None:
        head.chain_id = uuid.uuid4().hex
    session.add(head)
    return len(rows), head


def anchor(path: Path, *, chain: str, seq: int, digest: str, at: dt.datetime) -> None:
    """Append the chain head to the anchor file: one JSON line, on disk when this returns.
    Opened for appending only: nothing here rewrites what the file says."""
    _append(path, _line(chain, seq, digest, at.isoformat()))


def _line(chain: str | None, seq: int, digest: str, at: str) -> str:
    """One head as the anchor file holds it: a JSON line (Anchors.read reads it back)."""
    return json.dumps({"chain": chain, "seq": seq, "hash": digest, "at": at}, separators=(",", ":")) + "\n"


def _append(path: Path, text: str) -> None:
    """Whole lines at the end of the file, on disk when this returns. A line a crash or a
    full disk cut short is ended first, so it stays one unreadable line of its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            text = "\n" + text
        data = text.encode("ascii")
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Anchors:
    """What an anchor file says of one chain: row number -> (hash, when anchored)."""

    path: Path
    chain: str | None
    heads: dict[int, tuple[str, str]]
    others: int = 0  # lines of other chains (another database's) in the same file
    unreadable: int = 0  # lines a crash or a full disk cut short (or someone garbled): no claim
    problem: str | None = None  # the file contradicts itself

    @classmethod
    def read(cls, path: Path, chain: str | None, *, up_to: int | None = None) -> Anchors:
        found = cls(path, chain, {})
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return found
        # A line that does not read is no claim about the chain (a write cut short);
        # it is counted and shown. Deleting lines could hide heads as well, which is why
        # the anchor is kept append-only and copied into every backup.
        for line in text.split("\n"):
            if not line:
                continue
            try:
                entry = json.loads(line)
                owner, seq, digest, at = str(entry["chain"]), int(entry["seq"]), str(entry["hash"]), str(entry["at"])
            except (ValueError, KeyError, TypeError):
                found.unreadable += 1
                continue
            if owner != chain:
                found.others += 1
                continue
            if up_to is not None and seq > up_to:
                continue
            if found.heads.get(seq, (digest,))[0] != digest:
                found.problem = f"the anchor file {path} gives chain row #{seq} two hashes: it was edited"
                return found
            found.heads[seq] = (digest, at)
        return found

    def append_to(self, path: Path) -> None:
        if self.heads:
            _append(path, self.lines())

    def lines(self) -> str:
        return "".join(_line(self.chain, seq, digest, at) for seq, (digest, at) in sorted(self.heads.items()))


@dataclass
class Verdict:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    unsealed: int
    problem: str | None = None
    anchor_file: str | None = None
    anchored_seq: int = 0  # the newest anchored row the chain was checked against
    anchor_unreadable: int = 0  # lines of the anchor file that do not read (cut short)


def current_head(session: Session) -> AuditChain:
    """The chain head as it stands (read-only)."""
    return _head(session, lock=False)


def verify(session: Session, *, anchors: Anchors | None = None, batch: int = 5000) -> Verdict:
    """Walk the chain in order and report the first row altered, deleted or reordered,
    or, with `anchors` (read for this chain's id), a chain that no longer holds a head
    it once had."""
    anchored = anchors.heads if anchors is not None else {}
    head = _head(session, lock=False)
    unsealed = session.execute(
        select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))
    ).scalar_one()
    prev, expected, problem, last_match = GENESIS, 1, None, 0
    while problem is None:
        rows = list(
            session.exec(
                select(AuditEvent).where(AuditEvent.seq >= expected).order_by(AuditEvent.seq).limit(batch)
            ).all()
        )
        for row in rows:
            problem = _fault(row, expected=expected, prev=prev) or _unanchored(row, anchored, last_match)
            if problem is not None:
                break
            if row.seq in anchored:
                last_match = row.seq
            prev, expected = row.hash, expected + 1
        if len(rows) < batch:
            break
    if problem is None and (head.seq != expected - 1 or head.hash != prev):
        problem = f"the chain ends at #{expected - 1} but its head says #{head.seq}: the last rows were deleted"
    newest = max(anchored, default=0)
    if problem is None and newest > expected - 1:
        problem = (
            f"the anchor file records chain row #{newest} (anchored {anchored[newest][1]}), but the chain ends at"
            f" #{expected - 1}: rows were deleted, or the database was restored from an older backup"
        )
    if problem is None and anchors is not None:
        problem = anchors.problem
    if problem is None and anchors is not None and anchors.others and not anchored and head.seq:
        problem = (
            f"the anchor file {anchors.path} holds no head of this chain ({head.chain_id}), only other chains':"
            " the chain was replaced, or the file belongs to another database"
        )
    return Verdict(
        problem is None,
        expected - 1,
        head.seq,
        head.hash,
        unsealed,
        problem,
        str(anchors.path) if anchors is not None else None,
        min(newest, expected - 1),
        anchors.unreadable if anchors is not None else 0,
    )


def _unanchored(row: AuditEvent, anchored: dict[int, tuple[str, str]], last_match: int) -> str | None:
    """A row consistent with the chain before it, yet not the row that was anchored: the
    chain was re-hashed from some row after the last anchor that still matches."""
    if row.seq not in anchored or anchored[row.seq][0] == row.hash:
        return None
    since = f"after chain row #{last_match}, which still matches" if last_match else "from its start"
    return (
        f"chain row #{row.seq} (id {row.id}, {row.action} {row.subject}) is not the row anchored"
        f" {anchored[row.seq][1]}: the chain was rewritten {since}"
    )


def _fault(row: AuditEvent, *, expected: int, prev: str) -> str | None:
    """What is wrong with the row found where chain row `expected` should be, if anything."""
    if row.seq != expected:
        return f"chain row #{expected} is missing (deleted); the next one is #{row.seq} (id {row.id})"
    if row.prev_hash != prev or digest(prev, row, row.seq) != row.hash:
        return f"audit row id {row.id} (chain #{row.seq}, {row.action} {row.subject}) was altered"
    return None
