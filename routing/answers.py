"""What the hub signs after routing a status, and the evidence log's heads.

A recipient's first status 01 about a document gives its sender a signed ``delivered``
receipt; any other recipient status (02 to 06, 15, 16) gives it a signed business receipt
(event ``status``, with the code): the proof that an official registered, refused or
finished the document, not only that a machine fetched it. Both are appended to the
evidence log and carry their log index (``axis-log-index``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import TypeVar

from envelopes.status_codes import StatusCode
from routing.contract import receipt_message
from routing.decide import Accepted
from routing.outbox import Outbox
from routing.ports import EvidenceKeeper, HubStore, ReceiptSigner
from routing.records import delivered_records, status_receipt

log = logging.getLogger("axis.hub")
T = TypeVar("T")


class StatusAnswers:
    """Signs, logs and sends the receipts a routed status earns the document's sender."""

    def __init__(self, store: HubStore, signer: ReceiptSigner, cpu: Executor, io: Executor,
                 clock: Callable[[], datetime],
                 on_logged: Callable[[int], None] = lambda _: None) -> None:  # fmt: skip
        """``on_logged`` is told of each receipt appended to the evidence log."""
        self.store, self.signer, self._cpu, self._io, self._clock = store, signer, cpu, io, clock
        self._on_logged = on_logged

    async def after_status(self, verdict: Accepted, outbox: Outbox) -> None:
        """The receipt ``verdict`` (an accepted status) earns, if any."""
        parties = verdict.parties
        code = verdict.status_code
        if code is None or parties is None or verdict.sender_system not in parties.recipients:
            return  # statuses from the document's sender (13) earn no receipt
        if code is StatusCode.ARRIVED:
            await self._delivered(verdict, outbox)
        else:
            await self._business(verdict, outbox)

    async def _delivered(self, verdict: Accepted, outbox: Outbox) -> None:
        parties = verdict.parties
        assert parties is not None
        now = self._clock()
        receipt, event = delivered_records(verdict, parties, str(uuid.uuid4()), now)
        receipt_xml = await self._run(self._cpu, self.signer.sign, receipt)
        changed = await self._run(self._io, self.store.mark_delivered, parties.sender_organ,
                                  verdict.document_id, verdict.sender_system, now,
                                  receipt_xml)  # fmt: skip
        if not changed:  # confirmed before: one "delivered" receipt per recipient system
            return
        self._on_logged(1)
        await self._run(self._io, self.store.add_events, [event])
        await outbox.to_inbox(
            receipt_message(receipt_xml=receipt_xml, receipt_id=receipt.receipt_id,
                            consignment=receipt.message_id, event="delivered",
                            document_id=verdict.document_id),
            parties.sender_system,
        )  # fmt: skip

    async def _business(self, verdict: Accepted, outbox: Outbox) -> None:
        parties = verdict.parties
        assert parties is not None
        now = self._clock()
        receipt = status_receipt(verdict, parties, str(uuid.uuid4()), now)
        receipt_xml = await self._run(self._cpu, self.signer.sign, receipt)
        index = await self._run(self._io, lambda: self.store.log_receipt(
            receipt_xml, document_organ=parties.sender_organ, document_id=verdict.document_id,
            submitter=parties.sender_system, message_id=receipt.message_id,
            system_id=parties.sender_system, at=now))  # fmt: skip
        if index is not None:
            self._on_logged(1)
        await outbox.to_inbox(
            receipt_message(receipt_xml=receipt_xml, receipt_id=receipt.receipt_id,
                            consignment=receipt.message_id, event="status",
                            document_id=verdict.document_id, log_index=index,
                            status_code=receipt.status_code),
            parties.sender_system,
        )  # fmt: skip

    @staticmethod
    async def _run(executor: Executor, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)


async def make_heads_forever(evidence: EvidenceKeeper, io: Executor, interval: float) -> None:
    """Sign a tree head every ``interval`` seconds when the log grew, until cancelled; a
    failure is logged and tried again at the next tick."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        try:
            await loop.run_in_executor(io, evidence.make_head)
        except Exception:
            log.exception("signing a tree head failed; trying again in %.0f s", interval)
