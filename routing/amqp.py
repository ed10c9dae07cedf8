"""Contract messages onto the wire with aio-pika, and broker refusals as coded errors."""

from __future__ import annotations

import aio_pika
import aiormq
from aio_pika.abc import AbstractExchange

from routing.contract import WireMessage
from routing.errors import AccessRefused, PublishNotConfirmed

_PERSISTENT = aio_pika.DeliveryMode.PERSISTENT
_TRANSIENT = aio_pika.DeliveryMode.NOT_PERSISTENT


def amqp_message(wire: WireMessage) -> aio_pika.Message:
    """The aio-pika message carrying ``wire``'s body and properties."""
    return aio_pika.Message(
        body=wire.body,
        content_type=wire.content_type,
        message_id=wire.message_id,
        type=wire.type,
        correlation_id=wire.correlation_id,
        user_id=wire.user_id,
        reply_to=wire.reply_to,
        delivery_mode=_PERSISTENT if wire.persistent else _TRANSIENT,
        headers=dict(wire.headers) or None,
    )


async def publish_confirmed(
    exchange: AbstractExchange, wire: WireMessage, routing_key: str
) -> None:
    """Publish ``mandatory`` on a confirming channel; a nack or an unroutable return raises.

    Broker refusals become coded errors: ``transport.not_confirmed`` (nacked, returned
    as unroutable, channel closed before the confirm) or ``transport.access_refused``.
    """
    try:
        await exchange.publish(amqp_message(wire), routing_key, mandatory=True)
    except aio_pika.exceptions.DeliveryError as exc:
        raise PublishNotConfirmed(f"the broker did not route {routing_key!r}: {exc}") from None
    except aiormq.exceptions.ChannelAccessRefused as exc:
        raise AccessRefused(f"the broker refused the publish: {exc}") from None
    except (aio_pika.exceptions.ChannelInvalidStateError, aio_pika.exceptions.PublishError) as exc:
        raise PublishNotConfirmed(f"publish to {routing_key!r} not confirmed: {exc}") from None


async def publish(exchange: AbstractExchange, wire: WireMessage, routing_key: str) -> None:
    """Publish without ``mandatory`` (direct reply-to answers: the asker may be gone)."""
    await exchange.publish(amqp_message(wire), routing_key)
