"""Fixed-shape enveloped signing: the XMLDSig profile of ``sign_document``, built directly.

The output is what :func:`signing.sign.sign_document` produces for the same document
and key (the same elements, order, ``ds`` prefix and namespace declarations; for an
RSA key, whose PKCS#1 v1.5 signature is deterministic, the same bytes), without
signxml's general machinery around it: signxml copies the document twice by
serialising and re-parsing it and re-encodes every certificate on each call. Here the
document is canonicalised once (lxml's exclusive C14N, before the signature is
appended, which is what the enveloped-signature transform removes), the
``SignedInfo`` is built as lxml elements and canonicalised in place, and
``cryptography`` signs those bytes.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod

from signing.errors import SignatureError
from signing.keys import SigningKey
from signing.sign import signable_root
from signing.structure import DS, ENVELOPED, EXC_C14N, exclusive_c14n

_SHA256 = DigestAlgorithm.SHA256.value
_NSMAP = {"ds": DS}
# The hash each signature method signs with; the reference digest is always SHA-256.
_SIGNATURE_HASHES: dict[SignatureMethod, type[hashes.HashAlgorithm]] = {
    SignatureMethod.RSA_SHA256: hashes.SHA256,
    SignatureMethod.ECDSA_SHA256: hashes.SHA256,
    SignatureMethod.ECDSA_SHA384: hashes.SHA384,
    SignatureMethod.ECDSA_SHA512: hashes.SHA512,
}


def sign_enveloped(raw_or_root: bytes | etree._Element, key: SigningKey) -> bytes:
    """Sign a whole document; the ``ds:Signature`` becomes the root's last child.

    Same profile, output and refusals as :func:`signing.sign.sign_document`:
    :class:`MultipleSignatures` if the document already carries a ``Signature`` (in
    any namespace), :class:`ReferenceNotWholeDocument` if the root has an
    ``Id``/``ID`` attribute, ``envelope.*`` errors for unreadable XML. An element is
    not modified: the signature goes into a copy. Element or attribute names outside
    ASCII are signed here; ``sign_document`` fails on them (signxml copies the document
    through an ASCII serialisation, which cannot spell them).
    """
    root = signable_root(raw_or_root)
    digest = hashlib.sha256(exclusive_c14n(root)).digest()
    # Made apart and appended, as signxml does: appending reconciles its namespace with the
    # document's (an XMLDSig default namespace on the root takes the tag unprefixed).
    signature = etree.Element(f"{{{DS}}}Signature", nsmap=_NSMAP)
    root.append(signature)
    signed_info = _signed_info(signature, key.algorithm, digest)
    value = etree.SubElement(signature, f"{{{DS}}}SignatureValue")
    _key_info(signature, (key.certificate, *key.chain))
    raw = _signature_value(key, exclusive_c14n(signed_info))
    value.text = base64.b64encode(raw).decode("ascii")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _signed_info(
    signature: etree._Element, method: SignatureMethod, digest: bytes
) -> etree._Element:
    # nsmap as signxml passes it: it matters where appending re-bound the Signature's tag
    # to a default namespace equal to XMLDSig's (the ``ds`` prefix is then declared here).
    signed_info = etree.SubElement(signature, f"{{{DS}}}SignedInfo", nsmap=_NSMAP)
    etree.SubElement(signed_info, f"{{{DS}}}CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(signed_info, f"{{{DS}}}SignatureMethod", Algorithm=method.value)
    reference = etree.SubElement(signed_info, f"{{{DS}}}Reference", URI="")
    transforms = etree.SubElement(reference, f"{{{DS}}}Transforms")
    etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=ENVELOPED)
    etree.SubElement(transforms, f"{{{DS}}}Transform", Algorithm=EXC_C14N)
    etree.SubElement(reference, f"{{{DS}}}DigestMethod", Algorithm=_SHA256)
    etree.SubElement(reference, f"{{{DS}}}DigestValue").text = base64.b64encode(digest).decode()
    return signed_info


def _key_info(signature: etree._Element, certificates: tuple[x509.Certificate, ...]) -> None:
    x509_data = etree.SubElement(etree.SubElement(signature, f"{{{DS}}}KeyInfo"),
                                 f"{{{DS}}}X509Data")  # fmt: skip
    for certificate in certificates:
        etree.SubElement(x509_data, f"{{{DS}}}X509Certificate").text = _pem_body(certificate)


@functools.lru_cache(maxsize=64)
def _pem_body(certificate: x509.Certificate) -> str:
    """The PEM's base64 lines without the armour, each ending in a newline (signxml's text)."""
    lines = certificate.public_bytes(Encoding.PEM).decode("ascii").splitlines(keepends=True)
    return "".join(lines[1:-1])


def _signature_value(key: SigningKey, signed_info_c14n: bytes) -> bytes:
    """The raw signature value: PKCS#1 v1.5 for RSA, ``r || s`` for ECDSA (RFC 6931 §3.3)."""
    private_key = key.private_key
    try:
        algorithm = _SIGNATURE_HASHES[key.algorithm]()
        if isinstance(private_key, rsa.RSAPrivateKey):
            return private_key.sign(signed_info_c14n, PKCS1v15(), algorithm)
        der = private_key.sign(signed_info_c14n, ec.ECDSA(algorithm))
    except (KeyError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"signing failed: {exc}") from None
    r, s = decode_dss_signature(der)
    # Each integer is left-padded to the curve's byte length (32 for P-256, 66 for P-521).
    size = (private_key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")
