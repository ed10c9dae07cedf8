"""The hub-level attack corpus: hostile submissions through a real hub on the real broker.

For every row of ``HUB_CASES`` the corpus guarantees, on a running hub:

1. the attacker gets a hub-signed ``rejected`` receipt (signature verified against the
   hub certificate, ``PackageSha256`` = the hostile body's) carrying the exact error
   code, in the signed ``<axis:Error code>`` and in the ``axis-error-code`` header;
2. nothing reaches any other registered system's inbox, and nothing but that receipt
   reaches the attacker's own (the hub publishes deliveries before the receipt, so the
   inboxes are counted once the receipt is in);
3. the store keeps what the protocol promises: a ``rejected`` submission row with that
   code and receipt, or, when there is no consignment to bind it to, only a counted
   refusal; for a re-used consignment id, the original row and receipt, unchanged.

A submission with no system to answer (no ``user_id``, or a broker account that is not
a registered system) is answered on RabbitMQ direct reply-to, and nowhere else.

For every row of ``BROKER_CASES`` RabbitMQ itself refuses the attempt (system account
permissions, its ``user_id`` check, unroutable keys) before the hub could see it, and
nothing is delivered or stored.

One hub, its store and a handful of registered agencies serve the whole module. Adding
a case is one row, plus at most a small builder: a builder turns the shared
:class:`World` into an :class:`Attack` (the bytes, who publishes them, how). A row the
hub gets wrong today says so in ``bug=``: it runs as a strict xfail (so it turns red once
the hub is fixed: then delete the ``bug=``) and the hub is restarted on purged queues
after it, so that a poison message cannot spill into the next case.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import os
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aio_pika
import aiormq
import aiormq.abc
import pamqp.body
import pamqp.exceptions
import pamqp.header
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from lxml import etree
from pamqp import commands, frame
from signxml.algorithms import DigestAlgorithm, SignatureMethod

from axis.receipts import VerifiedReceipt
from envelopes.builder import build_package, status_package
from envelopes.model import DocumentPackage, Organization, ResponseFor
from envelopes.status_codes import StatusCode
from envelopes.xmlsafe import parse_tree
from routing.contract import (
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DELIVER_EXCHANGE,
    DIRECT_REPLY_TO,
    EDOC_KEY,
    H_ATTEMPT,
    H_ERROR_CODE,
    H_ORIGIN_USER,
    RETRY_EXCHANGE,
    STATUS_KEY,
    SUBMIT_EXCHANGE,
    SUBMIT_QUEUE,
    TYPE_RECEIPT,
    XML,
    inbox_queue_name,
)
from routing.decide import valid_message_id
from routing.retry import RETRY_DELAYS, retry_queue_name
from routing.values import sha256_hex
from signing.keys import SigningKey, fingerprint
from signing.pki import Credential, issue_agency, new_ca
from signing.sign import sign_package
from tests.clikit import organ
from tests.hubkit import Agency, HubKit, close_kit, document, make_kit, vhost_url
from tests.pgnode import STORES, postgres_database
from tests.test_signing_attacks import (
    _add_second_message_header,
    _duplicate_signature,
    _set_uri,
    _sign_with_signxml,
)
from tests.test_signing_helpers import ds, edxml

FrameT = TypeVar("FrameT", bound=frame.FrameTypes)
pytestmark = [pytest.mark.rabbitmq, pytest.mark.asyncio(loop_scope="module")]

# The shared hub's limit, small so that the oversize case stays cheap to build and send.
MAX_SUBMISSION_BYTES = 64 * 1024
TIMEOUT = 15.0


# -- the world: one hub, its store and the agencies every case shares ----------------------


@dataclass(frozen=True)
class Unbound:
    """A publisher the hub cannot bind to a registered system: answered on direct reply-to."""

    url: str  # a broker account on the hub's virtual host
    user_id: str | None  # what the message says (None: no user_id property at all)


@dataclass
class World:
    kit: HubKit
    roles: dict[str, Agency]  # a: the attacker, b: its victim, c: a bystander, ...
    probe: AbstractChannel  # guest's channel on the vhost: counts every queue
    ca: Credential
    rogue: Unbound  # a broker account with a system's permissions, but no registration
    keys: dict[str, SigningKey]  # other credentials for the attacker's organ (see world())
    setups: dict[str, Any] = field(default_factory=dict)  # what builders set up, once
    _numbers: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**6)))

    @property
    def a(self) -> Agency:
        return self.roles["a"]

    @property
    def b(self) -> Agency:
        return self.roles["b"]

    @property
    def c(self) -> Agency:
        return self.roles["c"]

    def fresh_id(self) -> str:
        return f"atk-{uuid.uuid4()}"

    def doc(
        self, sender: str | None = None, to: list[str] | None = None, attachment: bytes = b""
    ) -> DocumentPackage:
        """A new document (its own DocumentId), by default from the attacker to its victim."""
        return document(sender or self.a.organ_id, to or [self.b.organ_id],
                        number=str(next(self._numbers)), attachment=attachment or None)  # fmt: skip

    def signed(self, package: DocumentPackage | None = None) -> bytes:
        """A correctly signed package of the attacker (a fresh document by default)."""
        return self.a.client.sign(package or self.doc())

    async def inboxes(self) -> dict[str, int]:
        """Messages waiting in every registered system's inbox."""
        return {a.organ_id: await self.count(inbox_queue_name(a.organ_id))
                for a in self.kit.agencies.values()}  # fmt: skip

    async def count(self, queue: str) -> int:
        declared = await self.probe.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return int(result.message_count or 0)

    async def drain(self, agency: Agency) -> int:
        """Empty an agency's inbox (raw: no SDK de-duplication, no automatic status 01)."""
        queue = await agency.client.channel.get_queue(
            inbox_queue_name(agency.organ_id), ensure=False)
        drained = 0
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            await message.ack()
            drained += 1
        return drained

    async def receipt_in_inbox(
        self, agency: Agency, message_id: str | None, body: bytes, timeout: float = TIMEOUT
    ) -> tuple[AbstractIncomingMessage, VerifiedReceipt, list[AbstractIncomingMessage]]:
        """The receipt of (message_id, body) from ``agency``'s inbox, and whatever else came
        (``message_id`` None: whatever the receipt names)."""
        queue = await agency.client.channel.get_queue(
            inbox_queue_name(agency.organ_id), ensure=False)
        others: list[AbstractIncomingMessage] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                await asyncio.sleep(0.01)
                continue
            await message.ack()
            if message.type == TYPE_RECEIPT:
                verified = agency.client.verify_receipt(bytes(message.body))
                if _answers(verified, message_id, body):
                    return message, verified, others
            others.append(message)
        raise AssertionError(f"no receipt for {message_id!r} in {agency.organ_id}'s inbox")

    async def reset_hub(self) -> None:
        """A new hub, once every submission still queued or parked for a retry is dropped."""
        await self.kit.stop_hub()
        retries = [retry_queue_name(level) for level in range(1, len(RETRY_DELAYS) + 1)]
        for name in (SUBMIT_QUEUE, *retries):
            await (await self.probe.declare_queue(name, passive=True)).purge()
        await self.kit.start_hub(max_submission_bytes=MAX_SUBMISSION_BYTES)

    async def accepted(self, key: str, package: DocumentPackage,
                       sender: Agency | None = None) -> tuple[str, bytes, VerifiedReceipt]:
        """Send a legitimate package once (cached under ``key``); wait for its receipt in the
        sender's inbox, which the hub publishes after the deliveries."""
        if key not in self.setups:
            sender = sender or self.a
            signed, message_id = sender.client.sign(package), self.fresh_id()
            await sender.client.send(signed, message_id=message_id)
            _, receipt, _ = await self.receipt_in_inbox(sender, message_id, signed)
            assert receipt.receipt.event == "accepted", receipt.receipt.reason
            self.setups[key] = (message_id, signed, receipt)
        found: tuple[str, bytes, VerifiedReceipt] = self.setups[key]
        return found


