"""Prometheus metrics of the hub (a :class:`routing.ports.HubMonitor`). Every label comes
from a bounded set."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from axis.errors import error_codes
from axis.expiry import expires_soon
from axis.hub_overview import registry_size
from axis.queues import QueueDepths, QueueStat
from routing.ports import RegistryView
from routing.retry import retry_level
from signing.revocation import RevocationStatus

# Seconds, for latencies from about 1 ms to 10 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class HubMetrics:
    """The hub's counters, one registry per hub process."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._clock = clock
        self._server: WSGIServer | None = None  # serving /metrics
        self._expiries: tuple[datetime, ...] = ()  # of the registered, unrevoked certificates
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
            buckets=LATENCY_BUCKETS,
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
        self.revocation_warnings = Counter(
            "axis_revocation_warnings",
            'Packages accepted under revocation = "warn" although the signer\'s CRL or OCSP '
            "status was not good, by state (stale, unavailable, unknown, invalid).",
            ["state"],
            registry=self.registry,
        )
        self.revocation_fetch_failures = Counter(
            "axis_revocation_fetch_failures",
            "CRLs and OCSP responses that could not be fetched or did not verify, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "axis_in_flight", "Submissions being processed now.", registry=self.registry
        )
        # Counted when scraped: a certificate comes within 30 days with no registry change.
        self.certificates_expiring = Gauge(
            "axis_certificates_expiring",
            "Registered, unrevoked signing certificates that expire within 30 days "
            "(or have expired).",
            registry=self.registry,
        )
        self.certificates_expiring.set_function(self._count_expiring)
        self._known_codes = frozenset(error_codes())
        self._add_operations_metrics()

    def _add_operations_metrics(self) -> None:
        """Receipt latency, dead letters, retries by level, log appends, registry size."""
        self.receipt_latency = Histogram(
            "axis_receipt_seconds",
            "Time from the hub taking a submission from axis.submit to the broker "
            "confirming its receipt.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "axis_dead_letters",
            "Submissions the hub put into axis.dead, by reason code.",
            ["reason"],
            registry=self.registry,
        )
        self.retries_by_level = Counter(
            "axis_retries_by_level",
            "Submissions parked for a retry, by retry queue level (axis.retry.<level>).",
            ["level"],
            registry=self.registry,
        )
        self.log_appends = Counter(
            "axis_log_appends",
            "Entries this hub process appended to the evidence log (committed).",
            registry=self.registry,
        )
        self.registry_systems = Gauge(
            "axis_registry_systems", "Registered systems, by state (active, suspended).",
            ["state"], registry=self.registry,
        )  # fmt: skip
        self.registry_organs = Gauge(
            "axis_registry_organs", "Organs served by a registered system.",
            registry=self.registry,
        )  # fmt: skip
        self.registry_certificates = Gauge(
            "axis_registry_certificates",
            "Registered signing certificates, by state (active, revoked).",
            ["state"], registry=self.registry,
        )  # fmt: skip
        self.attachment_requests = Counter(
            "axis_attachment_requests",
            "Streamed-attachment requests answered, by request (put, get, state) and outcome "
            "(ok, or the refusal's code).",
            ["request", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.attachment_bytes = Counter(
            "axis_attachment_bytes",
            "Chunk bytes of streamed attachments stored (in) and sent to recipients (out).",
            ["direction"], registry=self.registry,
        )  # fmt: skip

    def watch_queues(self, read: Callable[[], dict[str, QueueStat]]) -> None:
        """Export the depth and consumers of Axis's queues, as ``read`` (the management
        API) gives them at scrape time (:class:`axis.queues.QueueDepths`)."""
        self.registry.register(QueueDepths(read))

    def started(self) -> None:
        self.in_flight.inc()

    def finished(self, seconds: float) -> None:
        self.in_flight.dec()
        self.processing.observe(seconds)

    def duplicate(self) -> None:
        self.duplicates.inc()

    def retried(self, attempt: int) -> None:
        self.retries.inc()
        self.retries_by_level.labels(level=str(retry_level(attempt))).inc()

    def gave_up(self) -> None:
        self.gave_up_total.inc()

    def registry_loaded(self, snapshot: RegistryView) -> None:
        """Keep the expiry of every registered, unrevoked certificate of ``snapshot``."""
        certificates = (c for s in snapshot.systems.values() for c in s.certificates.values())
        self._expiries = tuple(c.not_after for c in certificates if not c.revoked)
        size = registry_size(snapshot, self._clock())
        self.registry_systems.labels(state="active").set(size.systems_active)
        self.registry_systems.labels(state="suspended").set(size.systems_suspended)
        self.registry_organs.set(size.organs_served)
        self.registry_certificates.labels(state="active").set(size.certificates_active)
        self.registry_certificates.labels(state="revoked").set(size.certificates_revoked)

    def receipt_sent(self, seconds: float) -> None:
        self.receipt_latency.observe(seconds)

    def dead_lettered(self, reason: str) -> None:
        self.dead_letters.labels(reason=self._bounded_code(reason)).inc()

    def logged(self, entries: int) -> None:
        self.log_appends.inc(entries)

    def _count_expiring(self) -> float:
        now = self._clock()
        return float(sum(1 for not_after in self._expiries if expires_soon(not_after, now)))

    def head_unstamped(self) -> None:
        """A tree head could not be time-stamped by the configured TSA."""
        self.heads_unstamped.inc()

    def revocation_warning(self, status: RevocationStatus) -> None:
        """A package was accepted under "warn" without a good revocation answer."""
        self.revocation_warnings.labels(state=status.state.value).inc()

    def revocation_fetch_failed(self, kind: str) -> None:
        """A CRL (``crl``) or OCSP response (``ocsp``) could not be used."""
        self.revocation_fetch_failures.labels(kind="ocsp" if kind == "ocsp" else "crl").inc()

    def rejected(self, kind: str, code: str) -> None:
        """Count one rejection; unknown codes and kinds fold into bounded values."""
        self.submissions.labels(kind=_kind(kind), outcome="rejected").inc()
        self.rejections.labels(code=self._bounded_code(code)).inc()

    def _bounded_code(self, code: str) -> str:
        return code if code in self._known_codes else "axis.error"

    def accepted(self, kind: str, deliveries: int) -> None:
        self.submissions.labels(kind=_kind(kind), outcome="accepted").inc()
        self.deliveries.labels(kind=_kind(kind)).inc(deliveries)

    def attachment_answered(self, request: str, code: str, size: int) -> None:
        """Count one answered attachment request and the chunk bytes it moved."""
        known = request if request in ("put", "get", "state") else "other"
        self.attachment_requests.labels(request=known,
                                        outcome=self._bounded_code(code) if code else "ok").inc()
        if size and not code and known in ("put", "get"):
            self.attachment_bytes.labels(direction="in" if known == "put" else "out").inc(size)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP (a daemon thread) until :meth:`close`."""
        self._server, _thread = start_http_server(port, addr=addr, registry=self.registry)

    def close(self) -> None:
        """Stop serving ``/metrics`` (if served)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _kind(kind: str) -> str:
    return kind if kind in ("edoc", "status") else "other"
