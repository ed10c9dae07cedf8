"""Reading the national organ directory from CSV (``axis directory import FILE.csv``).

Format: UTF-8 (a byte-order mark is allowed), comma-separated, RFC 4180 quoting, one
header line naming the columns, in any order:

``organ_id``   required, the agency identifier (``000.00.00.G22``, or up to 35
               characters of ``A-Z``, ``0-9`` and dots)
``name``       required, non-empty
``parent_id``  optional column; empty for a root. The parent may be in the file or
               already in the database.

Example::

    organ_id,name,parent_id
    000.00.00.H29,UBND tỉnh Hòa Bình,
    000.00.01.H29,Sở Nội vụ tỉnh Hòa Bình,000.00.00.H29

Blank lines are skipped; surrounding spaces are trimmed; other columns are refused
(a misspelt ``parent_id`` column must not silently drop every parent). The whole
file is checked before any row is returned, so an import is all or nothing; every
bad row is reported with its line number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from axis.errors import DirectoryImportError
from axis.registry import OrganRow
from envelopes.errors import InvalidOrganId
from envelopes.ids import validate_organ_id

REQUIRED_COLUMNS = ("organ_id", "name")
OPTIONAL_COLUMNS = ("parent_id",)
MAX_REPORTED = 20


def read_directory_csv(path: Path) -> Iterator[OrganRow]:
    """Validate the whole CSV file, then iterate over its rows.

    Raises :class:`DirectoryImportError` listing every bad line (the first
    ``MAX_REPORTED`` in the reason, all of them in ``error.detail["problems"]``).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DirectoryImportError(f"cannot read {path}: {exc}", path=str(path)) from exc
    return iter(parse_directory(data, str(path)))


def parse_directory(data: bytes, source: str = "<directory>") -> list[OrganRow]:
    """The rows of a directory CSV document, or :class:`DirectoryImportError`."""
    text = _decode(data, source)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[tuple[int, str]] = []
    rows: list[OrganRow] = []
    try:
        columns = _header(reader, source)
        first_line: dict[str, int] = {}
        for record in reader:
            if not any(field.strip() for field in record):
                continue
            row = _row(record, columns, reader.line_num, problems)
            if row is None:
                continue
            if row.organ_id in first_line:
                problems.append((reader.line_num, f"organ {row.organ_id} is listed again "
                                 f"(first on line {first_line[row.organ_id]})"))  # fmt: skip
                continue
            first_line[row.organ_id] = reader.line_num
            rows.append(row)
    except csv.Error as exc:
        problems.append((reader.line_num, f"unreadable CSV: {exc}"))
    else:
        problems.extend(_cycles(rows, first_line))
    if problems:
        raise _failure(source, problems)
    return rows


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _failure(source, [(line, "not UTF-8 text")]) from None


def _header(reader: Iterator[list[str]], source: str) -> list[str]:
    header = next(reader, None)
    if header is None:
        raise _failure(source, [(1, "the file is empty; expected a header organ_id,name")])
    columns = [name.strip() for name in header]
    known = set(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in known]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if missing or unknown or duplicated:
        what = [f"missing column(s) {', '.join(missing)}" if missing else "",
                f"unknown column(s) {', '.join(unknown)}" if unknown else "",
                f"repeated column(s) {', '.join(duplicated)}" if duplicated else ""]  # fmt: skip
        raise _failure(source, [(1, "bad header: " + "; ".join(w for w in what if w))])
    return columns


def _row(
    record: list[str], columns: list[str], line: int, problems: list[tuple[int, str]]
) -> OrganRow | None:
    if len(record) != len(columns):
        problems.append((line, f"expected {len(columns)} fields, found {len(record)}"))
        return None
    values = {name: value.strip() for name, value in zip(columns, record, strict=True)}
    organ_id, name, parent = values["organ_id"], values["name"], values.get("parent_id") or None
    errors: list[str] = []
    for label, value in (("organ_id", organ_id), ("parent_id", parent)):
        if value is None:
            continue
        try:
            validate_organ_id(value)
        except InvalidOrganId:
            errors.append(f"{label} {value[:40]!r} is not an organ identifier")
    if not name:
        errors.append("name is empty")
    if parent is not None and parent == organ_id:
        errors.append("an organ cannot be its own parent")
    if errors:
        problems.append((line, "; ".join(errors)))
        return None
    return OrganRow(organ_id, name, parent)


def _cycles(rows: list[OrganRow], lines: dict[str, int]) -> list[tuple[int, str]]:
    """Parent cycles inside the file (each organ is walked once: O(n))."""
    parents = {row.organ_id: row.parent_id for row in rows}
    state: dict[str, int] = {}  # 1 = on the current walk, 2 = finished
    problems: list[tuple[int, str]] = []
    for start in parents:
        walk: list[str] = []
        node: str | None = start
        while node is not None and node in parents and node not in state:
            state[node] = 1
            walk.append(node)
            node = parents[node]
        if node is not None and state.get(node) == 1:
            cycle = walk[walk.index(node):]
            problems.append((lines[node], "parent cycle: " + " -> ".join([*cycle, node])))
        for organ in walk:
            state[organ] = 2
    return problems


def _failure(source: str, problems: list[tuple[int, str]]) -> DirectoryImportError:
    shown = [f"line {line}: {message}" for line, message in problems[:MAX_REPORTED]]
    more = len(problems) - len(shown)
    if more:
        shown.append(f"... and {more} more")
    reason = f"{len(problems)} bad line(s) in {source}: " + "; ".join(shown)
    return DirectoryImportError(reason, path=source, problems=problems, count=len(problems))
