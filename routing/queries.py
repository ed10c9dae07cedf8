"""The hub's query endpoint: traces and stored receipts over RabbitMQ direct reply-to.

A request is a JSON object published to exchange ``axis.query`` with the asker's
``user_id`` (RabbitMQ checks it) and ``reply_to`` (direct reply-to). The hub
answers a system only about documents it is a party to.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import Executor
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from envelopes.errors import AxisError
from routing.amqp import publish
from routing.contract import (
    OP_RECEIPT,
    OP_TRACE,
    answer_message,
    answer_ok,
    answer_refused,
    timeline_json,
)
from routing.errors import QueryRefused
from routing.ports import QueryStore
from routing.values import TraceEvent

log = logging.getLogger("axis.hub.query")


class QueryHandler:
    """Answers ``trace`` and ``receipt`` requests."""

    def __init__(self, store: QueryStore, channel: AbstractChannel, executor: Executor) -> None:
        self.store = store
        self.channel = channel
        self.executor = executor

    async def handle(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=False):
            if not message.reply_to:
                log.info("query without reply_to dropped")
                return
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(
                self.executor, answer_query, self.store, message.user_id, bytes(message.body)
            )
            reply = answer_message(answer, correlation_id=message.correlation_id)
            await publish(self.channel.default_exchange, reply, message.reply_to)


def answer_query(store: QueryStore, asker: str | None, body: bytes) -> dict[str, Any]:
    """The JSON answer to one request; refusals are ``{"ok": false, "error": {...}}``."""
    try:
        if not asker:
            raise QueryRefused("a query must carry the asking system's user_id")
        try:
            request = json.loads(body)
        except ValueError:
            raise QueryRefused("the query is not JSON") from None
        if not isinstance(request, dict):
            raise QueryRefused("the query must be a JSON object")
        op = request.get("op")
        if op == OP_TRACE:
            return answer_ok(_trace(store, asker, str(request.get("id", ""))))
        if op == OP_RECEIPT:
            return answer_ok(_receipts(store, asker, str(request.get("message_id", ""))))
        raise QueryRefused(f"unknown query op {op!r}; use {OP_TRACE!r} or {OP_RECEIPT!r}")
    except AxisError as error:
        return answer_refused(error)


def _trace(store: QueryStore, asker: str, ident: str) -> dict[str, Any]:
    events = _visible(store, asker, store.trace_document(ident))
    if not events:
        # The same answer for "unknown" and "not yours": no probing of others' documents.
        raise QueryRefused(f"no document {ident!r} that system {asker} is a party to")
    return timeline_json(events)


def _visible(store: QueryStore, asker: str, events: list[TraceEvent]) -> list[TraceEvent]:
    """All events of documents the asker is a party to; else only its own submissions'."""
    document_ids = {e.document_id for e in events if e.document_id}
    if any(asker in store.parties(doc) for doc in document_ids):
        return events
    own = {(e.message_id) for e in events if e.event == "submitted" and e.system_id == asker}
    return [e for e in events if e.message_id in own]


def _receipts(store: QueryStore, asker: str, message_id: str) -> dict[str, Any]:
    record = store.find_submission(asker, message_id)
    if record is None:
        raise QueryRefused(f"system {asker} has no submission {message_id!r}")
    delivered = store.delivered_receipts(record.document_id) if record.document_id else []
    return {
        "outcome": record.outcome,
        "receipt": record.receipt.decode("utf-8"),
        "delivered": [r.decode("utf-8") for r in delivered],
    }
