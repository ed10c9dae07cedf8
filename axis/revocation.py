"""The hub's revocation service: the trusted CAs' CRLs and OCSP responses, fetched, checked
once and kept in memory (a :class:`routing.ports.RevocationKeeper`; docs/signing.md,
"Revocation", and docs/operator-guide.md).

Where the material comes from, for a registered certificate whose issuer is one of the
configured CAs: the CRL files configured for that CA, the http(s) CRL distribution
points the certificate names, and, for a CA with OCSP turned on, the OCSP responder its
authority information access names. A certificate with none of these has nothing to
check: the hub accepts it as it always did. One whose issuer is not a configured CA but
that names a source cannot be checked (``unavailable``).

:meth:`RevocationService.refresh` (blocking, in the hub's revocation thread) fetches what
is missing or due: a source is fetched again at its material's nextUpdate, and never more
often than every ``refresh_seconds`` (also after a failure). A failed fetch keeps the
material fetched before (it turns stale in its own time). :meth:`RevocationService.status`
answers from memory only. Among several sources, a revocation wins, then a fresh good
answer, then (in this order) stale, unknown, invalid and missing material.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from axis.errors import InvalidSettings
from axis.revocation_fetch import get_crl, http_source, post_ocsp, read_crl_file
from axis.settings import Settings
from routing.ports import RegistryView
from signing.errors import InvalidKeyMaterial, RevocationInvalid, SignatureError
from signing.keys import fingerprint, load_certificates
from signing.ocsp import CheckedOcsp, load_ocsp, ocsp_request, ocsp_status
from signing.revocation import (
    UNREADABLE,
    CheckedCrl,
    RevocationState,
    RevocationStatus,
    crl_status,
    failed,
    issued_by,
    load_crl,
    name_of,
    read_crl,
    unavailable,
)
from signing.trust import LruCache

log = logging.getLogger("axis.revocation")
ALL_CAS = "*"
_PREFERENCE = (RevocationState.REVOKED, RevocationState.GOOD, RevocationState.STALE,
               RevocationState.UNKNOWN, RevocationState.INVALID, RevocationState.UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class RevocationConfig:
    """What the service checks and how: ``cas`` are the CAs whose certificates it checks,
    ``crl_files`` CRLs the operator provides (each matched to its CA by issuer and
    signature), ``ocsp_cas`` the SHA-256 fingerprints of the CAs asked by OCSP (``*``:
    all). Material is stale ``grace`` after its nextUpdate."""

    cas: tuple[x509.Certificate, ...]
    fail_closed: bool = True
    grace: timedelta = timedelta(hours=1)
    crl_files: tuple[Path, ...] = ()
    ocsp_cas: frozenset[str] = frozenset()
    refresh_seconds: float = 300.0
    timeout: float = 10.0
    max_bytes: int = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    """A source's material (checked) and the outcome of its newest attempt."""

    material: CheckedCrl | CheckedOcsp | None
    failure: RevocationStatus | None
    attempted_at: datetime
    ca: str | None = None  # a CRL file's CA (fingerprint); None: could be any
    stamp: float | None = None  # a CRL file's modification time

    def due(self, at: datetime, interval: timedelta) -> bool:
        """Fetch again: not before ``interval`` since the last attempt, then when there is
        no material or it reached its nextUpdate."""
        if at < self.attempted_at + interval:
            return False
        if self.material is None:
            return True
        evidence = self.material.evidence
        return at >= (evidence.next_update or evidence.this_update)


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the material about one certificate comes from."""

    issuer: x509.Certificate | None
    crl_urls: tuple[str, ...] = ()
    ocsp_url: str | None = None

    @property
    def named(self) -> bool:
        return bool(self.crl_urls or self.ocsp_url)


@dataclass
class RevocationService:
    """CRLs and OCSP responses of the configured CAs, in memory; see the module docs."""

    config: RevocationConfig
    on_warning: Callable[[RevocationStatus], None] = lambda _status: None
    on_fetch_failure: Callable[[str], None] = lambda _kind: None
    _crls: dict[str, Fetched] = field(default_factory=dict)
    _files: dict[Path, Fetched] = field(default_factory=dict)
    _ocsp: dict[tuple[str, int], Fetched] = field(default_factory=dict)
    _sources: LruCache[str, Sources] = field(default_factory=lambda: LruCache(100_000))
    _parsed: LruCache[str, x509.Certificate] = field(default_factory=lambda: LruCache(100_000))

    @property
    def fail_closed(self) -> bool:
        return self.config.fail_closed

    # -- answering (memory only) ---------------------------------------------------------

    def status(self, cert: x509.Certificate, at: datetime) -> RevocationStatus | None:
        """The CA's word on ``cert`` at ``at`` (None: nothing to check)."""
        sources = self.sources(cert)
        issuer = sources.issuer
        if issuer is None:
            if not sources.named:
                return None
            return unavailable(
                f"the certificate names where its revocation is published, but its issuer "
                f"{name_of(cert.issuer)!r} is not among the hub's CAs (pki/ca.pem, "
                "revocation_ca_files): its revocation cannot be checked")  # fmt: skip
        ca = fingerprint(issuer)
        answers = [self._answer(self._crls.get(url), cert, at, url, issuer)
                   for url in sources.crl_urls]  # fmt: skip
        # tuple(): one atomic copy, as the refresh thread may add entries meanwhile.
        answers += [self._answer(entry, cert, at, str(path), issuer)
                    for path, entry in tuple(self._files.items())
                    if entry.ca in (ca, None)]  # fmt: skip
        if sources.ocsp_url and self._uses_ocsp(issuer):
            key = (ca, cert.serial_number)
            answers.append(self._answer(self._ocsp.get(key), cert, at, sources.ocsp_url, issuer))
        if not answers:
            return None
        return min(answers, key=lambda a: _PREFERENCE.index(a.state))

    def _answer(
        self, entry: Fetched | None, cert: x509.Certificate, at: datetime, source: str,
        issuer: x509.Certificate,
    ) -> RevocationStatus:  # fmt: skip
        if entry is None:
            return unavailable(f"nothing fetched yet from {source} for the CA "
                               f"{name_of(issuer.subject)!r}", name_of(issuer.subject), source)
        if isinstance(entry.material, CheckedCrl):
            return crl_status(entry.material, cert, at, self.config.grace)
        if isinstance(entry.material, CheckedOcsp):
            return ocsp_status(entry.material, cert, at, self.config.grace)
        assert entry.failure is not None  # an entry holds material or why it has none
        return entry.failure

    def sources(self, cert: x509.Certificate) -> Sources:
        """Where ``cert``'s revocation is published, and its issuer among the CAs."""
        return self._sources.get_or_make(fingerprint(cert), lambda: _sources_of(
            cert, self.config.cas))  # fmt: skip

    def _uses_ocsp(self, issuer: x509.Certificate) -> bool:
        return ALL_CAS in self.config.ocsp_cas or fingerprint(issuer) in self.config.ocsp_cas

    def accepted_anyway(self, status: RevocationStatus, system_id: str) -> None:
        """Under "warn": count and log a package accepted without a good answer."""
        self.on_warning(status)
        log.warning("accepted a package of system %s although the revocation status of its "
                    "signing certificate is %s (CA %r, source %s): %s", system_id,
                    status.state.value, status.ca, status.source or "-", status.detail)

    # -- fetching (blocking) ---------------------------------------------------------------

    def refresh(self, registry: RegistryView, at: datetime) -> bool:
        """Fetch the material missing or due for the registered certificates at ``at``;
        True if any answer may have changed."""
        interval = timedelta(seconds=self.config.refresh_seconds)
        changed = self._refresh_files(at, interval)
        crls: dict[str, x509.Certificate] = {}
        ocsps: dict[tuple[str, int], tuple[x509.Certificate, x509.Certificate, str]] = {}
        for cert in self._registered(registry):
            sources = self.sources(cert)
            if (issuer := sources.issuer) is None:
                continue
            for url in sources.crl_urls:
                if (entry := self._crls.get(url)) is None or entry.due(at, interval):
                    crls[url] = issuer
            key = (fingerprint(issuer), cert.serial_number)
            if sources.ocsp_url and self._uses_ocsp(issuer) and (
                    (entry := self._ocsp.get(key)) is None or entry.due(at, interval)):  # fmt: skip
                ocsps[key] = (cert, issuer, sources.ocsp_url)
        if not crls and not ocsps:
            return changed
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="axis-fetch") as pool:
            crl_jobs = {url: pool.submit(self._fetch_crl, url, issuer, at)
                        for url, issuer in crls.items()}  # fmt: skip
            ocsp_jobs = {key: pool.submit(self._fetch_ocsp, *job, at) for key, job in ocsps.items()}
            for url, job in crl_jobs.items():
                self._crls[url] = _keep_material(self._crls.get(url), job.result())
            for key, job in ocsp_jobs.items():
                self._ocsp[key] = _keep_material(self._ocsp.get(key), job.result())
        return True

    def _registered(self, registry: RegistryView) -> Iterable[x509.Certificate]:
        """The registry's unrevoked certificates, each parsed once."""
        for system in registry.systems.values():
            for key, cert in system.certificates.items():
                if cert.revoked:
                    continue
                parsed = self._parsed.get(key)
                if parsed is None:
                    try:
                        parsed = x509.load_pem_x509_certificate(cert.pem)
                    except UNREADABLE:
                        continue
                    self._parsed.put(key, parsed)
                yield parsed

    def _fetch_crl(self, url: str, issuer: x509.Certificate, at: datetime) -> Fetched:
        config = self.config
        try:
            data = get_crl(url, timeout=config.timeout, max_bytes=config.max_bytes)
            return Fetched(load_crl(data, issuer, source=url), None, at)
        except SignatureError as error:
            return self._failed("crl", error, issuer, url, at)

    def _fetch_ocsp(
        self, cert: x509.Certificate, issuer: x509.Certificate, url: str, at: datetime
    ) -> Fetched:
        config = self.config
        try:
            data = post_ocsp(url, ocsp_request(cert, issuer), timeout=config.timeout,
                             max_bytes=config.max_bytes)  # fmt: skip
            return Fetched(load_ocsp(data, cert, issuer, source=url), None, at)
        except SignatureError as error:
            return self._failed("ocsp", error, issuer, url, at)

    def _failed(self, kind: str, error: SignatureError, issuer: x509.Certificate | None,
                source: str, at: datetime, stamp: float | None = None) -> Fetched:  # fmt: skip
        self.on_fetch_failure(kind)
        ca = name_of(issuer.subject) if issuer is not None else "any CA"
        log.warning("revocation material of CA %r from %s is not usable: %s", ca, source,
                    error.reason)  # fmt: skip
        owner = fingerprint(issuer) if issuer is not None else None
        return Fetched(None, failed(error, issuer, source), at, ca=owner, stamp=stamp)

    def _refresh_files(self, at: datetime, interval: timedelta) -> bool:
        changed = False
        for path in self.config.crl_files:
            entry = self._files.get(path)
            stamp = _modified(path)
            if entry is not None and entry.stamp == stamp and not entry.due(at, interval):
                continue
            self._files[path] = _keep_material(entry, self._load_file(path, stamp, at))
            changed = True
        return changed

    def _load_file(self, path: Path, stamp: float | None, at: datetime) -> Fetched:
        try:
            data = read_crl_file(path, max_bytes=self.config.max_bytes)
        except SignatureError as unreadable:
            return self._failed("crl", unreadable, None, str(path), at, stamp)
        # A file that fits no CA counts against every CA it could be for (all, if its
        # issuer does not even read): a broken CRL the operator configured fails closed.
        candidates = _issuers_named(_crl_issuer(data), self.config.cas)
        errors: list[SignatureError] = []
        for ca in candidates:
            try:
                crl = load_crl(data, ca, source=str(path))
                return Fetched(crl, None, at, ca=fingerprint(ca), stamp=stamp)
            except SignatureError as problem:
                errors.append(problem)
        error = errors[-1] if errors else RevocationInvalid(
            f"the CRL file {path} is not issued by any of the hub's CAs", source=str(path))
        issuer = candidates[0] if len(candidates) == 1 else None
        return self._failed("crl", error, issuer, str(path), at, stamp)


