"""Streamed attachments end to end: the SDK and the ``axis`` command against a real hub
on the real broker. A file goes up in chunks, the package references it, the recipient
gets the same bytes; an interrupted upload or download resumes with the chunks missing
only; a damaged chunk is refused."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from axis.attachment_store import attachment_store_for
from axis.client import chunk_rpc
from axis.client.agency import AgencyClient, InboxItem
from axis.client.chunk_rpc import ChunkRpc, HubLink, read_json_reply
from axis.client.download import FileDownload, read_sidecar
from axis.client.inbox_store import InboxStore
from axis.client.upload import FileUpload
from axis.errors import HubNotReady
from axis.files import file_sha256
from bench.bench_attachments import WITH_PEAK
from bench.peak_rss import peak_rss_bytes
from envelopes.attachment_refs import CHUNK_BYTES, AttachmentRef, reference_attachment
from envelopes.builder import document_from_metadata
from envelopes.model import Attachment, DocumentPackage
from routing.contract_attachments import (
    PUT_KEY,
    STATE_KEY,
    ChunkAddress,
    put_message,
    state_message,
)
from routing.errors import AttachmentDigestMismatch, AttachmentUnavailable
from routing.ports import AttachmentKeeper, PutOutcome
from tests.clikit import REPO, CliWorld, assert_error, fetch_until, organ
from tests.hubkit import HubKit

pytestmark = pytest.mark.rabbitmq

MB = 1_000_000


@pytest.fixture
def kit_db_url() -> None:
    """The store plays no part here: SQLite only."""
    return None


def big_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path`` block by block; their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for start in range(0, size, 4 * CHUNK_BYTES):
            block = os.urandom(min(4 * CHUNK_BYTES, size - start))
            digest.update(block)
            handle.write(block)
    return digest.hexdigest()


def package_with(sender: str, recipient: str, attachments: list[Attachment],
                 number: str = "1") -> DocumentPackage:  # fmt: skip
    today = date.today()
    return document_from_metadata({
        "from": {"organ_id": sender, "organ_name": f"Cơ quan {sender}"},
        "to": [{"organ_id": recipient, "organ_name": f"Cơ quan {recipient}"}],
        "document_id": f"{sender},{today:%Y/%m/%d},{number}/TEP",
        "code": {"number": number, "notation": "TEP"},
        "promulgation_date": today.isoformat(),
        "type_name": "Công văn",
        "subject": "V/v gửi tệp lớn",
    }, attachments)  # fmt: skip


async def send_accepted(client: AgencyClient, package: DocumentPackage) -> str:
    consignment = await client.send(client.sign(package))
    receipt = await client.wait_receipt(consignment, timeout=30)
    assert receipt.receipt.event == "accepted", receipt.receipt
    return consignment


def is_edoc(item: InboxItem) -> bool:
    return item.kind == "edoc"


# -- the SDK ----------------------------------------------------------------------------------


async def test_a_large_file_reaches_the_recipient_byte_identical(kit: HubKit,
                                                                 tmp_path: Path) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    source = tmp_path / "hồ sơ dự án.bin"
    digest = big_file(source, 50 * MB)
    small = tmp_path / "to-trinh.txt"
    small.write_bytes("Tờ trình".encode())
    uploads: list[FileUpload] = []
    sent_progress: list[tuple[str, int, int]] = []
    attachments = await a.client.attach_files(
        [small, source], inline_max=CHUNK_BYTES, uploads=uploads,
        progress=lambda *step: sent_progress.append(step))
    assert [att.attachment_name for att in attachments] == [small.name, source.name]
    assert attachments[1] == reference_attachment(AttachmentRef(source.name, 50 * MB, digest))
    [upload] = uploads
    assert (upload.held_before, upload.sent) == (0, 48)  # 50 MB = 47 chunks of 1 MiB + a rest
    assert sent_progress[-1] == (source.name, 50 * MB, 50 * MB)
    await send_accepted(a.client, package_with(a.organ_id, b.organ_id, attachments))

    inbox = InboxStore(tmp_path / "inbox-b", b.organ_id)
    got: list[tuple[str, int, int]] = []
    receiver = AgencyClient(b.profile.client_config(), download_dir=inbox.download_dir,
                            download_progress=lambda ref, done, total:
                            got.append((ref.sha256, done, total)))  # fmt: skip
    async with receiver:
        [item] = await _take_unacked(receiver)
        assert item.error is None and item.files.keys() == {digest}
        assert file_sha256(item.files[digest]) == digest
        assert got[-1] == (digest, 50 * MB, 50 * MB)
        meta = inbox.save(item)
        await item.ack()
    stored = tmp_path / "inbox-b" / meta["id"] / "attachments"
    entries = {e["name"]: e for e in meta["attachments"]}
    big = entries[source.name]
    assert (big["size"], big["sha256"], big["streamed"]) == (50 * MB, digest, True)
    assert big["file"] == "hồ_sơ_dự_án.bin"  # sanitised as inline attachments' names are
    assert file_sha256(stored / big["file"]) == digest
    assert (stored / entries[small.name]["file"]).read_bytes() == small.read_bytes()
    assert not any(inbox.download_dir.iterdir())  # moved into the item, nothing left behind


async def _take_unacked(client: AgencyClient, timeout: float = 30.0) -> list[InboxItem]:
    """The first document in the inbox, not acked yet."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        async for item in client.fetch():
            if is_edoc(item):
                return [item]
            await item.ack()
        await asyncio.sleep(0.1)
    raise AssertionError("no document arrived")


