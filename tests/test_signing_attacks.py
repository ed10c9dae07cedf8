"""The attack corpus: every hostile or unacceptable input is refused with its exact code.

Each case turns a correctly signed package into a bad one; ``verify`` must raise
the expected ``AxisError`` subclass and nothing else.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import XMLSigner

from envelopes.errors import AxisError, ForbiddenXmlConstruct, MalformedXml
from envelopes.xmlsafe import parse_tree
from signing.errors import (
    AlgorithmRefused,
    CertificateMismatch,
    CertificateNotYetValid,
    ExpiredCertificate,
    InvalidKeyMaterial,
    MultipleSignatures,
    ReferenceNotWholeDocument,
    SignatureInvalid,
    SignatureMissing,
    UntrustedCertificate,
)
from signing.keys import PrivateKey, load_signing_key
from signing.pki import issue_agency, new_ca
from signing.sign import sign_package
from signing.verify import VerifyPolicy, verify
from tests.test_signing_helpers import LATER, NOW, SMALL_PACKAGE, SigningPki, ds, edxml

SUBJECT = "Về việc kết nối liên thông"


@pytest.fixture(scope="module")
def signed(pki: SigningPki) -> bytes:
    return sign_package(SMALL_PACKAGE, pki.agency_rsa.signing_key())


def _anchors(pki: SigningPki, *, allow_sha1: bool = False) -> VerifyPolicy:
    return VerifyPolicy(at=LATER, trust_anchors=pki.anchors, allow_sha1=allow_sha1)


def _edit(signed: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = parse_tree(signed)
    change(root)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _signature(root: etree._Element) -> etree._Element:
    found = root.find(f".//{ds('Signature')}")
    assert found is not None
    return found


def _set_algorithm(path: str, uri: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        element = _signature(root).find(path, {"ds": "http://www.w3.org/2000/09/xmldsig#"})
        assert element is not None
        element.set("Algorithm", uri)
    return change


def _add_second_message_header(root: etree._Element) -> None:
    header = root.find(f".//{edxml('MessageHeader')}")
    assert header is not None
    forged = copy.deepcopy(header)
    subject = forged.find(edxml("Subject"))
    assert subject is not None
    subject.text = "Forged"
    header.addnext(forged)


def _duplicate_signature(root: etree._Element) -> None:
    root.append(copy.deepcopy(_signature(root)))


def _add_vendor_signature(root: etree._Element) -> None:
    body = root.find(f".//{edxml('edXMLBody')}")
    assert body is not None
    etree.SubElement(body, edxml("Signature"))


def _duplicate_reference(root: etree._Element) -> None:
    signed_info = _signature(root).find(ds("SignedInfo"))
    assert signed_info is not None
    reference = signed_info.find(ds("Reference"))
    assert reference is not None
    reference.addnext(copy.deepcopy(reference))


def _set_uri(uri: str | None) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        reference = _signature(root).find(f"{ds('SignedInfo')}/{ds('Reference')}")
        assert reference is not None
        if uri is None:
            del reference.attrib["URI"]
        else:
            reference.set("URI", uri)
    return change


def _remove(path: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        element = _signature(root).find(path, {"ds": "http://www.w3.org/2000/09/xmldsig#"})
        assert element is not None
        parent = element.getparent()
        assert parent is not None
        parent.remove(element)
    return change


def _set_text(path: str, text: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        element = _signature(root).find(path, {"ds": "http://www.w3.org/2000/09/xmldsig#"})
        assert element is not None
        element.text = text
    return change


def _swap_certificate(pem_cert: x509.Certificate) -> Callable[[etree._Element], None]:
    from base64 import b64encode

    from cryptography.hazmat.primitives.serialization import Encoding

    return _set_text("ds:KeyInfo/ds:X509Data/ds:X509Certificate",
                     b64encode(pem_cert.public_bytes(Encoding.DER)).decode())


@dataclass(frozen=True)
class Case:
    name: str
    change: Callable[[etree._Element], None]
    error: type[AxisError]


_X = "ds:SignedInfo"
CASES = [
    Case("second MessageHeader beside the signed one", _add_second_message_header,
         SignatureInvalid),
    Case("two XMLDSig signatures", _duplicate_signature, MultipleSignatures),
    Case("extra Signature in the edXML namespace", _add_vendor_signature, MultipleSignatures),
    Case("two references", _duplicate_reference, ReferenceNotWholeDocument),
    Case("reference to an id", _set_uri("#mh"), ReferenceNotWholeDocument),
    Case("reference without URI", _set_uri(None), ReferenceNotWholeDocument),
    Case("unknown signature method",
         _set_algorithm(f"{_X}/ds:SignatureMethod", "http://example.com/rsa-md2"),
         AlgorithmRefused),
    Case("unknown digest method", _set_algorithm(f"{_X}/ds:Reference/ds:DigestMethod",
                                                 "http://example.com/crc32"), AlgorithmRefused),
    Case("unknown c14n method", _set_algorithm(f"{_X}/ds:CanonicalizationMethod",
                                               "http://example.com/c14n"), AlgorithmRefused),
    Case("XSLT transform", _set_algorithm(f"{_X}/ds:Reference/ds:Transforms/ds:Transform[2]",
                                          "http://www.w3.org/TR/1999/REC-xslt-19991116"),
         AlgorithmRefused),
    Case("SHA-1 digest without opt-in", _set_algorithm(f"{_X}/ds:Reference/ds:DigestMethod",
                                                       "http://www.w3.org/2000/09/xmldsig#sha1"),
         AlgorithmRefused),
    Case("no KeyInfo", _remove("ds:KeyInfo"), UntrustedCertificate),
    Case("X509Certificate not base64", _set_text("ds:KeyInfo/ds:X509Data/ds:X509Certificate",
                                                 "!!not base64!!"), InvalidKeyMaterial),
    Case("X509Certificate not DER", _set_text("ds:KeyInfo/ds:X509Data/ds:X509Certificate",
                                              "AAAA"), InvalidKeyMaterial),
    Case("SignatureValue garbage", _set_text("ds:SignatureValue", "AAAA"), SignatureInvalid),
    Case("SignatureValue not base64", _set_text("ds:SignatureValue", "***"), SignatureInvalid),
    Case("DigestValue changed", _set_text(f"{_X}/ds:Reference/ds:DigestValue",
                                          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
         SignatureInvalid),
    Case("no SignedInfo", _remove(_X), SignatureInvalid),
    Case("no enveloped transform", _remove(f"{_X}/ds:Reference/ds:Transforms/ds:Transform[1]"),
         SignatureInvalid),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tampered_signature_is_refused(pki: SigningPki, signed: bytes, case: Case) -> None:
    bad = _edit(signed, case.change)
    with pytest.raises(case.error) as caught:
        verify(bad, _anchors(pki))
    assert type(caught.value) is case.error


def test_tampered_subject_byte_is_invalid(pki: SigningPki, signed: bytes) -> None:
    assert SUBJECT.encode() in signed
    bad = signed.replace(SUBJECT.encode(), SUBJECT.replace("V", "W").encode())
    with pytest.raises(SignatureInvalid):
        verify(bad, _anchors(pki))


def test_certificate_swapped_for_another_trusted_one(pki: SigningPki, signed: bytes) -> None:
    bad = _edit(signed, _swap_certificate(pki.agency_ec.certificate))
    with pytest.raises(SignatureInvalid):
        verify(bad, _anchors(pki))


def test_header_injected_in_ds_object_is_never_returned(pki: SigningPki, signed: bytes) -> None:
    def inject(root: etree._Element) -> None:
        forged = etree.SubElement(_signature(root), ds("Object"))
        header = etree.SubElement(forged, edxml("MessageHeader"))
        etree.SubElement(header, edxml("Subject")).text = "Forged"

    result = verify(_edit(signed, inject), _anchors(pki))

    headers = result.root.findall(f".//{edxml('MessageHeader')}")
    assert len(headers) == 1
    assert headers[0].findtext(edxml("Subject")) == SUBJECT
    assert result.root.find(f".//{ds('Object')}") is None
    assert b"Forged" not in result.signed_bytes


def test_unsigned_package_is_missing_its_signature(pki: SigningPki) -> None:
    with pytest.raises(SignatureMissing):
        verify(SMALL_PACKAGE, _anchors(pki))


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"<edXML><unclosed></edXML>", MalformedXml),
        (b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", ForbiddenXmlConstruct),
        (b"", MalformedXml),
    ],
    ids=["malformed", "doctype", "empty"],
)
def test_hostile_xml_gets_envelope_codes(pki: SigningPki, raw: bytes,
                                         error: type[AxisError]) -> None:
    with pytest.raises(error):
        verify(raw, _anchors(pki))


def _sign_with_signxml(root: etree._Element, key: PrivateKey, cert: x509.Certificate,
                       method: SignatureMethod, digest: DigestAlgorithm,
                       reference_uri: str | None = None) -> bytes:
    class LegacySigner(XMLSigner):
        def check_deprecated_methods(self) -> None:
            """signxml refuses to make SHA-1 signatures; this test needs one."""

    signer = LegacySigner(method=SignatureConstructionMethod.enveloped, signature_algorithm=method,
                          digest_algorithm=digest,
                          c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    signed = signer.sign(root, key=key, cert=[cert], reference_uri=reference_uri)
    return bytes(etree.tostring(signed))


def test_rsa_sha1_refused_unless_opted_in(pki: SigningPki) -> None:
    key = pki.agency_rsa.signing_key()
    raw = _sign_with_signxml(parse_tree(SMALL_PACKAGE), key.private_key, key.certificate,
                             SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA1)
    with pytest.raises(AlgorithmRefused, match="SHA-1"):
        verify(raw, _anchors(pki))

    assert verify(raw, _anchors(pki, allow_sha1=True)).signer == key.certificate


def test_signature_over_a_sub_element_is_refused(pki: SigningPki) -> None:
    root = parse_tree(SMALL_PACKAGE)
    header = root.find(f".//{edxml('MessageHeader')}")
    assert header is not None
    header.set("Id", "mh")
    key = pki.agency_rsa.signing_key()
    raw = _sign_with_signxml(root, key.private_key, key.certificate, SignatureMethod.RSA_SHA256,
                             DigestAlgorithm.SHA256, reference_uri="#mh")
    with pytest.raises(ReferenceNotWholeDocument):
        verify(raw, _anchors(pki))


def _rsa_1024_credential(pki: SigningPki) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    ca_key = pki.ca.signing_key().private_key
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")]))
        .issuer_name(pki.ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                       critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def test_rsa_1024_key_refused_for_signing_and_verifying(pki: SigningPki) -> None:
    from cryptography.hazmat.primitives import serialization

    key, cert = _rsa_1024_credential(pki)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    with pytest.raises(InvalidKeyMaterial, match="1024"):
        load_signing_key(key_pem, cert.public_bytes(serialization.Encoding.PEM))

    raw = _sign_with_signxml(parse_tree(SMALL_PACKAGE), key, cert, SignatureMethod.RSA_SHA256,
                             DigestAlgorithm.SHA256)
    with pytest.raises(AlgorithmRefused, match="1024"):
        verify(raw, _anchors(pki))


@pytest.mark.parametrize(
    ("window", "error"),
    [
        ((-400, -1), ExpiredCertificate),
        ((2, 30), CertificateNotYetValid),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_certificate_outside_its_window(pki: SigningPki, window: tuple[int, int],
                                        error: type[AxisError]) -> None:
    agency = issue_agency(pki.ca, "000.00.00.G01", "Windowed", NOW,
                          not_before=LATER + timedelta(days=window[0]),
                          not_after=LATER + timedelta(days=window[1]))
    raw = sign_package(SMALL_PACKAGE, agency.signing_key())
    with pytest.raises(error):
        verify(raw, _anchors(pki))
    with pytest.raises(error):
        verify(raw, VerifyPolicy(at=LATER, pinned=(agency.certificate,)))


def test_expired_issuer_is_reported_as_expired(pki: SigningPki) -> None:
    short_ca = new_ca("Short-lived CA", NOW, valid_days=1)
    agency = issue_agency(short_ca, "000.00.00.G02", "Outlives its CA", NOW)
    raw = sign_package(SMALL_PACKAGE, agency.signing_key())
    policy = VerifyPolicy(at=NOW + timedelta(days=3), trust_anchors=(short_ca.certificate,))
    with pytest.raises(ExpiredCertificate, match="Short-lived CA"):
        verify(raw, policy)


def test_certificate_from_another_ca_is_untrusted(pki: SigningPki) -> None:
    raw = sign_package(SMALL_PACKAGE, pki.stranger.signing_key())
    with pytest.raises(UntrustedCertificate):
        verify(raw, _anchors(pki))


def test_wrong_pinned_certificate_is_a_mismatch(pki: SigningPki, signed: bytes) -> None:
    with pytest.raises(CertificateMismatch):
        verify(signed, VerifyPolicy(at=LATER, pinned=(pki.agency_ec.certificate,)))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_byte_change_is_refused_or_harmless(pki: SigningPki, signed: bytes,
                                                       data: st.DataObject) -> None:
    """If a mutated package still verifies, what it returns is exactly what was signed."""
    original = verify(signed, _anchors(pki)).signed_bytes
    position = data.draw(st.integers(0, len(signed) - 1))
    value = data.draw(st.integers(0, 255))
    mutated = signed[:position] + bytes([value]) + signed[position + 1:]
    try:
        result = verify(mutated, _anchors(pki))
    except AxisError:
        return
    assert result.signed_bytes == original
