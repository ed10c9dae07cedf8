"""The SDK's streamed-attachment parts that need no broker: planning which chunks to send
or fetch, the download's sidecar and part file, chunk checks, the hub's codes, the inbox
folder of an item with a streamed file, and the profile's limits."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import cast

import pytest

from axis.client.agency import InboxItem
from axis.client.chunk_rpc import ChunkRpc, Reply, read_json_reply, remote_error, run_window
from axis.client.config import INLINE_ATTACHMENT_MAX, MAX_ATTACHMENT_BYTES
from axis.client.download import (
    FileDownload,
    PartFile,
    chunk_problem,
    default_download_dir,
    read_sidecar,
)
from axis.client.inbox_store import InboxStore
from axis.client.profile import load_profile, profile_toml
from axis.client.upload import (
    bytes_of,
    check_files,
    file_digest,
    held_in_state,
    missing_chunks,
)
from axis.commands.progress import Bars, progress_wanted
from axis.errors import InvalidSettings
from envelopes.attachment_refs import CHUNK_BYTES, AttachmentRef, reference_attachment
from envelopes.builder import attachment_from_bytes, document_from_metadata
from envelopes.errors import InvalidAttachment, InvalidMetadata
from envelopes.model import Attachment, DocumentPackage
from routing.contract import JSON, WireMessage
from routing.contract_attachments import (
    H_CHUNK_SHA256,
    H_INDEX,
    OCTETS,
    held_ranges,
    state_answer,
)
from routing.errors import (
    AttachmentDigestMismatch,
    AttachmentQuotaExceeded,
    AttachmentTooLarge,
    InvalidChunk,
    QueryRefused,
)

# -- planning ---------------------------------------------------------------------------------


def test_only_the_chunks_the_hub_lacks_are_planned() -> None:
    size = 9 * CHUNK_BYTES + 10  # 10 chunks, the last of 10 bytes
    answer = state_answer(sha256="a" * 64, size=size, held=[0, 1, 2, 5, 9], complete=False)
    assert answer["held"] == [[0, 2], [5, 5], [9, 9]]
    held = held_in_state(answer)
    assert held == {0, 1, 2, 5, 9}
    assert missing_chunks(10, held) == [3, 4, 6, 7, 8]
    assert bytes_of(size, held) == 4 * CHUNK_BYTES + 10  # the short last chunk counts as 10
    assert missing_chunks(10, range(10)) == [] and missing_chunks(1, []) == [0]


def test_a_state_without_held_ranges_holds_nothing() -> None:
    assert held_in_state({"ok": True}) == set() and held_in_state({"held": "junk"}) == set()
    assert held_in_state({"held": held_ranges([7, 3, 4])}) == {3, 4, 7}


# -- the download's sidecar and part file -----------------------------------------------------


def test_the_sidecar_ignores_a_torn_last_line_and_indices_out_of_range() -> None:
    assert read_sidecar(b"0\n3\n3\n2\n", 4) == {0, 2, 3}
    assert read_sidecar(b"0\n1\n2", 4) == {0, 1}  # "2" was being written when it stopped
    assert read_sidecar(b"0\n7\n-1\nx\n\n 1 \n", 4) == {0, 1}
    assert read_sidecar(b"", 4) == set()


def _ref_for(data: bytes, name: str = "ho-so.bin") -> AttachmentRef:
    return AttachmentRef(name, len(data), hashlib.sha256(data).hexdigest())


def test_a_part_file_resumes_from_its_sidecar_and_ends_renamed(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_BYTES + 3)
    ref = _ref_for(data)
    part = PartFile(tmp_path, ref)
    assert part.open() == set()
    part.write(2, data[2 * CHUNK_BYTES:])
    part.write(0, data[:CHUNK_BYTES])
    part.close()

    again = PartFile(tmp_path, ref)
    assert again.open() == {0, 2}
    again.write(1, data[CHUNK_BYTES:2 * CHUNK_BYTES])
    final = again.finish()
    assert final == tmp_path / ref.sha256 and final.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == [ref.sha256]


def test_a_part_that_does_not_hash_to_the_signed_sha256_is_deleted(tmp_path: Path) -> None:
    data = os.urandom(CHUNK_BYTES + 1)
    ref = _ref_for(data)
    part = PartFile(tmp_path, ref)
    part.open()
    part.write(0, data[:CHUNK_BYTES])
    part.write(1, b"X")  # not the byte that was signed
    with pytest.raises(AttachmentDigestMismatch):
        part.finish()
    assert list(tmp_path.iterdir()) == []


def test_a_sidecar_without_its_part_records_nothing(tmp_path: Path) -> None:
    data = os.urandom(10)
    ref = _ref_for(data)
    (tmp_path / f"{ref.sha256}.held").write_bytes(b"0\n")
    part = PartFile(tmp_path, ref)
    assert part.open() == set()
    part.close()


def _reply(body: bytes, index: str, digest: str | None = None) -> Reply:
    digest = hashlib.sha256(body).hexdigest() if digest is None else digest
    return Reply(body, OCTETS, {H_INDEX: index, H_CHUNK_SHA256: digest})


def test_a_chunk_answer_is_checked_for_index_length_and_sha256() -> None:
    data = os.urandom(CHUNK_BYTES + 5)
    ref = _ref_for(data)
    assert chunk_problem(ref, 1, _reply(data[CHUNK_BYTES:], "1")) is None
    assert isinstance(chunk_problem(ref, 1, _reply(data[CHUNK_BYTES:], "0")), InvalidChunk)
    assert isinstance(chunk_problem(ref, 1, _reply(data[CHUNK_BYTES + 1:], "1")), InvalidChunk)
    damaged = chunk_problem(ref, 0, _reply(data[:CHUNK_BYTES], "0", "0" * 64))
    assert isinstance(damaged, AttachmentDigestMismatch) and damaged.detail["index"] == 0


class _Hub:
    """Answers ``attachment.get`` with the chunks of ``data``, recording what was asked."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.asked: list[int] = []

    async def call(self, make: Callable[[str], WireMessage], routing_key: str) -> Reply:
        index = int(make("cid").headers[H_INDEX])
        self.asked.append(index)
        return _reply(self.data[index * CHUNK_BYTES:(index + 1) * CHUNK_BYTES], str(index))