async def test_an_interrupted_upload_sends_only_the_missing_chunks(kit: HubKit,
                                                                   tmp_path: Path) -> None:
    a = await kit.agency(organ("A"))
    source = tmp_path / "so-lieu.bin"
    digest = big_file(source, 20 * CHUNK_BYTES + 5)  # 21 chunks
    first = FileUpload(a.client, source, window=2)
    task = asyncio.ensure_future(first.run())

    def stop_after_8(done: int, total: int) -> None:
        if first.sent >= 8:
            task.cancel()

    first.progress = stop_after_8
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 8 <= first.sent < 21

    again = FileUpload(a.client, source)
    ref = await again.run()
    assert ref == AttachmentRef(source.name, 20 * CHUNK_BYTES + 5, digest)
    # What the hub answered before the cancel, plus at most the window still in flight.
    assert first.sent <= again.held_before <= first.sent + 2
    assert again.sent == 21 - again.held_before
    done = FileUpload(a.client, source)
    await done.run()
    assert (done.held_before, done.sent) == (21, 0)  # whole at the hub: nothing sent


class FailingDisk:
    """The hub's attachment store, whose disk fails for the next ``failures`` chunk writes."""

    def __init__(self, keeper: AttachmentKeeper, failures: int) -> None:
        self.keeper, self.failures = keeper, failures
        self.max_bytes = keeper.max_bytes

    def put(self, owner: str, address: ChunkAddress, data: bytes) -> PutOutcome:
        if self.failures > 0:
            self.failures -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.keeper.put(owner, address, data)

    def state_of(self, owner: str, sha256: str, size: int) -> str:
        return self.keeper.state_of(owner, sha256, size)

    def held(self, owner: str, sha256: str, size: int) -> tuple[list[int], bool]:
        return self.keeper.held(owner, sha256, size)

    def grant(self, owner: str, sha256: str, recipients: Sequence[str]) -> None:
        self.keeper.grant(owner, sha256, recipients)

    def read_chunk(self, requester: str, address: ChunkAddress) -> bytes:
        return self.keeper.read_chunk(requester, address)

    def sweep(self, now: datetime | None = None) -> object:
        return self.keeper.sweep(now)


async def test_an_upload_rides_out_a_hub_disk_that_fails_for_a_moment(
    kit: HubKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunk_rpc, "UNAVAILABLE_PAUSES", (0.2, 0.2))
    a = await kit.agency(organ("A"))
    source = tmp_path / "ho-so.bin"
    digest = big_file(source, 5 * CHUNK_BYTES)
    await kit.stop_hub()
    disk = FailingDisk(attachment_store_for(kit.settings), failures=3)
    await kit.start_hub(attachments=disk)
    upload = FileUpload(a.client, source, window=2)
    assert (await upload.run()).sha256 == digest
    assert disk.failures == 0 and upload.sent == 5  # every chunk answered once stored

    # A disk that stays failed ends the upload with the hub's code, after the pauses.
    source.write_bytes(os.urandom(2 * CHUNK_BYTES))
    disk.failures = 1_000
    with pytest.raises(AttachmentUnavailable):
        await FileUpload(a.client, source, window=1).run()
    assert 1_000 - disk.failures == 3  # asked once, then once after each pause


