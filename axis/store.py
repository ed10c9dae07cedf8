"""The hub database: registry, submissions (with their receipts), deliveries, trace.

SQLite (WAL, busy timeout) by default, PostgreSQL by URL, with the same code.
Methods are synchronous; the async hub calls them in a worker thread. Plain frozen
dataclasses cross this API, never ORM objects. Routing never queries per message:
it reads the :class:`~axis.registry.RegistrySnapshot` from :meth:`Store.load_snapshot`.
The registry half lives in :mod:`axis.store_registry`, the document and trace reads in
:mod:`axis.store_documents`; this class adds what the hub pipeline records, and
implements :class:`routing.ports.HubStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from axis.errors import StoreUnavailable
from axis.evidence import log as evidence_log
from axis.evidence.log import LogStore, NewEntry
from axis.store_documents import DocumentReads, accepted_edoc
from axis.store_model import DELIVS, DOCS, EVENTS, LOG_STATE, REFUSALS, SUBS, TABLES
from axis.store_registry import RegistryStore
from axis.store_revocation import keep_revocation
from axis.store_rows import (
    delivery_values,
    event_values,
    submission_record,
    submission_values,
    utc,
)
from routing.values import (
    REFUSED_EXCERPT_BYTES,
    RETRYABLE_CODES,
    DeliveryRecord,
    DocumentIdTaken,
    DuplicateSubmission,
    NewSubmission,
    SubmissionRecord,
    TraceEvent,
)

# PostgreSQL connections per process: a hub worker uses at most 4 at once (its database
# threads); the overflow covers CLI commands and bursts.
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 5


class Store(RegistryStore, DocumentReads, LogStore):
    """The hub database behind a SQLAlchemy URL (``sqlite:///…`` or ``postgresql://…``).

    Every receipt it stores and every registry change it makes is appended to the
    evidence log (:mod:`axis.evidence.log`) in the same transaction; ``evidence_log=False``
    turns that off (for measuring what the log costs, never in service).

    On PostgreSQL each process keeps up to ``pool_size`` connections open and opens up to
    ``max_overflow`` more under load (settings ``db_pool_size``, ``db_max_overflow``); a
    pooled connection is checked before use, so one the server dropped is replaced. A
    server that cannot be connected to raises :class:`~axis.errors.StoreUnavailable`.
    """

    def __init__(
        self, url: str, *, evidence_log: bool = True, pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
    ) -> None:  # fmt: skip
        self.url = url
        self.engine: Engine = _make_engine(url, pool_size, max_overflow)
        self.evidence_log = evidence_log
        self._subtrees = {}

    def create_all(self) -> None:
        """Create the missing tables and indexes (idempotent)."""
        SQLModel.metadata.create_all(self.engine, tables=list(TABLES))
        with self.engine.begin() as conn:
            if conn.execute(sa.select(LOG_STATE.c.id)).first() is None:
                conn.execute(sa.insert(LOG_STATE).values(id=1, size=0))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # submissions, deliveries and the trace

    def find_submission(self, user_id: str, message_id: str) -> SubmissionRecord | None:
        query = sa.select(SUBS).where(SUBS.c.user_id == user_id, SUBS.c.message_id == message_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else submission_record(row)

    def count_submissions(self, outcome: str | None = None) -> int:
        """How many submissions are stored (of one ``outcome``, if given)."""
        query = sa.select(sa.func.count()).select_from(SUBS)
        if outcome is not None:
            query = query.where(SUBS.c.outcome == outcome)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def record_submission(
        self,
        record: SubmissionRecord,
        deliveries: Sequence[DeliveryRecord],
        events: Sequence[TraceEvent],
    ) -> SubmissionRecord:
        """Store a submission, its deliveries and trace events in ONE transaction.

        Raises :class:`DuplicateSubmission` when (user_id, message_id) exists already,
        whichever process recorded it, and :class:`DocumentIdTaken` for a new package
        reusing its organ's DocumentId.
        """
        outcome = self.record_submissions([(record, deliveries, events)])[0]
        if isinstance(outcome, DuplicateSubmission | DocumentIdTaken):
            raise outcome
        return outcome

    def record_submissions(
        self, items: Sequence[NewSubmission]
    ) -> list[SubmissionRecord | DuplicateSubmission | DocumentIdTaken]:
        """Store several submissions (each with its deliveries and events) with ONE commit.

        One commit means one disk flush for the whole batch, which is what a busy hub
        pays for most. Per item, in order: the stored record, a
        :class:`DuplicateSubmission` for a (user_id, message_id) that exists already, or
        a :class:`DocumentIdTaken` for a new package reusing its organ's DocumentId
        (both returned, not raised). A batch holding either is recorded again item by
        item, so the others are stored all the same. A refusal that names no
        consignment (no user_id or no valid message id) is only counted
        (:meth:`refusal_counts`), never stored as a submission.
        """
        if len(items) > 1:
            try:
                with self.engine.begin() as conn:
                    return self._insert_all(conn, items)
            except (IntegrityError, DocumentIdTaken):
                pass  # a re-submission or a reused DocumentId: find which, one at a time
        return [self._record_alone(*item) for item in items]

    def _record_alone(
        self,
        record: SubmissionRecord,
        deliveries: Sequence[DeliveryRecord],
        events: Sequence[TraceEvent],
    ) -> SubmissionRecord | DuplicateSubmission | DocumentIdTaken:
        try:
            with self.engine.begin() as conn:
                return self._insert_all(conn, [(record, deliveries, events)])[0]
        except DocumentIdTaken as taken:
            return taken
        except IntegrityError:
            existing = self.find_submission(record.user_id, record.message_id)
            if existing is not None and existing.error_code in RETRYABLE_CODES:
                return self._replace_refusal(existing, record, deliveries, events)
            if existing is not None:
                return DuplicateSubmission(existing)
            with self.engine.begin() as conn:  # another worker claimed the DocumentId first
                try:
                    return self._insert_all(conn, [(record, deliveries, events)])[0]
                except DocumentIdTaken as taken:
                    return taken

    def _replace_refusal(
        self,
        refused: SubmissionRecord,
        record: SubmissionRecord,
        deliveries: Sequence[DeliveryRecord],
        events: Sequence[TraceEvent],
    ) -> SubmissionRecord | DuplicateSubmission | DocumentIdTaken:
        # A retryable refusal (rate limit) leaves the consignment id to the next attempt.
        try:
            with self.engine.begin() as conn:
                gone = conn.execute(sa.delete(SUBS).where(SUBS.c.id == refused.id,
                                                          SUBS.c.outcome == "rejected"))
                if gone.rowcount != 1:  # another worker replaced it first
                    raise IntegrityError("replaced concurrently", None, ValueError())
                return self._insert_all(conn, [(record, deliveries, events)])[0]
        except DocumentIdTaken as taken:
            return taken
        except IntegrityError:
            existing = self.find_submission(record.user_id, record.message_id)
            if existing is None:
                raise
            return DuplicateSubmission(existing)

    def refusal_counts(self) -> list[dict[str, Any]]:
        """The unbound refusals: user, digest, code, how often, size, first and last time."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(REFUSALS).order_by(REFUSALS.c.last_at)).all()
        return [{"user_id": r.user_id, "sha256": r.sha256, "error_code": r.error_code,
                 "times": int(r.times), "size": int(r.size), "excerpt_bytes": len(r.excerpt),
                 "first_at": utc(r.first_at), "last_at": utc(r.last_at)}
                for r in rows]  # fmt: skip

    def mark_delivered(
        self,
        document_organ: str,
        document_id: str,
        system_id: str,
        at: datetime,
        receipt: bytes | None = None,
    ) -> int:
        """Record when ``system_id`` confirmed receipt of document (organ, id) (status 01).

        ``receipt`` is the hub's signed "delivered" receipt. Only the first confirmation
        of each recipient system counts; returns the number of deliveries changed (0
        when this system had confirmed already, or was never delivered a copy).
        """
        accepted = sa.select(SUBS.c.id).where(*accepted_edoc(document_organ, document_id))
        query = sa.update(DELIVS).where(
            DELIVS.c.submission_id.in_(accepted),
            DELIVS.c.system_id == system_id,
            DELIVS.c.delivered_at.is_(None),
        )
        with self.engine.begin() as conn:
            marked = conn.execute(query.values(delivered_at=utc(at), receipt=receipt))
            changed = int(marked.rowcount)
            if changed and receipt is not None:
                self._log(conn, [NewEntry(evidence_log.RECEIPT, receipt, document_organ,
                                          document_id, system_id=system_id)], at)  # fmt: skip
            return changed

    def log_receipt(
        self, receipt: bytes, *, document_organ: str, document_id: str, submitter: str,
        message_id: str, system_id: str, at: datetime,
    ) -> int | None:  # fmt: skip
        """Append a receipt the hub signed outside a submission (a business receipt) to the
        evidence log; its index (None when the log is off)."""
        entry = NewEntry(evidence_log.RECEIPT, receipt, document_organ, document_id,
                         submitter, message_id, system_id)  # fmt: skip
        with self.engine.begin() as conn:
            indexes = self._log(conn, [entry], at)
        return indexes[0] if indexes else None

    def _insert_all(
        self, conn: Connection, items: Sequence[NewSubmission]
    ) -> list[SubmissionRecord | DuplicateSubmission | DocumentIdTaken]:
        # The receipts of stored submissions go into the log with one append per batch.
        stored = [i for i, (record, _, _) in enumerate(items)
                  if record.user_id and record.message_id]  # fmt: skip
        entries = [_receipt_entry(items[i][0]) for i in stored]
        at = max((record.received_at for record, _, _ in items), default=None)
        indexes = dict(zip(stored, self._log(conn, entries, at), strict=False)) if at else {}
        rows = _Rows()
        stored_records: list[SubmissionRecord | DuplicateSubmission | DocumentIdTaken] = [
            _insert_submission(conn, record, deliveries, events, indexes.get(i), rows)
            for i, (record, deliveries, events) in enumerate(items)]  # fmt: skip
        rows.insert(conn)
        return stored_records

    def add_events(self, events: Sequence[TraceEvent]) -> None:
        if events:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(EVENTS), [event_values(e) for e in events])


