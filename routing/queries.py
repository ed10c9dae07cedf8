"""The hub's query endpoint: traces and stored receipts over RabbitMQ direct reply-to.

A request is a JSON object published to exchange ``axis.query`` with the asker's
``user_id`` (RabbitMQ checks it) and ``reply_to`` (direct reply-to; any other
``reply_to`` is dropped, so the hub never writes into a named queue). The hub answers
a system only about its own consignments and the documents it is a party to (their
sender or one of their recipients); for anything else, the same "not found" as for an
unknown id.
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
    OP_EVIDENCE,
    OP_LOG_CONSISTENCY,
    OP_LOG_HEAD,
    OP_RECEIPT,
    OP_TRACE,
    QUERY_OPS,
    answer_message,
    answer_ok,
    answer_refused,
    is_direct_reply_to,
    timeline_json,
)
from routing.errors import HubUnavailable, QueryRefused
from routing.ports import EvidenceKeeper, QueryStore
from routing.values import DocumentParties, TraceEvent

log = logging.getLogger("axis.hub.query")


class QueryHandler:
    """Answers ``trace``, ``receipt`` and the evidence log's requests."""

    def __init__(
        self, store: QueryStore, channel: AbstractChannel, executor: Executor,
        evidence: EvidenceKeeper | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.channel = channel
        self.executor = executor
        self.evidence = evidence

    async def handle(self, message: AbstractIncomingMessage) -> None:
        async with message.process(requeue=False):
            if not is_direct_reply_to(message.reply_to):
                log.info("query from %s dropped: reply_to %r is not direct reply-to",
                         message.user_id, message.reply_to)  # fmt: skip
                return
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(
                self.executor, answer_query, self.store, message.user_id, bytes(message.body),
                self.evidence,
            )  # fmt: skip
            reply = answer_message(answer, correlation_id=message.correlation_id)
            await publish(self.channel.default_exchange, reply, str(message.reply_to))


def answer_query(
    store: QueryStore, asker: str | None, body: bytes, evidence: EvidenceKeeper | None = None
) -> dict[str, Any]:
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
            organ = request.get("organ")
            return answer_ok(_trace(store, asker, str(request.get("id", "")),
                                    str(organ) if organ else None))  # fmt: skip
        if op == OP_RECEIPT:
            return answer_ok(_receipts(store, asker, str(request.get("message_id", ""))))
        if op in (OP_LOG_HEAD, OP_LOG_CONSISTENCY, OP_EVIDENCE):
            return answer_ok(_log_query(store, evidence, asker, op, request))
        raise QueryRefused(f"unknown query op {op!r}; use one of {', '.join(QUERY_OPS)}")
    except AxisError as error:
        return answer_refused(error)
    except Exception as exc:  # the store is unreachable: say so, the asker tries again
        log.warning("query from %s failed: %s", asker, exc)
        return answer_refused(HubUnavailable("the hub cannot read its store right now"))


def _trace(store: QueryStore, asker: str, ident: str, organ: str | None) -> dict[str, Any]:
    events = _visible_events(store, asker, ident, organ)
    if not events:
        # The same answer for "unknown" and "not yours": no probing of others' documents.
        raise QueryRefused(f"no document or consignment {ident!r} that system {asker} is a "
                           "party to")  # fmt: skip
    return timeline_json(events)


def _visible_events(
    store: QueryStore, asker: str, ident: str, organ: str | None
) -> list[TraceEvent]:
    """What the asker may see under ``ident``: one of its own consignments (expanded to
    the whole document when it is a party to it), else a document it is a party to."""
    own = store.find_submission(asker, ident) if organ is None else None
    if own is not None:
        if own.document_organ and own.document_id:
            parties = store.documents_named(own.document_id, own.document_organ)
            if parties and _is_party(asker, parties[0]):
                return _document_timeline(store, parties[0])
        return store.consignment_events(asker, ident)
    mine = [p for p in store.documents_named(ident, organ) if _is_party(asker, p)]
    if len(mine) > 1:
        raise QueryRefused(f"system {asker} is a party to {len(mine)} documents {ident!r}: "
                           "give the sender organ")  # fmt: skip
    return _document_timeline(store, mine[0]) if mine else []


def _is_party(system_id: str, parties: DocumentParties) -> bool:
    return system_id == parties.sender_system or system_id in parties.recipients


def _document_timeline(store: QueryStore, parties: DocumentParties) -> list[TraceEvent]:
    # Only the parties' own steps: a third system's refused attempts are its business.
    members = {parties.sender_system, *parties.recipients}
    events = store.document_events(parties.sender_organ, parties.document_id)
    return [e for e in events if e.submitter in members]


def _receipts(store: QueryStore, asker: str, message_id: str) -> dict[str, Any]:
    record = store.find_submission(asker, message_id)
    if record is None:
        raise QueryRefused(f"system {asker} has no submission {message_id!r}")
    delivered: list[bytes] = []
    if record.kind == "edoc" and record.document_organ and record.document_id:
        delivered = store.delivered_receipts(record.document_organ, record.document_id)
    return {
        "outcome": record.outcome,
        "receipt": record.receipt.decode("utf-8"),
        "delivered": [r.decode("utf-8") for r in delivered],
    }


def _log_query(
    store: QueryStore, evidence: EvidenceKeeper | None, asker: str, op: str,
    request: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """Heads and consistency proofs are public; evidence only about what the asker may see."""
    if evidence is None:
        raise QueryRefused("this hub keeps no evidence log")
    if op == OP_LOG_HEAD:
        return evidence.head_data()
    if op == OP_LOG_CONSISTENCY:
        return evidence.consistency(_size(request, "old_size"), _size(request, "new_size"))
    ident = str(request.get("id", ""))
    organ = request.get("organ")
    own = store.find_submission(asker, ident) if not organ else None
    if own is not None:
        if own.document_organ and own.document_id:
            parties = store.documents_named(own.document_id, own.document_organ)
            if parties and _is_party(asker, parties[0]):
                return evidence.document_evidence(own.document_organ, own.document_id, ident)
        return evidence.consignment_evidence(asker, ident)
    mine = [p for p in store.documents_named(ident, str(organ) if organ else None)
            if _is_party(asker, p)]  # fmt: skip
    if len(mine) != 1:
        # The same answer for "unknown" and "not yours": no probing of others' documents.
        raise QueryRefused(f"no document or consignment {ident!r} that system {asker} is a "
                           "party to" + (" (give the sender organ)" if mine else ""))  # fmt: skip
    return evidence.document_evidence(mine[0].sender_organ, mine[0].document_id)


def _size(request: dict[str, Any], name: str) -> int:
    value = request.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise QueryRefused(f"{name} must be a whole number ≥ 0")
    return value
