"""The organ directory in the store: importing organs with every code, reading one back.

A code names one organ: its primary id (``organs.organ_id``) or one of its aliases
(``organ_aliases``: its QCVN 102:2016 or QĐ 20/2020 form, or an old code it replaced),
never both. An imported row is the organ ``organ_id`` with the other codes it lists:

- an organ already stored under a code the row lists, or whose alias is the row's
  ``organ_id``, is *merged* into the row's organ: its codes become aliases of it and its
  explicit system assignment moves over (two different systems: refused);
- an alias the row lists that belonged to another organ moves to the row's organ;
- older codes of the organ stay as aliases (form ``old``), so packages addressed by
  them keep routing.

Parents are stored as given (any code of the parent) and resolved through the aliases
when the snapshot is built. Routing never calls this module per message.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from axis.errors import DirectoryImportError, OrganAlreadyServed
from axis.registry import (
    D20_FORM,
    OLD_FORM,
    QCVN_FORM,
    OrganRow,
    is_qcvn_code,
    resolve_serving,
)
from axis.store_model import ALIASES, ORGANS
from envelopes.ids import validate_organ_id

MAX_CHAIN = 64  # parents followed by a lookup (the national tree is about 5 deep)


@dataclass
class ImportCounts:
    """What one directory import did."""

    rows: int = 0
    aliases: int = 0
    merged: list[tuple[str, str]] = field(default_factory=list)
    """(organ, the organ it was merged into)."""
    moved: list[tuple[str, str, str]] = field(default_factory=list)
    """(merged organ, the organ it was merged into, the system whose assignment moved)."""


@dataclass(frozen=True, slots=True)
class OrganEntry:
    """One stored organ with its other codes."""

    organ_id: str
    name: str
    parent_id: str | None
    """The parent's primary id (as given, when no organ has that code)."""
    system_id: str | None
    """The system explicitly serving this organ (its own, or ``--serves``)."""
    aliases: tuple[tuple[str, str], ...]
    """(code, form) of the organ's other codes, sorted by code."""

    def code(self, form: str) -> str | None:
        """The organ's current code of ``form`` (``QCVN_FORM`` or ``D20_FORM``)."""
        if (form == QCVN_FORM) == is_qcvn_code(self.organ_id):
            return self.organ_id
        return next((code for code, f in self.aliases if f == form), None)

    @property
    def old_codes(self) -> tuple[str, ...]:
        """Codes the organ had before: replaced codes and merged organs' ids."""
        current = {self.code(QCVN_FORM), self.code(D20_FORM)}
        return tuple(code for code, _ in self.aliases if code not in current)


def import_rows(conn: Connection, rows: Iterable[OrganRow], batch_size: int) -> ImportCounts:
    """Upsert ``rows`` with their codes in ``conn``'s transaction (see the module doc).

    Raises :class:`DirectoryImportError` when the rows would make two organs of this
    import one, and :class:`OrganAlreadyServed` when a merge joins two served organs.
    """
    job = _Import(conn)
    for batch in _batches(rows, batch_size, job.counts):
        job.add(batch)
    return job.counts


def canonical_code(conn: Connection, code: str) -> str:
    """The primary id of the organ ``code`` names; ``code`` itself when it is no alias."""
    row = conn.execute(sa.select(ALIASES.c.organ_id).where(ALIASES.c.alias == code)).first()
    return code if row is None else str(row.organ_id)


def alias_map(conn: Connection) -> dict[str, str]:
    """Every alias → its organ's primary id."""
    query = sa.select(ALIASES.c.alias, ALIASES.c.organ_id)
    return {alias: organ for alias, organ in conn.execute(query)}


def organ_chain(conn: Connection, code: str) -> list[OrganEntry]:
    """The organ ``code`` names (any of its codes), then its ancestors up to the root.

    Empty when no organ has that code; stops at a parent not in the directory or on a
    parent cycle.
    """
    chain: list[OrganEntry] = []
    current: str | None = canonical_code(conn, code)
    while current is not None and len(chain) < MAX_CHAIN:
        entry = _entry(conn, current)
        if entry is None or any(e.organ_id == entry.organ_id for e in chain):
            break
        chain.append(entry)
        current = entry.parent_id
    return chain


