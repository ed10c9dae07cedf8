"""The SDK checks who signed what it fetches, beyond the CA: on the real RabbitMQ.

Every agency certificate chains to the one CA, so the CA check alone would take agency
C's signature on a package claiming to come from A. The SDK requires the signing
certificate's organ (subject UID) to be the delivery's ``axis-sender-system`` and the
verified ``From/OrganId`` to be its ``axis-sender-organ``. The hub never routes such a
forgery, so these tests publish it straight into the recipient's inbox, as the hub would.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import aclosing
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import Name, NameAttribute
from cryptography.x509.oid import NameOID

from axis.client.agency import AgencyClient, InboxItem
from envelopes.builder import build_package, status_package
from envelopes.model import DocumentPackage, Organization, StatusPackage
from envelopes.status_codes import StatusCode
from routing.amqp import amqp_message
from routing.contract import DELIVER_EXCHANGE, delivery_message
from signing.pki import Credential, _issue_leaf
from signing.sign import sign_package
from tests.clikit import organ
from tests.hubkit import Agency, HubKit, document, take

pytestmark = pytest.mark.rabbitmq

CODE = "signature.sender_mismatch"


def count_sends(client: AgencyClient) -> list[str]:
    """Record every submission ``client`` makes from now on (kinds, in order)."""
    kinds: list[str] = []
    original = client.send

    async def send(signed: bytes, *, kind: str = "edoc", message_id: str | None = None) -> str:
        kinds.append(kind)
        return await original(signed, kind=kind, message_id=message_id)

    client.send = send  # type: ignore[method-assign]
    return kinds


async def deliver(
    kit: HubKit,
    to: Agency,
    body: bytes,
    *,
    sender_system: str,
    sender_organ: str,
    kind: str = "edoc",
    document_id: str = "",
    status_code: str | None = None,
) -> str:
    """Publish ``body`` into ``to``'s inbox with the headers the hub's outbox gives a copy;
    returns its message id."""
    wire = delivery_message(
        body=body,
        kind=kind,
        sender_system=sender_system,
        sender_organ=sender_organ,
        recipient_organs=(to.organ_id,),
        document_id=document_id,
        consignment=str(uuid.uuid4()),
        status_code=status_code,
    )
    connection = await aio_pika.connect(kit.settings.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(DELIVER_EXCHANGE, ensure=False)
        await exchange.publish(amqp_message(wire), to.organ_id)
    finally:
        await connection.close()
    return wire.message_id or ""


async def three_agencies(kit: HubKit) -> tuple[Agency, Agency, Agency]:
    """Agencies A, B and C on ``kit``'s hub."""
    return await kit.agency(organ("A")), await kit.agency(organ("B")), await kit.agency(organ("C"))


async def watched(to: Agency, message_id: str) -> list[InboxItem]:
    """The item ``to``'s SDK pushes (``watch``) for ``message_id``, acked."""
    async with asyncio.timeout(10), aclosing(to.client.watch()) as items:
        async for item in items:
            await item.ack()
            if item.message_id == message_id:
                return [item]
    return []


async def refused(
    kit: HubKit, to: Agency, body: bytes, *, pushed: bool = False, **headers: str
) -> None:
    """``to``'s SDK fetches (or, ``pushed``, watches) ``body`` delivered with ``headers``
    as an item with the code."""
    sends = count_sends(to.client)
    message_id = await deliver(kit, to, body, **headers)
    if pushed:
        items = await watched(to, message_id)
    else:
        items = await take(to.client, 1, timeout=10, accept=lambda i: i.message_id == message_id)
    assert [i.error.code if i.error else None for i in items] == [CODE]
    assert items[0].package is None and items[0].signer is None
    assert sends == []  # no status 01 for what was not verified


