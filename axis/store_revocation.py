"""The revocation evidence of stored submissions: each CRL or OCSP response kept once (by
its SHA-256) and linked to every accepted submission whose signer was checked against it.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from axis.store_model import MATERIAL, SUB_MATERIAL, SUBS
from axis.store_rows import utc, utc_or_none
from signing.revocation import RevocationEvidence


def keep_revocation(conn: Connection, submission_id: int, evidence: RevocationEvidence) -> None:
    """Store ``evidence`` unless stored before (by any worker), and link the submission."""
    values = {"sha256": evidence.sha256, "kind": evidence.kind, "issuer": evidence.issuer,
              "crl_number": None if evidence.crl_number is None else str(evidence.crl_number),
              "this_update": utc(evidence.this_update),
              "next_update": utc_or_none(evidence.next_update),
              "produced_at": utc_or_none(evidence.produced_at), "source": evidence.source,
              "der": evidence.der}  # fmt: skip
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(MATERIAL).values(**values).on_conflict_do_nothing())
    conn.execute(sa.insert(SUB_MATERIAL).values(submission_id=submission_id,
                                                material_sha256=evidence.sha256))  # fmt: skip


def revocation_of_document(
    engine: Engine, document_organ: str, document_id: str, submitters: Iterable[str]
) -> list[RevocationEvidence]:
    """The material behind the accepted submissions of ``submitters`` about a document."""
    return _material(engine, SUBS.c.document_organ == document_organ,
                     SUBS.c.document_id == document_id,
                     SUBS.c.user_id.in_(sorted(set(submitters))))  # fmt: skip


def revocation_of_consignment(
    engine: Engine, submitter: str, message_id: str
) -> list[RevocationEvidence]:
    """The material behind one accepted consignment."""
    return _material(engine, SUBS.c.user_id == submitter, SUBS.c.message_id == message_id)


def _material(engine: Engine, *where: sa.ColumnElement[bool]) -> list[RevocationEvidence]:
    linked = sa.select(SUB_MATERIAL.c.material_sha256).join(
        SUBS, SUBS.c.id == SUB_MATERIAL.c.submission_id).where(*where)  # fmt: skip
    query = sa.select(MATERIAL).where(MATERIAL.c.sha256.in_(linked)).order_by(
        MATERIAL.c.this_update, MATERIAL.c.sha256)  # fmt: skip
    with engine.connect() as conn:
        return [RevocationEvidence(
            row.kind, bytes(row.der), row.issuer, utc(row.this_update),
            utc_or_none(row.next_update),
            crl_number=None if row.crl_number is None else int(row.crl_number),
            produced_at=utc_or_none(row.produced_at), source=row.source)
            for row in conn.execute(query)]  # fmt: skip
