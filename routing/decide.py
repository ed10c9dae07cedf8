"""The hub's decision step: pure functions from a submission to a verdict.

No I/O, no clock, no environment: the edge hands in the bytes, the AMQP
properties, the registry snapshot, the CAs' revocation answers (from memory) and
the time, and gets back :class:`Accepted` or :class:`Rejected`. :func:`decide`
never raises; every fault becomes a ``Rejected`` carrying a stable error code.

A status package also needs the parties of the document it refers to, which
only the store knows: :func:`decide` returns :class:`NeedsParties` for it, the
edge looks the parties up and calls :func:`route_status`. Likewise a document
naming streamed files: :class:`NeedsFiles`, and the edge checks that the hub holds
each file whole (:func:`routing.attachment_check.checked_files`, a look at the disk).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from lxml import etree

from envelopes.attachment_refs import AttachmentRef, references
from envelopes.errors import AxisError
from envelopes.model import NS, BusinessDocType, DocumentPackage, Package, StatusPackage
from envelopes.parser import package_kind, read_package
from envelopes.schema import validate_tree
from envelopes.status_codes import StatusCode
from envelopes.xmlsafe import XmlLimits, parse_tree
from routing.contract import SUBMISSION_KEYS
from routing.errors import (
    CertificateNotRegistered,
    InvalidMessageId,
    MissingUserId,
    OrganNotServed,
    RecipientSuspended,
    RevokedCertificate,
    StatusCodeRefused,
    StatusNotAParty,
    StatusUnknownDocument,
    SubmissionTooLarge,
    SystemSuspended,
    UnknownRecipient,
    UnknownRoutingKey,
    UnknownSystem,
)
from routing.ports import RegistryView, RevocationView
from routing.values import DocumentParties, sha256_hex
from signing.errors import CertificateMismatch
from signing.keys import fingerprint
from signing.revocation import RevocationState, RevocationStatus, refusal
from signing.verify import VerifyPolicy, verify

_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,128}")
# Codes a document's recipients send; the original sender only asks to take it back.
RECIPIENT_CODES = frozenset(StatusCode) - {StatusCode.TAKE_BACK_REQUEST}
SENDER_CODES = frozenset({StatusCode.TAKE_BACK_REQUEST})


@dataclass(frozen=True, slots=True)
class Submission:
    """One message consumed from ``axis.submit``."""

    body: bytes
    routing_key: str
    message_id: str | None
    user_id: str | None


@dataclass(frozen=True, slots=True)
class TrustIndex:
    """Each system's registered certificates, parsed once per registry snapshot."""

    by_system: Mapping[str, tuple[x509.Certificate, ...]]

    @classmethod
    def from_snapshot(cls, snapshot: RegistryView) -> TrustIndex:
        return cls(
            {
                system_id: tuple(
                    x509.load_pem_x509_certificate(c.pem) for c in info.certificates.values()
                )
                for system_id, info in snapshot.systems.items()
            }
        )


@dataclass(frozen=True, slots=True)
class HubContext:
    """Everything the decision needs besides the submission."""

    now: datetime
    registry: RegistryView
    trust: TrustIndex
    max_bytes: int = 16 * 1024 * 1024
    max_depth: int = 64
    revocation: RevocationView | None = None  # the CAs' CRL/OCSP answers; None: not checked


@dataclass(frozen=True, slots=True)
class Delivery:
    """One copy to one recipient system, naming the organs it serves in this package."""

    system_id: str
    organs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A submission the hub routes."""

    submission: Submission
    sha256: str
    kind: str
    package: Package
    sender_system: str
    sender_organ: str
    document_id: str
    deliveries: tuple[Delivery, ...]
    status_code: StatusCode | None = None
    parties: DocumentParties | None = None  # for a status: the document it is about
    signer_fingerprint: str = ""  # SHA-256 of the certificate that signed the package
    revocation: RevocationStatus | None = None  # the CA's word on the signer, if checked
    attachments: tuple[AttachmentRef, ...] = ()  # streamed files the package names

    @property
    def recipient_organs(self) -> tuple[str, ...]:
        return tuple(organ for d in self.deliveries for organ in d.organs)

    @property
    def document_organ(self) -> str:
        """The organ whose document this is: the sender's, or the one a status answers."""
        return self.parties.sender_organ if self.parties is not None else self.sender_organ

    @property
    def amends(self) -> bool:
        """An update, replacement or revocation of an earlier package of the document."""
        package = self.package
        return (isinstance(package, DocumentPackage) and package.business is not None
                and package.business.doc_type is not BusinessDocType.NEW)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rejected:
    """A submission refused for good, with the error the negative receipt carries."""

    submission: Submission
    sha256: str
    error: AxisError
    kind: str = ""
    sender_system: str = ""
    sender_organ: str = ""
    document_id: str = ""
    recipient_organs: tuple[str, ...] = ()
    document_organ: str = ""

    @property
    def code(self) -> str:
        return self.error.code


