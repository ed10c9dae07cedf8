"""The hub's query endpoint: traces, recipients and stored receipts over RabbitMQ direct reply-to.

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
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from envelopes.errors import AxisError
from routing.amqp import publish
from routing.contract import (
    OP_EVIDENCE,
    OP_LOG_CONSISTENCY,
    OP_LOG_HEAD,
    OP_RECEIPT,
    OP_RECIPIENTS,
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
from routing.recipients import recipient_rows, recipients_json
from routing.values import DocumentParties, TraceEvent

log = logging.getLogger("axis.hub.query")


class QueryHandler:
    """Answers ``trace``, ``recipients``, ``receipt`` and the evidence log's requests."""

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
        if op in (OP_TRACE, OP_EVIDENCE, OP_RECIPIENTS):
            organ = request.get("organ")
            scope = _scope(store, asker, str(request.get("id", "")),
                           str(organ) if organ else None)  # fmt: skip
            if op == OP_TRACE:
                return answer_ok(_trace(store, asker, scope))
            if op == OP_RECIPIENTS:
                return answer_ok(_recipients(store, asker, scope))
            return answer_ok(_evidence(_keeper(evidence), asker, scope))
        if op == OP_RECEIPT:
            return answer_ok(_receipts(store, asker, str(request.get("message_id", ""))))
        if op == OP_LOG_HEAD:
            return answer_ok(_keeper(evidence).head_data())
        if op == OP_LOG_CONSISTENCY:
            return answer_ok(_keeper(evidence).consistency(_size(request, "old_size"),
                                                           _size(request, "new_size")))
        raise QueryRefused(f"unknown query op {op!r}; use one of {', '.join(QUERY_OPS)}")
    except AxisError as error:
        return answer_refused(error)
    except Exception as exc:  # the store is unreachable: say so, the asker tries again
        log.warning("query from %s failed: %s", asker, exc)
        return answer_refused(HubUnavailable("the hub cannot read its store right now"))


@dataclass(frozen=True, slots=True)
class _Scope:
    """What an asker may see under the id it ``asked``: a document it is a party to
    (``document``), or none but its own consignment; ``own``: the id is one of its own
    consignment ids."""

    asked: str
    document: DocumentParties | None
    own: bool


def _scope(store: QueryStore, asker: str, ident: str, organ: str | None) -> _Scope:
    """The asker's own consignment ``ident`` (expanded to its document when the asker is a
    party to it), else a document ``ident`` the asker is a party to; else the same refusal
    for "unknown" and "not yours", so nobody probes for others' documents."""
    own = store.find_submission(asker, ident) if organ is None else None
    if own is not None:
        if own.document_organ and own.document_id:
            parties = store.documents_named(own.document_id, own.document_organ)
            if parties and _is_party(asker, parties[0]):
                return _Scope(ident, parties[0], own=True)
        return _Scope(ident, None, own=True)
    mine = [p for p in store.documents_named(ident, organ) if _is_party(asker, p)]
    if len(mine) > 1:
        raise QueryRefused(f"system {asker} is a party to {len(mine)} documents {ident!r}: "
                           "give the sender organ")  # fmt: skip
    if not mine:
        raise _not_a_party(asker, ident)
    return _Scope(ident, mine[0], own=False)


def _trace(store: QueryStore, asker: str, scope: _Scope) -> dict[str, Any]:
    if scope.document is not None:
        events = _document_timeline(store, scope.document)
    else:
        events = store.consignment_events(asker, scope.asked)
    if not events:
        raise _not_a_party(asker, scope.asked)
    return timeline_json(events)


def _recipients(store: QueryStore, asker: str, scope: _Scope) -> dict[str, Any]:
    # Any party sees every recipient's row, as it sees every party's steps in the trace.
    if scope.document is None:
        raise _not_a_party(asker, scope.asked)
    events = _document_timeline(store, scope.document)
    return recipients_json(scope.document, recipient_rows(scope.document, events))


def _evidence(evidence: EvidenceKeeper, asker: str, scope: _Scope) -> dict[str, Any]:
    if scope.document is not None:
        return evidence.document_evidence(scope.document, scope.asked if scope.own else None)
    return evidence.consignment_evidence(asker, scope.asked)


def _not_a_party(asker: str, ident: str) -> QueryRefused:
    return QueryRefused(f"no document or consignment {ident!r} that system {asker} is a "
                        "party to")  # fmt: skip


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


def _keeper(evidence: EvidenceKeeper | None) -> EvidenceKeeper:
    if evidence is None:
        raise QueryRefused("this hub keeps no evidence log")
    return evidence


def _size(request: dict[str, Any], name: str) -> int:
    value = request.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise QueryRefused(f"{name} must be a whole number ≥ 0")
    return value
