"""The hub process: consume submissions, decide, persist, publish, then ack.

The decision itself (:mod:`routing.decide`) is pure and runs off the event loop;
this module is the thin async edge around it. Order per submission: admission (the
system's rate) → decide and sign the receipt (CPU thread) → persist (DB thread; the
``(user_id, message_id)`` constraint deduplicates across workers, the
``(organ, DocumentId)`` claim refuses a reused id) → publish every delivery with
publisher confirms (``mandatory``: unroutable is a failure) → publish the receipt →
ack. A crash anywhere before the ack makes the broker redeliver; a redelivered
submission that is already stored is published again, so nothing is lost
(recipients de-duplicate by message id). A failure while handling one (database or
broker trouble) parks it in a retry queue with exponential backoff
(:mod:`routing.retry`); after the last attempt its sender gets a signed
``hub.unavailable`` receipt and it goes to ``axis.dead`` with reason headers.
Decisions and commits are batched (:mod:`routing.batching`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from routing.admission import RateLimiter
from routing.amqp import broker_urls, connect_robust_any, tolerate_invalid_short_strings
from routing.answers import StatusAnswers, make_heads_forever
from routing.attachment_check import checked_files
from routing.batching import Batcher
from routing.contract_attachments import ATTACHMENT_QUEUE
from routing.decide import (
    Accepted,
    HubContext,
    NeedsFiles,
    Pending,
    Rejected,
    Submission,
    route_status,
)
from routing.errors import RateLimited
from routing.hub_attachments import ATTACHMENT_PREFETCH, AttachmentEndpoint, RefusalSigner
from routing.hub_config import HubConfig
from routing.hub_replies import HubReplies
from routing.outbox import Outbox
from routing.ports import (
    AttachmentKeeper,
    EvidenceKeeper,
    HubMonitor,
    HubStore,
    NoMonitor,
    ReceiptSigner,
    RevocationKeeper,
)
from routing.queries import QueryHandler
from routing.records import Records, decide_and_record, records_for
from routing.registry_cache import RegistryCache
from routing.retry import Origin, origin_of
from routing.revocation_refresh import RevocationRefresher
from routing.topology import Topology, declare_topology
from routing.values import (
    RETRYABLE_CODES,
    DocumentIdTaken,
    DuplicateSubmission,
    NewSubmission,
    SubmissionRecord,
)

log = logging.getLogger("axis.hub")
PARK_FAILED_PAUSE = 1.0  # seconds before a submission that could not be parked goes back
_Stored = SubmissionRecord | DuplicateSubmission | DocumentIdTaken


class Hub(HubReplies):
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
        evidence: EvidenceKeeper | None = None,
        revocation: RevocationKeeper | None = None,
        attachments: AttachmentKeeper | None = None,
    ):
        self.config = config
        self.attachments = attachments
        self.store = store
        self.signer = signer
        self.monitor: HubMonitor = monitor or NoMonitor()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._cpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axis-cpu")
        self._io = ThreadPoolExecutor(max_workers=4, thread_name_prefix="axis-db")
        # Chunk writes and whole-file hashes must not hold up the store's threads.
        self._files = ThreadPoolExecutor(max_workers=ATTACHMENT_PREFETCH,
                                         thread_name_prefix="axis-files")  # fmt: skip
        self._decisions: Batcher[_DecideItem, _Decided] = Batcher(_decide_all, self._cpu)
        self._commits: Batcher[NewSubmission, _Stored] = Batcher(store.record_submissions, self._io)
        self._admission = RateLimiter(config.rate_per_second, config.rate_burst)
        self._registry = RegistryCache(store, self._io, self._cpu, self.monitor.registry_loaded)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._taken_at: dict[int | None, float] = {}  # loop time each submission was taken
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._topology: Topology | None = None
        self._outbox: Outbox | None = None
        self._consumer_tags: list[tuple[aio_pika.abc.AbstractQueue, str]] = []
        self._refresher: asyncio.Task[None] | None = None
        self.evidence = evidence
        self._answers = StatusAnswers(store, signer, self._cpu, self._io, self._clock,
                                      on_logged=self.monitor.logged)  # fmt: skip
        self._head_maker: asyncio.Task[None] | None = None
        self.revocation = revocation
        self._fetching = None if revocation is None else RevocationRefresher(
            revocation, lambda: self._registry.snapshot, self._clock,
            config.revocation_refresh_seconds)  # fmt: skip
        self._fetcher: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Connect, declare the topology and start consuming."""
        tolerate_invalid_short_strings()
        if self.evidence is not None:  # a log altered behind the hub's back: refuse to serve
            await self._in_io(self.evidence.check)
        self._connection = await connect_robust_any(
            broker_urls(self.config.amqp_url, self.config.amqp_failover)
        )
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self.config.prefetch)
        self._topology = await declare_topology(channel, self.config.queue_type)
        self._outbox = Outbox(self._topology, self.config.broker_user)
        if self._fetching is not None:  # the CAs' material before the first submission
            await self._fetching.refresh()
            self._fetcher = asyncio.create_task(self._fetching.refresh_forever())
        queries = QueryHandler(self.store, self._topology.channel, self._io, self.evidence)
        self._consumer_tags = [
            (
                self._topology.submit_queue,
                await self._topology.submit_queue.consume(self._on_submit),
            ),
            (self._topology.query_queue, await self._topology.query_queue.consume(queries.handle)),
        ]
        if self.attachments is not None:
            await self._serve_attachments(self.attachments)
        self._refresher = asyncio.create_task(
            self._registry.refresh_forever(self.config.registry_refresh_seconds))
        if self.evidence is not None:
            self._head_maker = asyncio.create_task(make_heads_forever(
                self.evidence, self._io, self.config.log_head_seconds))  # fmt: skip
        log.info("hub consuming %s", self._topology.submit_queue.name)

    async def _serve_attachments(self, keeper: AttachmentKeeper) -> None:
        """Consume ``axis.attachment`` on a channel of its own: its small prefetch bounds the
        chunks in memory, and a long upload does not hold back submissions."""
        assert self._connection is not None
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=ATTACHMENT_PREFETCH)
        queue = await channel.get_queue(ATTACHMENT_QUEUE)  # passive: restored with the channel
        endpoint = AttachmentEndpoint(keeper, channel, self._files, self.monitor,
                                      RefusalSigner(self.signer, self._clock))
        self._consumer_tags.append((queue, await queue.consume(endpoint.handle)))
        self._sweeper = asyncio.create_task(endpoint.sweep_forever())

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
        for task in (self._refresher, self._head_maker, self._fetcher, self._sweeper):
            if task:
                task.cancel()
        if self._fetching is not None:
            self._fetching.close()
        if self._connection:
            await self._connection.close()
        self._cpu.shutdown(wait=True)
        self._io.shutdown(wait=True)
        self._files.shutdown(wait=True)

    async def run_until(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then stop gracefully."""
        await self.start()
        await stop.wait()
        await self.stop()

    async def refresh_registry(self) -> bool:
        """Reload the registry snapshot if it changed since the last load; True if reloaded."""
        return await self._registry.refresh()

    # -- one submission --------------------------------------------------------------

    async def _on_submit(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        self.monitor.started()
        started = asyncio.get_running_loop().time()
        self._taken_at[message.delivery_tag] = started
        origin = origin_of(message.user_id, message.headers or {}, self.config.broker_user)
        try:
            await self._handle(message, origin)
        except Exception as exc:
            log.exception("submission %s failed (attempt %d)", message.message_id,
                          origin.attempt + 1)  # fmt: skip
            await self._after_failure(message, origin, exc)
        finally:
            self.monitor.finished(asyncio.get_running_loop().time() - started)
            self._taken_at.pop(message.delivery_tag, None)
            if task is not None:
                self._in_flight.discard(task)

    async def _handle(self, message: AbstractIncomingMessage, origin: Origin) -> None:
        sub = Submission(
            bytes(message.body), message.routing_key or "", message.message_id, origin.user_id
        )
        # A first delivery needs no look-up: the store's unique (user_id, message_id)
        # constraint catches a re-submission when it is recorded.
        again = self._again(message, origin)
        if again and sub.user_id and sub.message_id:
            existing = await self._in_io(self.store.find_submission, sub.user_id, sub.message_id)
            if existing is not None and existing.error_code not in RETRYABLE_CODES:
                await self._answer_duplicate(message, sub, existing, republish=True)
                return
        verdict: Accepted | Rejected
        if not origin.relayed and sub.user_id and not self._admit(sub.user_id):
            # The consignment id stays usable: the sender sends it again later.
            verdict, records = await self._refuse(sub, RateLimited(
                f"system {sub.user_id} submits faster than {self.config.rate_per_second:g}/s",
                retry_after=round(self._admission.retry_after(sub.user_id), 3)))
        else:
            verdict, records = await self._verdict(sub)
        await self._settle(message, verdict, records, again=again)

    @staticmethod
    def _again(message: AbstractIncomingMessage, origin: Origin) -> bool:
        """A broker redelivery, or a copy the hub itself put back (a retry, an ``axis dead
        replay``): either may follow a submission stored already."""
        return bool(message.redelivered) or origin.relayed

    def _admit(self, system_id: str) -> bool:
        return self._admission.admit(system_id, asyncio.get_running_loop().time())

    async def _verdict(self, sub: Submission) -> tuple[Accepted | Rejected, Records]:
        verdict, records = await self._decide_once(sub)
        # The agency may have been registered a moment ago: look again before refusing.
        refusal = isinstance(verdict, Rejected) and verdict.code in _REFRESH_CODES
        if refusal and await self.refresh_registry():
            verdict, records = await self._decide_once(sub)
        if self._fetching is not None and await self._fetching.refreshed_for(verdict):
            verdict, records = await self._decide_once(sub)
        return verdict, records

    async def _decide_once(self, sub: Submission) -> tuple[Accepted | Rejected, Records]:
        ctx = HubContext(
            now=self._clock(),
            registry=self._registry.snapshot,
            trust=self._registry.trust,
            max_bytes=self.config.max_submission_bytes,
            revocation=self.revocation,
        )
        receipt_id = str(uuid.uuid4())
        pending, records = await self._decisions.run((sub, ctx, receipt_id, self.signer))
        if isinstance(pending, Accepted | Rejected):
            assert records is not None  # a final verdict always comes with its records
            return pending, records
        verdict = await self._complete(pending, ctx)
        return verdict, await self._in_cpu(records_for, verdict, receipt_id, ctx.now, self.signer)

    async def _complete(self, pending: Pending, ctx: HubContext) -> Accepted | Rejected:
        """The final verdict of a decision that waits for the store or the disk."""
        if isinstance(pending, NeedsFiles):
            return await self._in_io(checked_files, pending, self.attachments)
        # Every organ's documents of that id: ResponseFor/OrganId may use another of
        # the sender organ's codes than its From did (route_status compares them).
        candidates = await self._in_io(
            self.store.documents_named, pending.package.response_for.document_id
        )
        return route_status(pending, candidates, ctx.registry)

    async def _settle(
        self, message: AbstractIncomingMessage, verdict: Accepted | Rejected, records: Records,
        *, again: bool,
    ) -> None:  # fmt: skip
        if isinstance(verdict, Accepted) and verdict.attachments:
            await self._grant(verdict)  # before any recipient can see the package
        stored = await self._commits.run(records)
        if isinstance(stored, DocumentIdTaken):
            verdict, records = await self._document_id_reused(verdict)
            stored = await self._commits.run(records)
        if isinstance(stored, DuplicateSubmission):  # stored before, perhaps by another worker
            await self._answer_duplicate(message, verdict.submission, stored.existing,
                                         republish=again)  # fmt: skip
            return
        assert isinstance(stored, SubmissionRecord)
        if stored.log_index is not None:
            self.monitor.logged(1)
        if isinstance(verdict, Accepted):
            # The copies and the receipt in flight together; the ack waits for every
            # confirm, so a crash before it still publishes all of them again.
            await asyncio.gather(self.outbox.deliveries(verdict), self.outbox.receipt(
                message, stored, self._registered(stored.user_id)))  # fmt: skip
            await self._answers.after_status(verdict, self.outbox)
            self.monitor.accepted(verdict.kind, len(verdict.deliveries))
            if self._fetching is not None:
                self._fetching.report(verdict)
            self._receipt_sent(message)
            await message.ack()
            return
        self.monitor.rejected(verdict.kind, verdict.code)
        log.info("rejected %s from %s: %s", verdict.submission.message_id,
                 verdict.submission.user_id, verdict.error)  # fmt: skip
        await self._receipt_and_ack(message, stored)

    async def _grant(self, verdict: Accepted) -> None:
        keeper = self.attachments
        assert keeper is not None  # the decision accepts streamed files only with a keeper
        recipients = [d.system_id for d in verdict.deliveries]
        for ref in verdict.attachments:
            await self._in_io(keeper.grant, verdict.sender_system, ref.sha256, recipients)

    async def _after_failure(
        self, message: AbstractIncomingMessage, origin: Origin, exc: Exception
    ) -> None:
        """Retry later with backoff; after the last attempt, a final receipt and a dead
        letter. If even that cannot be published, the broker gets the message back."""
        attempt = origin.attempt + 1
        error = f"{type(exc).__name__}: {exc}"
        try:
            if attempt < self.config.max_attempts:
                await self.outbox.retry(message, origin, attempt, error)
                self.monitor.retried(attempt)
            else:
                await self._give_up(message, origin, attempt, error)
            await message.ack()
        except Exception:
            log.exception("cannot park submission %s; returning it to the queue in %g s",
                          message.message_id, PARK_FAILED_PAUSE)  # fmt: skip
            # Not at once: a broker that refuses the parked copy would otherwise make this
            # a hot loop (the quorum delivery limit still ends it, in axis.dead).
            await asyncio.sleep(PARK_FAILED_PAUSE)
            await message.nack(requeue=True)



_DecideItem = tuple[Submission, HubContext, str, ReceiptSigner]
_Decided = tuple[Accepted | Rejected | Pending, Records | None]


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
