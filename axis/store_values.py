"""The plain values that cross the store's API (pure: no database import).

The hub's pure steps build these; ``axis.store`` persists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

# What the submission claimed to be (its routing key); anything else was rejected.
SubmissionKind = str
Outcome = Literal["accepted", "rejected"]
EventKind = Literal["submitted", "accepted", "rejected", "published", "delivered", "status"]


@dataclass(frozen=True, slots=True)
class SystemRecord:
    system_id: str
    name: str
    active: bool
    created_at: datetime
    organs: tuple[str, ...]
    """Organs explicitly assigned to the system (its own first), not their descendants."""


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    fingerprint: str
    system_id: str
    pem: bytes
    subject: str
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmissionRecord:
    """One consignment as received, accepted or rejected, with its receipt."""

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
    error_code: str | None = None
    reason: str | None = None
    id: int | None = None


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
    """One step of a document's life: ``system_id`` is the system acting or receiving."""

    event: EventKind
    at: datetime
    message_id: str
    system_id: str
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


# One submission as the hub hands it to the store: the record, its deliveries, its events.
NewSubmission = tuple[SubmissionRecord, Sequence[DeliveryRecord], Sequence[TraceEvent]]
