"""Signed traffic A → B for the fault-injection suite, and its accounting.

The sender (in this process) submits pre-signed documents with unique consignment ids
through the SDK, publishing each again with the same id until the broker confirms it
(what the protocol allows after a lost confirm). Its receipts are counted from its
inbox. The recipient is a separate process (``python -m bench.faults_recipient``) so
that it can be killed: it writes each delivery's message id to a file, flushed, before
it acks. Nothing here judges; :class:`Tally` counts.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage
from cryptography import x509

from axis.client.agency import AgencyClient
from axis.dead_letters import read_dead_letter
from axis.receipts import verify_receipt
from envelopes.builder import attachment_from_bytes, build_package
from envelopes.errors import AxisError
from envelopes.metadata import document_from_metadata
from routing.amqp import connect_robust_any
from routing.contract import DEAD_QUEUE, TYPE_RECEIPT, inbox_queue_name
from signing.keys import SigningKey
from signing.sign import sign_package
from signing.verify import VerifyPolicy

SENDER = ("000.00.00.F01", "Văn phòng (fault suite)")
RECIPIENT = ("000.00.00.F02", "UBND (fault suite)")
RETRY_SECONDS = 0.5
WINDOW = 300  # consignments in flight (confirmed, no receipt yet)
WINDOW_STALL_SECONDS = 120.0
# What a publish may fail with while the broker is away; a defect still ends the run.
BROKER_TROUBLE = (AxisError, aio_pika.exceptions.AMQPException, aiormq.exceptions.AMQPError,
                  OSError, TimeoutError)  # fmt: skip


def signed_documents(key: SigningKey, count: int) -> list[bytes]:
    """``count`` signed ~5 KB documents A → B with distinct DocumentIds (signed once, reused
    by every scenario: each runs on a fresh store)."""
    today = datetime.now(UTC).date()
    body = ("Công văn kiểm thử khả năng chịu lỗi.\n" * 120).encode()
    documents = []
    for n in range(count):
        package = document_from_metadata({
            "from": {"organ_id": SENDER[0], "organ_name": SENDER[1]},
            "to": [{"organ_id": RECIPIENT[0], "organ_name": RECIPIENT[1]}],
            "document_id": f"{SENDER[0]},{today:%Y/%m/%d},{n + 1}/FAULTS",
            "code": {"number": str(n + 1), "notation": "FAULTS"},
            "promulgation_date": today.isoformat(), "type_name": "Công văn",
            "subject": f"Kiểm thử {n + 1}", "priority": 2,
        }, [attachment_from_bytes("cong-van.txt", body)])  # fmt: skip
        documents.append(sign_package(build_package(package), key))
    return documents


@dataclass
class Tally:
    """What one scenario saw."""

    sent: int = 0
    confirmed: set[str] = field(default_factory=set)
    publish_retries: int = 0
    receipts: dict[str, str] = field(default_factory=dict)  # consignment -> event
    receipt_copies: int = 0
    unverified_receipts: int = 0
    dead: Counter[str] = field(default_factory=Counter)


async def send_all(client: AgencyClient, documents: list[bytes], tally: Tally, run: str) -> None:
    """Submit every document, each again with the same consignment id until confirmed.

    At most :data:`WINDOW` consignments wait for their receipt at a time, as a system
    that watches its receipts would: the faults then strike while A is still sending."""
    for n, body in enumerate(documents):
        consignment = f"{run}-{n:05d}"
        waited_until = time.monotonic() + WINDOW_STALL_SECONDS  # receipts may never come
        while len(tally.confirmed) - len(tally.receipts) >= WINDOW:
            if time.monotonic() > waited_until:
                break
            await asyncio.sleep(0.02)
        tally.sent += 1
        while True:
            try:
                await client.send(body, message_id=consignment)
                break
            except BROKER_TROUBLE:  # the same id again
                tally.publish_retries += 1
                await asyncio.sleep(RETRY_SECONDS)
        tally.confirmed.add(consignment)


async def collect_receipts(
    urls: list[str], system_id: str, hub_certificate: x509.Certificate, tally: Tally
) -> None:
    """Count the sender's submission receipts that verify against the hub's certificate
    and are about its own consignments (consume; runs until cancelled)."""
    connection = await connect_robust_any(urls, reconnect_interval=1)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=200)
        # declared (passively), not just named: a robust channel restores its consumer then
        queue = await channel.get_queue(inbox_queue_name(system_id))

        async def on_message(message: AbstractIncomingMessage) -> None:
            consignment = message.correlation_id or ""
            if message.type == TYPE_RECEIPT and message.message_id == f"{system_id}/{consignment}":
                try:
                    policy = VerifyPolicy(at=datetime.now(UTC), pinned=(hub_certificate,))
                    receipt = verify_receipt(bytes(message.body), policy).receipt
                except AxisError:
                    receipt = None
                if receipt is None or (receipt.sender_system, receipt.message_id) != (
                        system_id, consignment):  # fmt: skip
                    tally.unverified_receipts += 1
                else:
                    tally.receipt_copies += 1
                    tally.receipts.setdefault(consignment, receipt.event)
            await message.ack()

        await queue.consume(on_message)
        await asyncio.Future()
    finally:
        await connection.close()


async def drain_dead_letters(url: str, hub_user: str) -> Counter[str]:
    """Take every message in ``axis.dead``; count them by reason."""
    reasons: Counter[str] = Counter()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(DEAD_QUEUE, ensure=False)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            letter = read_dead_letter(
                bytes(message.body), routing_key=message.routing_key,
                message_id=message.message_id, user_id=message.user_id, type=message.type,
                content_type=message.content_type, headers=dict(message.headers or {}),
                hub_user=hub_user,
            )  # fmt: skip
            reasons[f"{letter.source}: {letter.reason or letter.last_error or '?'}"] += 1
    return reasons


@dataclass
class DeliveryLog:
    """The recipient's log, read as it grows: how many times each delivery arrived."""

    path: Path
    counts: Counter[str] = field(default_factory=Counter)
    _offset: int = 0

    def read(self) -> Counter[str]:
        """The counts so far, reading only what was appended since the last call."""
        if not self.path.exists():
            return self.counts
        with self.path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
        self._offset += len(complete)
        self.counts.update(line for line in complete.decode().splitlines() if line)
        return self.counts


def summary(tally: Tally, deliveries: Counter[str], recovery: float | None) -> dict[str, Any]:
    """The scenario's row: sent, confirmed, delivered unique, duplicates, lost, missing."""
    wanted = {f"{SENDER[0]}/{c}" for c in tally.confirmed}
    delivered = wanted & set(deliveries)
    return {
        "sent": tally.sent,
        "confirmed": len(tally.confirmed),
        "accepted": sum(e == "accepted" for e in tally.receipts.values()),
        "delivered_unique": len(delivered),
        "duplicate_deliveries": sum(deliveries[m] - 1 for m in delivered),
        "lost": len(wanted - delivered),
        "receipts_missing": len(tally.confirmed - set(tally.receipts)),
        "duplicate_receipts": tally.receipt_copies - len(tally.receipts),
        "unverified_receipts": tally.unverified_receipts,
        "publish_retries": tally.publish_retries,
        "dead_lettered": sum(tally.dead.values()),
        "dead_reasons": dict(tally.dead),
        "recovery_seconds": None if recovery is None else round(recovery, 2),
    }
