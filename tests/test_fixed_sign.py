"""The fixed-shape signer (``signing.fixed_sign``): signxml's profile and output, checked four ways.

Receipts and other documents signed by :func:`sign_enveloped` verify with Axis's own
verifier (as ``axis receipt verify`` uses it), with signxml's verifier and with xmlsec1;
a tampered copy verifies with none. The output is signxml's (``sign_document``) for the
same input: byte for byte with an RSA key, everything but the (randomised) ECDSA value
with an EC key. It refuses what ``sign_document`` refuses, with the same error.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.exceptions import InvalidDigest
from signxml.exceptions import InvalidSignature as SignxmlInvalidSignature
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from axis.receipts import receipt_xml, sign_receipt, verify_receipt
from envelopes.errors import AxisError
from envelopes.xmlsafe import parse_tree
from routing.values import Receipt, sha256_hex
from signing.errors import SignatureError, SignatureInvalid
from signing.fixed_sign import sign_enveloped
from signing.keys import SigningKey, fingerprint
from signing.sign import sign_document
from signing.verify import VerifyPolicy, verify
from tests.test_signing_helpers import (
    DS_NS,
    LATER,
    NOW,
    SigningPki,
    ds,
    intermediate_chain,
    xmlsec1_path,
)

PACKAGE = "<edXML>Công văn số 7816/VPCP-TTĐT</edXML>".encode()
_BASE = Receipt(
    receipt_id="rcpt-0001", event="accepted", message_id="msg-42",
    package_sha256=sha256_hex(PACKAGE), hub_time=datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
    sender_system="000.00.00.G22", sender_organ="000.00.00.G22",
    document_id="000.00.00.G22,2025/06/01,7816/VPCP-TTĐT", recipients=("000.00.00.H41",),
    signer_fingerprint="ab" * 32,
)  # fmt: skip
RECEIPTS: dict[str, Receipt] = {
    "accepted": _BASE,
    "rejected": replace(
        _BASE, receipt_id="rcpt-0002", event="rejected", error_code="signature.invalid",
        reason="Chữ ký không hợp lệ: nội dung văn bản đã bị thay đổi <sau khi ký> & gửi lại",
        signer_fingerprint="",
    ),
    "status": replace(_BASE, receipt_id="rcpt-0003", event="status", status_code="03",
                      recipient_system="000.00.00.H41"),
    "delivered": replace(_BASE, receipt_id="rcpt-0004", event="delivered",
                         recipients=("000.00.00.H41", "000.00.00.K12", "Sở Tài chính")),
}  # fmt: skip
# Other documents sign_document accepts: namespaces the signature must not disturb, and
# content C14N rewrites (comments, CDATA, character references, a top-level PI).
DOCUMENTS: dict[str, bytes] = {
    "prefixed, ds bound elsewhere": "<a:R xmlns:a='urn:a' xmlns:ds='urn:not-dsig' ds:x='1'>"
        "<a:T b='Hà Nội'>Việt Nam</a:T></a:R>".encode(),
    "ds declared on the root": f"<R xmlns:ds='{DS_NS}' xmlns:u='urn:unused'><T/></R>".encode(),
    "default namespace": b"<R xmlns='urn:default'><x:T xmlns:x='urn:x'>t</x:T>\n</R>",
    "XMLDSig as default namespace": f"<R xmlns='{DS_NS}' xml:lang='vi'><x/></R>".encode(),
    "comments, CDATA, references": "<?xml version='1.0' encoding='UTF-8'?>\n<!-- trước -->"
        "<R a='x&#10;y&#9;z'><!-- c --><?pi x?><T><![CDATA[<b>&</b>]]>&#13;đ</T>  </R>"
        "<?sau x?>".encode(),
}  # fmt: skip
ALL_DOCUMENTS = {**{f"receipt {name}": receipt_xml(r) for name, r in RECEIPTS.items()},
                 **DOCUMENTS}  # fmt: skip
_NS = {"ds": DS_NS}


@pytest.fixture(scope="module")
def p384(pki: SigningPki) -> SigningKey:
    return _leaf(pki, ec.SECP384R1())


@pytest.fixture(scope="module")
def p521(pki: SigningPki) -> SigningKey:
    return _leaf(pki, ec.SECP521R1())


@pytest.fixture(scope="module")
def xmlsec1() -> str:
    return xmlsec1_path()


def _leaf(pki: SigningPki, curve: ec.EllipticCurve) -> SigningKey:
    """A leaf on ``curve`` issued by the test CA, with what OpenSSL's path check needs."""
    ca_key = pki.ca.signing_key().private_key
    key = ec.generate_private_key(curve)
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Hub {curve.name}")]))
        .issuer_name(pki.ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=3650))  # xmlsec1 judges it at today's date
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return SigningKey(key, certificate)