def _answers(verified: VerifiedReceipt, message_id: str | None, body: bytes) -> bool:
    receipt = verified.receipt
    if receipt.package_sha256 != sha256_hex(body):
        return False
    if message_id is None or not valid_message_id(message_id):
        # A malformed or missing id is stated in words the SDK can read, never echoed raw.
        return receipt.message_id.startswith(("invalid message_id", "no message_id"))
    return receipt.message_id == message_id


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=STORES)
async def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    amqp_base_url: str, management_base_url: str,
) -> AsyncIterator[World]:  # fmt: skip
    """The shared hub, once on each store engine (what a refusal stores is checked on both)."""
    from axis.provision import Management, generate_password

    management = Management(management_base_url)
    vhost = f"t{uuid.uuid4().hex[:12]}"
    management.ensure_vhost(vhost)
    management.set_permissions(vhost, "guest", ".*", ".*", ".*")
    rogue_user, rogue_password = organ("ROGUE"), generate_password()
    kit: HubKit | None = None
    probe: AbstractConnection | None = None
    with contextlib.ExitStack() as databases:
        db_url = None
        if request.param == "postgresql":
            db_url = databases.enter_context(
                postgres_database(request.getfixturevalue("postgres_base_url"), vhost))
        try:
            kit = await make_kit(Path(tmp_path_factory.mktemp("attacks")), amqp_base_url,
                                 management_base_url, vhost, db_url)  # fmt: skip
            hub = await kit.start_hub(max_submission_bytes=MAX_SUBMISSION_BYTES)
            roles = {role: await kit.agency(organ(role.upper()))
                     for role in ("a", "b", "c", "suspended", "halted")}  # fmt: skip
            for role in ("suspended", "halted"):
                kit.store.set_system_active(roles[role].organ_id, False)
            ca = Credential(key_pem=kit.pki.ca_key.read_bytes(),
                            cert_pem=kit.pki.ca_cert.read_bytes())  # fmt: skip
            keys = _attacker_keys(kit, ca, roles["a"])
            await hub.refresh_registry()
            management.create_system_account(vhost, rogue_user, rogue_password)
            probe = await aio_pika.connect(vhost_url(amqp_base_url, vhost))
            rogue_url = _account_url(vhost_url(amqp_base_url, vhost), rogue_user, rogue_password)
            yield World(kit, roles, await probe.channel(), ca, Unbound(rogue_url, rogue_user),
                        keys)
        finally:
            if probe is not None:
                await probe.close()
            if kit is not None:
                await close_kit(kit)
            management.delete_user(rogue_user)
            management.delete_vhost(vhost)


