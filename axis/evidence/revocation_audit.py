"""The revocation check of ``axis audit verify`` (pure): the CAs' CRLs and OCSP responses in
a bundle, judged again at the time of each accepted receipt (docs/evidence.md).

For each accepted receipt whose signer certificate the bundle's registry entries hold,
and whose issuer is among the ``--trust`` CAs, every bundled CRL and OCSP response is
checked with :mod:`signing.revocation` at the receipt's hub time. One that shows the
signer revoked then fails the check (``audit.signer_revoked``); one that verifies for no
signer fails it too (``audit.revocation_invalid``). A good or stale answer becomes a fact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509

from axis.evidence.bundle import RevocationFile
from axis.evidence.errors import RevocationEvidenceInvalid, SignerRevoked
from envelopes.errors import AxisError
from routing.contract import utc_text
from routing.values import Receipt
from signing.keys import fingerprint, load_certificate
from signing.ocsp import check_ocsp
from signing.revocation import RevocationState, RevocationStatus, check_crl, issued_by

# (the failure code or None; the failures, or the one detail when none; the facts)
Outcome = tuple[str | None, list[str], list[str]]


def audit_revocation(
    materials: Sequence[RevocationFile], accepted: Sequence[Receipt],
    changes: Sequence[Mapping[str, Any]], anchors: Sequence[x509.Certificate],
) -> Outcome:  # fmt: skip
    """Judge ``materials`` for the signers of the ``accepted`` receipts (certificates from
    the registry ``changes``, issuers among ``anchors``)."""
    if not materials:
        return None, ["the bundle holds no CRL or OCSP response: the hub checked no CA "
                      "revocation for these signers (or the bundle predates it)"], []
    certificates = _registered_certificates(changes)
    used: set[str] = set()
    facts: list[str] = []
    failures: list[str] = []
    checked = 0
    for receipt in accepted:
        cert = certificates.get(receipt.signer_fingerprint)
        issuer = _issuer(cert, anchors) if cert is not None else None
        if cert is None or issuer is None:
            continue
        answers = [(m, _status(m, cert, issuer, receipt)) for m in materials]
        answers = [(m, s) for m, s in answers if s.state is not RevocationState.INVALID]
        used.update(m.file for m, _ in answers)
        checked += bool(answers)
        fact, failure = _judged(receipt, answers)
        facts += [fact] if fact else []
        failures += [failure] if failure else []
    if failures:
        return SignerRevoked.code, failures, facts
    if unused := [m.file for m in materials if m.file not in used]:
        return RevocationEvidenceInvalid.code, [
            f"{name} does not verify against the --trust CAs, or is about none of the signers "
            "of the accepted receipts" for name in unused], facts  # fmt: skip
    return None, [f"the CAs' material ({len(materials)} files) shows the signer of every "
                  f"checked accepted receipt ({checked}) not revoked when the hub accepted "
                  "it"], facts  # fmt: skip


def _judged(
    receipt: Receipt, answers: list[tuple[RevocationFile, RevocationStatus]]
) -> tuple[str | None, str | None]:
    """(the fact, the failure) of one receipt's answers."""
    what = (f"certificate {receipt.signer_fingerprint}, which signed consignment "
            f"{receipt.message_id!r} accepted at {utc_text(receipt.hub_time)}")  # fmt: skip
    by_state = {s.state: (m, s) for m, s in reversed(answers)}
    if RevocationState.REVOKED in by_state:
        material, status = by_state[RevocationState.REVOKED]
        return None, f"{material.file}: {status.detail}; yet the hub accepted {what}"
    for state, words in ((RevocationState.GOOD, "vouches"),
                         (RevocationState.STALE, "(past its next update then) vouches")):
        if state in by_state:
            material, status = by_state[state]
            return (f"The CA {status.ca!r} {words} in {material.file} that {what} was not "
                    f"revoked then: {status.detail}."), None  # fmt: skip
    return None, None


def _status(
    material: RevocationFile, cert: x509.Certificate, issuer: x509.Certificate, receipt: Receipt
) -> RevocationStatus:
    check = check_crl if material.kind == "crl" else check_ocsp
    return check(cert, issuer, material.der, receipt.hub_time, source=material.file)


def _registered_certificates(changes: Sequence[Mapping[str, Any]]) -> dict[str, x509.Certificate]:
    found = {}
    for change in changes:
        pem = change.get("certificate")
        if change.get("change") != "certificate_added" or not isinstance(pem, str):
            continue
        try:
            cert = load_certificate(pem.encode())
        except AxisError:
            continue
        if fingerprint(cert) == change.get("fingerprint"):
            found[fingerprint(cert)] = cert
    return found


def _issuer(cert: x509.Certificate, anchors: Sequence[x509.Certificate]) -> x509.Certificate | None:
    return next((anchor for anchor in anchors if issued_by(cert, anchor)), None)
