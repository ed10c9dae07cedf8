"""Reading the national organ directory (``axis directory import FILE``): CSV or JSON Lines.

Both formats carry the same fields:

``organ_id``   required, the organ's primary id: a QCVN 102:2016 code (``000.00.00.G22``)
               or a QĐ 20/2020 code (up to 35 characters of ``A-Z``, ``0-9`` and dots)
``name``       required, non-empty
``parent_id``  optional; empty for a root. Any code of the parent (either form, or an
               old code); the parent may be in the file or already in the database.
``qcvn_code``  optional, the organ's QCVN 102 code when ``organ_id`` is its QĐ 20 code
               (the same as ``organ_id`` is allowed)
``d20_code``   optional, the organ's QĐ 20/2020 code when ``organ_id`` is its QCVN 102
               code; a code in the QCVN 102 form is refused here
``replaces``   optional, old codes this organ replaces, separated by ``;`` (JSON: a
               list of codes, or the same text)

Every code of an organ then names that organ (see :mod:`axis.store_directory`).

CSV: UTF-8 (a byte-order mark is allowed), comma-separated, RFC 4180 quoting, one header
line naming the columns, in any order; blank lines are skipped; surrounding spaces are
trimmed; other columns are refused (a misspelt ``parent_id`` column must not silently
drop every parent). Example::

    organ_id,name,parent_id,d20_code,replaces
    000.00.00.H29,UBND tỉnh Hòa Bình,,H29,
    000.00.01.H29,Sở Nội vụ tỉnh Hòa Bình,H29,H29.01,000.00.09.H29

JSON Lines (``.jsonl``, ``.ndjson``, ``.json``, or ``--format jsonl``): UTF-8, one JSON
object per line with the fields above as keys (strings, or null for an optional one);
blank lines are skipped, other keys are refused::

    {"organ_id": "000.00.01.H29", "name": "Sở Nội vụ", "parent_id": "H29", "d20_code": "H29.01"}

The file is read twice, streaming: the first pass checks every row, alone and against
the others (each code names one organ, no parent cycle), and reports every bad row with
its line number; the rows are read again for the import only when the file is clean,
so an import is all or nothing. Memory holds the codes, lines and parents, not the rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from axis.directory_check import FIELDS, DirectoryCheck, Problem, Record, record_row
from axis.errors import DirectoryImportError
from axis.registry import OrganRow

FORMATS = ("csv", "jsonl")
REQUIRED_COLUMNS = ("organ_id", "name")
MAX_REPORTED = 20
_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


def directory_format(path: Path, given: str | None = None) -> str:
    """``given``, else the format the file name says: JSON Lines for ``.jsonl``,
    ``.ndjson`` and ``.json``, CSV for anything else."""
    if given is not None:
        return given
    return "jsonl" if path.suffix.lower() in _JSON_SUFFIXES else "csv"


def read_directory(path: Path, fmt: str | None = None) -> Iterator[OrganRow]:
    """Check the whole file, then iterate over its rows (read again, streaming).

    Raises :class:`DirectoryImportError` listing every bad line (the first
    ``MAX_REPORTED`` in the reason, all of them in ``error.detail["problems"]``).
    """
    fmt = directory_format(path, fmt)
    with _opened(path) as stream:
        digest = _scan(stream, fmt, str(path), keep=None)
    return _rows(path, fmt, digest)


def read_directory_csv(path: Path) -> Iterator[OrganRow]:
    """:func:`read_directory` of a CSV file."""
    return read_directory(path, "csv")


def parse_directory(data: bytes, source: str = "<directory>", fmt: str = "csv") -> list[OrganRow]:
    """The rows of a directory document in memory, or :class:`DirectoryImportError`."""
    rows: list[OrganRow] = []
    _scan(io.BytesIO(data), fmt, source, keep=rows.append)
    return rows


class _Undecodable(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _Hashing:
    """The lines of a binary stream, hashed as they are read (the second read must read
    the bytes the first one checked)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.digest = stream, hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        for raw in self.stream:
            self.digest.update(raw)
            yield raw


