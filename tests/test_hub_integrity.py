"""Integrity end to end on the real RabbitMQ: no agency can speak for, steer or read another
agency's document; answers go only where they belong; refusals cost the hub little."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from datetime import UTC, datetime

import aio_pika
import pytest

from axis.pki_files import load_credential
from axis.receipts import HubReceiptSigner
from envelopes.model import BusinessDocType, BusinessInfo, DocumentPackage, StatusPackage
from envelopes.status_codes import StatusCode
from routing.errors import QueryRefused, SubmissionTooLarge
from routing.values import Receipt
from tests.clikit import organ
from tests.hubkit import Agency, HubKit, document, take

pytestmark = pytest.mark.rabbitmq


async def three(kit: HubKit) -> tuple[Agency, Agency, Agency]:
    return (await kit.agency(organ("A")), await kit.agency(organ("B")),
            await kit.agency(organ("C")))  # fmt: skip


def squatting(thief: Agency, victim_document: DocumentPackage, to: str) -> DocumentPackage:
    """The thief's own, honestly signed package, reusing the victim's DocumentId."""
    own = document(thief.organ_id, [to], subject="V/v mạo danh")
    return dataclasses.replace(own, document_id=victim_document.document_id)


async def inbox_count(kit: HubKit, agency: Agency) -> int:
    info = kit.management.queue_info(kit.vhost, f"axis.inbox.{agency.organ_id}") or {}
    return int(info.get("messages", 0))


async def settle(seconds: float = 0.5) -> None:
    await asyncio.sleep(seconds)  # the management API's counts lag the broker a little


async def sent(agency: Agency, package: DocumentPackage) -> str:
    consignment = await agency.client.send(agency.client.sign(package))
    receipt = await agency.client.wait_receipt(consignment, 15)
    assert receipt.receipt.event == "accepted", receipt.receipt
    return consignment


async def test_a_third_agency_reusing_a_document_id_after_it_was_sent_steers_nothing(
    kit: HubKit,
) -> None:
    a, b, c = await three(kit)
    original = document(a.organ_id, [b.organ_id])
    a_consignment = await sent(a, original)
    await sent(c, squatting(c, original, b.organ_id))  # C's own document (C, same id)
    # B answers A's document: the status and the "delivered" receipt go to A, not C.
    await take(b.client, 2, accept=lambda i: i.kind == "edoc")
    arrived = await take(a.client, 2, accept=lambda i: i.kind in ("status", "receipt")
                         and (i.receipt is None or i.receipt.receipt.event == "delivered"))
    assert sorted(i.kind for i in arrived) == ["receipt", "status"]
    delivered = next(i.receipt for i in arrived if i.receipt is not None)
    assert delivered is not None and delivered.receipt.message_id == a_consignment
    # C, not a recipient of A's document, cannot answer it or read it.
    forged = await c.client.send_status(original, StatusCode.ARRIVED, "giả mạo")
    assert (await c.client.wait_receipt(forged, 15)).receipt.error_code == "status.not_a_party"
    with pytest.raises(QueryRefused):
        await c.client.query({"op": "receipt", "message_id": a_consignment})
    timeline = await c.client.trace(original.document_id)  # C's own document only
    assert a_consignment not in timeline["message_ids"]
    await settle()
    statuses_for_c = [i.package for i in await take(c.client, 9, timeout=1)
                      if isinstance(i.package, StatusPackage)]  # fmt: skip
    # B's status 01 about C's own document, and nothing about A's.
    assert [p.response_for.organ_id for p in statuses_for_c] == [c.organ_id]
    a_timeline = await a.client.trace(original.document_id)
    assert a_timeline["message_ids"] and all(
        e["system"] in (a.organ_id, b.organ_id) for e in a_timeline["events"])


async def test_pre_squatting_a_predictable_document_id_changes_nothing_for_its_owner(
    kit: HubKit,
) -> None:
    a, b, c = await three(kit)
    future = document(a.organ_id, [b.organ_id], number="77")
    await sent(c, squatting(c, future, b.organ_id))  # before A sends it
    await take(b.client, 1, accept=lambda i: i.kind == "edoc")  # C's copy (status 01 to C)
    await take(c.client, 2)  # C's own receipts and status
    a_consignment = await sent(a, future)
    b_items = await take(b.client, 1, accept=lambda i: i.kind == "edoc")
    assert b_items and b_items[0].sender_system == a.organ_id
    a_items = await take(a.client, 2, accept=lambda i: i.kind == "status" or (
        i.receipt is not None and i.receipt.receipt.event == "delivered"))
    assert len(a_items) == 2
    delivered = next(i.receipt for i in a_items if i.receipt is not None)
    assert delivered is not None and delivered.receipt.message_id == a_consignment
    take_back = await a.client.send_status(future, StatusCode.TAKE_BACK_REQUEST, "thu hồi")
    assert (await a.client.wait_receipt(take_back, 15)).receipt.event == "accepted"
    to_b = await take(b.client, 1, accept=lambda i: i.kind == "status")
    assert to_b and to_b[0].sender_system == a.organ_id
    await settle()
    assert await inbox_count(kit, c) == 0  # nothing about A's document reached C


async def test_one_delivered_receipt_per_recipient_system(kit: HubKit) -> None:
    a, b, _ = await three(kit)
    package = document(a.organ_id, [b.organ_id])
    await sent(a, package)
    await take(b.client, 1, accept=lambda i: i.kind == "edoc")  # status 01 sent on ack
    again = await b.client.send_status(package, StatusCode.ARRIVED, "lần nữa")
    assert (await b.client.wait_receipt(again, 15)).receipt.event == "accepted"
    await settle(1.0)
    receipts = [i.receipt.receipt.event for i in await take(a.client, 9, timeout=2)
                if i.receipt is not None]  # fmt: skip
    assert receipts.count("delivered") == 1


async def test_an_organ_reusing_its_document_id_for_another_package_is_refused(
    kit: HubKit,
) -> None:
    a, b, _ = await three(kit)
    first = document(a.organ_id, [b.organ_id], subject="Lần đầu")
    await sent(a, first)
    other = dataclasses.replace(first, subject="Khác hẳn")
    consignment = await a.client.send(a.client.sign(other))
    receipt = await a.client.wait_receipt(consignment, 15)
    assert receipt.receipt.error_code == "submission.document_id_reused"
    update = dataclasses.replace(other, business=BusinessInfo(doc_type=BusinessDocType.UPDATE,
                                                              reason="đính chính"))
    await sent(a, update)
    copies = await take(b.client, 3, timeout=3, accept=lambda i: i.kind == "edoc")
    assert [c.package.subject for c in copies if isinstance(c.package, DocumentPackage)] == [
        "Lần đầu", "Khác hẳn"]


async def test_answers_never_go_to_a_named_queue(kit: HubKit) -> None:
    a, b, c = await three(kit)
    a_consignment = await sent(a, document(a.organ_id, [b.organ_id]))
    await take(a.client, 9, timeout=1)
    before = kit.store.refusal_counts()
    channel = await c.client._connection.channel()  # type: ignore[union-attr]
    submit = await channel.get_exchange("axis.submit", ensure=False)
    query = await channel.get_exchange("axis.query", ensure=False)
    for target in (f"axis.inbox.{a.organ_id}", "axis.submit"):
        # No user_id, A's consignment id, a named reply_to: the hub answers nobody.
        await submit.publish(aio_pika.Message(b"<x/>", message_id=a_consignment,
                                              reply_to=target), "edoc")  # fmt: skip
        await query.publish(aio_pika.Message(b'{"op": "trace", "id": "x"}', reply_to=target,
                                             user_id=c.organ_id), "query")  # fmt: skip
    await settle(1.5)
    assert await inbox_count(kit, a) == 0
    assert kit.store.count_submissions() == 1  # A's alone: refusals are counted, not stored
    after = kit.store.refusal_counts()
    assert sum(r["times"] for r in after) == sum(r["times"] for r in before) + 2


async def test_refused_bodies_are_kept_as_a_bounded_excerpt(kit: HubKit) -> None:
    await kit.stop_hub()
    await kit.start_hub(max_submission_bytes=50_000)
    a, b, _ = await three(kit)
    body = a.client.sign(document(a.organ_id, [b.organ_id], attachment=os.urandom(200_000)))
    consignment = await a.client.send(body)
    receipt = await a.client.wait_receipt(consignment, 15)
    assert receipt.receipt.error_code == "submission.too_large"
    record = kit.store.find_submission(a.organ_id, consignment)
    assert record is not None and record.size == len(body)
    assert len(record.raw) == 4096 and body.startswith(record.raw)


async def test_a_system_over_its_rate_is_refused_and_may_send_again_later(kit: HubKit) -> None:
    await kit.stop_hub()
    await kit.start_hub(rate_per_second=2.0, rate_burst=2)
    a, b, _ = await three(kit)
    signed = [a.client.sign(document(a.organ_id, [b.organ_id], number=str(n)))
              for n in range(4)]  # fmt: skip
    ids = [await a.client.send(body, message_id=f"r-{n}") for n, body in enumerate(signed)]
    outcomes = [(await a.client.wait_receipt(i, 15)).receipt.error_code for i in ids]
    assert outcomes.count("submission.rate_limited") >= 1
    assert outcomes[:2] == ["", ""]
    limited = ids[outcomes.index("submission.rate_limited")]
    answers = []
    for _ in range(5):  # as a client would: the same consignment again, after a pause
        await asyncio.sleep(1.5)
        again = await a.client.send(signed[ids.index(limited)], message_id=limited)
        answer = (await a.client.wait_receipt(again, 15)).receipt
        answers.append(answer.error_code or answer.event)
        if answer.event == "accepted":
            break
    assert answers[-1] == "accepted" and set(answers[:-1]) <= {"submission.rate_limited"}, answers


async def test_the_sdk_refuses_a_hub_signed_receipt_about_another_systems_consignment(
    kit: HubKit,
) -> None:
    a, b, _ = await three(kit)
    consignment = await sent(a, document(a.organ_id, [b.organ_id]))
    await take(a.client, 9, timeout=1)
    signer = HubReceiptSigner(load_credential(kit.pki.hub_key, kit.pki.hub_cert))
    about_b = Receipt(receipt_id="r-1", event="accepted", message_id=consignment,
                      package_sha256="0" * 64, hub_time=datetime.now(UTC),
                      sender_system=b.organ_id)  # fmt: skip
    about_a_unsent = dataclasses.replace(about_b, receipt_id="r-2", sender_system=a.organ_id,
                                         message_id="never-sent")  # fmt: skip
    connection = await aio_pika.connect(kit.settings.amqp_url)
    try:
        channel = await connection.channel()
        deliver = await channel.get_exchange("axis.deliver", ensure=False)
        for receipt in (about_b, about_a_unsent):
            await deliver.publish(aio_pika.Message(signer.sign(receipt), type="receipt",
                                                   message_id=receipt.receipt_id), a.organ_id)
    finally:
        await connection.close()
    a.client.sent_consignments = {consignment}
    items = await take(a.client, 2, timeout=5, accept=lambda i: i.kind == "receipt")
    assert [i.error.code if i.error else None for i in items] == ["receipt.not_ours"] * 2
    assert all(i.receipt is None for i in items)


async def test_a_body_over_the_brokers_limit_never_reaches_the_hub(kit: HubKit) -> None:
    a, b, _ = await three(kit)
    before = kit.store.count_submissions()
    with pytest.raises(SubmissionTooLarge):
        await a.client.send(os.urandom(20 * 1024 * 1024))  # over the 17 MiB broker limit
    assert kit.store.count_submissions() == before
    await sent(a, document(a.organ_id, [b.organ_id]))  # the client carries on


async def test_a_party_to_two_documents_with_one_id_names_the_organ(kit: HubKit) -> None:
    a, b, c = await three(kit)
    original = document(a.organ_id, [b.organ_id])
    await sent(a, original)
    await sent(c, squatting(c, original, b.organ_id))
    with pytest.raises(QueryRefused, match="sender organ"):
        await b.client.trace(original.document_id)
    for sender in (a, c):
        timeline = await b.client.trace(original.document_id, organ=sender.organ_id)
        assert {e["system"] for e in timeline["events"]} <= {sender.organ_id, b.organ_id}
        assert sender.organ_id in {e["system"] for e in timeline["events"]}
