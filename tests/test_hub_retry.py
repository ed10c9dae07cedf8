"""A database outage under load, on the real broker and a private PostgreSQL cluster: the hub
retries with backoff (no hot loop), and a submission it finally gives up on ends in a signed
``hub.unavailable`` receipt and a dead letter that says why."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from routing.batching import Batcher
from routing.contract import H_ATTEMPT, H_DEAD_REASON, H_LAST_ERROR, H_ORIGIN_USER
from tests.clikit import organ
from tests.hubkit import HubKit, close_kit, document, make_kit, take
from tests.pgnode import PrivatePostgres, postgres_bin

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
# `make test` runs a short outage; the figures in the notes come from
# AXIS_OUTAGE_SECONDS=20 AXIS_OUTAGE_DOCUMENTS=300 on the same test.
OUTAGE_SECONDS = float(os.environ.get("AXIS_OUTAGE_SECONDS", "4"))
OUTAGE_DOCUMENTS = int(os.environ.get("AXIS_OUTAGE_DOCUMENTS", "10"))


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    if postgres_bin() is None:
        pytest.skip("no PostgreSQL server binaries to start a private cluster")
    folder = Path(tempfile.mkdtemp(prefix="axis-pg-"))
    node = PrivatePostgres.create(folder)
    node.start()
    try:
        yield node
    finally:
        node.stop("immediate")


@pytest.fixture(params=["quorum", "classic"])
async def kit(
    request: pytest.FixtureRequest, tmp_path: Path, amqp_base_url: str,
    management_base_url: str, private_vhost: str, postgres: PrivatePostgres,
) -> AsyncIterator[HubKit]:  # fmt: skip
    schema = f"t{uuid.uuid4().hex[:8]}"
    url = f"{postgres.url}?options=-csearch_path%3D{schema}"
    _create_schema(postgres.url, schema)
    kit = await make_kit(tmp_path, amqp_base_url, management_base_url, private_vhost, url,
                         queue_type=request.param)  # fmt: skip
    try:
        yield kit
    finally:
        await close_kit(kit)


def _create_schema(url: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine("postgresql+psycopg://" + url.split("://", 1)[1])
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine.dispose()


async def test_a_database_outage_ends_with_every_submission_accepted(
    kit: HubKit, postgres: PrivatePostgres
) -> None:
    await kit.start_hub(max_attempts=8)
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    signed = [a.client.sign(document(a.organ_id, [b.organ_id], number=str(n)))
              for n in range(OUTAGE_DOCUMENTS)]  # fmt: skip
    postgres.stop()
    down_at = time.monotonic()
    try:
        ids = []
        for body in signed:  # spread over the outage, as a working day would
            ids.append(await a.client.send(body))
            await asyncio.sleep(OUTAGE_SECONDS / OUTAGE_DOCUMENTS / 2)
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
    finally:
        postgres.start()
    outage = time.monotonic() - down_at
    receipts = [await a.client.wait_receipt(i, 120) for i in ids]
    recovered = time.monotonic() - down_at - outage
    assert [r.receipt.event for r in receipts] == ["accepted"] * len(ids)
    copies = await take(b.client, len(ids), timeout=60, accept=lambda i: i.kind == "edoc")
    assert sorted(c.message_id for c in copies) == sorted(f"{a.organ_id}/{i}" for i in ids)
    retries = kit.metrics.retries._value.get()
    # Backoff, not a hot loop: about log2(outage) attempts per submission, never dozens.
    print(f"\noutage {outage:.1f} s, {len(ids)} submissions, {retries:.0f} retries "
          f"({retries / len(ids):.2f} per submission), all accepted {recovered:.1f} s after")
    assert 0 < retries <= len(ids) * 7, (retries, outage)
    assert kit.metrics.gave_up_total._value.get() == 0


async def test_a_submission_the_hub_gives_up_on_gets_a_final_receipt_and_a_dead_letter(
    kit: HubKit, postgres: PrivatePostgres
) -> None:
    await kit.start_hub(max_attempts=2)
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    body = a.client.sign(document(a.organ_id, [b.organ_id]))
    postgres.stop()
    try:
        consignment = await a.client.send(body)
        finals = await take(a.client, 1, timeout=20, accept=lambda i: i.receipt is not None)
    finally:
        postgres.start()
    assert finals, "no final receipt"
    final = finals[0].receipt
    assert final is not None and final.receipt.error_code == "hub.unavailable"
    assert final.receipt.message_id == consignment and final.receipt.sender_system == a.organ_id
    dead = await _take_dead(kit)
    assert dead is not None, "nothing in axis.dead"
    headers = dead.headers or {}
    assert headers[H_DEAD_REASON] == "hub.unavailable"
    assert headers[H_ORIGIN_USER] == a.organ_id and headers[H_ATTEMPT] == "2"
    assert str(headers[H_LAST_ERROR])
    assert bytes(dead.body) == body and dead.message_id == consignment
    assert await take(b.client, 1, timeout=1) == []  # nothing was delivered


async def _take_dead(kit: HubKit) -> AbstractIncomingMessage | None:
    connection = await aio_pika.connect(kit.settings.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue("axis.dead", ensure=False)
        for _ in range(50):
            message = await queue.get(fail=False)
            if message is not None:
                await message.ack()
                return message
            await asyncio.sleep(0.1)
        return None
    finally:
        await connection.close()


async def test_a_submission_that_cannot_be_parked_does_not_come_back_in_a_hot_loop(
    tmp_path: Path, amqp_base_url: str, management_base_url: str, private_vhost: str,
) -> None:
    """The store fails and the retry copy cannot be published either: the submission goes
    back to axis.submit, but only after a pause, not hundreds of times a second."""
    kit = await make_kit(tmp_path, amqp_base_url, management_base_url, private_vhost)
    try:
        hub = await kit.start_hub()
        a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
        attempts = 0

        def failing_store(_items: object) -> list[Any]:
            nonlocal attempts
            attempts += 1
            raise OSError("the database is down")

        async def refused_retry(*_args: object) -> None:
            raise OSError("the broker refused the retry copy")

        hub._commits = Batcher(failing_store, hub._io)
        hub.outbox.retry = refused_retry  # type: ignore[method-assign, assignment]
        await a.client.send(a.client.sign(document(a.organ_id, [b.organ_id])))
        await asyncio.sleep(3.0)
        # routing.hub.PARK_FAILED_PAUSE (1 s) between attempts: three; without it, twenty
        # (the quorum delivery limit) within the first second.
        assert 1 <= attempts <= 4, attempts
    finally:
        await close_kit(kit)


async def test_giving_up_after_the_commit_answers_with_the_stored_receipt(
    tmp_path: Path, amqp_base_url: str, management_base_url: str, private_vhost: str,
) -> None:
    """Stored as accepted, then its copies can never be published: the sender gets the
    accepted receipt the log holds (not a hub.unavailable that contradicts it), and the
    dead letter says why; replaying it publishes the copies."""
    kit = await make_kit(tmp_path, amqp_base_url, management_base_url, private_vhost)
    try:
        hub = await kit.start_hub(max_attempts=2)
        a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
        real = hub.outbox.deliveries, hub.outbox.stored_deliveries

        async def refused_deliveries(*_args: object) -> None:
            raise OSError("the broker refused the recipient's copy")

        # Both the first publish and the republish of the stored routing on each retry.
        hub.outbox.deliveries = refused_deliveries  # type: ignore[method-assign, assignment]
        hub.outbox.stored_deliveries = refused_deliveries  # type: ignore[method-assign, assignment]
        consignment = await a.client.send(a.client.sign(document(a.organ_id, [b.organ_id])))
        finals = await take(a.client, 1, timeout=20, accept=lambda i: i.receipt is not None)
        assert finals and finals[0].receipt is not None
        assert finals[0].receipt.receipt.event == "accepted"
        assert finals[0].body == kit.store.get_receipt(a.organ_id, consignment)
        dead = await _take_dead(kit)
        assert dead is not None and (dead.headers or {})[H_DEAD_REASON] == "hub.unavailable"
        assert await take(b.client, 1, timeout=1) == []
        hub.outbox.deliveries, hub.outbox.stored_deliveries = real  # type: ignore[method-assign]
        headers = {H_ORIGIN_USER: a.organ_id, H_ATTEMPT: "0"}
        await _publish_as_hub(kit, dead, headers)  # what axis dead replay sends
        copies = await take(b.client, 1, timeout=15, accept=lambda i: i.kind == "edoc")
        assert [c.message_id for c in copies] == [f"{a.organ_id}/{consignment}"]
    finally:
        await close_kit(kit)


async def _publish_as_hub(
    kit: HubKit, dead: AbstractIncomingMessage, headers: dict[str, Any]
) -> None:
    connection = await aio_pika.connect(kit.settings.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange("axis.submit", ensure=False)
        user = kit.settings.hub_user
        await exchange.publish(aio_pika.Message(
            bytes(dead.body), message_id=dead.message_id, user_id=user, headers=headers,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key="edoc")  # fmt: skip
    finally:
        await connection.close()
