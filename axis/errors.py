"""The single exception tree of Axis, with stable machine-readable codes.

Every failure a user, an agency or an auditor can see is an :class:`AxisError`
subclass. Its ``code`` (``origin.reason``, e.g. ``signature.untrusted_certificate``)
is a wire contract: it travels into negative receipts, logs, metric labels and
CLI ``--json`` output. Codes are never renamed; ``tests/test_errors.py`` pins the
list. This module is pure (no I/O) so the core packages may import it.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AxisError(Exception):
    """Base of every Axis error: a stable ``code`` plus a human ``reason``."""

    code: ClassVar[str] = "axis.error"

    def __init__(self, reason: str, *, path: str | None = None, **detail: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path
        self.detail = detail

    @property
    def origin(self) -> str:
        """The part of the system the code belongs to (``envelope``, ``signature``, …)."""
        return self.code.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data: ``{"code", "reason", "path"?, ...detail}``."""
        data: dict[str, Any] = {"code": self.code, "reason": self.reason}
        if self.path is not None:
            data["path"] = self.path
        data.update({k: v for k, v in self.detail.items() if _is_json_scalar(v)})
        return data

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.code}: {self.reason}{where}"


def _is_json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


# -- envelope: reading and checking edXML packages ---------------------------------


class EnvelopeError(AxisError):
    """The bytes are not an acceptable edXML package."""

    code = "envelope.error"


class MalformedXml(EnvelopeError):
    code = "envelope.malformed_xml"


class ForbiddenXmlConstruct(EnvelopeError):
    """DOCTYPE, entity declaration or reference, external DTD, processing of network resources."""

    code = "envelope.forbidden_construct"


class EnvelopeTooLarge(EnvelopeError):
    code = "envelope.too_large"


class EnvelopeTooDeep(EnvelopeError):
    code = "envelope.too_deep"


class SchemaViolation(EnvelopeError):
    code = "envelope.schema_violation"


class InvalidAttachment(EnvelopeError):
    """An attachment's payload is not base64, or the manifest and the attachments disagree."""

    code = "envelope.invalid_attachment"


class InvalidMetadata(EnvelopeError):
    """Metadata given to the builder (file, flags) cannot make a package."""

    code = "envelope.invalid_metadata"


# -- signature: XMLDSig verification -----------------------------------------------


class SignatureError(AxisError):
    code = "signature.error"


class SignatureMissing(SignatureError):
    code = "signature.missing"


class SignatureInvalid(SignatureError):
    """Digest or signature value does not match: the signed content was altered."""

    code = "signature.invalid"


class MultipleSignatures(SignatureError):
    code = "signature.multiple_signatures"


class ReferenceNotWholeDocument(SignatureError):
    """The signature covers something other than the whole package (``URI=""``)."""

    code = "signature.reference_not_whole_document"


class AlgorithmRefused(SignatureError):
    """Unknown algorithm, or one the policy refuses (SHA-1 without the legacy opt-in)."""

    code = "signature.algorithm_refused"


class UntrustedCertificate(SignatureError):
    code = "signature.untrusted_certificate"


class CertificateMismatch(SignatureError):
    """The signer certificate is not the pinned one."""

    code = "signature.certificate_mismatch"


class ExpiredCertificate(SignatureError):
    code = "signature.expired_certificate"


class CertificateNotYetValid(SignatureError):
    code = "signature.certificate_not_yet_valid"


class CertificateNotRegistered(SignatureError):
    """Valid signature, but the certificate is not registered to the submitting system."""

    code = "signature.certificate_not_registered"


class RevokedCertificate(SignatureError):
    code = "signature.revoked_certificate"


class InvalidKeyMaterial(SignatureError):
    """A key or certificate file cannot be read or does not suit signing."""

    code = "signature.invalid_key_material"


# -- sender / recipient / submission: the hub's routing decisions -------------------


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


# -- receipts -------------------------------------------------------------------------


class ReceiptError(AxisError):
    code = "receipt.error"


class ReceiptMalformed(ReceiptError):
    code = "receipt.malformed"


class ReceiptPackageMismatch(ReceiptError):
    """The package's SHA-256 differs from the one the receipt names."""

    code = "receipt.package_mismatch"


# -- registry, store, configuration -------------------------------------------------


class RegistryError(AxisError):
    code = "registry.error"


class UnknownAgency(RegistryError):
    code = "registry.unknown_agency"


class AgencyExists(RegistryError):
    code = "registry.agency_exists"


class InvalidOrganId(RegistryError):
    code = "registry.invalid_organ_id"


class DirectoryImportError(RegistryError):
    code = "registry.import_failed"


class ConfigError(AxisError):
    code = "config.error"


class HubHomeMissing(ConfigError):
    code = "config.home_missing"


class ProfileNotFound(ConfigError):
    code = "config.profile_not_found"


class InvalidSettings(ConfigError):
    code = "config.invalid"


class PkiError(AxisError):
    code = "pki.error"


class PkiExists(PkiError):
    code = "pki.exists"


# -- transport: the AMQP edge ------------------------------------------------------


class TransportError(AxisError):
    code = "transport.error"


class BrokerUnreachable(TransportError):
    code = "transport.unreachable"


class AuthenticationFailed(TransportError):
    code = "transport.authentication_failed"


class AccessRefused(TransportError):
    code = "transport.access_refused"


class PublishNotConfirmed(TransportError):
    """The broker nacked, or returned the message as unroutable."""

    code = "transport.not_confirmed"


class ReceiptTimeout(TransportError):
    code = "transport.receipt_timeout"


class ManagementApiError(TransportError):
    code = "transport.management_api"


class QueryRefused(TransportError):
    """The hub refused a query (not a party, unknown document)."""

    code = "transport.query_refused"


def all_error_classes() -> list[type[AxisError]]:
    """Every concrete error class, for docs and the pinning test."""
    seen: list[type[AxisError]] = []
    stack: list[type[AxisError]] = [AxisError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(reversed(cls.__subclasses__()))
    return seen


def error_codes() -> list[str]:
    """Every error code, sorted."""
    return sorted({cls.code for cls in all_error_classes()})


def error_for_code(code: str) -> type[AxisError]:
    """The class that owns ``code`` (``AxisError`` for an unknown one)."""
    for cls in all_error_classes():
        if cls.code == code:
            return cls
    return AxisError


# -- appended: registry conflicts (store) ---------------------------------------------


class OrganAlreadyServed(RegistryError):
    """The organ is already explicitly assigned to another system."""

    code = "registry.organ_already_served"


class CertificateInUse(RegistryError):
    """The certificate is already registered to another system."""

    code = "registry.certificate_in_use"


# -- appended: the broker lacks the hub's exchanges or the system's inbox -------------


class HubNotReady(TransportError):
    """No ``axis.submit``/``axis.query`` exchange or inbox queue in the virtual host: the
    hub has never run there, or the profile names the wrong virtual host."""

    code = "transport.hub_not_ready"
