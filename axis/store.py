"""The hub database: registry, submissions (with their receipts), deliveries, trace.

SQLite (WAL, busy timeout) by default, PostgreSQL by URL, with the same code.
Methods are synchronous; the async hub calls them in a worker thread. Plain frozen
dataclasses cross this API, never ORM objects. Routing never queries per message:
it reads the :class:`~axis.registry.RegistrySnapshot` from :meth:`Store.load_snapshot`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from axis.errors import (
    AgencyExists,
    CertificateInUse,
    InvalidKeyMaterial,
    OrganAlreadyServed,
    UnknownAgency,
)
from axis.registry import (
    CertInfo,
    OrganRow,
    RegistrySnapshot,
    SystemInfo,
    build_snapshot,
    normalize_fingerprint,
)
from axis.store_model import CERTS, CHANGES, DELIVS, EVENTS, ORGANS, SUBS, SYSTEMS, TABLES
from axis.store_rows import (
    certificate_info,
    certificate_record,
    delivery_record,
    delivery_values,
    event_record,
    event_values,
    submission_record,
    submission_values,
    utc,
)
from axis.store_values import (
    CertificateRecord,
    DeliveryRecord,
    DuplicateSubmission,
    NewSubmission,
    SubmissionRecord,
    SystemRecord,
    TraceEvent,
)
from envelopes.ids import validate_organ_id

if TYPE_CHECKING:
    from routing.decide import DocumentParties

__all__ = [
    "CertificateRecord", "DeliveryRecord", "DuplicateSubmission", "NewSubmission", "OrganRow",
    "Store",
    "SubmissionRecord", "SystemRecord", "TraceEvent",
]  # fmt: skip

# -- the store ---------------------------------------------------------------------------


class Store:
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

    # systems and organs

    def add_system(self, system_id: str, name: str, serves: Sequence[str] = ()) -> None:
        """Register a system operated by organ ``system_id`` and explicitly serving ``serves``.

        Organs missing from the directory are created (named after the system for its
        own organ); a later directory import fills in their names and parents.
        """
        wanted = [validate_organ_id(system_id), *map(validate_organ_id, serves)]
        organs = list(dict.fromkeys(wanted))
        try:
            with self.engine.begin() as conn:
                if conn.execute(_system_query(system_id)).first() is not None:
                    raise AgencyExists(f"system {system_id} is already registered")
                conn.execute(sa.insert(SYSTEMS).values(
                    system_id=system_id, name=name, active=True, created_at=_now()))
                for organ in organs:
                    _assign(conn, organ, system_id, name if organ == system_id else organ)
                _registry_changed(conn)
        except IntegrityError as exc:
            raise AgencyExists(f"system {system_id} is already registered") from exc

    def get_system(self, system_id: str) -> SystemRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(_system_query(system_id)).first()
            return None if row is None else _system_record(conn, row)

    def list_systems(self) -> list[SystemRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(SYSTEMS).order_by(SYSTEMS.c.system_id)).all()
            return [_system_record(conn, row) for row in rows]

    def set_system_active(self, system_id: str, active: bool) -> None:
        """Suspend (False) or resume (True) a system; raises :class:`UnknownAgency`."""
        with self.engine.begin() as conn:
            query = sa.update(SYSTEMS).where(SYSTEMS.c.system_id == system_id)
            if conn.execute(query.values(active=active)).rowcount == 0:
                raise UnknownAgency(f"no system {system_id} is registered")
            _registry_changed(conn)

    def import_organs(self, rows: Iterable[OrganRow], batch_size: int = 5000) -> int:
        """Upsert directory rows by ``organ_id`` in one transaction; return rows read.

        Names and parents are replaced (a repeated id: the last row wins); explicit
        system assignments are kept.
        """
        counter = [0]
        with self.engine.begin() as conn:
            statement = _organ_upsert(conn)
            for batch in _batches(rows, batch_size, counter):
                conn.execute(statement, batch)
            _registry_changed(conn)
        return counter[0]

    def registry_version(self) -> int:
        """A number that moves whenever systems, organs or certificates change.

        Cheap enough to poll: a hub reloads its snapshot only when this moved.
        """
        # A count, not the highest id: on PostgreSQL a lower id may commit after a higher one.
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(CHANGES)).scalar_one())

    def load_snapshot(self) -> RegistrySnapshot:
        """Read the whole registry into an immutable in-memory snapshot."""
        with self.engine.connect() as conn:
            certs: dict[str, dict[str, CertInfo]] = {}
            for cert in conn.execute(sa.select(CERTS)):
                certs.setdefault(cert.system_id, {})[cert.fingerprint] = certificate_info(cert)
            systems = [
                SystemInfo(row.system_id, row.name, row.active, certs.get(row.system_id, {}))
                for row in conn.execute(sa.select(SYSTEMS))
            ]
            columns = (ORGANS.c.organ_id, ORGANS.c.name, ORGANS.c.parent_id, ORGANS.c.system_id)
            organs = conn.execute(sa.select(*columns)).all()
        assigned = {organ: system for organ, _, _, system in organs if system is not None}
        rows = (OrganRow(organ, name, parent) for organ, name, parent, _ in organs)
        return build_snapshot(systems, rows, assigned)

    # certificates

    def add_certificate(self, system_id: str, pem: bytes) -> CertificateRecord:
        """Register a signing certificate (PEM) to a system; idempotent for the same system."""
        cert = _load_certificate(pem)
        fingerprint = cert.fingerprint(hashes.SHA256()).hex()
        with self.engine.begin() as conn:
            if conn.execute(_system_query(system_id)).first() is None:
                raise UnknownAgency(f"no system {system_id} is registered")
            existing = conn.execute(_cert_query(fingerprint)).first()
            if existing is not None:
                if existing.system_id != system_id:
                    raise CertificateInUse(
                        f"certificate {fingerprint} is registered to {existing.system_id}")
                return certificate_record(existing)
            values = {
                "fingerprint": fingerprint, "system_id": system_id,
                "pem": cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                "subject": cert.subject.rfc4514_string(), "revoked_at": None,
                "not_before": cert.not_valid_before_utc, "not_after": cert.not_valid_after_utc,
            }  # fmt: skip
            conn.execute(sa.insert(CERTS).values(**values))
            _registry_changed(conn)
            return certificate_record(conn.execute(_cert_query(fingerprint)).one())

    def list_certificates(self, system_id: str) -> list[CertificateRecord]:
        query = sa.select(CERTS).where(CERTS.c.system_id == system_id).order_by(CERTS.c.not_before)
        with self.engine.connect() as conn:
            return [certificate_record(row) for row in conn.execute(query)]

    def revoke_certificate(
        self, system_id: str, fingerprint: str, at: datetime | None = None
    ) -> CertificateRecord:
        """Mark a system's certificate revoked (the first revocation time is kept)."""
        fingerprint = normalize_fingerprint(fingerprint)
        with self.engine.begin() as conn:
            row = conn.execute(_cert_query(fingerprint)).first()
            if row is None or row.system_id != system_id:
                raise UnknownAgency(f"no certificate {fingerprint} is registered to {system_id}")
            if row.revoked_at is None:
                query = sa.update(CERTS).where(CERTS.c.fingerprint == fingerprint)
                conn.execute(query.values(revoked_at=utc(at or _now())))
                _registry_changed(conn)
            return certificate_record(conn.execute(_cert_query(fingerprint)).one())

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
        from routing.decide import DocumentParties  # the hub pipeline owns this value type

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


