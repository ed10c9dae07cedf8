"""A small test/deployment PKI: one CA, the hub, and one certificate per agency.

Pure: the time comes in as ``now``; keys and certificates come out as PEM bytes
(writing them is ``axis.pki_files``'s job). The certificates carry the
extensions that both ``cryptography``'s path validation and xmlsec1 (OpenSSL)
require: basicConstraints, keyUsage, subject and authority key identifiers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from envelopes.ids import validate_organ_id
from signing.keys import PrivateKey, SigningKey, load_certificate, load_signing_key

# Tolerates clocks a few minutes apart between the issuer and the verifier.
_BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Credential:
    """A private key (PKCS#8 PEM, unencrypted) and its certificate (PEM)."""

    key_pem: bytes
    cert_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        """The parsed certificate."""
        return load_certificate(self.cert_pem)

    def signing_key(self) -> SigningKey:
        """The credential as a loaded :class:`SigningKey` (load once, reuse)."""
        return load_signing_key(self.key_pem, self.cert_pem)


def new_ca(name: str, now: datetime, *, valid_days: int = 3650) -> Credential:
    """A self-signed root CA (ECDSA P-256) valid from ``now`` for ``valid_days``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Axis"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        _base_builder(subject, subject, key, now - _BACKDATE, now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    return _credential(key, builder.sign(key, hashes.SHA256()))


def issue_hub(
    ca: Credential, now: datetime, *, name: str = "Axis hub", valid_days: int = 825
) -> Credential:
    """The hub's signing certificate (ECDSA P-256: it signs every receipt)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return _issue_leaf(ca, key, subject, now - _BACKDATE, now + timedelta(days=valid_days))


def issue_agency(
    ca: Credential,
    organ_id: str,
    name: str,
    now: datetime,
    *,
    key_type: Literal["rsa", "ec"] = "rsa",
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    crl_urls: Sequence[str] = (),
    ocsp_url: str | None = None,
) -> Credential:
    """An agency's signing certificate: subject ``UID=organ_id``, ``CN=name``.

    RSA 2048 by default (what agency document systems use), ECDSA P-256 on
    request. ``organ_id`` must pass ``envelopes.ids.validate_organ_id``
    (:class:`InvalidOrganId` otherwise). The validity window defaults to ``now``
    (backdated a few minutes)
    until 825 days later. ``crl_urls`` become its CRL distribution points and
    ``ocsp_url`` its authority information access (OCSP responder), where the hub
    looks for the CA's revocation of it.
    """
    validate_organ_id(organ_id)
    key: PrivateKey
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unknown key type {key_type!r}")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.USER_ID, organ_id),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    start = not_before if not_before is not None else now - _BACKDATE
    end = not_after if not_after is not None else now + timedelta(days=825)
    return _issue_leaf(ca, key, subject, start, end, _revocation_pointers(crl_urls, ocsp_url))


def _revocation_pointers(
    crl_urls: Sequence[str], ocsp_url: str | None
) -> list[x509.ExtensionType]:
    pointers: list[x509.ExtensionType] = []
    if crl_urls:
        pointers.append(x509.CRLDistributionPoints([
            x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)
            for url in crl_urls]))  # fmt: skip
    if ocsp_url:
        pointers.append(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]))
    return pointers


def _issue_leaf(
    ca: Credential, key: PrivateKey, subject: x509.Name, start: datetime, end: datetime,
    extensions: Sequence[x509.ExtensionType] = (),
) -> Credential:  # fmt: skip
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError("the CA key must be RSA or ECDSA")
    ca_cert = ca.certificate
    builder = (
        _base_builder(subject, ca_cert.subject, key, start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return _credential(key, builder.sign(ca_key, hashes.SHA256()))


def _base_builder(
    subject: x509.Name, issuer: x509.Name, key: PrivateKey, start: datetime, end: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_utc(start))
        .not_valid_after(_utc(end))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=not cert_sign,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _credential(key: PrivateKey, cert: x509.Certificate) -> Credential:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Credential(key_pem, cert.public_bytes(serialization.Encoding.PEM))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
