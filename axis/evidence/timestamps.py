"""RFC 3161 time-stamps of signed tree heads (see docs/evidence.md, "Tree heads").

A head's time-stamp is the TSA's ``TimeStampResp`` in DER (what ``openssl ts -reply``
writes, a ``.tsr`` file) over SHA-256 of the signed head bytes exactly, so that
``openssl ts -verify -data head.xml -in head.tsr -CAfile tsa-ca.pem`` checks it.

All ASN.1 (parsing the response, the CMS signature and the certificate chain) is done
by ``rfc3161_client`` (pyca/cryptography and OpenSSL). Everything here is pure, so the
offline auditor needs no network code; asking a TSA for a token is
:func:`axis.evidence.tsa_client.request_timestamp`.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from rfc3161_client import (
    PKIStatus,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from axis.evidence.errors import TimestampInvalid

SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")


@dataclass(frozen=True, slots=True)
class VerifiedTimestamp:
    """What a verified token states: the TSA ``tsa_subject`` (RFC 4514) saw the data at
    ``gen_time`` (UTC). ``anchored``: the TSA certificate chains to a given trust anchor;
    if False only the token's signature by its embedded certificate was checked."""

    gen_time: datetime.datetime
    tsa_subject: str
    anchored: bool


def timestamp_time(tsr: bytes) -> datetime.datetime:
    """The ``genTime`` of the DER ``TimeStampResp`` ``tsr`` (UTC), without verifying
    anything else; :class:`TimestampInvalid` if it does not parse."""
    return _gen_time(_decode(tsr))


def verify_timestamp(
    tsr: bytes, data: bytes, tsa_roots: Sequence[x509.Certificate] | None
) -> VerifiedTimestamp:
    """Verify the DER ``TimeStampResp`` ``tsr`` as a time-stamp over SHA-256 of ``data``.

    Checks that it parses, is granted, that its imprint is SHA-256 and equals
    SHA-256(data), and the CMS signature by the TSA certificate embedded in the token
    (which must have the critical ``timeStamping`` extended key usage and be valid at
    ``genTime``). With ``tsa_roots`` the TSA certificate must chain (through certificates
    in the token) to one of these self-signed anchors (``anchored=True``); with None only
    the token's own signature is checked (``anchored=False``). Every failure raises
    :class:`TimestampInvalid` with a reason naming what broke.
    """
    response = _decode(tsr)
    if response.status != PKIStatus.GRANTED:
        # rfc3161_client verifies only status 0 (granted), not 1 (grantedWithMods)
        raise TimestampInvalid(f"the time-stamp is not granted (status {response.status})")
    gen_time = _gen_time(response)
    imprint = response.tst_info.message_imprint
    if imprint.hash_algorithm != SHA256_OID:
        raise TimestampInvalid(
            "the time-stamp imprint is not SHA-256", algorithm=imprint.hash_algorithm.dotted_string
        )
    if imprint.message != hashlib.sha256(data).digest():
        raise TimestampInvalid("the time-stamp imprint is not the SHA-256 of the data")
    signer = _signer_certificate(response)
    builder = VerifierBuilder()
    if tsa_roots is None:
        # The library's OpenSSL store takes only self-signed anchors, so the embedded TSA
        # certificate cannot be its own root. Re-issue it (same name, serial, key,
        # validity, extensions) under a throw-away CA named like its issuer: OpenSSL then
        # takes the copy as the signer and checks the token's signature with the key of
        # the embedded certificate, and trusts nothing else.
        try:
            stand_in_ca, stand_in = _stand_in_chain(signer)
        except (ValueError, TypeError) as exc:
            raise TimestampInvalid(f"the TSA certificate is unusable: {exc}") from exc
        builder = builder.add_root_certificate(stand_in_ca).add_intermediate_certificate(stand_in)
    else:
        if not tsa_roots:
            raise TimestampInvalid("no TSA trust anchors given")
        for root in dict.fromkeys(tsa_roots):  # the builder refuses duplicates
            builder = builder.add_root_certificate(root)
    try:
        builder.build().verify(response, imprint.message)
    except (VerificationError, ValueError) as exc:
        raise TimestampInvalid(_why(exc, anchored=tsa_roots is not None), error=str(exc)) from exc
    return VerifiedTimestamp(
        gen_time=gen_time,
        tsa_subject=signer.subject.rfc4514_string(),
        anchored=tsa_roots is not None,
    )


def _why(exc: Exception, *, anchored: bool) -> str:
    """A short reason for a failure of the library's verifier (whose messages embed
    OpenSSL's whole error stack)."""
    text = str(exc)
    if "Unable to verify pkcs7 signature" not in text:
        return f"the time-stamp does not verify: {text}"
    if "certificate verify error" in text:
        found = re.search(r'Verify error: ([^"]*)"', text)
        cause = found.group(1) if found else "certificate verify error"
        against = " against the TSA trust anchors" if anchored else ""
        return f"the TSA certificate does not verify{against} ({cause})"
    reasons = re.findall(r'reason: "([^"]*)"', text)
    return f"the time-stamp signature does not verify ({reasons[-1] if reasons else text})"


def _decode(tsr: bytes) -> TimeStampResponse:
    try:
        return decode_timestamp_response(tsr)
    except ValueError as exc:
        raise TimestampInvalid(f"not a DER TimeStampResp: {exc}") from exc


def _gen_time(response: TimeStampResponse) -> datetime.datetime:
    try:
        gen_time = response.tst_info.gen_time
    except ValueError as exc:
        raise TimestampInvalid(
            f"the TimeStampResp holds no readable token (status {response.status}): {exc}"
        ) from exc
    if gen_time.tzinfo is None:
        return gen_time.replace(tzinfo=datetime.UTC)
    return gen_time.astimezone(datetime.UTC)


def _signer_certificate(response: TimeStampResponse) -> x509.Certificate:
    """The certificate in the token that its (single) SignerInfo names."""
    try:
        signed = response.signed_data
        infos = list(signed.signer_infos)
        certificates = [x509.load_der_x509_certificate(c) for c in signed.certificates]
    except ValueError as exc:
        raise TimestampInvalid(f"the time-stamp token does not parse: {exc}") from exc
    if len(infos) != 1:
        raise TimestampInvalid(f"the time-stamp token has {len(infos)} signers, not one")
    for certificate in certificates:
        if (certificate.issuer, certificate.serial_number) == (
            infos[0].issuer,
            infos[0].serial_number,
        ):
            return certificate
    raise TimestampInvalid("the time-stamp token does not embed its TSA certificate")


def _stand_in_chain(signer: x509.Certificate) -> tuple[x509.Certificate, x509.Certificate]:
    """A throw-away self-signed CA named like ``signer``'s issuer, and ``signer`` re-issued
    by it unchanged but for the signature (and without the authority key identifier)."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(signer.issuer)
        .issuer_name(signer.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(signer.not_valid_before_utc)
        .not_valid_after(signer.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    copy = (
        x509.CertificateBuilder()
        .subject_name(signer.subject)
        .issuer_name(signer.issuer)
        .public_key(signer.public_key())
        .serial_number(signer.serial_number)
        .not_valid_before(signer.not_valid_before_utc)
        .not_valid_after(signer.not_valid_after_utc)
    )
    for extension in signer.extensions:
        if not isinstance(extension.value, x509.AuthorityKeyIdentifier):
            copy = copy.add_extension(extension.value, critical=extension.critical)
    return ca, copy.sign(key, hashes.SHA256())
