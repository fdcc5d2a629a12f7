"""The registers a spot-check campaign draws from (双随机): inspection targets
(检查对象名录库) and inspectors (执法检查人员名录库), as the CSV an office keeps, checked
line by line. Pure: no database.

Targets: `name,uscc,address,authority,categories,risk` — categories separated by `;`,
risk grade A (lowest) to D (highest). Inspectors: `name,login,authority,qualifications,
conflicts` — qualifications (product categories they may check) and conflicts (the
unified social credit codes of targets they must not check) separated by `;`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from kernel.errors import InvalidInput
from rules.files import csv_rows
from rules.incidents import clean_line

# GB 32100-2015: 18 characters from 31 (no I, O, S, V, Z); the last is a check
# character over the first 17 with weights 3^(i-1) mod 31.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC = re.compile(rf"^[{USCC_ALPHABET}]{{18}}$")
RISK_GRADES = ("A", "B", "C", "D")
_LOGIN = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def uscc_check_character(first17: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def valid_uscc(code: str) -> str:
    """The code, upper-cased, or ValueError saying what is wrong with it."""
    code = code.strip().upper()
    if not _USCC.match(code):
        raise ValueError(f"uscc {code!r} is not 18 characters of 0-9 and A-Y without I, O, S, V, Z")
    if uscc_check_character(code[:17]) != code[17]:
        raise ValueError(f"uscc {code!r}: its check character should be {uscc_check_character(code[:17])!r}")
    return code


@dataclass(frozen=True)
class Target:
    uscc: str
    name: str
    address: str
    authority: str
    categories: tuple[str, ...]
    risk: str
    line: int = 0


@dataclass(frozen=True)
class Inspector:
    login: str
    name: str
    authority: str
    qualifications: tuple[str, ...]
    conflicts: tuple[str, ...]
    line: int = 0


TARGET_COLUMNS = ("name", "uscc", "address", "authority", "categories", "risk")
INSPECTOR_COLUMNS = ("name", "login", "authority", "qualifications", "conflicts")


def register_hash(rows: list[tuple]) -> str:
    """A register's content as a draw records it: the rows on record, in key order,
    whatever file they came from (anyone holding the same register gets the same hash)."""
    canonical = "\n".join(
        "\t".join(";".join(v) if isinstance(v, tuple) else str(v) for v in row) for row in sorted(rows)
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse_targets(text: str, *, source: str, authorities: set[str]) -> list[Target]:
    """Every target of a register file, or InvalidInput naming the first bad line."""

    def target(row: dict[str, str], line: int) -> Target:
        return Target(valid_uscc(_required(row, "uscc")), clean_line(_required(row, "name")),
                      clean_line(row.get("address", "")), _authority(row, authorities),
                      _list(_required(row, "categories")), _risk(_required(row, "risk")), line)  # fmt: skip

    return _parse(text, source, TARGET_COLUMNS, target, key="uscc")


def parse_inspectors(text: str, *, source: str, authorities: set[str]) -> list[Inspector]:
    """Every inspector of a register file, or InvalidInput naming the first bad line."""

    def inspector(row: dict[str, str], line: int) -> Inspector:
        login = _required(row, "login")
        if not _LOGIN.match(login):
            raise ValueError(f"login {login!r}: letters, digits and _ . @ - only")
        conflicts = tuple(valid_uscc(c) for c in _list(row.get("conflicts", ""), empty=True))
        return Inspector(login, clean_line(_required(row, "name")), _authority(row, authorities),
                         _list(_required(row, "qualifications")), conflicts, line)  # fmt: skip

    return _parse(text, source, INSPECTOR_COLUMNS, inspector, key="login")


def _parse(text: str, source: str, columns: tuple[str, ...], build, *, key: str) -> list:
    """Each row built, its line named in any error; a key twice refused at the later line."""
    found: dict[str, Any] = {}
    for line, row in csv_rows(text, source=source, columns=columns):
        try:
            item = build(row, line)
        except ValueError as exc:
            raise InvalidInput(f"{source}:{line}: {str(exc).splitlines()[0]}") from None
        value = getattr(item, key)
        if value in found:
            raise InvalidInput(f"{source}:{line}: {key} {value} is already on line {found[value].line}")
        found[value] = item
    return list(found.values())


def _required(row: dict[str, str], column: str) -> str:
    if not row.get(column):
        raise ValueError(f"{column} is empty")
    return row[column]


def _authority(row: dict[str, str], authorities: set[str]) -> str:
    code = _required(row, "authority")
    if code not in authorities:
        raise ValueError(f"unknown authority {code!r}")
    return code


def _risk(value: str) -> str:
    grade = value.strip().upper()
    if grade not in RISK_GRADES:
        raise ValueError(f"risk {value!r} must be one of {', '.join(RISK_GRADES)}")
    return grade


def _list(value: str, *, empty: bool = False) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(clean_line(v) for v in value.split(";") if v.strip()))
    if not items and not empty:
        raise ValueError("give at least one, separated by ';'")
    return items
