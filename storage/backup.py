"""Backups of regflow's database, with the audit chain's anchor and the identity key,
and their restore.

A backup is a directory `regflow-backup-<UTC time>/` holding the database (SQLite's
online backup API: a consistent copy while the platform writes; or `pg_dump` in the
custom format, taken in a snapshot exported from a transaction that also counts every
table and reads the chain head, so the manifest describes exactly what was dumped),
`audit-anchor.log` (the anchor file up to the copy's chain head), `identity.key` (the
key identity numbers are digested with: without it no restored digest matches a number
again) and `manifest.json` (what it holds, each file's SHA-256). It is written under a
hidden name and renamed when complete: a directory with the backup name is whole.

Connection details reach pg_dump and pg_restore through libpq's environment (PGHOST,
PGPASSWORD, ...), never their command line, where any user's `ps` would show a password.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from kernel.errors import InvalidInput, PlatformUnavailable
from kernel.settings import get_settings
from storage.audit import Anchors, anchor

# What a fresh database holds before anyone records anything (`regflow up` loads the
# authorities and rosters, the watchers beat): a restore may replace it without --force.
BOOKKEEPING = frozenset({"alembic_version", "authority", "duty_shift", "plan_version", "heartbeat", "manager_health"})
PREFIX = "regflow-backup-"
MANIFEST = "manifest.json"
FORMAT = 1
SQLITE_FILE, PG_FILE, ANCHOR_FILE, KEY_FILE = "regflow.db", "regflow.dump", "audit-anchor.log", "identity.key"


@dataclass
class Backup:
    path: Path
    manifest: dict

    @property
    def head(self) -> int:
        return self.manifest["audit_head"]["seq"]


def make(to: Path, *, now: dt.datetime) -> Backup:
    """A complete backup in a new directory under `to`."""
    settings = get_settings()
    url = make_url(settings.db_url)
    try:
        to.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = to / f".{PREFIX}probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise InvalidInput(f"cannot write backups to {to}: {exc.strerror or type(exc).__name__}") from None
    name = PREFIX + now.strftime("%Y%m%dT%H%M%SZ")
    final = to / name
    n = 1
    while final.exists():
        n += 1
        final = to / f"{name}-{n}"
    part = to / f".{final.name}.part"
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(mode=0o700)
    try:
        if url.get_backend_name() == "sqlite":
            kind = "sqlite"
            _sqlite_copy(Path(url.database), part / SQLITE_FILE)
            copy = sqlite3.connect(part / SQLITE_FILE)
            try:
                tables = [r[0] for r in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                counts, head, revision = _describe(copy, tables)
            finally:
                copy.close()
        elif url.get_backend_name() == "postgresql":
            kind = "postgresql"
            counts, head, revision = _pg_dump(url, part / PG_FILE)
        else:
            raise InvalidInput(f"no backup for a {url.get_backend_name()} database (SQLite and PostgreSQL only)")
        saved = Anchors.read(settings.audit_anchor_path, head[2], up_to=head[0])
        (part / ANCHOR_FILE).write_text(saved.lines(), "ascii")
        key = settings.home / KEY_FILE
        if key.exists():
            shutil.copy2(key, part / KEY_FILE)
            os.chmod(part / KEY_FILE, 0o600)
        manifest = {
            "format": FORMAT,
            "created": now.isoformat(),
            "database": kind,
            "revision": revision,
            "audit_head": {"seq": head[0], "hash": head[1], "chain": head[2]},
            "rows": counts,
            "files": {p.name: _sha256(p) for p in sorted(part.iterdir())},
        }
        (part / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
        for path in [*part.iterdir(), part]:
            _fsync(path)
        os.rename(part, final)
        _fsync(to)
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    if head[0]:  # the head the copy holds, anchored like any other
        anchor(settings.audit_anchor_path, chain=head[2], seq=head[0], digest=head[1], at=now)
    return Backup(final, manifest)


def read(source: Path) -> Backup:
    """A backup directory, checked whole: its manifest, and every file's hash."""
    try:
        manifest = json.loads((source / MANIFEST).read_text("utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{source} is not a regflow backup (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{source / MANIFEST} cannot be read: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"{source} is a backup of format {manifest.get('format')!r}; this regflow reads {FORMAT}")
    for name, digest in manifest["files"].items():
        path = source / name
        if not path.exists() or _sha256(path) != digest:
            raise InvalidInput(f"{path} is missing or damaged (its SHA-256 differs from the manifest's)")
    return Backup(source, manifest)


def restore(backup: Backup, *, force: bool = False) -> dict[str, int]:
    """Put `backup` where the settings point (database, identity key, anchor file);
    returns the restored tables' row counts, checked against the manifest. Refuses a
    target holding records, or another identity key, unless `force`."""
    from storage.db import engine_for, ensure_postgres_database
    from storage.migrate import upgrade

    settings = get_settings()
    url = make_url(settings.db_url)
    kind = backup.manifest["database"]
    if url.get_backend_name() != kind:
        raise InvalidInput(
            f"this backup is of a {kind} database; the target ({url.get_backend_name()}) must be one too"
        )
    key, saved_key = settings.home / KEY_FILE, backup.path / KEY_FILE
    if saved_key.exists() and key.exists() and key.read_bytes() != saved_key.read_bytes() and not force:
        raise InvalidInput(f"{key} is another identity key than the backup's: restore into a fresh home, or --force")
    if kind == "postgresql":
        ensure_postgres_database(settings.db_url)
    exists = kind == "postgresql" or Path(url.database).exists()
    present = _counts(engine_for(settings.db_url)) if exists else {}
    held = sum(n for t, n in present.items() if t not in BOOKKEEPING)
    if held and not force:
        raise InvalidInput(
            f"the target database holds {held} records: restore into a fresh home or database, or --force to replace"
            " them (stop the platform first)"
        )
    if kind == "sqlite":
        target = Path(url.database)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(target.name + ".restoring")
        _sqlite_copy(backup.path / SQLITE_FILE, staging)
        for suffix in ("-wal", "-shm"):  # the old database's journal must not meet the new file
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        os.replace(staging, target)
    else:
        _pg_restore(url, backup.path / PG_FILE, replace=bool(present))
    engine_for(settings.db_url).dispose()
    counts = _counts(engine_for(settings.db_url))
    wrong = {t: (n, counts.get(t)) for t, n in backup.manifest["rows"].items() if counts.get(t) != n}
    if wrong:
        table, (want, got) = next(iter(wrong.items()))
        raise PlatformUnavailable(f"restore incomplete: table {table} has {got} rows, the backup {want}")
    upgrade()  # a backup taken by an older regflow: its schema brought up to this one's
    if saved_key.exists() and (force or not key.exists()):
        key.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(saved_key, key)
        os.chmod(key, 0o600)
    live = settings.audit_anchor_path
    if not live.exists():  # an anchor already there knows at least as much: append-only, kept
        live.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(backup.path / ANCHOR_FILE, live)
    return counts


def prune(to: Path, *, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups under `to` (and leftovers of a backup
    that died half-way); returns what was deleted."""
    backups = sorted((p for p in to.glob(PREFIX + "*") if (p / MANIFEST).exists()), key=lambda p: p.name)
    gone = backups[: max(0, len(backups) - keep)]
    gone += [p for p in to.glob(f".{PREFIX}*.part") if p.stat().st_mtime < time.time() - 86400]
    for path in gone:
        shutil.rmtree(path)
    return gone


# --- SQLite -----------------------------------------------------------------------------


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while others write to `source`."""
    if not source.exists():
        raise InvalidInput(f"no database at {source}")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=4096)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        dst.close()
        src.close()


def _describe(conn, tables: list[str]) -> tuple[dict[str, int], tuple[int, str, str | None], str | None]:
    """Row counts, chain head and schema revision, read through a DB-API connection
    (sqlite3's or psycopg's, both take `conn.execute`)."""

    def one(query: str, table: str):
        return conn.execute(query).fetchone() if table in tables else None

    counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in _ours(tables)}
    head = one("SELECT seq, hash, chain_id FROM audit_chain WHERE id = 1", "audit_chain")
    revision = one("SELECT version_num FROM alembic_version", "alembic_version")
    return counts, tuple(head) if head else (0, "0" * 64, None), revision[0] if revision else None


# --- PostgreSQL -------------------------------------------------------------------------


def _libpq_env(url: sa.URL) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value is not None:
            env[key] = str(value)
    return env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PlatformUnavailable(f"{name} not found: install PostgreSQL's client tools (Debian: postgresql-client)")
    return path


def _pg_dump(url: sa.URL, target: Path) -> tuple[dict[str, int], tuple[int, str, str | None], str | None]:
    """Dump in a snapshot shared with a transaction that counts what the dump holds."""
    import psycopg

    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        conn = psycopg.connect(plain, connect_timeout=10)
    except psycopg.Error as exc:
        raise PlatformUnavailable(f"PostgreSQL at {url.host}:{url.port}: {str(exc).splitlines()[0]}") from None
    with conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        counts, head, revision = _describe(conn, tables)
        done = subprocess.run(
            [_tool("pg_dump"), "--format=custom", "--no-owner", f"--snapshot={snapshot}", f"--file={target}"],
            env=_libpq_env(url),
            capture_output=True,
            text=True,
        )
        conn.rollback()
    if done.returncode != 0:
        raise PlatformUnavailable(f"pg_dump failed: {_last_line(done.stderr)}")
    return counts, head, revision


def _pg_restore(url: sa.URL, source: Path, *, replace: bool) -> None:
    """In one transaction: either all of the backup is in, or none of it."""
    args = [_tool("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction", f"--dbname={url.database}"]
    if replace:
        args += ["--clean", "--if-exists"]
    done = subprocess.run([*args, str(source)], env=_libpq_env(url), capture_output=True, text=True)
    if done.returncode != 0:
        raise PlatformUnavailable(f"pg_restore failed: {_last_line(done.stderr)}")


# --- both -------------------------------------------------------------------------------


def _ours(tables: list[str]) -> list[str]:
    return sorted(t for t in tables if not t.startswith("sqlite_"))


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        names = _ours(sa.inspect(conn).get_table_names())
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in names}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """On disk, a file's content or a directory's entries, before the next step relies on it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"