def service_for(
    settings: Settings,
    *,
    on_warning: Callable[[RevocationStatus], None] = lambda _status: None,
    on_fetch_failure: Callable[[str], None] = lambda _kind: None,
) -> RevocationService | None:
    """The revocation service a hub home's settings ask for (None: ``revocation = "off"``).

    The CAs are ``pki/ca.pem`` (when present) and ``revocation_ca_files``; paths are
    relative to the hub home. A file that cannot be read, or an OCSP CA fingerprint that
    is none of those CAs, is ``config.invalid``.
    """
    if settings.revocation == "off":
        return None
    home = settings.home
    cas = list(_certificates(settings.ca_cert_path)) if settings.ca_cert_path.is_file() else []
    for name in settings.revocation_ca_files:
        cas += _certificates(home / name)
    known = {fingerprint(ca) for ca in cas} | {ALL_CAS}
    if unknown := [f for f in settings.revocation_ocsp_cas if f not in known]:
        raise InvalidSettings(f"revocation_ocsp_cas names {unknown[0]}, which is not the "
                              "fingerprint of pki/ca.pem or of a revocation_ca_files CA")
    config = RevocationConfig(
        cas=tuple(cas), fail_closed=settings.revocation == "fail_closed",
        grace=timedelta(seconds=settings.revocation_grace_seconds),
        crl_files=tuple(home / name for name in settings.revocation_crl_files),
        ocsp_cas=frozenset(settings.revocation_ocsp_cas),
        refresh_seconds=float(settings.revocation_refresh_seconds),
        timeout=float(settings.revocation_timeout_seconds),
        max_bytes=settings.revocation_max_bytes)  # fmt: skip
    return RevocationService(config, on_warning, on_fetch_failure)


