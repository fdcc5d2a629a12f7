"""A backup now, with the old ones pruned: what `regflow backup` and the daily
`regflow-backup` deployment both do (storage/backup.py holds how)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from kernel.settings import get_settings
from storage import backup as store


def back_up(now: dt.datetime, *, to: Path | None = None, keep: int | None = None) -> tuple[store.Backup, list[Path]]:
    """A new backup under `to` (the settings' backup directory), then all but the newest
    `keep` deleted there; returns it and what was deleted."""
    settings = get_settings()
    where = to or settings.backup_path
    made = store.make(where, now=now)
    chain = made.manifest["audit_head"].get("chain")
    return made, store.prune(where, keep=settings.backup_keep if keep is None else keep, chain=chain)


def summary(made: store.Backup, pruned: list[Path]) -> str:
    """A Markdown account of a backup, for its run's artifact."""
    m = made.manifest
    rows = "\n".join(f"| {table} | {n} |" for table, n in sorted(m["rows"].items()) if n)
    return (
        f"## 备份 Backup {made.path.name}\n\n"
        f"- 位置 Where: `{made.path}`\n- 数据库 Database: {m['database']} (schema {m['revision']})\n"
        f"- 审计链 Audit chain head: #{m['audit_head']['seq']} `{m['audit_head']['hash'][:16]}…`\n"
        f"- 已删除的旧备份 Old backups deleted: {len(pruned)}\n\n| table | rows |\n|---|---|\n{rows}\n"
    )
