"""Loading keys and certificates; naming them (fingerprint, OrganId)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from signxml.algorithms import SignatureMethod

from signing.errors import InvalidKeyMaterial
from signing.keys import (
    SigningKey,
    fingerprint,
    load_certificate,
    load_certificates,
    load_signing_key,
    organ_id_of,
)
from tests.test_signing_helpers import SigningPki


def _pem(key: object, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


@pytest.mark.parametrize(
    ("who", "algorithm"),
    [("agency_rsa", SignatureMethod.RSA_SHA256), ("agency_ec", SignatureMethod.ECDSA_SHA256),
     ("hub", SignatureMethod.ECDSA_SHA256)],
)
def test_load_signing_key_picks_the_algorithm(pki: SigningPki, who: str,
                                              algorithm: SignatureMethod) -> None:
    credential = getattr(pki, who)
    key = load_signing_key(credential.key_pem, credential.cert_pem)
    assert key.certificate == credential.certificate
    assert key.algorithm == algorithm
    assert key.chain == ()


def test_certificate_bundle_becomes_the_chain(pki: SigningPki) -> None:
    credential = pki.agency_rsa
    key = load_signing_key(credential.key_pem, credential.cert_pem + pki.ca.cert_pem)
    assert key.chain == (pki.ca.certificate,)


def test_encrypted_key_needs_its_password(pki: SigningPki) -> None:
    private = pki.agency_ec.signing_key().private_key
    encrypted = _pem(private, b"s3cret")
    assert load_signing_key(encrypted, pki.agency_ec.cert_pem, b"s3cret").private_key \
        .public_key() == private.public_key()
    for password in (None, b"wrong"):
        with pytest.raises(InvalidKeyMaterial, match="private key"):
            load_signing_key(encrypted, pki.agency_ec.cert_pem, password)


@pytest.mark.parametrize(
    ("make_key", "match"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "1024"),
        (lambda: ec.generate_private_key(ec.SECP192R1()), "secp192r1"),
        (lambda: dsa.generate_private_key(key_size=2048), "unsupported key type"),
    ],
    ids=["rsa-1024", "p-192", "dsa"],
)
def test_weak_or_foreign_keys_are_refused(pki: SigningPki, make_key: object, match: str) -> None:
    key = make_key()  # type: ignore[operator]
    with pytest.raises(InvalidKeyMaterial, match=match):
        load_signing_key(_pem(key), pki.agency_rsa.cert_pem)


def test_key_must_match_the_certificate(pki: SigningPki) -> None:
    with pytest.raises(InvalidKeyMaterial, match="does not match"):
        load_signing_key(pki.agency_rsa.key_pem, pki.stranger.cert_pem)
    with pytest.raises(InvalidKeyMaterial, match="does not match"):
        SigningKey(pki.hub.signing_key().private_key, pki.agency_ec.certificate)


@pytest.mark.parametrize(
    ("key_pem", "cert_pem"),
    [(b"garbage", None), (None, b"garbage"), (None, b""), (b"", None)],
    ids=["key-garbage", "cert-garbage", "cert-empty", "key-empty"],
)
def test_unreadable_material_is_invalid_key_material(pki: SigningPki, key_pem: bytes | None,
                                                     cert_pem: bytes | None) -> None:
    with pytest.raises(InvalidKeyMaterial):
        load_signing_key(key_pem if key_pem is not None else pki.agency_rsa.key_pem,
                         cert_pem if cert_pem is not None else pki.agency_rsa.cert_pem)


def test_load_certificate_reads_pem_and_der(pki: SigningPki) -> None:
    cert = pki.hub.certificate
    der = cert.public_bytes(serialization.Encoding.DER)
    assert load_certificate(pki.hub.cert_pem) == cert
    assert load_certificate(der) == cert
    bad_pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    for bad in (b"", bad_pem, b"\x30\x03"):
        with pytest.raises(InvalidKeyMaterial):
            load_certificate(bad)


def test_load_certificates_keeps_order(pki: SigningPki) -> None:
    bundle = pki.agency_rsa.cert_pem + pki.ca.cert_pem
    assert load_certificates(bundle) == [pki.agency_rsa.certificate, pki.ca.certificate]
    with pytest.raises(InvalidKeyMaterial):
        load_certificates(b"no certificates here")


def test_fingerprint_is_sha256_of_der(pki: SigningPki) -> None:
    cert = pki.agency_rsa.certificate
    expected = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert fingerprint(cert) == expected
    assert fingerprint(cert) != fingerprint(pki.agency_ec.certificate)


@pytest.mark.parametrize(
    ("who", "organ_id"),
    [("agency_rsa", "000.00.00.G22"), ("agency_ec", "000.00.00.H41"), ("hub", None),
     ("ca", None)],
)
def test_organ_id_of(pki: SigningPki, who: str, organ_id: str | None) -> None:
    assert organ_id_of(getattr(pki, who).certificate) == organ_id
