"""Errors of the evidence log, time-stamps and offline audits (``log.*``, ``timestamp.*``,
``audit.*``). Codes are a contract: never rename one; each is in docs/errors.md."""

from __future__ import annotations

from envelopes.errors import AxisError

# -- the hub's own log --------------------------------------------------------------------


class LogError(AxisError):
    code = "log.error"


class LogTampered(LogError):
    """The stored log does not reproduce the root of the hub's last signed tree head (an
    entry was edited, deleted or inserted behind the hub's back), or a head's signature
    does not verify: the hub refuses to serve."""

    code = "log.tampered"


class LogEntryNotFound(LogError):
    """No log entry, tree head or tree size as asked (or none the asker may see)."""

    code = "log.not_found"


# -- RFC 3161 time-stamps -----------------------------------------------------------------


class TimestampError(AxisError):
    code = "timestamp.error"


class TimestampUnavailable(TimestampError):
    """The configured TSA did not answer with a granted time-stamp (unreachable, HTTP
    error, refusal status); detail ``url``."""

    code = "timestamp.unavailable"


class TimestampInvalid(TimestampError):
    """A time-stamp token that does not verify: not a TimeStampResp, not granted, the
    imprint is not the SHA-256 of the stamped bytes, a bad signature, or a TSA
    certificate that does not chain to the given TSA trust anchors."""

    code = "timestamp.invalid"


# -- offline audits (``axis audit``) ------------------------------------------------------


class AuditError(AxisError):
    code = "audit.error"


class BundleMalformed(AuditError):
    """Not an evidence bundle: not a ZIP, no or unreadable manifest.json, a file the
    manifest names is missing, an unknown format version."""

    code = "audit.bundle_malformed"


class HeadInvalid(AuditError):
    """A tree head whose signature or certificate does not verify, or that does not read
    as an Axis tree head."""

    code = "audit.head_invalid"


class ReceiptInvalid(AuditError):
    """A receipt in the bundle whose hub signature or certificate does not verify, or
    that does not read as an Axis receipt."""

    code = "audit.receipt_invalid"


class ProofInvalid(AuditError):
    """An inclusion proof that does not lead from the entry to the head's root."""

    code = "audit.proof_invalid"


class SubjectMismatch(AuditError):
    """A receipt in the bundle that is not about the bundle's document or consignment."""

    code = "audit.subject_mismatch"


class RegistrationUnproven(AuditError):
    """The bundle does not prove that the sender's signing certificate was registered to
    it, and not revoked, before the hub accepted the document."""

    code = "audit.registration_unproven"


class Inconsistent(AuditError):
    """Two tree heads that are not one log: the newer does not extend the older (a
    consistency proof fails), or two heads of one size with different roots."""

    code = "audit.inconsistent"


class RevocationEvidenceInvalid(AuditError):
    """A CRL or OCSP response in the bundle that does not verify against ``--trust`` (not
    signed by the signer's CA or its OCSP responder) or is about none of the signers."""

    code = "audit.revocation_invalid"


class SignerRevoked(AuditError):
    """The bundled CRL or OCSP response of a signer's CA shows the certificate revoked
    before the hub accepted the package it signed."""

    code = "audit.signer_revoked"
