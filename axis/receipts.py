"""Signed receipts: the hub's proof that a submission was accepted, rejected or delivered.

A receipt is a small XML document in the Axis receipt namespace, signed by the hub
with an enveloped XMLDSig (verifiable by ``xmlsec1`` with the hub certificate).
Building, reading and verifying receipts is pure: ids, times and keys come in as
arguments. What a receipt states (:class:`routing.values.Receipt`) is the hub
pipeline's value; :class:`HubReceiptSigner` is the signer the pipeline is given
(:class:`routing.ports.ReceiptSigner`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from axis.errors import ReceiptMalformed, ReceiptPackageMismatch
from envelopes.attachment_refs import AttachmentRef
from envelopes.xmlsafe import XmlLimits, parse_tree
from routing.contract import utc_text
from routing.values import RECEIPT_EVENTS, Receipt, sha256_hex
from signing.fixed_sign import sign_enveloped
from signing.keys import SigningKey, fingerprint
from signing.verify import VerifyPolicy, verify

RECEIPT_NS = "urn:axis:receipt:1"
_RECEIPT_LIMITS = XmlLimits(max_bytes=1024 * 1024, max_depth=16)
_Q = f"{{{RECEIPT_NS}}}"


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """A receipt whose hub signature verified, with the certificate that signed it."""

    receipt: Receipt
    signer_subject: str
    signer_fingerprint: str
    raw: bytes = field(default=b"", repr=False)


def receipt_xml(receipt: Receipt) -> bytes:
    """The unsigned receipt document."""
    root = etree.Element(_Q + "Receipt", nsmap={"axis": RECEIPT_NS})
    root.set("version", "1")
    _text(root, "ReceiptId", receipt.receipt_id)
    _text(root, "Event", receipt.event)
    _text(root, "Kind", receipt.kind)
    _text(root, "MessageId", receipt.message_id)
    _text(root, "DocumentId", receipt.document_id)
    sender = etree.SubElement(root, _Q + "Sender")
    _text(sender, "System", receipt.sender_system)
    _text(sender, "Organ", receipt.sender_organ)
    recipients = etree.SubElement(root, _Q + "Recipients")
    if receipt.recipient_system:
        recipients.set("system", receipt.recipient_system)
    for organ in receipt.recipients:
        _text(recipients, "Organ", organ)
    _text(root, "PackageSha256", receipt.package_sha256)
    if receipt.attachments:  # the streamed files the package names, each by its digest
        files = etree.SubElement(root, _Q + "Attachments")
        for ref in receipt.attachments:
            file = _text(files, "Attachment", ref.name)
            file.set("size", str(ref.size))
            file.set("sha256", ref.sha256)
            file.set("contentType", ref.content_type)
    if receipt.signer_fingerprint:
        _text(root, "SignerFingerprint", receipt.signer_fingerprint)
    if receipt.status_code:
        _text(root, "StatusCode", receipt.status_code)
    _text(root, "HubTime", utc_text(receipt.hub_time))
    if receipt.event == "rejected":
        error = _text(root, "Error", receipt.reason)
        error.set("code", receipt.error_code)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def sign_receipt(receipt: Receipt, hub_key: SigningKey) -> bytes:
    """The receipt, signed by the hub (enveloped XMLDSig, signature last).

    ``signing.fixed_sign`` makes the signature ``signing.sign.sign_document`` makes,
    without signxml's copies of the document: the hub signs every receipt it issues.
    """
    return sign_enveloped(receipt_xml(receipt), hub_key)


@dataclass(frozen=True, slots=True)
class HubReceiptSigner:
    """Signs the hub's receipts with its key (a :class:`routing.ports.ReceiptSigner`)."""

    key: SigningKey

    def sign(self, receipt: Receipt) -> bytes:
        """The receipt, signed by the hub."""
        return sign_receipt(receipt, self.key)