# -- helpers -----------------------------------------------------------------------------


def _make_engine(url: str, pool_size: int, max_overflow: int) -> Engine:
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not url.startswith("sqlite"):
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=pool_size,
                                  max_overflow=max_overflow)  # fmt: skip
        sa.event.listen(engine, "handle_error", _unreachable)
        return engine
    # The pool hands a connection to one thread at a time; the hub uses worker threads.
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _unreachable(context: ExceptionContext) -> StoreUnavailable | None:
    """A failure to connect, as a coded error that names the server, never the password.

    A failed pre-ping is left alone: the pool answers it by connecting again."""
    failed = context.sqlalchemy_exception
    if (context.connection is not None or context.is_pre_ping or context.engine is None
            or not isinstance(failed, sa.exc.OperationalError)):  # fmt: skip
        return None
    url = context.engine.url
    why = (str(failed.orig).strip() or type(failed.orig).__name__).splitlines()[0]
    return StoreUnavailable(
        f"cannot connect to the database at {url.host or 'localhost'}:{url.port or 5432}/"
        f"{url.database or ''} as {url.username or '(no user)'}: {why}",
        host=url.host, port=url.port, database=url.database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_INSERT_SUBMISSION = sa.insert(SUBS)


def _receipt_entry(record: SubmissionRecord) -> NewEntry:
    return NewEntry(evidence_log.RECEIPT, record.receipt, record.document_organ,
                    record.document_id, record.user_id, record.message_id,
                    record.user_id)  # fmt: skip


def _insert_submission(
    conn: Connection,
    record: SubmissionRecord,
    deliveries: Sequence[DeliveryRecord],
    events: Sequence[TraceEvent],
    log_index: int | None,
    rows: _Rows,
) -> SubmissionRecord:
    if not (record.user_id and record.message_id):
        _count_refusal(conn, record)
        return record
    values = submission_values(record)
    values["log_index"] = log_index
    result = conn.execute(_INSERT_SUBMISSION, values)
    new_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    if record.kind == "edoc" and record.outcome == "accepted" and record.document_organ:
        _claim_document(conn, record, new_id)
    if record.revocation is not None:
        keep_revocation(conn, new_id, record.revocation)
    rows.deliveries.extend(delivery_values(d, new_id) for d in deliveries)
    rows.events.extend(event_values(e) for e in events)
    return replace(record, id=new_id, log_index=log_index)


@dataclass
class _Rows:
    """A batch's delivery and trace rows, inserted with one statement each (same transaction)."""

    deliveries: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def insert(self, conn: Connection) -> None:
        if self.deliveries:
            conn.execute(sa.insert(DELIVS), self.deliveries)
        if self.events:
            conn.execute(sa.insert(EVENTS), self.events)


def _claim_document(conn: Connection, record: SubmissionRecord, submission_id: int) -> None:
    """The first package of an (organ, DocumentId) claims it; another new package with
    other bytes raises :class:`DocumentIdTaken` (an update, replacement or revocation,
    or the same bytes again, may reuse it)."""
    key = (DOCS.c.sender_organ == record.document_organ,
           DOCS.c.document_id == record.document_id)  # fmt: skip
    claimed = conn.execute(sa.select(DOCS.c.sha256).where(*key)).scalar()
    if claimed is None:
        conn.execute(sa.insert(DOCS).values(sender_organ=record.document_organ,
                                            document_id=record.document_id,
                                            sha256=record.sha256, submission_id=submission_id))
    elif claimed != record.sha256 and not record.amends:
        raise DocumentIdTaken(record)


def _count_refusal(conn: Connection, record: SubmissionRecord) -> None:
    key = (REFUSALS.c.user_id == record.user_id, REFUSALS.c.sha256 == record.sha256,
           REFUSALS.c.error_code == (record.error_code or ""))  # fmt: skip
    bumped = conn.execute(sa.update(REFUSALS).where(*key).values(
        times=REFUSALS.c.times + 1, last_at=utc(record.received_at)))
    if bumped.rowcount == 0:
        conn.execute(sa.insert(REFUSALS).values(
            user_id=record.user_id, sha256=record.sha256, error_code=record.error_code or "",
            times=1, size=record.size, excerpt=record.raw[:REFUSED_EXCERPT_BYTES],
            first_at=utc(record.received_at), last_at=utc(record.received_at)))
