"""Contract messages onto the wire with aio-pika, and broker refusals as coded errors."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aiormq
import aiormq.abc
import pamqp.decode
from aio_pika.abc import AbstractExchange, AbstractRobustConnection
from yarl import URL

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


def amqp_properties(wire: WireMessage) -> aiormq.spec.Basic.Properties:
    """``wire``'s basic properties as the frame carries them (what ``amqp_message(wire)
    .properties`` gives, without building an aio-pika message: the hub's hot path)."""
    return aiormq.spec.Basic.Properties(
        content_type=wire.content_type,
        correlation_id=wire.correlation_id,
        delivery_mode=int(_PERSISTENT if wire.persistent else _TRANSIENT),
        headers=dict(wire.headers),  # an empty table when none, as aio-pika sends it
        message_id=wire.message_id,
        message_type=wire.type,
        priority=0,  # as aio-pika sends it
        reply_to=wire.reply_to,
        user_id=wire.user_id,
    )


async def _publish(exchange: AbstractExchange, wire: WireMessage, routing_key: str,
                   mandatory: bool) -> object:  # fmt: skip
    """``exchange.publish`` for a contract message, straight to the channel underneath."""
    if not isinstance(exchange, aio_pika.Exchange):  # another implementation: its own way
        return await exchange.publish(amqp_message(wire), routing_key, mandatory=mandatory)
    if exchange.channel.is_closed:
        raise aio_pika.exceptions.ChannelInvalidStateError(f"{exchange.channel!r} closed")
    channel = await exchange.channel.get_underlay_channel()
    return await channel.basic_publish(wire.body, exchange=exchange.name, routing_key=routing_key,
                                       properties=amqp_properties(wire), mandatory=mandatory)


async def publish_confirmed(
    exchange: AbstractExchange, wire: WireMessage, routing_key: str
) -> None:
    """Publish ``mandatory`` on a confirming channel; a nack or an unroutable return raises.

    Broker refusals become coded errors: ``transport.not_confirmed`` (nacked, returned
    as unroutable, channel closed before the confirm) or ``transport.access_refused``.
    """
    try:
        result = await _publish(exchange, wire, routing_key, mandatory=True)
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
    await _publish(exchange, wire, routing_key, mandatory=False)


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


def broker_urls(amqp_url: str, failover: Sequence[str]) -> list[str]:
    """``amqp_url`` then the same URL (credentials, vhost, query) on each ``host:port`` of
    ``failover``: the addresses of one RabbitMQ cluster, in the order to try them."""
    parts = urlsplit(amqp_url)
    credentials = parts.netloc.rpartition("@")[0]
    urls = [amqp_url]
    for address in failover:
        netloc = f"{credentials}@{address}" if credentials else address
        urls.append(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))
    return urls


async def connect_robust_any(
    urls: Sequence[str], *, reconnect_interval: float = 5.0, **kwargs: Any
) -> AbstractRobustConnection:
    """aio-pika's robust connection over the addresses of one cluster.

    Connects to the first address that answers; once connected, while the connection is
    down (its node died), each of aio-pika's reconnection attempts goes to the next
    address, so channels, consumers and declarations are restored on a surviving node.
    Raises the last address's error when none answers at first.
    """
    failure: BaseException | None = None
    for index, url in enumerate(urls):
        try:
            connection: AbstractRobustConnection = await aio_pika.connect_robust(
                url, reconnect_interval=reconnect_interval, **kwargs
            )
        except (OSError, aiormq.exceptions.AMQPConnectionError) as exc:
            failure = exc
            continue
        if len(urls) > 1:
            rotation = asyncio.create_task(_rotate_while_down(
                connection, list(urls), index, reconnect_interval))  # fmt: skip
            _ROTATIONS.add(rotation)
            rotation.add_done_callback(_ROTATIONS.discard)
        return connection
    assert failure is not None, "no broker address given"
    raise failure


_ROTATIONS: set[asyncio.Task[None]] = set()  # keeps the running rotations referenced


async def _rotate_while_down(
    connection: AbstractRobustConnection, urls: list[str], index: int, interval: float
) -> None:
    while not connection.is_closed:
        await asyncio.sleep(interval)
        if not connection.is_closed and not connection.connected.is_set():
            index = (index + 1) % len(urls)
            connection.url = URL(urls[index])  # type: ignore[attr-defined]  # read per attempt
