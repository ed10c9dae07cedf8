"""Contract messages onto the wire with aio-pika, and broker refusals as coded errors."""

from __future__ import annotations

import aio_pika
import aiormq
import aiormq.abc
import pamqp.decode
from aio_pika.abc import AbstractExchange

from routing.contract import WireMessage
from routing.errors import AccessRefused, PublishNotConfirmed, SubmissionTooLarge

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
        result = await exchange.publish(amqp_message(wire), routing_key, mandatory=True)
    except aio_pika.exceptions.DeliveryError as exc:
        raise PublishNotConfirmed(f"the broker did not route {routing_key!r}: {exc}") from None
    except aiormq.exceptions.ChannelAccessRefused as exc:
        raise AccessRefused(f"the broker refused the publish: {exc}") from None
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        if "message size" in str(exc):  # the broker's max_message_size: never reached the hub
            raise SubmissionTooLarge(f"the broker refused a {len(wire.body)}-byte message: {exc}",
                                     size=len(wire.body)) from None  # fmt: skip
        raise PublishNotConfirmed(f"the broker refused the publish: {exc}") from None
    except (aio_pika.exceptions.ChannelInvalidStateError, aio_pika.exceptions.PublishError) as exc:
        raise PublishNotConfirmed(f"publish to {routing_key!r} not confirmed: {exc}") from None
    if isinstance(result, aiormq.abc.DeliveredMessage):  # basic.return: no queue took it
        raise PublishNotConfirmed(f"the broker returned the message for {routing_key!r} as "
                                  "unroutable")  # fmt: skip


async def publish(exchange: AbstractExchange, wire: WireMessage, routing_key: str) -> None:
    """Publish without ``mandatory`` (direct reply-to answers: the asker may be gone)."""
    await exchange.publish(amqp_message(wire), routing_key)


def tolerate_invalid_short_strings() -> None:
    """Decode a non-UTF-8 AMQP short string (``message_id``, ``type``, …) with U+FFFD
    replacements instead of failing.

    pamqp lets the ``UnicodeDecodeError`` escape from frame decoding, which makes aiormq
    close the whole connection: one hostile publisher's message would take the hub down
    again at every redelivery. With this, such a message is consumed and refused
    (``submission.invalid_message_id``) like any other. Process-wide; the hub calls it.
    """
    if getattr(pamqp.decode.short_str, "_axis_tolerant", False):
        return
    original = pamqp.decode.short_str

    def short_str(value: bytes) -> tuple[int, str]:
        try:
            return original(value)
        except UnicodeDecodeError:
            length = value[0]
            return length + 1, value[1 : length + 1].decode("utf-8", "replace")

    short_str._axis_tolerant = True  # type: ignore[attr-defined]
    pamqp.decode.short_str = short_str
    pamqp.decode.METHODS["shortstr"] = short_str
