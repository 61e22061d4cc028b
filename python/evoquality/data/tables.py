"""Row access to label files in their native formats — CSV, XLSX, whitespace text, MATLAB .mat — with line numbers.

Each reader yields ``(where, row)`` where ``where`` is ``"file:line"`` (spreadsheet row for XLSX), so every later
error can name the line at fault. Values stay strings/cells here; `parse_float` turns one into a number or raises.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterator, Optional, Sequence

from evoquality.data.manifest import ManifestError, read_text_file


def parse_float(value, column: str, where: str) -> float:
    """A finite float from a cell, or ManifestError naming the column and line."""
    if isinstance(value, bool):
        raise ManifestError(f"{where}: column {column!r} is not a number: {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = "" if value is None else str(value).strip()
        try:
            number = float(text)
        except ValueError:
            raise ManifestError(f"{where}: column {column!r} is not a number: {text!r}") from None
    if not math.isfinite(number):
        raise ManifestError(f"{where}: column {column!r} is not finite: {value!r}")
    return number


def find_column(columns: Sequence[str], candidates: Sequence[str], what: str, source: str, required: bool = True):
    """The first column whose name matches one of `candidates` (case- and space-insensitive)."""
    norm = {c.strip().lower().replace(" ", "_"): c for c in columns if c is not None}
    for cand in candidates:
        key = cand.strip().lower().replace(" ", "_")
        if key in norm:
            return norm[key]
    if required:
        raise ManifestError(
            f"{source}: no {what} column; expected one of {list(candidates)}, found columns {list(columns)}"
        )
    return None


def read_csv(path: Path, delimiter: Optional[str] = None) -> tuple[list[str], Iterator[tuple[str, dict]]]:
    """Header and ``(where, {column: text})`` rows of a CSV file (any encoding `read_text_file` takes). The header
    is the first non-blank line; the delimiter is sniffed from it (`,` `;` tab) unless given. A row with fewer
    cells than the header (a cut or short row: reading it would shift or drop values) or with more non-blank cells
    is an error naming the line; blank lines are skipped."""
    lines = read_text_file(path).splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise ManifestError(f"{path}:1: empty file, expected a header row")
    if delimiter is None:
        delimiter = max((",", ";", "\t"), key=lines[first].count)
    reader = csv.reader(lines[first:], delimiter=delimiter)
    columns = [c.strip() for c in next(reader)]
    while columns and not columns[-1]:  # a trailing delimiter in the header names no column
        columns.pop()
    if len(set(columns)) != len(columns):
        raise ManifestError(f"{path}:{first + 1}: duplicate column names in header {columns}")

    def rows():
        for cells in reader:
            lineno = first + reader.line_num  # line_num counts physical lines, quoted newlines included
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) < len(columns):
                raise ManifestError(f"{path}:{lineno}: {len(cells)} cells but the header has {len(columns)} columns "
                                    f"(a cut or short row; missing {columns[len(cells):]})")
            if any(c.strip() for c in cells[len(columns):]):
                raise ManifestError(f"{path}:{lineno}: {len(cells)} cells but the header has {len(columns)} columns")
            yield f"{path}:{lineno}", dict(zip(columns, (c.strip() for c in cells)))

    return columns, rows()


def read_xlsx(path: Path, required: Sequence[str]) -> tuple[list[str], Iterator[tuple[str, dict]]]:
    """Header and rows of the first sheet of an XLSX file that has a header row containing every name in
    `required` (case-insensitive). Spreadsheets often carry title rows above the header, so the header is searched
    in the first 20 rows of each sheet."""
    try:
        import openpyxl
    except ImportError:
        raise ManifestError(
            f"reading {path} needs openpyxl (XLSX label files: SPAQ, CSIQ); install it with `pip install openpyxl`"
        ) from None
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException for a non-XLSX file
        raise ManifestError(f"{path}: not a readable XLSX file ({type(exc).__name__}: {exc})") from None
    want = {r.lower() for r in required}
    for sheet in book.worksheets:
        all_rows = list(sheet.iter_rows(values_only=True))
        for header_idx, row in enumerate(all_rows[:20]):
            names = [str(c).strip() if c is not None else "" for c in row]
            if want <= {n.lower() for n in names}:
                body = all_rows[header_idx + 1 :]

                def rows(body=body, names=names, first=header_idx + 2, title=sheet.title):
                    for rowno, cells in enumerate(body, start=first):
                        if all(c is None or str(c).strip() == "" for c in cells):
                            continue
                        # read-only sheets drop trailing empty cells: pad, so a missing value is a blank cell
                        cells = tuple(cells) + (None,) * (len(names) - len(cells))
                        yield f"{path}[{title}]:{rowno}", {n: c for n, c in zip(names, cells) if n}

                return [n for n in names if n], rows()
    raise ManifestError(f"{path}: no sheet has a header row with the columns {list(required)}")


_EXCEL_ERRORS = ("#N/A", "#VALUE!", "#DIV/0!", "#REF!", "#NAME?", "#NUM!", "#NULL!")


def read_text(path: Path, min_fields: int, max_fields: int,
              sep: Optional[str] = None) -> Iterator[tuple[str, list[str]]]:
    """``(where, fields)`` of a text label file, one record per line, split on whitespace (or `sep`).
    Blank lines and ``#`` comments are skipped (but not Excel's error values such as ``#N/A``, which are bad cells);
    a wrong number of fields is an error naming the line."""
    for lineno, line in enumerate(read_text_file(path).splitlines(), start=1):
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not stripped.upper().startswith(_EXCEL_ERRORS)):
            continue
        parts = [p.strip() for p in stripped.split(sep)] if sep else stripped.split()
        if not min_fields <= len(parts) <= max_fields:
            want = str(min_fields) if min_fields == max_fields else f"{min_fields}-{max_fields}"
            raise ManifestError(f"{path}:{lineno}: expected {want} fields, got {len(parts)}: {stripped!r}")
        yield f"{path}:{lineno}", parts


def read_mat_vector(path: Path, names: Sequence[str]) -> list:
    """The first variable of a MATLAB .mat file among `names`, flattened to a Python list (cell arrays of strings
    become str). Raises naming the variables the file does have."""
    import numpy as np
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises ValueError/MatReadError on a non-.mat file
        raise ManifestError(f"{path}: not a readable MATLAB .mat file ({type(exc).__name__}: {exc})") from None
    for name in names:
        if name in data:
            flat = np.asarray(data[name], dtype=object).reshape(-1)
            out = []
            for item in flat:
                while isinstance(item, np.ndarray):  # cells nest one array per level
                    item = item.reshape(-1)[0] if item.size else None
                out.append(item.item() if isinstance(item, np.generic) else item)
            return out
    present = sorted(k for k in data if not k.startswith("__"))
    raise ManifestError(f"{path}: none of the variables {list(names)} found; the file has {present}")
