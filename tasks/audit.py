"""Sealing the audit log and anchoring its head outside the database (storage/audit.py)."""

from __future__ import annotations

import datetime as dt
import logging

from kernel.settings import get_settings
from storage.audit import anchor, seal
from storage.db import session_scope
from tasks.events import emit_audit_head

log = logging.getLogger("regflow.audit")


def seal_and_anchor(now: dt.datetime) -> tuple[int, int]:
    """Chain the rows written since the last seal, then append the new head to the anchor
    file and emit it as a Prefect event; returns (rows sealed, head number). A head that
    could not be anchored (a full disk) is logged: the next seal anchors a later one."""
    with session_scope() as session:
        count, head = seal(session)
        seq, digest, chain = head.seq, head.hash, head.chain_id
    if count:
        path = get_settings().audit_anchor_path
        try:
            anchor(path, chain=chain, seq=seq, digest=digest, at=now)
        except OSError as exc:
            log.error("audit head #%d not anchored in %s: %s", seq, path, exc.strerror or type(exc).__name__)
        emit_audit_head(seq, digest)
    return count, seq
