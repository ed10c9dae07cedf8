"""The evidence log end to end on the real broker: what the hub signs is logged, business
receipts, bundles a party exports and an auditor verifies offline, scoping, and a hub that
refuses to start on a log altered behind its back."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from axis.commands.evidence_cmd import _home_evidence, bundle_of
from axis.evidence import merkle
from axis.evidence.audit import verify_bundle
from axis.evidence.bundle import entry_bytes, write_bundle
from axis.evidence.errors import LogTampered
from axis.evidence.heads import verify_head
from axis.evidence.merkle import verify_consistency
from axis.store_model import LOG
from envelopes.status_codes import StatusCode
from routing.contract import H_LOG_INDEX
from routing.errors import QueryRefused
from signing.keys import load_certificate
from signing.verify import VerifyPolicy
from tests.clikit import organ
from tests.hubkit import Agency, HubKit, document, take

pytestmark = pytest.mark.rabbitmq


def _policy(kit: HubKit) -> VerifyPolicy:
    ca = load_certificate(kit.pki.ca_cert.read_bytes())
    return VerifyPolicy(at=datetime.now(UTC), trust_anchors=(ca,))


async def _exchange(kit: HubKit) -> tuple[Agency, Agency, Agency, str, str]:
    """A sends to B; B fetches (status 01) and registers it (status 03)."""
    a, b, c = (await kit.agency(organ("A")), await kit.agency(organ("B")),
               await kit.agency(organ("C")))  # fmt: skip
    package = document(a.organ_id, [b.organ_id])
    consignment = await a.client.send(a.client.sign(package))
    accepted = await a.client.wait_receipt(consignment, 15)
    assert accepted.receipt.event == "accepted"
    copies = await take(b.client, 1, accept=lambda i: i.kind == "edoc")
    assert copies
    registered = await b.client.send_status(package, StatusCode.ACCEPTED, "đã vào sổ")
    assert (await b.client.wait_receipt(registered, 15)).receipt.event == "accepted"
    return a, b, c, consignment, package.document_id


async def test_status_03_gives_the_sender_a_signed_logged_business_receipt(kit: HubKit) -> None:
    a, b, _c, consignment, document_id = await _exchange(kit)
    items = await take(a.client, 1, accept=lambda i: i.receipt is not None
                       and i.receipt.receipt.event == "status")  # fmt: skip
    assert items, "no business receipt"
    business = items[0].receipt
    assert business is not None
    assert business.receipt.status_code == StatusCode.ACCEPTED.value
    assert business.receipt.message_id == consignment
    assert business.receipt.recipient_system == b.organ_id
    assert business.receipt.document_id == document_id
    assert kit.store.log_entries_about(document=(a.organ_id, document_id))


async def test_a_party_exports_a_bundle_that_verifies_offline(kit: HubKit) -> None:
    a, b, _c, consignment, document_id = await _exchange(kit)
    await take(a.client, 3, timeout=5)  # the receipts and B's statuses, acked
    for party, ident in ((a, consignment), (b, document_id)):
        material = await party.client.evidence(ident)
        report = verify_bundle(bundle_of(material, with_package=True), _policy(kit))
        assert report.ok, [c for c in report.checks if not c.ok]
        events = sorted(r.receipt.event for r in report.receipts)
        assert {"accepted", "delivered", "status"} <= set(events), events


async def test_a_third_agency_gets_no_evidence_and_heads_are_public(kit: HubKit) -> None:
    _a, _b, c, consignment, document_id = await _exchange(kit)
    for ident in (consignment, document_id):
        with pytest.raises(QueryRefused):
            await c.client.evidence(ident)
    head = await c.client.log_head()
    verified = verify_head(head["head"].encode(), _policy(kit))
    assert verified.head.tree_size == head["tree_size"] > 0


async def test_receipts_carry_their_log_index(kit: HubKit) -> None:
    a, _b, _c, consignment, _document_id = await _exchange(kit)
    record = kit.store.find_submission(a.organ_id, consignment)
    assert record is not None and record.log_index is not None
    assert kit.store.log_entry(record.log_index).payload == record.receipt
    receipts = await take(a.client, 4, timeout=5, accept=lambda i: i.receipt is not None)
    by_event = {i.receipt.receipt.event: i for i in receipts if i.receipt is not None}
    # Each receipt message names where the log holds exactly its bytes.
    for event in ("accepted", "status"):
        item = by_event[event]
        index = int(item.headers[H_LOG_INDEX])
        assert kit.store.log_entry(index).payload == item.body, event
    assert int(by_event["accepted"].headers[H_LOG_INDEX]) == record.log_index


async def test_heads_grow_consistently(kit: HubKit) -> None:
    assert kit.evidence is not None
    a, b, *_ = await _exchange(kit)
    first = kit.evidence.make_head() or kit.store.latest_head()
    assert first is not None
    # Wait for this very consignment's receipt: any inbox item could be one of the first
    # exchange's, logged before the first head.
    consignment = await a.client.send(a.client.sign(document(a.organ_id, [b.organ_id], number="2")))
    got = (await a.client.wait_receipt(consignment, 15)).receipt
    assert got.event == "accepted", got
    kit.evidence.make_head()
    second = kit.store.latest_head()
    assert second is not None and second.tree_size > first.tree_size
    proof = (await a.client.log_consistency(first.tree_size, second.tree_size))["path"]
    assert verify_consistency(first.tree_size, second.tree_size, first.root_hash,
                              second.root_hash, [bytes.fromhex(h) for h in proof])  # fmt: skip


@pytest.mark.parametrize("alteration", ["edit", "delete", "edit-with-its-hash"])
async def test_a_hub_refuses_to_start_on_an_altered_log(kit: HubKit, alteration: str) -> None:
    assert kit.evidence is not None
    await _exchange(kit)
    kit.evidence.make_head()
    await kit.stop_hub()
    await kit.start_hub()  # an untouched log starts
    await kit.stop_hub()
    entry = LOG.c.idx == 1
    with kit.store.engine.begin() as conn:
        if alteration == "delete":
            conn.execute(sa.delete(LOG).where(entry))
        elif alteration == "edit":
            conn.execute(sa.update(LOG).where(entry).values(payload=b"edited"))
        else:  # the leaf hash kept in step: only the signed root can tell
            leaf = merkle.leaf_hash(entry_bytes("registry", b"{}"))
            conn.execute(sa.update(LOG).where(entry).values(type="registry", payload=b"{}",
                                                            leaf_hash=leaf))  # fmt: skip
    kit.store._subtrees.clear()
    with pytest.raises(LogTampered):
        await kit.start_hub()
    kit.hub = None


async def test_the_documented_standalone_script_checks_a_bundle(
    kit: HubKit, tmp_path: Path
) -> None:
    """docs/examples/verify_inclusion.py: standard library and xmlsec1, as docs promise."""
    a, _b, _c, consignment, _document_id = await _exchange(kit)
    bundle = bundle_of(await a.client.evidence(consignment), with_package=False)
    good = tmp_path / "good.zip"
    good.write_bytes(write_bundle(bundle))
    script = Path(__file__).resolve().parents[1] / "docs" / "examples" / "verify_inclusion.py"
    run = subprocess.run([sys.executable, str(script), str(good), str(kit.pki.hub_cert)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("OK   entry") == len(bundle.entries)
    first = bundle.entries[0]
    altered = dataclasses.replace(first, payload=first.payload.replace(b"0", b"1", 1))
    bad = tmp_path / "bad.zip"
    bad.write_bytes(write_bundle(dataclasses.replace(
        bundle, entries=(altered, *bundle.entries[1:]))))  # fmt: skip
    run = subprocess.run([sys.executable, str(script), str(bad), str(kit.pki.hub_cert)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 1 and f"FAIL entry {first.index:>6}" in run.stdout, run.stdout


async def test_a_third_agencys_refused_attempt_stays_out_of_the_parties_bundle(
    kit: HubKit,
) -> None:
    """C's refused status about A's document is C's business, as in the trace."""
    a, _b, c, consignment, _document_id = await _exchange(kit)
    package = document(a.organ_id, [organ("B")])
    forged = await c.client.send_status(package, StatusCode.ARRIVED, "giả mạo")
    assert (await c.client.wait_receipt(forged, 15)).receipt.error_code == "status.not_a_party"
    bundle = bundle_of(await a.client.evidence(consignment), with_package=False)
    report = verify_bundle(bundle, _policy(kit))
    assert report.ok, [check for check in report.checks if not check.ok]
    assert c.organ_id not in {r.receipt.sender_system for r in report.receipts}
    assert forged not in {r.receipt.message_id for r in report.receipts}
    # The operator exporting C's consignment gets C's own refusal, not A's document.
    assert kit.evidence is not None
    operator = bundle_of(_home_evidence(kit.evidence, forged, None), with_package=False)
    assert operator.subject["consignment"] == forged and operator.subject["document_id"] is None
    refusals = verify_bundle(operator, _policy(kit)).receipts
    assert [r.receipt.error_code for r in refusals] == ["status.not_a_party"]
