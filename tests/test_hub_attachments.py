"""Streamed attachments at the hub: the store on disk, the decision's rule, and the wire
(chunks in, chunks out, coded refusals) on the real broker through raw AMQP."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import pytest

from axis.attachment_store import AttachmentStore
from envelopes.attachment_refs import (
    CHUNK_BYTES,
    AttachmentRef,
    chunk_count,
    reference_attachment,
)
from routing.amqp import amqp_message
from routing.contract import DIRECT_REPLY_TO, QUERY_EXCHANGE, WireMessage
from routing.contract_attachments import (
    ChunkAddress,
    get_message,
    held_ranges,
    put_message,
    state_message,
)
from routing.errors import (
    AttachmentDigestMismatch,
    AttachmentIncomplete,
    AttachmentNotFound,
    AttachmentQuotaExceeded,
    AttachmentTooLarge,
    InvalidChunk,
)
from tests.clikit import organ
from tests.hubkit import Agency, HubKit, document

SHA = hashlib.sha256


def file_of(size: int, seed: int = 1) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size] if seed == 1 else os.urandom(size)


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]


def address(data: bytes, index: int, owner: str = "") -> ChunkAddress:
    return ChunkAddress(SHA(data).hexdigest(), len(data), index, owner)


def new_store(tmp_path: Path, **limits: Any) -> AttachmentStore:
    values: dict[str, Any] = {"max_bytes": 64 * CHUNK_BYTES, "quota_bytes": 64 * CHUNK_BYTES,
                              "retention_seconds": 3600.0, "abandon_seconds": 3600.0}
    values.update(limits)
    return AttachmentStore(tmp_path / "attachments", **values)


# -- the store -------------------------------------------------------------------------------


def test_chunks_in_any_order_and_again_make_the_checked_file(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    data = file_of(3 * CHUNK_BYTES + 17)
    parts = chunks_of(data)
    for index in (3, 0, 0, 2):
        outcome = store.put("S1", address(data, index), parts[index])
        assert not outcome.complete
    assert store.held("S1", SHA(data).hexdigest(), len(data)) == ([0, 2, 3], False)
    assert store.state_of("S1", SHA(data).hexdigest(), len(data)) == "partial"
    assert store.usage() == {"files": 0, "file_bytes": 0, "uploads": 1, "upload_bytes": len(data)}
    assert store.put("S1", address(data, 1), parts[1]).complete
    assert store.usage() == {"files": 1, "file_bytes": len(data), "uploads": 0, "upload_bytes": 0}
    assert store.state_of("S1", SHA(data).hexdigest(), len(data)) == "complete"
    assert store.put("S1", address(data, 2), parts[2]).complete  # harmless afterwards
    store.grant("S1", SHA(data).hexdigest(), ["R1"])
    got = b"".join(store.read_chunk("R1", address(data, i, "S1")) for i in range(4))
    assert got == data


def test_a_file_that_does_not_hash_to_its_name_is_discarded(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    data = file_of(2 * CHUNK_BYTES)
    wrong = ChunkAddress(SHA(b"other").hexdigest(), len(data), 0)
    store.put("S1", wrong, chunks_of(data)[0])
    with pytest.raises(AttachmentDigestMismatch):
        store.put("S1", ChunkAddress(wrong.sha256, len(data), 1), chunks_of(data)[1])
    assert store.state_of("S1", wrong.sha256, len(data)) == "mismatch"
    assert store.held("S1", wrong.sha256, len(data)) == ([], False)
    assert store.used_bytes("S1") == 0


def test_limits_quota_and_a_changed_size_are_refused(tmp_path: Path) -> None:
    store = new_store(tmp_path, max_bytes=2 * CHUNK_BYTES, quota_bytes=3 * CHUNK_BYTES)
    big = file_of(2 * CHUNK_BYTES + 1)
    with pytest.raises(AttachmentTooLarge):
        store.put("S1", address(big, 0), chunks_of(big)[0])
    first, second = file_of(2 * CHUNK_BYTES), file_of(2 * CHUNK_BYTES, seed=2)
    store.put("S1", address(first, 0), chunks_of(first)[0])
    with pytest.raises(AttachmentQuotaExceeded):
        store.put("S1", address(second, 0), chunks_of(second)[0])
    store.put("S2", address(second, 0), chunks_of(second)[0])  # quotas are per system
    shorter = ChunkAddress(SHA(first).hexdigest(), CHUNK_BYTES, 0)
    with pytest.raises(InvalidChunk):
        store.put("S1", shorter, chunks_of(first)[0])


def test_only_granted_systems_and_the_owner_read_a_file(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    data = file_of(100)
    store.put("S1", address(data, 0), data)
    store.grant("S1", SHA(data).hexdigest(), ["R1"])
    assert store.read_chunk("S1", address(data, 0, "S1")) == data
    for asker, owner in (("R2", "S1"), ("R1", "S2"), ("R1", "")):
        with pytest.raises(AttachmentNotFound):
            store.read_chunk(asker, address(data, 0, owner))


def test_a_file_no_longer_whole_is_not_granted(tmp_path: Path) -> None:
    store = new_store(tmp_path, abandon_seconds=60.0)
    data = file_of(100)
    store.put("S1", address(data, 0), data)
    store.sweep(datetime.now(UTC) + timedelta(seconds=120))  # whole but never granted: swept
    with pytest.raises(AttachmentIncomplete):
        store.grant("S1", SHA(data).hexdigest(), ["R1"])
    with pytest.raises(AttachmentNotFound):
        store.read_chunk("R1", address(data, 0, "S1"))


def test_sweep_drops_idle_uploads_and_files_past_retention(tmp_path: Path) -> None:
    store = new_store(tmp_path, retention_seconds=60.0, abandon_seconds=120.0)
    kept, idle = file_of(100), file_of(2 * CHUNK_BYTES, seed=2)
    store.put("S1", address(kept, 0), kept)
    store.grant("S1", SHA(kept).hexdigest(), ["R1"])
    store.put("S1", address(idle, 0), chunks_of(idle)[0])
    now = datetime.now(UTC)
    nothing = store.sweep(now + timedelta(seconds=30))
    assert (nothing.expired, nothing.abandoned) == (0, 0)
    swept = store.sweep(now + timedelta(seconds=90))
    assert (swept.expired, swept.abandoned) == (1, 0)
    assert store.state_of("S1", SHA(kept).hexdigest(), len(kept)) == "missing"
    swept = store.sweep(now + timedelta(seconds=200))
    assert (swept.expired, swept.abandoned) == (0, 1)
    assert store.used_bytes("S1") == 0


def test_a_hostile_system_name_stays_inside_the_folder(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    data = file_of(10)
    store.put("../../etc", address(data, 0), data)
    inside = [p.relative_to(store.root) for p in store.root.rglob("*.bin")]
    assert len(inside) == 1 and ".." not in inside[0].parts


def test_an_unsafe_system_name_gets_a_folder_no_other_system_has(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    data = file_of(10)
    store.put("a b", address(data, 0), data)
    # The folder "a b" maps to, claimed as a system name: hashed again, not that folder.
    hostile = "_" + SHA(b"a b").hexdigest()
    assert store.state_of("a b", SHA(data).hexdigest(), len(data)) == "complete"
    assert store.state_of(hostile, SHA(data).hexdigest(), len(data)) == "missing"
    store.grant("a b", SHA(data).hexdigest(), ["R 1"])
    with pytest.raises(AttachmentNotFound):  # one grant line, not the systems "R" and "1"
        store.read_chunk("R", address(data, 0, "a b"))
    assert store.read_chunk("R 1", address(data, 0, "a b")) == data


def test_the_sweep_leaves_nothing_of_refused_and_discarded_uploads(tmp_path: Path) -> None:
    store = new_store(tmp_path, quota_bytes=CHUNK_BYTES, abandon_seconds=60.0)
    kept, big = file_of(100), file_of(2 * CHUNK_BYTES)
    store.put("S1", address(kept, 0), kept)
    store.grant("S1", SHA(kept).hexdigest(), ["R1"])
    with pytest.raises(AttachmentQuotaExceeded):
        store.put("S1", address(big, 0), chunks_of(big)[0])
    wrong = ChunkAddress(SHA(b"other").hexdigest(), 10, 0)
    with pytest.raises(AttachmentDigestMismatch):
        store.put("S1", wrong, file_of(10))
    before = sorted(p.name for p in (store.root / "S1").iterdir())
    store.sweep(datetime.now(UTC) + timedelta(seconds=120))
    after = sorted(p.name for p in (store.root / "S1").iterdir())
    assert len(before) > len(after)
    assert all(name.startswith(SHA(kept).hexdigest()) or name == "quota" for name in after)
    assert store.read_chunk("R1", address(kept, 0, "S1")) == kept


def test_concurrent_new_uploads_stay_within_the_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store(tmp_path, quota_bytes=3 * CHUNK_BYTES)
    counted = store.used_bytes

    def slow_count(owner: str) -> int:  # widens the window between counting and beginning
        used = counted(owner)
        time.sleep(0.2)
        return used

    monkeypatch.setattr(store, "used_bytes", slow_count)
    files = [file_of(2 * CHUNK_BYTES), file_of(2 * CHUNK_BYTES, seed=2)]

    def begin(data: bytes) -> str:
        try:
            store.put("S1", address(data, 0), chunks_of(data)[0])
        except AttachmentQuotaExceeded as error:
            return error.code
        return "ok"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(begin, files))
    assert outcomes == ["attachment.quota_exceeded", "ok"]
    assert counted("S1") == 2 * CHUNK_BYTES


def test_held_ranges_are_compact() -> None:
    assert held_ranges([5, 0, 1, 2, 7, 6, 1]) == [[0, 2], [5, 7]]


# -- on the wire -----------------------------------------------------------------------------


class RawRpc:
    """A system's own AMQP connection speaking the attachment contract (no SDK)."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection,
                 channel: aio_pika.abc.AbstractChannel) -> None:  # fmt: skip
        self.connection, self.channel = connection, channel
        self.answers: dict[str, asyncio.Future[aio_pika.abc.AbstractIncomingMessage]] = {}

    @classmethod
    async def open(cls, kit: HubKit, agency: Agency) -> RawRpc:
        parts = urlsplit(kit.settings.amqp_url)
        netloc = (f"{quote(agency.organ_id, safe='')}:"
                  f"{quote(agency.registration['amqp_password'], safe='')}@{parts.hostname}:"
                  f"{parts.port or 5672}")  # fmt: skip
        url = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        connection = await aio_pika.connect(url)
        rpc = cls(connection, await connection.channel())
        replies = await rpc.channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await replies.consume(rpc._on_answer, no_ack=True)
        return rpc

    async def _on_answer(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        waiting = self.answers.pop(message.correlation_id or "", None)
        if waiting is not None and not waiting.done():
            waiting.set_result(message)

    async def ask(self, wire: WireMessage) -> aio_pika.abc.AbstractIncomingMessage:
        assert wire.correlation_id
        future = asyncio.get_running_loop().create_future()
        self.answers[wire.correlation_id] = future
        exchange = await self.channel.get_exchange(QUERY_EXCHANGE, ensure=False)
        await exchange.publish(amqp_message(wire), routing_key=str(wire.type))
        return await asyncio.wait_for(future, 15)

    async def ask_json(self, wire: WireMessage) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads((await self.ask(wire)).body)
        return answer


def _cid() -> str:
    return str(uuid.uuid4())


async def upload(rpc: RawRpc, system: str, data: bytes, indices: range | list[int]) -> list[Any]:
    sha = SHA(data).hexdigest()
    parts = chunks_of(data)
    return [await rpc.ask_json(put_message(system_id=system, sha256=sha, size=len(data),
                                           index=i, data=parts[i], correlation_id=_cid()))
            for i in indices]  # fmt: skip


@pytest.mark.rabbitmq
async def test_a_streamed_file_goes_from_sender_to_recipient_through_the_hub(
    kit: HubKit,
) -> None:
    a, b, c = (await kit.agency(organ("A")), await kit.agency(organ("B")),
               await kit.agency(organ("C")))  # fmt: skip
    rpc_a, rpc_b, rpc_c = (await RawRpc.open(kit, a), await RawRpc.open(kit, b),
                           await RawRpc.open(kit, c))  # fmt: skip
    data = file_of(2 * CHUNK_BYTES + 1000, seed=2)
    sha = SHA(data).hexdigest()
    ref = AttachmentRef("ho-so.pdf", len(data), sha, "application/pdf")
    package = document(a.organ_id, [b.organ_id])
    package = dataclasses.replace(package, attachments=(reference_attachment(ref),))

    # The package before its file: refused as incomplete, the consignment id stays usable.
    consignment = await a.client.send(a.client.sign(package))
    early = await a.client.wait_receipt(consignment, 15)
    assert early.receipt.error_code == "attachment.incomplete"

    answers = await upload(rpc_a, a.organ_id, data, [2, 0])
    assert [x["complete"] for x in answers] == [False, False]
    state = await rpc_a.ask_json(state_message(system_id=a.organ_id, sha256=sha, size=len(data),
                                               correlation_id=_cid()))  # fmt: skip
    assert state["held"] == [[0, 0], [2, 2]] and not state["complete"]
    corrupt = put_message(system_id=a.organ_id, sha256=sha, size=len(data), index=1,
                          data=chunks_of(data)[1], correlation_id=_cid())  # fmt: skip
    corrupt = dataclasses.replace(corrupt, body=b"\0" + chunks_of(data)[1][1:])
    refused = await rpc_a.ask_json(corrupt)
    assert refused["error"]["code"] == "attachment.digest_mismatch"
    assert refused["error"]["index"] == 1
    proof = a.client.verify_receipt(refused["receipt"].encode()).receipt  # signed by the hub
    assert (proof.event, proof.kind, proof.error_code, proof.message_id, proof.sender_system) \
        == ("rejected", "attachment", "attachment.digest_mismatch", f"{sha}/1", a.organ_id)
    assert proof.package_sha256 == SHA(corrupt.body).hexdigest()
    (last,) = await upload(rpc_a, a.organ_id, data, [1])
    assert last["complete"] and last["held"] == 3

    await a.client.send(a.client.sign(package), message_id=consignment)
    receipt = early
    for _ in range(100):  # the stored refusal until the hub has taken the second copy
        receipt = await a.client.wait_receipt(consignment, 15)
        if receipt.receipt.event == "accepted":
            break
        await asyncio.sleep(0.1)
    assert receipt.receipt.event == "accepted", receipt.receipt
    assert [(r.sha256, r.size) for r in receipt.receipt.attachments] == [(sha, len(data))]

    def get(rpc: RawRpc, system: str, index: int) -> WireMessage:
        return get_message(system_id=system, owner=a.organ_id, sha256=sha, size=len(data),
                           index=index, correlation_id=_cid())  # fmt: skip

    got = [await rpc_b.ask(get(rpc_b, b.organ_id, i)) for i in range(chunk_count(len(data)))]
    assert b"".join(bytes(m.body) for m in got) == data
    assert all(m.headers["axis-chunk-sha256"] == SHA(m.body).hexdigest() for m in got)
    stranger = json.loads((await rpc_c.ask(get(rpc_c, c.organ_id, 0))).body)
    unknown = json.loads((await rpc_b.ask(get_message(
        system_id=b.organ_id, owner=a.organ_id, sha256="0" * 64, size=len(data), index=0,
        correlation_id=_cid()))).body)  # fmt: skip
    assert stranger["error"]["code"] == unknown["error"]["code"] == "attachment.not_found"
    metrics = kit.metrics.registry.get_sample_value
    assert metrics("axis_attachment_requests_total",
                   {"request": "put", "outcome": "attachment.digest_mismatch"}) == 1
    assert metrics("axis_attachment_requests_total", {"request": "put", "outcome": "ok"}) == 3
    assert metrics("axis_attachment_requests_total",
                   {"request": "get", "outcome": "attachment.not_found"}) == 2
    assert metrics("axis_attachment_bytes_total", {"direction": "in"}) == len(data)
    assert metrics("axis_attachment_bytes_total", {"direction": "out"}) == len(data)
    for rpc in (rpc_a, rpc_b, rpc_c):
        await rpc.connection.close()
