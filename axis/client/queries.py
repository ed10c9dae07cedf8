"""The agency SDK's queries to the hub: traces, evidence, log heads, receipts.

``HubQueries`` is mixed into :class:`axis.client.agency.AgencyClient`; each query goes
over the hub's query exchange with direct reply-to, and receipts are verified against
the hub's certificate and checked to be about this system's own consignments.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from axis.client.config import ClientConfig
from axis.errors import HubNotReady, ReceiptNotOurs, ReceiptTimeout
from axis.receipts import VerifiedReceipt, verify_receipt
from routing.amqp import amqp_message
from routing.contract import (
    DIRECT_REPLY_TO,
    OP_EVIDENCE,
    OP_LOG_CONSISTENCY,
    OP_LOG_HEAD,
    QUERY_EXCHANGE,
    QUERY_KEY,
    document_request,
    query_message,
    read_answer,
    receipt_request,
    recipients_request,
    trace_request,
)
from routing.errors import AccessRefused, QueryRefused
from signing.verify import VerifyPolicy


class HubQueries:
    """Queries an :class:`~axis.client.agency.AgencyClient` asks the hub, and receipt checks."""

    config: ClientConfig
    sent_consignments: set[str] | None
    _clock: Callable[[], datetime]
    _connection: AbstractRobustConnection | None

    async def query(self, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Ask the hub (direct reply-to); refusals raise ``transport.query_refused``."""
        assert self._connection is not None
        channel = await self._connection.channel()
        try:
            replies: asyncio.Queue[bytes] = asyncio.Queue()
            reply_queue = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)

            async def on_reply(message: AbstractIncomingMessage) -> None:
                await replies.put(bytes(message.body))

            await reply_queue.consume(on_reply, no_ack=True)
            exchange = await channel.get_exchange(QUERY_EXCHANGE, ensure=False)
            wire = query_message(
                request, system_id=self.config.system_id, correlation_id=str(uuid.uuid4())
            )
            await exchange.publish(amqp_message(wire), routing_key=QUERY_KEY)
            try:
                answer_body = await asyncio.wait_for(replies.get(), timeout)
            except TimeoutError:
                raise ReceiptTimeout(f"the hub did not answer within {timeout:g} s") from None
        except aiormq.exceptions.ChannelNotFoundEntity:
            raise HubNotReady("the broker has no axis.query exchange: no hub was set up") from None
        except aiormq.exceptions.ChannelAccessRefused as exc:
            raise AccessRefused(f"the broker refused the query: {exc}") from None
        finally:
            if not channel.is_closed:
                await channel.close()
        return read_answer(answer_body)

    async def trace(
        self, ident: str, timeout: float = 10.0, *, organ: str | None = None
    ) -> dict[str, Any]:
        """The timeline of one of this system's consignments, or of a document (DocumentId,
        with its sender ``organ`` when several organs used that id) it is a party to."""
        return await self.query(trace_request(ident, organ), timeout)

    async def recipients(
        self, ident: str, organ: str | None = None, *, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Where a document this system is a party to (by DocumentId, or one of this system's
        consignment ids) stands at each recipient organ: ``recipients``, one row each with
        the serving system, when it was published and delivered, the latest status and
        the hub's receipt ids (docs/protocol.md#queries)."""
        return await self.query(recipients_request(ident, organ), timeout)

    async def log_head(self, timeout: float = 10.0) -> dict[str, Any]:
        """The hub's newest signed tree head: ``head`` (signed XML text), ``timestamp``
        (RFC 3161 token, base64, or None), ``tree_size``, ``root_hash`` (hex). Not
        verified here: :func:`axis.evidence.heads.verify_head` does that."""
        return await self.query({"op": OP_LOG_HEAD}, timeout)

    async def log_consistency(
        self, old_size: int, new_size: int, timeout: float = 10.0
    ) -> dict[str, Any]:
        """A consistency proof between two tree sizes (``path``: hex hashes)."""
        request = {"op": OP_LOG_CONSISTENCY, "old_size": old_size, "new_size": new_size}
        return await self.query(request, timeout)

    async def evidence(
        self, ident: str, *, organ: str | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """The material of an evidence bundle about one of this system's consignments, or
        a document it is a party to (docs/evidence.md)."""
        return await self.query(document_request(OP_EVIDENCE, ident, organ), timeout)

    async def wait_receipt(self, message_id: str, timeout: float = 30.0) -> VerifiedReceipt:
        """Wait until the hub has a receipt for ``message_id``; returns it verified."""
        deadline = asyncio.get_running_loop().time() + timeout
        delay = 0.05
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise ReceiptTimeout(f"no receipt for {message_id!r} within {timeout:g} s")
            try:
                answer = await self.query(
                    receipt_request(message_id),
                    timeout=max(0.1, min(remaining, 2.0)),
                )
                return self.verify_receipt(answer["receipt"].encode())
            except ReceiptTimeout:
                continue  # that query went unanswered (hub busy or down): ask again
            except QueryRefused:
                await asyncio.sleep(min(delay, max(0.0, remaining)))
                delay = min(delay * 2, 1.0)

    def _own_receipt(self, verified: VerifiedReceipt) -> VerifiedReceipt:
        """``verified`` if its signed content is about a consignment of this system."""
        receipt = verified.receipt
        if receipt.sender_system != self.config.system_id:
            raise ReceiptNotOurs(f"the receipt is about system {receipt.sender_system!r}'s "
                                 f"consignment, not {self.config.system_id}'s")  # fmt: skip
        if self.sent_consignments is not None and receipt.message_id not in self.sent_consignments:
            raise ReceiptNotOurs(f"system {self.config.system_id} sent no consignment "
                                 f"{receipt.message_id!r}")  # fmt: skip
        return verified

    def verify_receipt(self, raw: bytes, package: bytes | None = None) -> VerifiedReceipt:
        """Verify a receipt against the hub certificate."""
        policy = VerifyPolicy(at=self._clock(), pinned=(self.config.hub_certificate,))
        return verify_receipt(raw, policy, package)
