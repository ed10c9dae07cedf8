"""sign → verify round trips: RSA and EC, trust anchors and pinned, placement, caching."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from envelopes.errors import SchemaViolation
from envelopes.xmlsafe import parse_tree
from signing.errors import ExpiredCertificate, MultipleSignatures, SignatureMissing
from signing.pki import Credential
from signing.sign import sign_document, sign_package
from signing.verify import Verified, Verifier, VerifyPolicy, verify
from tests.test_signing_helpers import (
    DS_NS,
    EDXML_NS,
    LATER,
    NOW,
    SMALL_PACKAGE,
    SigningPki,
    ds,
    edxml,
    intermediate_chain,
    vendor_packages,
)


def _policy(pki: SigningPki, mode: str, credential: Credential) -> VerifyPolicy:
    if mode == "anchors":
        return VerifyPolicy(at=LATER, trust_anchors=pki.anchors)
    return VerifyPolicy(at=LATER, pinned=(credential.certificate,))


def _c14n(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, method="c14n", exclusive=True))


@pytest.mark.parametrize("who", ["agency_rsa", "agency_ec", "hub"])
@pytest.mark.parametrize("mode", ["anchors", "pinned"])
def test_package_round_trip(pki: SigningPki, who: str, mode: str) -> None:
    credential: Credential = getattr(pki, who)
    signed = sign_package(SMALL_PACKAGE, credential.signing_key())

    result = verify(signed, _policy(pki, mode, credential))

    assert isinstance(result, Verified)
    assert result.signer == credential.certificate
    assert result.root.find(f".//{ds('Signature')}") is None
    assert _c14n(result.root) == _c14n(parse_tree(SMALL_PACKAGE))
    assert result.signed_bytes == _c14n(result.root)


@pytest.mark.parametrize(
    ("who", "method"),
    [
        ("agency_rsa", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"),
        ("agency_ec", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"),
        ("hub", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"),
    ],
)
def test_signature_shape(pki: SigningPki, who: str, method: str) -> None:
    credential: Credential = getattr(pki, who)
    root = parse_tree(sign_package(SMALL_PACKAGE, credential.signing_key()))

    header = root.find(f"{edxml('edXMLEnvelope')}/{edxml('edXMLHeader')}")
    assert header is not None
    signature = header[-1]
    assert signature.tag == ds("Signature")
    ns = {"ds": DS_NS}
    assert signature.xpath("string(ds:SignedInfo/ds:SignatureMethod/@Algorithm)", namespaces=ns) \
        == method
    assert signature.xpath("ds:SignedInfo/ds:Reference/@URI", namespaces=ns) == [""]
    assert signature.xpath("ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform/@Algorithm",
                           namespaces=ns) == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
    ]
    der = signature.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=ns)
    assert der is not None
    pem = f"-----BEGIN CERTIFICATE-----\n{der.strip()}\n-----END CERTIFICATE-----\n"
    assert x509.load_pem_x509_certificate(pem.encode()) == credential.certificate


def test_sign_document_puts_signature_last_under_root(pki: SigningPki) -> None:
    receipt = b"<Receipt xmlns='urn:axis:receipt'><Status>accepted</Status><Note/></Receipt>"

    signed = sign_document(receipt, pki.hub.signing_key())

    root = parse_tree(signed)
    assert root[-1].tag == ds("Signature")
    result = verify(signed, VerifyPolicy(at=LATER, pinned=(pki.hub.certificate,)))
    assert _c14n(result.root) == _c14n(parse_tree(receipt))


def test_sign_document_does_not_modify_an_element(pki: SigningPki) -> None:
    element = etree.fromstring(b"<Receipt><Status>ok</Status></Receipt>")
    before = etree.tostring(element)

    signed = sign_document(element, pki.hub.signing_key())

    assert etree.tostring(element) == before
    assert verify(signed, VerifyPolicy(at=LATER, pinned=(pki.hub.certificate,))).root.tag \
        == "Receipt"


def test_verify_accepts_a_parsed_tree(pki: SigningPki) -> None:
    signed = sign_package(SMALL_PACKAGE, pki.agency_rsa.signing_key())

    result = verify(parse_tree(signed), VerifyPolicy(at=LATER, trust_anchors=pki.anchors))

    assert result.signer == pki.agency_rsa.certificate


def test_vendor_samples_sign_and_verify(pki: SigningPki, conformance_dir: Path) -> None:
    key = pki.agency_rsa.signing_key()
    policy = VerifyPolicy(at=LATER, trust_anchors=pki.anchors)
    samples = vendor_packages(conformance_dir)
    assert len(samples) >= 10
    for name, raw in samples:
        result = verify(sign_package(raw, key), policy)
        assert _c14n(result.root) == _c14n(parse_tree(raw)), name


def test_vendor_sample_with_its_own_signature_is_refused(conformance_dir: Path,
                                                         pki: SigningPki) -> None:
    raw = (conformance_dir / "edoc_update.edxml").read_bytes()
    with pytest.raises(MultipleSignatures):
        sign_package(raw, pki.agency_rsa.signing_key())
    with pytest.raises(SignatureMissing):  # its Signature is in the edXML namespace
        verify(raw, VerifyPolicy(at=LATER, trust_anchors=pki.anchors, allow_sha1=True))


@pytest.mark.parametrize(
    "raw",
    [
        b"<Receipt><Status>ok</Status></Receipt>",
        f"<edXML xmlns='{EDXML_NS}'><edXMLEnvelope/></edXML>".encode(),
        f"<edXML xmlns='{EDXML_NS}'><edXMLEnvelope><edXMLHeader/><edXMLHeader/></edXMLEnvelope>"
        "</edXML>".encode(),
    ],
    ids=["not-edxml", "no-header", "two-headers"],
)
def test_sign_package_refuses_what_is_not_a_package(pki: SigningPki, raw: bytes) -> None:
    with pytest.raises(SchemaViolation):
        sign_package(raw, pki.agency_rsa.signing_key())


def test_intermediate_from_key_info_is_accepted(pki: SigningPki) -> None:
    key, intermediate = intermediate_chain(pki.ca)
    signed = sign_package(SMALL_PACKAGE, key)
    certificates = parse_tree(signed).findall(f".//{ds('X509Certificate')}")
    assert len(certificates) == 2

    result = verify(signed, VerifyPolicy(at=LATER, trust_anchors=pki.anchors))

    assert result.signer == key.certificate
    assert result.signer.issuer == intermediate.subject


def test_cached_chain_still_checks_validity_at_each_call(pki: SigningPki) -> None:
    verifier = Verifier(trust_anchors=pki.anchors)
    signed = sign_package(SMALL_PACKAGE, pki.agency_rsa.signing_key())
    verifier.verify(signed, LATER)

    expired_at = pki.agency_rsa.certificate.not_valid_after_utc + timedelta(seconds=1)
    with pytest.raises(ExpiredCertificate):
        verifier.verify(signed, expired_at)
    assert verifier.verify(signed, NOW).signer == pki.agency_rsa.certificate


@pytest.mark.parametrize("sources", ["neither", "both"])
def test_policy_needs_exactly_one_trust_source(pki: SigningPki, sources: str) -> None:
    anchors = pki.anchors if sources == "both" else ()
    pinned = (pki.hub.certificate,) if sources == "both" else ()
    with pytest.raises(ValueError, match="exactly one"):
        VerifyPolicy(at=NOW, trust_anchors=anchors, pinned=pinned)


def test_policy_takes_naive_time_as_utc(pki: SigningPki) -> None:
    policy = VerifyPolicy(at=NOW.replace(tzinfo=None), pinned=(pki.hub.certificate,))
    assert policy.at == NOW


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Cn")), min_size=0, max_size=60
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subject=_TEXT)
def test_any_subject_round_trips(pki: SigningPki, subject: str) -> None:
    root = parse_tree(SMALL_PACKAGE)
    node = root.find(f".//{edxml('Subject')}")
    assert node is not None
    node.text = subject
    raw = etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    result = verify(sign_package(raw, pki.agency_ec.signing_key()),
                    VerifyPolicy(at=LATER, trust_anchors=pki.anchors))

    assert (result.root.findtext(f".//{edxml('Subject')}") or "") == subject
