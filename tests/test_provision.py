"""System accounts on a real RabbitMQ: what a provisioned system may and may not do."""

from __future__ import annotations

import asyncio
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import aio_pika
import aiormq
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from axis.errors import BrokerUnreachable, ManagementApiError
from axis.provision import Management, generate_password, system_permissions
from routing.contract import (
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
from routing.topology import declare_topology

pytestmark = pytest.mark.rabbitmq


def amqp_url(base: str, user: str, password: str, vhost: str) -> str:
    parts = urlsplit(base)
    return f"amqp://{quote(user)}:{quote(password)}@{parts.hostname}:{parts.port or 5672}/{vhost}"


@dataclass
class Broker:
    management: Management
    vhost: str
    admin: AbstractChannel
    urls: dict[str, str]
    systems: tuple[str, str]

    async def channel_as(self, system_id: str) -> aio_pika.abc.AbstractChannel:
        connection = await aio_pika.connect(self.urls[system_id])
        self._connections.append(connection)
        return await connection.channel(publisher_confirms=True)

    def __post_init__(self) -> None:
        self._connections: list[aio_pika.abc.AbstractConnection] = []

    async def close(self) -> None:
        for connection in self._connections:
            await connection.close()


@pytest.fixture
def management(management_base_url: str) -> Management:
    return Management(management_base_url)


@pytest.fixture
async def broker(
    management: Management, amqp_base_url: str, unique_name: str, private_vhost: str
) -> AsyncIterator[Broker]:
    vhost = private_vhost
    systems = (f"{unique_name.upper()}.A", f"{unique_name.upper()}.B")
    urls = {}
    for system in systems:
        password = generate_password()
        management.create_system_account(vhost, system, password)
        management.declare_inbox(vhost, system)
        urls[system] = amqp_url(amqp_base_url, system, password, vhost)
    admin_connection = await aio_pika.connect(amqp_url(amqp_base_url, "guest", "guest", vhost))
    admin = await admin_connection.channel()
    await declare_topology(admin)
    state = Broker(management, vhost, admin, urls, systems)
    try:
        yield state
    finally:
        await state.close()
        await admin_connection.close()
        for system in systems:
            management.delete_user(system)


def message(user_id: str, body: bytes = b"<edXML/>") -> aio_pika.Message:
    return aio_pika.Message(body=body, user_id=user_id, message_id=f"m-{user_id}")


async def fetch(channel: AbstractChannel, queue: str) -> AbstractIncomingMessage | None:
    q = await channel.get_queue(queue, ensure=False)
    for _ in range(50):
        got = await q.get(no_ack=True, fail=False)
        if got is not None:
            return got
        await asyncio.sleep(0.05)
    return None


# -- allowed ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exchange", "key", "queue"),
    [
        (SUBMIT_EXCHANGE, EDOC_KEY, SUBMIT_QUEUE),
        (SUBMIT_EXCHANGE, STATUS_KEY, SUBMIT_QUEUE),
        (QUERY_EXCHANGE, QUERY_KEY, QUERY_QUEUE),
    ],
)
async def test_system_publishes_as_itself(
    broker: Broker, exchange: str, key: str, queue: str
) -> None:
    system = broker.systems[0]
    channel = await broker.channel_as(system)
    target = await channel.get_exchange(exchange, ensure=False)
    await target.publish(message(system), routing_key=key)
    got = await fetch(broker.admin, queue)
    assert got is not None
    assert got.user_id == system
    assert got.routing_key == key


async def test_system_consumes_its_own_inbox(broker: Broker) -> None:
    system = broker.systems[0]
    deliver = await broker.admin.get_exchange(DELIVER_EXCHANGE, ensure=False)
    await deliver.publish(aio_pika.Message(body=b"for-a"), routing_key=system)
    channel = await broker.channel_as(system)
    got = await fetch(channel, inbox_queue_name(system))
    assert got is not None and got.body == b"for-a"


