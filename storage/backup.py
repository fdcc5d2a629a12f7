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
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from kernel.errors import InvalidInput, PlatformUnavailable
from kernel.settings import get_settings
from storage.audit import GENESIS, Anchors, anchor

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
        os.chmod(to, 0o700)  # an existing directory too: backups hold the identity key and personal data
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
            os.chmod(path, 0o700 if path.is_dir() else 0o600)
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
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise InvalidInput(f"{source} is a backup of format {found!r}; this regflow reads {FORMAT}")
    missing = [k for k in ("created", "database", "revision", "audit_head", "rows", "files") if k not in manifest]
    if missing or manifest["database"] not in ("sqlite", "postgresql"):
        what = ", ".join(missing) or "database"
        raise InvalidInput(f"{source / MANIFEST} is incomplete ({what}): not a whole backup")
    for name, digest in manifest["files"].items():
        path = source / name
        if not path.exists() or _sha256(path) != digest:
            raise InvalidInput(f"{path} is missing or damaged (its SHA-256 differs from the manifest's)")
    return Backup(source, manifest)


def restore(backup: Backup, *, now: dt.datetime, force: bool = False) -> dict[str, int]:
    """Put `backup` where the settings point (database, identity key, anchor); returns
    the restored tables' row counts. Everything is checked before the target is touched
    (the schema known here, the identity key, a target empty or --force, no platform
    running on it), and the copy is restored, counted and migrated aside (a staging
    file or database) before it takes the target's place.

    The restored chain gets a chain id of its own, under which the backup's anchored
    heads are appended to the anchor file: heads the old chain reached after the backup
    stay there under the old id, and do not read as rows deleted from the new one."""
    from storage.db import engine_for, ensure_postgres_database

    settings = get_settings()
    url = make_url(settings.db_url)
    kind = backup.manifest["database"]
    if url.get_backend_name() != kind:
        there = url.get_backend_name()
        raise InvalidInput(f"this backup is of a {kind} database; the target ({there}) must be one too")
    _known_revision(backup.manifest["revision"])
    key, saved_key = settings.home / KEY_FILE, backup.path / KEY_FILE
    if saved_key.exists() and key.exists() and key.read_bytes() != saved_key.read_bytes() and not force:
        raise InvalidInput(f"{key} is another identity key than the backup's: restore into a fresh home, or --force")
    try:
        if kind == "postgresql":
            ensure_postgres_database(settings.db_url)
        exists = kind == "postgresql" or Path(url.database).exists()
        present = _counts(engine_for(settings.db_url)) if exists else {}
        alive = _live_watchers(engine_for(settings.db_url), now) if "heartbeat" in present else 0
    except sa.exc.OperationalError as exc:
        raise PlatformUnavailable(f"database unavailable: {str(exc.orig).splitlines()[0]}") from None
    if alive:
        raise InvalidInput(f"{alive} watcher(s) beat on the target database this last minute: stop the platform first")
    held = sum(n for t, n in present.items() if t not in BOOKKEEPING)
    if held and not force:
        raise InvalidInput(
            f"the target database holds {held} records: restore into a fresh home or database, or --force to replace"
            " them (stop the platform first)"
        )
    chain = uuid.uuid4().hex
    if kind == "sqlite":
        target = Path(url.database)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(target.name + ".restoring")
        _sqlite_copy(backup.path / SQLITE_FILE, staging)
        counts = _prepare(backup, f"sqlite:///{staging}", chain)
        _install_key(saved_key, key, force)
        for suffix in ("-wal", "-shm"):  # the old database's journal must not meet the new file
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        engine_for(settings.db_url).dispose()
        os.replace(staging, target)
    elif present:  # replaced: restored aside, then swapped in by renaming
        staging = url.set(database=f"{url.database}_restoring")
        aside = staging.database
        _pg_admin(url, f'DROP DATABASE IF EXISTS "{aside}" WITH (FORCE)', f'CREATE DATABASE "{aside}"')
        _pg_restore(staging, backup.path / PG_FILE)
        counts = _prepare(backup, staging.render_as_string(hide_password=False), chain)
        _install_key(saved_key, key, force)
        engine_for(settings.db_url).dispose()
        _pg_admin(url, f'DROP DATABASE "{url.database}" WITH (FORCE)',
                  f'ALTER DATABASE "{staging.database}" RENAME TO "{url.database}"')  # fmt: skip
    else:  # an empty database: restored in place, in one transaction
        _pg_restore(url, backup.path / PG_FILE)
        counts = _prepare(backup, settings.db_url, chain)
        _install_key(saved_key, key, force)
    engine_for(settings.db_url).dispose()
    saved = Anchors.read(backup.path / ANCHOR_FILE, backup.manifest["audit_head"].get("chain"))
    Anchors(saved.path, chain, saved.heads).append_to(settings.audit_anchor_path)
    return counts


