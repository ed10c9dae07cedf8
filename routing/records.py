"""What the hub stores of a verdict: submission, signed receipt, deliveries, trace (pure)."""

from __future__ import annotations

import functools
from datetime import datetime

from envelopes.errors import AxisError
from routing.decide import (
    Accepted,
    HubContext,
    Pending,
    Rejected,
    Submission,
    decide,
    valid_message_id,
)
from routing.ports import ReceiptSigner
from routing.values import (
    REFUSED_EXCERPT_BYTES,
    DeliveryRecord,
    DocumentParties,
    Receipt,
    ReceiptEvent,
    SubmissionRecord,
    TraceEvent,
)
from signing.revocation import RevocationEvidence

Records = tuple[SubmissionRecord, list[DeliveryRecord], list[TraceEvent]]


def decide_and_record(
    sub: Submission, ctx: HubContext, receipt_id: str, signer: ReceiptSigner
) -> tuple[Accepted | Rejected | Pending, Records | None]:
    """:func:`~routing.decide.decide`, then :func:`records_for` a final verdict, in one call.

    One call means one trip off the hub's event loop per submission. A verdict that
    waits for the store (:class:`~routing.decide.NeedsParties`) or the attachment
    files (:class:`~routing.decide.NeedsFiles`) comes back with no records. Never raises.
    """
    verdict = decide(sub, ctx)
    if isinstance(verdict, Accepted | Rejected):
        return verdict, records_for(verdict, receipt_id, ctx.now, signer)
    return verdict, None


def records_for(
    verdict: Accepted | Rejected, receipt_id: str, now: datetime, signer: ReceiptSigner
) -> Records:
    """What the store keeps of one verdict: the submission with its signed receipt,
    its deliveries and its trace events (the id, time and signer come in)."""
    sub = verdict.submission
    accepted = isinstance(verdict, Accepted)
    receipt = Receipt(
        receipt_id=receipt_id,
        event="accepted" if accepted else "rejected",
        kind=verdict.kind or sub.routing_key,
        message_id=stated_message_id(sub.message_id),
        package_sha256=verdict.sha256,
        hub_time=now,
        sender_system=verdict.sender_system,
        sender_organ=verdict.sender_organ,
        document_id=verdict.document_id,
        recipients=verdict.recipient_organs,
        error_code="" if isinstance(verdict, Accepted) else verdict.code,
        reason="" if isinstance(verdict, Accepted) else verdict.error.reason,
        signer_fingerprint=verdict.signer_fingerprint if isinstance(verdict, Accepted) else "",
        attachments=verdict.attachments if isinstance(verdict, Accepted) else (),
    )
    receipt_bytes = signer.sign(receipt)
    bound = is_bound(sub)
    record = SubmissionRecord(
        id=None,
        user_id=sub.user_id or "",
        # A refusal naming no consignment is counted by the store, not stored.
        message_id=(sub.message_id or "") if bound else "",
        kind=receipt.kind,
        sha256=verdict.sha256,
        document_id=verdict.document_id or None,
        sender_organ=verdict.sender_organ or None,
        document_organ=verdict.document_organ or None,
        outcome="accepted" if accepted else "rejected",
        error_code=receipt.error_code or None,
        reason=receipt.reason or None,
        # Refused bodies cost the hub little: a bounded excerpt, the size and the digest.
        raw=sub.body if accepted else sub.body[:REFUSED_EXCERPT_BYTES],
        size=len(sub.body),
        amends=isinstance(verdict, Accepted) and verdict.amends,
        receipt=receipt_bytes,
        received_at=now,
        revocation=_relied_on(verdict),
    )
    events = _trace_events(verdict, receipt, now) if bound else []
    return record, _delivery_records(verdict, now), events


def _relied_on(verdict: Accepted | Rejected) -> RevocationEvidence | None:
    """The CRL or OCSP response an accepted package's signer was checked against."""
    if isinstance(verdict, Accepted) and verdict.revocation is not None:
        return verdict.revocation.evidence
    return None


def stated_message_id(message_id: str | None) -> str:
    """The ``MessageId`` a receipt states: the consignment id, or, for a missing or
    malformed one, words (with a space, so never a valid id) and a printable escape."""
    if valid_message_id(message_id):
        return str(message_id)
    if message_id is None:
        return "no message_id"
    escaped = message_id.encode("unicode_escape").decode("ascii")
    return "invalid message_id " + "".join(c if 0x20 <= ord(c) < 0x7F else "?"
                                           for c in escaped)[:200]  # fmt: skip


