"""Backups and restores on SQLite and PostgreSQL: a backup taken while incidents are
being triggered restores into a fresh home and database, where `regflow audit verify`
passes against the anchor and every incident recorded before the backup is there; the
anchor file finds a chain rewritten or cut behind regflow's back, which the chain alone
cannot; bad input is refused in one line with nothing written; the daily deployment
backs up for real on the platform."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.db import session_scope, utcnow
from tests.conftest import cli, incident_on_site, on_sqlite, pg_url, scratch_pg_database


def _trigger(i: int) -> str:
    return incident_on_site(f"备份 {i}")


def _numbers() -> set[str]:
    from storage.incidents import Incident

    with session_scope() as session:
        return set(session.execute(sa.select(Incident.number)).scalars())


def _verify(*args: str) -> tuple[int, dict, str]:
    result = cli("audit", "verify", "--json", *args)
    return result.code, json.loads(result.out), result.err


def _seal() -> int:
    from tasks.audit import seal_and_anchor

    return seal_and_anchor(utcnow())[1]


@pytest.fixture
def elsewhere(own_database, tmp_path, monkeypatch):
    """Returns a switch of this process to a fresh home and an empty database of the
    same backend (on PostgreSQL a scratch database, dropped afterwards)."""
    sqlite = own_database.startswith("sqlite")
    with contextlib.nullcontext() if sqlite else scratch_pg_database("regflow_restored") as name:

        def switch() -> Path:
            home = tmp_path / "restored-home"
            url = f"sqlite:///{home / 'regflow.db'}" if sqlite else pg_url(name)
            monkeypatch.setenv("REGFLOW_HOME", str(home))
            monkeypatch.setenv("REGFLOW_DATABASE_URL", url)
            monkeypatch.delenv("REGFLOW_AUDIT_ANCHOR")  # the new home's own, beside its backups
            from kernel.settings import get_settings

            get_settings.cache_clear()
            return home

        yield switch
        if not sqlite:
            from storage.db import engine_for

            engine_for(pg_url(name)).dispose()


def test_a_backup_taken_during_a_burst_restores_elsewhere_and_verifies(own_database, elsewhere, tmp_path):
    stop, errors, done, sealed = threading.Event(), [], [], [0]
    lock = threading.Lock()

    def writer(k: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                number = _trigger(k * 1000 + i)
            except BaseException as exc:  # surfaced below
                errors.append(exc)
                return
            with lock:
                done.append(number)
            i += 1

    def sealer() -> None:
        while not stop.is_set():
            try:
                sealed.append(_seal())
            except BaseException as exc:
                errors.append(exc)
                return
            time.sleep(0.05)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)] + [threading.Thread(target=sealer)]
    for thread in threads:
        thread.start()
    try:
        while (len(done) < 12 or sealed[-1] == 0) and not errors:
            time.sleep(0.1)
        with lock:
            before = set(done)
        result = cli("backup", "--to", str(tmp_path / "backups"), "--json")
        after_backup = len(done)
        while len(done) < after_backup + 8 and not errors:  # the burst goes on after it
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert errors == [] and result.code == 0, (errors, result.err)
    made = json.loads(result.out)
    assert made["audit_head"]["seq"] > 0 and made["rows"]["incident"] >= len(before)
    database = "regflow.db" if own_database.startswith("sqlite") else "regflow.dump"
    assert {"audit-anchor.log", "manifest.json", database} <= set(os.listdir(made["path"])) <= {
        "audit-anchor.log", "manifest.json", database, "identity.key"}  # fmt: skip
    _seal()
    assert _verify()[0] == 0  # the source still verifies, with the heads the backup anchored

    home = elsewhere()
    restored = cli("restore", made["path"], "--json")
    assert restored.code == 0, restored.err
    assert json.loads(restored.out)["rows"]["incident"] == made["rows"]["incident"]
    numbers = _numbers()
    assert before <= numbers and len(numbers) == made["rows"]["incident"]
    assert (home / "backups" / "audit-anchor.log").exists()
    code, verdict, err = _verify()
    assert code == 0, err
    assert verdict["anchored_seq"] == made["audit_head"]["seq"] == verdict["checked"]
    assert verdict["unsealed"] >= 1  # rows written after the last seal, the restore's own among them
    _seal()
    assert _verify()[0] == 0


def _rewrite_from(victim_seq: int, change: dict) -> None:
    """What an intruder with database access would do: alter one row, then recompute the
    hash of it and of every row after it, and move the head, so the chain is consistent."""
    from storage.audit import AuditChain, AuditEvent, digest

    with session_scope() as session:
        rows = session.execute(
            sa.select(AuditEvent).where(AuditEvent.seq >= victim_seq).order_by(AuditEvent.seq)
        ).scalars()
        prev = session.execute(sa.select(AuditEvent.hash).where(AuditEvent.seq == victim_seq - 1)).scalar_one()
        for row in rows:
            if row.seq == victim_seq:
                row.detail = {**row.detail, **change}
            row.prev_hash, row.hash = prev, digest(prev, row, row.seq)
            prev = row.hash
            session.add(row)
        head = session.get(AuditChain, 1)
        head.hash = prev
        session.add(head)


def test_the_anchor_finds_a_chain_rewritten_or_cut_behind_regflows_back(own_database, tmp_path):
    from storage.audit import AuditChain, AuditEvent

    heads = []
    for i in range(4):
        _trigger(500 + i)
        heads.append(_seal())
    assert _verify()[0] == 0
    victim = heads[1] + 1  # a row of the third trigger, anchored since
    _rewrite_from(victim, {"forged": True})

    # The chain alone cannot tell: it is consistent again.
    code, verdict, _ = _verify("--anchor", str(tmp_path / "no-anchor.log"))
    assert code == 0 and verdict["ok"]
    # The anchor can, and says from where the rewrite may have begun.
    code, verdict, err = _verify()
    assert code == 7 and err.count("\n") == 1
    assert f"chain row #{heads[2]}" in err and "is not the row anchored" in err
    assert f"the chain was rewritten after chain row #{heads[1]}, which still matches" in err

    # Cut: the newest rows deleted and the head moved back to the last one kept.
    with session_scope() as session:
        keep = session.execute(sa.select(AuditEvent).where(AuditEvent.seq == heads[0])).scalar_one()
        session.execute(sa.delete(AuditEvent).where(AuditEvent.seq > heads[0]))
        head = session.get(AuditChain, 1)
        head.seq, head.hash = keep.seq, keep.hash
        session.add(head)
    code, verdict, err = _verify()
    assert code == 7 and f"the anchor file records chain row #{heads[3]}" in err
    assert f"but the chain ends at #{heads[0]}: rows were deleted" in err

    # A line of the anchor file cut short (a crash mid-write), and a seal after it: the
    # line is counted as unreadable, no claim either way; the next head still anchors.
    from kernel.settings import get_settings
    from storage.audit import Anchors, current_head

    path = get_settings().audit_anchor_path
    with path.open("a") as file:
        file.write('{"chain":"x","seq":')
    _trigger(510)
    newest = _seal()
    with session_scope() as session:
        anchors = Anchors.read(path, current_head(session).chain_id)
    assert anchors.unreadable == 1 and newest in anchors.heads


def test_a_damaged_or_foreign_backup_and_an_occupied_target_are_refused_in_one_line(own_database, tmp_path):
    _trigger(900)
    made = json.loads(cli("backup", "--to", str(tmp_path / "b"), "--json").out)

    refused = cli("restore", str(tmp_path))
    assert refused.code == 2 and refused.err == f"error: {tmp_path} is not a regflow backup (no manifest.json)\n"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    refused = cli("backup", "--to", str(a_file))
    assert refused.code == 2 and refused.err == f"error: cannot write backups to {a_file}: File exists\n"

    # Into the database it came from, which holds records: refused, nothing changed.
    count = len(_numbers())
    refused = cli("restore", made["path"])
    assert refused.code == 2 and "the target database holds" in refused.err and refused.err.count("\n") == 1
    assert len(_numbers()) == count

    # A file changed after the backup was made.
    database = next(Path(made["path"]) / name for name in made["files"] if name.startswith("regflow."))
    with database.open("r+b") as file:
        file.seek(100)
        file.write(b"\x00garbage")
    refused = cli("restore", made["path"])
    assert refused.code == 2 and "is missing or damaged" in refused.err and refused.err.count("\n") == 1


def test_an_older_backup_restored_in_place_verifies_under_a_chain_of_its_own(own_database, tmp_path, monkeypatch):
    from kernel.settings import get_settings
    from storage.heartbeats import Heartbeat, beat

    # An anchor file of its own: the module's database was rewritten behind regflow's
    # back by the test above, which its own anchor file rightly keeps saying.
    monkeypatch.setenv("REGFLOW_AUDIT_ANCHOR", str(tmp_path / "anchor.log"))
    get_settings.cache_clear()

    kept = _trigger(700)
    _seal()
    made = json.loads(cli("backup", "--to", str(tmp_path), "--json").out)
    lost = _trigger(701)
    _seal()  # the live chain goes on past the backup, anchored

    with session_scope() as session:  # a watcher still beating on the database
        beat(session, name="watcher:test:1", now=utcnow())
    refused = cli("restore", made["path"], "--force")
    assert refused.code == 2 and "stop the platform first" in refused.err and refused.err.count("\n") == 1
    with session_scope() as session:
        session.execute(sa.delete(Heartbeat))

    restored = cli("restore", made["path"], "--force")
    assert restored.code == 0, restored.err
    numbers = _numbers()
    assert kept in numbers and lost not in numbers
    code, verdict, err = _verify()  # the old chain's later heads stay in the file, under its old id
    assert code == 0, err
    assert verdict["anchored_seq"] == made["audit_head"]["seq"] == verdict["checked"]
    _seal()
    assert _verify()[0] == 0

    broken = Path(made["path"]) / "manifest.json"
    manifest = json.loads(broken.read_text())
    del manifest["rows"]
    broken.write_text(json.dumps(manifest))
    refused = cli("restore", made["path"], "--force")
    assert refused.code == 2 and refused.err == f"error: {broken} is incomplete (rows): not a whole backup\n"


@pytest.mark.parametrize("module_database", ["sqlite"], indirect=True)
def test_old_backups_beyond_keep_are_deleted(own_database, tmp_path):
    paths = [json.loads(cli("backup", "--to", str(tmp_path), "--keep", "2", "--json").out)["path"] for _ in range(3)]
    assert sorted(p.name for p in tmp_path.glob("regflow-backup-*")) == sorted(Path(p).name for p in paths[1:])


@on_sqlite
def test_the_daily_backup_deployment_backs_up_on_the_platform(platform, use_database, home):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("regflow-backup/regflow-backup")
    assert {(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules} == {("30 2 * * *", "Asia/Shanghai")}
    assert "regflow" in deployment.tags  # a failed backup alerts the operators

    run = run_deployment("regflow-backup/regflow-backup", parameters={"keep": 1}, timeout=180, as_subflow=False)
    assert run.state.is_completed(), run.state
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    assert [a.key for a in artifacts] == ["regflow-backup"]
    assert "审计链 Audit chain head" in artifacts[0].data
    backups = list((home / "backups").glob("regflow-backup-*"))
    assert len(backups) == 1 and json.loads((backups[0] / "manifest.json").read_text())["database"] == "sqlite"
