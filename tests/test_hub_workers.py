"""Several hub workers on one store and one broker vhost, under parallel load.

Three :class:`~routing.hub.Hub` workers, each with a store object (a connection pool) of
its own as separate processes would have, share one database (SQLite, then PostgreSQL)
and compete on ``axis.submit``. Three agencies submit a few hundred documents at once,
re-send some consignments right after the first copy (so that two workers race on one
consignment id) and submit packages the hub refuses. Then, for every consignment:
exactly one stored submission and one outcome receipt (re-sends get the stored receipt
again, byte for byte: the documented replay), exactly one delivery record and one copy
per recipient system, one trace (no doubled events), one evidence log entry; and every
worker took submissions off the queue.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from axis.evidence.service import EvidenceService
from axis.pki_files import load_credential
from axis.receipts import HubReceiptSigner
from axis.store import Store
from axis.store_model import DELIVS, SUBS
from routing.contract import TYPE_RECEIPT, inbox_queue_name
from routing.hub import Hub
from routing.hub_config import HubConfig
from routing.ports import NoMonitor
from routing.values import DocumentIdTaken, DuplicateSubmission, NewSubmission, SubmissionRecord
from tests.clikit import organ
from tests.hubkit import Agency, HubKit, document

pytestmark = pytest.mark.rabbitmq
WORKERS = 3
AGENCIES = 3
DOCUMENTS = 100  # per agency
RESEND_EVERY = 8  # every 8th consignment is sent twice, back to back
TIMEOUT = 60.0


class TakenCount(NoMonitor):
    """How many submissions one worker took off the queue."""

    def __init__(self) -> None:
        self.taken = 0

    def started(self) -> None:
        self.taken += 1


class RecordingStore(Store):
    """A worker's store that notes which consignments the worker tried to record."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.consignments: set[str] = set()

    def record_submissions(
        self, items: Sequence[NewSubmission]
    ) -> list[SubmissionRecord | DuplicateSubmission | DocumentIdTaken]:
        self.consignments.update(record.message_id for record, _, _ in items)
        return super().record_submissions(items)


@dataclass(frozen=True)
class Planned:
    """One consignment: who sends what, how often, and what the hub must answer."""

    sender: Agency
    message_id: str
    body: bytes
    recipients: tuple[str, ...]
    refusal: str | None = None  # the expected error code; None: accepted
    sends: int = 1


async def start_workers(kit: HubKit, count: int
                        ) -> list[tuple[Hub, RecordingStore, TakenCount]]:  # fmt: skip
    key = load_credential(kit.pki.hub_key, kit.pki.hub_cert)
    workers = []
    for _ in range(count):
        store, monitor = RecordingStore(kit.settings.db_url), TakenCount()
        config = HubConfig(amqp_url=kit.settings.amqp_url, prefetch=16,
                           queue_type=kit.settings.queue_type)  # fmt: skip
        hub = Hub(config, store, HubReceiptSigner(key), monitor,
                  evidence=EvidenceService(store, key))  # fmt: skip
        await hub.start()
        workers.append((hub, store, monitor))
    return workers


def plan(agencies: list[Agency]) -> list[Planned]:
    """Documents around the ring (every 5th to two recipients), re-sends, and refusals: a
    broken signature and an unknown recipient per agency (one of them re-sent too)."""
    planned = []
    for i, sender in enumerate(agencies):
        others = [a.organ_id for a in agencies[i + 1:] + agencies[:i]]
        for n in range(DOCUMENTS):
            to = tuple(others if n % 5 == 0 else others[:1])
            body = sender.client.sign(document(sender.organ_id, list(to), number=str(n + 1)))
            planned.append(Planned(sender, f"w-{i}-{n}", body, to,
                                   sends=2 if n % RESEND_EVERY == 0 else 1))  # fmt: skip
        good = sender.client.sign(document(sender.organ_id, others[:1], number="broken"))
        broken = good.replace(b"V/v th", b"V/v TH")
        stranger = sender.client.sign(document(sender.organ_id, [organ("NOBODY")],
                                               number="stray"))  # fmt: skip
        planned += [Planned(sender, f"w-{i}-broken", broken, (), "signature.invalid", 2),
                    Planned(sender, f"w-{i}-stray", stranger, (), "recipient.unknown")]
    return planned


async def submit(planned: list[Planned], agencies: list[Agency]) -> None:
    """Every agency sends its consignments at the same time as the others."""

    async def one_agency(agency: Agency) -> None:
        for item in planned:
            if item.sender is agency:
                for _ in range(item.sends):
                    await agency.client.send(item.body, message_id=item.message_id)

    await asyncio.gather(*(one_agency(a) for a in agencies))


async def drain(agencies: list[Agency], want: int) -> dict[str, list[tuple[str, str, bytes]]]:
    """(type, message_id, body) of every message in each inbox, raw (no SDK de-duplication,
    no automatic status 01), until ``want`` messages came or time ran out."""
    found: dict[str, list[tuple[str, str, bytes]]] = defaultdict(list)
    queues = {a.organ_id: await a.client.channel.get_queue(inbox_queue_name(a.organ_id),
                                                          ensure=False)
              for a in agencies}  # fmt: skip
    deadline = time.monotonic() + TIMEOUT
    while sum(map(len, found.values())) < want and time.monotonic() < deadline:
        idle = True
        for system, queue in queues.items():
            while (message := await queue.get(fail=False)) is not None:
                await message.ack()
                found[system].append((message.type or "", message.message_id or "",
                                      bytes(message.body)))  # fmt: skip
                idle = False
        if idle:
            await asyncio.sleep(0.05)
    return found


