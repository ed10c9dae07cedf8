"""Per-system admission: a token bucket per submitting system, so that one system cannot
starve the others (pure: the time comes in).

Each system may submit ``burst`` consignments at once and ``rate`` per second after
that, per hub process; beyond that its submissions are refused with
``submission.rate_limited`` (a signed receipt it can act on: send the same
consignment again later). A rate of 0 turns the limit off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Idle systems' buckets are forgotten after this long; a full bucket is the same as none.
_FORGET_AFTER_SECONDS = 300.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(slots=True)
class RateLimiter:
    """Token buckets keyed by system id."""

    rate: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _swept_at: float = 0.0

    def admit(self, system_id: str, now: float) -> bool:
        """Take one token from ``system_id``'s bucket at monotonic time ``now``; False when
        it is empty (the submission is refused)."""
        if self.rate <= 0:
            return True
        self._sweep(now)
        bucket = self._buckets.get(system_id)
        if bucket is None:
            bucket = self._buckets[system_id] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def retry_after(self, system_id: str) -> float:
        """Seconds until ``system_id`` has a token again (0 when it has one)."""
        bucket = self._buckets.get(system_id)
        if bucket is None or self.rate <= 0 or bucket.tokens >= 1.0:
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def _sweep(self, now: float) -> None:
        # Bounded memory: however many ids pass, only recently active systems are kept.
        if now - self._swept_at < _FORGET_AFTER_SECONDS:
            return
        self._swept_at = now
        idle = [k for k, b in self._buckets.items() if now - b.at > _FORGET_AFTER_SECONDS]
        for key in idle:
            del self._buckets[key]
