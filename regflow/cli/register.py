"""`regflow register …`: the registers spot checks draw from (检查对象名录库, 执法检查人员名录库)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from kernel.errors import InvalidInput
from regflow.cli.output import BY, JSON, console, emit_json, mount, who
from storage.db import utcnow

app = typer.Typer(help="Registers of inspection targets and inspectors.", no_args_is_help=True)
KINDS = ("targets", "inspectors")


def register(root: typer.Typer) -> None:
    mount(root, {"register": app})


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"the register is targets or inspectors, not {kind!r}")
    return kind


@app.command("import")
def import_(
    kind: str = typer.Argument(..., metavar="targets|inspectors", help="Which register."),
    file: Path = typer.Argument(..., help="The register CSV (see data/registers/README.md)."),
    by: Optional[str] = BY,
    json_out: bool = JSON,
) -> None:
    """Import a register file (the authority's head): every row valid, or nothing is imported.

    Example: regflow register import targets data/registers/targets.csv --by 杭州市局局长
    """
    from tasks.registers import import_register

    result = import_register(_kind(kind), file, by=who(by), now=utcnow())
    if json_out:
        emit_json(result)
        return
    console().print(f"{file}: {result['rows']} {kind}, {result['added']} added, {result['updated']} updated; "
                    f"register sha256 {result['sha256'][:16]}…")  # fmt: skip


@app.command("list")
def list_(
    kind: str = typer.Argument(..., metavar="targets|inspectors", help="Which register."),
    authority: Optional[str] = typer.Option(None, help="Only this authority's."),
    json_out: bool = JSON,
) -> None:
    """The register as it stands, with its content hash.

    Example: regflow register list targets --authority 330106 --json
    """
    from tasks.registers import listing

    data = listing(_kind(kind), authority=authority)
    if json_out:
        emit_json(data)
        return
    if kind == "targets":
        table = Table(
            "uscc", "name", "authority", "categories", "risk", title=f"Targets (sha256 {data['sha256'][:16]}…)"
        )
        for r in data["rows"]:
            table.add_row(r["uscc"], r["name"], r["authority"], "; ".join(r["categories"]), r["risk"])
    else:
        table = Table("login", "name", "authority", "qualifications", "conflicts",
                      title=f"Inspectors (sha256 {data['sha256'][:16]}…)")  # fmt: skip
        for r in data["rows"]:
            table.add_row(
                r["login"], r["name"], r["authority"], "; ".join(r["qualifications"]), "; ".join(r["conflicts"])
            )
    console().print(table)
