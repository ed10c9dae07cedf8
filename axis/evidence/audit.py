"""Offline audits: what an evidence bundle proves, and whether two tree heads are one log
(pure; see docs/evidence.md, "What ``axis audit verify`` checks").

:func:`verify_bundle` runs the checks of the spec in order and never raises for a failed
check: each becomes a :class:`Check` of the :class:`AuditReport`, the first failure of
each kind with its code. A check that relies on one that failed is reported as not
checked (``ok`` false, no code). Only what verified becomes a fact of the report.
Consistency between two heads is :mod:`axis.evidence.consistency`; the report and its
JSON form are :mod:`axis.evidence.audit_report`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cryptography import x509

from axis.errors import ReceiptPackageMismatch
from axis.evidence.audit_report import AuditReport, Check
from axis.evidence.bundle import ENTRY_TYPES, Bundle, BundleEntry, read_bundle
from axis.evidence.errors import (
    BundleMalformed,
    HeadInvalid,
    ProofInvalid,
    ReceiptInvalid,
    RegistrationUnproven,
    SubjectMismatch,
)
from axis.evidence.heads import VerifiedHead, verify_head
from axis.evidence.merkle import leaf_hash, verify_inclusion
from axis.evidence.revocation_audit import audit_revocation
from axis.evidence.timestamps import VerifiedTimestamp, verify_timestamp
from axis.receipts import VerifiedReceipt, describe, verify_receipt
from envelopes.errors import AxisError
from routing.contract import utc_text
from routing.values import Receipt, sha256_hex
from signing.keys import fingerprint, load_certificate, load_certificates, organ_id_of
from signing.verify import VerifyPolicy

CHECKS = ("bundle", "head", "timestamp", "proofs", "receipts", "subject", "registration",
          "revocation", "package")  # fmt: skip
Roots = Sequence[x509.Certificate] | None  # TSA trust anchors; None: the token's own signature
# What each check relies on; registration and package look only at the receipts that are
# about the subject, so another receipt's mismatch does not stop them.
_NEEDS = {"proofs": ("head",), "subject": ("receipts",), "package": ("receipts",),
          "registration": ("head", "proofs", "receipts"), "revocation": ("receipts",)}  # fmt: skip


def audit_archive(
    data: bytes, policy: VerifyPolicy, *, tsa_roots: Roots = None, package: bytes | None = None
) -> AuditReport:
    """Read the bundle ZIP ``data`` and verify it (:func:`verify_bundle`); a bundle that
    does not read is a report whose ``bundle`` check failed, not an exception."""
    try:
        bundle = read_bundle(data)
    except BundleMalformed as error:
        skipped = "not checked: it relies on bundle, which failed"
        return AuditReport((Check("bundle", False, error.code, error.reason),
                            *(Check(name, False, None, skipped) for name in CHECKS[1:])))
    return verify_bundle(bundle, policy, tsa_roots=tsa_roots, package=package)


def verify_bundle(
    bundle: Bundle, policy: VerifyPolicy, *, tsa_roots: Roots = None, package: bytes | None = None
) -> AuditReport:
    """Run the checks of ``axis audit verify`` on ``bundle``: signatures and certificates
    are judged under ``policy`` (its ``at`` is the only time used); ``tsa_roots`` anchor
    the time-stamp (None: only the token's own signature is checked); ``package`` is
    checked as well as a bundled one. Never raises for a failing check."""
    audit = _Audit(bundle, policy, tsa_roots, package)
    checks: dict[str, Check] = {}
    for name in CHECKS:
        failed = [n for n in ("bundle", *_NEEDS.get(name, ())) if n in checks and not checks[n].ok]
        if failed:
            detail = f"not checked: it relies on {' and '.join(failed)}, which failed"
            checks[name] = Check(name, False, None, detail)
            continue
        code, detail = getattr(audit, "check_" + name)()
        checks[name] = Check(name, code is None, code, detail)
    return AuditReport(
        checks=tuple(checks.values()), subject=dict(bundle.subject), head=audit.head,
        timestamp=audit.stamp, receipts=tuple(v for _, v in audit.signed),
        receipt_indexes=tuple(e.index for e, _ in audit.signed), facts=tuple(audit.facts),
    )  # fmt: skip


Outcome = tuple[str | None, str]  # (the code of the first failure, or None; the detail)


class _Audit:
    """The state the checks share; each ``check_*`` returns its :data:`Outcome`."""

    def __init__(self, bundle: Bundle, policy: VerifyPolicy, tsa_roots: Roots,
                 package: bytes | None) -> None:
        self.bundle, self.policy, self.package = bundle, policy, package
        self.tsa_roots = None if tsa_roots is None else tuple(tsa_roots)
        self.entries = bundle.entries
        self.facts: list[str] = []
        self.hub_cert: x509.Certificate | None = None
        self.head: VerifiedHead | None = None
        self.stamp: VerifiedTimestamp | None = None
        self.proven: set[int] = set()
        self.signed: list[tuple[BundleEntry, VerifiedReceipt]] = []
        self.about: list[tuple[BundleEntry, VerifiedReceipt]] = []

    def check_bundle(self) -> Outcome:
        subject, entries = self.bundle.subject, self.entries
        try:
            self.hub_cert = load_certificates(self.bundle.hub_certificate)[0]
        except AxisError as error:
            return BundleMalformed.code, f"hub.pem: {error.reason}"
        problem = next((f"entry {e.index} has the unknown type {e.type!r}" for e in entries
                        if e.type not in ENTRY_TYPES), None)  # fmt: skip
        if len({e.index for e in entries}) != len(entries):
            problem = "two entries have one log index"
        elif not any(e.type == "receipt" for e in entries):
            problem = "the bundle holds no receipt"
        elif not (subject.get("document_id") or subject.get("consignment")):
            problem = "the subject names neither a document nor a consignment"
        elif bool(subject.get("document_id")) != bool(subject.get("document_organ")):
            problem = "the subject names a document without its organ, or an organ alone"
        if problem:
            return BundleMalformed.code, problem
        receipts = sum(e.type == "receipt" for e in entries)
        changes = _n(len(entries) - receipts, "registry change")
        return None, (f"the bundle reads: {_n(len(entries), 'log entry', 'log entries')} "
                      f"({_n(receipts, 'receipt')}, {changes}) about {_subject_text(subject)}")

    def check_head(self) -> Outcome:
        try:
            head = verify_head(self.bundle.head, self.policy)
        except AxisError as error:
            return HeadInvalid.code, error.reason
        if wrong := _not_the_hub(head.signer_subject, head.signer_fingerprint, self.hub_cert):
            return HeadInvalid.code, f"the tree head is {wrong}"
        self.head, stated = head, head.head
        when, root = utc_text(stated.timestamp), stated.root_hash.hex()
        self.facts.append(f"The hub ({head.signer_subject}) signed that at {when} its log held "
                          f"{stated.tree_size} entries, with root hash {root}.")
        return None, (f"signed by {head.signer_subject} (hub.pem), whose certificate is "
                      f"trusted: {stated.tree_size} entries, root {root}, at {when}")

    def check_timestamp(self) -> Outcome:
        if self.bundle.timestamp is None:
            return None, "the bundle has no time-stamp: the head's time is the hub's own word"
        try:
            stamp = verify_timestamp(self.bundle.timestamp, self.bundle.head, self.tsa_roots)
        except AxisError as error:
            return error.code, error.reason
        self.stamp, when = stamp, utc_text(stamp.gen_time)
        anchor = ("its certificate chains to the TSA trust anchors" if stamp.anchored else
                  "the TSA was NOT anchored (no TSA trust anchors given): only the token's "
                  "own signature was checked")  # fmt: skip
        self.facts.append(f"The time-stamp authority {stamp.tsa_subject} attests that the "
                          f"signed head existed at {when}"
                          + ("." if stamp.anchored else " (TSA not anchored)."))  # fmt: skip
        return None, (f"a granted RFC 3161 token over SHA-256 of head.xml, made at {when} by "
                      f"{stamp.tsa_subject}; {anchor}")

    def check_proofs(self) -> Outcome:
        assert self.head is not None
        size, root = self.head.head.tree_size, self.head.head.root_hash
        failures = []
        for e in self.entries:
            if e.index >= size:
                failures.append(f"{e.file} is at index {e.index}, beyond the head's {size} "
                                "entries")  # fmt: skip
            elif not verify_inclusion(e.index, size, leaf_hash(e.entry), e.path, root):
                failures.append(f"the inclusion proof of {e.file} (index {e.index}) does not "
                                f"lead to the head's root (size {size})")  # fmt: skip
            else:
                self.proven.add(e.index)
        if failures:
            return ProofInvalid.code, _first(failures)
        return None, (f"every entry ({len(self.entries)}) is in the log under the signed "
                      "head")

    def check_receipts(self) -> Outcome:
        failures = []
        for e in (e for e in self.entries if e.type == "receipt"):
            try:
                verified = verify_receipt(e.payload, self.policy)
            except AxisError as error:
                failures.append(f"{e.file}: {error.code}: {error.reason}")
                continue
            signer = (verified.signer_subject, verified.signer_fingerprint)
            if wrong := _not_the_hub(*signer, self.hub_cert):
                failures.append(f"{e.file} is {wrong}")
                continue
            self.signed.append((e, verified))
        if failures:
            return ReceiptInvalid.code, _first(failures)
        return None, (f"every receipt ({len(self.signed)}) is signed by the hub (hub.pem), "
                      "whose certificate is trusted")

    def check_subject(self) -> Outcome:
        subject = self.bundle.subject
        wrong = [(e, v.receipt) for e, v in self.signed if not _about(v.receipt, subject)]
        self.about = [(e, v) for e, v in self.signed if _about(v.receipt, subject)]
        for e, v in self.about:
            inclusion = (f" It is entry {e.index} of the hub's log, under the signed head."
                         if e.index in self.proven else "")  # fmt: skip
            self.facts.append(describe(v.receipt) + inclusion)
        if wrong:
            return SubjectMismatch.code, _first([
                f"{e.file} is about document {r.sender_organ}/{r.document_id} (consignment "
                f"{r.message_id}), not {_subject_text(subject)}" for e, r in wrong])
        return None, f"every receipt ({len(self.about)}) is about {_subject_text(subject)}"

    def check_registration(self) -> Outcome:
        changes = [(e.index, _change(e.payload)) for e in self.entries if e.type == "registry"]
        registry = [(i, c) for i, c in changes if c is not None]
        if unread := [i for i, c in changes if c is None]:
            return RegistrationUnproven.code, (f"the registry entry at index {unread[0]} does "
                                               "not read as a registry change")
        targets = [(e, v.receipt) for e, v in self.about
                   if v.receipt.event == "accepted" and v.receipt.kind == "edoc"]  # fmt: skip
        failures = []
        for e, receipt in targets:
            problem, fact = _registration(e.index, receipt, registry)
            failures += [problem] if problem else []
            self.facts += [fact] if fact else []
        if failures:
            return RegistrationUnproven.code, _first(failures)
        if not targets:
            return None, ("the bundle holds no accepted receipt of a document: there is no "
                          "registration to prove")
        return None, (f"for every accepted receipt ({len(targets)}), the sender's signing "
                      "certificate was registered to it before, and not revoked")

    def check_revocation(self) -> Outcome:
        changes = [c for e in self.entries if e.type == "registry"
                   if (c := _change(e.payload)) is not None]  # fmt: skip
        accepted = [v.receipt for _, v in self.about if v.receipt.event == "accepted"]
        anchors = (*self.policy.trust_anchors, *self.policy.pinned)
        code, details, facts = audit_revocation(self.bundle.revocation, accepted, changes, anchors)
        self.facts += facts
        return code, _first(details)

    def check_package(self) -> Outcome:
        packages = [(name, data) for name, data in (("package given", self.package),
                    ("bundled package.edxml", self.bundle.package)) if data is not None]
        if not packages:
            return None, "no package to check (none given, none bundled)"
        accepted = {v.receipt.package_sha256: v.receipt for _, v in self.about
                    if v.receipt.event == "accepted"}  # fmt: skip
        for name, data in packages:
            if (digest := sha256_hex(data)) not in accepted:
                return ReceiptPackageMismatch.code, (f"the {name} has SHA-256 {digest}, which "
                                                     "no accepted receipt names")
            self.facts.append(f"The {name} (SHA-256 {digest}) is the package the hub accepted "
                              f"in consignment {accepted[digest].message_id!r}.")
        return None, (f"the {' and the '.join(n for n, _ in packages)} is the package an "
                      "accepted receipt names")


def _n(count: int, word: str, plural: str = "") -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _first(failures: list[str]) -> str:
    more = len(failures) - 1
    return failures[0] + (f" (and {more} more)" if more else "")


def _not_the_hub(subject: str, signer: str, hub: x509.Certificate | None) -> str | None:
    """Why a signature by ``signer`` is not the hub's of the bundle (None when it is)."""
    if hub is None:
        return "not checked against a hub certificate (hub.pem does not read)"
    if signer != fingerprint(hub):
        return (f"signed by {subject} (sha256 {signer}), not by the hub certificate of the "
                f"bundle (sha256 {fingerprint(hub)})")  # fmt: skip
    organ = organ_id_of(hub)
    if organ is not None:
        return f"signed by the agency certificate of {organ}, not by the hub"
    return None


def _about(receipt: Receipt, subject: dict[str, str | None]) -> bool:
    if subject.get("consignment") and receipt.message_id == subject["consignment"]:
        return True
    if not subject.get("document_id") or receipt.document_id != subject["document_id"]:
        return False
    organs = {receipt.sender_organ}
    if receipt.kind == "status" and receipt.event != "status":
        organs.update(receipt.recipients)  # a recipient's status goes to the document's organ
    return subject.get("document_organ") in organs


def _change(payload: bytes) -> dict[str, Any] | None:
    try:
        change = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return change if isinstance(change, dict) and isinstance(change.get("change"), str) else None


def _registration(
    index: int, receipt: Receipt, registry: list[tuple[int, dict[str, Any]]]
) -> tuple[str | None, str | None]:
    """(why the registration is unproven, or the fact it proves) for the accepted
    receipt at ``index``."""
    fp, system, what = receipt.signer_fingerprint, receipt.sender_system, receipt.message_id
    if not fp:
        return f"the accepted receipt of consignment {what!r} names no signer fingerprint", None
    revoked = [i for i, c in registry if c["change"] == "certificate_revoked"
               and c.get("fingerprint") == fp and i < index]  # fmt: skip
    if revoked:
        return (f"certificate {fp} was revoked at log index {revoked[0]}, before the hub "
                f"accepted consignment {what!r} at index {index}"), None  # fmt: skip
    added = [(i, c) for i, c in registry if _adds(c, system, fp)]
    before = [(i, c) for i, c in added if i < index]
    if not before:
        later = f" (only at index {added[0][0]}, after it)" if added else ""
        return (f"no certificate_added entry registers certificate {fp} to system {system!r} "
                f"before the receipt at index {index}{later}"), None  # fmt: skip
    at, change = before[-1]
    named = f" ({change['at']})" if isinstance(change.get("at"), str) else ""
    if isinstance(pem := change.get("certificate"), str):
        fp = f"{fp} ({load_certificate(pem.encode()).subject.rfc4514_string()})"
    return None, (f"Certificate {fp}, which signed consignment {what!r}, was registered to "
                  f"system {system!r} at log index {at}{named}, before the hub accepted it at "
                  f"index {index}; no revocation of it before then is in the bundle.")


def _adds(change: dict[str, Any], system: str, fp: str) -> bool:
    if (change["change"], change.get("system_id"), change.get("fingerprint")) != (
        "certificate_added", system, fp):  # fmt: skip
        return False
    pem = change.get("certificate")
    if pem is None:
        return True
    try:  # a certificate that is not the one fingerprinted proves nothing
        return isinstance(pem, str) and fingerprint(load_certificate(pem.encode())) == fp
    except AxisError:
        return False


def _subject_text(subject: dict[str, str | None]) -> str:
    parts = []
    if subject.get("document_id"):
        parts.append(f"document {subject.get('document_organ')}/{subject['document_id']}")
    if subject.get("consignment"):
        parts.append(f"consignment {subject['consignment']}")
    return " or ".join(parts) or "nothing"


__all__ = ["CHECKS", "AuditReport", "Check", "Outcome", "Roots", "audit_archive", "verify_bundle"]
