"""The hub end to end on the real RabbitMQ and a real store: routing, receipts, rejections."""

from __future__ import annotations

import asyncio
import os

import aio_pika
import pytest

from axis.client.agency import AgencyClient
from envelopes.builder import build_package
from envelopes.model import DocumentPackage
from envelopes.status_codes import StatusCode
from routing.errors import QueryRefused
from signing.sign import sign_package
from tests.clikit import organ
from tests.hubkit import HubKit, document, take

pytestmark = pytest.mark.rabbitmq


async def receipt_for(agency_client: object, message_id: str) -> object:
    from axis.client.agency import AgencyClient

    assert isinstance(agency_client, AgencyClient)
    return await agency_client.wait_receipt(message_id, timeout=15)


async def test_document_reaches_one_recipient_byte_for_byte(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    signed = a.client.sign(document(a.organ_id, [b.organ_id], attachment=b"PDF" * 1000))
    consignment = await a.client.send(signed)

    receipt = await a.client.wait_receipt(consignment, timeout=15)
    assert receipt.receipt.event == "accepted"
    assert receipt.receipt.recipients == (b.organ_id,)
    items = await take(b.client, 1, accept=lambda i: i.kind == "edoc")
    assert len(items) == 1
    assert items[0].body == signed  # the sender's signature must still verify downstream
    assert items[0].error is None and isinstance(items[0].package, DocumentPackage)
    assert items[0].package.attachments[0].data == b"PDF" * 1000
    assert items[0].sender_system == a.organ_id


async def test_document_reaches_three_recipients_once_each(kit: HubKit) -> None:
    a = await kit.agency(organ("A"))
    recipients = [await kit.agency(organ(f"R{i}")) for i in range(3)]
    signed = a.client.sign(document(a.organ_id, [r.organ_id for r in recipients]))
    consignment = await a.client.send(signed)
    receipt = await a.client.wait_receipt(consignment, timeout=15)
    assert sorted(receipt.receipt.recipients) == sorted(r.organ_id for r in recipients)
    for r in recipients:
        got = await take(r.client, 1, accept=lambda i: i.kind == "edoc")
        assert [i.body for i in got] == [signed]
        assert await take(r.client, 1, timeout=0.3, accept=lambda i: i.kind == "edoc") == []


async def test_sub_unit_is_routed_to_the_system_that_serves_it(kit: HubKit) -> None:
    a = await kit.agency(organ("A"))
    department = organ("DEPT")
    province = await kit.agency(organ("P"), serves=(department,))
    consignment = await a.client.send(a.client.sign(document(a.organ_id, [department])))
    assert (await a.client.wait_receipt(consignment, 15)).receipt.event == "accepted"
    got = await take(province.client, 1, accept=lambda i: i.kind == "edoc")
    assert got and got[0].recipient_organs == (department,)


async def test_duplicate_gets_identical_receipt_and_one_delivery(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    signed = a.client.sign(document(a.organ_id, [b.organ_id]))
    await a.client.send(signed, message_id="dup-1")
    first = await a.client.wait_receipt("dup-1", 15)
    await a.client.send(signed, message_id="dup-1")
    receipts = await raw_inbox(a.client, 2, kind="receipt")
    assert receipts == [first.raw, first.raw]
    assert len(await take(b.client, 2, timeout=2, accept=lambda i: i.kind == "edoc")) == 1


async def test_same_id_other_bytes_is_a_conflict(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    await a.client.send(
        a.client.sign(document(a.organ_id, [b.organ_id], number="1")), message_id="c-1"
    )
    await a.client.wait_receipt("c-1", 15)
    await a.client.send(
        a.client.sign(document(a.organ_id, [b.organ_id], number="2")), message_id="c-1"
    )
    receipts = await take(a.client, 2, accept=lambda i: i.kind == "receipt")
    codes = sorted(i.receipt.receipt.error_code for i in receipts if i.receipt)
    assert codes == ["", "submission.duplicate_conflict"]


async def raw_inbox(client: AgencyClient, want: int, kind: str, timeout: float = 15) -> list[bytes]:
    """Bodies straight off the inbox queue (no SDK de-duplication), acked."""
    queue = await client.channel.get_queue(f"axis.inbox.{client.config.system_id}", ensure=False)
    bodies: list[bytes] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while len(bodies) < want and asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        if message.type == kind:
            bodies.append(bytes(message.body))
    return bodies


async def _rejection(
    kit: HubKit, body: bytes, sender_client: object, message_id: str, kind: str = "edoc"
) -> str:
    from axis.client.agency import AgencyClient

    assert isinstance(sender_client, AgencyClient)
    await sender_client.send(body, kind=kind, message_id=message_id)
    receipt = await sender_client.wait_receipt(message_id, 15)
    assert receipt.receipt.event == "rejected"
    assert receipt.receipt.reason
    return receipt.receipt.error_code


async def test_rejections_carry_their_codes_in_signed_receipts(kit: HubKit) -> None:
    a, b, c = (
        await kit.agency(organ("A")),
        await kit.agency(organ("B")),
        await kit.agency(organ("C")),
    )
    suspended = await kit.agency(organ("S"))
    kit.store.set_system_active(suspended.organ_id, False)
    assert kit.hub is not None
    await kit.hub.refresh_registry()
    good = document(a.organ_id, [b.organ_id])
    signed = a.client.sign(good)
    cases: list[tuple[str, bytes, str]] = [
        (
            "bad-schema",
            sign_package(
                build_package(good).replace(b"<Subject>", b"<Bogus/><Subject>"),
                a.client.config.signing_key,
            ),
            "envelope.schema_violation",
        ),
        ("bad-signature", signed.replace(b"V/v th", b"V/v TH"), "signature.invalid"),
        ("other-systems-cert", c.client.sign(good), "signature.certificate_not_registered"),
        (
            "from-not-served",
            a.client.sign(document(c.organ_id, [b.organ_id])),
            "sender.organ_not_served",
        ),
        (
            "unknown-recipient",
            a.client.sign(document(a.organ_id, [organ("NOBODY")])),
            "recipient.unknown",
        ),
        (
            "suspended-recipient",
            a.client.sign(document(a.organ_id, [suspended.organ_id])),
            "recipient.suspended",
        ),
        ("not-xml", b"this is not xml", "envelope.malformed_xml"),
    ]
    for message_id, body, code in cases:
        assert await _rejection(kit, body, a.client, message_id) == code, message_id
    assert await take(b.client, 1, timeout=0.5, accept=lambda i: i.kind == "edoc") == []
    stored = kit.store.find_submission(a.organ_id, "bad-signature")
    assert stored is not None and stored.raw == signed.replace(b"V/v th", b"V/v TH")


async def test_registry_is_reloaded_only_when_it_changed(kit: HubKit) -> None:
    a = await kit.agency(organ("A"))
    assert kit.hub is not None
    assert await kit.hub.refresh_registry() is False  # nothing changed since the last load
    kit.store.set_system_active(a.organ_id, False)  # as another process (the CLI) would
    assert await kit.hub.refresh_registry() is True
    assert await kit.hub.refresh_registry() is False
    signed = a.client.sign(document(a.organ_id, [a.organ_id]))
    assert await _rejection(kit, signed, a.client, "susp") == "sender.system_suspended"


async def test_oversize_submission_is_rejected(kit: HubKit) -> None:
    await kit.stop_hub()
    await kit.start_hub(max_submission_bytes=20_000)
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    big = a.client.sign(document(a.organ_id, [b.organ_id], attachment=os.urandom(30_000)))
    assert len(big) > 20_000
    assert await _rejection(kit, big, a.client, "big-1") == "submission.too_large"


async def test_missing_user_id_is_answered_on_direct_reply_to(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    signed = a.client.sign(document(a.organ_id, [b.organ_id]))
    channel = await a.client._connection.channel()  # type: ignore[union-attr]
    answers: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    reply = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
    await reply.consume(answers.put, no_ack=True)
    exchange = await channel.get_exchange("axis.submit", ensure=False)
    await exchange.publish(
        aio_pika.Message(body=signed, message_id="anon-1", reply_to="amq.rabbitmq.reply-to"), "edoc"
    )
    message = await asyncio.wait_for(answers.get(), 15)
    verified = a.client.verify_receipt(bytes(message.body))
    assert verified.receipt.error_code == "sender.missing_user_id"
    assert message.correlation_id == "anon-1"


async def test_broker_refuses_foreign_user_id_and_foreign_inbox(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    connection = await aio_pika.connect(a.profile.broker_url())
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("axis.submit", ensure=False)
        with pytest.raises(Exception) as forged:
            await exchange.publish(
                aio_pika.Message(body=b"x", message_id="forged", user_id=b.organ_id), "edoc"
            )
        assert "user_id" in str(forged.value) or "PRECONDITION" in str(forged.value)
        channel = await connection.channel()
        foreign = await channel.get_queue(f"axis.inbox.{b.organ_id}", ensure=False)
        with pytest.raises(Exception) as refused:
            await foreign.get(fail=False)
        assert "ACCESS_REFUSED" in str(refused.value) or "access" in str(refused.value).lower()
    finally:
        await connection.close()


async def test_status_01_yields_delivered_receipt_and_status_03_reaches_sender(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    package = document(a.organ_id, [b.organ_id])
    consignment = await a.client.send(a.client.sign(package))
    await a.client.wait_receipt(consignment, 15)
    received = await take(b.client, 1, accept=lambda i: i.kind == "edoc")  # acks → status 01
    assert received
    delivered = await take(
        a.client, 1, accept=lambda i: bool(i.receipt and i.receipt.receipt.event == "delivered")
    )
    assert delivered and delivered[0].receipt is not None
    assert delivered[0].receipt.receipt.document_id == package.document_id
    assert delivered[0].receipt.receipt.recipients == (b.organ_id,)

    await b.client.send_status(package, StatusCode.ACCEPTED, "vào sổ")
    statuses = await take(a.client, 1, accept=lambda i: i.kind == "status")
    assert statuses and statuses[0].package is not None
    assert getattr(statuses[0].package, "status_code", None) is StatusCode.ACCEPTED

    timeline = await a.client.trace(package.document_id)
    events = [(e["event"], e.get("status_code")) for e in timeline["events"]]
    assert events[:3] == [("submitted", None), ("accepted", None), ("published", None)]
    assert ("status", "01") in events and ("status", "03") in events
    assert ("delivered", None) in events


async def test_status_from_a_stranger_is_refused(kit: HubKit) -> None:
    a, b, c = (
        await kit.agency(organ("A")),
        await kit.agency(organ("B")),
        await kit.agency(organ("C")),
    )
    package = document(a.organ_id, [b.organ_id])
    consignment = await a.client.send(a.client.sign(package))
    await a.client.wait_receipt(consignment, 15)
    message_id = await c.client.send_status(package, StatusCode.ACCEPTED, "không liên quan")
    receipt = await c.client.wait_receipt(message_id, 15)
    assert receipt.receipt.error_code == "status.not_a_party"
    own = await c.client.trace(message_id)  # its own refused consignment, nothing more
    assert {e["message_id"] for e in own["events"]} == {message_id}
    assert {e["event"] for e in own["events"]} == {"submitted", "rejected"}
    d = await kit.agency(organ("D"))
    # Not a party: the same answer as for an unknown document, for C and D alike.
    for stranger in (c, d):
        with pytest.raises(QueryRefused, match="party") as refused:
            await stranger.client.trace(package.document_id)
        assert package.document_id in str(refused.value)


async def test_metrics_count_outcomes_and_rejection_codes(kit: HubKit) -> None:
    from prometheus_client import generate_latest

    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    ok = await a.client.send(a.client.sign(document(a.organ_id, [b.organ_id])))
    await a.client.wait_receipt(ok, 15)
    assert await _rejection(kit, b"<x/>", a.client, "not-edxml") == "envelope.schema_violation"
    assert kit.hub is not None
    # The receipt is published before the ack, and the timing is observed after it.
    for _ in range(100):
        text = generate_latest(kit.metrics.registry).decode()
        if "axis_processing_seconds_count 2.0" in text:
            break
        await asyncio.sleep(0.05)
    assert 'axis_submissions_total{kind="edoc",outcome="accepted"} 1.0' in text
    assert 'axis_rejections_total{code="envelope.schema_violation"} 1.0' in text
    assert 'axis_deliveries_total{kind="edoc"} 1.0' in text
    assert "axis_processing_seconds_count 2.0" in text
