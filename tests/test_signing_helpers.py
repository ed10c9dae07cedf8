"""Shared helpers for the signing tests: a small PKI made at test time and sample packages.

No tests live here; the other signing test modules import these helpers.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from signing.keys import SigningKey
from signing.pki import Credential, issue_agency, issue_hub, new_ca

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=1)

SMALL_PACKAGE = f"""<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="{EDXML_NS}">
  <edXMLEnvelope>
    <edXMLHeader>
      <MessageHeader>
        <From><OrganId>000.00.00.G22</OrganId><OrganName>Văn phòng Chính phủ</OrganName></From>
        <To><OrganId>000.00.00.H41</OrganId><OrganName>UBND Tỉnh Nghệ An</OrganName></To>
        <DocumentId>000.00.00.G22,2025/06/01,1/VPCP</DocumentId>
        <Subject>Về việc kết nối liên thông</Subject>
      </MessageHeader>
      <TraceHeaderList>
        <TraceHeader>
          <OrganId>000.00.00.G22</OrganId><Timestamp>2025/06/01 12:00:00</Timestamp>
        </TraceHeader>
      </TraceHeaderList>
    </edXMLHeader>
    <edXMLBody><edXMLManifest version="1.0"/></edXMLBody>
  </edXMLEnvelope>
</edXML>
""".encode()


@dataclass(frozen=True)
class SigningPki:
    """A CA, the hub, two agencies (RSA, EC), and an unrelated CA with its own agency."""

    ca: Credential
    hub: Credential
    agency_rsa: Credential
    agency_ec: Credential
    other_ca: Credential
    stranger: Credential

    @property
    def anchors(self) -> tuple[x509.Certificate, ...]:
        return (self.ca.certificate,)


def make_pki() -> SigningPki:
    """Generate the whole test PKI (RSA keys take a moment: build once per module)."""
    ca = new_ca("Axis test CA", NOW)
    other_ca = new_ca("Other CA", NOW)
    return SigningPki(
        ca=ca,
        hub=issue_hub(ca, NOW),
        agency_rsa=issue_agency(ca, "000.00.00.G22", "Văn phòng Chính phủ", NOW),
        agency_ec=issue_agency(ca, "000.00.00.H41", "UBND Tỉnh Nghệ An", NOW, key_type="ec"),
        other_ca=other_ca,
        stranger=issue_agency(other_ca, "000.00.00.G22", "Impostor", NOW),
    )


def strip_signatures(raw: bytes) -> bytes:
    """A vendor sample without its (unverifiable) Signature element, whatever its namespace."""
    from envelopes.xmlsafe import parse_tree

    root = parse_tree(raw)
    for signature in list(root.iter("{*}Signature")):
        parent = signature.getparent()
        assert parent is not None
        parent.remove(signature)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def vendor_packages(conformance_dir: Path) -> list[tuple[str, bytes]]:
    """Every vendor sample a reader accepts, unsigned (``edoc.edxml`` is one to refuse)."""
    return [
        (path.name, strip_signatures(path.read_bytes()))
        for path in sorted(conformance_dir.glob("*.edxml"))
        if path.name != "edoc.edxml"
    ]


def intermediate_chain(root_ca: Credential) -> tuple[SigningKey, x509.Certificate]:
    """A leaf signed by an intermediate CA signed by ``root_ca``: (leaf key with chain, inter)."""
    root_key = root_ca.signing_key().private_key
    root_cert = root_ca.certificate
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter_cert = _cert(
        "Intermediate CA", root_cert.subject, inter_key, root_key, ca=True,
        issuer_key_public=root_key.public_key(),
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = _cert(
        "Leaf via intermediate", inter_cert.subject, leaf_key, inter_key, ca=False,
        issuer_key_public=inter_key.public_key(),
    )
    return SigningKey(leaf_key, leaf_cert, (inter_cert,)), inter_cert


def _cert(
    name: str,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: object,
    *,
    ca: bool,
    issuer_key_public: object,
) -> x509.Certificate:
    usage = x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key_public),  # type: ignore[arg-type]
            critical=False,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]


def xmlsec1_path() -> str:
    """The xmlsec1 binary; the calling test is skipped without it (and fails under ``CI=true``)."""
    path = shutil.which("xmlsec1")
    if path is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("xmlsec1 is not installed (CI=true: it must be)")
        pytest.skip("xmlsec1 is not installed")
    return path


def ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


def edxml(tag: str) -> str:
    return f"{{{EDXML_NS}}}{tag}"
