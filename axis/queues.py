"""What the broker says of the hub's queues (depth, consumers), read through the RabbitMQ
management API: for ``axis hub status`` and, at scrape time, for ``/metrics``.

The management API counts messages and consumers from statistics the broker collects
every few seconds (``collect_statistics_interval``, 5 s by default), so a count may be
that old. One request lists every queue of the virtual host; only Axis's own queues
(``axis.*``: ``axis.submit``, ``axis.query``, ``axis.dead``, ``axis.retry.<level>``,
``axis.inbox.<system id>``) are kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from axis.errors import HubNotReady, ManagementApiError
from axis.provision import Management

log = logging.getLogger("axis.hub")
AXIS_PREFIX = "axis."


@dataclass(frozen=True, slots=True)
class QueueStat:
    """One queue: messages in it (ready and unacknowledged) and consumers on it."""

    name: str
    messages: int
    consumers: int

    def to_json(self) -> dict[str, int | str]:
        return {"queue": self.name, "messages": self.messages, "consumers": self.consumers}


def read_queue_stats(management: Management, vhost: str) -> dict[str, QueueStat]:
    """Axis's queues in ``vhost`` by name; ``transport.hub_not_ready`` when the virtual
    host does not exist, ``transport.unreachable`` when the API cannot be reached."""
    try:
        listed = management.listing("queues", vhost, ("name", "messages", "consumers"))
    except ManagementApiError as error:
        if error.detail.get("status") == 404:
            raise HubNotReady(f"the broker has no virtual host {vhost!r}: run `axis hub "
                              "setup`, or check amqp_url") from None  # fmt: skip
        raise
    stats = (QueueStat(str(item["name"]), _count(item.get("messages")),
                       _count(item.get("consumers"))) for item in listed)  # fmt: skip
    return {s.name: s for s in stats if s.name.startswith(AXIS_PREFIX)}


def _count(value: object) -> int:
    # A queue the statistics have not reached yet has no count: nothing counted, 0.
    return value if isinstance(value, int) and value >= 0 else 0


class QueueDepths(Collector):
    """``axis_queue_messages`` / ``axis_queue_consumers`` per queue and
    ``axis_management_api_up``, read at scrape time.

    A scrape never waits long: the last reading is served while it is younger than
    ``max_age`` seconds; an older one is refreshed in a thread of its own, and the scrape
    waits at most ``wait`` seconds for it before serving what it has. A failed reading
    drops the queue series (stale depths would mislead) and sets the ``up`` gauge to 0.
    """

    def __init__(
        self, read: Callable[[], dict[str, QueueStat]], *, max_age: float = 5.0,
        wait: float = 1.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._read, self._max_age, self._wait, self._clock = read, max_age, wait, clock
        self._lock = threading.Lock()
        self._stats: dict[str, QueueStat] = {}
        self._up = False
        self._read_at: float | None = None
        self._reading: threading.Thread | None = None

    def describe(self) -> Iterator[Metric]:
        """The families, without reading (so registering does not call the API)."""
        yield from _families({}, up=False)

    def collect(self) -> Iterator[Metric]:
        reading = self._start_reading_if_due()
        if reading is not None:
            reading.join(self._wait)
        with self._lock:
            stats, up = dict(self._stats), self._up
        yield from _families(stats, up=up)

    def _start_reading_if_due(self) -> threading.Thread | None:
        with self._lock:
            fresh = self._read_at is not None and self._clock() - self._read_at < self._max_age
            if fresh:
                return None
            if self._reading is None or not self._reading.is_alive():
                self._reading = threading.Thread(target=self._refresh, daemon=True,
                                                 name="axis-queue-depths")  # fmt: skip
                self._reading.start()
            return self._reading

    def _refresh(self) -> None:
        try:
            stats, up = self._read(), True
        except Exception as exc:  # any failure: report "down", keep serving scrapes
            # Said once when it goes down, not at every scrape while it stays down.
            level = logging.WARNING if self._up or self._read_at is None else logging.DEBUG
            log.log(level, "queue depths unavailable from the management API: %s", exc)
            stats, up = {}, False
        with self._lock:
            self._stats, self._up, self._read_at = stats, up, self._clock()


def _families(stats: dict[str, QueueStat], *, up: bool) -> Iterator[Metric]:
    messages = GaugeMetricFamily(
        "axis_queue_messages",
        "Messages in each Axis queue (ready and unacknowledged), from the management API.",
        labels=["queue"],
    )
    consumers = GaugeMetricFamily(
        "axis_queue_consumers", "Consumers on each Axis queue, from the management API.",
        labels=["queue"],
    )  # fmt: skip
    for stat in sorted(stats.values(), key=lambda s: s.name):
        messages.add_metric([stat.name], stat.messages)
        consumers.add_metric([stat.name], stat.consumers)
    yield messages
    yield consumers
    yield GaugeMetricFamily(
        "axis_management_api_up",
        "1 when the last reading of the queues from the management API succeeded.",
        value=1.0 if up else 0.0,
    )


def queue_reader(management_url: str, vhost: str, timeout: float = 5.0
                 ) -> Callable[[], dict[str, QueueStat]]:  # fmt: skip
    """A reader of ``vhost``'s queues for :class:`QueueDepths`, giving up after ``timeout``."""
    management = Management(management_url, timeout=timeout)
    return lambda: read_queue_stats(management, vhost)
