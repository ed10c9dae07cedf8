"""What a signature must look like before any cryptography runs.

Exactly one ``Signature`` in the whole document (any namespace), enveloped,
holding nothing but what XMLDSig needs (no ``ds:Object``, no foreign elements, no
text), one ``Reference`` to the whole document (``URI=""``), and only algorithms
Axis knows and the policy allows. These checks give precise error codes; the
XMLDSig processing follows (``signing.fixed_verify`` for Axis's own profile, signxml
for any other).
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from envelopes.schema import element_path
from signing.errors import (
    AlgorithmRefused,
    InvalidKeyMaterial,
    MultipleSignatures,
    ReferenceNotWholeDocument,
    SignatureInvalid,
    SignatureMissing,
    SignatureUnexpectedContent,
    UntrustedCertificate,
)

DS = "http://www.w3.org/2000/09/xmldsig#"
_DSIG_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
ENVELOPED = DS + "enveloped-signature"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


def exclusive_c14n(element: etree._Element) -> bytes:
    """``element`` in exclusive canonical form without comments (:data:`EXC_C14N`)."""
    return bytes(etree.tostring(element, method="c14n", exclusive=True, with_comments=False))

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
    check_signature_content(signature)
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
    references = _children(signed_info, "ds:Reference")
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
    transforms = _children(reference, "ds:Transforms/ds:Transform")
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
    found = _children(parent, path)
    return found[0] if len(found) == 1 else None


def _children(parent: etree._Element, path: str) -> list[etree._Element]:
    """What ``parent.findall(path)`` finds for a path of child steps (``ds:A/ds:B``), in order.

    Tag-filtered child iteration runs in libxml2; ElementPath would walk in Python.
    """
    found = [parent]
    for tag in _clark_steps(path):
        found = [child for node in found for child in node.iterchildren(tag)]
    return found


@functools.lru_cache(maxsize=32)
def _clark_steps(path: str) -> tuple[str, ...]:
    """``ds:A/ds:B`` as Clark-notation tags, one per step."""
    return tuple(f"{{{DS}}}{step.removeprefix('ds:')}" for step in path.split("/"))


def _certificates(signature: etree._Element) -> tuple[bytes, ...]:
    texts = _children(signature, "ds:KeyInfo/ds:X509Data/ds:X509Certificate")
    if not texts:
        raise UntrustedCertificate("the Signature carries no KeyInfo/X509Data/X509Certificate")
    ders: list[bytes] = []
    for element in texts:
        try:
            ders.append(base64.b64decode("".join((element.text or "").split()), validate=True))
        except (binascii.Error, ValueError):
            raise InvalidKeyMaterial("an X509Certificate is not valid base64") from None
    return tuple(ders)


# -- what a ds:Signature may contain ----------------------------------------------------------

_PREFIXES = {DS: "ds", EXC_C14N: "ec"}
_XML_SPACE = " \t\r\n"

# One step of a content model: the tags it admits, and whether it may repeat. Every step
# is optional: a missing element is left to the checks that name it (signature.invalid,
# signature.untrusted_certificate), this model refuses only what is there and should not be.
_Step = tuple[frozenset[str], bool]


@dataclass(frozen=True, slots=True)
class _Content:
    """What one element inside ``ds:Signature`` may hold: child steps in order, or text."""

    steps: tuple[_Step, ...] = ()
    text: bool = False


def _tag(name: str) -> str:
    prefix, local = name.split(":")
    namespace = next(ns for ns, known in _PREFIXES.items() if known == prefix)
    return f"{{{namespace}}}{local}"


def _once(*names: str) -> tuple[_Step, ...]:
    return tuple((frozenset({_tag(name)}), False) for name in names)


def _any(*names: str) -> tuple[_Step, ...]:
    return ((frozenset(_tag(name) for name in names), True),)


_SIGNATURE = _tag("ds:Signature")
_TEXT = _Content(text=True)
_EMPTY = _Content()
# ec:InclusiveNamespaces is exclusive C14N's own parameter (signxml writes it on request).
_CONTENT: dict[str, _Content] = {
    _SIGNATURE: _Content(_once("ds:SignedInfo", "ds:SignatureValue", "ds:KeyInfo")),
    _tag("ds:SignedInfo"): _Content(
        _once("ds:CanonicalizationMethod", "ds:SignatureMethod") + _any("ds:Reference")
    ),
    _tag("ds:CanonicalizationMethod"): _Content(_once("ec:InclusiveNamespaces")),
    _tag("ds:SignatureMethod"): _EMPTY,
    _tag("ds:Reference"): _Content(_once("ds:Transforms", "ds:DigestMethod", "ds:DigestValue")),
    _tag("ds:Transforms"): _Content(_any("ds:Transform")),
    _tag("ds:Transform"): _Content(_once("ec:InclusiveNamespaces")),
    _tag("ec:InclusiveNamespaces"): _EMPTY,
    _tag("ds:DigestMethod"): _EMPTY,
    _tag("ds:DigestValue"): _TEXT,
    _tag("ds:SignatureValue"): _TEXT,
    _tag("ds:KeyInfo"): _Content(_any("ds:X509Data")),
    _tag("ds:X509Data"): _Content(
        _any("ds:X509Certificate", "ds:X509IssuerSerial", "ds:X509SubjectName", "ds:X509SKI")
    ),
    _tag("ds:X509IssuerSerial"): _Content(_once("ds:X509IssuerName", "ds:X509SerialNumber")),
    _tag("ds:X509IssuerName"): _TEXT,
    _tag("ds:X509SerialNumber"): _TEXT,
    _tag("ds:X509Certificate"): _TEXT,
    _tag("ds:X509SubjectName"): _TEXT,
    _tag("ds:X509SKI"): _TEXT,
}


def check_signature_content(signature: etree._Element) -> None:
    """Refuse anything in ``signature`` that XMLDSig, as Axis uses it, does not need.

    Only XMLDSig's own elements for one X.509-keyed signature, each where and in the
    order XMLDSig puts it, with text only in the value elements (docs/signing.md has
    the list); comments are ignored. Raises :class:`SignatureUnexpectedContent`
    naming the first offending node.
    """
    _check_element(signature, _CONTENT[signature.tag])


def _check_element(element: etree._Element, content: _Content) -> None:
    text_allowed = content.text
    if not text_allowed:
        _refuse_text(element.text, element)
    position = 0
    for child in element:
        tag = child.tag
        if isinstance(tag, str):
            position = _admit(element, content, position, child, tag)
            _check_element(child, _CONTENT[tag])
        elif not isinstance(child, etree._Comment):
            _refuse_node(element, child)
        if not text_allowed:
            _refuse_text(child.tail, element)


def _refuse_node(parent: etree._Element, node: etree._Element) -> None:
    """A processing instruction (or entity reference) is data for some other parser."""
    pi = isinstance(node, etree._ProcessingInstruction)
    kind, step = (
        ("processing instruction", "processing-instruction()")
        if pi
        else ("entity reference", "entity()")
    )
    raise SignatureUnexpectedContent(
        f"a {kind} is not allowed in {_name(parent)}", path=f"{_path(parent)}/{step}"
    )


def _admit(
    parent: etree._Element, content: _Content, position: int, child: etree._Element, tag: str
) -> int:
    """The step position after ``child`` (tagged ``tag``); refuse it if no step from
    ``position`` admits it."""
    for index in range(position, len(content.steps)):
        tags, repeatable = content.steps[index]
        if tag in tags:
            return index if repeatable else index + 1
    raise SignatureUnexpectedContent(
        f"{_what(parent, content, child)}; {_allowed(content)}",
        path=_path(child),
        element=_name(child),
    )


def _what(parent: etree._Element, content: _Content, child: etree._Element) -> str:
    if etree.QName(child).namespace not in _PREFIXES:
        return f"{_name(child)} (not an XMLDSig element) is not allowed in {_name(parent)}"
    if any(child.tag in tags for tags, _ in content.steps):
        return f"{_name(child)} is out of order or repeated in {_name(parent)}"
    return f"{_name(child)} is not allowed in {_name(parent)}"


def _allowed(content: _Content) -> str:
    if content.text:
        return "it holds only text"
    if not content.steps:
        return "it must be empty"
    parts = [
        " or ".join(sorted(_name_of(tag) for tag in tags)) + (" (repeatable)" if repeats else "")
        for tags, repeats in content.steps
    ]
    return "it may hold only, in this order: " + ", ".join(parts)


def _refuse_text(text: str | None, parent: etree._Element) -> None:
    if text and text.strip(_XML_SPACE):
        raise SignatureUnexpectedContent(
            f"text {text.strip(_XML_SPACE)[:40]!r} is not allowed in {_name(parent)}",
            path=f"{_path(parent)}/text()",
        )


def _name(element: etree._Element) -> str:
    return _name_of(element.tag)


def _name_of(tag: str) -> str:
    """``ds:Name`` / ``ec:Name`` for the known namespaces, Clark notation for any other."""
    qname = etree.QName(tag)
    prefix = _PREFIXES.get(qname.namespace or "")
    return f"{prefix}:{qname.localname}" if prefix else tag


def _path(element: etree._Element) -> str:
    """``/edXML/edXMLEnvelope/edXMLHeader/ds:Signature/ds:Object[2]``: local names outside
    the signature, :func:`_name_of` names from it down."""
    return element_path(element, _signature_names)


def _signature_names(node: etree._Element) -> str:
    in_signature = node.tag == _SIGNATURE or any(
        ancestor.tag == _SIGNATURE for ancestor in node.iterancestors())  # fmt: skip
    return _name(node) if in_signature else etree.QName(node).localname
