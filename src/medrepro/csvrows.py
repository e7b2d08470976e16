"""Reading a small CSV a lab supplies, with errors that name the file, the row as a spreadsheet
shows it (the header is row 1) and what was expected."""

from __future__ import annotations

import csv
from pathlib import Path

from medrepro.errors import InputError


def read_csv_rows(csv_path: Path, required: tuple[str, ...], what: str,
                  expected_columns: str | None = None) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, stripped cells) of each non-blank row. Refused: a missing or
    unreadable file, an empty file, a missing or repeated column, a row with another number of
    fields than the header. ``what``: what the file holds (for the not-found message);
    ``expected_columns``: the columns named when one is missing (default: ``required``)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(csv_path, "file", "not found", f"a CSV file with {what}")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows: list[tuple[int, list[str]]] = []
            start = 1
            for cells in reader:
                if any(c.strip() for c in cells):
                    rows.append((start, [c.strip() for c in cells]))
                start = reader.line_num + 1
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(csv_path, "file", f"not a readable CSV ({exc})", "a UTF-8 CSV file") from None
    if not rows:
        raise InputError(csv_path, "row 1: header", "empty file", f"a header with columns {', '.join(required)}")
    (header_line, header), body = rows[0], rows[1:]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(csv_path, f"row {header_line}: header", f"missing column(s) {', '.join(missing)}",
                         expected_columns or f"columns {', '.join(required)}")
    dup = sorted({c for c in header if c and header.count(c) > 1})
    if dup:
        raise InputError(csv_path, f"row {header_line}: header", f"repeated column(s) {', '.join(dup)}",
                         "each column once")
    for line, cells in body:
        if len(cells) != len(header):
            raise InputError(csv_path, f"row {line}", f"{len(cells)} fields",
                             f"{len(header)} fields, one per header column")
    return header, body
