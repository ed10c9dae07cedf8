"""``/metrics`` over HTTP, served as ``axis serve`` serves it (``serve_metrics``), after
real traffic through a real hub on the real broker; and the queue collector's promise
that a slow or dead management API never holds a scrape up."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from axis.commands.serve_cmd import serve_metrics
from axis.metrics import HubMetrics
from axis.queues import QueueDepths, QueueStat
from routing.contract import DEAD_QUEUE, SUBMIT_QUEUE, inbox_queue_name
from tests.clikit import organ
from tests.hubkit import HubKit, close_kit, document, make_kit

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(url: str) -> Samples:
    """Every sample of the exposition at ``url``: (name, sorted labels) → value."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@dataclass
class Served:
    kit: HubKit
    url: str


@pytest.fixture
async def served(
    tmp_path: Path, amqp_base_url: str, management_base_url: str, private_vhost: str
) -> AsyncIterator[Served]:
    """A hub whose metrics are served on a free port exactly as worker 0 of ``axis serve``
    serves them (queue depths included)."""
    kit = await make_kit(tmp_path, amqp_base_url, management_base_url, private_vhost)
    port = free_port()
    kit.metrics = serve_metrics(replace(kit.settings, metrics_port=port), 0)
    try:
        await kit.start_hub()
        yield Served(kit, f"http://127.0.0.1:{port}/metrics")
    finally:
        kit.metrics.close()
        await close_kit(kit)


