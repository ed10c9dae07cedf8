"""What a signature must look like before any cryptography runs.

Exactly one ``Signature`` in the whole document (any namespace), enveloped,
one ``Reference`` to the whole document (``URI=""``), and only algorithms Axis
knows and the policy allows. These checks give precise error codes; signxml
then does the actual XMLDSig processing.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from signing.errors import (
    AlgorithmRefused,
    InvalidKeyMaterial,
    MultipleSignatures,
    ReferenceNotWholeDocument,
    SignatureInvalid,
    SignatureMissing,
    UntrustedCertificate,
)

DS = "http://www.w3.org/2000/09/xmldsig#"
_DSIG_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
ENVELOPED = DS + "enveloped-signature"

C14N_METHODS = frozenset(
    {
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
        "http://www.w3.org/2006/12/xml-c14n11",
        "http://www.w3.org/2006/12/xml-c14n11#WithComments",
    }
)
SIGNATURE_METHODS = frozenset(
    {
        _DSIG_MORE + "rsa-sha256",
        _DSIG_MORE + "rsa-sha384",
        _DSIG_MORE + "rsa-sha512",
        _DSIG_MORE + "ecdsa-sha256",
        _DSIG_MORE + "ecdsa-sha384",
        _DSIG_MORE + "ecdsa-sha512",
    }
)
SHA1_SIGNATURE_METHODS = frozenset({DS + "rsa-sha1", _DSIG_MORE + "ecdsa-sha1"})
DIGEST_METHODS = frozenset(
    {
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2001/04/xmldsig-more#sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)
SHA1_DIGEST_METHODS = frozenset({DS + "sha1"})


@dataclass(frozen=True, slots=True)
class SignatureShape:
    """The facts verification needs from the one ``ds:Signature`` element."""

    element: etree._Element
    signature_method: str
    digest_method: str
    certificates_der: tuple[bytes, ...]


def find_signature(root: etree._Element) -> etree._Element:
    """The single XMLDSig ``Signature`` of the document.

    Any element named ``Signature`` counts, whatever its namespace: vendor tools
    put it in the edXML namespace too, and two candidates are ambiguous.
    """
    if etree.QName(root).localname == "Signature":
        raise SignatureInvalid("the document is a bare Signature; an enveloped one is required")
    found = list(root.iter("{*}Signature"))
    if len(found) > 1:
        raise MultipleSignatures(
            f"{len(found)} Signature elements; exactly one is allowed", count=len(found)
        )
    if not found:
        raise SignatureMissing("the document carries no Signature")
    signature = found[0]
    if signature.tag != f"{{{DS}}}Signature":
        raise SignatureMissing(
            f"the Signature element is not in the XMLDSig namespace ({signature.tag})"
        )
    return signature


def inspect_signature(root: etree._Element, *, allow_sha1: bool) -> SignatureShape:
    """Check the signature's structure and algorithms; raise the precise coded error."""
    signature = find_signature(root)
    signed_info = _only(signature, "ds:SignedInfo")
    if _only(signature, "ds:SignatureValue") is None or signed_info is None:
        raise SignatureInvalid("Signature needs exactly one SignedInfo and one SignatureValue")
    reference = _whole_document_reference(signed_info)
    signature_methods = SIGNATURE_METHODS | (SHA1_SIGNATURE_METHODS if allow_sha1 else frozenset())
    digest_methods = DIGEST_METHODS | (SHA1_DIGEST_METHODS if allow_sha1 else frozenset())
    _check_algorithm(signed_info, "ds:CanonicalizationMethod", C14N_METHODS)
    signature_method = _check_algorithm(signed_info, "ds:SignatureMethod", signature_methods)
    digest_method = _check_algorithm(reference, "ds:DigestMethod", digest_methods)
    _check_transforms(reference)
    return SignatureShape(signature, signature_method, digest_method, _certificates(signature))


def _whole_document_reference(signed_info: etree._Element) -> etree._Element:
    references = signed_info.findall(_clark("ds:Reference"))
    if not references:
        raise SignatureInvalid("SignedInfo has no Reference")
    if len(references) > 1:
        raise ReferenceNotWholeDocument(
            f"{len(references)} References; exactly one, to the whole document, is allowed",
            count=len(references),
        )
    uri = references[0].get("URI")
    if uri != "":
        raise ReferenceNotWholeDocument(
            f'the Reference URI is {uri!r}; only URI="" (the whole document) is accepted',
            uri=uri,
        )
    return references[0]


def _check_algorithm(parent: etree._Element, path: str, allowed: frozenset[str]) -> str:
    element = _only(parent, path)
    if element is None:
        raise SignatureInvalid(f"exactly one {path.split(':')[1]} is required")
    algorithm = element.get("Algorithm") or ""
    _refuse_unless(algorithm, allowed, path.split(":")[1])
    return algorithm


def _check_transforms(reference: etree._Element) -> None:
    transforms = reference.findall(_clark("ds:Transforms/ds:Transform"))
    algorithms = [t.get("Algorithm") or "" for t in transforms]
    if ENVELOPED not in algorithms:
        raise SignatureInvalid("the Reference lacks the enveloped-signature transform")
    for algorithm in algorithms:
        if algorithm != ENVELOPED:
            _refuse_unless(algorithm, C14N_METHODS, "Transform")


def _refuse_unless(algorithm: str, allowed: Iterable[str], what: str) -> None:
    if algorithm in allowed:
        return
    legacy = algorithm in SHA1_SIGNATURE_METHODS | SHA1_DIGEST_METHODS
    reason = "SHA-1 is refused without the legacy opt-in" if legacy else "unknown or refused"
    raise AlgorithmRefused(f"{what} algorithm {algorithm!r}: {reason}", algorithm=algorithm)


def _only(parent: etree._Element, path: str) -> etree._Element | None:
    found = parent.findall(_clark(path))
    return found[0] if len(found) == 1 else None


@functools.lru_cache(maxsize=32)
def _clark(path: str) -> str:
    """``ds:A/ds:B`` in Clark notation, which spares lxml a prefix map on every look-up."""
    return "/".join(DS.join("{}") + step.removeprefix("ds:") for step in path.split("/"))


def _certificates(signature: etree._Element) -> tuple[bytes, ...]:
    texts = signature.findall(_clark("ds:KeyInfo/ds:X509Data/ds:X509Certificate"))
    if not texts:
        raise UntrustedCertificate("the Signature carries no KeyInfo/X509Data/X509Certificate")
    ders: list[bytes] = []
    for element in texts:
        try:
            ders.append(base64.b64decode("".join((element.text or "").split()), validate=True))
        except (binascii.Error, ValueError):
            raise InvalidKeyMaterial("an X509Certificate is not valid base64") from None
    return tuple(ders)