async def test_an_interrupted_download_fetches_only_the_missing_chunks(kit: HubKit,
                                                                       tmp_path: Path) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    source = tmp_path / "ban-ve.bin"
    digest = big_file(source, 12 * CHUNK_BYTES + 1)  # 13 chunks
    attachments = await a.client.attach_files([source], inline_max=0)
    await send_accepted(a.client, package_with(a.organ_id, b.organ_id, attachments))
    ref = AttachmentRef(source.name, 12 * CHUNK_BYTES + 1, digest)
    folder = tmp_path / "downloads"

    async with ChunkRpc(b.client.connection) as rpc:
        first = FileDownload(rpc, b.organ_id, a.organ_id, ref, folder, window=2)
        task = asyncio.ensure_future(first.run())

        def stop_after_5(ref: AttachmentRef, done: int, total: int) -> None:
            if first.fetched >= 5:
                task.cancel()

        first.progress = stop_after_5
        with pytest.raises(asyncio.CancelledError):
            await task
        recorded = read_sidecar((folder / f"{digest}.held").read_bytes(), ref.chunks)
        # A chunk whose write was under way when the cancel came is on disk, not counted.
        assert 5 <= first.fetched <= len(recorded) <= first.fetched + 1 < 13
        again = FileDownload(rpc, b.organ_id, a.organ_id, ref, folder)
        path = await again.run()
    assert (again.held_before, again.fetched) == (len(recorded), 13 - len(recorded))
    assert path == folder / digest and file_sha256(path) == digest
    assert sorted(p.name for p in folder.iterdir()) == [digest]  # no part, no sidecar left

    receiver = AgencyClient(b.profile.client_config(), download_dir=folder)
    async with receiver:  # the item finds its file downloaded already
        [item] = await _take_unacked(receiver)
        assert item.files == {digest: path}
        await item.ack()


async def test_a_damaged_chunk_is_refused_and_not_kept(kit: HubKit, tmp_path: Path) -> None:
    a = await kit.agency(organ("A"))
    data = os.urandom(2 * CHUNK_BYTES)
    digest, size = hashlib.sha256(data).hexdigest(), len(data)

    def damaged(cid: str) -> Any:
        wire = put_message(system_id=a.organ_id, sha256=digest, size=size, index=1,
                           data=data[CHUNK_BYTES:], correlation_id=cid)  # fmt: skip
        flipped = bytes([wire.body[0] ^ 1]) + wire.body[1:]  # after its SHA-256 was taken
        return dataclasses.replace(wire, body=flipped)

    async with ChunkRpc(a.client.connection) as rpc:
        with pytest.raises(AttachmentDigestMismatch) as refused:
            read_json_reply(await rpc.call(damaged, PUT_KEY), index=1)
        state = read_json_reply(await rpc.call(lambda cid: state_message(
            system_id=a.organ_id, sha256=digest, size=size, correlation_id=cid), STATE_KEY))
    assert refused.value.code == "attachment.digest_mismatch"
    assert refused.value.detail["index"] == 1
    assert state["held"] == [] and state["complete"] is False


# -- the axis command -------------------------------------------------------------------------


def held_at_hub(profile: Path, sha256: str, size: int) -> int:
    """How many chunks of a file the hub holds for the profile's system (its state answer)."""
    from axis.client.profile import load_profile
    from axis.client.upload import held_in_state

    async def ask() -> int:
        prof = load_profile(profile)
        async with AgencyClient(prof.client_config()) as client, \
                ChunkRpc(client.connection) as rpc:  # fmt: skip
            reply = await rpc.call(lambda cid: state_message(
                system_id=prof.system_id, sha256=sha256, size=size, correlation_id=cid),
                STATE_KEY)  # fmt: skip
            return len(held_in_state(read_json_reply(reply)))

    return asyncio.run(ask())