async def test_a_file_found_already_downloaded_is_checked_against_the_signed_sha256(
        tmp_path: Path) -> None:  # fmt: skip
    data = os.urandom(2 * CHUNK_BYTES + 3)
    ref = _ref_for(data)
    hub = _Hub(data)
    found = tmp_path / ref.sha256
    found.write_bytes(data)  # left by an earlier run: used as it is
    download = FileDownload(cast(ChunkRpc, hub), "B", "A", ref, tmp_path)
    assert await download.run() == found and hub.asked == []

    found.write_bytes(os.urandom(len(data)))  # the right size, not the bytes that were signed
    path = await FileDownload(cast(ChunkRpc, hub), "B", "A", ref, tmp_path).run()
    assert path == found and path.read_bytes() == data
    assert sorted(hub.asked) == [0, 1, 2]  # fetched again, not handed over unchecked


# -- the hub's answers ------------------------------------------------------------------------


def test_the_hubs_refusal_keeps_its_code() -> None:
    refusal = {"ok": False, "error": {"code": "attachment.quota_exceeded", "reason": "full"}}
    reply = Reply(json.dumps(refusal).encode(), JSON, {})
    with pytest.raises(AttachmentQuotaExceeded) as refused:
        read_json_reply(reply, index=4)
    assert (refused.value.reason, refused.value.detail["index"]) == ("full", 4)
    other = remote_error(QueryRefused("no", remote_code="sender.unknown_system"))
    assert isinstance(other, QueryRefused)
    assert other.detail["remote_code"] == "sender.unknown_system"
    assert read_json_reply(Reply(b'{"ok": true, "complete": true}', JSON, {}))["complete"]