def _registry_changed(conn: Connection) -> None:
    conn.execute(sa.insert(CHANGES).values(at=_now()))


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


def _now() -> datetime:
    return datetime.now(UTC)


def _system_query(system_id: str) -> sa.Select[Any]:
    return sa.select(SYSTEMS).where(SYSTEMS.c.system_id == system_id)


def _cert_query(fingerprint: str) -> sa.Select[Any]:
    return sa.select(CERTS).where(CERTS.c.fingerprint == fingerprint)


def _accepted_edoc(document_id: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (SUBS.c.document_id == document_id, SUBS.c.outcome == "accepted",
            SUBS.c.kind == "edoc")  # fmt: skip


def _assign(conn: Connection, organ: str, system_id: str, default_name: str) -> None:
    current = conn.execute(sa.select(ORGANS.c.system_id).where(ORGANS.c.organ_id == organ))
    row = current.first()
    if row is None:
        conn.execute(sa.insert(ORGANS).values(
            organ_id=organ, name=default_name, parent_id=None, system_id=system_id))
    elif row.system_id not in (None, system_id):
        raise OrganAlreadyServed(f"organ {organ} is already served by system {row.system_id}")
    else:
        query = sa.update(ORGANS).where(ORGANS.c.organ_id == organ)
        conn.execute(query.values(system_id=system_id))


def _organ_upsert(conn: Connection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(ORGANS)
    return statement.on_conflict_do_update(
        index_elements=[ORGANS.c.organ_id],
        set_={"name": statement.excluded.name, "parent_id": statement.excluded.parent_id},
    )


def _batches(
    rows: Iterable[OrganRow], size: int, counter: list[int]
) -> Iterator[list[dict[str, Any]]]:
    # Deduplicated per batch: one statement must not upsert the same key twice.
    batch: dict[str, dict[str, Any]] = {}
    for row in rows:
        counter[0] += 1
        validate_organ_id(row.organ_id)
        if row.parent_id is not None:
            validate_organ_id(row.parent_id)
        batch[row.organ_id] = {"organ_id": row.organ_id, "name": row.name,
                               "parent_id": row.parent_id}  # fmt: skip
        if len(batch) >= size:
            yield list(batch.values())
            batch = {}
    if batch:
        yield list(batch.values())


def _system_record(conn: Connection, row: Row[Any]) -> SystemRecord:
    query = sa.select(ORGANS.c.organ_id).where(ORGANS.c.system_id == row.system_id)
    assigned = sorted(conn.execute(query).scalars(), key=lambda o: (o != row.system_id, o))
    return SystemRecord(row.system_id, row.name, row.active, utc(row.created_at),
                        tuple(assigned))  # fmt: skip


def _load_certificate(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except (ValueError, TypeError) as exc:
        raise InvalidKeyMaterial(f"not a PEM X.509 certificate: {exc}") from exc


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
