"""Who signed: picking the signer certificate and deciding whether to trust it.

Path validation is the expensive part of verification, so a :class:`TrustStore`
memoizes it per certificate chain (bounded LRU). The chain relation does not
depend on time; the validity windows of every certificate in the chain are
checked against the caller's ``at`` on every call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification

from signing.errors import (
    AlgorithmRefused,
    CertificateMismatch,
    CertificateNotYetValid,
    ExpiredCertificate,
    InvalidKeyMaterial,
    UntrustedCertificate,
)
from signing.keys import check_key_strength, fingerprint

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A small thread-safe bounded mapping; memoization only."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The cached value for ``key``, if any."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The cached value for ``key``, computing and storing it if absent."""
        value = self.get(key)
        if value is None:
            value = make()
            self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        """Store ``value``, evicting the least recently used entries beyond the bound."""
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def check_validity(cert: x509.Certificate, at: datetime) -> None:
    """Refuse a certificate outside its validity window at ``at``."""
    if at < cert.not_valid_before_utc:
        raise CertificateNotYetValid(
            f"certificate {_describe(cert)} is not valid before "
            f"{cert.not_valid_before_utc.isoformat()}",
            not_before=cert.not_valid_before_utc.isoformat(),
            fingerprint=fingerprint(cert),
        )
    if at > cert.not_valid_after_utc:
        raise ExpiredCertificate(
            f"certificate {_describe(cert)} expired at {cert.not_valid_after_utc.isoformat()}",
            not_after=cert.not_valid_after_utc.isoformat(),
            fingerprint=fingerprint(cert),
        )


class TrustStore:
    """Trust anchors or pinned certificates (exactly one of the two), with caches."""

    def __init__(
        self,
        *,
        trust_anchors: Sequence[x509.Certificate] = (),
        pinned: Sequence[x509.Certificate] = (),
        cache_size: int = 1024,
    ) -> None:
        if bool(trust_anchors) == bool(pinned):
            raise ValueError("give either trust anchors or pinned certificates, not both")
        self._anchors = tuple(trust_anchors)
        self._store = verification.Store(list(trust_anchors)) if trust_anchors else None
        self._pinned = frozenset(c.public_bytes(_DER) for c in pinned)
        self._certificates: LruCache[bytes, x509.Certificate] = LruCache(cache_size)
        self._chains: LruCache[tuple[bytes, ...], tuple[x509.Certificate, ...]]
        self._chains = LruCache(cache_size)

    def signer(self, ders: Sequence[bytes], at: datetime) -> x509.Certificate:
        """The trusted signer certificate among ``ders`` (leaf plus intermediates) at ``at``."""
        key = tuple(ders)
        chain = self._chains.get(key)
        if chain is None:
            try:
                chain = self._trusted_chain(ders, at)
            except _UNREADABLE as exc:  # cryptography parses names, keys, extensions lazily
                raise InvalidKeyMaterial(
                    f"a certificate in KeyInfo cannot be read: {exc}"
                ) from None
            self._chains.put(key, chain)
        for cert in chain:
            check_validity(cert, at)
        return chain[0]

    def _trusted_chain(self, ders: Sequence[bytes], at: datetime) -> tuple[x509.Certificate, ...]:
        """The chain, leaf first. The relation is time-independent, so it can be memoized."""
        certificates = [self._certificate(der) for der in ders]
        leaf = _leaf_of(certificates)
        try:
            check_key_strength(leaf.public_key())
        except InvalidKeyMaterial as exc:
            raise AlgorithmRefused(f"signer key refused: {exc.reason}") from None
        if self._store is None:
            if leaf.public_bytes(_DER) not in self._pinned:
                raise CertificateMismatch(
                    f"signer certificate {_describe(leaf)} is not the pinned one",
                    fingerprint=fingerprint(leaf),
                )
            return (leaf,)
        # The leaf's own window first: its precise code beats "no valid path".
        check_validity(leaf, at)
        return self._build_chain(leaf, [c for c in certificates if c is not leaf], at)

    def _certificate(self, der: bytes) -> x509.Certificate:
        return self._certificates.get_or_make(der, lambda: _load_der(der))

    def _build_chain(
        self, leaf: x509.Certificate, intermediates: list[x509.Certificate], at: datetime
    ) -> tuple[x509.Certificate, ...]:
        # If no path is valid at ``at``, one may still exist with an issuer outside
        # its window then: find it so the caller's window check names that reason.
        first_error: verification.VerificationError | None = None
        for moment in (at, leaf.not_valid_before_utc, leaf.not_valid_after_utc):
            try:
                return self._verify_path(leaf, intermediates, moment)
            except verification.VerificationError as exc:
                first_error = first_error or exc
        raise UntrustedCertificate(
            f"signer certificate {_describe(leaf)} does not chain to a trust anchor: {first_error}",
            fingerprint=fingerprint(leaf),
        )

    def _verify_path(
        self, leaf: x509.Certificate, intermediates: list[x509.Certificate], at: datetime
    ) -> tuple[x509.Certificate, ...]:
        assert self._store is not None
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(at)
            .extension_policies(ee_policy=_EE_POLICY, ca_policy=_CA_POLICY)
            .build_client_verifier()
        )
        return tuple(verifier.verify(leaf, intermediates).chain)


def _require_digital_signature(
    policy: verification.Policy, cert: x509.Certificate, usage: x509.KeyUsage | None
) -> None:
    if usage is None or not usage.digital_signature:
        raise ValueError("keyUsage does not allow digitalSignature")


_DER = Encoding.DER
_UNREADABLE = (ValueError, UnsupportedAlgorithm, x509.InvalidVersion)
_EE_POLICY = verification.ExtensionPolicy.permit_all().require_present(
    x509.KeyUsage, verification.Criticality.AGNOSTIC, _require_digital_signature
)
_CA_POLICY = verification.ExtensionPolicy.webpki_defaults_ca()


def _load_der(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except _UNREADABLE as exc:
        raise InvalidKeyMaterial(f"an X509Certificate cannot be read: {exc}") from None


def _leaf_of(certificates: list[x509.Certificate]) -> x509.Certificate:
    """The certificate that issued none of the others (XMLDSig imposes no order)."""
    if len(certificates) == 1:
        return certificates[0]
    leaves = [
        c for c in certificates
        if not any(o is not c and o.issuer == c.subject for o in certificates)
    ]
    if len(leaves) != 1:
        raise UntrustedCertificate(
            f"cannot tell the signer among {len(certificates)} certificates in KeyInfo"
        )
    return leaves[0]


def _describe(cert: x509.Certificate) -> str:
    try:
        subject = cert.subject.rfc4514_string()
    except ValueError:
        subject = "<unreadable subject>"
    return f"'{subject}' (serial {cert.serial_number:x})"