def _key(pki: SigningPki, who: str) -> SigningKey:
    return {"rsa": pki.agency_rsa, "ec": pki.hub}[who].signing_key()


def _c14n(element: etree._Element) -> bytes:
    return bytes(etree.tostring(element, method="c14n", exclusive=True, with_comments=False))


def _signature(raw: bytes) -> etree._Element:
    signature = parse_tree(raw)[-1]
    assert signature.tag == ds("Signature")
    return signature


def _signed_info(raw: bytes) -> etree._Element:
    signed_info = _signature(raw).find("ds:SignedInfo", _NS)
    assert signed_info is not None
    return signed_info


def _text(raw: bytes, path: str) -> str:
    found = _signature(raw).findtext(path, namespaces=_NS)
    assert found is not None
    return found


def _without_signature_value(raw: bytes) -> bytes:
    root = parse_tree(raw)
    value = root[-1].find("ds:SignatureValue", namespaces=_NS)
    assert value is not None
    value.text = ""
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _signxml_verify(raw: bytes, certificate: x509.Certificate) -> bytes:
    result = XMLVerifier().verify(raw, x509_cert=certificate,
                                  expect_config=SignatureConfiguration(verification_time=LATER))
    assert isinstance(result, VerifyResult)
    signed_data: bytes = result.signed_data
    return signed_data


def _tampered_content(raw: bytes) -> bytes:
    tampered = raw.replace("Chữ ký".encode(), "Chữ kí".encode(), 1)
    assert tampered != raw
    return tampered


def _tampered_digest(raw: bytes) -> bytes:
    digest = _text(raw, "ds:SignedInfo/ds:Reference/ds:DigestValue").encode()
    other = base64.b64encode(hashlib.sha256(b"another receipt").digest())
    return raw.replace(digest, other)


# -- what users rely on: the hub's receipts verify ---------------------------------------------


@pytest.mark.parametrize("who", ["rsa", "ec"])
@pytest.mark.parametrize("name", list(RECEIPTS))
def test_signed_receipt_verifies_and_reads_back(pki: SigningPki, who: str, name: str) -> None:
    key = _key(pki, who)

    raw = sign_receipt(RECEIPTS[name], key)

    for policy in (VerifyPolicy(at=LATER, pinned=(key.certificate,)),
                   VerifyPolicy(at=LATER, trust_anchors=pki.anchors)):  # fmt: skip
        verified = verify_receipt(raw, policy, package=PACKAGE)
        assert verified.receipt == RECEIPTS[name]
        assert verified.signer_fingerprint == fingerprint(key.certificate)
    assert parse_tree(raw)[-1].tag == ds("Signature")


@pytest.mark.parametrize("who", ["rsa", "ec"])
@pytest.mark.parametrize("name", list(ALL_DOCUMENTS))
def test_verifies_with_axis_and_with_signxml(pki: SigningPki, who: str, name: str) -> None:
    key = _key(pki, who)
    unsigned = _c14n(parse_tree(ALL_DOCUMENTS[name]))

    raw = sign_enveloped(ALL_DOCUMENTS[name], key)

    result = verify(raw, VerifyPolicy(at=LATER, trust_anchors=pki.anchors))
    assert result.signer == key.certificate
    assert result.signed_bytes == unsigned
    assert _signxml_verify(raw, key.certificate) == unsigned


