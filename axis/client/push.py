"""Push delivery: an inbox taken as the broker hands it over, not by polling.

:func:`watch_queue` subscribes with ``basic.consume`` on a channel of its own whose
``basic.qos`` prefetch window bounds how many messages the broker hands over un-acked.
The channel comes from the SDK's robust connection: after the connection is lost and
restored, the channel, its prefetch window, the queue and the subscription are restored
with it (the queue is looked up with a passive ``queue.declare``, which registers it for
that and needs no permission; ``get_queue(..., ensure=False)`` would not be restored).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TypeVar

import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from axis.errors import BrokerUnreachable, HubNotReady
from routing.errors import AccessRefused

Item = TypeVar("Item")


async def watch_queue(
    connection: AbstractRobustConnection,
    queue_name: str,
    take: Callable[[AbstractIncomingMessage], Awaitable[Item | None]],
    *,
    prefetch: int,
) -> AsyncGenerator[Item, None]:
    """``take(message)`` of every message consumed from ``queue_name``, skipping Nones.

    Stopping the iteration cancels the consumer and closes its channel: the broker
    delivers again every message not acked by then. It ends when the connection is
    closed; a connection lost and not restored raises ``transport.unreachable``.
    """
    channel = await connection.channel()
    try:
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.declare_queue(queue_name, passive=True)
        async with queue.iterator() as messages:
            async for message in messages:
                if not _settleable(message):
                    continue  # delivered before a reconnection: the broker delivers it again
                item = await take(message)
                if item is not None:
                    yield item
        if not connection.is_closed:  # aio-pika gives up on a channel not back within 60 s
            raise BrokerUnreachable(f"lost the broker connection; {queue_name} was not restored")
    except aiormq.exceptions.ChannelNotFoundEntity:
        raise HubNotReady(f"the broker has no queue {queue_name}: no hub set it up") from None
    except aiormq.exceptions.ChannelAccessRefused as exc:
        raise AccessRefused(f"cannot consume {queue_name}: {exc}") from None
    finally:
        if not channel.is_closed:
            await channel.close()


def _settleable(message: AbstractIncomingMessage) -> bool:
    """Whether ``message`` came on the channel still open (so it can still be acked)."""
    try:
        return not message.channel.is_closed
    except aiormq.exceptions.ChannelInvalidStateError:
        return False


__all__ = ["watch_queue"]
