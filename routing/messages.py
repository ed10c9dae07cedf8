"""How the hub's outgoing AMQP messages look: deliveries and receipts.

One place names the headers of the wire contract (docs/protocol.md), so the hub
that writes them and the client that reads them cannot drift apart.
"""

from __future__ import annotations

import aio_pika
import aiormq

from axis.errors import AccessRefused, PublishNotConfirmed

H_SENDER_SYSTEM = "axis-sender-system"
H_SENDER_ORGAN = "axis-sender-organ"
H_RECIPIENT_ORGANS = "axis-recipient-organs"
H_DOCUMENT_ID = "axis-document-id"
H_CONSIGNMENT = "axis-consignment"
H_STATUS_CODE = "axis-status-code"
H_EVENT = "axis-event"
H_ERROR_CODE = "axis-error-code"

TYPE_EDOC = "edoc"
TYPE_STATUS = "status"
TYPE_RECEIPT = "receipt"


def delivery_message_id(sender_system: str, consignment: str) -> str:
    """The id every copy of one submission carries: stable across hub retries."""
    return f"{sender_system}/{consignment}"


def delivery_message(
    *,
    body: bytes,
    kind: str,
    sender_system: str,
    sender_organ: str,
    recipient_organs: tuple[str, ...],
    document_id: str,
    consignment: str,
    status_code: str | None,
) -> aio_pika.Message:
    """A copy of a submission for one recipient system, body byte for byte."""
    headers: dict[str, str] = {
        H_SENDER_SYSTEM: sender_system,
        H_SENDER_ORGAN: sender_organ,
        H_RECIPIENT_ORGANS: ",".join(recipient_organs),
        H_DOCUMENT_ID: document_id,
        H_CONSIGNMENT: consignment,
    }
    if status_code:
        headers[H_STATUS_CODE] = status_code
    return aio_pika.Message(
        body=body,
        message_id=delivery_message_id(sender_system, consignment),
        type=kind,
        content_type="application/xml",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=headers,  # type: ignore[arg-type]
    )


def receipt_message(
    *,
    receipt_xml: bytes,
    receipt_id: str,
    consignment: str,
    event: str,
    error_code: str = "",
    document_id: str = "",
) -> aio_pika.Message:
    """A signed receipt for the sender, correlated with its submission's message id."""
    headers = {H_EVENT: event, H_DOCUMENT_ID: document_id, H_CONSIGNMENT: consignment}
    if error_code:
        headers[H_ERROR_CODE] = error_code
    return aio_pika.Message(
        body=receipt_xml,
        message_id=receipt_id,
        correlation_id=consignment,
        type=TYPE_RECEIPT,
        content_type="application/xml",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=headers,  # type: ignore[arg-type]
    )


async def publish_confirmed(
    exchange: aio_pika.abc.AbstractExchange, message: aio_pika.Message, routing_key: str
) -> None:
    """Publish ``mandatory`` on a confirming channel; a nack or an unroutable return raises.

    Broker refusals become coded errors: ``transport.not_confirmed`` (nacked, returned
    as unroutable, channel closed before the confirm) or ``transport.access_refused``.
    """
    try:
        await exchange.publish(message, routing_key, mandatory=True)
    except aio_pika.exceptions.DeliveryError as exc:
        raise PublishNotConfirmed(f"the broker did not route {routing_key!r}: {exc}") from None
    except aiormq.exceptions.ChannelAccessRefused as exc:
        raise AccessRefused(f"the broker refused the publish: {exc}") from None
    except (aio_pika.exceptions.ChannelInvalidStateError, aio_pika.exceptions.PublishError) as exc:
        raise PublishNotConfirmed(f"publish to {routing_key!r} not confirmed: {exc}") from None