def _certificates(path: Path) -> list[x509.Certificate]:
    try:
        return load_certificates(path.read_bytes())
    except (OSError, InvalidKeyMaterial) as exc:
        why = exc.reason if isinstance(exc, InvalidKeyMaterial) else exc.strerror or str(exc)
        raise InvalidSettings(f"the CA certificate file {path} cannot be read: {why}",
                              path=str(path)) from None  # fmt: skip


def _keep_material(before: Fetched | None, now: Fetched) -> Fetched:
    """A failed attempt keeps the material fetched before (it turns stale in its time)."""
    if now.material is None and before is not None and before.material is not None:
        return Fetched(before.material, now.failure, now.attempted_at, before.ca, now.stamp)
    return now


def _sources_of(cert: x509.Certificate, cas: tuple[x509.Certificate, ...]) -> Sources:
    issuer = next((ca for ca in _issuers_named(cert.issuer, cas) if issued_by(cert, ca)), None)
    urls: list[str] = []
    ocsp_url = None
    for extension in _extensions(cert):
        if isinstance(extension.value, x509.CRLDistributionPoints):
            urls += [name.value for point in extension.value for name in point.full_name or ()
                     if isinstance(name, x509.UniformResourceIdentifier)
                     and http_source(name.value)]  # fmt: skip
        elif isinstance(extension.value, x509.AuthorityInformationAccess):
            ocsp_url = next((a.access_location.value for a in extension.value
                             if a.access_method == AuthorityInformationAccessOID.OCSP
                             and isinstance(a.access_location, x509.UniformResourceIdentifier)
                             and http_source(a.access_location.value)), None)  # fmt: skip
    return Sources(issuer, tuple(dict.fromkeys(urls)), ocsp_url)


def _extensions(cert: x509.Certificate) -> list[x509.Extension[x509.ExtensionType]]:
    try:
        return list(cert.extensions)
    except UNREADABLE:
        return []


def _issuers_named(
    name: x509.Name | None, cas: tuple[x509.Certificate, ...]
) -> list[x509.Certificate]:
    return [ca for ca in cas if name is None or ca.subject == name]


def _crl_issuer(data: bytes) -> x509.Name | None:
    try:
        return read_crl(data).issuer
    except UNREADABLE:
        return None


def _modified(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
