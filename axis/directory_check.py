"""The rules a directory row obeys, alone and with the rows before it (any file format).

A row is a mapping of field name → text (``replaces``: text or a list of texts), as the
CSV and JSON Lines readers of :mod:`axis.directory` produce. :class:`DirectoryCheck`
turns rows into :class:`~axis.registry.OrganRow` one at a time, remembering only what
the checks across rows need, compactly: every code once, numbered, and per number the
organ it belongs to, that organ's line and its parent (for cycles through either form).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence

from axis.registry import OrganRow, is_qcvn_code
from envelopes.ids import is_organ_id

FIELDS = ("organ_id", "name", "parent_id", "qcvn_code", "d20_code", "replaces")
Record = Mapping[str, str | Sequence[str] | None]
Problem = tuple[int, str]
_NONE = -1


class DirectoryCheck:
    """Checks rows in file order; ``problems`` collects (line, message) of the bad ones."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        # Per code number: the code, the organ (number) it is a code of, that organ's line,
        # and for an organ its parent's code number. About 30 bytes per code besides
        # the code itself, so the national directory's codes take tens of MB, not its rows.
        self._number: dict[str, int] = {}
        self._code: list[str] = []
        self._organ, self._line, self._parent = array("i"), array("i"), array("i")

    def row(self, line: int, record: Record) -> OrganRow | None:
        """The organ of ``record`` on ``line``, or None (the problem is recorded)."""
        found = organ_row(record)
        if isinstance(found, str):
            self.problems.append((line, found))
            return None
        repeated = self._repeated(found)
        if repeated:
            self.problems.append((line, repeated))
            return None
        organ = self._numbered(found.organ_id)
        self._organ[organ], self._line[organ] = organ, line
        if found.parent_id is not None:
            self._parent[organ] = self._numbered(found.parent_id)
        for code in found.aliases():
            self._organ[self._numbered(code)] = organ
        return found

    def finish(self) -> list[Problem]:
        """Every problem, with the parent cycles of the whole file, in line order."""
        self.problems.extend(self._cycles())
        self.problems.sort(key=lambda problem: problem[0])
        return self.problems

    def _numbered(self, code: str) -> int:
        number = self._number.setdefault(code, len(self._code))
        if number == len(self._code):
            self._code.append(code)
            for column in (self._organ, self._line, self._parent):
                column.append(_NONE)
        return number

    def _repeated(self, row: OrganRow) -> str:
        for code in (row.organ_id, *row.aliases()):
            number = self._number.get(code, _NONE)
            organ = _NONE if number == _NONE else self._organ[number]
            if organ == _NONE:
                continue
            if code == row.organ_id and organ == number:
                return f"organ {code} is listed again (first on line {self._line[organ]})"
            return (f"code {code} is already a code of organ {self._code[organ]} "
                    f"(line {self._line[organ]})")  # fmt: skip
        return ""

    def _cycles(self) -> list[Problem]:
        """Parent cycles inside the file, through any code (each organ walked once: O(n))."""
        state = bytearray(len(self._code))  # 1 = on the current walk, 2 = finished
        problems: list[Problem] = []
        for start in range(len(self._code)):
            walk: list[int] = []
            node = start
            while node != _NONE and self._organ[node] == node and not state[node]:
                state[node] = 1
                walk.append(node)
                parent = self._parent[node]
                node = _NONE if parent == _NONE else self._organ[parent]
            if node != _NONE and state[node] == 1:
                cycle = [self._code[n] for n in walk[walk.index(node):]]
                problems.append((self._line[node], "parent cycle: "
                                 + " -> ".join([*cycle, self._code[node]])))  # fmt: skip
            for organ in walk:
                state[organ] = 2
        return problems


def organ_row(record: Record) -> OrganRow | str:
    """The organ ``record`` describes, or what is wrong with it (one message)."""
    row = record_row(record)
    errors = _code_errors(row) + ([] if row.name else ["name is empty"])
    if not errors:
        errors = _consistency_errors(row)
    return "; ".join(errors) if errors else row


def record_row(record: Record) -> OrganRow:
    """The organ ``record`` describes, unchecked: for a record :func:`organ_row` accepted."""
    parent, qcvn, d20 = (_text(record, key) for key in ("parent_id", "qcvn_code", "d20_code"))
    return OrganRow(_text(record, "organ_id"), _text(record, "name"), parent or None,
                    qcvn or None, d20 or None, _codes(record.get("replaces")))  # fmt: skip


def _code_errors(row: OrganRow) -> list[str]:
    errors = [] if row.organ_id else ["organ_id is empty"]
    for label, value in (("organ_id", row.organ_id), ("parent_id", row.parent_id),
                         ("d20_code", row.d20_code),
                         *(("replaces", code) for code in row.replaces)):  # fmt: skip
        if value and not is_organ_id(value):
            errors.append(f"{label} {value[:40]!r} is not an organ identifier")
    if row.qcvn_code and not is_qcvn_code(row.qcvn_code):
        errors.append(f"qcvn_code {row.qcvn_code[:40]!r} is not in the QCVN 102 form "
                      "000.00.00.G22")  # fmt: skip
    if row.d20_code and is_qcvn_code(row.d20_code):
        errors.append(f"d20_code {row.d20_code!r} has the QCVN 102 form: give it as qcvn_code")
    return errors


def _consistency_errors(row: OrganRow) -> list[str]:
    own = "qcvn_code" if is_qcvn_code(row.organ_id) else "d20_code"
    given = row.qcvn_code if own == "qcvn_code" else row.d20_code
    errors = []
    if given and given != row.organ_id:
        errors.append(f"organ_id {row.organ_id} and {own} {given} are two codes of one form "
                      "(an earlier code goes in replaces)")  # fmt: skip
    current = {row.organ_id, row.qcvn_code, row.d20_code}
    errors += [f"replaces names the organ's own code {code}"
               for code in row.replaces if code in current]  # fmt: skip
    if row.parent_id is not None and row.parent_id in {*current, *row.replaces}:
        errors.append("an organ cannot be its own parent")
    return errors


def _text(record: Record, key: str) -> str:
    value = record.get(key)
    return value.strip() if isinstance(value, str) else ""


def _codes(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``replaces``: codes separated by ``;`` (or a list of codes), blanks dropped."""
    items = value.split(";") if isinstance(value, str) else list(value or ())
    return tuple(dict.fromkeys(code.strip() for code in items if code.strip()))
