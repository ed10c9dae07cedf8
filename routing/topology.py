"""The broker topology: exchanges, the hub's queues and the per-system inboxes.

::

    system --(user_id=system, key edoc|status)--> axis.submit (direct) --> queue axis.submit
    system --(user_id=system, key query, reply_to=amq.rabbitmq.reply-to)--> axis.query --> queue
    hub --(key = system id)--> axis.deliver (direct) --> queue axis.inbox.<system id>
    rejected/expired/over-delivered messages --> axis.dead (fanout) --> queue axis.dead

``axis.dead`` is a fanout exchange: dead-lettered messages keep their original routing
key (``edoc``, a system id, ...), which a direct exchange would fail to route.
The names are the wire contract's (:mod:`routing.contract`). Declarations are
idempotent; the same arguments are used by ``axis.provision`` through the
management API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from routing.contract import (
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DELIVER_EXCHANGE,
    EDOC_KEY,
    EXCHANGE_TYPES,
    QUERY_EXCHANGE,
    QUERY_KEY,
    QUERY_QUEUE,
    RETRY_EXCHANGE,
    STATUS_KEY,
    SUBMIT_EXCHANGE,
    SUBMIT_QUEUE,
    inbox_queue_name,
)
from routing.contract_attachments import ATTACHMENT_KEYS, ATTACHMENT_QUEUE
from routing.retry import H_RETRY_LEVEL, RETRY_DELAYS, retry_queue_name

QUEUE_TYPES = ("quorum", "classic")
# A submission that crashes the hub this many times is dead-lettered, not retried forever.
SUBMIT_DELIVERY_LIMIT = 20

@dataclass(frozen=True, slots=True)
class Topology:
    """The declared exchanges and queues, bound to the channel that declared them."""

    channel: AbstractChannel
    submit_exchange: AbstractExchange
    deliver_exchange: AbstractExchange
    query_exchange: AbstractExchange
    dead_exchange: AbstractExchange
    retry_exchange: AbstractExchange
    submit_queue: AbstractQueue
    query_queue: AbstractQueue
    dead_queue: AbstractQueue


def queue_arguments(
    queue_type: str, *, dead_letter: bool = True, delivery_limit: int | None = None
) -> dict[str, Any]:
    """The ``x-`` arguments of an Axis queue of ``queue_type`` (quorum or classic)."""
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"queue_type must be one of {QUEUE_TYPES}, not {queue_type!r}")
    arguments: dict[str, Any] = {"x-queue-type": queue_type}
    if dead_letter:
        arguments["x-dead-letter-exchange"] = DEAD_EXCHANGE
    if delivery_limit is not None and queue_type == "quorum":
        arguments["x-delivery-limit"] = delivery_limit
    return arguments


def inbox_arguments(queue_type: str) -> dict[str, Any]:
    """Arguments of a system inbox (shared with the management-API provisioning)."""
    return queue_arguments(queue_type)


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """One hub queue: its arguments and the (exchange, routing key) bindings it needs."""

    name: str
    arguments: dict[str, Any]
    bindings: tuple[tuple[str, str], ...]
    binding_arguments: dict[str, Any] = field(default_factory=dict)


def hub_queues(queue_type: str) -> tuple[QueueSpec, ...]:
    """The hub's queues, declared alike over AMQP and through the management API."""
    return (
        QueueSpec(DEAD_QUEUE, queue_arguments(queue_type, dead_letter=False),
                  ((DEAD_EXCHANGE, ""),)),
        QueueSpec(SUBMIT_QUEUE,
                  queue_arguments(queue_type, delivery_limit=SUBMIT_DELIVERY_LIMIT),
                  ((SUBMIT_EXCHANGE, EDOC_KEY), (SUBMIT_EXCHANGE, STATUS_KEY))),
        QueueSpec(QUERY_QUEUE, queue_arguments(queue_type), ((QUERY_EXCHANGE, QUERY_KEY),)),
        # Chunks are answered, so a lost one is sent again: no dead letters of 1 MiB each.
        QueueSpec(ATTACHMENT_QUEUE,
                  queue_arguments(queue_type, dead_letter=False,
                                  delivery_limit=SUBMIT_DELIVERY_LIMIT),
                  tuple((QUERY_EXCHANGE, key) for key in ATTACHMENT_KEYS)),
        *(retry_queue(queue_type, level) for level in range(1, len(RETRY_DELAYS) + 1)),
    )  # fmt: skip


def retry_queue(queue_type: str, level: int) -> QueueSpec:
    """``axis.retry.<level>``: holds a submission for its delay, then dead-letters it back
    to ``axis.submit`` with its own routing key (docs/protocol.md, retries)."""
    arguments: dict[str, Any] = {
        "x-queue-type": queue_type,
        "x-message-ttl": RETRY_DELAYS[level - 1] * 1000,
        "x-dead-letter-exchange": SUBMIT_EXCHANGE,
    }
    if queue_type == "quorum":  # a quorum queue dead-letters safely only at least once
        arguments["x-dead-letter-strategy"] = "at-least-once"
        arguments["x-overflow"] = "reject-publish"
    return QueueSpec(retry_queue_name(level), arguments, ((RETRY_EXCHANGE, ""),),
                     {"x-match": "all", H_RETRY_LEVEL: str(level)})  # fmt: skip


async def declare_topology(channel: AbstractChannel, queue_type: str = "quorum") -> Topology:
    """Declare every hub exchange and queue (idempotent) and bind the hub's queues."""
    exchanges = {
        name: await channel.declare_exchange(name, ExchangeType(kind), durable=True)
        for name, kind in EXCHANGE_TYPES.items()
    }
    queues = {}
    for spec in hub_queues(queue_type):
        queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
        for exchange, key in spec.bindings:
            await queue.bind(exchanges[exchange], routing_key=key,
                             arguments=spec.binding_arguments or None)  # fmt: skip
        queues[spec.name] = queue
    dead_queue, submit_queue = queues[DEAD_QUEUE], queues[SUBMIT_QUEUE]
    query_queue = queues[QUERY_QUEUE]
    return Topology(
        channel=channel,
        submit_exchange=exchanges[SUBMIT_EXCHANGE],
        deliver_exchange=exchanges[DELIVER_EXCHANGE],
        query_exchange=exchanges[QUERY_EXCHANGE],
        dead_exchange=exchanges[DEAD_EXCHANGE],
        retry_exchange=exchanges[RETRY_EXCHANGE],
        submit_queue=submit_queue,
        query_queue=query_queue,
        dead_queue=dead_queue,
    )  # fmt: skip


async def declare_inbox(
    channel: AbstractChannel, system_id: str, queue_type: str = "quorum"
) -> AbstractQueue:
    """Declare ``axis.inbox.<system_id>`` bound to ``axis.deliver`` with key = system id."""
    deliver = await channel.declare_exchange(DELIVER_EXCHANGE, ExchangeType.DIRECT, durable=True)
    await channel.declare_exchange(DEAD_EXCHANGE, ExchangeType.FANOUT, durable=True)
    queue = await channel.declare_queue(
        inbox_queue_name(system_id), durable=True, arguments=inbox_arguments(queue_type))
    await queue.bind(deliver, routing_key=system_id)
    return queue