def _attacker_keys(kit: HubKit, ca: Credential, a: Agency) -> dict[str, SigningKey]:
    """Credentials for the attacker's own organ, from the hub's CA, each in some bad state."""
    now = datetime.now(UTC)

    def issue(not_before: datetime | None = None, not_after: datetime | None = None) -> Credential:
        return issue_agency(ca, a.organ_id, a.name, now, not_before=not_before,
                            not_after=not_after)  # fmt: skip

    unregistered, revoked = issue(), issue()
    expired = issue(not_before=now - timedelta(days=400), not_after=now - timedelta(days=1))
    early = issue(not_before=now + timedelta(days=2), not_after=now + timedelta(days=30))
    for credential in (revoked, expired, early):
        kit.store.add_certificate(a.organ_id, credential.cert_pem)
    kit.store.revoke_certificate(a.organ_id, fingerprint(revoked.certificate))
    foreign_ca = new_ca("Some other CA", now)
    return {
        "unregistered": unregistered.signing_key(),
        "revoked": revoked.signing_key(),
        "expired": expired.signing_key(),
        "not-yet-valid": early.signing_key(),
        "foreign-ca": issue_agency(foreign_ca, a.organ_id, a.name, now).signing_key(),
    }


def _account_url(base: str, user: str, password: str) -> str:
    parts = urlsplit(base)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# -- attacks and how a case builds one --------------------------------------------------------


class _Fresh(Enum):
    ID = "a new consignment id"


FRESH = _Fresh.ID
Stored = Literal["row", "counted", "kept"]


@dataclass(frozen=True)
class Attack:
    """One hostile submission: the bytes, who publishes them and how."""

    body: bytes
    sender: Agency | Unbound
    message_id: str | None  # None: no message_id property
    kind: str = EDOC_KEY  # the routing key
    headers: dict[str, str] = field(default_factory=dict)
    check: Callable[[], Awaitable[None]] | None = None  # the case's own extra assertions
    wire_patch: tuple[bytes, bytes] = (b"", b"")  # see _raw_publish

    @property
    def user_id(self) -> str:
        """The user the store files the submission under ('' when there is none)."""
        if isinstance(self.sender, Agency):
            return self.sender.organ_id
        return self.sender.user_id or ""


Build = Callable[[World], Awaitable[Attack]]


def sends(
    body: Callable[[World], bytes],
    *,
    by: str = "a",
    kind: str = EDOC_KEY,
    message_id: str | _Fresh | None = FRESH,
    headers: Callable[[World], dict[str, str]] | None = None,
    wire_patch: tuple[bytes, bytes] = (b"", b""),
) -> Build:
    """The builder of a plain case: ``body(world)`` published by role ``by``."""

    async def build(w: World) -> Attack:
        mid = w.fresh_id() if message_id is FRESH else message_id
        return Attack(body(w), w.roles[by], mid, kind, headers(w) if headers else {},
                      wire_patch=wire_patch)  # fmt: skip

    return build


@dataclass(frozen=True)
class HubCase:
    id: str
    build: Build
    code: str  # the error code of the signed rejected receipt
    stored: Stored = "row"  # row: a rejected submission; counted: a refusal count only;
    # kept: an earlier submission under that id, unchanged (Attack.check looks at it)
    bug: str = ""  # a known hub bug: a strict xfail saying so (remove it once fixed); the
    # case waits briefly, then the hub restarts on purged queues (no poison outlives it)
    fails_with: type[Exception] = AssertionError  # how the bug shows, meanwhile

    def param(self) -> Any:
        marks = [pytest.mark.xfail(strict=True, raises=self.fails_with,
                                   reason=f"BUG: {self.bug}")] if self.bug else []  # fmt: skip
        return pytest.param(self, id=self.id, marks=marks)


# -- bodies ----------------------------------------------------------------------------------