def _opened(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise DirectoryImportError(f"cannot read {path}: {exc}", path=str(path)) from exc


def _scan(
    stream: BinaryIO, fmt: str, source: str, keep: Callable[[OrganRow], None] | None
) -> str:
    """Check every row (keeping the good ones with ``keep``); the SHA-256 of the bytes."""
    check = DirectoryCheck()
    lines = _Hashing(stream)
    try:
        for line, record in _records(lines, fmt, source, check.problems):
            row = check.row(line, record)
            if row is not None and keep is not None:
                keep(row)
    except _Undecodable as exc:
        check.problems.append((exc.line, "not UTF-8 text"))
    else:
        check.finish()
    if check.problems:
        raise _failure(source, check.problems)
    return lines.digest.hexdigest()


def _rows(path: Path, fmt: str, digest: str) -> Iterator[OrganRow]:
    """The second read: the rows of the file the first read found clean. If the bytes
    differ, it raises after the last row, so the import's transaction rolls back."""
    source, problems = str(path), list[Problem]()
    with _opened(path) as stream:
        lines = _Hashing(stream)
        try:
            for _, record in _records(lines, fmt, source, problems):
                yield record_row(record)
        except (_Undecodable, DirectoryImportError):
            problems.append((0, "unreadable"))
    if problems or lines.digest.hexdigest() != digest:
        raise DirectoryImportError(f"{source} changed during the import: nothing was imported",
                                   path=source)  # fmt: skip


def _records(
    lines: Iterable[bytes], fmt: str, source: str, problems: list[Problem]
) -> Iterator[tuple[int, Record]]:
    if fmt == "jsonl":
        return _jsonl_records(lines, source, problems)
    return _csv_records(lines, source, problems)


def _text_lines(lines: Iterable[bytes]) -> Iterator[str]:
    for number, raw in enumerate(lines, 1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise _Undecodable(number) from None


def _csv_records(
    lines: Iterable[bytes], source: str, problems: list[Problem]
) -> Iterator[tuple[int, Record]]:
    reader = csv.reader(_text_lines(lines), strict=True)
    columns = _header(reader, source)
    try:
        for record in reader:
            if not any(field.strip() for field in record):
                continue
            if len(record) != len(columns):
                found = f"expected {len(columns)} fields, found {len(record)}"
                problems.append((reader.line_num, found))
                continue
            yield reader.line_num, dict(zip(columns, record, strict=True))
    except csv.Error as exc:
        problems.append((reader.line_num, f"unreadable CSV: {exc}"))


def _header(reader: Iterator[list[str]], source: str) -> list[str]:
    header = next(reader, None)
    if header is None:
        raise _failure(source, [(1, "the file is empty; expected a header organ_id,name")])
    columns = [name.strip() for name in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in FIELDS]
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if missing or unknown or duplicated:
        what = [f"missing column(s) {', '.join(missing)}" if missing else "",
                f"unknown column(s) {', '.join(unknown)}" if unknown else "",
                f"repeated column(s) {', '.join(duplicated)}" if duplicated else ""]  # fmt: skip
        raise _failure(source, [(1, "bad header: " + "; ".join(w for w in what if w))])
    return columns


def _jsonl_records(
    lines: Iterable[bytes], source: str, problems: list[Problem]
) -> Iterator[tuple[int, Record]]:
    first = True
    for number, text in enumerate(_text_lines(lines), 1):
        if not text.strip():
            continue
        if first and text.lstrip().startswith("["):
            raise _failure(source, [(number, "a JSON array: the directory is JSON Lines, "
                                             "one object per line")])  # fmt: skip
        first = False
        record = _json_record(text)
        if isinstance(record, str):
            problems.append((number, record))
        else:
            yield number, record


def _json_record(text: str) -> Record | str:
    """The object on one JSON line, or what is wrong with it."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(value, dict):
        return "expected a JSON object"
    unknown = sorted(key for key in value if key not in FIELDS)
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}"
    wrong = [key for key, item in value.items() if not _json_field_ok(key, item)]
    if wrong:
        return "; ".join(f"{key} must be a string" + (" or a list of strings"
                         if key == "replaces" else "") for key in wrong)  # fmt: skip
    return value


def _json_field_ok(key: str, value: object) -> bool:
    if value is None or isinstance(value, str):
        return True
    return key == "replaces" and isinstance(value, list) and all(isinstance(v, str) for v in value)


def _failure(source: str, problems: list[Problem]) -> DirectoryImportError:
    shown = [f"line {line}: {message}" for line, message in problems[:MAX_REPORTED]]
    more = len(problems) - len(shown)
    if more:
        shown.append(f"... and {more} more")
    reason = f"{len(problems)} bad line(s) in {source}: " + "; ".join(shown)
    return DirectoryImportError(reason, path=source, problems=problems, count=len(problems))
