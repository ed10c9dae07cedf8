"""Verifying an enveloped XMLDSig signature over a whole document, under a frozen policy.

The policy says which certificates are trusted (anchors or pinned ones), whether
legacy SHA-1 is accepted and *when* validity is judged; nothing is read from the
clock. The result is the tree that was signed: callers must read only that, never
the input tree (anything outside the signed content, e.g. inside ``ds:Object``, is
not in it).

A signature in the profile Axis signs with is checked by :mod:`signing.fixed_verify`;
any other that the structure checks admit goes through signxml (``_TreeVerifier``).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cryptography import x509
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest, SignXMLException
from signxml.util import namespaces as SIGNXML_NAMESPACES
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from envelopes.errors import AxisError
from envelopes.xmlsafe import parse_tree
from signing.errors import SignatureInvalid, UntrustedCertificate
from signing.fixed_verify import check as check_fixed_profile
from signing.structure import (
    DIGEST_METHODS,
    SHA1_DIGEST_METHODS,
    SHA1_SIGNATURE_METHODS,
    SIGNATURE_METHODS,
    inspect_signature,
)
from signing.trust import TrustStore

# signxml re-parses copies of the document; give it the same hardened settings
# as ``parse_tree`` (its own default parser refuses large base64 text nodes).
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=True,
    collect_ids=False,
)


_INCLUSIVE_NAMESPACES = f"{{{SIGNXML_NAMESPACES['ec']}}}InclusiveNamespaces"


class _DocumentRoot:
    """A document root on its way from :meth:`_TreeVerifier._tostring` to ``_fromstring``."""

    __slots__ = ("root",)

    def __init__(self, root: etree._Element) -> None:
        self.root = root


class _TreeVerifier(XMLVerifier):
    """signxml's verifier, copying whole documents in memory rather than through text.

    signxml copies a node by serialising and re-parsing it
    (``self._fromstring(self._tostring(node))``) so that namespaces inherited from
    ancestors survive; it does so twice for the whole document while checking an
    enveloped reference. A document root has no ancestors, so lxml's deep copy is
    the same tree at a fifth of the cost, and the second copy is of a root this
    verifier made itself and nothing else holds, so that copy is skipped. Every
    other node, and everything signxml parses from bytes (the canonical SignedInfo
    and the signed content it returns), takes signxml's own path unchanged. The
    input tree (from ``parse_tree``) is used as is: signxml never mutates it, only
    its copies. One instance serves one ``verify`` call.
    """

    def __init__(self) -> None:
        super().__init__()
        self._copies: list[etree._Element] = []

    def get_root(self, data: object) -> etree._Element:
        if isinstance(data, etree._Element) and data.getparent() is None:
            return data
        root: etree._Element = super().get_root(data)  # type: ignore[no-untyped-call]
        return root

    def _tostring(self, xml_node: object, **kwargs: object) -> object:
        if not kwargs and isinstance(xml_node, etree._Element) and xml_node.getparent() is None:
            return _DocumentRoot(xml_node)
        return super()._tostring(xml_node, **kwargs)  # type: ignore[no-untyped-call]

    def _fromstring(self, xml_string: object, **kwargs: object) -> etree._Element:
        if isinstance(xml_string, _DocumentRoot):
            root = xml_string.root
            if any(root is mine for mine in self._copies):  # only we hold it: no second copy
                return root
            self._copies.append(copy.deepcopy(root))
            return self._copies[-1]
        node: etree._Element = super()._fromstring(xml_string, **kwargs)  # type: ignore[no-untyped-call]
        return node

    # signxml looks elements up through ElementPath with prefixes and its namespace
    # map on every call; a tag iterator matches the same elements without a path.
    def _find(
        self, element: etree._Element, query: str, require: bool = True, xpath: str = ""
    ) -> etree._Element | None:
        found = next(_matches(element, xpath, query), None)
        if found is None and require:  # signxml raises its own error for a missing element
            return super()._find(element, query, require, xpath)  # type: ignore[no-any-return,no-untyped-call]
        return found

    def _findall(
        self, element: etree._Element, query: str, xpath: str = ""
    ) -> list[etree._Element]:
        return list(_matches(element, xpath, query))

    def _get_inclusive_ns_prefixes(self, transform_node: etree._Element) -> list[str] | None:
        # signxml runs a predicate path with its prefix map here, for every c14n method and
        # transform; the first InclusiveNamespaces child with a PrefixList is the same element.
        for found in transform_node.iterchildren(_INCLUSIVE_NAMESPACES):
            prefixes = found.get("PrefixList")
            if prefixes is not None:
                return prefixes.split(" ")
        return None

    def _check_cert_validity(self, cert: x509.Certificate, cert_source: str) -> None:
        # signxml describes the certificate (an RFC 4514 subject string) before it
        # compares dates; only a refusal needs that description.
        at = self._get_cert_verification_time()  # type: ignore[no-untyped-call]
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            super()._check_cert_validity(cert, cert_source)  # type: ignore[no-untyped-call]


def _matches(element: etree._Element, xpath: str, query: str) -> Iterator[etree._Element]:
    """The elements signxml's ``element.find[all](xpath + prefix:query)`` would return, in order."""
    axis, target = _clark_lookup(xpath, query)
    if axis == "children":
        return element.iterchildren(target)
    if axis == "descendants":
        return element.iterdescendants(target)
    return iter(element.findall(target))