def _edit(raw: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = parse_tree(raw)
    change(root)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _after_declaration(raw: bytes, insert: bytes) -> bytes:
    declaration, rest = raw.split(b"?>", 1)
    return declaration + b"?>" + insert + rest


def _truncated(w: World) -> bytes:
    signed = w.signed()
    return signed[: len(signed) // 2]


def _utf16(w: World) -> bytes:
    text = build_package(w.doc()).decode("utf-8").replace("UTF-8", "UTF-16", 1)
    return text.encode("utf-16")


def _doctype(w: World) -> bytes:
    return _after_declaration(w.signed(), b"<!DOCTYPE edXML>")


def _xxe(w: World) -> bytes:
    dtd = b'<!DOCTYPE edXML [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    return _after_declaration(w.signed().replace(b"V/v th", b"&xxe;V/v th", 1), dtd)


def _external_dtd(w: World) -> bytes:
    return _after_declaration(w.signed(), b'<!DOCTYPE edXML SYSTEM "http://127.0.0.1:9/x.dtd">')


def _doctype_behind_comment(w: World) -> bytes:
    return _after_declaration(w.signed(), b"<!-- " + b"x" * 4096 + b" --><!DOCTYPE edXML>")


def _billion_laughs(_: World) -> bytes:
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    return (f'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY l0 "lol">{entities}]>'
            "<edXML>&l9;</edXML>").encode()  # fmt: skip


def _undeclared_entity(w: World) -> bytes:
    return w.signed().replace(b"V/v th", b"&xxe;V/v th", 1)


def _too_deep(_: World) -> bytes:
    return b"<edXML>" + b"<a>" * 200 + b"</a>" * 200 + b"</edXML>"


def _oversize(w: World) -> bytes:
    attachment = os.urandom(MAX_SUBMISSION_BYTES)  # random: the builder zips attachments
    body = w.signed(w.doc(attachment=attachment))
    assert len(body) > MAX_SUBMISSION_BYTES
    return body


def _schema_violation(w: World) -> bytes:
    return w.a.client.sign(build_package(w.doc()).replace(b"<Subject>", b"<Bogus/><Subject>"))


def _status(w: World, by: str, about: DocumentPackage | ResponseFor, code: StatusCode) -> bytes:
    agency = w.roles[by]
    package = status_package(Organization(agency.organ_id), about, code, "tấn công",
                             datetime.now(UTC))  # fmt: skip
    return agency.client.sign(package)


def _signed_by(key: str) -> Callable[[World], bytes]:
    """The attacker's package, signed with one of ``World.keys`` instead of its own key."""
    return lambda w: sign_package(build_package(w.doc()), w.keys[key])


def _b_signed_from_a(w: World) -> bytes:
    return w.b.client.sign(w.doc())


def _legacy_signed(w: World, package: DocumentPackage, method: SignatureMethod,
                   digest: DigestAlgorithm, reference_uri: str | None = None,
                   prepare: Callable[[etree._Element], None] | None = None) -> bytes:
    """Signed by signxml (which can make what Axis never would), the signature then moved
    where edXML has it (in edXMLHeader), so the package still passes the XSD."""
    root = parse_tree(build_package(package))
    if prepare is not None:
        prepare(root)
    key = w.a.client.config.signing_key
    signed = parse_tree(_sign_with_signxml(root, key.private_key, key.certificate, method,
                                           digest, reference_uri=reference_uri))  # fmt: skip
    header, signature = signed.find(f".//{edxml('edXMLHeader')}"), signed[-1]
    assert header is not None and signature.tag == ds("Signature")
    header.append(signature)  # the enveloped transform removes it wherever it is
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def _sha1(w: World) -> bytes:
    return _legacy_signed(w, w.doc(), SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA1)


def _manifest_reference_id(root: etree._Element) -> None:
    # The one edXML element with an open attribute (ReferenceType: anyAttribute ##other).
    reference = root.find(f".//{edxml('edXMLManifest')}/{edxml('Reference')}")
    assert reference is not None
    reference.set("{http://www.w3.org/XML/1998/namespace}id", "part")


def _sub_element_signature(w: World) -> bytes:
    package = w.doc(attachment=b"%PDF-1.7")  # so the manifest has a Reference
    return _legacy_signed(w, package, SignatureMethod.RSA_SHA256, DigestAlgorithm.SHA256,
                          reference_uri="#part", prepare=_manifest_reference_id)  # fmt: skip


def _signature_inside_signature(root: etree._Element) -> None:
    signature = root.find(f".//{ds('Signature')}")
    assert signature is not None
    wrapper = etree.SubElement(signature, ds("Object"))
    wrapper.append(copy.deepcopy(signature))


def _forged_envelope_in_object(root: etree._Element) -> None:
    # A second, forged envelope where a naive recipient parser might read it.
    signature = root.find(f".//{ds('Signature')}")
    envelope = root.find(edxml("edXMLEnvelope"))
    assert signature is not None and envelope is not None
    forged = copy.deepcopy(envelope)
    for inner in forged.iter(ds("Signature")):  # the copy must not look like a 2nd signature
        parent = inner.getparent()
        assert parent is not None
        parent.remove(inner)
        break
    subject = forged.find(f".//{edxml('Subject')}")
    if subject is not None:
        subject.text = "Giả mạo"
    etree.SubElement(signature, ds("Object")).append(forged)


def _foreign_element_in_key_info(root: etree._Element) -> None:
    key_info = root.find(f".//{ds('KeyInfo')}")
    assert key_info is not None
    etree.SubElement(key_info, "{urn:attacker}Hint").text = "x"


def _to(organ_id: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        found = root.find(f".//{edxml('To')}/{edxml('OrganId')}")
        assert found is not None
        found.text = organ_id
    return change


def _forged_envelope_first(w: World) -> Callable[[etree._Element], None]:
    """Classic wrapping: a forged copy of the signed envelope (to the bystander) in front."""

    def change(root: etree._Element) -> None:
        envelope = root.find(edxml("edXMLEnvelope"))
        assert envelope is not None
        forged = copy.deepcopy(envelope)
        _to(w.c.organ_id)(forged)
        envelope.addprevious(forged)
    return change


def _replayed(w: World) -> bytes:
    """The victim's own signed package (From B), as the attacker would replay it."""
    return w.b.client.sign(w.doc(w.b.organ_id, [w.c.organ_id]))


def _replayed_from_rewritten(w: World) -> bytes:
    return _replayed(w).replace(w.b.organ_id.encode(), w.a.organ_id.encode())


# -- builders that need a setup -----------------------------------------------------------------


async def _shared_document(w: World) -> DocumentPackage:
    """One accepted document from the attacker to its victim, for the status cases."""
    if "shared-document" not in w.setups:
        w.setups["shared-document"] = w.doc()
    package: DocumentPackage = w.setups["shared-document"]
    await w.accepted("shared", package)
    return package


def _status_case(by: str, code: StatusCode) -> Build:
    async def build(w: World) -> Attack:
        package = await _shared_document(w)
        return Attack(_status(w, by, package, code), w.roles[by], w.fresh_id(), STATUS_KEY)
    return build


async def _status_unknown_document(w: World) -> Attack:
    never_sent = w.doc(w.b.organ_id, [w.a.organ_id])
    body = _status(w, "a", never_sent, StatusCode.ACCEPTED)
    return Attack(body, w.a, w.fresh_id(), STATUS_KEY)


async def _status_ambiguous_document(w: World) -> Attack:
    """Two organs' documents share a DocumentId; a status naming no organ cannot pick one."""
    first = w.doc(w.a.organ_id, [w.b.organ_id])
    second = dataclasses.replace(w.doc(w.c.organ_id, [w.b.organ_id]),
                                 document_id=first.document_id)  # fmt: skip
    await w.accepted("ambiguous-1", first, w.a)
    await w.accepted("ambiguous-2", second, w.c)
    body = _status(w, "b", ResponseFor(document_id=first.document_id), StatusCode.ACCEPTED)
    return Attack(body, w.b, w.fresh_id(), STATUS_KEY)


async def _duplicate_conflict(w: World) -> Attack:
    message_id, original, first = await w.accepted("conflict-original", w.doc())
    dead_before = await w.count(DEAD_QUEUE)

    async def check() -> None:
        kept = w.kit.store.find_submission(w.a.organ_id, message_id)
        assert kept is not None and kept.outcome == "accepted" and not kept.error_code
        assert kept.sha256 == sha256_hex(original) and kept.receipt == first.raw
        again = await w.a.client.wait_receipt(message_id, TIMEOUT)
        assert again.raw == first.raw  # the receipt of that consignment did not change
        # The conflicting bytes go to axis.dead for the operator (just after the receipt).
        assert await _eventually(lambda: w.count(DEAD_QUEUE), dead_before + 1)

    return Attack(w.signed(), w.a, message_id, check=check)


async def _missing_user_id(w: World) -> Attack:
    url = w.a.profile.broker_url()
    return Attack(w.signed(), Unbound(url, None), w.fresh_id())


async def _unregistered_account(w: World) -> Attack:
    return Attack(w.signed(), w.rogue, w.fresh_id())


HUB_CASES = [
    # -- the bytes: not XML, hostile XML, too big (envelopes/xmlsafe.py, decide steps 3-6)
    HubCase("not-xml", sends(lambda _: b"this is not xml"), "envelope.malformed_xml"),
    HubCase("empty-body", sends(lambda _: b""), "envelope.malformed_xml"),
    HubCase("truncated-xml", sends(_truncated), "envelope.malformed_xml"),
    HubCase("utf-16", sends(_utf16), "envelope.malformed_xml"),
    HubCase("doctype", sends(_doctype), "envelope.forbidden_construct"),
    HubCase("doctype-behind-comment", sends(_doctype_behind_comment),
            "envelope.forbidden_construct"),
    HubCase("xxe-external-entity", sends(_xxe), "envelope.forbidden_construct"),
    HubCase("external-dtd", sends(_external_dtd), "envelope.forbidden_construct"),
    HubCase("billion-laughs", sends(_billion_laughs), "envelope.forbidden_construct"),
    HubCase("undeclared-entity-reference", sends(_undeclared_entity), "envelope.malformed_xml"),
    HubCase("too-deep", sends(_too_deep), "envelope.too_deep"),
    HubCase("oversize", sends(_oversize), "submission.too_large"),
    HubCase("schema-violation", sends(_schema_violation), "envelope.schema_violation"),
    # -- routing key and consignment id (steps 1, 2, 5)
    HubCase("edoc-under-status-key", sends(lambda w: w.signed(), kind=STATUS_KEY),
            "submission.unknown_kind"),
    HubCase("status-under-edoc-key",
            sends(lambda w: _status(w, "a", w.doc(), StatusCode.ACCEPTED)),
            "submission.unknown_kind"),
    HubCase("message-id-empty",
            sends(lambda w: w.signed(), message_id="EMPTY", wire_patch=(b"\x05EMPTY", b"\x00")),
            "submission.invalid_message_id", "counted"),
    HubCase("message-id-missing", sends(lambda w: w.signed(), message_id=None),
            "submission.invalid_message_id", "counted"),
    HubCase("message-id-129-chars", sends(lambda w: w.signed(), message_id="x" * 129),
            "submission.invalid_message_id", "counted"),
    HubCase("message-id-with-space", sends(lambda w: w.signed(), message_id="atk 1"),
            "submission.invalid_message_id", "counted"),
    HubCase("message-id-control-char", sends(lambda w: w.signed(), message_id="atk\x07"),
            "submission.invalid_message_id", "counted"),
    HubCase("message-id-not-utf8",
            sends(lambda w: w.signed(), message_id="atk-not-utf8-XXXX",
                  wire_patch=(b"utf8-XXXX", b"utf8-\xff\xfe\xfd\xfc")),
            "submission.invalid_message_id", "counted"),
    HubCase("message-id-non-ascii", sends(lambda w: w.signed(), message_id="atk-đ"),
            "submission.invalid_message_id", "counted"),
    # -- the signature (step 9)
    HubCase("unsigned", sends(lambda w: build_package(w.doc())), "signature.missing"),
    HubCase("tampered-after-signing",
            sends(lambda w: w.signed().replace(b"V/v th", b"V/v TH", 1)), "signature.invalid"),
    HubCase("cert-same-ca-not-registered", sends(_signed_by("unregistered")),
            "signature.certificate_not_registered"),
    HubCase("cert-of-a-foreign-ca", sends(_signed_by("foreign-ca")),
            "signature.certificate_not_registered"),
    HubCase("cert-registered-to-another-system", sends(_b_signed_from_a),
            "signature.certificate_not_registered"),
    HubCase("cert-revoked", sends(_signed_by("revoked")), "signature.revoked_certificate"),
    HubCase("cert-expired", sends(_signed_by("expired")), "signature.expired_certificate"),
    HubCase("cert-not-yet-valid", sends(_signed_by("not-yet-valid")),
            "signature.certificate_not_yet_valid"),
    HubCase("sha1-signature", sends(_sha1), "signature.algorithm_refused"),
    HubCase("second-signature-at-root",
            sends(lambda w: _edit(w.signed(), _duplicate_signature)), "envelope.schema_violation"),
    HubCase("second-signature-inside-first",
            sends(lambda w: _edit(w.signed(), _signature_inside_signature)),
            "signature.multiple_signatures"),
    HubCase("forged-envelope-in-ds-object",
            sends(lambda w: _edit(w.signed(), _forged_envelope_in_object)),
            "signature.unexpected_content"),
    HubCase("foreign-element-in-key-info",
            sends(lambda w: _edit(w.signed(), _foreign_element_in_key_info)),
            "signature.unexpected_content"),
    HubCase("reference-uri-to-sub-element", sends(_sub_element_signature),
            "signature.reference_not_whole_document"),
    HubCase("reference-uri-rewritten", sends(lambda w: _edit(w.signed(), _set_uri("#mh"))),
            "signature.reference_not_whole_document"),
    HubCase("wrap-second-message-header",
            sends(lambda w: _edit(w.signed(), _add_second_message_header)),
            "envelope.schema_violation"),
    HubCase("wrap-forged-envelope-first",
            sends(lambda w: _edit(w.signed(), _forged_envelope_first(w))),
            "envelope.schema_violation"),
    HubCase("wrap-recipient-rewritten", sends(lambda w: _edit(w.signed(), _to(w.c.organ_id))),
            "signature.invalid"),
    # -- sender and recipients (steps 7, 8, 10)
    HubCase("from-organ-not-served", sends(lambda w: w.signed(w.doc(w.c.organ_id))),
            "sender.organ_not_served"),
    HubCase("replay-others-package", sends(_replayed), "sender.organ_not_served"),
    HubCase("replay-with-from-rewritten", sends(_replayed_from_rewritten),
            "signature.certificate_not_registered"),
    HubCase("spoofed-origin-header",
            sends(_replayed, headers=lambda w: {H_ORIGIN_USER: w.b.organ_id, H_ATTEMPT: "3"}),
            "sender.organ_not_served"),
    HubCase("unknown-recipient", sends(lambda w: w.signed(w.doc(to=[organ("NOBODY")]))),
            "recipient.unknown"),
    HubCase("suspended-recipient",
            sends(lambda w: w.signed(w.doc(to=[w.roles["suspended"].organ_id]))),
            "recipient.suspended"),
    HubCase("suspended-sender",
            sends(lambda w: w.roles["halted"].client.sign(
                w.doc(w.roles["halted"].organ_id)), by="halted"),
            "sender.system_suspended"),
    HubCase("no-user-id", _missing_user_id, "sender.missing_user_id", "counted"),
    HubCase("broker-account-not-a-system", _unregistered_account, "sender.unknown_system"),
    # -- status packages (route_status)
    # Not status.unknown_document: the hub does not tell "no such document" from "not
    # yours" (routing/decide.py route_status), so a status cannot probe for documents.
    HubCase("status-unknown-document", _status_unknown_document, "status.not_a_party"),
    HubCase("status-from-a-stranger", _status_case("c", StatusCode.ACCEPTED),
            "status.not_a_party"),
    HubCase("status-13-from-recipient", _status_case("b", StatusCode.TAKE_BACK_REQUEST),
            "status.code_refused"),
    HubCase("status-03-from-sender", _status_case("a", StatusCode.ACCEPTED),
            "status.code_refused"),
    HubCase("status-ambiguous-document-id", _status_ambiguous_document,
            "status.unknown_document"),
    # -- the consignment id (routing/hub.py)
    HubCase("same-id-other-bytes", _duplicate_conflict, "submission.duplicate_conflict",
            "kept"),
]


# -- the hub cases --------------------------------------------------------------------------


async def _publish(w: World, attack: Attack) -> None:
    """Publish as a registered system would, but with exactly the attack's properties."""
    sender = attack.sender
    assert isinstance(sender, Agency)
    headers: dict[str, Any] | None = dict(attack.headers) or None
    if not attack.message_id or attack.wire_patch[0]:
        properties = commands.Basic.Properties(
            content_type=XML, delivery_mode=2, message_id=attack.message_id,
            user_id=sender.organ_id, headers=headers)  # fmt: skip
        await _raw_publish(sender.profile.broker_url(), SUBMIT_EXCHANGE, attack.kind,
                           attack.body, properties, attack.wire_patch)  # fmt: skip
        return
    exchange = await sender.client.channel.get_exchange(SUBMIT_EXCHANGE, ensure=False)
    await exchange.publish(
        aio_pika.Message(attack.body, message_id=attack.message_id, user_id=sender.organ_id,
                         content_type=XML, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                         headers=headers),
        attack.kind, mandatory=True,
    )


async def _publish_unbound(
    w: World, attack: Attack
) -> tuple[AbstractIncomingMessage, VerifiedReceipt]:
    """Publish with reply_to = direct reply-to; the receipt must come back there."""
    assert isinstance(attack.sender, Unbound)
    connection = await aio_pika.connect(attack.sender.url)
    try:
        channel = await connection.channel()
        answers: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        reply = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await reply.consume(answers.put, no_ack=True)
        exchange = await channel.get_exchange(SUBMIT_EXCHANGE, ensure=False)
        user_id = attack.sender.user_id
        await exchange.publish(
            aio_pika.Message(attack.body, message_id=attack.message_id, user_id=user_id,
                             content_type=XML, reply_to=DIRECT_REPLY_TO),
            attack.kind,
        )
        message = await asyncio.wait_for(answers.get(), TIMEOUT)
    finally:
        await connection.close()
    verified = w.a.client.verify_receipt(bytes(message.body))
    assert _answers(verified, attack.message_id or "", attack.body)
    assert message.correlation_id == attack.message_id
    return message, verified


async def _raw_publish(
    url: str, exchange: str, routing_key: str, body: bytes,
    properties: commands.Basic.Properties, patch: tuple[bytes, bytes] = (b"", b""),
) -> None:
    """Publish ``body`` with exactly ``properties`` over a bare AMQP 0-9-1 connection.

    aiormq invents a message_id for a publish that has none (or an empty one); other clients
    do not, so the hub must cope with both. ``patch`` replaces bytes of the marshalled content
    header, to put on the wire what pamqp will not encode (an empty or a non-UTF-8
    shortstr). Returns once the broker confirmed the publish.
    """
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 5672)
    received = b""

    async def expect(kind: type[FrameT]) -> FrameT:
        nonlocal received
        while True:
            try:
                used, _, value = frame.unmarshal(received)
            except pamqp.exceptions.UnmarshalingException:
                received += await asyncio.wait_for(reader.read(65536), TIMEOUT)
                continue
            received = received[used:]
            assert isinstance(value, kind), f"expected {kind.__name__}, got {value!r}"
            return value

    def send(value: frame.FrameTypes, channel: int = 0) -> None:
        writer.write(frame.marshal(value, channel))

    try:
        send(pamqp.header.ProtocolHeader())
        await expect(commands.Connection.Start)
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        send(commands.Connection.StartOk(response=f"\0{user}\0{password}"))
        tune = await expect(commands.Connection.Tune)
        send(commands.Connection.TuneOk(tune.channel_max, tune.frame_max, 0))
        send(commands.Connection.Open(unquote(parts.path[1:]) or "/"))
        await expect(commands.Connection.OpenOk)
        send(commands.Channel.Open(), 1)
        await expect(commands.Channel.OpenOk)
        send(commands.Confirm.Select(), 1)
        await expect(commands.Confirm.SelectOk)
        content = frame.marshal(pamqp.header.ContentHeader(0, len(body), properties), 1)
        if patch[0]:  # frame: type (1 byte), channel (2), payload size (4), payload, end
            assert content.count(patch[0]) == 1
            payload = content[7:-1].replace(*patch)
            content = content[:3] + struct.pack(">I", len(payload)) + payload + content[-1:]
        send(commands.Basic.Publish(exchange=exchange, routing_key=routing_key), 1)
        writer.write(content)
        send(pamqp.body.ContentBody(body), 1)
        await expect(commands.Basic.Ack)
        send(commands.Connection.Close(200, "bye", 0, 0))
        await expect(commands.Connection.CloseOk)
    finally:
        writer.close()


async def _eventually(probe: Callable[[], Awaitable[int]], want: int) -> bool:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while (got := await probe()) != want and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    return got == want


def _header(message: AbstractIncomingMessage, name: str) -> str:
    value = (message.headers or {}).get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.mark.parametrize("case", [c.param() for c in HUB_CASES])
async def test_hub_refuses(world: World, case: HubCase) -> None:
    try:
        await _refused_by_hub(world, case)
    finally:
        if case.bug:
            await world.reset_hub()


async def _refused_by_hub(world: World, case: HubCase) -> None:
    attack = await case.build(world)
    sender = attack.sender
    if isinstance(sender, Agency):
        await world.drain(sender)  # what a setup left there
    before = await world.inboxes()
    if isinstance(sender, Agency):
        await _publish(world, attack)
        named = None if attack.wire_patch[0] else attack.message_id or ""
        message, verified, extras = await world.receipt_in_inbox(
            sender, named, attack.body, timeout=1.0 if case.bug else TIMEOUT)
        assert [(m.type, m.message_id) for m in extras] == []  # only the receipt came
        assert named is None or message.correlation_id == (named or None)
    else:
        message, verified = await _publish_unbound(world, attack)

    # (1) the signed receipt and its header say the same, exact, code
    receipt = verified.receipt
    assert (receipt.event, receipt.error_code) == ("rejected", case.code), receipt.reason
    assert receipt.reason
    assert _header(message, H_ERROR_CODE) == case.code
    assert receipt.sender_system == attack.user_id
    world.a.client.verify_receipt(bytes(message.body), attack.body)  # names these bytes

    # (2) nothing was delivered to anyone (the attacker's receipt was taken off its inbox)
    assert await world.inboxes() == {k: v if k != attack.user_id else 0
                                     for k, v in before.items()}  # fmt: skip

    # (3) what the store kept
    store = world.kit.store
    row = store.find_submission(attack.user_id, attack.message_id or "")
    if case.stored == "row":
        assert row is not None, "the refusal was not stored"
        assert (row.outcome, row.error_code) == ("rejected", case.code)
        assert row.sha256 == sha256_hex(attack.body) and row.receipt == bytes(message.body)
    elif case.stored == "counted":
        assert row is None
        assert any(r["user_id"] == attack.user_id and r["sha256"] == sha256_hex(attack.body)
                   and r["error_code"] == case.code for r in store.refusal_counts())
    if attack.check is not None:
        await attack.check()


# -- the broker cases ------------------------------------------------------------------------


BrokerAttempt = Callable[[World, AbstractChannel], Awaitable[object]]


@dataclass(frozen=True)
class BrokerCase:
    id: str
    attempt: BrokerAttempt  # run on a fresh confirming channel of the attacker's account
    refusal: str  # what the broker answers (the channel-close reply text, or NO_ROUTE)


def _publish_to(exchange: str, key: Callable[[World], str],
                **properties: Any) -> BrokerAttempt:  # fmt: skip
    """Publish the attacker's package to ``exchange`` (mandatory); a callable property is
    given the world first."""

    async def attempt(w: World, channel: AbstractChannel) -> object:
        target = (channel.default_exchange if exchange == ""
                  else await channel.get_exchange(exchange, ensure=False))  # fmt: skip
        message = aio_pika.Message(w.signed(), message_id=w.fresh_id(), **{
            k: v(w) if callable(v) else v for k, v in properties.items()})
        return await target.publish(message, key(w), mandatory=True)
    return attempt


async def _ignore(_: AbstractIncomingMessage) -> None:
    """A consumer that never gets anything (the broker refuses the subscription)."""


def _on_queue(queue: Callable[[World], str], action: str) -> BrokerAttempt:
    async def attempt(w: World, channel: AbstractChannel) -> object:
        target = await channel.get_queue(queue(w), ensure=False)
        if action == "get":
            return await target.get(fail=False)
        if action == "consume":
            return await target.consume(_ignore)
        if action == "purge":
            return await target.purge()
        if action == "delete":
            return await target.delete(if_unused=False, if_empty=False)
        if action == "bind":  # eavesdrop: the victim's deliveries into one's own inbox
            deliver = await channel.get_exchange(DELIVER_EXCHANGE, ensure=False)
            return await target.bind(deliver, routing_key=w.b.organ_id)
        raise AssertionError(action)
    return attempt


async def _declare(w: World, channel: AbstractChannel) -> object:
    return await channel.declare_queue(f"axis.inbox.{organ('MINE')}", durable=True)


def _b_inbox(w: World) -> str:
    return inbox_queue_name(w.b.organ_id)


def _a_inbox(w: World) -> str:
    return inbox_queue_name(w.a.organ_id)


_REFUSED = "ACCESS_REFUSED"
BROKER_CASES = [
    BrokerCase("forged-user-id",
               _publish_to(SUBMIT_EXCHANGE, lambda _: EDOC_KEY, user_id=lambda w: w.b.organ_id),
               "PRECONDITION_FAILED"),
    BrokerCase("hub-user-id-relaying-for-another",
               _publish_to(SUBMIT_EXCHANGE, lambda _: EDOC_KEY, user_id="guest",
                           headers=lambda w: {H_ORIGIN_USER: w.b.organ_id}),
               "PRECONDITION_FAILED"),
    BrokerCase("unknown-routing-key", _publish_to(SUBMIT_EXCHANGE, lambda _: "admin",
                                                  user_id=lambda w: w.a.organ_id), "NO_ROUTE"),
    BrokerCase("get-from-another-inbox", _on_queue(_b_inbox, "get"), _REFUSED),
    BrokerCase("consume-another-inbox", _on_queue(_b_inbox, "consume"), _REFUSED),
    BrokerCase("purge-another-inbox", _on_queue(_b_inbox, "purge"), _REFUSED),
    BrokerCase("delete-another-inbox", _on_queue(_b_inbox, "delete"), _REFUSED),
    BrokerCase("bind-victims-key-to-own-inbox", _on_queue(_a_inbox, "bind"), _REFUSED),
    BrokerCase("consume-submit-queue", _on_queue(lambda _: SUBMIT_QUEUE, "consume"), _REFUSED),
    BrokerCase("get-dead-letters", _on_queue(lambda _: DEAD_QUEUE, "get"), _REFUSED),
    BrokerCase("declare-a-queue", _declare, _REFUSED),
    BrokerCase("publish-to-axis.deliver",
               _publish_to(DELIVER_EXCHANGE, lambda w: w.b.organ_id, type="edoc"), _REFUSED),
    BrokerCase("publish-to-default-exchange", _publish_to("", _b_inbox), _REFUSED),
    BrokerCase("publish-to-axis.retry",
               _publish_to(RETRY_EXCHANGE, lambda _: EDOC_KEY,
                           headers=lambda w: {H_ORIGIN_USER: w.b.organ_id}), _REFUSED),
    BrokerCase("publish-to-axis.dead", _publish_to(DEAD_EXCHANGE, lambda _: EDOC_KEY), _REFUSED),
]


@pytest.mark.parametrize("case", BROKER_CASES, ids=[c.id for c in BROKER_CASES])
async def test_broker_refuses(world: World, case: BrokerCase) -> None:
    before, stored = await world.inboxes(), world.kit.store.count_submissions()
    connection = await aio_pika.connect(world.a.profile.broker_url())
    try:
        channel = await connection.channel(publisher_confirms=True)
        try:
            result = await case.attempt(world, channel)
        except aiormq.exceptions.AMQPError as refused:
            answer = str(refused)
        else:  # a mandatory publish nobody can route comes back as basic.return
            assert isinstance(result, aiormq.abc.DeliveredMessage), result
            assert isinstance(result.delivery, commands.Basic.Return), result.delivery
            answer = f"{result.delivery.reply_code} {result.delivery.reply_text}"
        assert case.refusal in answer
    finally:
        await connection.close()
    assert await world.inboxes() == before
    assert world.kit.store.count_submissions() == stored

