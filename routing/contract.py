"""The wire contract (docs/protocol.md, docs/asyncapi.yaml) in one module, pure.

Every name the broker sees (exchanges, queues, routing keys), every header, and how
each message the hub and an agency exchange is built and read: submissions,
deliveries, receipts, queries and their answers, trace timelines. The hub
(:mod:`routing.hub`, :mod:`routing.queries`) and the agency SDK (``axis.client``)
both build their messages here, so the two sides cannot drift apart. Messages are
plain :class:`WireMessage` values; :mod:`routing.amqp` puts them on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from envelopes.errors import AxisError
from envelopes.status_codes import StatusCode
from routing.errors import QueryRefused

# -- names --------------------------------------------------------------------------------

SUBMIT_EXCHANGE = "axis.submit"
SUBMIT_QUEUE = "axis.submit"
DELIVER_EXCHANGE = "axis.deliver"
QUERY_EXCHANGE = "axis.query"
QUERY_QUEUE = "axis.query"
DEAD_EXCHANGE = "axis.dead"
DEAD_QUEUE = "axis.dead"
RETRY_EXCHANGE = "axis.retry"
RETRY_QUEUE_PREFIX = "axis.retry."
EDOC_KEY = "edoc"
STATUS_KEY = "status"
QUERY_KEY = "query"
SUBMISSION_KEYS = (EDOC_KEY, STATUS_KEY)
INBOX_PREFIX = "axis.inbox."
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"

EXCHANGE_TYPES: dict[str, str] = {
    SUBMIT_EXCHANGE: "direct",
    DELIVER_EXCHANGE: "direct",
    QUERY_EXCHANGE: "direct",
    DEAD_EXCHANGE: "fanout",
    RETRY_EXCHANGE: "headers",
}

# -- headers and message types ------------------------------------------------------------

H_SENDER_SYSTEM = "axis-sender-system"
H_SENDER_ORGAN = "axis-sender-organ"
H_RECIPIENT_ORGANS = "axis-recipient-organs"
H_DOCUMENT_ID = "axis-document-id"
H_CONSIGNMENT = "axis-consignment"
H_STATUS_CODE = "axis-status-code"
H_EVENT = "axis-event"
H_ERROR_CODE = "axis-error-code"
H_LOG_INDEX = "axis-log-index"  # where the hub's evidence log holds a receipt
# Retries and dead letters (published by the hub's own broker user only).
H_ORIGIN_USER = "axis-origin-user"  # the submitting system, on a retried or replayed copy
H_ATTEMPT = "axis-attempt"  # how many times the hub has tried this submission
H_DEAD_REASON = "axis-dead-reason"  # the error code a dead letter ended with
H_LAST_ERROR = "axis-last-error"  # what the last attempt failed with, in words

TYPE_EDOC = "edoc"
TYPE_STATUS = "status"
TYPE_RECEIPT = "receipt"
XML = "application/xml"
JSON = "application/json"


def inbox_queue_name(system_id: str) -> str:
    """``axis.inbox.<system id>``."""
    return INBOX_PREFIX + system_id


@dataclass(frozen=True, slots=True)
class WireMessage:
    """One AMQP message as the contract defines it: body and basic properties."""

    body: bytes
    content_type: str
    message_id: str | None = None
    type: str | None = None
    correlation_id: str | None = None
    user_id: str | None = None
    reply_to: str | None = None
    persistent: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)


# -- submissions and deliveries -----------------------------------------------------------


def submission_message(body: bytes, *, message_id: str, system_id: str) -> WireMessage:
    """A signed package submitted by ``system_id`` (its ``user_id``, checked by RabbitMQ)."""
    return WireMessage(body=body, content_type=XML, message_id=message_id, user_id=system_id)


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
) -> WireMessage:
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
    return WireMessage(
        body=body,
        content_type=XML,
        message_id=delivery_message_id(sender_system, consignment),
        type=kind,
        headers=headers,
    )


@dataclass(frozen=True, slots=True)
class DeliveryHeaders:
    """What the hub's headers say of a delivered copy (informative: the signed body rules)."""

    sender_system: str
    sender_organ: str
    recipient_organs: tuple[str, ...]
    document_id: str
    consignment: str
    status_code: str


def header_text(value: Any) -> str:
    """An AMQP header value as text (brokers and clients may hand strings over as bytes;
    a missing value is empty)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def read_delivery_headers(headers: Mapping[str, Any]) -> DeliveryHeaders:
    """The :class:`DeliveryHeaders` of a delivery's AMQP headers (missing ones are empty)."""

    def text(name: str) -> str:
        return header_text(headers.get(name))

    return DeliveryHeaders(
        sender_system=text(H_SENDER_SYSTEM),
        sender_organ=text(H_SENDER_ORGAN),
        recipient_organs=tuple(o for o in text(H_RECIPIENT_ORGANS).split(",") if o),
        document_id=text(H_DOCUMENT_ID),
        consignment=text(H_CONSIGNMENT),
        status_code=text(H_STATUS_CODE),
    )


# -- receipts ------------------------------------------------------------------------------


def receipt_message(
    *,
    receipt_xml: bytes,
    receipt_id: str,
    consignment: str,
    event: str,
    error_code: str = "",
    document_id: str = "",
    log_index: int | None = None,
    status_code: str = "",
) -> WireMessage:
    """A signed receipt for the sender, correlated with its submission's message id."""
    headers = {H_EVENT: event, H_DOCUMENT_ID: document_id, H_CONSIGNMENT: consignment}
    if error_code:
        headers[H_ERROR_CODE] = error_code
    if log_index is not None:
        headers[H_LOG_INDEX] = str(log_index)
    if status_code:
        headers[H_STATUS_CODE] = status_code
    return WireMessage(
        body=receipt_xml,
        content_type=XML,
        message_id=receipt_id,
        correlation_id=consignment,
        type=TYPE_RECEIPT,
        headers=headers,
    )


