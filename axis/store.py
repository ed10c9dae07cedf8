"""The hub database: registry, submissions (with their receipts), deliveries, trace.

SQLite (WAL, busy timeout) by default, PostgreSQL by URL, with the same code.
Methods are synchronous; the async hub calls them in a worker thread. Plain frozen
dataclasses cross this API, never ORM objects. Routing never queries per message:
it reads the :class:`~axis.registry.RegistrySnapshot` from :meth:`Store.load_snapshot`.
The registry half lives in :mod:`axis.store_registry`; this class adds what the hub
pipeline records, and implements :class:`routing.ports.HubStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from axis.store_model import DELIVS, EVENTS, SUBS, TABLES
from axis.store_registry import RegistryStore
from axis.store_rows import (
    delivery_record,
    delivery_values,
    event_record,
    event_values,
    submission_record,
    submission_values,
    utc,
)
from routing.values import (
    DeliveryRecord,
    DocumentParties,
    DuplicateSubmission,
    NewSubmission,
    SubmissionRecord,
    TraceEvent,
)


class Store(RegistryStore):
    """The hub database behind a SQLAlchemy URL (``sqlite:///…`` or ``postgresql://…``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = _make_engine(url)

    def create_all(self) -> None:
        """Create the missing tables and indexes (idempotent)."""
        SQLModel.metadata.create_all(self.engine, tables=list(TABLES))

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
        whichever process recorded it.
        """
        outcome = self.record_submissions([(record, deliveries, events)])[0]
        if isinstance(outcome, DuplicateSubmission):
            raise outcome
        return outcome

    def record_submissions(
        self, items: Sequence[NewSubmission]
    ) -> list[SubmissionRecord | DuplicateSubmission]:
        """Store several submissions (each with its deliveries and events) with ONE commit.

        One commit means one disk flush for the whole batch, which is what a busy hub
        pays for most. Per item, in order: the stored record, or a
        :class:`DuplicateSubmission` (returned, not raised) for a (user_id, message_id)
        that exists already. A batch holding a re-submission is recorded again item by
        item, so the others are stored all the same.
        """
        if len(items) > 1:
            try:
                with self.engine.begin() as conn:
                    return [_insert_submission(conn, *item) for item in items]
            except IntegrityError:
                pass  # some item is a re-submission: find out which, one at a time
        return [self._record_alone(*item) for item in items]

    def _record_alone(
        self,
        record: SubmissionRecord,
        deliveries: Sequence[DeliveryRecord],
        events: Sequence[TraceEvent],
    ) -> SubmissionRecord | DuplicateSubmission:
        try:
            with self.engine.begin() as conn:
                return _insert_submission(conn, record, deliveries, events)
        except IntegrityError:
            existing = self.find_submission(record.user_id, record.message_id)
            if existing is None:
                raise
            return DuplicateSubmission(existing)

    def mark_delivered(
        self, document_id: str, system_id: str, at: datetime, receipt: bytes | None = None
    ) -> int:
        """Record when ``system_id`` confirmed receipt of ``document_id`` (status 01).

        ``receipt`` is the hub's signed "delivered" receipt. Only the first confirmation
        counts; returns the number of deliveries changed.
        """
        accepted = sa.select(SUBS.c.id).where(*_accepted_edoc(document_id))
        query = sa.update(DELIVS).where(
            DELIVS.c.submission_id.in_(accepted),
            DELIVS.c.system_id == system_id,
            DELIVS.c.delivered_at.is_(None),
        )
        with self.engine.begin() as conn:
            changed = conn.execute(query.values(delivered_at=utc(at), receipt=receipt))
            return int(changed.rowcount)

    def add_events(self, events: Sequence[TraceEvent]) -> None:
        if events:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(EVENTS), [event_values(e) for e in events])

    def trace(self, document_id_or_message_id: str) -> list[TraceEvent]:
        """Every event naming this document id or message id, in time order."""
        key = document_id_or_message_id
        query = sa.select(EVENTS).where(sa.or_(EVENTS.c.document_id == key,
                                               EVENTS.c.message_id == key))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(EVENTS.c.at, EVENTS.c.id)).all()
        return [event_record(row) for row in rows]

    def trace_document(self, document_id_or_message_id: str) -> list[TraceEvent]:
        """The whole timeline of a document, named by its id or by one consignment id."""
        events = self.trace(document_id_or_message_id)
        document_id = next((e.document_id for e in events if e.document_id), None)
        if document_id and document_id != document_id_or_message_id:
            return self.trace(document_id)
        return events

    def parties(self, document_id: str) -> set[str]:
        """Sender and recipient systems of the accepted edoc submissions of a document."""
        senders = sa.select(SUBS.c.user_id).where(*_accepted_edoc(document_id))
        recipients = sa.select(DELIVS.c.system_id).join(SUBS).where(*_accepted_edoc(document_id))
        with self.engine.connect() as conn:
            return set(conn.execute(sa.union(senders, recipients)).scalars())

    def document_parties(self, document_id: str) -> DocumentParties | None:
        """Sender (system, organ) and recipient systems → organs of an accepted document."""
        original = self.find_document(document_id)
        if original is None:
            return None
        recipients = {d.system_id: d.organs for d in self.deliveries(document_id)}
        return DocumentParties(document_id, original.user_id, original.sender_organ or "",
                               recipients, original.message_id, original.sha256)  # fmt: skip

    def delivered_receipts(self, document_id: str) -> list[bytes]:
        """The signed "delivered" receipts of a document, in delivery order."""
        query = sa.select(DELIVS.c.receipt).join(SUBS).where(
            *_accepted_edoc(document_id), DELIVS.c.receipt.is_not(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(DELIVS.c.delivered_at, DELIVS.c.system_id))
            return [bytes(receipt) for receipt in rows.scalars()]

    def find_document(self, document_id: str) -> SubmissionRecord | None:
        """The (first) accepted edoc submission carrying ``document_id``."""
        query = sa.select(SUBS).where(*_accepted_edoc(document_id)).order_by(SUBS.c.id).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else submission_record(row)

    def deliveries(self, document_id: str) -> list[DeliveryRecord]:
        """The deliveries of the accepted edoc submissions of a document."""
        query = sa.select(DELIVS).join(SUBS).where(*_accepted_edoc(document_id))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(DELIVS.c.submission_id, DELIVS.c.system_id))
            return [delivery_record(row) for row in rows]

    def submission_deliveries(self, submission_id: int) -> list[DeliveryRecord]:
        """The copies one stored submission was routed to."""
        query = sa.select(DELIVS).where(DELIVS.c.submission_id == submission_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(DELIVS.c.system_id))
            return [delivery_record(row) for row in rows]

    def get_receipt(self, user_id: str, message_id: str) -> bytes | None:
        query = sa.select(SUBS.c.receipt).where(
            SUBS.c.user_id == user_id, SUBS.c.message_id == message_id)
        with self.engine.connect() as conn:
            receipt = conn.execute(query).scalar()
        return None if receipt is None else bytes(receipt)



# -- helpers -----------------------------------------------------------------------------


def _make_engine(url: str) -> Engine:
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    # The pool hands a connection to one thread at a time; the hub uses worker threads.
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _accepted_edoc(document_id: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (SUBS.c.document_id == document_id, SUBS.c.outcome == "accepted",
            SUBS.c.kind == "edoc")  # fmt: skip




_INSERT_SUBMISSION = sa.insert(SUBS)


def _insert_submission(
    conn: Connection,
    record: SubmissionRecord,
    deliveries: Sequence[DeliveryRecord],
    events: Sequence[TraceEvent],
) -> SubmissionRecord:
    result = conn.execute(_INSERT_SUBMISSION, submission_values(record))
    new_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    if deliveries:
        conn.execute(sa.insert(DELIVS), [delivery_values(d, new_id) for d in deliveries])
    if events:
        conn.execute(sa.insert(EVENTS), [event_values(e) for e in events])
    return replace(record, id=new_id)
