"""The audit log is tamper-evident: a hash chain sealed after commit, verified by
`regflow audit verify`, on SQLite and PostgreSQL. Rows come from real state changes
(triggers, answers), written by several threads while two sealers race; then rows
are altered and deleted behind regflow's back, as an intruder with database access
would, and verify must name the first one."""

from __future__ import annotations

import json
import threading

import sqlalchemy as sa

from storage.db import session_scope
from tests.conftest import cli, incident_on_site


def _trigger(i: int) -> str:
    return incident_on_site(f"审计 {i}")


def _seal_until_done() -> None:
    from storage.audit import seal

    while True:
        with session_scope() as session:
            count, _ = seal(session, limit=7)
        if count == 0:
            return


def _verify() -> tuple[int, dict, str]:
    result = cli("audit", "verify", "--json")
    return result.code, json.loads(result.out), result.err


def test_concurrent_writers_and_racing_sealers_make_one_unbroken_chain(own_database):
    from storage.audit import AuditEvent

    errors: list[BaseException] = []

    def guarded(fn, *args):
        try:
            fn(*args)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    writers = [threading.Thread(target=guarded, args=(_trigger, i)) for i in range(8)]
    sealers = [threading.Thread(target=guarded, args=(_seal_until_done,)) for _ in range(2)]
    for thread in writers + sealers:
        thread.start()
    for thread in writers + sealers:
        thread.join(timeout=120)
    assert errors == []
    _seal_until_done()

    code, verdict, _ = _verify()
    with session_scope() as session:
        total = session.execute(sa.select(sa.func.count()).select_from(AuditEvent)).scalar_one()
        seqs = session.execute(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)).scalars().all()
    assert code == 0 and verdict["ok"] and verdict["unsealed"] == 0
    assert verdict["checked"] == verdict["head_seq"] == total >= 8 * 2  # triggered, answered
    assert seqs == list(range(1, total + 1))


def test_an_altered_or_deleted_row_is_named(own_database):
    from storage.audit import AuditEvent

    for i in range(3):
        _trigger(100 + i)
    _seal_until_done()
    assert _verify()[0] == 0
    with session_scope() as session:
        rows = session.execute(
            sa.select(AuditEvent.id, AuditEvent.seq, AuditEvent.detail, AuditEvent.actor).order_by(AuditEvent.seq)
        ).all()
    victim_id, victim_seq, detail, actor = rows[len(rows) // 2]

    def raw(sql: str, **params) -> None:
        with session_scope() as session:
            session.execute(sa.text(sql), params)

    # Altered: one field of one row's detail.
    raw("UPDATE audit_event SET detail = :d WHERE id = :i", d=json.dumps({**detail, "forged": True}), i=victim_id)
    code, verdict, err = _verify()
    assert code == 7 and not verdict["ok"]
    assert f"audit row id {victim_id} (chain #{victim_seq}" in err and "was altered" in err and err.count("\n") == 1
    raw("UPDATE audit_event SET detail = :d WHERE id = :i", d=json.dumps(detail), i=victim_id)
    assert _verify()[0] == 0  # put back exactly, it verifies again

    # Altered: who did it.
    raw("UPDATE audit_event SET actor = 'someone else' WHERE id = :i", i=victim_id)
    assert f"audit row id {victim_id}" in _verify()[2]
    raw("UPDATE audit_event SET actor = :a WHERE id = :i", a=actor, i=victim_id)
    assert _verify()[0] == 0

    # Deleted: the newest rows (only the chain's head knows they existed), then one
    # from the middle (the walk finds the gap first).
    with session_scope() as session:
        rows = session.execute(sa.select(AuditEvent.id, AuditEvent.seq).order_by(AuditEvent.seq)).all()
    last_seq = rows[-1][1]
    raw("DELETE FROM audit_event WHERE seq >= :s", s=last_seq - 1)
    code, verdict, err = _verify()
    assert code == 7 and f"the chain ends at #{last_seq - 2} but its head says #{last_seq}" in err
    middle_id, middle_seq = rows[3]
    raw("DELETE FROM audit_event WHERE id = :i", i=middle_id)
    code, verdict, err = _verify()
    assert code == 7 and f"chain row #{middle_seq} is missing (deleted); the next one is #{middle_seq + 1}" in err
