"""The in-memory PKI: certificates carry what path validation needs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from envelopes.errors import InvalidOrganId
from signing.pki import issue_agency, new_ca
from tests.test_signing_helpers import NOW, SigningPki


def _ext(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


def test_ca_is_a_self_signed_authority(pki: SigningPki) -> None:
    ca = pki.ca.certificate
    assert ca.subject == ca.issuer
    constraints = _ext(ca, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca  # type: ignore[attr-defined]
    assert _ext(ca, x509.KeyUsage).value.key_cert_sign  # type: ignore[attr-defined]
    ca.verify_directly_issued_by(ca)
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= timedelta(days=3650)


@pytest.mark.parametrize(
    ("who", "key_class", "organ_id", "name"),
    [
        ("hub", ec.EllipticCurvePublicKey, None, "Axis hub"),
        ("agency_rsa", rsa.RSAPublicKey, "000.00.00.G22", "Văn phòng Chính phủ"),
        ("agency_ec", ec.EllipticCurvePublicKey, "000.00.00.H41", "UBND Tỉnh Nghệ An"),
    ],
)
def test_leaf_certificates(pki: SigningPki, who: str, key_class: type, organ_id: str | None,
                           name: str) -> None:
    cert = getattr(pki, who).certificate
    assert isinstance(cert.public_key(), key_class)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
    uid = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    assert [a.value for a in uid] == ([organ_id] if organ_id else [])
    assert not _ext(cert, x509.BasicConstraints).value.ca  # type: ignore[attr-defined]
    assert _ext(cert, x509.KeyUsage).value.digital_signature  # type: ignore[attr-defined]
    assert cert.issuer == pki.ca.certificate.subject
    cert.verify_directly_issued_by(pki.ca.certificate)
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    ski = _ext(pki.ca.certificate, x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest  # type: ignore[attr-defined]


def test_rsa_agency_key_is_2048_bits(pki: SigningPki) -> None:
    key = pki.agency_rsa.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048


@pytest.mark.parametrize("who", ["hub", "agency_rsa", "agency_ec"])
def test_cryptography_path_validation_accepts_the_chain(pki: SigningPki, who: str) -> None:
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([pki.ca.certificate]))
        .time(NOW)
        .extension_policies(
            ee_policy=verification.ExtensionPolicy.permit_all(),
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
        )
        .build_client_verifier()
    )
    chain = verifier.verify(getattr(pki, who).certificate, []).chain
    assert chain[-1] == pki.ca.certificate


def test_explicit_validity_window() -> None:
    ca = new_ca("CA", NOW)
    start, end = NOW + timedelta(days=1), NOW + timedelta(days=2)
    cert = issue_agency(ca, "000.00.00.G22", "A", NOW, not_before=start, not_after=end).certificate
    assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (start, end)


def test_credentials_load_as_signing_keys(pki: SigningPki) -> None:
    key = pki.agency_rsa.signing_key()
    assert key.certificate == pki.agency_rsa.certificate


@pytest.mark.parametrize("organ_id", ["", "../etc/passwd", "000.00.00.g22", "a b", "000..00"])
def test_invalid_organ_id_is_refused(pki: SigningPki, organ_id: str) -> None:
    with pytest.raises(InvalidOrganId):
        issue_agency(pki.ca, organ_id, "Bad", NOW)


def test_unknown_key_type_is_refused(pki: SigningPki) -> None:
    with pytest.raises(ValueError, match="key type"):
        issue_agency(pki.ca, "000.00.00.G22", "A", NOW, key_type="dsa")  # type: ignore[arg-type]
