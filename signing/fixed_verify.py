"""Verifying the one signature profile Axis signs with, without signxml's generic machinery.

Axis's signers (``signing.sign``, ``signing.fixed_sign``) write one profile: exclusive C14N
(no comments, no ``InclusiveNamespaces``) for ``SignedInfo``; one ``Reference`` with
``URI=""`` whose transforms are exactly enveloped-signature then exclusive C14N; a
SHA-2 digest; RSA (PKCS#1 v1.5) or ECDSA with SHA-2. For that profile, XMLDSig
verification is a fixed sequence, done here step for step as signxml does it, with
lxml canonicalising, ``cryptography`` hashing and verifying, and signxml's own
XMLDSig schema checking the ``Signature``:

1. copy the ``Signature`` through text (signxml's copy: what it cannot copy, it refuses)
   and check the copy against the XMLDSig schema;
2. canonicalise its ``SignedInfo`` and verify ``SignatureValue`` with the signer's key;
3. remove the ``Signature`` from the document (its tail text stays), canonicalise the
   document and compare the digest with ``DigestValue``;
4. parse the canonical bytes: what was signed, and only that.

Only what signxml would decide the same way is decided here: two refusals (the digest
or the signature value does not match, with signxml's words) and the acceptance of a
document in the profile. Anything else (another algorithm or transform, a
``PrefixList``, a comment in the ``Signature``, SHA-1, a key that does not fit the
method, a signature value of the wrong length, a schema violation, an unreadable
value) is left undecided: :func:`check` returns None and the caller runs signxml,
which accepts or refuses as before. tests/test_fixed_verify.py holds this path to
signxml's verdicts.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.verifier import XMLVerifier

from signing.errors import SignatureInvalid
from signing.structure import DS, ENVELOPED, EXC_C14N, exclusive_c14n

# Signature method -> (key type, hash); SHA-1 and everything else goes to signxml.
_SIGNATURE_METHODS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    SignatureMethod.RSA_SHA256.value: ("rsa", hashes.SHA256),
    SignatureMethod.RSA_SHA384.value: ("rsa", hashes.SHA384),
    SignatureMethod.RSA_SHA512.value: ("rsa", hashes.SHA512),
    SignatureMethod.ECDSA_SHA256.value: ("ecdsa", hashes.SHA256),
    SignatureMethod.ECDSA_SHA384.value: ("ecdsa", hashes.SHA384),
    SignatureMethod.ECDSA_SHA512.value: ("ecdsa", hashes.SHA512),
}
_DIGEST_METHODS: dict[str, type[hashes.HashAlgorithm]] = {
    DigestAlgorithm.SHA256.value: hashes.SHA256,
    DigestAlgorithm.SHA384.value: hashes.SHA384,
    DigestAlgorithm.SHA512.value: hashes.SHA512,
}


def _ds(name: str) -> str:
    return f"{{{DS}}}{name}"


_SIGNATURE = _ds("Signature")
_SIGNED_INFO = _ds("SignedInfo")
_SIGNATURE_VALUE = _ds("SignatureValue")
_KEY_INFO = _ds("KeyInfo")
_C14N_METHOD = _ds("CanonicalizationMethod")
_SIGNATURE_METHOD = _ds("SignatureMethod")
_REFERENCE = _ds("Reference")
_TRANSFORMS = _ds("Transforms")
_TRANSFORM = _ds("Transform")
_DIGEST_METHOD = _ds("DigestMethod")
_DIGEST_VALUE = _ds("DigestValue")
_SIGNATURE_CHILDREN = (_SIGNED_INFO, _SIGNATURE_VALUE, _KEY_INFO)  # KeyInfo may be absent

# signxml's words for the two refusals decided here, so that either path reads the same.
DIGEST_MISMATCH = "the signed content was altered: Digest mismatch for reference 0 ()"
SIGNATURE_MISMATCH = "signature does not verify: Signature verification failed: "


@dataclass(frozen=True, slots=True)
class Signed:
    """What was signed: the canonical bytes that were digested, and their tree."""

    root: etree._Element
    data: bytes


@dataclass(frozen=True, slots=True)
class _Profile:
    """The parts of a ``Signature`` in the profile that verification reads."""

    signed_info: etree._Element
    signature_value: str
    key_type: str
    signature_hash: type[hashes.HashAlgorithm]
    digest_hash: type[hashes.HashAlgorithm]
    digest_value: str


def check(
    root: etree._Element,
    signature: etree._Element,
    signer: x509.Certificate,
    parser: etree.XMLParser,
    *,
    owned: bool,
) -> Signed | None:
    """Verify ``signature`` (the document's one ``ds:Signature``) with ``signer``'s key.

    ``root`` is not modified unless ``owned`` (nothing else holds it): then the
    signature is removed from it in place instead of from a copy. ``parser`` reads
    the signature's copy and the canonical bytes. Returns None, having changed
    nothing, for anything outside the profile; raises :class:`SignatureInvalid` when
    the signature value or the digest does not match.
    """
    profile = _profile(signature, parser)
    if profile is None:
        return None
    raw_signature = _b64(profile.signature_value)
    expected_digest = _b64(profile.digest_value)
    if raw_signature is None or expected_digest is None:
        return None
    signed_info = exclusive_c14n(profile.signed_info)
    matches = _signature_matches(signer, profile, raw_signature, signed_info)
    if matches is None:
        return None
    if not matches:
        raise SignatureInvalid(SIGNATURE_MISMATCH)
    data = _canonical_without(root if owned else copy.deepcopy(root), signature, owned)
    digest = hashes.Hash(profile.digest_hash())
    digest.update(data)
    if not hmac.compare_digest(digest.finalize(), expected_digest):
        raise SignatureInvalid(DIGEST_MISMATCH)
    try:
        return Signed(root=etree.fromstring(data, parser), data=data)
    except etree.XMLSyntaxError:
        raise SignatureInvalid("the signed content is not an XML document") from None


def _profile(signature: etree._Element, parser: etree.XMLParser) -> _Profile | None:
    """The profile's parts, read from signxml's copy of ``signature``; None if it does not fit.

    signxml serialises the ``Signature`` (with its tail, through ASCII) and parses it
    back; a signature whose copy fails that (text after it, a name outside ASCII in
    scope) or the XMLDSig schema is refused there, so it is left to signxml.
    """
    try:
        sig = etree.fromstring(etree.tostring(signature), parser)
    except etree.XMLSyntaxError:
        return None
    # Comments split text nodes (signxml reads values from the canonical SignedInfo,
    # where they are gone); none are written by the profile's signers.
    if sig.tag != _SIGNATURE:
        return None
    if next(sig.iter(etree.Comment, etree.PI, etree.Entity), None) is not None:
        return None
    top = _exactly(sig, _SIGNATURE_CHILDREN) or _exactly(sig, _SIGNATURE_CHILDREN[:2])
    info = top and _exactly(top[0], (_C14N_METHOD, _SIGNATURE_METHOD, _REFERENCE))
    ref = info and _exactly(info[2], (_TRANSFORMS, _DIGEST_METHOD, _DIGEST_VALUE))
    transforms = ref and _exactly(ref[0], (_TRANSFORM, _TRANSFORM))
    if not (top and info and ref and transforms):
        return None
    c14n_method, signature_method, reference = info
    method = _SIGNATURE_METHODS.get(signature_method.get("Algorithm") or "")
    digest_hash = _DIGEST_METHODS.get(ref[1].get("Algorithm") or "")
    if (
        method is None
        or digest_hash is None
        or reference.get("URI") != ""
        or not _is_leaf(c14n_method, EXC_C14N)
        or not _is_leaf(transforms[0], ENVELOPED)
        or not _is_leaf(transforms[1], EXC_C14N)
        or len(signature_method)
        or len(ref[1])
        or not _schema_valid(sig)
    ):
        return None
    key_type, signature_hash = method
    return _Profile(top[0], top[1].text or "", key_type, signature_hash, digest_hash,
                    ref[2].text or "")  # fmt: skip


def _exactly(element: etree._Element, tags: tuple[str, ...]) -> list[etree._Element] | None:
    """``element``'s children if their tags are exactly ``tags``, in order; else None."""
    children = list(element)
    return children if tuple([child.tag for child in children]) == tags else None


def _is_leaf(element: etree._Element, algorithm: str) -> bool:
    """``element`` names ``algorithm`` and has no parameters (no ``InclusiveNamespaces``)."""
    return element.get("Algorithm") == algorithm and len(element) == 0


def _schema_valid(signature: etree._Element) -> bool:
    schemas = XMLVerifier.schemas()  # type: ignore[no-untyped-call]
    return any(schema.validate(signature) for schema in schemas)


def _b64(text: str) -> bytes | None:
    """The value as signxml decodes it (``b64decode``, not validating); None if it cannot."""
    if not text:
        return None
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        return None


def _signature_matches(
    signer: x509.Certificate, profile: _Profile, raw: bytes, signed_info: bytes
) -> bool | None:
    """Whether ``raw`` signs ``signed_info``; None for a key that does not fit the method or
    an ECDSA value of the wrong length (signxml words those refusals itself)."""
    key = signer.public_key()
    algorithm = profile.signature_hash()
    try:
        if profile.key_type == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, signed_info, PKCS1v15(), algorithm)
            return True
        if profile.key_type == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            half = (key.key_size + 7) // 8
            if len(raw) != 2 * half:  # XMLDSig's r || s, each as long as the curve's order
                return None
            der = encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                       int.from_bytes(raw[half:], "big"))  # fmt: skip
            key.verify(der, signed_info, ec.ECDSA(algorithm))
            return True
    except InvalidSignature:
        return False
    return None


def _canonical_without(root: etree._Element, signature: etree._Element, same: bool) -> bytes:
    """``root`` canonicalised with its one ``ds:Signature`` removed (enveloped-signature).

    ``signature`` is that element when ``same`` (``root`` is the document itself),
    else ``root`` is a copy and its own ``Signature`` is found in it.
    """
    element = signature if same else next(root.iter(_SIGNATURE))
    parent = element.getparent()
    assert parent is not None  # find_signature refuses a bare Signature
    if element.tail:  # the removed element's tail text stays where it was
        previous = element.getprevious()
        if previous is None:
            parent.text = (parent.text or "") + element.tail
        else:
            previous.tail = (previous.tail or "") + element.tail
    parent.remove(element)
    return exclusive_c14n(root)
