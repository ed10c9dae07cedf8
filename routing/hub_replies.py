"""The hub's replies that take no fresh decision, and the plumbing they share.

Refusals the async edge decides itself (a rate limit, a reused DocumentId, giving up
after the last attempt), a consignment submitted again (its stored receipt, the stored
routing published again, or a conflict), and the worker threads, outbox and
receipt-latency bookkeeping every reply uses. :class:`routing.hub.Hub` inherits them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TypeVar

from aio_pika.abc import AbstractIncomingMessage

from envelopes.errors import AxisError
from envelopes.model import StatusPackage
from envelopes.parser import parse_package
from routing.contract import receipt_message
from routing.decide import Accepted, Rejected, Submission
from routing.errors import DocumentIdReused, DuplicateConflict, HubUnavailable
from routing.hub_config import HubConfig
from routing.outbox import Outbox
from routing.ports import HubMonitor, HubStore, ReceiptSigner
from routing.records import Records, conflict_receipt, records_for
from routing.registry_cache import RegistryCache
from routing.retry import Origin
from routing.values import RETRYABLE_CODES, SubmissionRecord, sha256_hex

log = logging.getLogger("axis.hub")
T = TypeVar("T")


class HubPlumbing:
    """The worker threads, the outbox and the receipt bookkeeping of a hub worker."""

    config: HubConfig
    store: HubStore
    signer: ReceiptSigner
    monitor: HubMonitor
    _clock: Callable[[], datetime]
    _cpu: ThreadPoolExecutor
    _io: ThreadPoolExecutor
    _registry: RegistryCache
    _taken_at: dict[int | None, float]
    _outbox: Outbox | None

    @property
    def outbox(self) -> Outbox:
        assert self._outbox is not None, "the hub is not started"
        return self._outbox

    def _registered(self, user_id: str) -> bool:
        return bool(user_id) and self._registry.snapshot.system(user_id) is not None

    def _receipt_sent(self, message: AbstractIncomingMessage) -> None:
        taken = self._taken_at.get(message.delivery_tag)
        if taken is not None:
            self.monitor.receipt_sent(asyncio.get_running_loop().time() - taken)

    async def _receipt_and_ack(
        self, message: AbstractIncomingMessage, record: SubmissionRecord
    ) -> None:
        """Publish the receipt of ``record``, stored for ``message``; then ack ``message``."""
        await self.outbox.receipt(message, record, self._registered(record.user_id))
        self._receipt_sent(message)
        await message.ack()

    async def _in_cpu(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._cpu, fn, *args)

    async def _in_io(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)


class HubReplies(HubPlumbing):
    """Refusals the edge decides, and the answers to a consignment submitted again."""

    async def _refuse(
        self, sub: Submission, error: AxisError, digest: str | None = None
    ) -> tuple[Rejected, Records]:
        """A rejection the edge decides (rate, reused DocumentId, gave up), with its records;
        ``digest``: the body's SHA-256 when known already."""
        return await self._in_cpu(_refusal, sub, error, digest, str(uuid.uuid4()),
                                  self._clock(), self.signer)  # fmt: skip

    async def _document_id_reused(self, verdict: Accepted | Rejected) -> tuple[Rejected, Records]:
        organ, document_id = verdict.sender_organ, verdict.document_id
        return await self._refuse(verdict.submission, DocumentIdReused(
            f"organ {organ} sent another package as document {document_id!r} before; "
            "a new package needs a new DocumentId (or an update/replace/revoke business "
            "type)", organ_id=organ, document_id=document_id), verdict.sha256)  # fmt: skip

    async def _answer_duplicate(
        self, message: AbstractIncomingMessage, sub: Submission, existing: SubmissionRecord,
        *, republish: bool,
    ) -> None:  # fmt: skip
        # Hashing and parsing a body of up to max_submission_bytes stay off the event loop.
        digest = await self._in_cpu(sha256_hex, sub.body)
        if existing.sha256 != digest:
            await self._reject_conflict(message, sub, digest, existing)
            return
        self.monitor.duplicate()
        if republish and existing.outcome == "accepted" and existing.id is not None:
            # A redelivery or retry: the first attempt may have died between persisting and
            # publishing, so publish the stored routing again (recipients de-duplicate).
            deliveries = await self._in_io(self.store.submission_deliveries, existing.id)
            status = (await self._in_cpu(_status_code_of, existing)
                      if existing.kind == "status" else None)  # fmt: skip
            await self.outbox.stored_deliveries(existing, deliveries, status)
        await self._receipt_and_ack(message, existing)

    async def _reject_conflict(
        self, message: AbstractIncomingMessage, sub: Submission, digest: str,
        existing: SubmissionRecord,
    ) -> None:  # fmt: skip
        error = DuplicateConflict(
            f"consignment {sub.message_id!r} was submitted before with different content"
        )
        receipt = conflict_receipt(sub, digest, error, str(uuid.uuid4()), self._clock())
        receipt_xml = await self._in_cpu(self.signer.sign, receipt)
        self.monitor.rejected(sub.routing_key, error.code)
        await self.outbox.to_inbox(
            receipt_message(receipt_xml=receipt_xml, receipt_id=receipt.receipt_id,
                            consignment=sub.message_id or "", event="rejected",
                            error_code=error.code),
            existing.user_id,
        )  # fmt: skip
        self._receipt_sent(message)
        # The conflicting bytes are kept for inspection in axis.dead, saying why.
        await self.outbox.dead(message, Origin(sub.user_id), 0, error.code, error.reason)
        self.monitor.dead_lettered(error.code)
        await message.ack()

    async def _give_up(
        self, message: AbstractIncomingMessage, origin: Origin, attempt: int, error: str
    ) -> None:
        failure = HubUnavailable(f"the hub could not process the submission after {attempt} "
                                 "attempts; it is kept in axis.dead for the operator")
        sub = Submission(bytes(message.body), message.routing_key or "", message.message_id,
                         origin.user_id)  # fmt: skip
        self.monitor.gave_up()
        await self.outbox.dead(message, origin, attempt, failure.code, error)
        self.monitor.dead_lettered(failure.code)
        stored = None
        if sub.user_id and sub.message_id:
            try:
                stored = await self._in_io(self.store.find_submission, sub.user_id,
                                           sub.message_id)  # fmt: skip
            except Exception:  # the store is what failed: it cannot say; the refusal stands
                log.warning("store unreadable while giving up on %s", sub.message_id)
        if stored is not None and stored.error_code not in RETRYABLE_CODES:
            # Decided and stored before what kept failing (publishing its copies): the stored
            # receipt is the outcome; a hub.unavailable receipt would contradict it. The
            # dead letter keeps the copies to publish (axis dead replay republishes them).
            record = stored
        else:
            _verdict, (record, _, _) = await self._refuse(sub, failure)
            self.monitor.rejected(sub.routing_key, failure.code)
        if self._registered(record.user_id):
            await self.outbox.receipt(message, record, True)
            self._receipt_sent(message)


def _refusal(sub: Submission, error: AxisError, digest: str | None, receipt_id: str,
             now: datetime, signer: ReceiptSigner) -> tuple[Rejected, Records]:  # fmt: skip
    # In the CPU thread: hashing a body of up to max_submission_bytes stays off the loop.
    verdict = Rejected(sub, digest if digest is not None else sha256_hex(sub.body), error,
                       kind=sub.routing_key, sender_system=sub.user_id or "")  # fmt: skip
    return verdict, records_for(verdict, receipt_id, now, signer)


def _status_code_of(record: SubmissionRecord) -> str | None:
    package = parse_package(record.raw)
    return package.status_code.value if isinstance(package, StatusPackage) else None
