"""Has the issuing CA revoked a signer certificate? CRLs and OCSP responses, judged (pure).

The edge fetches the material and hands it in with the certificate, its issuer and the
time ``at``; nothing here does I/O or reads a clock. Judging is two steps, so that a large
CRL is checked once and then answers many certificates cheaply:

- :func:`load_crl` (and :func:`signing.ocsp.load_ocsp`) check the material itself:
  readable, about this issuer (and, for OCSP, this certificate), signed by the issuer or
  its delegated OCSP responder. Anything else raises
  :class:`~signing.errors.RevocationInvalid` (an OCSP responder that refused to answer:
  :class:`~signing.errors.RevocationUnavailable`).
- :func:`crl_status` (and :func:`signing.ocsp.ocsp_status`) answer for one certificate
  at ``at``.

:func:`check_crl` (and :func:`signing.ocsp.check_ocsp`) do both and never raise: every
outcome is a :class:`RevocationStatus`. Material is *stale* at ``at`` once ``at`` is past its
nextUpdate (its thisUpdate when it names none) by more than ``grace``. Only the
``cryptography`` library parses and verifies (no ASN.1 of our own).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from signing.errors import (
    RevocationInvalid,
    RevocationStale,
    RevocationUnavailable,
    SignatureError,
)


class RevocationState(StrEnum):
    """What the CA's material says about a certificate at a time."""

    GOOD = "good"  # fresh material from its CA that does not list it as revoked
    REVOKED = "revoked"  # revoked at or before the time
    UNKNOWN = "unknown"  # an OCSP responder that does not know the certificate
    STALE = "stale"  # the newest material is past its nextUpdate beyond the grace
    INVALID = "invalid"  # material that cannot be relied on (signature, issuer, format)
    UNAVAILABLE = "unavailable"  # no material could be obtained


@dataclass(frozen=True, slots=True)
class RevocationEvidence:
    """The CA-signed material an answer rests on, kept so an auditor can check it again.

    ``der`` is the CRL or the OCSP response (DER) exactly as the CA signed it;
    ``this_update``/``next_update`` are those of the CRL, or of the certificate's single
    OCSP response; ``crl_number`` and ``produced_at`` are set for their kind.
    """

    kind: Literal["crl", "ocsp"]
    der: bytes
    issuer: str
    this_update: datetime
    next_update: datetime | None
    crl_number: int | None = None
    produced_at: datetime | None = None
    source: str = ""

    @property
    def sha256(self) -> str:
        """Lowercase hex SHA-256 of ``der``: how the store and bundles name the material."""
        return hashlib.sha256(self.der).hexdigest()

    def expires(self, grace: timedelta) -> datetime:
        """When the material turns stale: nextUpdate (else thisUpdate) plus ``grace``."""
        return (self.next_update or self.this_update) + grace


@dataclass(frozen=True, slots=True)
class RevocationStatus:
    """One answer: the state, why in words, and the material it rests on.

    ``ca`` is the issuer's subject, ``source`` where the material came from (a URL or a
    file); ``revoked_at`` and ``reason`` (a RFC 5280 reason name such as
    ``keyCompromise``) are set for a revoked certificate.
    """

    state: RevocationState
    detail: str
    ca: str = ""
    source: str = ""
    evidence: RevocationEvidence | None = None
    revoked_at: datetime | None = None
    reason: str | None = None

    @property
    def good(self) -> bool:
        return self.state is RevocationState.GOOD


# -- CRLs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckedCrl:
    """A CRL whose format, issuer and signature were checked, indexed by serial number."""

    evidence: RevocationEvidence
    revoked: Mapping[int, tuple[datetime, str]]  # serial -> (revocation date, reason)


