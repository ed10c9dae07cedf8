"""Interoperability with xmlsec1 (libxmlsec1 + OpenSSL), the reference XMLDSig implementation.

Our signatures must verify with xmlsec1, and xmlsec1's with ours. Without the
xmlsec1 binary these tests skip, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lxml import etree

from envelopes.xmlsafe import parse_tree
from signing.errors import SignatureInvalid
from signing.pki import Credential
from signing.sign import sign_document, sign_package
from signing.verify import VerifyPolicy, verify
from tests.test_signing_helpers import DS_NS, LATER, SMALL_PACKAGE, SigningPki, edxml, xmlsec1_path

TEMPLATE = f"""<ds:Signature xmlns:ds="{DS_NS}">
  <ds:SignedInfo>
    <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
    <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#{{method}}"/>
    <ds:Reference URI="">
      <ds:Transforms>
        <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
        <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      </ds:Transforms>
      <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
      <ds:DigestValue/>
    </ds:Reference>
  </ds:SignedInfo>
  <ds:SignatureValue/>
  <ds:KeyInfo><ds:X509Data/></ds:KeyInfo>
</ds:Signature>"""


@pytest.fixture(scope="module")
def xmlsec1() -> str:
    return xmlsec1_path()


def _files(tmp_path: Path, credential: Credential, ca: Credential) -> tuple[Path, Path, Path]:
    ca_pem, cert, key = tmp_path / "ca.pem", tmp_path / "signer.pem", tmp_path / "signer.key"
    ca_pem.write_bytes(ca.cert_pem)
    cert.write_bytes(credential.cert_pem)
    key.write_bytes(credential.key_pem)
    return ca_pem, cert, key


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("who", ["agency_rsa", "agency_ec"])
def test_our_signature_verifies_with_xmlsec1(xmlsec1: str, pki: SigningPki, tmp_path: Path,
                                             who: str) -> None:
    credential: Credential = getattr(pki, who)
    ca_pem, cert, _ = _files(tmp_path, credential, pki.ca)
    document = tmp_path / "signed.edxml"
    document.write_bytes(sign_package(SMALL_PACKAGE, credential.signing_key()))

    trusted = _run(xmlsec1, "--verify", "--trusted-pem", str(ca_pem), str(document))
    assert trusted.returncode == 0, trusted.stderr
    pinned = _run(xmlsec1, "--verify", "--pubkey-cert-pem", str(cert), "--enabled-key-data",
                  "key-name,x509", str(document))
    assert pinned.returncode == 0, pinned.stderr
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(pki.stranger.cert_pem)
    assert _run(xmlsec1, "--verify", "--pubkey-cert-pem", str(wrong), "--enabled-key-data",
                "key-name,x509", str(document)).returncode != 0

    receipt = tmp_path / "receipt.xml"
    receipt.write_bytes(sign_document(b"<Receipt><Status>ok</Status></Receipt>",
                                      credential.signing_key()))
    assert _run(xmlsec1, "--verify", "--trusted-pem", str(ca_pem), str(receipt)).returncode == 0


def test_xmlsec1_rejects_our_signature_once_tampered(xmlsec1: str, pki: SigningPki,
                                                     tmp_path: Path) -> None:
    ca_pem, _, _ = _files(tmp_path, pki.agency_rsa, pki.ca)
    document = tmp_path / "tampered.edxml"
    signed = sign_package(SMALL_PACKAGE, pki.agency_rsa.signing_key())
    document.write_bytes(signed.replace(b"G22,2025", b"G23,2025"))
    assert _run(xmlsec1, "--verify", "--trusted-pem", str(ca_pem), str(document)).returncode != 0


@pytest.mark.parametrize(("who", "method"), [("agency_rsa", "rsa-sha256"),
                                             ("agency_ec", "ecdsa-sha256")])
def test_xmlsec1_signature_verifies_with_ours(xmlsec1: str, pki: SigningPki, tmp_path: Path,
                                             who: str, method: str) -> None:
    credential: Credential = getattr(pki, who)
    _, cert, key = _files(tmp_path, credential, pki.ca)
    root = parse_tree(SMALL_PACKAGE)
    header = root.find(f"{edxml('edXMLEnvelope')}/{edxml('edXMLHeader')}")
    assert header is not None
    header.append(etree.fromstring(TEMPLATE.replace("{method}", method)))
    template = tmp_path / "template.edxml"
    template.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    output = tmp_path / "xmlsec-signed.edxml"

    signed = _run(xmlsec1, "--sign", "--privkey-pem", f"{key},{cert}", "--output", str(output),
                  str(template))
    assert signed.returncode == 0, signed.stderr

    raw = output.read_bytes()
    result = verify(raw, VerifyPolicy(at=LATER, trust_anchors=pki.anchors))
    assert result.signer == credential.certificate
    assert result.root.findtext(f".//{edxml('Subject')}") == "Về việc kết nối liên thông"
    with pytest.raises(SignatureInvalid):
        verify(raw.replace("kết nối".encode(), "kết thúc".encode()),
               VerifyPolicy(at=LATER, trust_anchors=pki.anchors))
