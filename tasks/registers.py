"""Importing and reading the registers a spot-check campaign draws from. A file is
all or nothing: a bad row refuses it with its line; rows are added or updated by their
key (the credit code, the login), and the head of each authority in the file (or of
one above) imports it, on the audit log with the register's content hash."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from rules.files import read_text
from rules.registers import parse_inspectors, parse_targets, register_hash
from storage import audit
from storage import registers as rows
from storage.authorities import load_tree
from storage.db import session_scope
from tasks.access import require_head

Kind = Literal["targets", "inspectors"]


def import_register(kind: Kind, path: Path, *, by: str, now: dt.datetime) -> dict[str, Any]:
    text = read_text(path)
    with session_scope() as session:
        tree = load_tree(session)
        codes = {a.code for a in tree.authorities}
        parsed = (parse_targets if kind == "targets" else parse_inspectors)(text, source=str(path), authorities=codes)
        for code in sorted({r.authority for r in parsed}):
            require_head(
                session,
                by,
                tree,
                code,
                subject=f"REGISTER-{kind}",
                action=f"import the {kind} register of {code}",
                now=now,
            )
        added = updated = 0
        for item in parsed:
            if kind == "targets":
                row = session.get(rows.InspectionTarget, item.uscc) or rows.InspectionTarget(uscc=item.uscc)
                values = dict(name=item.name, address=item.address, authority_code=item.authority,
                              categories=list(item.categories), risk=item.risk)  # fmt: skip
            else:
                row = session.get(rows.Inspector, item.login) or rows.Inspector(login=item.login)
                values = dict(name=item.name, authority_code=item.authority, qualifications=list(item.qualifications),
                              conflicts=list(item.conflicts))  # fmt: skip
            new = row.updated_at is None
            if new or any(getattr(row, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(row, k, v)
                row.updated_at = now
                session.add(row)
                added, updated = added + new, updated + (not new)
        session.flush()
        digest = content(session, kind)
        audit.record(session, at=now, actor=by, action="register.imported", subject=f"REGISTER-{kind}",
                     file=path.name, rows=len(parsed), added=added, updated=updated,
                     register_sha256=digest)  # fmt: skip
        return {"kind": kind, "rows": len(parsed), "added": added, "updated": updated, "sha256": digest}


def content(session, kind: Kind) -> str:
    """The register's content hash as it stands on record."""
    if kind == "targets":
        return register_hash([(t.uscc, t.name, t.address, t.authority_code, tuple(t.categories), t.risk)
                              for t in rows.targets(session)])  # fmt: skip
    return register_hash([(i.login, i.name, i.authority_code, tuple(i.qualifications), tuple(i.conflicts))
                          for i in rows.inspectors(session)])  # fmt: skip


def listing(kind: Kind, *, authority: str | None = None) -> dict[str, Any]:
    with session_scope() as session:
        if authority is not None:
            load_tree(session).get(authority)
        if kind == "targets":
            items = [
                {
                    "uscc": t.uscc,
                    "name": t.name,
                    "address": t.address,
                    "authority": t.authority_code,
                    "categories": t.categories,
                    "risk": t.risk,
                }
                for t in rows.targets(session, authority=authority)
            ]
        else:
            items = [{"login": i.login, "name": i.name, "authority": i.authority_code,
                      "qualifications": i.qualifications, "conflicts": i.conflicts}
                     for i in rows.inspectors(session, authority=authority)]  # fmt: skip
        return {"kind": kind, "sha256": content(session, kind), "rows": items}
