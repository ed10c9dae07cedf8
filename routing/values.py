"""The plain values the hub pipeline owns (pure): what a receipt states, what the
store records of a submission, a delivery and a trace event, and a document's parties.

:mod:`routing` builds them; the service (``axis.store``, ``axis.receipts``) persists
and signs them through the interfaces of :mod:`routing.ports`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from envelopes.attachment_refs import AttachmentRef
from signing.revocation import RevocationEvidence

# What the submission claimed to be (its routing key); anything else was rejected.
SubmissionKind = str
Outcome = Literal["accepted", "rejected"]
EventKind = Literal["submitted", "accepted", "rejected", "published", "delivered", "status"]


# Refusals that do not use up the consignment id: nothing was wrong with the package itself
# (a streamed file may be uploaded, or uploaded again, first), the sender sends the same id
# again later, and the store replaces the refused record with the new outcome.
RETRYABLE_CODES = frozenset({"submission.rate_limited", "hub.unavailable",
                             "attachment.incomplete", "attachment.digest_mismatch"})

# What the store keeps of a refused body: its size, digest and this much of its start.
REFUSED_EXCERPT_BYTES = 4096

ReceiptEvent = Literal["accepted", "rejected", "delivered", "status"]
RECEIPT_EVENTS: tuple[ReceiptEvent, ...] = ("accepted", "rejected", "delivered", "status")


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256, the digest receipts name packages by."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a receipt states. ``error_code``/``reason`` are set only for ``rejected``;
    ``status_code`` only for ``status`` (a business receipt: a recipient's status about
    the document was routed); ``signer_fingerprint`` (SHA-256 of the package signer's
    certificate) for an accepted package."""

    receipt_id: str
    event: ReceiptEvent
    message_id: str
    package_sha256: str
    hub_time: datetime
    sender_system: str = ""
    sender_organ: str = ""
    document_id: str = ""
    recipients: tuple[str, ...] = ()
    error_code: str = ""
    reason: str = ""
    kind: str = "edoc"
    recipient_system: str = ""
    status_code: str = ""
    signer_fingerprint: str = ""
    attachments: tuple[AttachmentRef, ...] = ()  # streamed files an accepted package names


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmissionRecord:
    """One consignment as received, accepted or rejected, with its receipt.

    A document is named by ``(document_organ, document_id)``: for a document package
    the organ is its sender's, for a status the organ of the document it answers
    (``ResponseFor/OrganId``). ``raw`` is the whole body for an accepted submission
    and at most :data:`REFUSED_EXCERPT_BYTES` of it for a rejected one; ``size`` is
    the body's length either way. ``amends`` (not stored) marks an update,
    replacement or revocation, which may reuse its document's id.
    """

    user_id: str
    message_id: str
    kind: SubmissionKind
    sha256: str
    outcome: Outcome
    raw: bytes
    receipt: bytes
    received_at: datetime
    document_id: str | None = None
    sender_organ: str | None = None
    document_organ: str | None = None
    error_code: str | None = None
    reason: str | None = None
    size: int = 0
    amends: bool = False
    id: int | None = None
    log_index: int | None = None  # where the store's evidence log holds the receipt
    # The CA's CRL or OCSP response the hub relied on for the signer (accepted only).
    revocation: RevocationEvidence | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryRecord:
    """A copy published to one recipient system's inbox; delivered = its status 01 came."""

    system_id: str
    organs: tuple[str, ...]
    published_at: datetime
    delivered_at: datetime | None = None
    submission_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceEvent:
    """One step of a document's life: ``system_id`` is the system acting or receiving.

    ``message_id`` is a consignment of system ``submitter``; the document is
    ``(document_organ, document_id)``.
    """

    event: EventKind
    at: datetime
    message_id: str
    system_id: str
    submitter: str = ""
    document_organ: str | None = None
    document_id: str | None = None
    organ_id: str | None = None
    status_code: str | None = None
    error_code: str | None = None
    detail: str | None = None
    id: int | None = None


class DuplicateSubmission(Exception):  # internal signal, deliberately not an AxisError
    """The (user_id, message_id) pair was recorded before: replay ``existing.receipt``."""

    def __init__(self, existing: SubmissionRecord) -> None:
        super().__init__(f"duplicate consignment {existing.user_id}/{existing.message_id}")
        self.existing = existing


class DocumentIdTaken(Exception):  # internal signal, deliberately not an AxisError
    """The sender organ used this DocumentId before, for another package."""

    def __init__(self, record: SubmissionRecord) -> None:
        super().__init__(f"document {record.document_organ}/{record.document_id} exists")
        self.record = record


# One submission as the hub hands it to the store: the record, its deliveries, its events.
NewSubmission = tuple[SubmissionRecord, Sequence[DeliveryRecord], Sequence[TraceEvent]]


@dataclass(frozen=True, slots=True)
class DocumentParties:
    """Who sent a document and which systems received it (from the store).

    A document is ``(sender_organ, document_id)``: two organs may use one DocumentId
    without touching each other's records. ``message_id`` and ``sha256`` are those of
    the first accepted package; ``recipients`` maps every system that was delivered a
    copy (of it or of an update) to its organs.
    """

    document_id: str
    sender_system: str
    sender_organ: str
    recipients: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    message_id: str = ""
    sha256: str = ""
