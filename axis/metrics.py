"""Prometheus metrics of the hub (a :class:`routing.ports.HubMonitor`). Every label comes
from a bounded set."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from axis.errors import error_codes


class HubMetrics:
    """The hub's counters, one registry per hub process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.submissions = Counter(
            "axis_submissions",
            "Submissions processed, by package kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "axis_rejections",
            "Rejected submissions, by error code.",
            ["code"],
            registry=self.registry,
        )
        self.processing = Histogram(
            "axis_processing_seconds",
            "Time from consuming a submission to its ack.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.deliveries = Counter(
            "axis_deliveries",
            "Copies published to recipient inboxes, by package kind.",
            ["kind"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "axis_duplicates",
            "Re-submissions answered with the original receipt.",
            registry=self.registry,
        )
        self.retries = Counter(
            "axis_retries",
            "Submissions parked for a retry after a failure (database or broker trouble).",
            registry=self.registry,
        )
        self.gave_up_total = Counter(
            "axis_gave_up",
            "Submissions that failed their last attempt (hub.unavailable, axis.dead).",
            registry=self.registry,
        )
        self.heads_unstamped = Counter(
            "axis_log_heads_unstamped",
            "Tree heads the configured TSA could not time-stamp (an alarm).",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "axis_in_flight", "Submissions being processed now.", registry=self.registry
        )
        self._known_codes = frozenset(error_codes())

    def started(self) -> None:
        self.in_flight.inc()

    def finished(self, seconds: float) -> None:
        self.in_flight.dec()
        self.processing.observe(seconds)

    def duplicate(self) -> None:
        self.duplicates.inc()

    def retried(self, attempt: int) -> None:
        self.retries.inc()

    def gave_up(self) -> None:
        self.gave_up_total.inc()

    def head_unstamped(self) -> None:
        """A tree head could not be time-stamped by the configured TSA."""
        self.heads_unstamped.inc()

    def rejected(self, kind: str, code: str) -> None:
        """Count one rejection; unknown codes and kinds fold into bounded values."""
        self.submissions.labels(kind=_kind(kind), outcome="rejected").inc()
        self.rejections.labels(code=code if code in self._known_codes else "axis.error").inc()

    def accepted(self, kind: str, deliveries: int) -> None:
        self.submissions.labels(kind=_kind(kind), outcome="accepted").inc()
        self.deliveries.labels(kind=_kind(kind)).inc(deliveries)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP (a daemon thread)."""
        start_http_server(port, addr=addr, registry=self.registry)


def _kind(kind: str) -> str:
    return kind if kind in ("edoc", "status") else "other"
