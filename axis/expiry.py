"""When the operator is warned that a signing certificate runs out (pure: ``now`` comes in)."""

from __future__ import annotations

from datetime import datetime, timedelta

# `axis agency list` flags, and the hub's metric counts, certificates this close to their end.
EXPIRY_WARNING = timedelta(days=30)


def expires_soon(not_after: datetime, now: datetime) -> bool:
    """True when a certificate valid until ``not_after`` has expired at ``now`` or will
    within :data:`EXPIRY_WARNING`."""
    return not_after <= now + EXPIRY_WARNING