def read_receipt(root: etree._Element) -> Receipt:
    """The receipt a (verified) tree states; malformed content raises ``ReceiptMalformed``."""
    if root.tag != _Q + "Receipt":
        raise ReceiptMalformed(f"root element is {root.tag!r}, not an Axis receipt")
    event = _required(root, "Event")
    if event not in RECEIPT_EVENTS:
        raise ReceiptMalformed(f"unknown receipt event {event!r}", path="/Receipt/Event")
    error = root.find(_Q + "Error")
    recipients = root.find(_Q + "Recipients")
    return Receipt(
        receipt_id=_required(root, "ReceiptId"),
        event=event,
        kind=_optional(root, "Kind") or "edoc",
        message_id=_required(root, "MessageId"),
        document_id=_optional(root, "DocumentId"),
        sender_system=_optional(root, "Sender/axis:System"),
        sender_organ=_optional(root, "Sender/axis:Organ"),
        recipients=tuple((e.text or "") for e in (recipients if recipients is not None else [])),
        recipient_system=(recipients.get("system", "") if recipients is not None else ""),
        package_sha256=_required(root, "PackageSha256"),
        hub_time=_parse_time(_required(root, "HubTime")),
        error_code=(error.get("code", "") if error is not None else ""),
        reason=((error.text or "") if error is not None else ""),
        status_code=_optional(root, "StatusCode"),
        signer_fingerprint=_optional(root, "SignerFingerprint"),
        attachments=_attachments(root),
    )


def verify_receipt(
    raw: bytes, policy: VerifyPolicy, package: bytes | None = None
) -> VerifiedReceipt:
    """Verify the hub's signature on ``raw`` and, given ``package``, that it is the one named.

    Raises a ``signature.*`` error for a bad signature or certificate,
    ``receipt.malformed`` for a receipt that does not read, and
    ``receipt.package_mismatch`` when the package's SHA-256 differs.
    """
    verified = verify(parse_tree(raw, _RECEIPT_LIMITS), policy)
    receipt = read_receipt(verified.root)
    if package is not None and sha256_hex(package) != receipt.package_sha256:
        raise ReceiptPackageMismatch(
            "the package's SHA-256 is not the one this receipt names",
            expected=receipt.package_sha256,
            actual=sha256_hex(package),
        )
    return VerifiedReceipt(
        receipt=receipt,
        signer_subject=verified.signer.subject.rfc4514_string(),
        signer_fingerprint=fingerprint(verified.signer),
        raw=raw,
    )


def describe(receipt: Receipt) -> str:
    """One plain sentence saying what the receipt proves."""
    when = utc_text(receipt.hub_time)
    who = f"{receipt.sender_organ or '?'} (system {receipt.sender_system or '?'})"
    doc = f"document {receipt.document_id!r}" if receipt.document_id else "a package"
    to = ", ".join(receipt.recipients) or "no recipient"
    if receipt.event == "accepted":
        files = "".join(f" with file {ref.name!r} ({ref.size} bytes, SHA-256 {ref.sha256})"
                        for ref in receipt.attachments)  # fmt: skip
        return (
            f"At {when} the hub accepted {doc} (consignment {receipt.message_id!r}) "
            f"from {who}{files} and routed it to {to}."
        )
    if receipt.event == "status":
        return (
            f"At {when} the hub routed status {receipt.status_code} about {doc} from "
            f"system {receipt.recipient_system or '?'} (consignment {receipt.message_id!r}) "
            f"to its sender {who}."
        )
    if receipt.event == "delivered":
        return (
            f"At {when} the hub recorded that {doc} (consignment {receipt.message_id!r}) "
            f"from {who} arrived at {to}."
        )
    return (
        f"At {when} the hub rejected consignment {receipt.message_id!r} from {who}: "
        f"{receipt.error_code}: {receipt.reason}"
    )


def _text(parent: etree._Element, name: str, value: str) -> etree._Element:
    child = etree.SubElement(parent, _Q + name)
    child.text = value
    return child


def _attachments(root: etree._Element) -> tuple[AttachmentRef, ...]:
    files = root.find(_Q + "Attachments")
    if files is None:
        return ()
    try:
        return tuple(AttachmentRef(name=f.text or "", size=int(f.get("size", "")),
                                   sha256=f.get("sha256", ""),
                                   content_type=f.get("contentType", "application/octet-stream"))
                     for f in files.iterchildren(_Q + "Attachment"))  # fmt: skip
    except ValueError:
        raise ReceiptMalformed("an Attachment's size is not a number",
                               path="/Receipt/Attachments") from None


def _optional(root: etree._Element, path: str) -> str:
    found = root.find("axis:" + path, namespaces={"axis": RECEIPT_NS})
    return (found.text or "") if found is not None else ""


def _required(root: etree._Element, name: str) -> str:
    value = _optional(root, name)
    if not value:
        raise ReceiptMalformed(f"receipt has no {name}", path=f"/Receipt/{name}")
    return value


def _parse_time(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise ReceiptMalformed(f"HubTime {text!r} is not a UTC timestamp") from None
