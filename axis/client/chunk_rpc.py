"""Requests of the streamed-attachment contract, many in flight on one channel.

:class:`ChunkRpc` opens a channel of its own on the SDK's connection, consumes
RabbitMQ direct reply-to on it and matches each answer to its request by
``correlation_id``, so an upload or a download keeps a window of requests
outstanding (``routing/contract_attachments.py``). Requests are published
``mandatory`` on a confirming channel: when no queue takes them (no hub that serves
streamed attachments has run in the virtual host) the broker returns them and the
request fails at once with ``transport.hub_not_ready`` instead of timing out. A request unanswered
within the timeout is sent again (the contract makes that harmless) a few times, and so is
one the hub answers ``attachment.unavailable`` (its disk failed for a moment), after a pause.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)

from axis.client.config import ClientConfig
from axis.errors import BrokerUnreachable, HubNotReady, ReceiptTimeout, error_for_code
from envelopes.errors import AxisError
from routing.amqp import amqp_message
from routing.contract import DIRECT_REPLY_TO, JSON, WireMessage, read_answer
from routing.contract_attachments import ATTACHMENT_EXCHANGE
from routing.errors import (
    AccessRefused,
    AttachmentError,
    AttachmentUnavailable,
    QueryRefused,
)

REQUEST_TIMEOUT = 30.0  # seconds an answer may take (the hub writes and syncs the chunk)
ATTEMPTS = 3  # sends of one request before giving up with transport.receipt_timeout
RECONNECT_PAUSE = 1.0  # seconds before sending again after the channel was lost
# Seconds before asking again when the hub answers attachment.unavailable: a disk that fails
# for a moment does not end a long upload, one that stays failed is reported in ~15 s.
UNAVAILABLE_PAUSES = (1.0, 2.0, 4.0, 8.0)



T = TypeVar("T")


class HubLink(Protocol):
    """What uploads and downloads need of a client (:class:`~axis.client.agency.AgencyClient`)."""

    @property
    def config(self) -> ClientConfig: ...

    @property
    def connection(self) -> AbstractConnection: ...


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer from the hub: the body, its content type and headers."""

    body: bytes
    content_type: str
    headers: Mapping[str, Any]


def channel_refusal(exc: BaseException | None, what: str) -> AxisError | None:
    """The coded error for a channel the broker closed because ``axis.query`` does not exist
    (no hub was set up) or the account may not use it; None for any other failure."""
    if isinstance(exc, aiormq.exceptions.ChannelNotFoundEntity):
        return HubNotReady("the broker has no axis.query exchange: no hub was set up")
    if isinstance(exc, aiormq.exceptions.ChannelAccessRefused):
        return AccessRefused(f"the broker refused {what}: {exc}")
    return None


def remote_error(refused: QueryRefused, **detail: Any) -> AxisError:
    """The hub's refusal as the error class of its code (``attachment.*``), with ``detail``;
    any other code stays ``transport.query_refused`` with ``remote_code``."""
    code = refused.detail.get("remote_code")
    cls = error_for_code(code) if isinstance(code, str) else None
    if cls is None or not issubclass(cls, AttachmentError) or cls is AttachmentError:
        return QueryRefused(refused.reason, remote_code=code, **detail)
    return cls(refused.reason, **detail)


def read_json_reply(reply: Reply, **detail: Any) -> dict[str, Any]:
    """A JSON answer's data; a refusal raises the coded error of its code (see
    :func:`remote_error`), with ``detail`` (the file, the chunk) added."""
    try:
        return read_answer(reply.body)
    except QueryRefused as refused:
        raise remote_error(refused, **detail) from None


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a worker thread. Cancelled, it still waits for the thread to
    end before it raises: the caller closes the files the thread writes to."""
    work = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise


async def run_window(window: int, items: Iterable[T], work: Callable[[T], Awaitable[None]]) -> None:
    """``work(item)`` for every item, at most ``window`` at a time; the first failure
    cancels the others and is raised."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:  # one shared iterator: each item is taken by one worker
            await work(item)

    tasks = [asyncio.ensure_future(worker()) for _ in range(window)]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error


def is_unavailable(reply: Reply) -> bool:
    """Whether ``reply`` is the hub's ``attachment.unavailable`` refusal."""
    if not reply.content_type.startswith(JSON):
        return False
    try:
        read_answer(reply.body)
    except QueryRefused as refused:
        return refused.detail.get("remote_code") == AttachmentUnavailable.code
    return False