@dataclass(frozen=True, slots=True)
class NeedsParties:
    """A verified status package waiting for the parties of its document."""

    submission: Submission
    sha256: str
    package: StatusPackage
    sender_system: str
    signer_fingerprint: str = ""
    revocation: RevocationStatus | None = None


@dataclass(frozen=True, slots=True)
class NeedsFiles:
    """A verified document naming streamed files, accepted once the hub holds each whole."""

    accepted: Accepted  # its ``attachments``: the references, not checked yet


Verdict = Accepted | Rejected
Pending = NeedsParties | NeedsFiles


def decide(sub: Submission, ctx: HubContext) -> Verdict | Pending:
    """Check one submission end to end; never raises."""
    digest = sha256_hex(sub.body)
    try:
        return _decide(sub, ctx, digest)
    except AxisError as error:
        return Rejected(sub, digest, error, kind=sub.routing_key, sender_system=sub.user_id or "")
    except Exception as error:  # a defect must still end in a receipt, never a crash loop
        return Rejected(
            sub,
            digest,
            AxisError(f"internal error: {type(error).__name__}"),
            kind=sub.routing_key,
            sender_system=sub.user_id or "",
        )


def _decide(sub: Submission, ctx: HubContext, digest: str) -> Verdict | Pending:
    if sub.routing_key not in SUBMISSION_KEYS:
        raise UnknownRoutingKey(f"routing key {sub.routing_key!r} is neither 'edoc' nor 'status'")
    if not valid_message_id(sub.message_id):
        raise InvalidMessageId("message_id must be 1-128 printable ASCII characters")
    if len(sub.body) > ctx.max_bytes:
        raise SubmissionTooLarge(
            f"{len(sub.body)} bytes exceeds the hub's limit of {ctx.max_bytes}",
            size=len(sub.body),
            limit=ctx.max_bytes,
        )
    root = parse_tree(sub.body, XmlLimits(max_bytes=ctx.max_bytes, max_depth=ctx.max_depth))
    kind = package_kind(root)
    if kind != sub.routing_key:
        raise UnknownRoutingKey(
            f"a {kind} package was submitted with routing key {sub.routing_key!r}"
        )
    validate_tree(root)
    system_id = _sender_system(sub, ctx.registry)
    claimed_from = _claimed_sender_organ(root)
    if not ctx.registry.serves(system_id, claimed_from):
        raise OrganNotServed(
            f"system {system_id} does not serve organ {claimed_from!r}", organ_id=claimed_from
        )
    verified_root, signer, revocation = _verified_root(root, system_id, ctx)
    package = read_package(verified_root)
    if package.sender.organ_id != claimed_from:  # cannot differ for URI="", checked all the same
        raise OrganNotServed("the verified sender differs from the one read before verification")
    if isinstance(package, StatusPackage):
        return NeedsParties(sub, digest, package, system_id, signer, revocation)
    accepted = Accepted(
        sub,
        digest,
        "edoc",
        package,
        system_id,
        package.sender.organ_id,
        package.document_id,
        _route_document(package, ctx.registry),
        signer_fingerprint=signer,
        revocation=revocation,
        attachments=references(package),
    )
    return NeedsFiles(accepted) if accepted.attachments else accepted


def valid_message_id(message_id: str | None) -> bool:
    """A consignment id: 1-128 printable ASCII characters, no space."""
    # fullmatch: with match, "$" also matches before a final newline ("m1\n").
    return message_id is not None and _MESSAGE_ID.fullmatch(message_id) is not None


def _sender_system(sub: Submission, registry: RegistryView) -> str:
    if not sub.user_id:
        raise MissingUserId("the message carries no user_id: the hub cannot bind it to a system")
    system = registry.system(sub.user_id)
    if system is None:
        raise UnknownSystem(f"user_id {sub.user_id!r} is not a registered system")
    if not system.active:
        raise SystemSuspended(f"system {sub.user_id} is suspended")
    return system.system_id


def _claimed_sender_organ(root: etree._Element) -> str:
    found = root.find(
        f"{{{NS}}}edXMLEnvelope/{{{NS}}}edXMLHeader/{{{NS}}}MessageHeader/"
        f"{{{NS}}}From/{{{NS}}}OrganId"
    )
    return (found.text or "").strip() if found is not None else ""


def _verified_root(
    root: etree._Element, system_id: str, ctx: HubContext
) -> tuple[etree._Element, str, RevocationStatus | None]:
    """The verified tree, the SHA-256 fingerprint of the certificate that signed it, and
    what its CA says of it (None: not checked)."""
    registered = ctx.trust.by_system.get(system_id, ())
    if not registered:
        raise CertificateNotRegistered(f"system {system_id} has no registered certificate")
    try:
        verified = verify(root, VerifyPolicy(at=ctx.now, pinned=registered))
    except CertificateMismatch:
        raise CertificateNotRegistered(
            f"the signing certificate is not registered to system {system_id}"
        ) from None
    signer = fingerprint(verified.signer)
    cert = ctx.registry.certificate(system_id, signer)
    if cert is None or cert.revoked:
        raise RevokedCertificate(f"the signing certificate of system {system_id} is revoked")
    return verified.root, signer, _ca_revocation(verified.signer, system_id, ctx)