def _known_revision(revision: str | None) -> None:
    """A backup's schema must be one this release can migrate from."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    from storage.migrate import alembic_config

    try:
        if revision is not None:
            ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(revision)
    except (CommandError, KeyError):
        raise InvalidInput(f"this backup's schema ({revision}) is unknown here: restore it with its regflow") from None


def _prepare(backup: Backup, url: str, chain: str) -> dict[str, int]:
    """The restored copy at `url`: every table's rows as the manifest says, migrated to
    this release's schema, and its chain renamed `chain`."""
    from storage.db import engine_for
    from storage.migrate import upgrade

    engine = engine_for(url)
    counts = _counts(engine)
    wrong = {t: (n, counts.get(t)) for t, n in backup.manifest["rows"].items() if counts.get(t) != n}
    if wrong:
        table, (want, got) = next(iter(wrong.items()))
        raise PlatformUnavailable(f"restore stopped: table {table} has {got} rows, the backup {want}; nothing replaced")
    upgrade(url)  # a backup taken by an older regflow: its schema brought up to this one's
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_chain SET chain_id = :c WHERE id = 1"), {"c": chain})
    engine.dispose()
    return counts


def _install_key(saved: Path, key: Path, force: bool) -> None:
    if saved.exists() and (force or not key.exists()):
        key.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(saved, key)
        os.chmod(key, 0o600)


def _live_watchers(engine: sa.Engine, now: dt.datetime) -> int:
    with engine.connect() as conn:
        since = now - dt.timedelta(minutes=1)
        return conn.execute(sa.text("SELECT count(*) FROM heartbeat WHERE seen_at >= :t"), {"t": since}).scalar_one()


def prune(to: Path, *, keep: int, chain: str | None) -> list[Path]:
    """Delete all but the newest `keep` backups of this database (its audit chain's id)
    under `to`, and leftovers of a backup that died half-way; returns what was deleted.
    Another database's backups in the same directory are left alone."""
    if keep < 1:
        raise InvalidInput(f"keep {keep}: at least the newest backup is kept (give 1 or more)")

    def ours(path: Path) -> bool:
        try:
            return json.loads((path / MANIFEST).read_text("utf-8"))["audit_head"].get("chain") == chain
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False

    backups = sorted((p for p in to.glob(PREFIX + "*") if ours(p)), key=lambda p: p.name)
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
        src.backup(dst, pages=-1)  # one step, in one read transaction: a step-wise copy restarts on every write
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
    return counts, tuple(head) if head else (0, GENESIS, None), revision[0] if revision else None


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
        conn = psycopg.connect(plain, connect_timeout=10, autocommit=True)  # the BEGIN below is ours, not psycopg's
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
        conn.execute("ROLLBACK")
    if done.returncode != 0:
        raise PlatformUnavailable(f"pg_dump failed: {_last_line(done.stderr)}")
    return counts, head, revision


def _pg_restore(url: sa.URL, source: Path) -> None:
    """Into an empty database, in one transaction: either all of the backup is in, or none of it."""
    args = [_tool("pg_restore"), "--no-owner", "--exit-on-error", "--single-transaction", f"--dbname={url.database}"]
    done = subprocess.run([*args, str(source)], env=_libpq_env(url), capture_output=True, text=True)
    if done.returncode != 0:
        raise PlatformUnavailable(f"pg_restore failed: {_last_line(done.stderr)}")


def _pg_admin(url: sa.URL, *statements: str) -> None:
    import psycopg

    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            for statement in statements:
                conn.execute(statement)
    except psycopg.Error as exc:
        raise PlatformUnavailable(f"PostgreSQL at {url.host}:{url.port}: {str(exc).splitlines()[0]}") from None


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
