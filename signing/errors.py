"""The errors of XMLDSig signing and verification, and of keys and certificates."""

from __future__ import annotations

from envelopes.errors import AxisError

# -- signature: XMLDSig verification --------------------------------------------------------


class SignatureError(AxisError):
    code = "signature.error"


class SignatureMissing(SignatureError):
    code = "signature.missing"


class SignatureInvalid(SignatureError):
    """Digest or signature value does not match: the signed content was altered."""

    code = "signature.invalid"


class MultipleSignatures(SignatureError):
    code = "signature.multiple_signatures"


class SignatureUnexpectedContent(SignatureError):
    """The ``ds:Signature`` holds something XMLDSig does not need here.

    A ``ds:Object`` (hence also a ``ds:Manifest`` or ``ds:SignatureProperties``), an
    element of another namespace, text, a processing instruction, elements out of
    order or repeated, or a ``KeyInfo`` child other than ``X509Data``: none of it is
    signed, and a recipient's naive parser could read it as the package. ``path``
    names the offending node.
    """

    code = "signature.unexpected_content"


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


class InvalidKeyMaterial(SignatureError):
    """A key or certificate file cannot be read or does not suit signing."""

    code = "signature.invalid_key_material"


# -- signature: the issuing CA's revocation of the signer (CRL, OCSP) ----------------------


class RevocationStale(SignatureError):
    """The newest CRL or OCSP response about the signer is past its nextUpdate by more than
    the grace the policy allows: the CA's current word on the certificate is not known."""

    code = "signature.revocation_stale"


class RevocationUnavailable(SignatureError):
    """No revocation material about the signer could be obtained (CRL or OCSP responder
    unreachable, nothing fetched yet, issuer CA unknown, responder answers "unknown")."""

    code = "signature.revocation_unavailable"


class RevocationInvalid(SignatureError):
    """Revocation material that cannot be relied on: unreadable, not signed by the signer's
    issuing CA (or its delegated OCSP responder), or about another issuer or certificate."""

    code = "signature.revocation_invalid"