async def test_the_window_bounds_the_work_in_flight_and_stops_at_the_first_failure() -> None:
    running, peak, done = 0, 0, []

    async def work(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        if item == 5:
            raise InvalidChunk("chunk 5")
        done.append(item)

    with pytest.raises(InvalidChunk):
        await run_window(3, range(100), work)
    assert peak == 3 and len(done) < 20  # stopped soon after item 5 failed
    done.clear()
    await run_window(4, [1, 2, 3], work)
    assert sorted(done) == [1, 2, 3]


# -- files -------------------------------------------------------------------------------------


async def test_a_file_is_hashed_as_a_stream(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    data = os.urandom(9 * 1024 * 1024 + 7)
    path.write_bytes(data)
    seen: list[int] = []
    assert await file_digest(path, lambda done, total: seen.append(done)) == (
        len(data), hashlib.sha256(data).hexdigest())  # fmt: skip
    assert seen[-1] == len(data) and len(seen) == 3  # blocks of 4 MiB


def test_missing_unreadable_and_too_large_files_are_refused_up_front(tmp_path: Path) -> None:
    ok, big = tmp_path / "ok.txt", tmp_path / "big.bin"
    ok.write_bytes(b"12345")
    big.write_bytes(b"x" * 101)
    assert check_files([ok], 100) == [5]
    with pytest.raises(InvalidMetadata, match="does not exist"):
        check_files([ok, tmp_path / "none.pdf"], 100)
    with pytest.raises(InvalidMetadata, match="not a regular file"):
        check_files([tmp_path], 100)
    with pytest.raises(AttachmentTooLarge) as refused:
        check_files([ok, big], 100)
    assert refused.value.detail["size"] == 101 and refused.value.detail["limit"] == 100
    if os.geteuid() != 0:  # root reads anything
        ok.chmod(0)
        with pytest.raises(InvalidMetadata, match="permission denied"):
            check_files([ok], 100)


# -- the inbox folder -------------------------------------------------------------------------


def _document_with(attachments: list[Attachment]) -> DocumentPackage:
    today = date.today()
    return document_from_metadata({
        "from": {"organ_id": "000.00.00.G22", "organ_name": "VPCP"},
        "to": [{"organ_id": "000.00.00.H41", "organ_name": "UBND"}],
        "document_id": f"000.00.00.G22,{today:%Y/%m/%d},1/TEP",
        "code": {"number": "1", "notation": "TEP"},
        "promulgation_date": today.isoformat(),
        "subject": "V/v tệp lớn",
    }, attachments)  # fmt: skip


def test_the_inbox_moves_a_streamed_file_into_the_item_under_its_name(tmp_path: Path) -> None:
    store = InboxStore(tmp_path / "inbox", "000.00.00.H41")
    data = os.urandom(3000)
    ref = _ref_for(data, "Báo cáo/2026.pdf")  # a name a reference may not carry
    with pytest.raises(InvalidAttachment, match="unusable file name"):
        reference_attachment(ref)
    ref = _ref_for(data, "Báo cáo 2026.pdf")
    store.download_dir.mkdir(parents=True)
    downloaded = store.download_dir / ref.sha256
    downloaded.write_bytes(data)
    inline = attachment_from_bytes("to-trinh.txt", b"inline")
    copy = AttachmentRef("Bản sao.pdf", ref.size, ref.sha256)  # the same bytes, another name
    package = _document_with([inline, reference_attachment(ref), reference_attachment(copy)])
    item = InboxItem(kind="edoc", body=b"<edXML/>", message_id="m-1", headers={},
                     package=package, files={ref.sha256: downloaded})

    meta = store.save(item)
    folder = tmp_path / "inbox" / "m-1" / "attachments"
    inline_entry, streamed, again = meta["attachments"]
    assert inline_entry == {"name": "to-trinh.txt", "sha256": inline.sha256, "size": 6,
                            "file": "to-trinh.txt"}  # fmt: skip
    assert streamed == {"name": "Báo cáo 2026.pdf", "sha256": ref.sha256, "size": 3000,
                        "content_type": "application/octet-stream", "streamed": True,
                        "file": "Báo_cáo_2026.pdf"}  # fmt: skip
    assert again["file"] == "Bản_sao.pdf"  # one download, stored under both names
    assert (folder / streamed["file"]).read_bytes() == data
    assert (folder / again["file"]).read_bytes() == data
    assert not downloaded.exists()  # moved in: nothing left in the download folder
    stored = json.loads((tmp_path / "inbox" / "m-1" / "meta.json").read_text(encoding="utf-8"))
    assert stored["attachments"] == meta["attachments"]
    assert store.known_ids() == {"m-1"}  # the download folder is not an item


def test_a_streamed_file_that_could_not_be_downloaded_is_listed_without_a_file(
        tmp_path: Path) -> None:  # fmt: skip
    store = InboxStore(tmp_path / "inbox")
    ref = _ref_for(b"never came")
    item = InboxItem(kind="edoc", body=b"<edXML/>", message_id="m-2", headers={},
                     package=_document_with([reference_attachment(ref)]))
    [entry] = store.save(item)["attachments"]
    assert entry["file"] is None and entry["sha256"] == ref.sha256
    assert list((tmp_path / "inbox" / "m-2" / "attachments").iterdir()) == []


# -- the profile and the command line ---------------------------------------------------------


PROFILE = profile_toml({"system_id": "000.00.00.G22", "amqp_url": "amqp://127.0.0.1:5672/",
                        "password": "p", "key": "k.key", "cert": "c.pem", "hub_cert": "hub.pem",
                        "ca": "ca.pem"})  # fmt: skip


def test_the_profile_sets_the_inline_and_maximum_sizes(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(PROFILE)
    default = load_profile(path)
    assert (default.inline_attachment_max, default.max_attachment_bytes) == (
        INLINE_ATTACHMENT_MAX, MAX_ATTACHMENT_BYTES) == (4 * 2**20, 2 * 2**30)  # fmt: skip
    path.write_text(PROFILE + "inline_attachment_max = 0\nmax_attachment_bytes = 1000\n")
    assert (load_profile(path).inline_attachment_max, load_profile(path).max_attachment_bytes) \
        == (0, 1000)  # fmt: skip
    path.write_text(PROFILE + 'inline_attachment_max = "4M"\n')
    with pytest.raises(InvalidSettings, match="inline_attachment_max"):
        load_profile(path)


def test_progress_bars_only_for_a_person_at_a_terminal(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert progress_wanted(False, False)
    assert not progress_wanted(True, False) and not progress_wanted(False, True)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not progress_wanted(False, False)
    with Bars(False) as bars:
        bars.update("k", "uploading", 5, 10)
    assert capsys.readouterr().err == ""
    with Bars(True) as bars:
        bars.update("k", "uploading ho-so.pdf", 5, 10)
    assert "uploading ho-so.pdf" in capsys.readouterr().err


def test_the_default_download_folder_is_the_users_own_and_private(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = default_download_dir("000.00.00.G22")
    assert folder == tmp_path / "cache" / "axis" / "downloads" / "000_00_00_G22"
    ref = AttachmentRef("a.bin", 10, hashlib.sha256(b"x").hexdigest())
    part = PartFile(folder, ref)
    part.open()
    part.close()
    assert folder.stat().st_mode & 0o777 == 0o700  # other local users can neither read nor swap