@pytest.mark.parametrize("who", ["rsa", "ec"])
@pytest.mark.parametrize("tamper", [_tampered_content, _tampered_digest])
def test_tampered_receipt_fails_axis_and_signxml(
    pki: SigningPki, who: str, tamper: Callable[[bytes], bytes]
) -> None:
    key = _key(pki, who)
    raw = tamper(sign_receipt(RECEIPTS["rejected"], key))

    with pytest.raises(SignatureInvalid):
        verify_receipt(raw, VerifyPolicy(at=LATER, pinned=(key.certificate,)))
    with pytest.raises((InvalidDigest, SignxmlInvalidSignature)):
        _signxml_verify(raw, key.certificate)


def test_a_changed_signature_value_fails(pki: SigningPki) -> None:
    raw = sign_receipt(RECEIPTS["accepted"], _key(pki, "ec"))
    value = _text(raw, "ds:SignatureValue")
    flipped = bytearray(base64.b64decode(value))
    flipped[5] ^= 0x01

    with pytest.raises(SignatureInvalid):
        verify(raw.replace(value.encode(), base64.b64encode(bytes(flipped))),
               VerifyPolicy(at=LATER, trust_anchors=pki.anchors))


# -- the same output as signxml ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(ALL_DOCUMENTS))
def test_rsa_output_is_byte_identical_to_signxml(pki: SigningPki, name: str) -> None:
    key = _key(pki, "rsa")

    assert sign_enveloped(ALL_DOCUMENTS[name], key) == sign_document(ALL_DOCUMENTS[name], key)


@pytest.mark.parametrize("curve", ["P-256", "P-384", "P-521"])
@pytest.mark.parametrize("name", list(ALL_DOCUMENTS))
def test_ecdsa_output_is_signxml_but_for_the_random_value(
    pki: SigningPki, p384: SigningKey, p521: SigningKey, curve: str, name: str
) -> None:
    key = {"P-256": _key(pki, "ec"), "P-384": p384, "P-521": p521}[curve]

    ours = sign_enveloped(ALL_DOCUMENTS[name], key)
    theirs = sign_document(ALL_DOCUMENTS[name], key)

    assert _c14n(_signed_info(ours)) == _c14n(_signed_info(theirs))
    digest = "ds:SignedInfo/ds:Reference/ds:DigestValue"
    assert _text(ours, digest) == _text(theirs, digest)
    assert _without_signature_value(ours) == _without_signature_value(theirs)
    assert ours != theirs  # ECDSA is randomised: the values differ, both verify
    assert _signxml_verify(ours, key.certificate) == _signxml_verify(theirs, key.certificate)


@pytest.mark.parametrize(("curve", "size"), [("P-256", 32), ("P-384", 48), ("P-521", 66)])
def test_ecdsa_value_is_r_then_s_each_padded_to_the_curve(
    pki: SigningPki, p384: SigningKey, p521: SigningKey, curve: str, size: int
) -> None:
    key = {"P-256": _key(pki, "ec"), "P-384": p384, "P-521": p521}[curve]
    public = key.certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    algorithm = ec.ECDSA({"P-256": hashes.SHA256(), "P-384": hashes.SHA384(),
                          "P-521": hashes.SHA512()}[curve])  # fmt: skip

    # Sign until r or s is short (a leading zero byte: 1 in 128 for P-256): it must be padded.
    for _ in range(5000):
        raw = sign_receipt(RECEIPTS["accepted"], key)
        value = base64.b64decode(_text(raw, "ds:SignatureValue"))
        assert len(value) == 2 * size
        r, s = int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big")
        if min(r, s) < 1 << (8 * (size - 1)):
            break
    else:
        pytest.fail("no signature with a short r or s")
    public.verify(encode_dss_signature(r, s), _c14n(_signed_info(raw)), algorithm)
    with pytest.raises(InvalidSignature):
        public.verify(encode_dss_signature(s, r), _c14n(_signed_info(raw)), algorithm)


def test_chain_goes_into_x509data_signer_first(pki: SigningPki) -> None:
    key, intermediate = intermediate_chain(pki.ca)
    document = receipt_xml(RECEIPTS["accepted"])

    raw = sign_enveloped(document, key)

    texts = _signature(raw).findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS)
    pems = [f"-----BEGIN CERTIFICATE-----\n{t.text}-----END CERTIFICATE-----\n" for t in texts]
    assert [x509.load_pem_x509_certificate(p.encode()) for p in pems] \
        == [key.certificate, intermediate]
    assert _without_signature_value(raw) == _without_signature_value(sign_document(document, key))
    assert verify(raw, VerifyPolicy(at=LATER, trust_anchors=pki.anchors)).signer \
        == key.certificate


