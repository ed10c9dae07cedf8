"""The registry's plain values that cross the store's API (pure: no database import).

The values of the hub pipeline (submissions, deliveries, trace events) are
:mod:`routing.values`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
