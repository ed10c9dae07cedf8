"""The attack corpus: every hostile or unacceptable input is refused with its exact code.

Each case turns a correctly signed package into a bad one; ``verify`` must raise
the expected ``AxisError`` subclass and nothing else.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

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
from signxml.verifier import XMLVerifier

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
    SignatureUnexpectedContent,
    UntrustedCertificate,
)
from signing.keys import PrivateKey, load_signing_key
from signing.pki import issue_agency, new_ca
from signing.sign import sign_document, sign_package
from signing.structure import check_signature_content
from signing.verify import VerifyPolicy, verify
from tests.test_interop_xmlsec import TEMPLATE
from tests.test_signing_helpers import (
    LATER,
    NOW,
    SMALL_PACKAGE,
    SigningPki,
    ds,
    edxml,
    xmlsec1_path,
)

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


# -- content inside ds:Signature that XMLDSig does not need ------------------------------------

DS = "http://www.w3.org/2000/09/xmldsig#"
FOREIGN_NS = "urn:example:evil"


def _append(parent_path: str, make: Callable[[], etree._Element],
            before: str | None = None) -> Callable[[etree._Element], None]:
    """Put ``make()`` into the element at ``parent_path`` ("." = the Signature), last or
    just before its child ``before``."""

    def change(root: etree._Element) -> None:
        parent = _signature(root).find(parent_path, {"ds": DS})
        assert parent is not None
        if before is None:
            parent.append(make())
        else:
            anchor = parent.find(before, {"ds": DS})
            assert anchor is not None
            anchor.addprevious(make())
    return change


def _element(tag: str, text: str | None = None, *children: etree._Element) -> etree._Element:
    element = etree.Element(tag)
    element.text = text
    element.extend(children)
    return element


def _forged_envelope_object(root: etree._Element) -> None:
    """A complete second edXML envelope, to the attacker's liking, inside ds:Object."""
    envelope = root.find(edxml("edXMLEnvelope"))
    assert envelope is not None
    forged = copy.deepcopy(envelope)
    header = forged.find(edxml("edXMLHeader"))
    assert header is not None
    header.remove(_signature(forged))
    subject = forged.find(f".//{edxml('Subject')}")
    assert subject is not None
    subject.text = "Forged"
    wrapper = etree.Element(edxml("edXML"))
    wrapper.append(forged)
    _signature(root).append(_element(ds("Object"), None, wrapper))


def _header_object() -> etree._Element:
    header = _element(edxml("MessageHeader"), None, _element(edxml("Subject"), "Forged"))
    return _element(ds("Object"), None, header)