def chain_serving(chain: Sequence[OrganEntry]) -> str | None:
    """The system serving ``chain[0]``, by the snapshot's rule over its ancestors."""
    if not chain:
        return None
    parents = {e.organ_id: e.parent_id for e in chain}
    explicit = {e.organ_id: e.system_id for e in chain if e.system_id is not None}
    return resolve_serving(parents, explicit).get(chain[0].organ_id)


class _Import:
    """One import's state: which organs it wrote and merged, across batches."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.counts = ImportCounts()
        self.imported: set[str] = set()
        self.merged_into: dict[str, str] = {}
        self.organ_upsert = _upsert(conn, ORGANS, ORGANS.c.organ_id, ("name", "parent_id"))
        self.alias_upsert = _upsert(conn, ALIASES, ALIASES.c.alias, ("organ_id", "form"))

    def add(self, rows: list[OrganRow]) -> None:
        conn, primaries = self.conn, {row.organ_id for row in rows}
        stored, owners = _stored(conn, {c for row in rows for c in (row.organ_id, *row.aliases())})
        merges = [(old, row.organ_id) for row in rows
                  for old in self._absorbed(row, owners, primaries)]  # fmt: skip
        changed = [{"organ_id": r.organ_id, "name": r.name, "parent_id": r.parent_id}
                   for r in rows if stored.get(r.organ_id) != (r.name, r.parent_id)]
        if changed:  # a re-import of the same directory writes nothing
            conn.execute(self.organ_upsert, changed)
        for old, organ in merges:
            self._merge(old, organ)
        were_aliases = [organ for organ in primaries if owners.get(organ, organ) != organ]
        if were_aliases:  # a primary id is no alias any more
            conn.execute(sa.delete(ALIASES).where(_among(conn, ALIASES.c.alias, were_aliases)))
        self._write_aliases(rows, _aliases_of(conn, primaries))

    def _write_aliases(self, rows: list[OrganRow], stored: dict[str, tuple[str, str]]) -> None:
        """Write the codes the rows list, where they differ from the ``stored`` aliases of
        their organs. An organ has one code per form: a stored code of a form a row gives
        becomes ``old``."""
        conn = self.conn
        wanted = {code: (row.organ_id, form) for row in rows
                  for code, form in row.aliases().items()}  # fmt: skip
        given = {row.organ_id: row.forms() for row in rows}
        demoted = [alias for alias, (organ, form) in stored.items()
                   if form != OLD_FORM and given[organ].get(form, alias) != alias]  # fmt: skip
        if demoted:
            conn.execute(sa.update(ALIASES).where(_among(conn, ALIASES.c.alias, demoted))
                         .values(form=OLD_FORM))  # fmt: skip
        changed = [{"alias": code, "organ_id": organ, "form": form}
                   for code, (organ, form) in wanted.items() if stored.get(code) != (organ, form)]
        if changed:
            conn.execute(self.alias_upsert, changed)
        self.counts.aliases += len(wanted)

    def _absorbed(
        self, row: OrganRow, owners: dict[str, str], primaries: Collection[str]
    ) -> list[str]:
        """The stored organs ``row`` merges: those named by its codes, and the one whose
        alias its primary id is."""
        organ = row.organ_id
        if organ in self.merged_into:
            raise _ambiguous(organ, f"was merged into organ {self.merged_into[organ]}")
        self.imported.add(organ)
        found = [owners[organ]] if owners.get(organ, organ) != organ else []
        for code in row.aliases():
            elsewhere = self.merged_into.get(code, organ) != organ
            if code in primaries or code in self.imported or elsewhere:
                raise _ambiguous(code, f"is listed by organ {organ}")
            if owners.get(code) == code:
                found.append(code)
        merged = list(dict.fromkeys(found))
        for old in merged:
            if old in self.imported or old in self.merged_into:
                raise _ambiguous(old, f"would be merged into organ {organ}")
            self.merged_into[old] = organ
        return merged

    def _merge(self, old: str, organ: str) -> None:
        conn = self.conn
        query = sa.select(ORGANS.c.organ_id, ORGANS.c.system_id)
        served = {o: s for o, s in conn.execute(query.where(ORGANS.c.organ_id.in_([old, organ])))}
        theirs, mine = served.get(old), served.get(organ)
        if theirs is not None and mine not in (None, theirs):
            raise OrganAlreadyServed(
                f"organ {old} (served by system {theirs}) would be merged into organ {organ}, "
                f"served by system {mine}: serve one organ from one system first")
        if theirs is not None and mine is None:
            conn.execute(sa.update(ORGANS).where(ORGANS.c.organ_id == organ)
                         .values(system_id=theirs))  # fmt: skip
            self.counts.moved.append((old, organ, theirs))
        conn.execute(sa.update(ALIASES).where(ALIASES.c.organ_id == old).values(organ_id=organ))
        conn.execute(sa.delete(ORGANS).where(ORGANS.c.organ_id == old))
        conn.execute(self.alias_upsert, [{"alias": old, "organ_id": organ, "form": OLD_FORM}])
        self.counts.merged.append((old, organ))


def _ambiguous(code: str, what: str) -> DirectoryImportError:
    return DirectoryImportError(
        f"code {code} {what}, and is an organ of this import of its own: list each code "
        "under one organ", organ_id=code)


def _stored(
    conn: Connection, codes: Collection[str]
) -> tuple[dict[str, tuple[str, str | None]], dict[str, str]]:
    """The stored organs among ``codes`` (id → name, parent), and which stored organ each
    of ``codes`` names (a primary id names itself)."""
    query = sa.select(ORGANS.c.organ_id, ORGANS.c.name, ORGANS.c.parent_id)
    organs = {organ: (name, parent) for organ, name, parent
              in conn.execute(query.where(_among(conn, ORGANS.c.organ_id, codes)))}  # fmt: skip
    owners = {code: code for code in organs}
    alias = sa.select(ALIASES.c.alias, ALIASES.c.organ_id)
    owners.update((code, organ) for code, organ in
                  conn.execute(alias.where(_among(conn, ALIASES.c.alias, codes))))  # fmt: skip
    return organs, owners


def _aliases_of(conn: Connection, organs: Collection[str]) -> dict[str, tuple[str, str]]:
    """The stored aliases of ``organs``: alias → (organ, form)."""
    query = sa.select(ALIASES.c.alias, ALIASES.c.organ_id, ALIASES.c.form)
    rows = conn.execute(query.where(_among(conn, ALIASES.c.organ_id, organs)))
    return {alias: (organ, form) for alias, organ, form in rows}


def _among(conn: Connection, column: sa.ColumnElement[str], codes: Collection[str]) -> Any:
    """``column IN codes`` with one bound parameter, however many codes: an array on
    PostgreSQL, a JSON text read by ``json_each`` on SQLite."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.literal(list(codes), postgresql.ARRAY(sa.String)))
    values = sa.func.json_each(json.dumps(list(codes))).table_valued("value")
    return column.in_(sa.select(values.c.value))