@functools.lru_cache(maxsize=64)
def _clark_lookup(xpath: str, query: str) -> tuple[str, str]:
    """signxml's ``prefix:name`` query (``ds`` by default) as (axis, Clark-notation tag or path)."""
    prefix, _, name = query.partition(":") if ":" in query else ("ds", "", query)
    tag = f"{{{SIGNXML_NAMESPACES[prefix]}}}{name}"
    if "/" in name or "[" in name or xpath not in ("", ".//"):
        return "path", xpath + tag
    return ("children" if xpath == "" else "descendants"), tag


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    """What to trust and when: exactly one of ``trust_anchors`` / ``pinned`` is non-empty.

    ``at`` is the moment certificate validity is judged (a naive datetime is
    taken as UTC). ``allow_sha1`` admits legacy RSA-SHA1 / SHA-1 digests.
    """

    at: datetime
    trust_anchors: tuple[x509.Certificate, ...] = ()
    pinned: tuple[x509.Certificate, ...] = ()
    allow_sha1: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "trust_anchors", tuple(self.trust_anchors))
        object.__setattr__(self, "pinned", tuple(self.pinned))
        if bool(self.trust_anchors) == bool(self.pinned):
            raise ValueError("VerifyPolicy needs trust_anchors or pinned (exactly one)")
        if not isinstance(self.at, datetime):
            raise ValueError("VerifyPolicy.at must be a datetime")
        object.__setattr__(self, "at", _utc(self.at))


@dataclass(frozen=True, slots=True)
class Verified:
    """A verified document: the signed tree (read only this), its signer, the signed bytes.

    ``root`` is parsed from ``signed_bytes``, the canonical form that was digested
    (signature removed, as the enveloped transform prescribes).
    """

    root: etree._Element
    signer: x509.Certificate
    signed_bytes: bytes