async def test_query_over_direct_reply_to(broker: Broker) -> None:
    system = broker.systems[0]

    async def answer(request: AbstractIncomingMessage) -> None:
        async with request.process():
            assert request.reply_to is not None
            reply = aio_pika.Message(body=b"answer:" + request.body,
                                     correlation_id=request.correlation_id)
            await broker.admin.default_exchange.publish(reply, routing_key=request.reply_to)

    hub_queue = await broker.admin.get_queue(QUERY_QUEUE, ensure=False)
    await hub_queue.consume(answer)
    channel = await broker.channel_as(system)
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_reply(reply: AbstractIncomingMessage) -> None:
        await replies.put(reply.body)

    reply_to = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
    await reply_to.consume(on_reply, no_ack=True)
    query = await channel.get_exchange(QUERY_EXCHANGE, ensure=False)
    request = aio_pika.Message(body=b"trace", user_id=system, reply_to="amq.rabbitmq.reply-to",
                               correlation_id="c1")
    await query.publish(request, routing_key=QUERY_KEY)
    assert await asyncio.wait_for(replies.get(), 10) == b"answer:trace"


# -- refused ---------------------------------------------------------------------------


async def _publish(channel: AbstractChannel, exchange: str, key: str, user_id: str) -> None:
    target = channel.default_exchange if exchange == "" else await channel.get_exchange(
        exchange, ensure=False)
    await target.publish(message(user_id), routing_key=key, timeout=10)


async def test_publish_with_another_systems_user_id_is_refused(broker: Broker) -> None:
    me, other = broker.systems
    channel = await broker.channel_as(me)
    with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="user_id"):
        await _publish(channel, SUBMIT_EXCHANGE, EDOC_KEY, other)
    assert await fetch(broker.admin, SUBMIT_QUEUE) is None


@pytest.mark.parametrize(
    ("exchange", "key"),
    [
        (DELIVER_EXCHANGE, "B"),  # straight into another system's inbox
        ("", "INBOX-B"),  # the default exchange
        ("amq.direct", EDOC_KEY),
        ("amq.topic", EDOC_KEY),
    ],
)
async def test_publishing_elsewhere_is_refused(broker: Broker, exchange: str, key: str) -> None:
    me, other = broker.systems
    key = {"B": other, "INBOX-B": inbox_queue_name(other)}.get(key, key)
    channel = await broker.channel_as(me)
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        await _publish(channel, exchange, key, me)
    assert await fetch(broker.admin, inbox_queue_name(other)) is None


Action = Callable[[AbstractChannel, str, str], Awaitable[object]]


async def _consume_other_inbox(channel: AbstractChannel, me: str, other: str) -> object:
    queue = await channel.get_queue(inbox_queue_name(other), ensure=False)
    return await queue.get(no_ack=True, fail=False)


async def _consume_submit_queue(channel: AbstractChannel, me: str, other: str) -> object:
    queue = await channel.get_queue(SUBMIT_QUEUE, ensure=False)
    return await queue.get(no_ack=True, fail=False)


async def _declare_queue(channel: AbstractChannel, me: str, other: str) -> object:
    return await channel.declare_queue(f"mine.{me}", durable=False, auto_delete=True)


async def _declare_exchange(channel: AbstractChannel, me: str, other: str) -> object:
    return await channel.declare_exchange(f"mine.{me}", auto_delete=True)


async def _delete_own_inbox(channel: AbstractChannel, me: str, other: str) -> object:
    return await channel.queue_delete(inbox_queue_name(me))


async def _bind_own_inbox(channel: AbstractChannel, me: str, other: str) -> object:
    queue = await channel.get_queue(inbox_queue_name(me), ensure=False)
    return await queue.bind(DELIVER_EXCHANGE, routing_key=other)


async def _delete_exchange(channel: AbstractChannel, me: str, other: str) -> object:
    return await channel.exchange_delete(SUBMIT_EXCHANGE)


