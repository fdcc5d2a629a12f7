"""`regflow audit ...`: check that the audit log has not been tampered with."""

from __future__ import annotations

import typer

from regflow.cli.output import JSON, console, emit_json
from storage.db import session_scope

app = typer.Typer(help="The tamper-evident audit log: verify its hash chain.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="audit")


@app.command()
def verify(json_out: bool = JSON) -> None:
    """Walk the audit log's hash chain; report the first row altered, deleted or reordered.

    Exits 7 naming that row when the chain is broken. Rows written in the last few
    seconds are not yet sealed (the watcher seals them) and are counted apart.

    Example: regflow audit verify
    """
    from kernel.errors import AuditTampered
    from storage.audit import verify as walk

    with session_scope() as session:
        verdict = walk(session)
    if json_out:
        emit_json(verdict.__dict__)
    else:
        console().print(
            f"audit chain: {verdict.checked} rows verified, head #{verdict.head_seq} "
            f"{verdict.head_hash[:16]}…, {verdict.unsealed} not yet sealed"
        )
    if not verdict.ok:
        raise AuditTampered(f"audit log tampered: {verdict.problem}")


@app.command()
def seal() -> None:
    """Chain the rows written since the watcher last did (it does so every cycle).

    Example: regflow audit seal
    """
    from storage.audit import seal as chain

    with session_scope() as session:
        count, head = chain(session)
        seq = head.seq
    console().print(f"{count} rows sealed; chain head #{seq}")