class Verifier:
    """A reusable verifier for one trust configuration; caches certificate path checks.

    Time is not part of it: pass ``at`` to :meth:`verify` on every call.
    """

    def __init__(
        self,
        *,
        trust_anchors: tuple[x509.Certificate, ...] = (),
        pinned: tuple[x509.Certificate, ...] = (),
        allow_sha1: bool = False,
        cache_size: int = 1024,
    ) -> None:
        self._trust = TrustStore(trust_anchors=trust_anchors, pinned=pinned, cache_size=cache_size)
        self._allow_sha1 = allow_sha1
        self._config = _signature_configuration(allow_sha1)

    @classmethod
    def for_policy(cls, policy: VerifyPolicy) -> Verifier:
        """The shared verifier for ``policy``'s trust settings (its time is ignored)."""
        return _shared_verifier(policy.trust_anchors, policy.pinned, policy.allow_sha1)

    def verify(self, data: bytes | etree._Element, at: datetime) -> Verified:
        """Verify ``data`` (untrusted bytes, or a root parsed by ``parse_tree``) at time ``at``.

        Raises only :class:`AxisError` subclasses: ``envelope.*`` for unreadable
        XML, ``signature.*`` for everything else.
        """
        if isinstance(data, bytes | bytearray | memoryview):
            root, owned = parse_tree(data), True  # parsed here: nothing else holds the tree
        else:
            root, owned = data, False
        if not isinstance(root, etree._Element):
            raise SignatureInvalid("verify() needs bytes or an lxml element")
        at = _utc(at)
        try:
            shape = inspect_signature(root, allow_sha1=self._allow_sha1)
            signer = self._trust.signer(shape.certificates_der, at)
            signed = check_fixed_profile(root, shape.element, signer, _PARSER, owned=owned)
            if signed is not None:
                return Verified(root=signed.root, signer=signer, signed_bytes=signed.data)
            return self._check_signature(root, signer, at)
        except AxisError:
            raise
        except Exception as exc:  # a library surprise on hostile input is still a refusal
            raise SignatureInvalid(f"signature cannot be checked ({type(exc).__name__})") from None

    def _check_signature(
        self, root: etree._Element, signer: x509.Certificate, at: datetime
    ) -> Verified:
        """signxml's verification, for what the fixed profile leaves undecided."""
        config = replace(self._config, verification_time=at)
        try:
            result = _TreeVerifier().verify(
                root, x509_cert=signer, parser=_PARSER, expect_config=config
            )
        except AxisError:
            raise
        except InvalidDigest as exc:
            raise SignatureInvalid(f"the signed content was altered: {exc}") from None
        except InvalidCertificate as exc:
            raise UntrustedCertificate(f"signer certificate refused: {exc}") from None
        except (SignXMLException, etree.LxmlError, ValueError) as exc:
            raise SignatureInvalid(f"signature does not verify: {exc}") from None
        except Exception as exc:  # hostile input must never surface a library exception
            raise SignatureInvalid(f"signature does not verify ({type(exc).__name__})") from None
        signed_root = result.signed_xml if isinstance(result, VerifyResult) else None
        if not isinstance(result, VerifyResult) or not isinstance(signed_root, etree._Element):
            raise SignatureInvalid("the signed content is not an XML document")
        return Verified(root=signed_root, signer=signer, signed_bytes=result.signed_data)


def verify(data: bytes | etree._Element, policy: VerifyPolicy) -> Verified:
    """Verify the document's single enveloped signature under ``policy``.

    See :class:`Verifier` for the errors; repeated calls with the same trust
    settings share one verifier and its certificate caches.
    """
    return Verifier.for_policy(policy).verify(data, policy.at)


@functools.lru_cache(maxsize=64)
def _shared_verifier(
    trust_anchors: tuple[x509.Certificate, ...],
    pinned: tuple[x509.Certificate, ...],
    allow_sha1: bool,
) -> Verifier:
    return Verifier(trust_anchors=trust_anchors, pinned=pinned, allow_sha1=allow_sha1)


@functools.lru_cache(maxsize=2)
def _signature_configuration(allow_sha1: bool) -> SignatureConfiguration:
    methods = SIGNATURE_METHODS | (SHA1_SIGNATURE_METHODS if allow_sha1 else frozenset())
    digests = DIGEST_METHODS | (SHA1_DIGEST_METHODS if allow_sha1 else frozenset())
    return SignatureConfiguration(
        require_x509=True,
        location=".//",
        expect_references=1,
        signature_methods=frozenset(SignatureMethod(uri) for uri in methods),
        digest_algorithms=frozenset(DigestAlgorithm(uri) for uri in digests),
    )


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