def test_axis_send_streams_a_large_file_and_inbox_fetch_stores_it(world: CliWorld) -> None:
    a, b = world.agency(organ("A"), "Văn phòng"), world.agency(organ("B"), "UBND tỉnh")
    hub = world.start_hub()
    big, small = world.root / "bao-cao.pdf", world.root / "cong-van.txt"
    digest = big_file(big, 6 * MB)  # above the default 4 MiB: streamed
    small.write_bytes("Công văn".encode())
    sent = world.ok("send", "--to", b.organ_id, "--subject", "V/v báo cáo", "--code", "1/BC",
                    "--attach", big, "--attach", small, "--profile", a.profile,
                    "--out-dir", world.root / "sent", "--json").json()  # fmt: skip
    assert sent["event"] == "accepted", sent
    assert sent["attachments"] == [
        {"name": "bao-cao.pdf", "size": 6 * MB, "sha256": digest, "streamed": True,
         "chunks": 6, "chunks_sent": 6},
        {"name": "cong-van.txt", "size": small.stat().st_size,
         "sha256": hashlib.sha256(small.read_bytes()).hexdigest(), "streamed": False},
    ]  # fmt: skip

    inbox = world.root / "inbox-b"
    got = fetch_until(world, b.profile, inbox,
                      lambda items: any(i["kind"] == "edoc" for i in items))  # fmt: skip
    [doc] = [i for i in got if i["kind"] == "edoc"]
    assert doc["verified"] is True
    [streamed] = [e for e in doc["attachments"] if e.get("streamed")]
    assert (streamed["name"], streamed["size"], streamed["sha256"]) == ("bao-cao.pdf", 6 * MB,
                                                                        digest)  # fmt: skip
    assert file_sha256(inbox / doc["id"] / "attachments" / streamed["file"]) == digest
    meta = json.loads((inbox / doc["id"] / "meta.json").read_text(encoding="utf-8"))
    assert meta["attachments"] == doc["attachments"]
    assert world.stop_hub(hub) == 0, world.hub_log()