def _entry(conn: Connection, organ: str) -> OrganEntry | None:
    row = conn.execute(sa.select(ORGANS).where(ORGANS.c.organ_id == organ)).first()
    if row is None:
        return None
    query = sa.select(ALIASES.c.alias, ALIASES.c.form).where(ALIASES.c.organ_id == organ)
    aliases = tuple(sorted((str(code), str(form)) for code, form in conn.execute(query)))
    parent = canonical_code(conn, row.parent_id) if row.parent_id is not None else None
    return OrganEntry(organ, row.name, parent, row.system_id, aliases)


def _upsert(conn: Connection, table: sa.Table, key: sa.Column[Any], columns: Sequence[str]) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    return statement.on_conflict_do_update(
        index_elements=[key], set_={name: statement.excluded[name] for name in columns})


def _batches(rows: Iterable[OrganRow], size: int, counts: ImportCounts) -> Iterator[list[OrganRow]]:
    # Deduplicated per batch: one statement must not upsert the same key twice.
    batch: dict[str, OrganRow] = {}
    for row in rows:
        counts.rows += 1
        for code in (row.organ_id, *row.aliases()):
            validate_organ_id(code)
        if row.parent_id is not None:
            validate_organ_id(row.parent_id)
        batch[row.organ_id] = row
        if len(batch) >= size:
            yield list(batch.values())
            batch = {}
    if batch:
        yield list(batch.values())