@pytest.mark.parametrize(
    "action",
    [_consume_other_inbox, _consume_submit_queue, _declare_queue, _declare_exchange,
     _delete_own_inbox, _bind_own_inbox, _delete_exchange],
)
async def test_forbidden_operations_are_refused(broker: Broker, action: Action) -> None:
    me, other = broker.systems
    deliver = await broker.admin.get_exchange(DELIVER_EXCHANGE, ensure=False)
    await deliver.publish(aio_pika.Message(body=b"secret"), routing_key=other)
    channel = await broker.channel_as(me)
    with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
        await action(channel, me, other)
    info = broker.management.queue_info(broker.vhost, inbox_queue_name(me))
    assert info is not None  # still there
    got = await fetch(broker.admin, inbox_queue_name(other))
    assert got is not None and got.body == b"secret"  # nothing was read from B's inbox


# -- management API --------------------------------------------------------------------


def test_system_permissions_are_anchored_and_escaped() -> None:
    perms = system_permissions("000.00.00.G22")
    assert perms == {
        "configure": "^$",
        "write": r"^(axis\.submit|axis\.query)$",
        "read": r"^axis\.inbox\.000\.00\.00\.G22$",
    }


async def test_inbox_is_a_durable_quorum_queue_with_dead_lettering(broker: Broker) -> None:
    info = broker.management.queue_info(broker.vhost, inbox_queue_name(broker.systems[0]))
    assert info is not None
    assert info["durable"] is True
    assert info["type"] == "quorum"
    assert info["arguments"]["x-dead-letter-exchange"] == "axis.dead"
    assert broker.management.queue_info(broker.vhost, "no.such.queue") is None


async def test_declare_inbox_is_idempotent_and_refuses_another_type(broker: Broker) -> None:
    system = broker.systems[0]
    broker.management.declare_inbox(broker.vhost, system)
    with pytest.raises(ManagementApiError) as caught:
        broker.management.declare_inbox(broker.vhost, system, queue_type="classic")
    assert caught.value.detail["status"] == 400
    assert "inequivalent" in caught.value.reason


async def test_password_change_and_user_deletion(broker: Broker, amqp_base_url: str) -> None:
    system = broker.systems[1]
    new_password = generate_password()
    broker.management.set_user_password(system, new_password)
    with pytest.raises(aiormq.exceptions.ProbableAuthenticationError):
        await aio_pika.connect(broker.urls[system])
    connection = await aio_pika.connect(amqp_url(amqp_base_url, system, new_password, broker.vhost))
    await connection.close()
    assert broker.management.user_exists(system)
    assert broker.management.delete_user(system) is True
    assert not broker.management.user_exists(system)
    assert broker.management.delete_user(system) is False


def test_vhost_lifecycle(management: Management, unique_name: str) -> None:
    management.ensure_vhost(unique_name)
    management.ensure_vhost(unique_name)  # idempotent
    assert management.delete_vhost(unique_name) is True
    assert management.delete_vhost(unique_name) is False


def test_bad_credentials_give_the_http_status(management_base_url: str) -> None:
    parts = urlsplit(management_base_url)
    wrong = Management(f"http://guest:wrong@{parts.hostname}:{parts.port}/")
    with pytest.raises(ManagementApiError) as caught:
        wrong.user_exists("guest")
    assert caught.value.detail["status"] == 401
    assert caught.value.code == "transport.management_api"


def test_unreachable_management_api() -> None:
    with pytest.raises(BrokerUnreachable):
        Management("http://guest:guest@127.0.0.1:1/", timeout=2).ensure_vhost("x")


@pytest.mark.parametrize("url", ["ftp://host/", "not a url", "http:///nohost"])
def test_bad_management_url(url: str) -> None:
    with pytest.raises(ManagementApiError):
        Management(url)


URL_SAFE = set(string.ascii_letters + string.digits + "-_")


@settings(max_examples=50)
@given(st.integers(min_value=0, max_value=10))
def test_generated_passwords_are_32_url_safe_chars(_: int) -> None:
    password = generate_password()
    assert len(password) == 32
    assert set(password) <= URL_SAFE


def test_generated_passwords_differ() -> None:
    assert len({generate_password() for _ in range(100)}) == 100