def test_a_killed_axis_send_resumes_with_the_chunks_missing_only(world: CliWorld) -> None:
    a, b = world.agency(organ("A"), "Văn phòng"), world.agency(organ("B"), "UBND tỉnh")
    world.start_hub()
    big = world.root / "du-lieu.bin"
    size = 96 * CHUNK_BYTES
    digest = big_file(big, size)
    args = ("send", "--to", b.organ_id, "--subject", "V/v dữ liệu", "--code", "2/DL",
            "--attach", big, "--profile", a.profile, "--out-dir", world.root / "sent",
            "--json")  # fmt: skip
    sender = subprocess.Popen([sys.executable, "-m", "cli", *map(str, args)], cwd=REPO,
                              env=world.env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while (seen := held_at_hub(a.profile, digest, size)) < 10:
            assert sender.poll() is None and time.monotonic() < deadline, "no chunk arrived"
            time.sleep(0.02)
    finally:
        sender.send_signal(signal.SIGKILL)
        sender.wait(timeout=10)
    assert seen < 96

    sent = world.ok(*args).json()
    assert sent["event"] == "accepted", sent
    [streamed] = sent["attachments"]
    assert (streamed["sha256"], streamed["chunks"]) == (digest, 96)
    assert 0 < streamed["chunks_sent"] <= 96 - seen  # what the hub held was not sent again


def test_axis_send_refuses_a_missing_too_large_or_misnamed_file_before_uploading(
        world: CliWorld) -> None:  # fmt: skip
    a = world.agency(organ("A"), "Văn phòng")  # nothing is sent: no hub, no recipient
    big = world.root / "lon.bin"
    big.write_bytes(os.urandom(3000))
    base = ("send", "--to", organ("B"), "--subject", "V/v", "--code", "3/X",
            "--profile", a.profile, "--json")  # fmt: skip
    missing = world.axis(*base, "--attach", world.root / "khong-co.pdf")
    assert_error(missing, "envelope.invalid_metadata", as_json=True)
    with a.profile.open("a", encoding="utf-8") as profile:
        profile.write("max_attachment_bytes = 2000\n")
    started = time.monotonic()
    refused = assert_error(world.axis(*base, "--attach", big), "attachment.too_large",
                           as_json=True)  # fmt: skip
    assert time.monotonic() - started < 20  # no hub runs: an upload would wait for answers
    assert (refused["size"], refused["limit"]) == (3000, 2000)
    # A name a reference cannot carry is refused before the files ahead of it are uploaded.
    first, odd = world.root / "dau.bin", world.root / "so\\lieu.bin"
    for path in (first, odd):
        path.write_bytes(os.urandom(1500))
    started = time.monotonic()
    named = assert_error(world.axis(*base, "--inline-max", "100", "--attach", first,
                                    "--attach", odd), "envelope.invalid_attachment",
                         as_json=True)  # fmt: skip
    assert time.monotonic() - started < 20 and "rename it" in named["reason"]


BIG_MB = int(os.environ.get("AXIS_TEST_BIG_MB", "1024"))  # the slow case's size
RSS_LIMIT = 128 * 1024 * 1024




def measured(world: CliWorld, *args: object) -> tuple[dict[str, Any], int]:
    """Run ``axis ARGS --json``; its JSON output and its peak resident memory in bytes."""
    peak = world.root / "peak-rss"
    run = subprocess.run([sys.executable, "-c", WITH_PEAK, str(peak), *map(str, args), "--json"],
                         cwd=REPO, env=world.env, capture_output=True, text=True, check=False,
                         timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stderr + run.stdout
    return json.loads(run.stdout), int(peak.read_text()) * 1024  # kB


@pytest.mark.parametrize("megabytes", [50, pytest.param(BIG_MB, marks=pytest.mark.slow)],
                         ids=["50MB", "big"])  # fmt: skip
def test_a_large_file_travels_with_bounded_memory(world: CliWorld, megabytes: int) -> None:
    """50 MB (``make test``), or ``AXIS_TEST_BIG_MB`` (default 1024) with AXIS_SLOW_TESTS=1,
    from A to B: neither `axis send` nor `axis inbox fetch` holds more than 128 MB
    resident, whatever the file's size."""
    a, b = world.agency(organ("A"), "Văn phòng"), world.agency(organ("B"), "UBND tỉnh")
    hub = world.start_hub()
    big, tiny = world.root / "lon.bin", world.root / "nho.txt"
    digest = big_file(big, megabytes * MB)
    tiny.write_bytes(b"baseline")
    send = ("send", "--to", b.organ_id, "--subject", "V/v", "--profile", a.profile,
            "--out-dir", world.root / "sent")  # fmt: skip
    _, baseline_send = measured(world, *send, "--code", "4/N", "--attach", tiny)
    sent, send_rss = measured(world, *send, "--code", "5/L", "--attach", big)
    assert sent["event"] == "accepted" and sent["attachments"][0]["sha256"] == digest
    inbox = world.root / "inbox-b"
    fetched, fetch_rss = measured(world, "inbox", "fetch", "--to", inbox, "--profile", b.profile)
    while not any(e.get("attachments") and e["attachments"][0]["size"] > MB
                  for e in fetched["fetched"]):  # fmt: skip
        more, rss = measured(world, "inbox", "fetch", "--to", inbox, "--profile", b.profile)
        fetched["fetched"] += more["fetched"]
        fetch_rss = max(fetch_rss, rss)
    [doc] = [e for e in fetched["fetched"] if e.get("attachments")
             and e["attachments"][0]["size"] > MB]  # fmt: skip
    assert file_sha256(inbox / doc["id"] / "attachments" / doc["attachments"][0]["file"]) == digest
    hub_rss = peak_rss_bytes(hub.pid)
    print(f"\n{megabytes} MB: peak RSS send {send_rss / 2**20:.1f} MiB (baseline with a tiny "
          f"file {baseline_send / 2**20:.1f} MiB), fetch {fetch_rss / 2**20:.1f} MiB, "
          f"hub {hub_rss / 2**20:.1f} MiB")
    assert send_rss <= RSS_LIMIT and fetch_rss <= RSS_LIMIT and hub_rss <= RSS_LIMIT


async def test_without_a_hub_serving_attachments_an_upload_fails_at_once(
        amqp_base_url: str, private_vhost: str, tmp_path: Path) -> None:  # fmt: skip
    """Chunks nobody takes come back from the broker (mandatory): a coded error, no wait."""
    import aio_pika

    from routing.contract import QUERY_EXCHANGE
    from tests.hubkit import vhost_url

    source = tmp_path / "f.bin"
    big_file(source, CHUNK_BYTES + 1)
    connection = await aio_pika.connect_robust(vhost_url(amqp_base_url, private_vhost))
    try:
        channel = await connection.channel()
        await channel.declare_exchange(QUERY_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
        config = SimpleNamespace(system_id="guest", max_attachment_bytes=2**30)
        link = cast(HubLink, SimpleNamespace(config=config, connection=connection))
        started = time.monotonic()
        with pytest.raises(HubNotReady):
            await FileUpload(link, source).run()
        assert time.monotonic() - started < 5
    finally:
        await connection.close()
