"""`regflow audit ...`: check that the audit log has not been tampered with."""

from __future__ import annotations

from pathlib import Path

import typer

from regflow.cli.output import JSON, console, emit_json
from storage.db import session_scope

app = typer.Typer(help="The tamper-evident audit log: verify its hash chain.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="audit")


@app.command()
def verify(
    anchor: Path | None = typer.Option(
        None, "--anchor", help="the anchor file to check against (default: $REGFLOW_HOME/backups/audit-anchor.log)"
    ),
    json_out: bool = JSON,
) -> None:
    """Walk the audit log's hash chain; report the first row altered, deleted or reordered,
    and check it against the anchor file, where every head the chain reached is kept
    outside the database: a chain rewritten or cut after a head was anchored is found.

    Exits 7 naming that row when the chain is broken. Rows written in the last few
    seconds are not yet sealed (the watcher seals them) and are counted apart.

    Example: regflow audit verify
    """
    from kernel.errors import AuditTampered
    from kernel.settings import get_settings
    from storage.audit import Anchors, current_head
    from storage.audit import verify as walk

    with session_scope() as session:
        anchors = Anchors.read(anchor or get_settings().audit_anchor_path, current_head(session).chain_id)
        verdict = walk(session, anchors=anchors)
    if json_out:
        emit_json(verdict.__dict__)
    else:
        console().print(
            f"audit chain: {verdict.checked} rows verified, head #{verdict.head_seq} "
            f"{verdict.head_hash[:16]}…, {verdict.unsealed} not yet sealed"
        )
        console().print(
            f"anchor: checked against {len(anchors.heads)} anchored heads up to #{verdict.anchored_seq}"
            f" ({anchors.path})"
            if anchors.heads
            else f"anchor: none yet at {anchors.path} (the watcher appends one each time it seals)"
        )
        if anchors.unreadable:
            console().print(f"anchor: {anchors.unreadable} line(s) do not read (a write cut short?): no claim made")
    if not verdict.ok:
        raise AuditTampered(f"audit log tampered: {verdict.problem}")


@app.command()
def seal() -> None:
    """Chain the rows written since the watcher last did (it does so every cycle).

    Example: regflow audit seal
    """
    from storage.db import utcnow
    from tasks.audit import seal_and_anchor

    count, seq = seal_and_anchor(utcnow())
    console().print(f"{count} rows sealed; chain head #{seq}")
