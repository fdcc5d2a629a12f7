"""The files offices hand regflow (rosters, registers, campaign plans): read as UTF-8,
and CSV rows with their line numbers, so a bad row is refused naming its line."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterator

from kernel.errors import InvalidInput


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {type(exc).__name__}") from exc


def csv_rows(text: str, *, source: str, columns: tuple[str, ...], what: str = "rows") -> Iterator[tuple[int, dict]]:
    """(line number, {column: stripped value}) for each row after the header; the header
    must name every column, and a file without rows is refused (`no <what>`)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in columns if c not in header]
    if missing:
        raise InvalidInput(f"{source}:1: missing column(s) {', '.join(missing)} (need {','.join(columns)})")
    count = 0
    for row in reader:
        count += 1
        yield reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
    if not count:
        raise InvalidInput(f"{source}: no {what}")
