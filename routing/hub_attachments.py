"""The hub's attachment endpoint: chunks in (``put``), chunks out (``get``), ``state``.

Consumes queue ``axis.attachment`` on a channel of its own, with a small prefetch:
the hub holds at most that many chunks in memory, whatever the file's size. Every
request is answered on its direct reply-to address; a request with any other
``reply_to`` is dropped unanswered, like a query. A chunk is checked against its own
SHA-256 before it is written, and written (and flushed to disk) before it is answered,
so an answered chunk is never needed again. Disk work runs in the hub's I/O threads.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from envelopes.errors import AxisError
from routing.amqp import publish
from routing.contract import WireMessage, answer_message, answer_ok, is_direct_reply_to
from routing.contract_attachments import (
    GET_KEY,
    PUT_KEY,
    STATE_KEY,
    ChunkAddress,
    check_chunk,
    chunk_answer,
    chunk_message_id,
    read_address,
    refusal_answer,
    state_answer,
)
from routing.errors import AttachmentUnavailable, InvalidChunk
from routing.ports import AttachmentKeeper, HubMonitor, NoMonitor, ReceiptSigner
from routing.values import Receipt, sha256_hex

log = logging.getLogger("axis.hub.attachments")
ATTACHMENT_PREFETCH = 4  # chunks in memory per hub process, at 1 MiB each
SWEEP_SECONDS = 600.0


class AttachmentEndpoint:
    """Answers ``attachment.put``, ``attachment.state`` and ``attachment.get``."""

    def __init__(self, keeper: AttachmentKeeper, channel: AbstractChannel,
                 executor: Executor, monitor: HubMonitor | None = None,
                 refusals: RefusalSigner | None = None) -> None:  # fmt: skip
        self.keeper = keeper
        self.channel = channel
        self.executor = executor
        self.monitor: HubMonitor = monitor or NoMonitor()
        self.refusals = refusals

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Answer one request, then ack it (a chunk is on disk before it is answered)."""
        async with message.process(requeue=False):
            if not is_direct_reply_to(message.reply_to):
                log.info("attachment request from %s dropped: reply_to %r is not direct "
                         "reply-to", message.user_id, message.reply_to)  # fmt: skip
                return
            loop = asyncio.get_running_loop()
            key = message.routing_key or ""
            answer, code = await loop.run_in_executor(
                self.executor, answer_request, self.keeper, key, message.user_id,
                dict(message.headers or {}), bytes(message.body),
                message.correlation_id, self.refusals)  # fmt: skip
            await publish(self.channel.default_exchange, answer, str(message.reply_to))
            moved = len(message.body) if key == PUT_KEY else len(answer.body)
            self.monitor.attachment_answered(key.removeprefix("attachment."), code, moved)
            if code:
                log.info("attachment %s from %s refused: %s", key, message.user_id, code)

    async def sweep_forever(self, seconds: float = SWEEP_SECONDS) -> None:
        """Drop abandoned uploads and expired files every ``seconds``."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                swept = await loop.run_in_executor(self.executor, self.keeper.sweep, None)
                log.info("attachment sweep: %s", swept)
            except Exception:  # a full or missing disk must not end the hub
                log.exception("attachment sweep failed")
            await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class RefusalSigner:
    """Signs the receipt of a refused chunk: the sender can prove what the hub refused."""

    signer: ReceiptSigner
    clock: Callable[[], datetime]

    def receipt(self, asker: str, address: ChunkAddress | None, body: bytes,
                error: AxisError) -> bytes:  # fmt: skip
        """The hub-signed ``rejected`` receipt (Kind ``attachment``) of one chunk."""
        return self.signer.sign(Receipt(
            receipt_id=str(uuid.uuid4()), event="rejected", kind="attachment",
            message_id=chunk_message_id(address) if address else "unreadable chunk headers",
            package_sha256=sha256_hex(body), hub_time=self.clock(), sender_system=asker,
            error_code=error.code, reason=error.reason))  # fmt: skip


def answer_request(keeper: AttachmentKeeper, key: str, asker: str | None,
                   headers: Mapping[str, Any], body: bytes, correlation_id: str | None,
                   refusals: RefusalSigner | None = None) -> tuple[WireMessage, str]:  # fmt: skip
    """The answer to one attachment request, and its refusal's code ("" if none); a refused
    ``put`` from a system also carries the signed receipt of its refusal. Runs in a
    thread, never raises."""
    try:
        return _answer(keeper, key, asker, headers, body, correlation_id), ""
    except AxisError as error:
        receipt = None
        if refusals is not None and asker and key == PUT_KEY:
            receipt = _signed_refusal(refusals, asker, headers, body, error)
        return refusal_answer(error, correlation_id, receipt), error.code
    except Exception as exc:  # the disk failed: say so, the system sends the chunk again
        log.warning("attachment request %s from %s failed: %s", key, asker, exc)
        failed = AttachmentUnavailable("the hub cannot store or read attachments right now")
        return refusal_answer(failed, correlation_id), failed.code


def _signed_refusal(refusals: RefusalSigner, asker: str, headers: Mapping[str, Any],
                    body: bytes, error: AxisError) -> bytes | None:  # fmt: skip
    try:
        return refusals.receipt(asker, _address_or_none(headers), body, error)
    except Exception:  # the refusal is still answered: the system learns its code
        log.exception("cannot sign the receipt of a refused chunk from %s", asker)
        return None


def _address_or_none(headers: Mapping[str, Any]) -> ChunkAddress | None:
    try:
        return read_address(headers, with_index=True)
    except AxisError:
        return None


def _answer(keeper: AttachmentKeeper, key: str, asker: str | None, headers: Mapping[str, Any],
            body: bytes, correlation_id: str | None) -> WireMessage:  # fmt: skip
    if not asker:
        raise InvalidChunk("an attachment request must carry the system's user_id")
    if key == PUT_KEY:
        address = read_address(headers, with_index=True)
        check_chunk(address, body, headers)
        outcome = keeper.put(asker, address, body)
        return answer_message(answer_ok({"sha256": address.sha256, "size": address.size,
                                         "index": address.index, "held": outcome.held,
                                         "complete": outcome.complete}),
                              correlation_id=correlation_id)  # fmt: skip
    if key == STATE_KEY:
        address = read_address(headers, with_index=False)
        held, complete = keeper.held(asker, address.sha256, address.size)
        return answer_message(state_answer(sha256=address.sha256, size=address.size,
                                           held=held, complete=complete),
                              correlation_id=correlation_id)  # fmt: skip
    if key == GET_KEY:
        address = read_address(headers, with_index=True)
        return chunk_answer(address, keeper.read_chunk(asker, address), correlation_id)
    raise InvalidChunk(f"unknown attachment request {key!r}")
