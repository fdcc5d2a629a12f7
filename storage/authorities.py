"""Authorities (市场监管部门) in their hierarchy."""

from __future__ import annotations

from typing import Callable

from sqlmodel import Field, Session, SQLModel, select

from rules.authorities import AuthorityTree


class AuthorityBase(SQLModel):
    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=100)
    name_en: str = Field(default="", max_length=200)
    tier: str = Field(max_length=16)
    superior_code: str | None = Field(default=None, foreign_key="authority.code", max_length=32)
    government: str | None = Field(default=None, max_length=100)  # its region's government duty office


class Authority(AuthorityBase, table=True):
    pass


def upsert_authorities(
    session: Session, *, tree: AuthorityTree, advance: Callable[[int], None] = lambda n: None
) -> int:
    """Insert or update every authority of the tree, superiors first, in the caller's
    transaction (a bad file loads nothing); `advance` counts them for a progress bar."""
    ordered = sorted(tree.authorities, key=lambda a: -a.tier.rank)
    for spec in ordered:
        row = session.get(Authority, spec.code) or Authority(code=spec.code, name=spec.name, tier=spec.tier.value)
        row.name, row.name_en, row.tier, row.superior_code = spec.name, spec.name_en, spec.tier.value, spec.superior
        row.government = spec.government
        session.add(row)
        session.flush()
        advance(1)
    return len(ordered)


def load_tree(session: Session) -> AuthorityTree:
    rows = session.exec(select(Authority)).all()
    return AuthorityTree.model_validate(
        {
            "authorities": [
                {
                    "code": r.code,
                    "name": r.name,
                    "name_en": r.name_en,
                    "tier": r.tier,
                    "superior": r.superior_code,
                    "government": r.government,
                }
                for r in rows
            ]
        }
    )
