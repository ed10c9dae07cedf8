"""What the hub publishes, all with publisher confirms: deliveries, receipts, retry copies
and dead letters; and where each may go.

Answers go only where they belong: a receipt to the inbox of the system it is about,
or, for a submission the hub cannot bind to a registered system, on RabbitMQ direct
reply-to and nowhere else (a named ``reply_to`` would let a sender put hub-signed
receipts into another system's inbox, or feed them back into ``axis.submit``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from aio_pika.abc import AbstractIncomingMessage

from routing.amqp import publish, publish_confirmed
from routing.contract import (
    WireMessage,
    delivery_message,
    is_direct_reply_to,
    receipt_message,
)
from routing.decide import Accepted
from routing.retry import Origin, dead_letter, retry_message
from routing.topology import Topology
from routing.values import DeliveryRecord, SubmissionRecord

log = logging.getLogger("axis.hub")


class Outbox:
    """Publishes on the hub's confirming channel."""

    def __init__(self, topology: Topology, hub_user: str) -> None:
        self.topology = topology
        self.hub_user = hub_user

    async def deliveries(self, verdict: Accepted) -> None:
        """One copy per recipient system, each confirmed."""
        await self._copies(
            [(d.system_id, d.organs) for d in verdict.deliveries], body=verdict.submission.body,
            kind=verdict.kind, sender_system=verdict.sender_system,
            sender_organ=verdict.sender_organ, document_id=verdict.document_id,
            consignment=verdict.submission.message_id or "",
            status_code=verdict.status_code.value if verdict.status_code else None)  # fmt: skip

    async def stored_deliveries(
        self, record: SubmissionRecord, deliveries: list[DeliveryRecord], status: str | None
    ) -> None:
        """The stored routing of ``record`` again (a redelivery after a crash)."""
        await self._copies(
            [(d.system_id, d.organs) for d in deliveries], body=record.raw, kind=record.kind,
            sender_system=record.user_id, sender_organ=record.sender_organ or "",
            document_id=record.document_id or "", consignment=record.message_id,
            status_code=status)  # fmt: skip

    async def _copies(
        self, routes: list[tuple[str, tuple[str, ...]]], *, body: bytes, kind: str,
        sender_system: str, sender_organ: str, document_id: str, consignment: str,
        status_code: str | None,
    ) -> None:  # fmt: skip
        # Every copy is in flight at once: one wait for all the confirms, not one per copy.
        await asyncio.gather(*(
            self.to_inbox(delivery_message(
                body=body, kind=kind, sender_system=sender_system, sender_organ=sender_organ,
                recipient_organs=organs, document_id=document_id, consignment=consignment,
                status_code=status_code), system_id)
            for system_id, organs in routes))  # fmt: skip

    async def receipt(
        self,
        message: AbstractIncomingMessage,
        record: SubmissionRecord,
        registered: bool,
    ) -> None:
        """The submission's receipt: to its system's inbox when ``registered``, else on the
        sender's direct reply-to if it gave one (never into a named queue)."""
        # A refusal stored under no consignment id gets a receipt id of its own.
        receipt_id = (f"{record.user_id}/{record.message_id}" if record.message_id
                      else f"{record.user_id}/{message.message_id or '-'}#{uuid.uuid4()}")
        msg = receipt_message(
            receipt_xml=record.receipt,
            receipt_id=receipt_id,
            consignment=message.message_id or "",
            event=record.outcome,
            error_code=record.error_code or "",
            document_id=record.document_id or "",
            log_index=record.log_index,
        )
        if registered:
            await self.to_inbox(msg, record.user_id)
        elif is_direct_reply_to(message.reply_to):
            await publish(self.topology.channel.default_exchange, msg, str(message.reply_to))
        else:
            log.info("receipt for unbound submission %r not sent: reply_to %r is not direct "
                     "reply-to", message.message_id, message.reply_to)  # fmt: skip

    async def to_inbox(self, msg: WireMessage, system_id: str) -> None:
        """Publish ``msg`` to ``axis.inbox.<system_id>``, confirmed."""
        await publish_confirmed(self.topology.deliver_exchange, msg, system_id)

    async def retry(
        self, message: AbstractIncomingMessage, origin: Origin, attempt: int, error: str
    ) -> None:
        """Park a copy in the retry queue of ``attempt``'s delay."""
        msg = retry_message(
            body=bytes(message.body), message_id=message.message_id,
            kind=message.routing_key or "", origin_user=origin.user_id or "",
            attempt=attempt, last_error=error, hub_user=self.hub_user)  # fmt: skip
        await publish_confirmed(self.topology.retry_exchange, msg, message.routing_key or "")

    async def dead(
        self,
        message: AbstractIncomingMessage,
        origin: Origin,
        attempt: int,
        reason_code: str,
        error: str,
    ) -> None:
        """Put the submission into ``axis.dead``, saying why."""
        msg = dead_letter(
            body=bytes(message.body), message_id=message.message_id,
            kind=message.routing_key or "", origin_user=origin.user_id or "",
            attempt=attempt, reason_code=reason_code, last_error=error,
            hub_user=self.hub_user)  # fmt: skip
        await publish_confirmed(self.topology.dead_exchange, msg, message.routing_key or "")
