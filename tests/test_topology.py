"""The broker topology on a real RabbitMQ, one fresh virtual host per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from axis.provision import Management
from routing.contract import (
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DELIVER_EXCHANGE,
    EDOC_KEY,
    QUERY_EXCHANGE,
    QUERY_KEY,
    QUERY_QUEUE,
    STATUS_KEY,
    SUBMIT_EXCHANGE,
    SUBMIT_QUEUE,
    inbox_queue_name,
)
from routing.topology import (
    SUBMIT_DELIVERY_LIMIT,
    Topology,
    declare_inbox,
    declare_topology,
    queue_arguments,
)

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def vhost(private_vhost: str) -> str:
    return private_vhost


@pytest.fixture
async def channel(amqp_base_url: str, vhost: str) -> AsyncIterator[AbstractChannel]:
    parts = urlsplit(amqp_base_url)
    url = f"amqp://guest:guest@{parts.hostname}:{parts.port or 5672}/{vhost}"
    connection = await aio_pika.connect(url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


@pytest.fixture
def management(management_base_url: str) -> Management:
    return Management(management_base_url)


async def fetch(channel: AbstractChannel, queue: str) -> AbstractIncomingMessage | None:
    q = await channel.get_queue(queue, ensure=False)
    for _ in range(50):
        got = await q.get(no_ack=False, fail=False)
        if got is not None:
            return got
        await asyncio.sleep(0.05)
    return None


def test_inbox_queue_name() -> None:
    assert inbox_queue_name("000.00.00.G22") == "axis.inbox.000.00.00.G22"


@pytest.mark.parametrize(
    ("queue_type", "kwargs", "expected"),
    [
        ("quorum", {}, {"x-queue-type": "quorum", "x-dead-letter-exchange": "axis.dead"}),
        ("classic", {}, {"x-queue-type": "classic", "x-dead-letter-exchange": "axis.dead"}),
        ("quorum", {"dead_letter": False}, {"x-queue-type": "quorum"}),
        ("quorum", {"delivery_limit": 5},
         {"x-queue-type": "quorum", "x-dead-letter-exchange": "axis.dead", "x-delivery-limit": 5}),
        ("classic", {"delivery_limit": 5},
         {"x-queue-type": "classic", "x-dead-letter-exchange": "axis.dead"}),
    ],
)
def test_queue_arguments(queue_type: str, kwargs: dict[str, object], expected: object) -> None:
    assert queue_arguments(queue_type, **kwargs) == expected  # type: ignore[arg-type]


def test_queue_arguments_refuse_unknown_type() -> None:
    with pytest.raises(ValueError):
        queue_arguments("stream")


async def test_declare_topology_is_idempotent(
    channel: AbstractChannel, management: Management, vhost: str
) -> None:
    first = await declare_topology(channel)
    second = await declare_topology(channel)
    assert isinstance(second, Topology)
    assert first.submit_queue.name == second.submit_queue.name == SUBMIT_QUEUE
    for name in (SUBMIT_QUEUE, QUERY_QUEUE, DEAD_QUEUE):
        info = management.queue_info(vhost, name)
        assert info is not None, name
        assert (info["type"], info["durable"]) == ("quorum", True)
    submit = management.queue_info(vhost, SUBMIT_QUEUE)
    assert submit is not None
    assert submit["arguments"]["x-dead-letter-exchange"] == DEAD_EXCHANGE
    assert submit["arguments"]["x-delivery-limit"] == SUBMIT_DELIVERY_LIMIT
    dead = management.queue_info(vhost, DEAD_QUEUE)
    assert dead is not None and "x-dead-letter-exchange" not in dead["arguments"]


async def test_declare_topology_refuses_a_changed_queue_type(channel: AbstractChannel) -> None:
    await declare_topology(channel, "quorum")
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
        await declare_topology(channel, "classic")


async def test_classic_queue_type(
    channel: AbstractChannel, management: Management, vhost: str
) -> None:
    await declare_topology(channel, "classic")
    info = management.queue_info(vhost, SUBMIT_QUEUE)
    assert info is not None and info["type"] == "classic"


@pytest.mark.parametrize(
    ("exchange", "key", "queue"),
    [
        (SUBMIT_EXCHANGE, EDOC_KEY, SUBMIT_QUEUE),
        (SUBMIT_EXCHANGE, STATUS_KEY, SUBMIT_QUEUE),
        (QUERY_EXCHANGE, QUERY_KEY, QUERY_QUEUE),
    ],
)
async def test_routing_into_hub_queues(
    channel: AbstractChannel, exchange: str, key: str, queue: str
) -> None:
    topology = await declare_topology(channel)
    target = {SUBMIT_EXCHANGE: topology.submit_exchange, QUERY_EXCHANGE: topology.query_exchange}
    await target[exchange].publish(aio_pika.Message(body=key.encode()), routing_key=key)
    got = await fetch(channel, queue)
    assert got is not None and got.body == key.encode()


async def test_unknown_submit_key_is_unroutable(channel: AbstractChannel) -> None:
    topology = await declare_topology(channel)
    result = await topology.submit_exchange.publish(
        aio_pika.Message(body=b"x"), routing_key="bogus", mandatory=True)
    assert isinstance(result, aiormq.abc.DeliveredMessage)  # basic.return, not basic.ack
    assert await fetch(channel, SUBMIT_QUEUE) is None


async def test_rejected_submission_is_dead_lettered(channel: AbstractChannel) -> None:
    topology = await declare_topology(channel)
    await topology.submit_exchange.publish(aio_pika.Message(body=b"poison"), routing_key=EDOC_KEY)
    got = await fetch(channel, SUBMIT_QUEUE)
    assert got is not None
    await got.reject(requeue=False)
    dead = await fetch(channel, DEAD_QUEUE)
    assert dead is not None and dead.body == b"poison"
    assert dead.routing_key == EDOC_KEY  # the original key survives (fanout dead exchange)


async def test_declare_inbox_routes_by_system_id(
    channel: AbstractChannel, management: Management, vhost: str
) -> None:
    topology = await declare_topology(channel)
    for system in ("000.00.00.G22", "000.00.00.H29"):
        queue = await declare_inbox(channel, system)
        assert queue.name == inbox_queue_name(system)
    await declare_inbox(channel, "000.00.00.G22")  # idempotent
    await topology.deliver_exchange.publish(aio_pika.Message(body=b"g22"), "000.00.00.G22")
    got = await fetch(channel, inbox_queue_name("000.00.00.G22"))
    assert got is not None and got.body == b"g22"
    assert await fetch(channel, inbox_queue_name("000.00.00.H29")) is None
    info = management.queue_info(vhost, inbox_queue_name("000.00.00.H29"))
    assert info is not None and info["type"] == "quorum"


async def test_inbox_declared_by_management_matches_amqp_declaration(
    channel: AbstractChannel, management: Management, vhost: str
) -> None:
    management.declare_inbox(vhost, "000.00.00.G22")
    await declare_topology(channel)
    queue = await declare_inbox(channel, "000.00.00.G22")  # no PRECONDITION_FAILED
    deliver = await channel.get_exchange(DELIVER_EXCHANGE, ensure=False)
    await deliver.publish(aio_pika.Message(body=b"both"), "000.00.00.G22")
    got = await fetch(channel, queue.name)
    assert got is not None and got.body == b"both"