def is_bound(sub: Submission) -> bool:
    """True when the submission names a consignment: a sender (user_id) and a valid id."""
    return bool(sub.user_id) and valid_message_id(sub.message_id)


def _delivery_records(verdict: Accepted | Rejected, now: datetime) -> list[DeliveryRecord]:
    if not isinstance(verdict, Accepted):
        return []
    return [
        DeliveryRecord(
            submission_id=None,
            system_id=d.system_id,
            organs=d.organs,
            published_at=now,
            delivered_at=None,
        )
        for d in verdict.deliveries
    ]


def _trace_events(
    verdict: Accepted | Rejected, receipt: Receipt, now: datetime
) -> list[TraceEvent]:
    sub = verdict.submission
    trace = functools.partial(
        TraceEvent, at=now, message_id=sub.message_id or "", submitter=sub.user_id or "",
        document_organ=verdict.document_organ or None, document_id=verdict.document_id or None,
    )  # fmt: skip
    organ = verdict.sender_organ or None
    sender = sub.user_id or ""
    events = [
        trace(event="submitted", system_id=sender, organ_id=organ,
              detail=verdict.kind or sub.routing_key),
    ]  # fmt: skip
    if isinstance(verdict, Rejected):
        events.append(trace(event="rejected", system_id=sender, organ_id=organ,
                            error_code=verdict.code, detail=verdict.error.reason))  # fmt: skip
        return events
    code = verdict.status_code.value if verdict.status_code else None
    events.append(trace(event="status" if code else "accepted", system_id=verdict.sender_system,
                        organ_id=organ, status_code=code, detail=receipt.receipt_id))  # fmt: skip
    events.extend(
        trace(event="published", system_id=d.system_id, organ_id=",".join(d.organs),
              status_code=code)
        for d in verdict.deliveries
    )  # fmt: skip
    return events


def delivered_records(
    verdict: Accepted, parties: DocumentParties, receipt_id: str, now: datetime
) -> tuple[Receipt, TraceEvent]:
    """A recipient's status 01 (``verdict``) about a document: what the hub's "delivered"
    receipt for the document's sender states, and the trace event recording it."""
    receipt = _receipt_to_sender(verdict, parties, receipt_id, now, event="delivered",
                                 kind="edoc", package_sha256=parties.sha256)  # fmt: skip
    event = TraceEvent(
        event="delivered",
        at=now,
        message_id=receipt.message_id,
        submitter=parties.sender_system,
        system_id=verdict.sender_system,
        document_organ=parties.sender_organ,
        document_id=verdict.document_id,
        organ_id=",".join(receipt.recipients),
        detail=receipt.receipt_id,
    )
    return receipt, event


def status_receipt(
    verdict: Accepted, parties: DocumentParties, receipt_id: str, now: datetime
) -> Receipt:
    """A recipient's status (02 to 06, 15, 16) about a document was routed: what the hub's
    business receipt for the document's sender states (event ``status``): about the
    sender's consignment of the document, like "delivered", with the status package's
    digest and code."""
    return _receipt_to_sender(verdict, parties, receipt_id, now, event="status", kind="status",
                              package_sha256=verdict.sha256,
                              status_code=verdict.status_code.value if verdict.status_code
                              else "")  # fmt: skip


def _receipt_to_sender(
    verdict: Accepted, parties: DocumentParties, receipt_id: str, now: datetime, *,
    event: ReceiptEvent, kind: str, package_sha256: str, status_code: str = "",
) -> Receipt:  # fmt: skip
    """A receipt for the document's sender about its consignment, stating what the
    recipient system that sent the status (``verdict``) did with the document."""
    return Receipt(
        receipt_id=receipt_id,
        event=event,
        kind=kind,
        message_id=parties.message_id,
        package_sha256=package_sha256,
        hub_time=now,
        sender_system=parties.sender_system,
        sender_organ=parties.sender_organ,
        document_id=verdict.document_id,
        recipients=parties.recipients.get(verdict.sender_system, ()),
        recipient_system=verdict.sender_system,
        status_code=status_code,
    )


def conflict_receipt(
    sub: Submission, digest: str, error: AxisError, receipt_id: str, now: datetime
) -> Receipt:
    """What the rejected receipt for a consignment id re-used with other bytes (of SHA-256
    ``digest``) states."""
    return Receipt(
        receipt_id=receipt_id,
        event="rejected",
        kind=sub.routing_key,
        message_id=sub.message_id or "",
        package_sha256=digest,
        hub_time=now,
        sender_system=sub.user_id or "",
        error_code=error.code,
        reason=error.reason,
    )
