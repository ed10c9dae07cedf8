"""Signing keys and certificates: loading, checking, naming.

A :class:`SigningKey` is loaded once and reused: re-parsing a PEM private key for
every signature costs tens of milliseconds. Everything here is pure: bytes in,
objects out; reading the files is the caller's job (see ``axis.pki_files``).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID
from signxml.algorithms import SignatureMethod

from signing.errors import InvalidKeyMaterial

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

MIN_RSA_BITS = 2048

_EC_METHODS: dict[str, SignatureMethod] = {
    "secp256r1": SignatureMethod.ECDSA_SHA256,
    "secp384r1": SignatureMethod.ECDSA_SHA384,
    "secp521r1": SignatureMethod.ECDSA_SHA512,
}


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key, its certificate and the intermediates to send along with it.

    Construction checks that the key suits signing (RSA ≥ 2048 bits or ECDSA on
    P-256/384/521) and that it matches the certificate; otherwise
    :class:`InvalidKeyMaterial`.
    """

    private_key: PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __post_init__(self) -> None:
        check_key_strength(self.private_key)
        if self.private_key.public_key() != self.certificate.public_key():
            raise InvalidKeyMaterial(
                "the private key does not match the certificate",
                certificate=fingerprint(self.certificate),
            )

    @property
    def algorithm(self) -> SignatureMethod:
        """The signxml ``SignatureMethod`` for this key (RSA-SHA256, ECDSA-SHA256 on P-256)."""
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            return SignatureMethod.RSA_SHA256
        return _EC_METHODS[self.private_key.curve.name]


def check_key_strength(key: object) -> None:
    """Refuse keys Axis does not sign with: RSA under 2048 bits, other curves, DSA, …"""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidKeyMaterial(
                f"RSA key of {key.key_size} bits is below the minimum of {MIN_RSA_BITS}",
                key_bits=key.key_size,
            )
        return
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if key.curve.name not in _EC_METHODS:
            raise InvalidKeyMaterial(f"elliptic curve {key.curve.name} is not supported")
        return
    raise InvalidKeyMaterial(f"unsupported key type {type(key).__name__}")


def load_signing_key(key_pem: bytes, cert_pem: bytes, password: bytes | None = None) -> SigningKey:
    """Load a PEM private key and its PEM certificate (followed by any intermediates)."""
    try:
        private_key = load_pem_private_key(key_pem, password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidKeyMaterial(f"cannot load the private key: {_first_line(exc)}") from None
    if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise InvalidKeyMaterial(f"unsupported key type {type(private_key).__name__}")
    certificates = load_certificates(cert_pem)
    return SigningKey(private_key, certificates[0], tuple(certificates[1:]))


def load_certificate(data: bytes) -> x509.Certificate:
    """One certificate, PEM or DER."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except (ValueError, TypeError) as exc:
        raise InvalidKeyMaterial(f"cannot load the certificate: {_first_line(exc)}") from None


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, in order; at least one."""
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except (ValueError, TypeError) as exc:
        raise InvalidKeyMaterial(f"cannot load the certificates: {_first_line(exc)}") from None
    if not certificates:
        raise InvalidKeyMaterial("no certificate found")
    return certificates


def fingerprint(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the certificate's DER encoding."""
    return cert.fingerprint(hashes.SHA256()).hex()


def organ_id_of(cert: x509.Certificate) -> str | None:
    """The agency identifier (OrganId) carried as the subject's ``UID`` attribute, if any."""
    try:
        attributes = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    except ValueError:
        return None
    if not attributes:
        return None
    value = attributes[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