def load_crl(data: bytes, issuer: x509.Certificate, *, source: str = "") -> CheckedCrl:
    """Check a complete CRL (DER or PEM) of ``issuer``; ``signature.revocation_invalid`` if it
    does not read, is not ``issuer``'s, is not signed by its key, or is not a complete CRL
    for end-entity certificates (a delta, indirect or partial CRL)."""
    ca = name_of(issuer.subject)
    try:
        crl = read_crl(data)
        _check_crl_scope(crl)
        if crl.issuer != issuer.subject:
            raise RevocationInvalid(
                f"the CRL from {source or 'its source'} is issued by {name_of(crl.issuer)!r}, "
                f"not by {ca!r}", source=source)  # fmt: skip
        _check_may_sign_crls(issuer)
        if not crl.is_signature_valid(_crl_key(issuer)):
            raise RevocationInvalid(
                f"the CRL from {source or 'its source'} is not signed by {ca!r}", source=source
            )
        number = _crl_number(crl)
        revoked = {entry.serial_number: (entry.revocation_date_utc, _crl_reason(entry))
                   for entry in crl}  # fmt: skip
        evidence = RevocationEvidence("crl", crl.public_bytes(Encoding.DER), ca,
                                      crl.last_update_utc, crl.next_update_utc,
                                      crl_number=number, source=source)  # fmt: skip
    except UNREADABLE as exc:
        raise RevocationInvalid(
            f"the CRL from {source or 'its source'} cannot be read: {exc}", source=source
        ) from None
    return CheckedCrl(evidence, revoked)


def crl_status(
    crl: CheckedCrl, cert: x509.Certificate, at: datetime, grace: timedelta = timedelta(0)
) -> RevocationStatus:
    """What a checked CRL says about ``cert`` (issued by the CRL's CA) at ``at``."""
    evidence = crl.evidence
    what = f"the CRL{_numbered(evidence)} of {evidence.this_update.isoformat()}"
    entry = crl.revoked.get(cert.serial_number)
    return judge(cert, evidence, at, grace, what, entry)


def check_crl(
    cert: x509.Certificate, issuer: x509.Certificate, data: bytes, at: datetime, *,
    grace: timedelta = timedelta(0), source: str = "",
) -> RevocationStatus:  # fmt: skip
    """:func:`load_crl` then :func:`crl_status`; never raises (bad material: ``invalid``)."""
    return never_raising(cert, issuer, source, lambda: crl_status(
        load_crl(data, issuer, source=source), cert, at, grace))  # fmt: skip


def never_raising(
    cert: x509.Certificate, issuer: x509.Certificate, source: str,
    judged: Callable[[], RevocationStatus],
) -> RevocationStatus:  # fmt: skip
    """``judged()`` for a ``cert`` that ``issuer`` issued; a coded failure becomes the
    ``invalid`` (or ``unavailable``) status it stands for."""
    try:
        check_issued_by(cert, issuer)
        return judged()
    except SignatureError as error:
        return failed(error, issuer, source)


# -- answers ----------------------------------------------------------------------------------


def failed(error: SignatureError, issuer: x509.Certificate | None, source: str) -> RevocationStatus:
    """The status for material that could not be used (the error's reason as detail)."""
    state = (RevocationState.UNAVAILABLE if isinstance(error, RevocationUnavailable)
             else RevocationState.INVALID)  # fmt: skip
    ca = name_of(issuer.subject) if issuer is not None else ""
    return RevocationStatus(state, error.reason, ca, source)


def unavailable(detail: str, ca: str = "", source: str = "") -> RevocationStatus:
    """The status when no material about the certificate could be obtained."""
    return RevocationStatus(RevocationState.UNAVAILABLE, detail, ca, source)


def refusal(status: RevocationStatus) -> SignatureError | None:
    """The coded error a fail-closed policy refuses ``status`` with; None for ``good`` and
    ``revoked`` (a revoked signer is refused with ``signature.revoked_certificate``, which
    the hub's decision owns)."""
    detail = {"ca": status.ca, "source": status.source}
    if status.state is RevocationState.STALE:
        return RevocationStale(status.detail, **detail)
    if status.state in (RevocationState.UNAVAILABLE, RevocationState.UNKNOWN):
        return RevocationUnavailable(status.detail, **detail)
    if status.state is RevocationState.INVALID:
        return RevocationInvalid(status.detail, **detail)
    return None


def describe_certificate(cert: x509.Certificate) -> str:
    """``'CN=…,UID=…' (serial 1a2b…)``: how answers name a certificate."""
    return f"{name_of(cert.subject)!r} (serial {cert.serial_number:x})"


