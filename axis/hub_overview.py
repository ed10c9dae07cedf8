"""What an operator's overview of the hub counts: the registry's size and the latest
rejected submissions (``axis hub status``; the registry gauges of :mod:`axis.metrics`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from axis.expiry import expires_soon
from axis.store_model import SUBS
from axis.store_rows import utc
from routing.ports import RegistryView

# The latest rejections are looked for among this many latest submissions: a bounded
# read however large the store (no index on the outcome).
REJECTION_WINDOW = 10_000


@dataclass(frozen=True, slots=True)
class RegistrySize:
    """Systems by state, organs served by a registered system, certificates by state
    (``expiring``: unrevoked, expired or expiring within 30 days)."""

    systems_active: int
    systems_suspended: int
    organs_served: int
    certificates_active: int
    certificates_revoked: int
    certificates_expiring: int

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def registry_size(snapshot: RegistryView, now: datetime) -> RegistrySize:
    """Count ``snapshot`` (expiry judged at ``now``)."""
    systems = list(snapshot.systems.values())
    certificates = [c for s in systems for c in s.certificates.values()]
    active = [c for c in certificates if not c.revoked]
    return RegistrySize(
        systems_active=sum(1 for s in systems if s.active),
        systems_suspended=sum(1 for s in systems if not s.active),
        organs_served=len(snapshot.organ_system),
        certificates_active=len(active),
        certificates_revoked=len(certificates) - len(active),
        certificates_expiring=sum(1 for c in active if expires_soon(c.not_after, now)),
    )


@dataclass(frozen=True, slots=True)
class Rejection:
    """A stored rejected submission: when, whose, which consignment, the code."""

    at: datetime
    user_id: str
    message_id: str
    kind: str
    error_code: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


def latest_rejections(engine: Engine, limit: int) -> list[Rejection]:
    """The ``limit`` latest rejected submissions among the last :data:`REJECTION_WINDOW`
    stored, newest first."""
    if limit <= 0:
        return []
    newest = sa.select(sa.func.max(SUBS.c.id)).scalar_subquery()
    columns = (SUBS.c.received_at, SUBS.c.user_id, SUBS.c.message_id, SUBS.c.kind,
               SUBS.c.error_code)  # fmt: skip
    query = (sa.select(*columns)
             .where(SUBS.c.outcome == "rejected", SUBS.c.id > newest - REJECTION_WINDOW)
             .order_by(SUBS.c.id.desc()).limit(limit))  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [Rejection(utc(at), user, message, kind, code or "")
            for at, user, message, kind, code in rows]  # fmt: skip
