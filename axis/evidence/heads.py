"""Signed tree heads: the hub's signed statement of the log's size and root at a time (pure).

A head is a small XML document in the namespace ``urn:axis:log:1``, signed by the hub key
with an enveloped XMLDSig exactly like a receipt, so ``xmlsec1 --verify`` checks it::

    <log:TreeHead xmlns:log="urn:axis:log:1" version="1">
      <log:TreeSize>42</log:TreeSize>
      <log:RootHash>…64 lowercase hex digits…</log:RootHash>
      <log:Timestamp>2026-12-05T03:00:00.000000Z</log:Timestamp>
      <ds:Signature>…</ds:Signature>
    </log:TreeHead>
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from axis.evidence.errors import HeadInvalid
from envelopes.errors import AxisError
from envelopes.xmlsafe import XmlLimits, parse_tree
from routing.contract import utc_text
from signing.keys import SigningKey, fingerprint
from signing.sign import sign_document
from signing.verify import VerifyPolicy, verify

LOG_NS = "urn:axis:log:1"
_Q = f"{{{LOG_NS}}}"
_HEAD_LIMITS = XmlLimits(max_bytes=256 * 1024, max_depth=16)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True, slots=True)
class TreeHead:
    """What a head states: the log had ``tree_size`` entries with root ``root_hash`` at
    ``timestamp``."""

    tree_size: int
    root_hash: bytes
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class VerifiedHead:
    """A head whose hub signature verified, with the signer and the signed bytes."""

    head: TreeHead
    signer_subject: str
    signer_fingerprint: str
    raw: bytes = field(default=b"", repr=False)


def head_xml(head: TreeHead) -> bytes:
    """The unsigned head document."""
    root = etree.Element(_Q + "TreeHead", nsmap={"log": LOG_NS})
    root.set("version", "1")
    etree.SubElement(root, _Q + "TreeSize").text = str(head.tree_size)
    etree.SubElement(root, _Q + "RootHash").text = head.root_hash.hex()
    etree.SubElement(root, _Q + "Timestamp").text = utc_text(head.timestamp)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def sign_head(head: TreeHead, hub_key: SigningKey) -> bytes:
    """The head, signed by the hub (enveloped XMLDSig, signature last)."""
    return sign_document(head_xml(head), hub_key)


def read_head(root: etree._Element) -> TreeHead:
    """What a (verified) head tree states; anything else raises ``audit.head_invalid``."""
    if root.tag != _Q + "TreeHead" or root.get("version") != "1":
        raise HeadInvalid(f"root element is {root.tag!r}, not an Axis tree head (version 1)")
    size_text = _child(root, "TreeSize")
    if not size_text.isdigit() or len(size_text) > 18:
        raise HeadInvalid(f"TreeSize {size_text!r} is not a whole number")
    root_text = _child(root, "RootHash")
    if not _HEX64.fullmatch(root_text):
        raise HeadInvalid("RootHash is not 64 lowercase hex digits")
    return TreeHead(int(size_text), bytes.fromhex(root_text), parse_time(_child(root, "Timestamp")))


def unverified_head(raw: bytes) -> TreeHead:
    """What a signed head states, without checking its signature (for display and for
    choosing which proof to ask for; :func:`verify_head` before relying on it)."""
    try:
        return read_head(parse_tree(raw, _HEAD_LIMITS))
    except HeadInvalid:
        raise
    except AxisError as error:
        raise HeadInvalid(f"the tree head does not read: {error.reason}") from error


def verify_head(raw: bytes, policy: VerifyPolicy) -> VerifiedHead:
    """Verify the hub's signature on ``raw`` and read the head it states.

    Every failure (signature, certificate, content) raises ``audit.head_invalid`` with
    the underlying code in the detail ``cause``.
    """
    try:
        verified = verify(parse_tree(raw, _HEAD_LIMITS), policy)
    except AxisError as error:
        raise HeadInvalid(f"the tree head's signature does not verify: {error.reason}",
                          cause=error.code) from error  # fmt: skip
    return VerifiedHead(
        head=read_head(verified.root),
        signer_subject=verified.signer.subject.rfc4514_string(),
        signer_fingerprint=fingerprint(verified.signer),
        raw=raw,
    )


def head_summary(signed: bytes) -> dict[str, object]:
    """Size, root (hex) and time a signed head states, not verified: for display."""
    head = unverified_head(signed)
    return {"tree_size": head.tree_size, "root_hash": head.root_hash.hex(),
            "timestamp": utc_text(head.timestamp)}  # fmt: skip


def parse_time(text: str) -> datetime:
    """The inverse of :func:`routing.contract.utc_text`; anything else raises
    ``audit.head_invalid``."""
    try:
        return datetime.strptime(text, _TIME).replace(tzinfo=UTC)
    except ValueError:
        raise HeadInvalid(f"time {text!r} is not a UTC timestamp") from None


def _child(root: etree._Element, name: str) -> str:
    found = root.find(_Q + name)
    if found is None or not (found.text or "").strip():
        raise HeadInvalid(f"tree head has no {name}", path=f"/TreeHead/{name}")
    return (found.text or "").strip()
