"""Push delivery: ``AgencyClient.watch`` and ``axis inbox watch`` on the real broker and hub.

The watcher takes the inbox with ``basic.consume`` inside a prefetch window: what is sent
while it runs arrives without polling, a copy published twice is handed over once, what
was not acked when it stops goes to the next watcher, and a lost connection is restored.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from axis.client.agency import AgencyClient, InboxItem
from routing.amqp import amqp_message
from routing.contract import (
    DELIVER_EXCHANGE,
    XML,
    WireMessage,
    header_text,
    inbox_queue_name,
    read_delivery_headers,
)
from tests.clikit import REPO, CliWorld, organ, submit_consumers, wait_for
from tests.hubkit import Agency, HubKit, document, take

pytestmark = pytest.mark.rabbitmq

ARRIVAL_SECONDS = 10.0  # generous: 2 shared cores; push arrivals take tens of milliseconds
POLL_INTERVAL = 0.1


@pytest.fixture
def kit_db_url() -> None:
    """Push delivery does not depend on the hub's store: the kit runs on SQLite only."""
    return None


async def inbox_counts(kit: HubKit, system_id: str) -> tuple[int, int]:
    """Ready (not handed over) messages and consumers of the inbox now: a passive
    declare, exact, unlike the management API's sampled statistics."""
    connection = await aio_pika.connect(kit.settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(inbox_queue_name(system_id), passive=True)
        result = queue.declaration_result
        return int(result.message_count or 0), int(result.consumer_count or 0)
    finally:
        await connection.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def publish_again(kit: HubKit, item: InboxItem, system_id: str) -> None:
    """Publish ``item``'s message once more into the inbox, as the hub does after a crash
    (same message id, body and headers)."""
    wire = WireMessage(
        body=item.body,
        content_type=XML,
        message_id=item.message_id,
        type=item.kind,
        headers={k: header_text(v) for k, v in item.headers.items()},
    )
    connection = await aio_pika.connect(kit.settings.amqp_url)
    try:
        exchange = await (await connection.channel()).get_exchange(DELIVER_EXCHANGE)
        await exchange.publish(amqp_message(wire), routing_key=system_id)
    finally:
        await connection.close()


class Watcher:
    """``client.watch()`` in a task: every item acked and kept with its arrival time."""

    def __init__(self, client: AgencyClient, prefetch: int = 16) -> None:
        self.items: list[tuple[float, InboxItem]] = []
        self.task = asyncio.create_task(self._run(client, prefetch))

    async def _run(self, client: AgencyClient, prefetch: int) -> None:
        async for item in client.watch(prefetch=prefetch):
            await item.ack()
            self.items.append((time.perf_counter(), item))

    def edocs(self) -> list[InboxItem]:
        return [item for _, item in self.items if item.kind == "edoc"]

    async def arrival(self, message_id_suffix: str) -> float:
        """When the document of consignment ``message_id_suffix`` arrived (waits for it)."""
        deadline = time.monotonic() + ARRIVAL_SECONDS
        while time.monotonic() < deadline:
            for at, item in self.items:
                if item.message_id.endswith("/" + message_id_suffix):
                    return at
            assert not self.task.done(), self.task
            await asyncio.sleep(0.005)
        raise AssertionError(f"{message_id_suffix} not pushed within {ARRIVAL_SECONDS:g} s")

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@asynccontextmanager
async def watching(kit: HubKit, agency: Agency, prefetch: int = 16) -> AsyncIterator[Watcher]:
    watcher = Watcher(agency.client, prefetch)
    try:
        await eventually(lambda: _consumers_are(kit, agency, 1), "the watcher's consumer")
        yield watcher
    finally:
        await watcher.stop()


async def _consumers_are(kit: HubKit, agency: Agency, count: int) -> bool:
    return (await inbox_counts(kit, agency.organ_id))[1] == count


async def send_documents(a: Agency, b: Agency, count: int) -> list[str]:
    """``count`` documents from ``a`` to ``b``, each accepted; their consignment ids."""
    sent = []
    for n in range(count):
        consignment = await a.client.send(
            a.client.sign(document(a.organ_id, [b.organ_id], number=str(n + 1)))
        )
        assert (await a.client.wait_receipt(consignment, 15)).receipt.event == "accepted"
        sent.append(consignment)
    return sent


async def test_pushed_once_each_even_when_published_twice(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    async with watching(kit, b) as watcher:
        first = await send_documents(a, b, 2)
        for consignment in first:
            await watcher.arrival(consignment)
        repeated = watcher.edocs()[0]
        await publish_again(kit, repeated, b.organ_id)
        # The inbox is a FIFO queue: once a later document is pushed, the copy was taken.
        (last,) = await send_documents(a, b, 1)
        await watcher.arrival(last)
        ids = [item.message_id for item in watcher.edocs()]
        assert len(ids) == 3 and len(set(ids)) == 3 and repeated.message_id in ids
        assert all(item.error is None and item.package is not None for item in watcher.edocs())
        assert (await inbox_counts(kit, b.organ_id))[0] == 0  # nothing left behind
    # Status 01 went out after each ack, and not for the repeated copy.
    statuses = await take(a.client, 3, accept=lambda i: i.kind == "status")
    assert [read_delivery_headers(i.headers).status_code for i in statuses] == ["01"] * 3
    await asyncio.sleep(0.3)
    assert [i async for i in a.client.fetch() if i.kind == "status"] == []


async def test_what_was_not_acked_goes_to_the_next_watcher(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    b.client.auto_arrived = False  # no status 01: its receipts would come into b's inbox
    (consignment,) = await send_documents(a, b, 1)
    handed: list[InboxItem] = []

    async def hold_without_ack() -> None:
        async for item in b.client.watch():
            handed.append(item)
            await asyncio.Event().wait()

    task = asyncio.create_task(hold_without_ack())
    await eventually(lambda: _holding(handed, 1), "the delivery")
    assert await inbox_counts(kit, b.organ_id) == (0, 1)  # in hand, not settled
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await eventually(lambda: _counts_are(kit, b, (1, 0)), "the consumer gone, the message back")

    async with aclosing(b.client.watch()) as items:
        async for item in items:
            handed.append(item)
            break  # stopped without an ack
    assert await inbox_counts(kit, b.organ_id) == (1, 0)

    async with aclosing(b.client.watch()) as items:
        async for item in items:
            handed.append(item)
            assert await item.ack()
            break
    assert [i.message_id for i in handed] == [f"{a.organ_id}/{consignment}"] * 3
    assert [i async for i in b.client.fetch()] == []  # settled once, nothing lost


async def _counts_are(kit: HubKit, agency: Agency, counts: tuple[int, int]) -> bool:
    return await inbox_counts(kit, agency.organ_id) == counts


async def _holding(handed: list[InboxItem], count: int) -> bool:
    return len(handed) == count


async def test_prefetch_bounds_the_unacked_window(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    b.client.auto_arrived = False
    await send_documents(a, b, 5)
    assert (await inbox_counts(kit, b.organ_id))[0] == 5
    async with aclosing(b.client.watch(prefetch=2)) as items:
        first = await anext(items)
        await eventually(lambda: _ready_is(kit, b, 3), "2 messages handed over")
        await asyncio.sleep(0.3)
        assert (await inbox_counts(kit, b.organ_id))[0] == 3  # the window holds, un-acked
        await first.ack()
        await eventually(lambda: _ready_is(kit, b, 2), "the window to move by one")
    await eventually(lambda: _counts_are(kit, b, (4, 0)), "the un-acked ones back")


async def _ready_is(kit: HubKit, agency: Agency, count: int) -> bool:
    return (await inbox_counts(kit, agency.organ_id))[0] == count


async def test_the_watch_resumes_after_the_connection_is_lost(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    async with watching(kit, b) as watcher:
        await eventually(lambda: _listed(kit, b), "b's connection in the management API")
        for name in kit.management.user_connections(b.organ_id):
            kit.management.close_connection(name, "test: broker connection lost")
        await eventually(lambda: _consumers_are(kit, b, 0), "the consumer to go")
        (consignment,) = await send_documents(a, b, 1)
        await watcher.arrival(consignment)
        assert [i.message_id for i in watcher.edocs()] == [f"{a.organ_id}/{consignment}"]


async def _listed(kit: HubKit, agency: Agency) -> bool:
    return bool(await asyncio.to_thread(kit.management.user_connections, agency.organ_id))


async def test_push_latency_against_polling(
    kit: HubKit, capsys: pytest.CaptureFixture[str]
) -> None:
    """Send to item in hand, through the real hub: push vs a 0.1 s polling loop.

    Printed: `.venv/bin/pytest tests/test_inbox_watch.py -k latency` (docs/benchmarks.md).
    """
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    b.client.auto_arrived = False
    rounds = 10
    async with watching(kit, b) as watcher:
        push = [await _latency(a, b, watcher.arrival) for _ in range(rounds)]
    poller = Poller(b.client)
    try:
        poll = [await _latency(a, b, poller.arrival) for _ in range(rounds)]
    finally:
        await poller.stop()
    with capsys.disabled():
        print(
            f"\nsend→item, median of {rounds}: push {statistics.median(push) * 1000:.0f} ms, "
            f"polling every {POLL_INTERVAL:g} s {statistics.median(poll) * 1000:.0f} ms"
        )
    assert max(push) < ARRIVAL_SECONDS


async def _latency(a: Agency, b: Agency, arrival: Callable[[str], Awaitable[float]]) -> float:
    signed = a.client.sign(document(a.organ_id, [b.organ_id]))
    await asyncio.sleep(random.uniform(0, POLL_INTERVAL))  # not in step with the poll loop
    started = time.perf_counter()
    consignment = await a.client.send(signed)
    return await arrival(consignment) - started


class Poller(Watcher):
    """``client.fetch()`` every 0.1 s, as the demo and the tests' loops do."""

    stopping = False

    async def _run(self, client: AgencyClient, prefetch: int) -> None:
        while not self.stopping:
            async for item in client.fetch():
                await item.ack()
                self.items.append((time.perf_counter(), item))
            await asyncio.sleep(POLL_INTERVAL)

    async def stop(self) -> None:
        # Not a cancellation: on Python 3.11 aio-pika's basic.get (asyncio.wait_for) can
        # swallow one that arrives as the answer does, and the loop would go on.
        self.stopping = True
        await self.task


# -- the command -----------------------------------------------------------------------------


def test_axis_inbox_watch_stores_what_is_sent_and_stops_on_sigint(world: CliWorld) -> None:
    a, b = world.agency(organ("A"), "Văn phòng"), world.agency(organ("B"), "UBND tỉnh")
    world.start_hub()
    folder = world.root / "inbox-b"
    out = world.root / "watch.jsonl"
    with out.open("wb") as sink:  # the process keeps its own copy of the descriptor
        watch = subprocess.Popen(
            [sys.executable, "-m", "cli", "inbox", "watch", "--to", str(folder), "--json",
             "--prefetch", "4", "--profile", str(b.profile)],
            cwd=REPO, env=world.env, stdout=sink, stderr=subprocess.PIPE,
        )  # fmt: skip
    try:
        inbox = inbox_queue_name(b.organ_id)
        wait_for(lambda: submit_consumers(world.amqp_url, inbox) == 1, timeout=30,
                 what="the watcher's consumer", alive=watch)  # fmt: skip
        sent = [_send(world, a, b, code) for code in ("12/VPCP", "13/VPCP")]
        # Each document, then the receipt for the status 01 the watcher sent about it.
        wait_for(lambda: len(_lines(out)) >= 4, timeout=30, what="4 items", alive=watch)
        watch.send_signal(signal.SIGINT)
        stderr = watch.communicate(timeout=15)[1].decode()
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, stderr
    assert "Traceback" not in stderr and "stopped: 4 item(s) stored in" in stderr, stderr
    lines = _lines(out)
    assert all(line["ok"] is True for line in lines)
    edocs = [line for line in lines if line["kind"] == "edoc"]
    assert sorted(line["message_id"] for line in edocs) == sorted(
        f"{a.organ_id}/{consignment}" for consignment in sent
    )
    assert all((folder / line["id"] / "package.edxml").is_file() for line in edocs)
    assert sorted(line["event"] for line in lines if line["kind"] == "receipt") == ["accepted"] * 2

    fetched = world.ok("inbox", "fetch", "--to", folder, "--profile", b.profile, "--json")
    assert fetched.json()["fetched"] == []
    listed = world.ok("inbox", "list", folder, "--json").json()["items"]
    assert sorted(e["message_id"] for e in listed) == sorted(line["message_id"] for line in lines)


def _send(world: CliWorld, a: Any, b: Any, code: str) -> str:
    run = world.ok("send", "--to", b.organ_id, "--subject", "V/v họp", "--code", code, "--out-dir",
                   world.root / "sent", "--profile", a.profile, "--json")  # fmt: skip
    data = run.json()
    assert data["event"] == "accepted", run
    return str(data["message_id"])


def _lines(out: Path) -> list[dict[str, Any]]:
    """The complete JSON Lines written so far."""
    text = out.read_text(encoding="utf-8")
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]
