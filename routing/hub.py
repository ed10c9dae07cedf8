"""The hub process: consume submissions, decide, persist, publish, then ack.

The decision itself (:mod:`routing.decide`) is pure and runs off the event loop;
this module is the thin async edge around it. Order per submission: decide and
sign the receipt (CPU thread) → persist (DB thread; the ``(user_id, message_id)``
constraint deduplicates across workers) →
publish every delivery with publisher confirms (``mandatory``: unroutable is a
failure) → publish the receipt → ack. A crash anywhere before the ack makes the
broker redeliver; a redelivered submission that is already stored is published
again, so nothing is lost (recipients de-duplicate by message id). Decisions and
commits are batched (:mod:`routing.batching`): submissions that arrive while the
thread is busy share its next trip.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from envelopes.model import StatusPackage
from envelopes.parser import parse_package
from envelopes.status_codes import StatusCode
from routing.amqp import publish, publish_confirmed
from routing.batching import Batcher
from routing.contract import WireMessage, delivery_message, receipt_message
from routing.decide import (
    Accepted,
    HubContext,
    NeedsParties,
    Rejected,
    Submission,
    TrustIndex,
    route_status,
)
from routing.errors import DuplicateConflict
from routing.ports import HubMonitor, HubStore, NoMonitor, ReceiptSigner
from routing.queries import QueryHandler
from routing.records import Records, decide_and_record, delivered_records, records_for
from routing.topology import Topology, declare_topology
from routing.values import (
    DuplicateSubmission,
    NewSubmission,
    Receipt,
    SubmissionRecord,
    sha256_hex,
)

log = logging.getLogger("axis.hub")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HubConfig:
    """What one hub process needs to run."""

    amqp_url: str
    prefetch: int = 64
    max_submission_bytes: int = 16 * 1024 * 1024
    queue_type: str = "quorum"
    registry_refresh_seconds: float = 5.0


class Hub:
    """One hub worker. Several may compete on ``axis.submit``.

    It is given its store, receipt signer and monitor (:mod:`routing.ports`);
    ``axis serve`` assembles it from the service's implementations.
    """

    def __init__(
        self,
        config: HubConfig,
        store: HubStore,
        signer: ReceiptSigner,
        monitor: HubMonitor | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        self.config = config
        self.store = store
        self.signer = signer
        self.monitor: HubMonitor = monitor or NoMonitor()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axis-cpu")
        self._io = ThreadPoolExecutor(max_workers=4, thread_name_prefix="axis-db")
        self._decisions: Batcher[_DecideItem, _Decided] = Batcher(_decide_all, self._cpu)
        self._commits: Batcher[NewSubmission, SubmissionRecord | DuplicateSubmission] = Batcher(
            store.record_submissions, self._io
        )
        self._registry_version = store.registry_version()
        self._snapshot = store.load_snapshot()
        self._trust = TrustIndex.from_snapshot(self._snapshot)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._topology: Topology | None = None
        self._consumer_tags: list[tuple[aio_pika.abc.AbstractQueue, str]] = []
        self._refresher: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Connect, declare the topology and start consuming."""
        self._connection = await aio_pika.connect_robust(self.config.amqp_url)
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self.config.prefetch)
        self._topology = await declare_topology(channel, self.config.queue_type)
        queries = QueryHandler(self.store, self._topology.channel, self._io)
        self._consumer_tags = [
            (
                self._topology.submit_queue,
                await self._topology.submit_queue.consume(self._on_submit),
            ),
            (self._topology.query_queue, await self._topology.query_queue.consume(queries.handle)),
        ]
        self._refresher = asyncio.create_task(self._refresh_registry_forever())
        log.info("hub consuming %s", self._topology.submit_queue.name)

    async def stop(self) -> None:
        """Graceful stop: cancel consumers, finish in-flight work, then close."""
        for queue, tag in self._consumer_tags:
            try:
                await queue.cancel(tag)
            except Exception:  # a closed channel has no consumers left to cancel
                log.debug("consumer %s already gone", tag)
        self._consumer_tags = []
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._refresher:
            self._refresher.cancel()
        if self._connection:
            await self._connection.close()
        self._cpu.shutdown(wait=True)
        self._io.shutdown(wait=True)

    async def run_until(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then stop gracefully."""
        await self.start()
        await stop.wait()
        await self.stop()

    async def refresh_registry(self) -> bool:
        """Reload the registry snapshot if it changed since the last load; True if reloaded.

        Asking is one cheap query; a reload reads the whole directory (about half a
        second for the national one), so it happens only when something changed.
        """
        version = await self._in_io(self.store.registry_version)
        if version == self._registry_version:
            return False
        # Read before loading: a change made during the load moves the version again.
        snapshot = await self._in_io(self.store.load_snapshot)
        trust = await self._in_cpu(TrustIndex.from_snapshot, snapshot)
        self._snapshot, self._trust, self._registry_version = snapshot, trust, version
        return True

    async def _refresh_registry_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.registry_refresh_seconds)
            try:
                await self.refresh_registry()
            except Exception:
                log.exception("registry refresh failed; keeping the previous snapshot")

    # -- one submission --------------------------------------------------------------

    async def _on_submit(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        self.monitor.started()
        started = asyncio.get_running_loop().time()
        try:
            await self._handle(message)
        except Exception:
            log.exception("submission %s failed; returning it to the queue", message.message_id)
            await message.nack(requeue=True)
        finally:
            self.monitor.finished(asyncio.get_running_loop().time() - started)
            if task is not None:
                self._in_flight.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        sub = Submission(
            bytes(message.body), message.routing_key or "", message.message_id, message.user_id
        )
        # A first delivery needs no look-up: the store's unique (user_id, message_id)
        # constraint catches a re-submission when it is recorded.
        if message.redelivered and sub.user_id and sub.message_id:
            existing = await self._in_io(self.store.find_submission, sub.user_id, sub.message_id)
            if existing is not None:
                await self._answer_duplicate(message, sub, existing)
                return
        verdict, records = await self._verdict(sub)
        await self._settle(message, verdict, records)

    async def _verdict(self, sub: Submission) -> tuple[Accepted | Rejected, Records]:
        verdict, records = await self._decide_once(sub)
        # The agency may have been registered a moment ago: look again before refusing.
        refusal = isinstance(verdict, Rejected) and verdict.code in _REFRESH_CODES
        if refusal and await self.refresh_registry():
            verdict, records = await self._decide_once(sub)
        return verdict, records

    async def _decide_once(self, sub: Submission) -> tuple[Accepted | Rejected, Records]:
        ctx = HubContext(
            now=self._clock(),
            registry=self._snapshot,
            trust=self._trust,
            max_bytes=self.config.max_submission_bytes,
        )
        receipt_id = str(uuid.uuid4())
        verdict, records = await self._decisions.run((sub, ctx, receipt_id, self.signer))
        if isinstance(verdict, NeedsParties):
            parties = await self._in_io(self.store.document_parties, verdict.package.document_id)
            verdict = route_status(verdict, parties)
            records = await self._in_cpu(records_for, verdict, receipt_id, ctx.now, self.signer)
        assert records is not None  # a final verdict always comes with its records
        return verdict, records

    async def _settle(
        self, message: AbstractIncomingMessage, verdict: Accepted | Rejected, records: Records
    ) -> None:
        stored = await self._commits.run(records)
        if isinstance(stored, DuplicateSubmission):  # stored before, perhaps by another worker
            await self._answer_duplicate(message, verdict.submission, stored.existing)
            return
        if isinstance(verdict, Accepted):
            await self._publish_deliveries(verdict)
            await self._after_status(verdict)
            self.monitor.accepted(verdict.kind, len(verdict.deliveries))
        else:
            self.monitor.rejected(verdict.kind, verdict.code)
            log.info(
                "rejected %s from %s: %s",
                verdict.submission.message_id,
                verdict.submission.user_id,
                verdict.error,
            )
        await self._publish_receipt(message, stored)
        await message.ack()

    async def _publish_deliveries(self, verdict: Accepted) -> None:
        assert self._topology is not None
        status = verdict.status_code.value if verdict.status_code else None
        for delivery in verdict.deliveries:
            msg = delivery_message(
                body=verdict.submission.body,
                kind=verdict.kind,
                sender_system=verdict.sender_system,
                sender_organ=verdict.sender_organ,
                recipient_organs=delivery.organs,
                document_id=verdict.document_id,
                consignment=verdict.submission.message_id or "",
                status_code=status,
            )
            await self._confirmed_publish(self._topology.deliver_exchange, msg, delivery.system_id)

    async def _after_status(self, verdict: Accepted) -> None:
        """A recipient's status 01: a signed ``delivered`` receipt for the document's sender."""
        if verdict.status_code is not StatusCode.ARRIVED:
            return
        parties = verdict.parties
        if parties is None or verdict.sender_system not in parties.recipients:
            return
        now = self._clock()
        receipt, event = delivered_records(verdict, parties, str(uuid.uuid4()), now)
        receipt_xml = await self._in_cpu(self.signer.sign, receipt)
        await self._in_io(
            self.store.mark_delivered, verdict.document_id, verdict.sender_system, now, receipt_xml
        )
        await self._in_io(self.store.add_events, [event])
        assert self._topology is not None
        await self._confirmed_publish(
            self._topology.deliver_exchange,
            receipt_message(
                receipt_xml=receipt_xml,
                receipt_id=receipt.receipt_id,
                consignment=receipt.message_id,
                event="delivered",
                document_id=verdict.document_id,
            ),
            parties.sender_system,
        )

    async def _publish_receipt(
        self, message: AbstractIncomingMessage, record: SubmissionRecord
    ) -> None:
        assert self._topology is not None
        msg = receipt_message(
            receipt_xml=record.receipt,
            receipt_id=f"{record.user_id}/{record.message_id}",
            consignment=message.message_id or "",
            event=record.outcome,
            error_code=record.error_code or "",
            document_id=record.document_id or "",
        )
        if record.user_id and self._snapshot.system(record.user_id) is not None:
            await self._confirmed_publish(self._topology.deliver_exchange, msg, record.user_id)
        elif message.reply_to:
            # No system to bind the sender to: answer on its direct reply-to, if it gave one.
            await publish(self._topology.channel.default_exchange, msg, message.reply_to)

    async def _answer_duplicate(
        self, message: AbstractIncomingMessage, sub: Submission, existing: SubmissionRecord
    ) -> None:
        if existing.sha256 != sha256_hex(sub.body):
            await self._reject_conflict(message, sub, existing)
            return
        self.monitor.duplicate()
        if message.redelivered and existing.outcome == "accepted":
            # The first attempt may have died between persisting and publishing: publish
            # the stored routing again (recipients de-duplicate by delivery message id).
            await self._republish(existing)
        await self._publish_receipt(message, existing)
        await message.ack()

    async def _republish(self, record: SubmissionRecord) -> None:
        assert self._topology is not None and record.id is not None
        deliveries = await self._in_io(self.store.submission_deliveries, record.id)
        status = _status_code_of(record) if record.kind == "status" else None
        for delivery in deliveries:
            msg = delivery_message(
                body=record.raw, kind=record.kind, sender_system=record.user_id,
                sender_organ=record.sender_organ or "", recipient_organs=delivery.organs,
                document_id=record.document_id or "", consignment=record.message_id,
                status_code=status)  # fmt: skip
            await self._confirmed_publish(self._topology.deliver_exchange, msg, delivery.system_id)

    async def _reject_conflict(
        self, message: AbstractIncomingMessage, sub: Submission, existing: SubmissionRecord
    ) -> None:
        error = DuplicateConflict(
            f"consignment {sub.message_id!r} was submitted before with different content"
        )
        receipt = Receipt(
            receipt_id=str(uuid.uuid4()),
            event="rejected",
            kind=sub.routing_key,
            message_id=sub.message_id or "",
            package_sha256=sha256_hex(sub.body),
            hub_time=self._clock(),
            sender_system=sub.user_id or "",
            error_code=error.code,
            reason=error.reason,
        )
        receipt_xml = await self._in_cpu(self.signer.sign, receipt)
        self.monitor.rejected(sub.routing_key, error.code)
        assert self._topology is not None
        await self._confirmed_publish(
            self._topology.deliver_exchange,
            receipt_message(
                receipt_xml=receipt_xml,
                receipt_id=receipt.receipt_id,
                consignment=sub.message_id or "",
                event="rejected",
                error_code=error.code,
            ),
            existing.user_id,
        )
        # The conflicting bytes are kept for inspection in axis.dead, not dropped.
        await message.nack(requeue=False)

    async def _confirmed_publish(
        self, exchange: aio_pika.abc.AbstractExchange, msg: WireMessage, routing_key: str
    ) -> None:
        await publish_confirmed(exchange, msg, routing_key)

    async def _in_cpu(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._cpu, fn, *args)

    async def _in_io(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)


_DecideItem = tuple[Submission, HubContext, str, ReceiptSigner]
_Decided = tuple[Accepted | Rejected | NeedsParties, Records | None]


def _decide_all(items: Sequence[_DecideItem]) -> list[_Decided]:
    return [decide_and_record(*item) for item in items]


_REFRESH_CODES = frozenset(
    {
        "sender.unknown_system",
        "recipient.unknown",
        "sender.organ_not_served",
        "signature.certificate_not_registered",
        "recipient.suspended",
        "sender.system_suspended",
    }
)


def _status_code_of(record: SubmissionRecord) -> str | None:
    package = parse_package(record.raw)
    return package.status_code.value if isinstance(package, StatusPackage) else None
