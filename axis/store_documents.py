"""The store's reads about documents and consignments: the trace, parties, deliveries.

``DocumentReads`` is mixed into :class:`axis.store.Store`; these are the queries the
hub's query API and the operator commands ask of what :class:`~axis.store.Store`
recorded (submissions with their receipts, deliveries, trace events).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from axis.store_model import DELIVS, EVENTS, SUBS
from axis.store_rows import delivery_record, event_record, submission_record
from routing.values import DeliveryRecord, DocumentParties, SubmissionRecord, TraceEvent


class DocumentReads:
    """Document, delivery and trace reads over the engine of :class:`axis.store.Store`."""

    engine: Engine

    def trace(self, document_id_or_message_id: str) -> list[TraceEvent]:
        """Every event naming this document id or message id, in time order (operators)."""
        key = document_id_or_message_id
        return self._events(sa.or_(EVENTS.c.document_id == key, EVENTS.c.message_id == key))

    def trace_document(self, document_id_or_message_id: str) -> list[TraceEvent]:
        """The whole timeline of a document, named by its id or by one consignment id.

        For the operator on the hub host, who sees every system's events; the query
        API answers systems with :meth:`document_events` and :meth:`consignment_events`.
        """
        events = self.trace(document_id_or_message_id)
        document_id = next((e.document_id for e in events if e.document_id), None)
        if document_id and document_id != document_id_or_message_id:
            return self.trace(document_id)
        return events

    def document_events(self, document_organ: str, document_id: str) -> list[TraceEvent]:
        """Every event about document (organ, id), in time order."""
        return self._events(EVENTS.c.document_organ == document_organ,
                            EVENTS.c.document_id == document_id)  # fmt: skip

    def consignment_events(self, submitter: str, message_id: str) -> list[TraceEvent]:
        """Every event about consignment ``message_id`` of system ``submitter``."""
        return self._events(EVENTS.c.submitter == submitter, EVENTS.c.message_id == message_id)

    def _events(self, *where: sa.ColumnElement[bool]) -> list[TraceEvent]:
        query = sa.select(EVENTS).where(*where).order_by(EVENTS.c.at, EVENTS.c.id)
        with self.engine.connect() as conn:
            return [event_record(row) for row in conn.execute(query).all()]

    def documents_named(
        self, document_id: str, sender_organ: str | None = None
    ) -> list[DocumentParties]:
        """The parties of every accepted document with this id (of one sender organ, if
        given): one entry per sender organ, oldest first."""
        # Only the organs, oldest first: a status must not load every package's bytes.
        first = sa.func.min(SUBS.c.id)
        query = (sa.select(SUBS.c.document_organ)
                 .where(SUBS.c.document_id == document_id, SUBS.c.outcome == "accepted",
                        SUBS.c.kind == "edoc", SUBS.c.document_organ.is_not(None))
                 .group_by(SUBS.c.document_organ).order_by(first))  # fmt: skip
        if sender_organ is not None:
            query = query.where(SUBS.c.document_organ == sender_organ)
        with self.engine.connect() as conn:
            organs = [str(organ) for organ in conn.execute(query).scalars()]
        found = [self.document_parties(organ, document_id) for organ in organs]
        return [parties for parties in found if parties is not None]

    def document_parties(self, document_organ: str, document_id: str) -> DocumentParties | None:
        """Sender (system, organ) and recipient systems → organs of an accepted document."""
        # The first package's sender columns only: a status reads this for every organ
        # with its DocumentId, and must not load their packages' bytes.
        query = (sa.select(SUBS.c.user_id, SUBS.c.message_id, SUBS.c.sha256)
                 .where(*accepted_edoc(document_organ, document_id))
                 .order_by(SUBS.c.id).limit(1))  # fmt: skip
        with self.engine.connect() as conn:
            original = conn.execute(query).first()
        if original is None:
            return None
        recipients: dict[str, tuple[str, ...]] = {}
        for delivery in self.deliveries(document_organ, document_id):
            merged = recipients.get(delivery.system_id, ()) + delivery.organs
            recipients[delivery.system_id] = tuple(dict.fromkeys(merged))
        return DocumentParties(document_id, str(original.user_id), document_organ, recipients,
                               str(original.message_id), str(original.sha256))  # fmt: skip

    def parties(self, document_organ: str, document_id: str) -> set[str]:
        """Sender and recipient systems of document (organ, id)."""
        found = self.document_parties(document_organ, document_id)
        return set() if found is None else {found.sender_system, *found.recipients}

    def delivered_receipts(self, document_organ: str, document_id: str) -> list[bytes]:
        """The signed "delivered" receipts of a document, in delivery order."""
        query = sa.select(DELIVS.c.receipt).join(SUBS).where(
            *accepted_edoc(document_organ, document_id), DELIVS.c.receipt.is_not(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(DELIVS.c.delivered_at, DELIVS.c.system_id))
            return [bytes(receipt) for receipt in rows.scalars()]

    def find_document(self, document_organ: str, document_id: str) -> SubmissionRecord | None:
        """The first accepted package of document (organ, id)."""
        query = sa.select(SUBS).where(*accepted_edoc(document_organ, document_id))
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(SUBS.c.id).limit(1)).first()
        return None if row is None else submission_record(row)

    def deliveries(self, document_organ: str, document_id: str) -> list[DeliveryRecord]:
        """The deliveries of the accepted packages of document (organ, id)."""
        query = sa.select(DELIVS).join(SUBS).where(*accepted_edoc(document_organ, document_id))
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


def accepted_edoc(document_organ: str, document_id: str) -> tuple[sa.ColumnElement[bool], ...]:
    """The conditions selecting the accepted edoc submissions of document (organ, id)."""
    return (SUBS.c.document_organ == document_organ, SUBS.c.document_id == document_id,
            SUBS.c.outcome == "accepted", SUBS.c.kind == "edoc")  # fmt: skip