async def scrape_until(url: str, ready: Callable[[Samples], bool], timeout: float) -> Samples:
    """Scrape until ``ready`` (the management API's statistics lag by a few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await asyncio.to_thread(scrape, url)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.5)


@pytest.mark.rabbitmq
async def test_metrics_after_accepted_rejected_and_dead_lettered_submissions(
    served: Served,
) -> None:
    kit = served.kit
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    for number in ("1", "2"):
        sent = await a.client.send(a.client.sign(document(a.organ_id, [b.organ_id], number=number)))
        assert (await a.client.wait_receipt(sent, 15)).receipt.event == "accepted"
    unknown = await a.client.send(a.client.sign(document(a.organ_id, [organ("NOBODY")])))
    assert (await a.client.wait_receipt(unknown, 15)).receipt.error_code == "recipient.unknown"
    first = a.client.sign(document(a.organ_id, [b.organ_id], number="3"))
    await a.client.send(first, message_id="conflict-1")
    await a.client.wait_receipt("conflict-1", 15)
    other = a.client.sign(document(a.organ_id, [b.organ_id], number="4"))
    await a.client.send(other, message_id="conflict-1")  # same id, other bytes: axis.dead

    dead, inbox_b = (("axis_queue_messages", (("queue", q),)) for q in
                     (DEAD_QUEUE, inbox_queue_name(b.organ_id)))  # fmt: skip
    samples = await scrape_until(
        served.url, lambda s: s.get(dead) == 1 and s.get(inbox_b) == 3, timeout=20
    )

    assert value(samples, "axis_submissions_total", kind="edoc", outcome="accepted") == 3
    # The unknown recipient and the conflict.
    assert value(samples, "axis_submissions_total", kind="edoc", outcome="rejected") == 2
    assert value(samples, "axis_rejections_total", code="recipient.unknown") == 1
    assert value(samples, "axis_rejections_total", code="submission.duplicate_conflict") == 1
    assert value(samples, "axis_dead_letters_total", reason="submission.duplicate_conflict") == 1
    # Every submission got its receipt: 3 accepted, 1 rejected, 1 conflict.
    assert value(samples, "axis_receipt_seconds_count") == 5
    assert value(samples, "axis_receipt_seconds_bucket", le="10.0") == 5
    assert 0 < (value(samples, "axis_receipt_seconds_sum") or 0) < 5 * 10
    # The stored receipts went into the evidence log (the conflict is not stored).
    assert value(samples, "axis_log_appends_total") == 4
    assert value(samples, "axis_registry_systems", state="active") == 2
    assert value(samples, "axis_registry_systems", state="suspended") == 0
    assert value(samples, "axis_registry_certificates", state="active") == 2
    assert (value(samples, "axis_registry_organs") or 0) >= 2
    assert value(samples, "axis_management_api_up") == 1
    assert samples.get(dead) == 1
    assert samples.get(inbox_b) == 3  # B never fetched: 3 documents wait in its inbox
    assert value(samples, "axis_queue_consumers", queue=SUBMIT_QUEUE) == 1
    assert value(samples, "axis_queue_messages", queue="axis.retry.1") == 0


@pytest.mark.rabbitmq
async def test_registry_gauges_follow_a_suspension(served: Served) -> None:
    kit = served.kit
    a = await kit.agency(organ("A"))
    await kit.agency(organ("B"))
    kit.store.set_system_active(a.organ_id, False)
    assert kit.hub is not None and await kit.hub.refresh_registry()
    samples = await asyncio.to_thread(scrape, served.url)
    assert value(samples, "axis_registry_systems", state="active") == 1
    assert value(samples, "axis_registry_systems", state="suspended") == 1


# -- the queue collector, without a broker ---------------------------------------------


def serve_with(read: Callable[[], dict[str, QueueStat]]) -> tuple[HubMetrics, str]:
    """Metrics with queue depths read by ``read``, cached for 0.5 s, a scrape waiting at
    most 0.5 s for a new reading."""
    metrics = HubMetrics()
    metrics.registry.register(QueueDepths(read, max_age=0.5, wait=0.5))
    port = free_port()
    metrics.serve(port)
    return metrics, f"http://127.0.0.1:{port}/metrics"


def test_a_slow_management_api_does_not_hold_scrapes_up() -> None:
    calls: list[float] = []

    def slow() -> dict[str, QueueStat]:
        calls.append(time.monotonic())
        if len(calls) > 1:
            time.sleep(2)
        return {SUBMIT_QUEUE: QueueStat(SUBMIT_QUEUE, 7, 2)}

    metrics, url = serve_with(slow)
    try:
        assert value(scrape(url), "axis_queue_messages", queue=SUBMIT_QUEUE) == 7
        assert value(scrape(url), "axis_queue_consumers", queue=SUBMIT_QUEUE) == 2
        assert len(calls) == 1  # a fresh reading is served from the cache
        time.sleep(0.6)  # the reading is now due again, and the API answers in 2 s
        started = time.monotonic()
        samples = scrape(url)
        assert time.monotonic() - started < 1.5
        assert value(samples, "axis_queue_messages", queue=SUBMIT_QUEUE) == 7  # the last one
        assert len(calls) == 2
    finally:
        metrics.close()


def test_a_dead_management_api_says_so_and_drops_the_depths() -> None:
    def down() -> dict[str, QueueStat]:
        raise OSError("connection refused")

    metrics, url = serve_with(down)
    try:
        samples = scrape(url)
        assert value(samples, "axis_management_api_up") == 0
        assert not [key for key in samples if key[0] == "axis_queue_messages"]
    finally:
        metrics.close()


def test_many_hub_metrics_in_one_process_do_not_collide() -> None:
    first, second = HubMetrics(), HubMetrics()
    for metrics in (first, second):
        metrics.watch_queues(dict)
        metrics.retried(1)
    second.retried(12)  # beyond the last level: counted at the last level
    assert first.registry.get_sample_value("axis_retries_by_level_total", {"level": "1"}) == 1
    assert second.registry.get_sample_value("axis_retries_by_level_total", {"level": "7"}) == 1
    assert second.registry.get_sample_value("axis_retries_total") == 2


def test_unknown_dead_letter_reasons_fold_into_one_label() -> None:
    metrics = HubMetrics()
    metrics.dead_lettered("hub.unavailable")
    metrics.dead_lettered("made.up")
    metrics.dead_lettered("also.made.up")
    get = metrics.registry.get_sample_value
    assert get("axis_dead_letters_total", {"reason": "hub.unavailable"}) == 1
    assert get("axis_dead_letters_total", {"reason": "axis.error"}) == 2