class ChunkRpc:
    """Attachment requests over one channel consuming direct reply-to."""

    def __init__(self, connection: AbstractConnection, *, timeout: float | None = None,
                 attempts: int = ATTEMPTS) -> None:  # fmt: skip
        self._connection = connection
        self.timeout = REQUEST_TIMEOUT if timeout is None else timeout
        self.attempts = attempts
        self._channel: AbstractChannel | None = None
        self._opened: list[AbstractChannel] = []  # a robust channel may reopen after an error
        self._exchange: AbstractExchange | None = None
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._opening = asyncio.Lock()

    async def __aenter__(self) -> ChunkRpc:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; requests still waiting fail."""
        self._channel = None
        self._fail_pending(BrokerUnreachable("the attachment channel was closed"))
        for channel in self._opened:
            if not channel.is_closed:
                await channel.close()
        self._opened.clear()

    async def call(self, make: Callable[[str], WireMessage], routing_key: str) -> Reply:
        """Publish ``make(correlation_id)`` and wait for its answer; sent again (with a new
        correlation id) when unanswered or when the channel was lost on the way,
        ``transport.receipt_timeout`` (or ``transport.unreachable``) after the last try.
        An ``attachment.unavailable`` answer is asked again after each of
        :data:`UNAVAILABLE_PAUSES`; the last one is returned as it is."""
        for pause in UNAVAILABLE_PAUSES:
            reply = await self._call_once(make, routing_key)
            if not is_unavailable(reply):
                return reply
            await asyncio.sleep(pause)
        return await self._call_once(make, routing_key)

    async def _call_once(self, make: Callable[[str], WireMessage], routing_key: str) -> Reply:
        """:meth:`call` without asking again after ``attachment.unavailable``."""
        lost: BrokerUnreachable | None = None
        for _ in range(self.attempts):
            correlation_id = str(uuid.uuid4())
            try:
                future = await self._publish(make(correlation_id), routing_key, correlation_id)
                return await asyncio.wait_for(future, self.timeout)
            except TimeoutError:
                lost = None
            except BrokerUnreachable as error:
                lost = error
                await asyncio.sleep(RECONNECT_PAUSE)
            finally:
                self._pending.pop(correlation_id, None)
        if lost is not None:
            raise lost
        raise ReceiptTimeout(f"the hub did not answer an {routing_key} request within "
                             f"{self.timeout:g} s, {self.attempts} times")  # fmt: skip

    async def _publish(self, wire: WireMessage, routing_key: str,
                       correlation_id: str) -> asyncio.Future[Reply]:  # fmt: skip
        exchange = await self._open()
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        # The client library matches a returned message to its publish by message id.
        message = amqp_message(dataclasses.replace(wire, message_id=correlation_id))
        try:
            result = await exchange.publish(message, routing_key, mandatory=True)
        except (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPException,
                ConnectionError) as exc:  # fmt: skip
            raise channel_refusal(exc, "the attachment request") or BrokerUnreachable(
                f"the attachment request was not confirmed: {exc}") from None
        if isinstance(result, aiormq.abc.DeliveredMessage):  # basic.return: no queue took it
            raise HubNotReady(
                "no queue takes streamed attachments (axis.attachment): the hub in this virtual "
                "host does not serve them, or has never run")  # fmt: skip
        return future

    async def _open(self) -> AbstractExchange:
        async with self._opening:
            if self._channel is not None and not self._channel.is_closed:
                assert self._exchange is not None
                return self._exchange
            try:
                channel = await self._connection.channel(publisher_confirms=True)
                self._opened.append(channel)
                channel.close_callbacks.add(self._on_close)
                replies = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
                await replies.consume(self._on_reply, no_ack=True)
                self._exchange = await channel.get_exchange(ATTACHMENT_EXCHANGE, ensure=False)
            except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
                raise channel_refusal(exc, "the attachment request") or BrokerUnreachable(
                    f"cannot open an attachment channel: {exc}") from None
            self._channel = channel
            return self._exchange

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.get(message.correlation_id or "")
        if future is not None and not future.done():
            future.set_result(Reply(bytes(message.body), message.content_type or "",
                                    dict(message.headers or {})))  # fmt: skip

    def _on_close(self, _sender: object, exc: BaseException | None = None) -> None:
        self._channel = None
        self._fail_pending(channel_refusal(exc, "the attachment request") or BrokerUnreachable(
            f"the attachment channel closed: {exc or 'closed'}"))

    def _fail_pending(self, error: AxisError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()


__all__ = ["ChunkRpc", "HubLink", "Reply", "channel_refusal", "in_thread", "is_unavailable",
           "read_json_reply", "remote_error", "run_window"]