async def test_workers_answer_deliver_and_trace_each_consignment_once(idle_kit: HubKit) -> None:
    agencies = [await idle_kit.agency(organ(f"W{i}")) for i in range(AGENCIES)]
    planned = plan(agencies)
    workers = await start_workers(idle_kit, WORKERS)
    started = time.monotonic()
    try:
        await submit(planned, agencies)
        receipts = sum(p.sends for p in planned)
        copies = sum(len(p.recipients) for p in planned)
        inboxes = await drain(agencies, receipts + copies)
    finally:
        for hub, store, _ in workers:
            await hub.stop()
            store.dispose()
    elapsed = time.monotonic() - started
    taken = [monitor.taken for _, _, monitor in workers]
    resent = {p.message_id for p in planned if p.sends > 1}
    raced = [c for c in resent if sum(c in store.consignments for _, store, _ in workers) > 1]
    print(f"\n{WORKERS} workers, {len(planned)} consignments, {receipts} submissions, "
          f"{copies} copies: {elapsed:.1f} s; taken per worker {taken}; "
          f"{len(raced)} of {len(resent)} re-sent consignments recorded by two workers")

    # Every worker consumed and stored; together they took each submission exactly once,
    # and the copies of a re-sent consignment did meet in different workers.
    assert all(n > 0 for n in taken), taken
    assert sum(taken) == receipts, taken
    assert all(store.consignments for _, store, _ in workers)
    assert raced, "no re-sent consignment reached two workers: nothing was raced"
    check_receipts(planned, inboxes)
    check_copies(planned, inboxes)
    check_store(idle_kit.store, planned)


def check_receipts(planned: list[Planned], inboxes: dict[str, list[tuple[str, str, bytes]]]
                   ) -> None:  # fmt: skip
    """One outcome receipt per consignment; a re-send gets it again, byte-identical."""
    by_id: dict[str, list[bytes]] = defaultdict(list)
    for system, messages in inboxes.items():
        for kind, message_id, body in messages:
            if kind == TYPE_RECEIPT:
                assert message_id.startswith(f"{system}/"), (system, message_id)
                by_id[message_id].append(body)
    expected = {f"{p.sender.organ_id}/{p.message_id}": p for p in planned}
    assert set(by_id) == set(expected), set(by_id) ^ set(expected)
    for message_id, bodies in by_id.items():
        item = expected[message_id]
        assert len(bodies) == item.sends and len(set(bodies)) == 1, (message_id, len(bodies))
        receipt = item.sender.client.verify_receipt(bodies[0], item.body).receipt
        assert receipt.message_id == item.message_id
        assert (receipt.event, receipt.error_code) == (
            ("rejected", item.refusal) if item.refusal else ("accepted", "")), message_id


def check_copies(planned: list[Planned], inboxes: dict[str, list[tuple[str, str, bytes]]]
                 ) -> None:  # fmt: skip
    """Each accepted consignment reached each recipient system once (nothing was
    redelivered in this run, so not even the documented re-publication happens)."""
    got = Counter((system, message_id) for system, messages in inboxes.items()
                  for kind, message_id, _ in messages if kind == "edoc")  # fmt: skip
    want = Counter((to, f"{p.sender.organ_id}/{p.message_id}") for p in planned
                   for to in p.recipients)  # fmt: skip
    assert got == want, (got - want, want - got)


def check_store(store: Store, planned: list[Planned]) -> None:
    """One submission row, one delivery row per recipient system, one trace and one log
    entry per consignment."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(SUBS.c.id, SUBS.c.user_id, SUBS.c.message_id,
                                      SUBS.c.outcome, SUBS.c.log_index)).all()  # fmt: skip
        delivered = conn.execute(sa.select(DELIVS.c.submission_id, DELIVS.c.system_id)).all()
    stored = {(r.user_id, r.message_id): r for r in rows}
    assert len(rows) == len(stored) == len(planned)
    log_indexes = [r.log_index for r in rows]
    assert None not in log_indexes and len(set(log_indexes)) == len(rows)
    deliveries: dict[int, list[str]] = defaultdict(list)
    for submission_id, system_id in delivered:
        deliveries[submission_id].append(system_id)
    for p in planned:
        row = stored[(p.sender.organ_id, p.message_id)]
        assert row.outcome == ("rejected" if p.refusal else "accepted")
        assert sorted(deliveries.get(row.id, [])) == sorted(p.recipients), p.message_id
        events = [(e.event, e.system_id) for e in
                  store.consignment_events(p.sender.organ_id, p.message_id)]  # fmt: skip
        done = ([("rejected", p.sender.organ_id)] if p.refusal else
                [("accepted", p.sender.organ_id), *(("published", to) for to in p.recipients)])
        assert sorted(events) == sorted([("submitted", p.sender.organ_id), *done]), events
