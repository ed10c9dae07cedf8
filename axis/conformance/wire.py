"""The kit's own broker work, as the hub operator: watching ``axis.submit``, publishing the
copies a compromised or crashed hub could publish, and reading what an inbox still holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from axis.conformance.rules import Seen
from routing.amqp import publish_confirmed
from routing.contract import (
    DELIVER_EXCHANGE,
    EDOC_KEY,
    STATUS_KEY,
    SUBMIT_EXCHANGE,
    WireMessage,
    inbox_queue_name,
)

POLL_SECONDS = 0.05


class SubmitSpy:
    """A private queue bound beside ``axis.submit``: a copy of every submission, as sent."""

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self.seen: list[Seen] = []

    async def start(self) -> None:
        """Bind to both routing keys; from now on every submission is also seen here."""
        queue = await self.channel.declare_queue("", exclusive=True, auto_delete=True)
        for key in (EDOC_KEY, STATUS_KEY):
            await queue.bind(SUBMIT_EXCHANGE, key)
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.seen.append(Seen(
            kind=message.routing_key or "",
            message_id=message.message_id,
            user_id=message.user_id,
            delivery_mode=int(message.delivery_mode) if message.delivery_mode else None,
            content_type=message.content_type,
            body=bytes(message.body),
        ))  # fmt: skip

    async def wait_for(
        self, wanted: Callable[[Seen], bool], timeout: float, since: int = 0
    ) -> Seen | None:
        """The first message seen from index ``since`` on that is ``wanted``, or None."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = next((s for s in self.seen[since:] if wanted(s)), None)
            if found is not None or asyncio.get_running_loop().time() >= deadline:
                return found
            await asyncio.sleep(POLL_SECONDS)


async def publish_delivery(channel: AbstractChannel, wire: WireMessage, system_id: str) -> None:
    """Publish ``wire`` into ``system_id``'s inbox, as only the hub may."""
    exchange = await channel.get_exchange(DELIVER_EXCHANGE, ensure=False)
    await publish_confirmed(exchange, wire, system_id)


async def inbox_depth(channel: AbstractChannel, system_id: str) -> int:
    """How many messages wait (ready) in the system's inbox."""
    queue = await channel.declare_queue(inbox_queue_name(system_id), passive=True)
    return int(queue.declaration_result.message_count or 0)


async def wait_depth(
    channel: AbstractChannel, system_id: str, at_least: int, timeout: float
) -> int:
    """Wait until the inbox holds ``at_least`` messages (or the timeout); returns the depth."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (depth := await inbox_depth(channel, system_id)) < at_least:
        if asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    return depth


async def drain_inbox(channel: AbstractChannel, system_id: str) -> list[str]:
    """Take every message left in the inbox; returns their message ids."""
    queue = await channel.get_queue(inbox_queue_name(system_id), ensure=False)
    left: list[str] = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        left.append(message.message_id or "")
    return left


async def admin_channel(url: str) -> tuple[aio_pika.abc.AbstractConnection, AbstractChannel]:
    """A connection as the broker admin in the kit's vhost, with publisher confirms."""
    connection = await aio_pika.connect(url)
    return connection, await connection.channel(publisher_confirms=True)
