"""The verifier's shortcuts around signxml change nothing it accepts, refuses or returns.

``signing.verify`` skips copies and path look-ups signxml would make; these tests
pin what those shortcuts must preserve: namespaces inherited by the Signature
(inclusive C14N), the refusal of an exclusive C14N ``PrefixList``, an untouched
input tree, and a returned tree read from the canonical bytes only.
"""

from __future__ import annotations

import pytest
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod
from signxml.signer import XMLSigner

from envelopes.xmlsafe import parse_tree
from signing.errors import SignatureInvalid
from signing.sign import sign_package
from signing.verify import VerifyPolicy, verify
from tests.test_signing_helpers import (
    DS_NS,
    EDXML_NS,
    LATER,
    SMALL_PACKAGE,
    SigningPki,
    edxml,
)

EXTRA_NS = "urn:example:declared-but-unused"
# The package with one more namespace declared on the root and used nowhere.
PACKAGE_WITH_EXTRA_NS = SMALL_PACKAGE.replace(
    f'<edXML xmlns="{EDXML_NS}">'.encode(),
    f'<edXML xmlns="{EDXML_NS}" xmlns:x="{EXTRA_NS}">'.encode(),
)


@pytest.fixture(scope="module")
def policy(pki: SigningPki) -> VerifyPolicy:
    return VerifyPolicy(at=LATER, trust_anchors=pki.anchors)


def _sign_nested(pki: SigningPki, c14n: CanonicalizationMethod,
                 prefixes: list[str] | None = None) -> bytes:
    """PACKAGE_WITH_EXTRA_NS signed by signxml with ``c14n``, the Signature inside edXMLHeader."""
    root = parse_tree(PACKAGE_WITH_EXTRA_NS)
    header = root.find(f"{edxml('edXMLEnvelope')}/{edxml('edXMLHeader')}")
    assert header is not None
    etree.SubElement(header, f"{{{DS_NS}}}Signature", Id="placeholder", nsmap={"ds": DS_NS})
    key = pki.agency_rsa.signing_key()
    signer = XMLSigner(method=SignatureConstructionMethod.enveloped,
                       signature_algorithm=key.algorithm, digest_algorithm=DigestAlgorithm.SHA256,
                       c14n_algorithm=c14n)
    signed = signer.sign(root, key=key.private_key, cert=[key.certificate],
                         inclusive_ns_prefixes=prefixes)
    return bytes(etree.tostring(signed))


def _subject(root: etree._Element) -> etree._Element:
    found = root.find(f".//{edxml('Subject')}")
    assert found is not None
    return found


def test_inclusive_c14n_keeps_namespaces_the_signature_inherits(pki: SigningPki,
                                                                policy: VerifyPolicy) -> None:
    signed = _sign_nested(pki, CanonicalizationMethod.CANONICAL_XML_1_0)
    signature = parse_tree(signed).find(f".//{{{DS_NS}}}Signature")
    assert signature is not None
    assert signature.getparent() is not signature.getroottree().getroot()  # nested
    assert signed.count(b"xmlns:x=") == 1  # declared on the root only: the Signature inherits it

    verified = verify(signed, policy)

    assert verified.signer == pki.agency_rsa.certificate
    assert f'xmlns:x="{EXTRA_NS}"'.encode() in verified.signed_bytes
    assert _subject(verified.root).text == "Về việc kết nối liên thông"


def test_exclusive_c14n_prefix_list_is_still_refused(pki: SigningPki,
                                                     policy: VerifyPolicy) -> None:
    signed = _sign_nested(pki, CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
                          prefixes=["x"])
    assert b'PrefixList="x"' in signed

    # signxml's XMLDSig schema check has no declaration for ec:InclusiveNamespaces.
    with pytest.raises(SignatureInvalid, match="InclusiveNamespaces"):
        verify(signed, policy)


def test_the_input_tree_is_left_as_it_was(pki: SigningPki, policy: VerifyPolicy) -> None:
    tree = parse_tree(sign_package(SMALL_PACKAGE, pki.agency_rsa.signing_key()))
    before = etree.tostring(tree)

    first, second = verify(tree, policy), verify(tree, policy)

    assert etree.tostring(tree) == before
    assert first.signed_bytes == second.signed_bytes
    assert first.root is not tree and first.root is not second.root
    assert next(first.root.iter(f"{{{DS_NS}}}Signature"), None) is None


def test_a_tree_tampered_after_a_good_verification_is_refused(pki: SigningPki,
                                                              policy: VerifyPolicy) -> None:
    tree = parse_tree(sign_package(SMALL_PACKAGE, pki.agency_rsa.signing_key()))
    verify(tree, policy)
    _subject(tree).text = "Về việc khác"

    with pytest.raises(SignatureInvalid, match="altered"):
        verify(tree, policy)


def test_the_returned_tree_has_no_unsigned_comments(pki: SigningPki,
                                                    policy: VerifyPolicy) -> None:
    tree = parse_tree(sign_package(SMALL_PACKAGE, pki.agency_rsa.signing_key()))
    subject = _subject(tree)
    # Exclusive C14N without comments does not sign comments: one may be slipped in.
    subject.text, tail = "Về việc kết nối", " liên thông"
    subject.append(etree.Comment(" unsigned "))
    subject[-1].tail = tail

    verified = verify(etree.tostring(tree), policy)

    assert list(verified.root.iter(etree.Comment)) == []
    verified_subject = _subject(verified.root)
    assert len(verified_subject) == 0
    assert verified_subject.text == "Về việc kết nối liên thông"
