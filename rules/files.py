"""The files offices hand regflow (rosters, registers, campaign plans): read as UTF-8,
and CSV rows with their line numbers, so a bad row is refused naming its line."""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from kernel.errors import InvalidInput

T = TypeVar("T")


def current(loader: Callable[[Path], T], path: Path) -> T:
    """`loader(path)`, read again only when the file changes (a data file an office edits
    while the platform runs)."""
    return _cached(loader, path, path.stat().st_mtime_ns if path.exists() else 0)


@lru_cache(maxsize=16)
def _cached(loader: Callable[[Path], T], path: Path, mtime: int) -> T:
    return loader(path)


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


def csv_feed(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> str:
    """A public feed as CSV: a header, then one line per row. A leading = + - @ is
    prefixed with ' so a spreadsheet shows hostile text as text, never a formula."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k, "")) for k in fields})
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
