"""OCSP (RFC 6960) for the revocation check: the request the edge posts, and the response
judged (pure; see :mod:`signing.revocation` for the states and the two-step design).

The response must be successful, signed by the certificate's issuer or by a responder
certificate that issuer issued for OCSP signing (carried in the response), and hold a
single response about exactly this certificate (serial and issuer name and key hashes,
computed by ``cryptography`` with the responder's hash algorithm).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from signing.errors import RevocationInvalid, RevocationUnavailable
from signing.revocation import (
    UNREADABLE,
    RevocationEvidence,
    RevocationState,
    RevocationStatus,
    describe_certificate,
    issued_by,
    judge,
    name_of,
    never_raising,
)


@dataclass(frozen=True, slots=True)
class CheckedOcsp:
    """An OCSP response about one certificate, whose signature and responder were checked."""

    evidence: RevocationEvidence
    status: ocsp.OCSPCertStatus
    revoked: tuple[datetime, str] | None


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """The DER OCSP request for ``cert`` (CertID with SHA-1, as RFC 5019 responders expect;
    no nonce: freshness is judged by the response's own times)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    return builder.build().public_bytes(Encoding.DER)


def load_ocsp(
    data: bytes, cert: x509.Certificate, issuer: x509.Certificate, *, source: str = ""
) -> CheckedOcsp:
    """Check an OCSP response about ``cert``: successful, signed by ``issuer`` or by a
    responder certificate ``issuer`` issued for OCSP signing, holding a response for this
    certificate. A responder refusal (tryLater, unauthorized …) raises
    ``signature.revocation_unavailable``; anything else wrong ``signature.revocation_invalid``."""
    where = source or "the OCSP responder"
    try:
        response = ocsp.load_der_ocsp_response(data)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise RevocationUnavailable(
                f"{where} refused to answer: {response.response_status.name.lower()}",
                source=source)  # fmt: skip
        _check_responder(response, issuer, where)
        single = _single_response(response, cert, issuer, where)
        revoked = None
        if single.certificate_status is ocsp.OCSPCertStatus.REVOKED:
            reason = single.revocation_reason
            when = single.revocation_time_utc or single.this_update_utc
            revoked = (when, reason.value if reason is not None else "unspecified")
        evidence = RevocationEvidence("ocsp", data, name_of(issuer.subject),
                                      single.this_update_utc, single.next_update_utc,
                                      produced_at=response.produced_at_utc,
                                      source=source)  # fmt: skip
    except UNREADABLE as exc:
        raise RevocationInvalid(f"the answer of {where} cannot be read: {exc}",
                                source=source) from None  # fmt: skip
    return CheckedOcsp(evidence, single.certificate_status, revoked)


def ocsp_status(
    answer: CheckedOcsp, cert: x509.Certificate, at: datetime, grace: timedelta = timedelta(0)
) -> RevocationStatus:
    """What a checked OCSP response says about ``cert`` at ``at``."""
    evidence = answer.evidence
    what = f"the OCSP response of {evidence.this_update.isoformat()}"
    if answer.status is ocsp.OCSPCertStatus.UNKNOWN:
        return RevocationStatus(
            RevocationState.UNKNOWN,
            f"{what} from {evidence.source or 'the responder'} says the certificate "
            f"{describe_certificate(cert)} is unknown to it",
            evidence.issuer, evidence.source, evidence)  # fmt: skip
    return judge(cert, evidence, at, grace, what, answer.revoked)


def check_ocsp(
    cert: x509.Certificate, issuer: x509.Certificate, data: bytes, at: datetime, *,
    grace: timedelta = timedelta(0), source: str = "",
) -> RevocationStatus:  # fmt: skip
    """:func:`load_ocsp` then :func:`ocsp_status`; never raises."""
    return never_raising(cert, issuer, source, lambda: ocsp_status(
        load_ocsp(data, cert, issuer, source=source), cert, at, grace))  # fmt: skip


def _check_responder(response: ocsp.OCSPResponse, issuer: x509.Certificate, where: str) -> None:
    """The response is signed by the issuer itself, or by a certificate in it that the
    issuer issued for OCSP signing (RFC 6960 §4.2.2.2)."""
    for candidate in (issuer, *response.certificates):
        if not _is_responder(response, candidate):
            continue
        if candidate is not issuer:
            _check_delegated(candidate, issuer, response.produced_at_utc, where)
        if not _signature_valid(candidate, response):
            raise RevocationInvalid(f"the answer of {where} has a bad signature")
        return
    raise RevocationInvalid(
        f"the answer of {where} is signed neither by the CA {name_of(issuer.subject)!r} nor by "
        "a responder certificate it carries")  # fmt: skip


def _is_responder(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if response.responder_key_hash is not None:
        own = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
        return own == response.responder_key_hash
    return response.responder_name == cert.subject


def _check_delegated(
    responder: x509.Certificate, issuer: x509.Certificate, at: datetime, where: str
) -> None:
    if not issued_by(responder, issuer):
        raise RevocationInvalid(
            f"the responder certificate of {where} is not issued by the CA "
            f"{name_of(issuer.subject)!r}")  # fmt: skip
    try:
        purposes = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        purposes = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.OCSP_SIGNING not in purposes:
        raise RevocationInvalid(
            f"the responder certificate of {where} is not issued for OCSP signing")
    if not responder.not_valid_before_utc <= at <= responder.not_valid_after_utc:
        raise RevocationInvalid(
            f"the responder certificate of {where} was not valid when it answered")


def _signature_valid(signer: x509.Certificate, response: ocsp.OCSPResponse) -> bool:
    key, digest = signer.public_key(), response.signature_hash_algorithm
    data, signature = response.tbs_response_bytes, response.signature
    try:
        if isinstance(key, rsa.RSAPublicKey) and digest is not None:
            pad: padding.AsymmetricPadding = padding.PKCS1v15()
            if response.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
                pad = padding.PSS(padding.MGF1(digest), padding.PSS.AUTO)
            key.verify(signature, data, pad, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey) and digest is not None:
            key.verify(signature, data, ec.ECDSA(digest))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        elif isinstance(key, dsa.DSAPublicKey) and digest is not None:
            key.verify(signature, data, digest)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _single_response(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate, where: str
) -> ocsp.OCSPSingleResponse:
    for single in response.responses:
        # The CertID as this responder hashed it: cryptography computes ours the same way.
        asked = ocsp.OCSPRequestBuilder().add_certificate(
            cert, issuer, single.hash_algorithm).build()  # fmt: skip
        if (single.serial_number, single.issuer_key_hash, single.issuer_name_hash) == (
                asked.serial_number, asked.issuer_key_hash, asked.issuer_name_hash):  # fmt: skip
            return single
    raise RevocationInvalid(
        f"the answer of {where} holds no response about the certificate "
        f"{describe_certificate(cert)} of the CA {name_of(issuer.subject)!r}")  # fmt: skip
