"""The errors the hub's decision and the AMQP wire raise: sender, recipient, submission,
status, the registry-side signature checks, and transport refusals."""

from __future__ import annotations

from envelopes.errors import AxisError
from signing.errors import SignatureError

# -- signature: what the hub checks beyond the signature itself ----------------------------


class CertificateNotRegistered(SignatureError):
    """Valid signature, but the certificate is not registered to the submitting system."""

    code = "signature.certificate_not_registered"


class RevokedCertificate(SignatureError):
    code = "signature.revoked_certificate"


# -- sender / recipient / submission / status: the hub's routing decisions -----------------


class SenderError(AxisError):
    code = "sender.error"


class MissingUserId(SenderError):
    code = "sender.missing_user_id"


class UnknownSystem(SenderError):
    code = "sender.unknown_system"


class SystemSuspended(SenderError):
    code = "sender.system_suspended"


class OrganNotServed(SenderError):
    """``From/OrganId`` is not served by the submitting system."""

    code = "sender.organ_not_served"


class RecipientError(AxisError):
    code = "recipient.error"


class UnknownRecipient(RecipientError):
    code = "recipient.unknown"


class RecipientSuspended(RecipientError):
    code = "recipient.suspended"


class SubmissionError(AxisError):
    code = "submission.error"


class SubmissionTooLarge(SubmissionError):
    code = "submission.too_large"


class DuplicateConflict(SubmissionError):
    """The same consignment id was submitted before with different bytes."""

    code = "submission.duplicate_conflict"


class DocumentIdReused(SubmissionError):
    """The sender organ used this DocumentId before for another package, and this one is
    not an update, replacement or revocation of it."""

    code = "submission.document_id_reused"


class RateLimited(SubmissionError):
    """The system submitted faster than its rate allows; send the same consignment later."""

    code = "submission.rate_limited"


class InvalidMessageId(SubmissionError):
    code = "submission.invalid_message_id"


class UnknownRoutingKey(SubmissionError):
    code = "submission.unknown_kind"


class StatusError(AxisError):
    code = "status.error"


class StatusUnknownDocument(StatusError):
    code = "status.unknown_document"


class StatusNotAParty(StatusError):
    code = "status.not_a_party"


class StatusCodeRefused(StatusError):
    """A status code that makes no sense for this party's side of the document."""

    code = "status.code_refused"


# -- transport: the AMQP wire --------------------------------------------------------------


class TransportError(AxisError):
    code = "transport.error"


class AccessRefused(TransportError):
    code = "transport.access_refused"


class PublishNotConfirmed(TransportError):
    """The broker nacked, or returned the message as unroutable."""

    code = "transport.not_confirmed"


class QueryRefused(TransportError):
    """The hub refused a query (not a party, unknown document)."""

    code = "transport.query_refused"


# -- hub: the hub could not finish a submission -------------------------------------------


class HubUnavailable(AxisError):
    """The hub kept failing to store or route the submission (database or broker down) and
    gave up after its retries; the submission is in ``axis.dead`` and may be replayed."""

    code = "hub.unavailable"


# -- attachment: streamed files (docs/protocol.md, "Streamed attachments") -----------------


class AttachmentError(AxisError):
    """A streamed attachment cannot be accepted."""

    code = "attachment.error"


class AttachmentTooLarge(AttachmentError):
    """The declared size is above the hub's (or the sender's) limit."""

    code = "attachment.too_large"


class AttachmentDigestMismatch(AttachmentError):
    """A chunk, or the whole file, does not have the SHA-256 it was declared with."""

    code = "attachment.digest_mismatch"


class AttachmentIncomplete(AttachmentError):
    """The package names a file the hub has not received whole."""

    code = "attachment.incomplete"


class AttachmentQuotaExceeded(AttachmentError):
    """The system's stored attachments would exceed its storage quota."""

    code = "attachment.quota_exceeded"


class InvalidChunk(AttachmentError):
    """A chunk message is malformed: headers missing or inconsistent, wrong length."""

    code = "attachment.invalid_chunk"


class AttachmentNotFound(AttachmentError):
    """No such attachment for this system (unknown, not addressed to it, or expired)."""

    code = "attachment.not_found"


class AttachmentUnavailable(AttachmentError):
    """The hub cannot store or read attachments right now (its disk); send again later."""

    code = "attachment.unavailable"
