"""Crash safety: a hub killed mid-stream loses nothing; a graceful stop duplicates nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aio_pika
import pytest

from tests.hubkit import HubKit, document

pytestmark = pytest.mark.rabbitmq
ROOT = Path(__file__).resolve().parents[1]
N = 200


@pytest.fixture
def kit(idle_kit: HubKit) -> HubKit:
    """A hub home (on each store) for hub processes started by the test, without metrics."""
    config = idle_kit.settings.config_path
    config.write_text(config.read_text().replace("metrics_port = 9464", "metrics_port = 0"))
    return idle_kit


def start_hub(kit: HubKit) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AXIS_AMQP_URL": kit.settings.amqp_url,
           "AXIS_MANAGEMENT_URL": kit.settings.management_url, "AXIS_DB_URL": kit.settings.db_url}
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--home", str(kit.home), "--log-level", "WARNING"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def stored_count(kit: HubKit, at_least: int, timeout: float = 60) -> int:
    """Wait until the hub has stored ``at_least`` submissions; returns the count."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        count = kit.store.count_submissions()
        if count >= at_least or asyncio.get_running_loop().time() > deadline:
            return count
        await asyncio.sleep(0.02)


async def publish_all(kit: HubKit, sender: str, recipient: str) -> set[str]:
    client = kit.agencies[sender].client
    ids = set()
    for i in range(N):
        signed = client.sign(document(sender, [recipient], number=str(i + 1)))
        ids.add(await client.send(signed, message_id=f"m-{i}"))
    return ids


async def raw_deliveries(kit: HubKit, organ_id: str) -> list[str]:
    """Message ids of every edoc copy in the inbox, straight off the queue (acked)."""
    client = kit.agencies[organ_id].client
    queue = await client.channel.get_queue(f"axis.inbox.{organ_id}", ensure=False)
    ids = []
    while (message := await queue.get(fail=False)) is not None:
        await message.ack()
        if message.type == "edoc":
            ids.append(message.message_id or "")
    return ids


async def run_interrupted(kit: HubKit, how: signal.Signals) -> tuple[str, str, int]:
    a = (await kit.agency(f"A.{uuid.uuid4().hex[:8].upper()}")).organ_id
    b = (await kit.agency(f"B.{uuid.uuid4().hex[:8].upper()}")).organ_id
    await publish_all(kit, a, b)
    hub = start_hub(kit)
    await stored_count(kit, N // 4)
    hub.send_signal(how)
    code = await asyncio.get_running_loop().run_in_executor(None, hub.wait, 30)
    interrupted_at = kit.store.count_submissions()
    restarted = start_hub(kit)
    try:
        assert await stored_count(kit, N) == N, "the restarted hub did not finish the stream"
        await asyncio.sleep(0.5)  # the last deliveries' confirms
    finally:
        restarted.send_signal(signal.SIGTERM)
        assert restarted.wait(30) == 0
    assert 0 < interrupted_at < N, "the interruption did not land mid-stream"
    return a, b, code


async def test_killed_hub_loses_nothing_and_the_application_sees_each_once(kit: HubKit) -> None:
    a, b, code = await run_interrupted(kit, signal.SIGKILL)
    assert code == -signal.SIGKILL
    # The recipient application (SDK de-duplication) stores every document exactly once.
    recipient = kit.agencies[b].client
    stored: list[str] = []
    async for item in recipient.fetch():
        await item.ack()
        if item.kind == "edoc":
            assert item.error is None
            stored.append(item.message_id)
    assert sorted(stored) == sorted(f"{a}/m-{i}" for i in range(N))
    receipts = [kit.store.find_submission(a, f"m-{i}") for i in range(N)]
    assert all(r is not None and r.outcome == "accepted" for r in receipts)


async def test_graceful_stop_finishes_in_flight_work_without_duplicates(kit: HubKit) -> None:
    a, b, code = await run_interrupted(kit, signal.SIGTERM)
    assert code == 0
    copies = await raw_deliveries(kit, b)
    assert sorted(copies) == sorted(f"{a}/m-{i}" for i in range(N))  # each once, none twice


async def test_dead_letter_keeps_conflicting_bytes(kit: HubKit) -> None:
    a = (await kit.agency(f"A.{uuid.uuid4().hex[:8].upper()}")).organ_id
    b = (await kit.agency(f"B.{uuid.uuid4().hex[:8].upper()}")).organ_id
    await kit.start_hub()
    client = kit.agencies[a].client
    await client.send(client.sign(document(a, [b], number="1")), message_id="x")
    await client.wait_receipt("x", 15)
    other = client.sign(document(a, [b], number="2"))
    await client.send(other, message_id="x")
    connection = await aio_pika.connect(kit.settings.amqp_url)
    try:
        channel = await connection.channel()
        dead = await channel.get_queue("axis.dead", ensure=False)
        for _ in range(200):
            message = await dead.get(fail=False)
            if message is not None:
                break
            await asyncio.sleep(0.05)
        assert message is not None and bytes(message.body) == other
        await message.ack()
    finally:
        await connection.close()
