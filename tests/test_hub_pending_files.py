"""The hub's edge around the pure decision for streamed attachments: the disk check of a
document naming files, and a refused chunk's answer when its receipt cannot be signed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from axis.attachment_store import AttachmentStore
from envelopes.attachment_refs import CHUNK_BYTES, AttachmentRef, reference_attachment
from routing.attachment_check import checked_files
from routing.contract import WireMessage
from routing.contract_attachments import PUT_KEY, put_message
from routing.decide import Accepted, Delivery, NeedsFiles, Rejected, Submission
from routing.hub_attachments import RefusalSigner, answer_request
from routing.values import Receipt
from tests.hubkit import document


class View:
    def __init__(self, states: Mapping[str, str], max_bytes: int = 2**31) -> None:
        self.states = states
        self.max_bytes = max_bytes
        self.asked: list[str] = []

    def state_of(self, owner: str, sha256: str, size: int) -> str:
        self.asked.append(owner)
        return self.states.get(f"{owner}/{sha256}", "missing")


def pending_document() -> tuple[NeedsFiles, AttachmentRef]:
    ref = AttachmentRef("ban-do.tif", 3 * CHUNK_BYTES, hashlib.sha256(b"x").hexdigest())
    package = dataclasses.replace(document("000.00.00.A01", ["000.00.00.B01"]),
                                  attachments=(reference_attachment(ref),))  # fmt: skip
    sub = Submission(b"<edXML/>", "edoc", "m-1", "S1")
    accepted = Accepted(sub, "d" * 64, "edoc", package, "S1", "000.00.00.A01",
                        package.document_id, (Delivery("R1", ("000.00.00.B01",)),),
                        attachments=(ref,))  # fmt: skip
    return NeedsFiles(accepted), ref


def test_a_document_naming_files_is_accepted_only_once_its_sender_holds_them() -> None:
    pending, ref = pending_document()
    whole = View({f"S1/{ref.sha256}": "complete"})
    assert checked_files(pending, whole) is pending.accepted
    assert whole.asked == ["S1"]  # the authenticated sender's uploads, nobody else's
    refused = checked_files(pending, View({f"R1/{ref.sha256}": "complete"}))
    assert isinstance(refused, Rejected)
    assert (refused.code, refused.sha256, refused.kind, refused.sender_system) == (
        "attachment.incomplete", "d" * 64, "edoc", "S1")
    for state, code in (("partial", "attachment.incomplete"), ("missing", "attachment.incomplete"),
                        ("mismatch", "attachment.digest_mismatch")):  # fmt: skip
        verdict = checked_files(pending, View({f"S1/{ref.sha256}": state}))
        assert isinstance(verdict, Rejected) and verdict.code == code, state
    too_large = checked_files(pending, View({f"S1/{ref.sha256}": "complete"}, CHUNK_BYTES))
    assert isinstance(too_large, Rejected) and too_large.code == "attachment.too_large"
    no_keeper = checked_files(pending, None)
    assert isinstance(no_keeper, Rejected) and no_keeper.code == "attachment.incomplete"


class BrokenSigner:
    def sign(self, receipt: Receipt) -> bytes:
        raise OSError("the signing key is unreadable")


def _one_chunk(tmp_path: Path, correlation_id: str) -> tuple[AttachmentStore, bytes, WireMessage]:
    """A store, a 5-byte file and the put of its only chunk."""
    store = AttachmentStore(tmp_path, max_bytes=CHUNK_BYTES, quota_bytes=CHUNK_BYTES,
                            retention_seconds=60.0, abandon_seconds=60.0)  # fmt: skip
    data = b"chunk"
    wire = put_message(system_id="S1", sha256=hashlib.sha256(data).hexdigest(), size=5,
                       index=0, data=data, correlation_id=correlation_id)  # fmt: skip
    return store, data, wire


def test_a_refused_chunk_is_answered_even_when_its_receipt_cannot_be_signed(
    tmp_path: Path,
) -> None:
    store, data, wire = _one_chunk(tmp_path, "c-1")
    headers = {**wire.headers, "axis-chunk-sha256": "0" * 64}  # does not match the chunk
    refusals = RefusalSigner(BrokenSigner(), lambda: datetime.now(UTC))
    answer, code = answer_request(store, PUT_KEY, "S1", headers, data, "c-1", refusals)
    assert code == "attachment.digest_mismatch"
    body = json.loads(answer.body)
    assert body["ok"] is False and body["error"]["code"] == code and "receipt" not in body
    assert answer.correlation_id == "c-1"


def test_a_header_number_python_reads_as_a_digit_but_not_as_decimal_is_a_bad_chunk(
    tmp_path: Path,
) -> None:
    store, data, wire = _one_chunk(tmp_path, "c-2")
    for name in ("axis-attachment-size", "axis-chunk-index"):
        headers = {**wire.headers, name: "²"}  # str.isdigit() says yes, int() says no
        _answer, code = answer_request(store, PUT_KEY, "S1", headers, data, "c-2")
        assert code == "attachment.invalid_chunk", name
