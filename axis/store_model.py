"""The hub database's tables (SQLModel); the values crossing the API are in store_values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, DateTime, ForeignKey, Index, LargeBinary, String, Text
from sqlmodel import Field, SQLModel

_ID = 35  # longest organ identifier

# -- schema ------------------------------------------------------------------------------


def _when(*, nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


def _text(*, nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(Text, nullable=nullable))


class SystemTable(SQLModel, table=True):
    __tablename__ = "systems"
    system_id: str = Field(primary_key=True, max_length=_ID)
    name: str
    active: bool = True
    created_at: datetime = _when()


class OrganTable(SQLModel, table=True):
    __tablename__ = "organs"
    organ_id: str = Field(primary_key=True, max_length=_ID)
    name: str
    parent_id: str | None = Field(default=None, max_length=_ID)
    # The system explicitly serving this organ: its operator, or assigned by `--serves`.
    system_id: str | None = Field(
        default=None, sa_column=Column(String(_ID), ForeignKey("systems.system_id"), index=True)
    )


class OrganAliasTable(SQLModel, table=True):
    """Another code of an organ: its QCVN 102 or QĐ 20/2020 form, or an old code it replaced.
    A code names one organ: it is an ``organs.organ_id`` or an alias here, never both."""

    __tablename__ = "organ_aliases"
    alias: str = Field(primary_key=True, max_length=_ID)
    organ_id: str = Field(max_length=_ID, index=True)
    form: str = Field(max_length=8)  # axis.registry.QCVN_FORM, D20_FORM or OLD_FORM


class CertificateTable(SQLModel, table=True):
    __tablename__ = "certificates"
    fingerprint: str = Field(primary_key=True, max_length=64)
    system_id: str = Field(foreign_key="systems.system_id", max_length=_ID, index=True)
    pem: str = _text()
    subject: str = _text()
    not_before: datetime = _when()
    not_after: datetime = _when()
    revoked_at: datetime | None = _when(nullable=True)


class RegistryChangeTable(SQLModel, table=True):
    """One row per change to systems, organs or certificates, whichever process made it."""

    __tablename__ = "registry_changes"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _when()


class SubmissionTable(SQLModel, table=True):
    __tablename__ = "submissions"
    # This UNIQUE constraint is the cross-process deduplication of consignments.
    __table_args__ = (
        sa.UniqueConstraint("user_id", "message_id", name="uq_submissions_user_message"),
        Index("ix_submissions_document", "document_organ", "document_id"),
        {"sqlite_autoincrement": True},
    )
    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=255)
    message_id: str = Field(max_length=300)
    kind: str = Field(max_length=16)
    sha256: str = Field(max_length=64)
    document_id: str | None = Field(default=None, max_length=255)
    sender_organ: str | None = Field(default=None, max_length=_ID)
    # Whose document: the sender's organ for a document, ResponseFor/OrganId for a status.
    document_organ: str | None = Field(default=None, max_length=_ID)
    size: int = Field(default=0, sa_column=Column(sa.BigInteger, nullable=False, default=0))
    outcome: str = Field(max_length=16)
    error_code: str | None = Field(default=None, max_length=128)
    reason: str | None = _text(nullable=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    receipt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    received_at: datetime = _when()
    # Where the evidence log holds the receipt (None: logged before the log existed).
    log_index: int | None = Field(default=None, sa_column=Column(sa.BigInteger, nullable=True))


class DocumentTable(SQLModel, table=True):
    """The first package that used a DocumentId, per sender organ: a different new package
    with the same (organ, DocumentId) is refused."""

    __tablename__ = "documents"
    sender_organ: str = Field(primary_key=True, max_length=_ID)
    document_id: str = Field(primary_key=True, max_length=255)
    sha256: str = Field(max_length=64)
    submission_id: int = Field(foreign_key="submissions.id")


class RefusalTable(SQLModel, table=True):
    """Refusals the hub cannot bind to a consignment (no user_id, or no valid message id):
    counted per (user, body digest, code), with one bounded excerpt, never stored again."""

    __tablename__ = "refusals"
    user_id: str = Field(primary_key=True, max_length=255)
    sha256: str = Field(primary_key=True, max_length=64)
    error_code: str = Field(primary_key=True, max_length=128)
    times: int = Field(default=1, sa_column=Column(sa.BigInteger, nullable=False))
    size: int = Field(default=0, sa_column=Column(sa.BigInteger, nullable=False))
    excerpt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    first_at: datetime = _when()
    last_at: datetime = _when()


class DeliveryTable(SQLModel, table=True):
    __tablename__ = "deliveries"
    submission_id: int = Field(foreign_key="submissions.id", primary_key=True)
    system_id: str = Field(primary_key=True, max_length=_ID, index=True)
    organs: str = _text()
    published_at: datetime = _when()
    delivered_at: datetime | None = _when(nullable=True)
    # The hub's signed "delivered" receipt, made when the recipient's status 01 came.
    receipt: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class TraceEventTable(SQLModel, table=True):
    __tablename__ = "trace_events"
    __table_args__ = (
        Index("ix_trace_events_document", "document_organ", "document_id"),
        Index("ix_trace_events_document_id", "document_id"),
        Index("ix_trace_events_message_id", "message_id"),
        {"sqlite_autoincrement": True},
    )
    id: int | None = Field(default=None, primary_key=True)
    document_organ: str | None = Field(default=None, max_length=_ID)
    document_id: str | None = Field(default=None, max_length=255)
    message_id: str = Field(max_length=255)
    submitter: str = Field(default="", max_length=255)  # whose consignment message_id is
    event: str = Field(max_length=16)
    system_id: str = Field(max_length=255)
    organ_id: str | None = _text(nullable=True)  # comma-joined for a multi-organ delivery
    status_code: str | None = Field(default=None, max_length=16)
    error_code: str | None = Field(default=None, max_length=128)
    detail: str | None = _text(nullable=True)
    at: datetime = _when()


class LogEntryTable(SQLModel, table=True):
    """The evidence log (docs/evidence.md): entries are appended, never updated or deleted.
    The columns after ``leaf_hash`` only index what an entry is about."""

    __tablename__ = "log_entries"
    __table_args__ = (
        Index("ix_log_entries_document", "document_organ", "document_id"),
        Index("ix_log_entries_consignment", "submitter", "message_id"),
        Index("ix_log_entries_system", "type", "system_id"),
    )
    idx: int = Field(sa_column=Column(sa.BigInteger, primary_key=True, autoincrement=False))
    type: str = Field(max_length=16)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    document_organ: str | None = Field(default=None, max_length=_ID)
    document_id: str | None = Field(default=None, max_length=255)
    submitter: str | None = Field(default=None, max_length=255)
    message_id: str | None = Field(default=None, max_length=300)
    system_id: str | None = Field(default=None, max_length=255)
    at: datetime = _when()


class LogStateTable(SQLModel, table=True):
    """One row: the log's size. Updating it first in an appending transaction serialises
    appends across hub processes (one sequence, no forks)."""

    __tablename__ = "log_state"
    id: int = Field(primary_key=True)
    size: int = Field(default=0, sa_column=Column(sa.BigInteger, nullable=False, default=0))


class TreeHeadTable(SQLModel, table=True):
    """Every signed tree head the hub made, with its RFC 3161 token when it has one."""

    __tablename__ = "tree_heads"
    tree_size: int = Field(sa_column=Column(sa.BigInteger, primary_key=True,
                                            autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    signed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    timestamp: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    at: datetime = _when()


class RevocationMaterialTable(SQLModel, table=True):
    """A CRL or OCSP response the hub relied on for a signer, stored once (by its SHA-256)."""

    __tablename__ = "revocation_material"
    sha256: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=8)  # "crl" or "ocsp"
    issuer: str = _text()
    crl_number: str | None = Field(default=None, max_length=64)  # up to 20 octets: as text
    this_update: datetime = _when()
    next_update: datetime | None = _when(nullable=True)
    produced_at: datetime | None = _when(nullable=True)
    source: str = _text()
    der: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class SubmissionRevocationTable(SQLModel, table=True):
    """Which material an accepted submission's signer was checked against."""

    __tablename__ = "submission_revocation"
    submission_id: int = Field(foreign_key="submissions.id", primary_key=True)
    material_sha256: str = Field(foreign_key="revocation_material.sha256", max_length=64,
                                 index=True)  # fmt: skip


def _table(model: type[SQLModel]) -> sa.Table:
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    return table


SYSTEMS, ORGANS, CERTS = _table(SystemTable), _table(OrganTable), _table(CertificateTable)
SUBS, DELIVS, EVENTS = _table(SubmissionTable), _table(DeliveryTable), _table(TraceEventTable)
CHANGES, DOCS, REFUSALS = (_table(RegistryChangeTable), _table(DocumentTable),
                           _table(RefusalTable))  # fmt: skip
LOG, LOG_STATE, HEADS = _table(LogEntryTable), _table(LogStateTable), _table(TreeHeadTable)
ALIASES = _table(OrganAliasTable)
MATERIAL, SUB_MATERIAL = _table(RevocationMaterialTable), _table(SubmissionRevocationTable)
TABLES = (SYSTEMS, ORGANS, ALIASES, CERTS, CHANGES, SUBS, DOCS, REFUSALS, DELIVS, EVENTS, LOG,
          LOG_STATE, HEADS, MATERIAL, SUB_MATERIAL)
