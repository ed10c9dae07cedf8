"""Signing: one enveloped XMLDSig signature over the whole document (``Reference URI=""``).

Transforms are enveloped-signature and exclusive C14N; the algorithm follows the
key (RSA-SHA256 or ECDSA-SHA256); the signer certificate and its intermediates
go in ``KeyInfo/X509Data``. signxml does all the XMLDSig work.
"""

from __future__ import annotations

from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod
from signxml.exceptions import SignXMLException
from signxml.signer import XMLSigner

from envelopes.errors import SchemaViolation
from envelopes.xmlsafe import parse_tree
from signing.errors import MultipleSignatures, ReferenceNotWholeDocument, SignatureError
from signing.keys import SigningKey
from signing.structure import DS

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
_HEADER_PATH = f"{{{EDXML_NS}}}edXMLEnvelope/{{{EDXML_NS}}}edXMLHeader"


def sign_package(raw: bytes, key: SigningKey) -> bytes:
    """Sign an edXML package; the ``ds:Signature`` becomes the last child of ``edXMLHeader``.

    Raises :class:`MultipleSignatures` if the package already carries a
    ``Signature`` (in any namespace), :class:`SchemaViolation` if it is not an
    edXML package, ``envelope.*`` errors for unreadable XML.
    """
    root = parse_tree(raw)
    _refuse_existing_signature(root)
    if root.tag != f"{{{EDXML_NS}}}edXML":
        raise SchemaViolation(f"not an edXML package: the root element is {root.tag}")
    headers = root.findall(_HEADER_PATH)
    if len(headers) != 1:
        raise SchemaViolation("an edXML package needs exactly one edXML/edXMLEnvelope/edXMLHeader")
    _refuse_root_id(root)
    # signxml replaces a placeholder Signature in place, which fixes the position.
    etree.SubElement(headers[0], f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS})
    return _sign(root, key)


def sign_document(raw_or_root: bytes | etree._Element, key: SigningKey) -> bytes:
    """Sign any document (e.g. a receipt); the ``ds:Signature`` becomes the root's last child.

    An element is not modified: the signature goes into a copy.
    """
    return _sign(signable_root(raw_or_root), key)


def signable_root(raw_or_root: bytes | etree._Element) -> etree._Element:
    """A fresh tree of the document to sign whole, once it is known to be signable.

    Raises :class:`MultipleSignatures` if it already carries a ``Signature`` (in any
    namespace), :class:`ReferenceNotWholeDocument` if the root has an ``Id``/``ID``
    attribute, ``envelope.*`` errors for unreadable XML. An element is parsed again
    from its serialisation, so the caller's tree is never modified.
    """
    raw = etree.tostring(raw_or_root) if isinstance(raw_or_root, etree._Element) else raw_or_root
    root = parse_tree(raw)
    _refuse_existing_signature(root)
    _refuse_root_id(root)
    return root


def _refuse_existing_signature(root: etree._Element) -> None:
    existing = next(iter(root.iter("{*}Signature")), None)
    if existing is not None:
        raise MultipleSignatures(
            f"the document already carries a Signature ({existing.tag}); refusing to add another"
        )


def _refuse_root_id(root: etree._Element) -> None:
    if root.get("Id") is not None or root.get("ID") is not None:
        # A signer would then reference "#id", not the whole document.
        raise ReferenceNotWholeDocument(
            'the root element carries an Id attribute; cannot sign with URI=""'
        )


def _sign(root: etree._Element, key: SigningKey) -> bytes:
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=key.algorithm,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    try:
        signed = signer.sign(root, key=key.private_key, cert=[key.certificate, *key.chain])
    except (SignXMLException, etree.LxmlError, ValueError, TypeError) as exc:
        # LxmlError: signxml copies the tree through an ASCII serialisation, which cannot
        # spell an element name outside ASCII.
        raise SignatureError(f"signing failed: {exc}") from None
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))
