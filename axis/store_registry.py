"""The registry half of the hub database: systems, organs, certificates, the snapshot.

Every registry write also appends a row to ``registry_changes``, whose count
(:meth:`RegistryStore.registry_version`) hubs poll to know when to reload the
:class:`~axis.registry.RegistrySnapshot`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from axis.errors import AgencyExists, CertificateInUse, OrganAlreadyServed, UnknownAgency
from axis.evidence.log import NewEntry, append, registry_entry
from axis.registry import (
    CertInfo,
    OrganRow,
    RegistrySnapshot,
    SystemInfo,
    build_snapshot,
    normalize_fingerprint,
)
from axis.store_directory import (
    ImportCounts,
    OrganEntry,
    alias_map,
    canonical_code,
    import_rows,
    organ_chain,
)
from axis.store_model import CERTS, CHANGES, ORGANS, SYSTEMS
from axis.store_rows import certificate_info, certificate_record, utc
from axis.store_values import CertificateRecord, SystemRecord
from envelopes.ids import validate_organ_id
from signing.errors import InvalidKeyMaterial


class RegistryStore:
    """Registry reads and writes over the store's engine (see :class:`axis.store.Store`)."""

    engine: Engine
    evidence_log: bool

    def _changed(self, conn: Connection, at: datetime, *entries: NewEntry) -> None:
        """Count a registry change (hubs reload their snapshot) and log what changed."""
        conn.execute(sa.insert(CHANGES).values(at=at))
        self._log(conn, entries, at)

    def _log(self, conn: Connection, entries: Sequence[NewEntry], at: datetime) -> list[int]:
        """Append ``entries`` to the evidence log in ``conn``'s transaction, when the store
        keeps one; their indexes."""
        return append(conn, entries, at) if self.evidence_log else []

    def add_system(self, system_id: str, name: str, serves: Sequence[str] = ()) -> None:
        """Register a system operated by organ ``system_id`` and explicitly serving ``serves``.

        Organs may be named by any of their codes (the primary id is assigned). Organs
        missing from the directory are created (named after the system for its own
        organ); a later directory import fills in their names and parents.
        """
        wanted = [validate_organ_id(system_id), *map(validate_organ_id, serves)]
        try:
            with self.engine.begin() as conn:
                if conn.execute(_system_query(system_id)).first() is not None:
                    raise AgencyExists(f"system {system_id} is already registered")
                conn.execute(sa.insert(SYSTEMS).values(
                    system_id=system_id, name=name, active=True, created_at=_now()))
                organs = list(dict.fromkeys(canonical_code(conn, code) for code in wanted))
                for organ in organs:
                    _assign(conn, organ, system_id, name if organ == organs[0] else organ)
                now = _now()
                self._changed(conn, now, registry_entry("system_registered", now, system_id,
                                                        name=name),
                              registry_entry("organ_served", now, system_id,
                                             organs=sorted(organs)))  # fmt: skip
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
            now = _now()
            change = "system_resumed" if active else "system_suspended"
            self._changed(conn, now, registry_entry(change, now, system_id))

    def import_organs(self, rows: Iterable[OrganRow], batch_size: int = 5000) -> int:
        """Upsert directory rows by ``organ_id`` in one transaction; return rows read.

        Names and parents are replaced (a repeated id: the last row wins); explicit
        system assignments are kept. See :meth:`import_directory`.
        """
        return self.import_directory(rows, batch_size).rows

    def import_directory(self, rows: Iterable[OrganRow], batch_size: int = 5000) -> ImportCounts:
        """Upsert directory rows with their other codes, in one transaction
        (:mod:`axis.store_directory` says how codes and merges work); what it did."""
        with self.engine.begin() as conn:
            counts = import_rows(conn, rows, batch_size)
            now = _now()
            moved = [{"organ": old, "into": organ, "system_id": system}
                     for old, organ, system in counts.moved]  # fmt: skip
            self._changed(conn, now, registry_entry(
                "directory_imported", now, None, rows=counts.rows, aliases=counts.aliases,
                merged=len(counts.merged), assignments_moved=moved))  # fmt: skip
        return counts

    def organ_chain(self, code: str) -> list[OrganEntry]:
        """The organ ``code`` names (any of its codes), then its ancestors to the root."""
        with self.engine.connect() as conn:
            return organ_chain(conn, code)

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
            aliases = alias_map(conn)
        assigned = {organ: system for organ, _, _, system in organs if system is not None}
        rows = (OrganRow(organ, name, parent) for organ, name, parent, _ in organs)
        return build_snapshot(systems, rows, assigned, aliases)

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
            now = _now()
            self._changed(conn, now, registry_entry("certificate_added", now, system_id,
                                                    fingerprint=fingerprint,
                                                    certificate=values["pem"]))  # fmt: skip
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
                when = utc(at or _now())
                conn.execute(query.values(revoked_at=when))
                self._changed(conn, when, registry_entry("certificate_revoked", when, system_id,
                                                         fingerprint=fingerprint))  # fmt: skip
            return certificate_record(conn.execute(_cert_query(fingerprint)).one())






def _now() -> datetime:
    return datetime.now(UTC)


def _system_query(system_id: str) -> sa.Select[Any]:
    return sa.select(SYSTEMS).where(SYSTEMS.c.system_id == system_id)


def _cert_query(fingerprint: str) -> sa.Select[Any]:
    return sa.select(CERTS).where(CERTS.c.fingerprint == fingerprint)



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