def test_an_element_is_not_modified_and_signs_as_its_bytes(pki: SigningPki) -> None:
    key = _key(pki, "rsa")
    element = etree.fromstring(receipt_xml(RECEIPTS["status"]))
    before = etree.tostring(element)

    raw = sign_enveloped(element, key)

    assert etree.tostring(element) == before
    assert raw == sign_enveloped(receipt_xml(RECEIPTS["status"]), key) \
        == sign_document(element, key)


def test_signs_names_outside_ascii_that_signxml_cannot_copy(
    xmlsec1: str, pki: SigningPki, tmp_path: Path
) -> None:
    """signxml copies the document through an ASCII serialisation, which cannot spell such a
    name: ``sign_document`` refuses it with a coded error, this signer signs it."""
    document, key = "<Biên số='1'><Mục/></Biên>".encode(), _key(pki, "ec")
    with pytest.raises(SignatureError, match="signing failed"):
        sign_document(document, key)

    raw = sign_enveloped(document, key)

    result = verify(raw, VerifyPolicy(at=LATER, trust_anchors=pki.anchors))
    assert result.signed_bytes == _c14n(parse_tree(document))
    assert _xmlsec1_verify(xmlsec1, tmp_path, raw, pki.ca.cert_pem) == 0


# -- the same refusals as sign_document --------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        f"<R><ds:Signature xmlns:ds='{DS_NS}'/></R>".encode(),
        b"<R><x><Signature xmlns='urn:vendor'/></x></R>",
        b"<R Id='r1'><T/></R>",
        b"<R ID='r1'><T/></R>",
        b"<Signature/>",
        b"<R><T></R>",
        b"<!DOCTYPE R [<!ENTITY e 'x'>]><R>&e;</R>",
        b"",
    ],
    ids=["ds Signature", "vendor Signature", "Id", "ID", "bare Signature", "malformed", "DTD",
         "empty"],
)  # fmt: skip
def test_refuses_what_sign_document_refuses(pki: SigningPki, document: bytes) -> None:
    key = _key(pki, "ec")
    with pytest.raises(AxisError) as theirs:
        sign_document(document, key)

    with pytest.raises(type(theirs.value)) as ours:
        sign_enveloped(document, key)

    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)
    assert ours.value.code == theirs.value.code


# -- interoperability: xmlsec1 -----------------------------------------------------------------


def _xmlsec1_verify(xmlsec1: str, tmp_path: Path, raw: bytes, ca_pem: bytes) -> int:
    document, ca = tmp_path / "signed.xml", tmp_path / "ca.pem"
    document.write_bytes(raw)
    ca.write_bytes(ca_pem)
    return subprocess.run([xmlsec1, "--verify", "--trusted-pem", str(ca), str(document)],
                          capture_output=True, timeout=60, check=False).returncode


@pytest.mark.parametrize("who", ["rsa", "ec", "P-384", "P-521"])
def test_xmlsec1_verifies_and_refuses_tampering(
    xmlsec1: str, pki: SigningPki, p384: SigningKey, p521: SigningKey, tmp_path: Path, who: str
) -> None:
    key = {"P-384": p384, "P-521": p521}.get(who) or _key(pki, who)
    for name, document in ALL_DOCUMENTS.items():
        raw = sign_enveloped(document, key)
        assert _xmlsec1_verify(xmlsec1, tmp_path, raw, pki.ca.cert_pem) == 0, name
    raw = sign_receipt(RECEIPTS["rejected"], key)
    assert _xmlsec1_verify(xmlsec1, tmp_path, raw, pki.ca.cert_pem) == 0
    for tampered in (_tampered_content(raw), _tampered_digest(raw)):
        assert _xmlsec1_verify(xmlsec1, tmp_path, tampered, pki.ca.cert_pem) != 0
    stranger = pki.other_ca.cert_pem
    assert _xmlsec1_verify(xmlsec1, tmp_path, raw, stranger) != 0

