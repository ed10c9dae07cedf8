"""The evidence log in the hub's store: appends inside the store's own transactions,
proofs, tree heads, and the check that the stored log is the one the hub signed.

Appends happen in the transaction that records what the entry states (a submission and
its receipt, a registry change), so the log and the store never disagree. The single
``log_state`` row is updated first in such a transaction: that row lock (PostgreSQL) or
the database write lock (SQLite) serialises appends across hub processes, giving one
sequence of indexes with no gaps and no forks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from axis.evidence import merkle
from axis.evidence.bundle import canonical_json, entry_bytes
from axis.evidence.errors import LogEntryNotFound, LogTampered
from axis.store_model import HEADS, LOG, LOG_STATE
from routing.contract import utc_text

RECEIPT = "receipt"
REGISTRY = "registry"
# Perfect subtrees at least this wide are cached once computed: the log is append-only,
# so their hashes never change, and a proof then reads O(log n) of them.
_CACHED_WIDTH = 64
_SCAN_CHUNK = 2048


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to append, with what it is about (for finding it again)."""

    type: str
    payload: bytes
    document_organ: str | None = None
    document_id: str | None = None
    submitter: str | None = None
    message_id: str | None = None
    system_id: str | None = None


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A stored entry: its index, type and payload, and for a receipt the system whose
    consignment it answers (None for ``delivered`` receipts and registry changes)."""

    index: int
    type: str
    payload: bytes
    leaf_hash: bytes
    submitter: str | None = None


@dataclass(frozen=True, slots=True)
class StoredHead:
    """A signed tree head as kept, with its RFC 3161 token if it has one."""

    tree_size: int
    root_hash: bytes
    signed: bytes
    timestamp: bytes | None
    at: datetime


def registry_entry(change: str, at: datetime, system_id: str | None, **fields: Any) -> NewEntry:
    """A registry change as a log entry (docs/evidence.md)."""
    data: dict[str, Any] = {"change": change, "at": utc_text(at), **fields}
    if system_id is not None:
        data["system_id"] = system_id
    return NewEntry(REGISTRY, canonical_json(data), system_id=system_id)


def append(conn: Connection, entries: Sequence[NewEntry], at: datetime) -> list[int]:
    """Append ``entries`` in the caller's transaction; their indexes."""
    if not entries:
        return []
    n = len(entries)
    bumped = conn.execute(sa.update(LOG_STATE).where(LOG_STATE.c.id == 1)
                          .values(size=LOG_STATE.c.size + n).returning(LOG_STATE.c.size))
    size = bumped.scalar()
    if size is None:  # a store made before the log: its first append
        conn.execute(sa.insert(LOG_STATE).values(id=1, size=n))
        size = n
    first = int(size) - n
    conn.execute(sa.insert(LOG), [
        {"idx": first + i, "type": e.type, "payload": e.payload,
         "leaf_hash": merkle.leaf_hash(entry_bytes(e.type, e.payload)),
         "document_organ": e.document_organ, "document_id": e.document_id,
         "submitter": e.submitter, "message_id": e.message_id, "system_id": e.system_id,
         "at": at}
        for i, e in enumerate(entries)])  # fmt: skip
    return list(range(first, first + n))