def judge(
    cert: x509.Certificate, evidence: RevocationEvidence, at: datetime, grace: timedelta,
    what: str, revoked: tuple[datetime, str] | None,
) -> RevocationStatus:  # fmt: skip
    """The answer of checked material (``what`` names it) that lists ``cert`` as
    ``revoked`` (date, reason) or not, at ``at``: revoked wins over staleness, since a
    revocation is never taken back (a hold lifted shows in fresher material only)."""
    ca, source = evidence.issuer, evidence.source
    named = describe_certificate(cert)
    if revoked is not None and revoked[0] <= at:
        when, reason = revoked
        return RevocationStatus(
            RevocationState.REVOKED,
            f"the CA {ca!r} revoked the certificate {named} on {when.isoformat()}, reason "
            f"{reason} ({what}{_from(source)})",
            ca, source, evidence, revoked_at=when, reason=reason)  # fmt: skip
    expires = evidence.expires(grace)
    if at > expires:
        update = evidence.next_update or evidence.this_update
        return RevocationStatus(
            RevocationState.STALE,
            f"{what}{_from(source)} of the CA {ca!r} is stale: its next update was due "
            f"{update.isoformat()}, the grace of {int(grace.total_seconds())} s ended "
            f"{expires.isoformat()}, and it is now {at.isoformat()}",
            ca, source, evidence)  # fmt: skip
    later = f"; it was revoked only later, on {revoked[0].isoformat()}" if revoked else ""
    return RevocationStatus(
        RevocationState.GOOD,
        f"{what}{_from(source)} of the CA {ca!r} does not list the certificate {named} as "
        f"revoked{later}",
        ca, source, evidence)  # fmt: skip


def _from(source: str) -> str:
    return f" from {source}" if source else ""


def _numbered(evidence: RevocationEvidence) -> str:
    return f" number {evidence.crl_number}" if evidence.crl_number is not None else ""


def name_of(name: x509.Name) -> str:
    """A name as RFC 4514 text (a placeholder for one that does not read)."""
    try:
        return name.rfc4514_string()
    except ValueError:
        return "<unreadable name>"


def read_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL in PEM or DER, not checked; raises one of :data:`UNREADABLE` if it does not read."""
    if data.lstrip().startswith(b"-----"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` signed ``cert`` (names match and its key verifies the signature)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (*UNREADABLE, InvalidSignature):
        return False
    return True


def check_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """``signature.revocation_invalid`` unless ``issuer`` signed ``cert``."""
    try:
        if cert.issuer != issuer.subject:
            raise ValueError("the issuer names differ")
        cert.verify_directly_issued_by(issuer)
    except (*UNREADABLE, InvalidSignature) as exc:
        raise RevocationInvalid(
            f"the certificate {describe_certificate(cert)} is not issued by the CA "
            f"{name_of(issuer.subject)!r}: {exc or 'bad signature'}") from None  # fmt: skip


def _check_crl_scope(crl: x509.CertificateRevocationList) -> None:
    """Only complete CRLs covering end-entity certificates answer for a signer."""
    extensions = crl.extensions
    if any(isinstance(e.value, x509.DeltaCRLIndicator) for e in extensions):
        raise RevocationInvalid("a delta CRL is not a complete CRL")
    try:
        idp = extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return
    if (idp.only_contains_ca_certs or idp.only_contains_attribute_certs
            or idp.only_some_reasons or idp.indirect_crl):  # fmt: skip
        raise RevocationInvalid(
            "the CRL covers only part of the certificates or reasons (issuing distribution "
            "point): it cannot show that a signer certificate is not revoked")  # fmt: skip


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def _crl_reason(entry: x509.RevokedCertificate) -> str:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
    except x509.ExtensionNotFound:
        return "unspecified"


def _check_may_sign_crls(cert: x509.Certificate) -> None:
    """Refuse an issuer whose keyUsage leaves out cRLSign."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.crl_sign:
        raise RevocationInvalid(f"the CA {name_of(cert.subject)!r} may not sign CRLs (keyUsage)")


def _crl_key(issuer: x509.Certificate) -> _CrlKey:
    key = issuer.public_key()
    if not isinstance(key, _CrlKey):
        raise RevocationInvalid(f"the CA {name_of(issuer.subject)!r} has a key that cannot "
                                "sign CRLs")  # fmt: skip
    return key


_CrlKey = (rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
           | ed448.Ed448PublicKey | dsa.DSAPublicKey)  # fmt: skip
UNREADABLE = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion)