async def test_a_normal_delivery_verifies_and_is_answered_with_arrived(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    sent = document(a.organ_id, [b.organ_id])
    consignment = await a.client.send(a.client.sign(sent))
    assert (await a.client.wait_receipt(consignment, 15)).receipt.event == "accepted"
    sends = count_sends(b.client)
    got = await take(b.client, 1, accept=lambda i: i.kind == "edoc")
    assert [i.error for i in got] == [None]
    assert isinstance(got[0].package, DocumentPackage) and got[0].signer is not None
    assert sends == ["status"]
    # The status 01 is delivered the same way and passes the same check at A.
    statuses = await take(a.client, 1, accept=lambda i: i.kind == "status")
    assert [i.error for i in statuses] == [None]
    status = statuses[0].package
    assert isinstance(status, StatusPackage) and status.status_code is StatusCode.ARRIVED


@pytest.mark.parametrize("pushed", [False, True], ids=["fetched", "pushed"])
async def test_a_package_from_a_signed_with_cs_certificate_is_refused(
    kit: HubKit, pushed: bool
) -> None:
    a, b, c = await three_agencies(kit)
    forged = c.client.sign(document(a.organ_id, [b.organ_id]))
    await refused(kit, b, forged, pushed=pushed, sender_system=a.organ_id,
                  sender_organ=a.organ_id)  # fmt: skip


async def test_a_signer_other_than_the_routing_system_is_refused(kit: HubKit) -> None:
    a, b, c = await three_agencies(kit)
    signed = a.client.sign(document(a.organ_id, [b.organ_id]))
    await refused(kit, b, signed, sender_system=c.organ_id, sender_organ=a.organ_id)


async def test_a_from_organ_other_than_the_routed_sender_organ_is_refused(kit: HubKit) -> None:
    a, b, c = await three_agencies(kit)
    signed = a.client.sign(document(a.organ_id, [b.organ_id]))
    await refused(kit, b, signed, sender_system=a.organ_id, sender_organ=c.organ_id)


async def test_a_forged_status_is_refused_the_same_way(kit: HubKit) -> None:
    a, b, c = await three_agencies(kit)
    about = document(b.organ_id, [a.organ_id])
    status = status_package(Organization(a.organ_id), about, StatusCode.ARRIVED, "giả mạo",
                            datetime.now(UTC))  # fmt: skip
    await refused(kit, b, c.client.sign(status), kind="status", sender_system=a.organ_id,
                  sender_organ=a.organ_id, status_code="01")  # fmt: skip


async def test_a_certificate_naming_no_organ_is_refused(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    ca = Credential(kit.pki.ca_key.read_bytes(), kit.pki.ca_cert.read_bytes())
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = Name([NameAttribute(NameOID.COMMON_NAME, "no UID")])
    anonymous = _issue_leaf(ca, key, subject, now - timedelta(days=1), now + timedelta(days=1))
    signed = sign_package(build_package(document(a.organ_id, [b.organ_id])),
                          anonymous.signing_key())  # fmt: skip
    await refused(kit, b, signed, sender_system=a.organ_id, sender_organ=a.organ_id)


async def test_a_system_signing_for_a_sub_unit_it_serves_is_accepted(kit: HubKit) -> None:
    department = organ("DEPT")
    province = await kit.agency(organ("P"), serves=(department,))
    b, c = await kit.agency(organ("B")), await kit.agency(organ("C"))
    sent = document(department, [b.organ_id])
    consignment = await province.client.send(province.client.sign(sent))
    assert (await province.client.wait_receipt(consignment, 15)).receipt.event == "accepted"
    sends = count_sends(b.client)
    got = await take(b.client, 1, accept=lambda i: i.kind == "edoc")
    assert [i.error for i in got] == [None]
    assert got[0].sender_system == province.organ_id
    assert isinstance(got[0].package, DocumentPackage)
    assert got[0].package.sender.organ_id == department
    assert sends == ["status"]
    statuses = await take(province.client, 1, accept=lambda i: i.kind == "status")
    assert [i.error for i in statuses] == [None]
    # Another agency's certificate cannot sign for the sub-unit, whatever the headers say.
    forged = c.client.sign(document(department, [b.organ_id], number="2"))
    await refused(kit, b, forged, sender_system=province.organ_id, sender_organ=department)