class LogStore:
    """Reads of the evidence log over the store's engine (mixed into :class:`axis.store.Store`)."""

    engine: Engine
    _subtrees: dict[tuple[int, int], bytes]  # set to {} by the store's __init__

    def log_size(self) -> int:
        """How many entries the log has (committed)."""
        with self.engine.connect() as conn:
            size = conn.execute(sa.select(LOG_STATE.c.size).where(LOG_STATE.c.id == 1)).scalar()
        return int(size or 0)

    def log_entry(self, index: int) -> LogEntry:
        """Entry ``index``; ``log.not_found`` if there is none."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(LOG).where(LOG.c.idx == index)).first()
        if row is None:
            raise LogEntryNotFound(f"the log has no entry {index}")
        return _entry(row)

    def log_entries_about(
        self, *, document: tuple[str, str] | None = None,
        consignment: tuple[str, str] | None = None, registry_of: str | None = None,
    ) -> list[LogEntry]:  # fmt: skip
        """Receipts about a document (organ, id) or a consignment (submitter, id), or the
        registry entries of a system, in log order."""
        query = sa.select(LOG)
        if document is not None:
            query = query.where(LOG.c.type == RECEIPT, LOG.c.document_organ == document[0],
                                LOG.c.document_id == document[1])  # fmt: skip
        elif consignment is not None:
            query = query.where(LOG.c.type == RECEIPT, LOG.c.submitter == consignment[0],
                                LOG.c.message_id == consignment[1])  # fmt: skip
        else:
            query = query.where(LOG.c.type == REGISTRY, LOG.c.system_id == registry_of)
        with self.engine.connect() as conn:
            return [_entry(row) for row in conn.execute(query.order_by(LOG.c.idx))]

    def subtree_hash(self, start: int, end: int) -> bytes:
        """The Merkle tree hash of entries ``start``…``end - 1``."""
        width = end - start
        perfect = width >= _CACHED_WIDTH and width & (width - 1) == 0 and start % width == 0
        if perfect and (start, end) in self._subtrees:
            return self._subtrees[(start, end)]
        if width <= _CACHED_WIDTH:
            found = merkle.root_of(self._leaf_hashes(start, end))
        else:
            k = merkle.split_point(width)
            found = merkle.node_hash(self.subtree_hash(start, start + k),
                                     self.subtree_hash(start + k, end))  # fmt: skip
        if perfect:
            self._subtrees[(start, end)] = found
        return found

    def root_at(self, size: int) -> bytes:
        """The root of the log's first ``size`` entries."""
        self._check_size(size)
        return merkle.empty_root() if size == 0 else self.subtree_hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The audit path of entry ``index`` in the tree of ``size`` entries."""
        self._check_size(size)
        if not 0 <= index < size:
            raise LogEntryNotFound(f"entry {index} is not in a tree of {size} entries")
        return merkle.inclusion_proof(index, size, self.subtree_hash)

    def inclusion_proofs(self, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """The audit paths of several entries in the tree of ``size`` entries (the size is
        checked once)."""
        self._check_size(size)
        if any(not 0 <= index < size for index in indexes):
            raise LogEntryNotFound(f"not every entry of {list(indexes)} is in a tree of {size}")
        return [merkle.inclusion_proof(index, size, self.subtree_hash) for index in indexes]

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The proof that the first ``old_size`` entries are a prefix of ``new_size``."""
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise LogEntryNotFound(f"no consistency proof from {old_size} to {new_size}")
        return merkle.consistency_proof(old_size, new_size, self.subtree_hash)

    # heads

    def add_head(self, head: StoredHead) -> bool:
        """Keep a signed head; False if a head of that size is kept already."""
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(HEADS).values(
                    tree_size=head.tree_size, root_hash=head.root_hash, signed=head.signed,
                    timestamp=head.timestamp, at=head.at))  # fmt: skip
        except sa.exc.IntegrityError:
            return False
        return True

    def set_head_timestamp(self, size: int, token: bytes) -> None:
        """Give the head of ``size`` the RFC 3161 token it could not get when it was made."""
        query = sa.update(HEADS).where(HEADS.c.tree_size == size, HEADS.c.timestamp.is_(None))
        with self.engine.begin() as conn:
            conn.execute(query.values(timestamp=token))

    def latest_head(self) -> StoredHead | None:
        """The newest signed head (the largest tree), if any."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(HEADS).order_by(HEADS.c.tree_size.desc()).limit(1)).first()
        return None if row is None else _head(row)

    def head_of_size(self, size: int) -> StoredHead | None:
        """The signed head of a tree of ``size`` entries, if the hub made one."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(HEADS).where(HEADS.c.tree_size == size)).first()
        return None if row is None else _head(row)

    def list_heads(self, limit: int = 100) -> list[StoredHead]:
        """The newest ``limit`` heads, newest first."""
        query = sa.select(HEADS).order_by(HEADS.c.tree_size.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_head(row) for row in conn.execute(query)]

    def recompute_root(self, size: int) -> bytes:
        """The root of the first ``size`` entries, recomputed from their payloads (not from
        stored hashes); ``log.tampered`` if an entry is missing or its stored leaf hash is
        not its payload's."""
        builder = merkle.RootBuilder(self._keep_subtree)
        for index, type_, payload, stored in self._scan(size):
            if index != builder.size:
                raise LogTampered(f"log entry {builder.size} is missing", index=builder.size)
            leaf = merkle.leaf_hash(entry_bytes(type_, payload))
            if leaf != stored:
                raise LogTampered(f"log entry {index} does not hash to its stored leaf hash",
                                  index=index)  # fmt: skip
            builder.add(leaf)
        if builder.size != size:
            raise LogTampered(f"the log holds {builder.size} of the {size} entries its head "
                              "counts", index=builder.size)  # fmt: skip
        return builder.root()

    def _keep_subtree(self, start: int, end: int, digest: bytes) -> None:
        if end - start >= _CACHED_WIDTH:  # the proofs that follow a check read these
            self._subtrees[(start, end)] = digest

    def _scan(self, size: int) -> Iterator[tuple[int, str, bytes, bytes]]:
        start = 0
        columns = (LOG.c.idx, LOG.c.type, LOG.c.payload, LOG.c.leaf_hash)
        while start < size:
            query = (sa.select(*columns).where(LOG.c.idx >= start, LOG.c.idx < size)
                     .order_by(LOG.c.idx).limit(_SCAN_CHUNK))  # fmt: skip
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            for row in rows:
                yield int(row[0]), str(row[1]), bytes(row[2]), bytes(row[3])
            start = int(rows[-1][0]) + 1

    def _leaf_hashes(self, start: int, end: int) -> list[bytes]:
        # Hashed from the payloads, not read from the stored hashes: a proof made from an
        # altered entry then fails to verify, whatever else was altered with it.
        columns = (LOG.c.idx, LOG.c.type, LOG.c.payload, LOG.c.leaf_hash)
        query = (sa.select(*columns).where(LOG.c.idx >= start, LOG.c.idx < end)
                 .order_by(LOG.c.idx))  # fmt: skip
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if [int(r[0]) for r in rows] != list(range(start, end)):
            raise LogTampered(f"log entries {start}…{end - 1} are not all there")
        leaves = [merkle.leaf_hash(entry_bytes(str(r[1]), bytes(r[2]))) for r in rows]
        for row, leaf in zip(rows, leaves, strict=True):
            if leaf != bytes(row[3]):
                raise LogTampered(f"log entry {row[0]} does not hash to its stored leaf hash",
                                  index=int(row[0]))  # fmt: skip
        return leaves

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.log_size():
            raise LogEntryNotFound(f"the log has no tree of {size} entries")


def _entry(row: Any) -> LogEntry:
    return LogEntry(int(row.idx), str(row.type), bytes(row.payload), bytes(row.leaf_hash),
                    row.submitter)  # fmt: skip


def _head(row: Any) -> StoredHead:
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    timestamp = None if row.timestamp is None else bytes(row.timestamp)
    return StoredHead(int(row.tree_size), bytes(row.root_hash), bytes(row.signed), timestamp, at)