# -- queries -------------------------------------------------------------------------------

OP_TRACE = "trace"
OP_RECEIPT = "receipt"
OP_LOG_HEAD = "log_head"  # public: the newest signed tree head
OP_LOG_CONSISTENCY = "log_consistency"  # public: a consistency proof between two sizes
OP_EVIDENCE = "evidence"  # scoped to parties: the material of an evidence bundle
OP_RECIPIENTS = "recipients"  # scoped to parties: where a document stands at each recipient
QUERY_OPS = (OP_TRACE, OP_RECEIPT, OP_LOG_HEAD, OP_LOG_CONSISTENCY, OP_EVIDENCE, OP_RECIPIENTS)


def document_request(op: str, ident: str, organ: str | None = None) -> dict[str, Any]:
    """A query ``op`` about a document (by consignment id, or by document id and, when
    the asker is a party to documents of several organs with that id, the sender organ)."""
    request: dict[str, Any] = {"op": op, "id": ident}
    if organ:
        request["organ"] = organ
    return request


def trace_request(ident: str, organ: str | None = None) -> dict[str, Any]:
    """Ask for the timeline of a document (see :func:`document_request`)."""
    return document_request(OP_TRACE, ident, organ)


def recipients_request(ident: str, organ: str | None = None) -> dict[str, Any]:
    """Ask where a document stands at each of its recipient organs: delivered, and the
    latest status each sent (see :func:`document_request`)."""
    return document_request(OP_RECIPIENTS, ident, organ)


def is_direct_reply_to(reply_to: str | None) -> bool:
    """True for a RabbitMQ direct reply-to address, the only one the hub answers on."""
    return bool(reply_to) and (reply_to == DIRECT_REPLY_TO
                               or str(reply_to).startswith(DIRECT_REPLY_TO + "."))


def receipt_request(message_id: str) -> dict[str, Any]:
    """Ask for the stored receipt of one of the asker's consignments."""
    return {"op": OP_RECEIPT, "message_id": message_id}


def query_message(
    request: Mapping[str, Any], *, system_id: str, correlation_id: str
) -> WireMessage:
    """A query to ``axis.query``, answered on RabbitMQ direct reply-to."""
    return WireMessage(
        body=json.dumps(dict(request)).encode(),
        content_type=JSON,
        user_id=system_id,
        reply_to=DIRECT_REPLY_TO,
        correlation_id=correlation_id,
        persistent=False,
    )


def answer_ok(data: Mapping[str, Any]) -> dict[str, Any]:
    """A successful answer: ``{"ok": true, ...data}``."""
    return {"ok": True, **data}


def answer_refused(error: AxisError) -> dict[str, Any]:
    """A refusal: ``{"ok": false, "error": {"code", "reason", ...}}``."""
    return {"ok": False, "error": error.to_dict()}


def answer_message(answer: Mapping[str, Any], *, correlation_id: str | None) -> WireMessage:
    """The hub's answer to a query, for the asker's reply-to."""
    return WireMessage(
        body=json.dumps(dict(answer)).encode(),
        content_type=JSON,
        correlation_id=correlation_id,
        persistent=False,
    )


def read_answer(body: bytes) -> dict[str, Any]:
    """The answer's data; a refusal raises ``transport.query_refused`` with the hub's code."""
    try:
        answer = json.loads(body)
    except ValueError:
        raise QueryRefused("the hub's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise QueryRefused("the hub's answer is not a JSON object")
    if not answer.get("ok"):
        error = answer.get("error") or {}
        raise QueryRefused(str(error.get("reason", "refused")), remote_code=error.get("code"))
    return answer


# -- trace timelines -----------------------------------------------------------------------


class EventLike(Protocol):
    """What a timeline reads of a trace event (:class:`routing.values.TraceEvent` has it)."""

    @property
    def event(self) -> str: ...
    @property
    def document_id(self) -> str | None: ...
    @property
    def message_id(self) -> str: ...
    @property
    def system_id(self) -> str: ...
    @property
    def organ_id(self) -> str | None: ...
    @property
    def status_code(self) -> str | None: ...
    @property
    def error_code(self) -> str | None: ...
    @property
    def detail(self) -> str | None: ...
    @property
    def at(self) -> datetime: ...


def utc_text(moment: datetime) -> str:
    """A time on the wire: UTC, microseconds, ``Z`` (``2026-11-27T03:13:32.027716Z``), the
    form of a receipt's ``HubTime``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def timeline_json(events: Sequence[EventLike]) -> dict[str, Any]:
    """``{"document_id", "message_ids", "events": [...]}`` in time order."""
    ordered = list(events)
    return {
        "document_id": next((e.document_id for e in ordered if e.document_id), None),
        "message_ids": sorted({e.message_id for e in ordered if e.message_id}),
        "events": [_event_json(e) for e in ordered],
    }


def _event_json(e: EventLike) -> dict[str, Any]:
    item: dict[str, Any] = {
        "at": utc_text(e.at),
        "event": e.event,
        "system": e.system_id,
        "organ": e.organ_id,
        "message_id": e.message_id,
    }
    if e.status_code:
        item["status_code"] = e.status_code
        item.update(status_names(e.status_code))
    if e.error_code:
        item["error_code"] = e.error_code
        item["reason"] = e.detail
    return item


def status_names(code: str) -> dict[str, str]:
    """``{"status_vi", "status_en"}``: the names of status ``code`` (empty for an unknown one)."""
    try:
        status = StatusCode(code)
    except ValueError:
        return {}
    return {"status_vi": status.vi, "status_en": status.en}