def _set_tail(path: str, text: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        element = _signature(root).find(path, {"ds": DS})
        assert element is not None
        element.tail = text
    return change


def _move_before(path: str, anchor: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        element = _signature(root).find(path, {"ds": DS})
        target = _signature(root).find(anchor, {"ds": DS})
        assert element is not None and target is not None
        target.addprevious(element)
    return change


def _duplicate(path: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        element = _signature(root).find(path, {"ds": DS})
        assert element is not None
        element.addnext(copy.deepcopy(element))
    return change


@dataclass(frozen=True)
class ContentCase:
    name: str
    change: Callable[[etree._Element], None]
    path: str  # the end of the refusal's ``path``


_SIG = "/edXML/edXMLEnvelope/edXMLHeader/ds:Signature"
_KI = "ds:KeyInfo"
_XD = "ds:KeyInfo/ds:X509Data"
UNEXPECTED = [
    # (a) unsigned content a naive parser would read as the package
    ContentCase("ds:Object holding a second edXML envelope", _forged_envelope_object,
                f"{_SIG}/ds:Object"),
    ContentCase("ds:Object holding a MessageHeader", _append(".", _header_object),
                f"{_SIG}/ds:Object"),
    ContentCase("ds:Object between SignatureValue and KeyInfo",
                _append(".", lambda: _element(ds("Object")), before=_KI), f"{_SIG}/ds:Object"),
    # (b)
    ContentCase("ds:Object holding text", _append(".", lambda: _element(ds("Object"), "Forged")),
                f"{_SIG}/ds:Object"),
    ContentCase("ds:Manifest in the Signature", _append(".", lambda: _element(ds("Manifest"))),
                f"{_SIG}/ds:Manifest"),
    ContentCase("ds:SignatureProperties in the Signature",
                _append(".", lambda: _element(ds("SignatureProperties"))),
                f"{_SIG}/ds:SignatureProperties"),
    # (c) elements of other namespaces, anywhere
    ContentCase("foreign element in Signature",
                _append(".", lambda: _element(f"{{{FOREIGN_NS}}}Note", "x")),
                f"{_SIG}/{{{FOREIGN_NS}}}Note"),
    ContentCase("edXML MessageHeader directly in Signature",
                _append(".", lambda: _element(edxml("MessageHeader"))),
                f"{_SIG}/{edxml('MessageHeader')}"),
    ContentCase("foreign element in SignedInfo",
                _append("ds:SignedInfo", lambda: _element(f"{{{FOREIGN_NS}}}Note")),
                f"{_SIG}/ds:SignedInfo/{{{FOREIGN_NS}}}Note"),
    ContentCase("foreign element in a Transform",
                _append("ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform[1]",
                        lambda: _element(f"{{{FOREIGN_NS}}}Note")),
                f"ds:Transform[1]/{{{FOREIGN_NS}}}Note"),
    ContentCase("dsig11 X509Digest in X509Data",
                _append(_XD, lambda: _element("{http://www.w3.org/2009/xmldsig11#}X509Digest")),
                f"{_SIG}/{_XD}/{{http://www.w3.org/2009/xmldsig11#}}X509Digest"),
    # (d) KeyInfo children other than X509Data, X509Data children outside the four
    ContentCase("RetrievalMethod in KeyInfo",
                _append(_KI, lambda: _element(ds("RetrievalMethod"))),
                f"{_SIG}/{_KI}/ds:RetrievalMethod"),
    ContentCase("KeyName in KeyInfo", _append(_KI, lambda: _element(ds("KeyName"), "hub")),
                f"{_SIG}/{_KI}/ds:KeyName"),
    ContentCase("KeyValue in KeyInfo", _append(_KI, lambda: _element(ds("KeyValue"))),
                f"{_SIG}/{_KI}/ds:KeyValue"),
    ContentCase("foreign element in KeyInfo",
                _append(_KI, lambda: _element(f"{{{FOREIGN_NS}}}Key")),
                f"{_SIG}/{_KI}/{{{FOREIGN_NS}}}Key"),
    ContentCase("X509CRL in X509Data", _append(_XD, lambda: _element(ds("X509CRL"), "AAAA")),
                f"{_SIG}/{_XD}/ds:X509CRL"),
    # (e) text where XMLDSig has none
    ContentCase("text in Signature", _set_text(".", "Forged"), f"{_SIG}/text()"),
    ContentCase("text after SignedInfo", _set_tail("ds:SignedInfo", "Forged"), f"{_SIG}/text()"),
    ContentCase("no-break space in Signature", _set_text(".", "\u00a0"), f"{_SIG}/text()"),
    ContentCase("text in KeyInfo", _set_text(_KI, "Forged"), f"{_SIG}/{_KI}/text()"),
    ContentCase("text in X509Data", _set_tail(f"{_XD}/ds:X509Certificate", "Forged"),
                f"{_SIG}/{_XD}/text()"),
    ContentCase("text in SignedInfo", _set_text("ds:SignedInfo", "Forged"),
                f"{_SIG}/ds:SignedInfo/text()"),
    ContentCase("element inside SignatureValue",
                _append("ds:SignatureValue", lambda: _element(ds("Object"))),
                f"{_SIG}/ds:SignatureValue/ds:Object"),
    ContentCase("processing instruction in Signature",
                _append(".", lambda: etree.ProcessingInstruction("forged", "data")),
                f"{_SIG}/processing-instruction()"),
    # (f) XMLDSig's own elements, out of order or repeated
    ContentCase("duplicated SignedInfo", _duplicate("ds:SignedInfo"), f"{_SIG}/ds:SignedInfo[2]"),
    ContentCase("duplicated SignatureValue", _duplicate("ds:SignatureValue"),
                f"{_SIG}/ds:SignatureValue[2]"),
    ContentCase("duplicated KeyInfo", _duplicate(_KI), f"{_SIG}/ds:KeyInfo[2]"),
    ContentCase("SignatureValue before SignedInfo",
                _move_before("ds:SignatureValue", "ds:SignedInfo"), f"{_SIG}/ds:SignedInfo"),
    ContentCase("KeyInfo before SignatureValue", _move_before(_KI, "ds:SignatureValue"),
                f"{_SIG}/ds:SignatureValue"),
    ContentCase("DigestValue before DigestMethod",
                _move_before("ds:SignedInfo/ds:Reference/ds:DigestValue",
                             "ds:SignedInfo/ds:Reference/ds:DigestMethod"),
                "ds:Reference/ds:DigestMethod"),
]


@pytest.mark.parametrize("case", UNEXPECTED, ids=[c.name for c in UNEXPECTED])
def test_unneeded_signature_content_is_refused(pki: SigningPki, signed: bytes,
                                               case: ContentCase) -> None:
    bad = _edit(signed, case.change)
    with pytest.raises(SignatureUnexpectedContent) as caught:
        verify(bad, _anchors(pki))
    assert type(caught.value) is SignatureUnexpectedContent
    assert caught.value.code == "signature.unexpected_content"
    assert caught.value.path is not None and caught.value.path.endswith(case.path), (
        caught.value.path)


def test_signxml_alone_accepts_a_forged_envelope_in_ds_object(pki: SigningPki,
                                                              signed: bytes) -> None:
    """Why the check runs before signxml: on its own it verifies the package, ds:Object and all."""
    bad = _edit(signed, _forged_envelope_object)
    assert b"Forged" in bad
    XMLVerifier().verify(bad, x509_cert=pki.agency_rsa.certificate)


def test_a_signature_nested_in_ds_object_is_multiple_signatures(pki: SigningPki,
                                                                signed: bytes) -> None:
    """The more precise existing code wins: find_signature counts Signatures first."""
    def nest(root: etree._Element) -> None:
        _signature(root).append(_element(ds("Object"), None, copy.deepcopy(_signature(root))))

    with pytest.raises(MultipleSignatures):
        verify(_edit(signed, nest), _anchors(pki))


def test_receipt_with_ds_object_is_refused(pki: SigningPki) -> None:
    receipt = sign_document(b"<Receipt><Status>ok</Status></Receipt>", pki.hub.signing_key())
    assert verify(receipt, _anchors(pki)).signer == pki.hub.certificate
    bad = _edit(receipt, _append(".", lambda: _element(ds("Object"), "rejected")))
    with pytest.raises(SignatureUnexpectedContent) as caught:
        verify(bad, _anchors(pki))
    assert caught.value.path == "/Receipt/ds:Signature/ds:Object"
    assert caught.value.to_dict()["element"] == "ds:Object"


def _x509_details(root: etree._Element) -> None:
    """Every allowed X509Data child besides X509Certificate, plus comments and whitespace."""
    data = _signature(root).find(ds("KeyInfo") + "/" + ds("X509Data"))
    assert data is not None
    serial = _element(ds("X509IssuerSerial"), None, _element(ds("X509IssuerName"), "CN=Axis"),
                      _element(ds("X509SerialNumber"), "12345"))
    data.extend([_element(ds("X509SubjectName"), "CN=agency"), serial,
                 _element(ds("X509SKI"), "AAAA"), etree.Comment(" a vendor note ")])
    data.text = "\n  "
    _signature(root).insert(0, etree.Comment(" signed by Axis "))


def test_what_xmldsig_needs_still_verifies(pki: SigningPki, signed: bytes) -> None:
    assert verify(signed, _anchors(pki)).signer == pki.agency_rsa.certificate
    ec_signed = sign_package(SMALL_PACKAGE, pki.agency_ec.signing_key())
    assert verify(ec_signed, _anchors(pki)).signer == pki.agency_ec.certificate
    detailed = verify(_edit(signed, _x509_details), _anchors(pki))
    assert detailed.signed_bytes == verify(signed, _anchors(pki)).signed_bytes


def test_an_xmlsec1_signature_passes_the_content_check(pki: SigningPki, tmp_path: Path) -> None:
    root = parse_tree(SMALL_PACKAGE)
    header = root.find(f"{edxml('edXMLEnvelope')}/{edxml('edXMLHeader')}")
    assert header is not None
    header.append(etree.fromstring(TEMPLATE.replace("{method}", "rsa-sha256")))
    template, output = tmp_path / "template.edxml", tmp_path / "signed.edxml"
    template.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    (tmp_path / "key.pem").write_bytes(pki.agency_rsa.key_pem)
    (tmp_path / "cert.pem").write_bytes(pki.agency_rsa.cert_pem)
    done = subprocess.run([xmlsec1_path(), "--sign", "--privkey-pem",
                           f"{tmp_path / 'key.pem'},{tmp_path / 'cert.pem'}", "--output",
                           str(output), str(template)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert verify(output.read_bytes(), _anchors(pki)).signer == pki.agency_rsa.certificate


@pytest.mark.parametrize("name", ["edoc_update.edxml", "vnpt-builder-output.edxml"])
def test_vendor_signature_shape_passes_the_content_check(pki: SigningPki, conformance_dir: Path,
                                                         name: str) -> None:
    """The vendor corpus's Signature (X509SubjectName + X509Certificate), put in the XMLDSig
    namespace, holds nothing unexpected; it is refused later, for its SHA-1 algorithms."""
    root = parse_tree((conformance_dir / name).read_bytes())
    [signature] = root.iter("{*}Signature")
    for element in signature.iter():
        element.tag = ds(etree.QName(element).localname)
    check_signature_content(signature)
    with pytest.raises(AlgorithmRefused, match="SHA-1"):
        verify(root, _anchors(pki))


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