def _ca_revocation(
    cert: x509.Certificate, system_id: str, ctx: HubContext
) -> RevocationStatus | None:
    """The issuing CA's word on the signer: a revocation refuses it; material that is
    stale, invalid or missing refuses it under a fail-closed policy (under "warn" the
    status goes with the verdict, for the edge to report)."""
    status = None if ctx.revocation is None else ctx.revocation.status(cert, ctx.now)
    if status is None or status.good:
        return status
    if status.state is RevocationState.REVOKED:
        raise RevokedCertificate(
            f"the signing certificate of system {system_id} is revoked by its CA: "
            f"{status.detail}", ca=status.ca, source=status.source, reason_code=status.reason,
            revoked_at=status.revoked_at.isoformat() if status.revoked_at else None)  # fmt: skip
    error = refusal(status)
    if error is not None and ctx.revocation is not None and ctx.revocation.fail_closed:
        raise error
    return status


def _route_document(package: DocumentPackage, registry: RegistryView) -> tuple[Delivery, ...]:
    by_system: dict[str, list[str]] = {}
    for recipient in package.recipients:
        organ = recipient.organ_id
        system_id = registry.serving_system(organ)
        if system_id is None:
            raise UnknownRecipient(f"recipient organ {organ!r} is not registered", organ_id=organ)
        system = registry.system(system_id)
        if system is None or not system.active:
            raise RecipientSuspended(
                f"recipient organ {organ!r} (system {system_id}) is suspended", organ_id=organ
            )
        organs = by_system.setdefault(system_id, [])
        if organ not in organs:
            organs.append(organ)
    return tuple(Delivery(s, tuple(o)) for s, o in by_system.items())


def route_status(
    pending: NeedsParties, candidates: Sequence[DocumentParties], registry: RegistryView
) -> Verdict:
    """Route a verified status package to the other party of its document; never raises.

    ``candidates`` are the accepted documents carrying the status's DocumentId; when its
    ``ResponseFor/OrganId`` names an organ, only those of that organ count, by any of the
    organ's codes in ``registry`` (QCVN 102, Decision 20, old). The status is about the one the
    submitting system is a party to; a system that is a party to none gets
    ``status.not_a_party`` whether or not such a document exists, so a status cannot
    probe for others' documents.
    """
    try:
        return _route_status(pending, _document_of(pending, candidates, registry))
    except AxisError as error:
        return Rejected(
            pending.submission,
            pending.sha256,
            error,
            kind="status",
            sender_system=pending.sender_system,
            sender_organ=pending.package.sender.organ_id,
            document_id=pending.package.document_id,
            document_organ=pending.package.response_for.organ_id,
        )


def _document_of(
    pending: NeedsParties, candidates: Sequence[DocumentParties], registry: RegistryView
) -> DocumentParties:
    package, system_id = pending.package, pending.sender_system
    organ = package.response_for.organ_id
    named = registry.canonical_organ(organ) if organ else ""
    mine = [
        parties for parties in candidates
        if (not organ or registry.canonical_organ(parties.sender_organ) == named)
        and (system_id == parties.sender_system or system_id in parties.recipients)
    ]  # fmt: skip
    if not mine:
        raise StatusNotAParty(
            f"system {system_id} is not a party to a document {package.document_id!r}"
            + (f" of organ {organ}" if organ else "")
        )
    if len(mine) > 1:
        raise StatusUnknownDocument(
            f"system {system_id} is a party to {len(mine)} documents {package.document_id!r}: "
            "name the sender organ in ResponseFor/OrganId"
        )
    return mine[0]


def _route_status(pending: NeedsParties, parties: DocumentParties) -> Accepted:
    package, system_id = pending.package, pending.sender_system
    code = package.status_code
    if system_id in parties.recipients:
        if code not in RECIPIENT_CODES:
            raise StatusCodeRefused(f"status {code.value} is not sent by a document's recipient")
        deliveries: tuple[Delivery, ...] = (
            Delivery(parties.sender_system, (parties.sender_organ,)),
        )
    else:  # the document's sender (_document_of keeps only parties)
        if code not in SENDER_CODES:
            raise StatusCodeRefused(f"status {code.value} is not sent by a document's sender")
        deliveries = tuple(Delivery(s, o) for s, o in parties.recipients.items())
    return Accepted(
        pending.submission,
        pending.sha256,
        "status",
        package,
        system_id,
        package.sender.organ_id,
        package.document_id,
        deliveries,
        status_code=code,
        parties=parties,
        signer_fingerprint=pending.signer_fingerprint,
        revocation=pending.revocation,
    )
