"""`regflow backup` and `regflow restore`: regflow's database, the audit chain's anchor
and the identity key, copied safely while the platform runs, and put back."""

from __future__ import annotations

from pathlib import Path

import typer

from regflow.cli.output import BY, JSON, console, emit_json, who


def register(root: typer.Typer) -> None:
    root.command()(backup)
    root.command()(restore)


def backup(
    to: Path | None = typer.Option(None, "--to", help="where (default: $REGFLOW_HOME/backups, or REGFLOW_BACKUP_DIR)"),
    keep: int | None = typer.Option(None, "--keep", min=1, help="how many to keep there (default: 14)"),
    by: str | None = BY,
    json_out: bool = JSON,
) -> None:
    """Back up regflow's database (consistent while the platform runs), the audit chain's
    anchor file and the identity key into a new directory; delete the oldest beyond --keep.

    The daily `regflow-backup` deployment does the same at 02:30 (Asia/Shanghai).
    Example: regflow backup --to /srv/backups/regflow
    """
    from storage.audit import record
    from storage.db import session_scope, utcnow
    from tasks.backup import back_up

    actor, now = who(by), utcnow()
    made, pruned = back_up(now, to=to, keep=keep)
    with session_scope() as session:
        record(session, at=now, actor=actor, action="backup.made", subject="regflow",
               backup=made.path.name, head=made.head)  # fmt: skip
    if json_out:
        emit_json({"path": str(made.path), **made.manifest, "pruned": [str(p) for p in pruned]})
        return
    rows = made.manifest["rows"]
    console().print(
        f"backup: {made.path}\n  {made.manifest['database']}, chain head #{made.head}, "
        f"{rows.get('incident', 0)} incidents, {rows.get('enforcement_case', 0)} cases; "
        f"{len(pruned)} old backup(s) deleted"
    )


def restore(
    source: Path = typer.Argument(..., help="a backup directory (regflow-backup-…)"),
    force: bool = typer.Option(False, "--force", help="replace a database that holds records (platform stopped)"),
    by: str | None = BY,
    json_out: bool = JSON,
) -> None:
    """Restore a backup where the settings point (REGFLOW_HOME, REGFLOW_DATABASE_URL):
    the database and the identity key, and the backup's anchored heads appended to the
    anchor file under the restored chain's new id. Every file is checked against the
    backup's manifest first, and every table's rows before the copy takes the target's
    place.

    Example: REGFLOW_HOME=/srv/regflow-new regflow restore /srv/backups/regflow/regflow-backup-20270105T183000Z
    """
    from storage import backup as store
    from storage.audit import record
    from storage.db import session_scope, utcnow

    actor, now = who(by), utcnow()
    saved = store.read(source)
    counts = store.restore(saved, now=now, force=force)
    with session_scope() as session:
        was = saved.manifest["audit_head"].get("chain")
        record(session, at=now, actor=actor, action="backup.restored", subject="regflow",
               backup=saved.path.name, head=saved.head, chain_was=was)  # fmt: skip
    if json_out:
        emit_json({"restored": str(saved.path), "rows": counts, "audit_head": saved.manifest["audit_head"]})
        return
    console().print(
        f"restored {saved.path.name}: {counts.get('incident', 0)} incidents, "
        f"{counts.get('enforcement_case', 0)} cases, chain head #{saved.head}; check it: regflow audit verify"
    )
