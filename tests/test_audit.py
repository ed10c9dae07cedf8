"""``axis audit``: evidence bundles and tree-head consistency, checked offline.

Bundles are built here from scratch with the pure pieces (signed receipts, canonical
registry entries, RFC 9162 proofs, a signed head), so every test states its log.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from axis.commands.audit import app
from axis.evidence import merkle
from axis.evidence.audit import (
    CHECKS,
    AuditReport,
    audit_archive,
    verify_bundle,
)
from axis.evidence.bundle import (
    Bundle,
    BundleEntry,
    canonical_json,
    entry_bytes,
    read_bundle,
    write_bundle,
)
from axis.evidence.consistency import verify_consistency_files
from axis.evidence.errors import BundleMalformed, HeadInvalid, Inconsistent
from axis.evidence.heads import TreeHead, sign_head
from axis.receipts import sign_receipt
from routing.contract import utc_text
from routing.values import Receipt, sha256_hex
from signing.keys import SigningKey, fingerprint
from signing.pki import Credential
from signing.verify import VerifyPolicy
from tests.test_signing_helpers import LATER, NOW, SMALL_PACKAGE, SigningPki

REPO = Path(__file__).resolve().parents[1]
ORGAN, OTHER_ORGAN = "000.00.00.G22", "000.00.00.H41"
DOC = "000.00.00.G22,2025/06/01,1/VPCP"
SYSTEM = "vpcp-docs"
SUBJECT: dict[str, str | None] = {"document_organ": ORGAN, "document_id": DOC,
                                  "consignment": "msg-42"}  # fmt: skip
Items = list[tuple[str, bytes]]


def receipt(event: str = "accepted", **changes: Any) -> Receipt:
    fields: dict[str, Any] = {
        "receipt_id": f"rcpt-{event}", "event": event, "message_id": "msg-42",
        "package_sha256": sha256_hex(SMALL_PACKAGE), "hub_time": NOW,
        "sender_system": SYSTEM, "sender_organ": ORGAN, "document_id": DOC,
        "recipients": (OTHER_ORGAN,),
    }  # fmt: skip
    fields.update(changes)
    return Receipt(**fields)


def registry(change: str, system_id: str = SYSTEM, **fields: Any) -> tuple[str, bytes]:
    data = {"change": change, "at": utc_text(NOW), "system_id": system_id, **fields}
    return "registry", canonical_json(data)


def added(cred: Credential, system_id: str = SYSTEM) -> tuple[str, bytes]:
    return registry("certificate_added", system_id, fingerprint=fingerprint(cred.certificate),
                    certificate=cred.cert_pem.decode())  # fmt: skip


@dataclass(frozen=True)
class World:
    pki: SigningPki
    hub: SigningKey
    items: Items  # the standard log: (type, payload) by index
    include: tuple[int, ...]  # the entries of its bundle

    @property
    def policy(self) -> VerifyPolicy:
        return VerifyPolicy(at=LATER, trust_anchors=self.pki.anchors)

    def signed(self, event: str = "accepted", key: SigningKey | None = None, **kw: Any) -> bytes:
        return sign_receipt(receipt(event, **kw), key or self.hub)


@pytest.fixture(scope="module")
def world(pki: SigningPki) -> World:
    hub = pki.hub.signing_key()
    fp = fingerprint(pki.agency_rsa.certificate)
    w = World(pki, hub, [], (0, 1, 3, 4, 6))
    w.items.extend([
        registry("system_registered", name="Văn phòng Chính phủ"),                      # 0
        added(pki.agency_rsa),                                                           # 1
        ("receipt", w.signed(document_id="another", sender_organ=OTHER_ORGAN,
                             message_id="msg-other")),                                   # 2
        ("receipt", w.signed(signer_fingerprint=fp)),                                    # 3
        ("receipt", w.signed("delivered")),                                              # 4
        registry("organ_served", "nghe-an", organs=[OTHER_ORGAN]),                       # 5
        ("receipt", w.signed("status", status_code="03", message_id="msg-status-1",
                             recipient_system="nghe-an")),                               # 6
        ("receipt", w.signed("rejected", message_id="msg-bad", error_code="x.y",
                             reason="no")),                                              # 7
        added(pki.agency_ec, "nghe-an"),                                                 # 8
        registry("system_suspended", "nghe-an"),                                         # 9
        registry("system_resumed", "nghe-an"),                                           # 10
    ])  # fmt: skip
    return w


def leaves(items: Items) -> list[bytes]:
    return [merkle.leaf_hash(entry_bytes(t, p)) for t, p in items]


def hash_of(items: Items) -> merkle.SubtreeHash:
    hashes = leaves(items)
    return lambda start, end: merkle.root_of(hashes[start:end])


def head_of(items: Items, key: SigningKey, size: int | None = None) -> bytes:
    size = len(items) if size is None else size
    return sign_head(TreeHead(size, merkle.root_of(leaves(items)[:size]), NOW), key)


def make_bundle(w: World, items: Items | None = None, include: Sequence[int] | None = None,
                **changes: Any) -> Bundle:  # fmt: skip
    items = w.items if items is None else items
    include = w.include if include is None else include
    entries = tuple(BundleEntry(items[i][0], i, items[i][1],
                                tuple(merkle.inclusion_proof(i, len(items), hash_of(items))))
                    for i in sorted(include))  # fmt: skip
    fields: dict[str, Any] = {
        "subject": dict(SUBJECT), "head": head_of(items, w.hub), "timestamp": None,
        "hub_certificate": w.pki.hub.cert_pem, "entries": entries, "package": None,
        "exported_at": NOW,
    }  # fmt: skip
    return Bundle(**{**fields, **changes})


def checks(report: AuditReport) -> dict[str, tuple[bool, str | None]]:
    return {c.check: (c.ok, c.code) for c in report.checks}


def first_code(report: AuditReport) -> str | None:
    return report.error.code if report.error else None


# -- a good bundle, and the ZIP ---------------------------------------------------------


def test_a_good_bundle_verifies_and_says_what_it_proves(world: World) -> None:
    report = verify_bundle(make_bundle(world, package=SMALL_PACKAGE), world.policy)
    assert report.ok, report.to_dict()["checks"]
    assert [c.check for c in report.checks] == list(CHECKS)
    assert report.receipt_indexes == (3, 4, 6)
    facts = "\n".join(report.facts)
    assert f"the hub accepted document {DOC!r} (consignment 'msg-42') from {ORGAN}" in facts
    assert "arrived at 000.00.00.H41" in facts and "routed status 03" in facts
    assert (f"Certificate {fingerprint(world.pki.agency_rsa.certificate)} (CN=Văn phòng Chính "
            f"phủ,UID={ORGAN}), which signed consignment 'msg-42', was registered to system "
            f"'{SYSTEM}' at log index 1") in facts  # fmt: skip
    assert "It is entry 3 of the hub's log" in facts and "its log held 11 entries" in facts
    assert "bundled package.edxml" in facts
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and "error" not in data
    assert data["head"]["tree_size"] == 11
    assert data["head"]["signer"]["fingerprint"] == fingerprint(world.pki.hub.certificate)
    assert [r["index"] for r in data["receipts"]] == [3, 4, 6]
    assert data["receipts"][2]["status_code"] == "03"
    assert all(set(c) == {"check", "ok", "detail"} for c in data["checks"])


def test_write_then_read_is_the_same_bundle_and_the_same_bytes(world: World) -> None:
    bundle = make_bundle(world, package=SMALL_PACKAGE, timestamp=b"\x30\x03tsr")
    data = write_bundle(bundle)
    assert read_bundle(data) == bundle
    assert write_bundle(read_bundle(data)) == data == write_bundle(bundle)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        manifest = json.loads(archive.read("manifest.json"))
    assert names == sorted(names)
    assert set(names) == {"manifest.json", "head.xml", "head.tsr", "hub.pem", "package.edxml",
                          "entries/0000.registry.json", "entries/0001.registry.json",
                          "entries/0003.receipt.xml", "entries/0004.receipt.xml",
                          "entries/0006.receipt.xml"}  # fmt: skip
    assert manifest["format"] == "axis-evidence/1" and manifest["subject"] == SUBJECT
    assert manifest["entries"][2] == {"file": "entries/0003.receipt.xml", "type": "receipt",
                                      "index": 3, "path": [h.hex() for h in
                                                           bundle.entries[2].path]}
    assert audit_archive(write_bundle(replace(bundle, timestamp=None)), world.policy).ok


# -- any changed byte fails with the code of what broke ---------------------------------


def _head_text_positions(head: bytes) -> list[int]:
    # Bytes of element text in the signed body: c14n ignores some bytes elsewhere (the XML
    # declaration, whitespace inside tags), and base64's last digit may carry unused bits.
    end = head.index(b"<ds:Signature")
    return [i for i in range(end) if head[i:i + 1].isalnum()
            and head.rfind(b">", 0, i) > head.rfind(b"<", 0, i)]  # fmt: skip


def _flip(data: bytes, at: int, new: int) -> bytes:
    return data[:at] + bytes([new]) + data[at + 1:]


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_any_changed_byte_fails_naming_what_broke(world: World, data: st.DataObject) -> None:
    bundle = make_bundle(world)
    target = data.draw(st.sampled_from(["receipt", "proof", "head"]), label="target")
    entries = list(bundle.entries)
    if target == "receipt":
        k = data.draw(st.sampled_from([k for k, e in enumerate(entries) if e.type == "receipt"]))
        payload = entries[k].payload
        at = data.draw(st.integers(0, len(payload) - 1), label="position")
        new = data.draw(st.integers(0, 255).filter(lambda b: b != payload[at]))
        entries[k] = replace(entries[k], payload=_flip(payload, at, new))
        expected = {"audit.proof_invalid", "audit.receipt_invalid"}
    elif target == "proof":
        k = data.draw(st.integers(0, len(entries) - 1), label="entry")
        path = list(entries[k].path)
        h = data.draw(st.integers(0, len(path) - 1), label="hash")
        at, mask = data.draw(st.integers(0, 31)), data.draw(st.integers(1, 255))
        path[h] = _flip(path[h], at, path[h][at] ^ mask)
        entries[k] = replace(entries[k], path=tuple(path))
        expected = {"audit.proof_invalid"}
    else:
        at = data.draw(st.sampled_from(_head_text_positions(bundle.head)), label="position")
        new = data.draw(st.sampled_from(b"0aZ9x").filter(lambda c: c != bundle.head[at]))
        bundle = replace(bundle, head=_flip(bundle.head, at, new))
        expected = {"audit.head_invalid"}
    report = verify_bundle(replace(bundle, entries=tuple(entries)), world.policy)
    assert not report.ok
    assert first_code(report) in expected


@pytest.mark.parametrize("field", ["SignatureValue", "DigestValue", "X509Certificate"])
def test_a_changed_signature_of_the_head_is_head_invalid(world: World, field: str) -> None:
    bundle = make_bundle(world)
    at = bundle.head.index(f"<ds:{field}>".encode()) + len(field) + 6  # its first digit
    new = ord("A") if bundle.head[at] != ord("A") else ord("B")
    report = verify_bundle(replace(bundle, head=_flip(bundle.head, at, new)), world.policy)
    assert first_code(report) == "audit.head_invalid"
    assert checks(report)["proofs"] == (False, None)  # not checked without a head


def test_a_changed_hex_digit_of_the_manifest_is_proof_invalid(world: World) -> None:
    data = write_bundle(make_bundle(world))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(files["manifest.json"])
    digit = manifest["entries"][1]["path"][0][5]
    manifest["entries"][1]["path"][0] = (manifest["entries"][1]["path"][0][:5]
                                         + ("0" if digit != "0" else "1")
                                         + manifest["entries"][1]["path"][0][6:])  # fmt: skip
    files["manifest.json"] = json.dumps(manifest).encode()
    report = audit_archive(_zip(files), world.policy)
    assert first_code(report) == "audit.proof_invalid"
    assert "entries/0001.registry.json (index 1)" in (report.error.detail if report.error else "")


# -- registration, subject, signers, package ----------------------------------------------


def _accepted(w: World) -> tuple[str, bytes]:
    return "receipt", w.signed(signer_fingerprint=fingerprint(w.pki.agency_rsa.certificate))


REGISTRATION_CASES: dict[str, tuple[Callable[[World], Items], str]] = {
    "no certificate_added": (lambda w: [registry("system_registered", name="x"), _accepted(w)],
                             "no certificate_added entry"),
    "added after the receipt": (lambda w: [_accepted(w), added(w.pki.agency_rsa)],
                                "only at index 1, after it"),
    "revoked before the receipt": (
        lambda w: [added(w.pki.agency_rsa), registry("certificate_revoked", fingerprint=
                   fingerprint(w.pki.agency_rsa.certificate)), _accepted(w)],
        "was revoked at log index 1"),
    "added to another system": (lambda w: [added(w.pki.agency_rsa, "nghe-an"), _accepted(w)],
                                "no certificate_added entry"),
    "another certificate's PEM": (
        lambda w: [registry("certificate_added", fingerprint=fingerprint(
            w.pki.agency_rsa.certificate), certificate=w.pki.agency_ec.cert_pem.decode()),
                   _accepted(w)], "no certificate_added entry"),
    "no signer fingerprint": (lambda w: [added(w.pki.agency_rsa), ("receipt", w.signed())],
                              "names no signer fingerprint"),
}  # fmt: skip


@pytest.mark.parametrize("case", REGISTRATION_CASES)
def test_registration_must_be_proven(world: World, case: str) -> None:
    build, reason = REGISTRATION_CASES[case]
    items = build(world)
    report = verify_bundle(make_bundle(world, items, range(len(items))), world.policy)
    assert first_code(report) == "audit.registration_unproven"
    assert [c.check for c in report.checks if not c.ok] == ["registration"]
    assert reason in (report.error.detail if report.error else "")


def test_a_receipt_about_another_document_is_a_subject_mismatch(world: World) -> None:
    report = verify_bundle(make_bundle(world, include=(0, 1, 2, 3)), world.policy)
    assert first_code(report) == "audit.subject_mismatch"
    assert [c.check for c in report.checks if not c.ok] == ["subject"]
    tampered = make_bundle(world, include=(0, 2, 3))  # and the registration is not shown
    assert [c.code for c in verify_bundle(tampered, world.policy).checks if not c.ok] == [
        "audit.subject_mismatch", "audit.registration_unproven"]


def test_receipts_match_by_consignment_and_a_recipients_status(world: World) -> None:
    status = world.signed(kind="status", message_id="msg-st", sender_organ=OTHER_ORGAN,
                          sender_system="nghe-an", recipients=(ORGAN,))  # fmt: skip
    items = [*world.items, ("receipt", status)]
    assert verify_bundle(make_bundle(world, items, (*world.include, 11)), world.policy).ok
    only = {"document_organ": None, "document_id": None, "consignment": "msg-bad"}
    assert verify_bundle(make_bundle(world, include=(7,), subject=only), world.policy).ok


def test_signers_other_than_the_hub_are_refused(world: World) -> None:
    pki = world.pki
    agency = pki.agency_ec.signing_key()
    by_agency = make_bundle(world, head=head_of(world.items, agency))
    report = verify_bundle(by_agency, world.policy)
    assert first_code(report) == "audit.head_invalid" and "UID=000.00.00.H41" in (
        report.error.detail if report.error else "")  # fmt: skip
    as_hub = verify_bundle(replace(by_agency, hub_certificate=pki.agency_ec.cert_pem),
                           world.policy)  # fmt: skip
    assert checks(as_hub)["head"] == (False, "audit.head_invalid")
    assert checks(as_hub)["receipts"] == (False, "audit.receipt_invalid")
    assert "agency certificate of 000.00.00.H41" in as_hub.checks[1].detail
    items = [*world.items, ("receipt", world.signed("delivered", key=agency))]
    report = verify_bundle(make_bundle(world, items, (*world.include, 11)), world.policy)
    assert first_code(report) == "audit.receipt_invalid"
    stranger = make_bundle(world, head=head_of(world.items, pki.stranger.signing_key()))
    assert first_code(verify_bundle(stranger, world.policy)) == "audit.head_invalid"


def test_the_package_must_be_the_accepted_one(world: World) -> None:
    bundle = make_bundle(world)
    good = verify_bundle(bundle, world.policy, package=SMALL_PACKAGE)
    assert good.ok and "The package given (SHA-256" in good.facts[-1]
    for report in (verify_bundle(bundle, world.policy, package=b"<edXML>other</edXML>"),
                   verify_bundle(replace(bundle, package=b"other"), world.policy)):
        assert first_code(report) == "receipt.package_mismatch"


# -- the bundle must read -------------------------------------------------------------------


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def _files(world: World) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(write_bundle(make_bundle(world)))) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _manifest(world: World, **changes: Any) -> dict[str, bytes]:
    files = _files(world)
    files["manifest.json"] = json.dumps({**json.loads(files["manifest.json"]), **changes}
                                        ).encode()  # fmt: skip
    return files


MALFORMED: dict[str, tuple[Callable[[World], bytes], str]] = {
    "garbage": (lambda w: b"\x00garbage, not a zip", "not a ZIP file"),
    "empty": (lambda w: b"", "not a ZIP file"),
    "no manifest": (lambda w: _zip({k: v for k, v in _files(w).items()
                                    if k != "manifest.json"}), "no manifest.json"),
    "manifest not JSON": (lambda w: _zip({**_files(w), "manifest.json": b"{nope"}), "not JSON"),
    "unknown format": (lambda w: _zip(_manifest(w, format="axis-evidence/2")), "unknown bundle"),
    "missing file": (lambda w: _zip({k: v for k, v in _files(w).items() if k != "head.xml"}),
                     "names 'head.xml', which the bundle does not hold"),
    "path escapes": (lambda w: _zip({**_files(w), "../../etc/passwd": b"x"}), "escapes"),
    "manifest names an escape": (lambda w: _zip(_manifest(w, head="../head.xml")), "escapes"),
    "too many entries": (lambda w: _zip(_manifest(w, entries=[{}] * 10_001)), "10001 entries"),
    "bad hash": (lambda w: _zip(_manifest(w, entries=[
        {"file": "head.xml", "type": "receipt", "index": 0, "path": ["AB" * 32]}])), "hex"),
    "index twice": (lambda w: _zip(_manifest(w, entries=[
        {"file": "head.xml", "type": "receipt", "index": i, "path": []} for i in (1, 1)])),
        "one log index twice"),
    "subject lacks a key": (lambda w: _zip(_manifest(w, subject={"document_id": DOC})),
                            "subject has no 'document_organ'"),
    "bad time": (lambda w: _zip(_manifest(w, exported_at="yesterday")), "not a UTC timestamp"),
}  # fmt: skip


@pytest.mark.parametrize("case", MALFORMED)
def test_what_is_not_a_bundle_is_bundle_malformed(world: World, case: str) -> None:
    build, reason = MALFORMED[case]
    data = build(world)
    with pytest.raises(BundleMalformed, match=reason):
        read_bundle(data)
    report = audit_archive(data, world.policy)
    assert first_code(report) == "audit.bundle_malformed"
    assert [c.check for c in report.checks if c.ok] == []


def test_a_duplicate_member_is_bundle_malformed(world: World) -> None:
    files = _files(world)
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = _duplicate(files)
    with pytest.raises(BundleMalformed, match="twice"):
        read_bundle(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])  # fmt: skip
@given(changes=st.lists(st.tuples(st.integers(0, 2**32), st.integers(0, 255)), min_size=1,
                        max_size=3))  # fmt: skip
def test_a_damaged_zip_is_refused_or_audited_never_a_crash(
    world: World, good_zip: bytes, changes: list[tuple[int, int]]
) -> None:
    data = bytearray(good_zip)
    for at, value in changes:
        data[at % len(data)] = value
    with contextlib.suppress(BundleMalformed):
        read_bundle(bytes(data))
    report = audit_archive(bytes(data), world.policy)
    assert report.ok or report.error is not None


@pytest.fixture(scope="module")
def good_zip(world: World) -> bytes:
    return write_bundle(make_bundle(world))


def _duplicate(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("head.xml", b"<other/>")
    return out.getvalue()


# -- the time-stamp -------------------------------------------------------------------------


def test_a_time_stamped_head(world: World, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    from axis.evidence.tsa_client import request_timestamp
    from tests.tsa import LocalTsa

    bundle = make_bundle(world)
    with LocalTsa() as tsa:
        token = request_timestamp(tsa.url, bundle.head)
        roots = [tsa.ca_certificate]
        stamped = replace(bundle, timestamp=token)
        (tmp_path / "ca.pem").write_bytes(world.pki.ca.cert_pem)
        (tmp_path / "stamped.zip").write_bytes(write_bundle(stamped))
        result = audit("verify", tmp_path / "stamped.zip", "--trust", tmp_path / "ca.pem",
                       "--tsa-trust", tsa.ca_pem_path, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["timestamp"]["anchored"] is True
    anchored = verify_bundle(stamped, world.policy, tsa_roots=roots)
    assert anchored.ok and anchored.timestamp is not None and anchored.timestamp.anchored
    assert "attests that the signed head existed at" in "\n".join(anchored.facts)
    alone = verify_bundle(stamped, world.policy)
    assert alone.ok and "NOT anchored" in alone.checks[2].detail
    wrong_roots = verify_bundle(stamped, world.policy, tsa_roots=[world.pki.ca.certificate])
    assert first_code(wrong_roots) == "timestamp.invalid"
    other_head = replace(stamped, head=make_bundle(world).head)  # re-signed: other bytes
    assert first_code(verify_bundle(other_head, world.policy)) == "timestamp.invalid"
    assert read_bundle(write_bundle(stamped)).timestamp == token


# -- consistency between heads ----------------------------------------------------------------


def _proof(items: Items, old: int, new: int) -> list[bytes]:
    return merkle.consistency_proof(old, new, hash_of(items))


def test_a_head_extending_another_is_consistent(world: World) -> None:
    items = world.items
    for old in (0, 1, 4, 6, 11):
        a, b = head_of(items, world.hub, old), head_of(items, world.hub)
        old_head, new_head = verify_consistency_files(a, b, _proof(items, old, 11), world.policy)
        assert (old_head.head.tree_size, new_head.head.tree_size) == (old, 11)


def test_a_forked_log_is_inconsistent(world: World) -> None:
    items = world.items
    forked = [*items[:2], ("receipt", world.signed(message_id="msg-forged")), *items[3:]]
    cases = [
        (head_of(items, world.hub, 6), head_of(forked, world.hub), _proof(forked, 6, 11)),
        (head_of(items, world.hub, 6), head_of(forked, world.hub), _proof(items, 6, 11)),
        (head_of(items, world.hub), head_of(forked, world.hub), []),
        (head_of(items, world.hub), head_of(items, world.hub, 6), []),
    ]
    for old, new, proof in cases:
        with pytest.raises(Inconsistent):
            verify_consistency_files(old, new, proof, world.policy)
    with pytest.raises(HeadInvalid, match="agency certificate"):
        verify_consistency_files(head_of(items, world.pki.agency_ec.signing_key(), 6),
                                 head_of(items, world.hub), _proof(items, 6, 11), world.policy)


# -- the command line -----------------------------------------------------------------------


def audit(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def files(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("audit")
    items, bundle = world.items, make_bundle(world)
    forked = [*items[:2], ("receipt", world.signed(message_id="msg-forged")), *items[3:]]
    tampered = replace(bundle, entries=(replace(bundle.entries[0], payload=b"{}"),
                                        *bundle.entries[1:]))  # fmt: skip
    written = {
        "ca.pem": world.pki.ca.cert_pem, "good.zip": write_bundle(bundle),
        "tampered.zip": write_bundle(tampered), "package.edxml": SMALL_PACKAGE,
        "old.xml": head_of(items, world.hub, 6), "new.xml": head_of(items, world.hub),
        "forked.xml": head_of(forked, world.hub),
        "proof.json": json.dumps({"old_size": 6, "new_size": 11, "path": [
            h.hex() for h in _proof(items, 6, 11)]}).encode(),
        "forked-proof.json": json.dumps({"old_size": 6, "new_size": 11, "path": [
            h.hex() for h in _proof(forked, 6, 11)]}).encode(),
        "other-sizes.json": json.dumps({"old_size": 5, "new_size": 11, "path": []}).encode(),
    }  # fmt: skip
    for name, data in written.items():
        (base / name).write_bytes(data)
    return base


def test_cli_verify_prints_the_checks_and_the_facts(files: Path) -> None:
    result = audit("verify", files / "good.zip", "--trust", files / "ca.pem",
                   "--package", files / "package.edxml")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "good.zip: verified" in result.stdout
    assert "  ✓ registration  for every accepted receipt (1)" in result.stdout
    assert "what the bundle proves:" in result.stdout and DOC in result.stdout


def test_cli_verify_fails_with_exit_1_and_the_code(files: Path) -> None:
    result = audit("verify", files / "tampered.zip", "--trust", files / "ca.pem")
    assert result.exit_code == 1
    assert "✗ proofs" in result.stdout and "NOT verified" in result.stdout
    assert result.stderr.startswith("error: audit.proof_invalid: ")
    data = json.loads(audit("verify", files / "tampered.zip", "--trust", files / "ca.pem",
                            "--json").stdout)  # fmt: skip
    assert data["ok"] is False and data["file"].endswith("tampered.zip")
    assert data["error"]["code"] == "audit.proof_invalid" and data["error"]["check"] == "proofs"
    assert [c["check"] for c in data["checks"]] == list(CHECKS)
    assert {"head", "timestamp", "receipts", "facts", "subject"} <= set(data)
    good = json.loads(audit("verify", files / "good.zip", "--trust", files / "ca.pem",
                            "--json").stdout)  # fmt: skip
    assert good["ok"] is True and "error" not in good and good["head"]["tree_size"] == 11


@pytest.mark.parametrize(("args", "code"), [
    (["verify", "gone.zip", "--trust", "ca.pem"], "envelope.invalid_metadata"),
    (["verify", "good.zip", "--trust", "ca.pem", "--package", "ca.pem"],
     "receipt.package_mismatch"),
    (["verify", "package.edxml", "--trust", "ca.pem"], "audit.bundle_malformed"),
    (["consistency", "old.xml", "forked.xml", "--proof", "forked-proof.json", "--trust",
      "ca.pem"], "audit.inconsistent"),
    (["consistency", "old.xml", "new.xml", "--proof", "other-sizes.json", "--trust",
      "ca.pem"], "audit.proof_invalid"),
    (["consistency", "old.xml", "new.xml", "--proof", "ca.pem", "--trust", "ca.pem"],
     "audit.proof_invalid"),
    (["consistency", "good.zip", "new.xml", "--proof", "proof.json", "--trust", "ca.pem"],
     "audit.head_invalid"),
])  # fmt: skip
def test_cli_refusals_have_their_code(files: Path, args: list[str], code: str) -> None:
    paths = [files / a if "." in a else a for a in args]
    result = audit(*paths, "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["error"]["code"] == code


def test_cli_consistency(files: Path) -> None:
    result = audit("consistency", files / "old.xml", files / "new.xml", "--proof",
                   files / "proof.json", "--trust", files / "ca.pem")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "the head of size 11 extends the head of size 6" in result.stdout
    data = json.loads(audit("consistency", files / "old.xml", files / "new.xml", "--proof",
                            files / "proof.json", "--trust", files / "ca.pem", "--json").stdout)
    assert data["ok"] is True and data["consistent"] is True
    assert (data["old"]["tree_size"], data["new"]["tree_size"]) == (6, 11)
    # No --proof: it is asked of the hub home, and there is none here.
    missing = audit("consistency", files / "old.xml", files / "new.xml", "--trust",
                    files / "ca.pem", "--home", files / "no-home", "--json")  # fmt: skip
    assert missing.exit_code == 3
    assert json.loads(missing.stdout)["error"]["code"] == "config.home_missing"


def test_cli_help_has_examples() -> None:
    assert "axis audit verify evidence-7816.zip --trust ca.pem" in audit("verify", "--help").stdout
    assert "--proof proof.json --trust ca.pem" in audit("consistency", "--help").stdout
    assert "axis audit consistency old.xml new.xml" in audit("consistency", "--help").stdout


def test_cli_as_a_real_process(files: Path) -> None:
    def run(*args: object) -> subprocess.CompletedProcess[str]:
        code = "from axis.commands.audit import app; app()"
        return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=REPO,
                              capture_output=True, text=True, timeout=120, check=False)

    done = run("verify", files / "good.zip", "--trust", files / "ca.pem")
    assert done.returncode == 0, done.stderr
    assert "✓ head" in done.stdout
    bad = run("verify", files / "tampered.zip", "--trust", files / "ca.pem")
    assert bad.returncode == 1 and bad.stderr.startswith("error: audit.proof_invalid: ")


def test_xmlsec1_verifies_a_signed_head(world: World, tmp_path: Path) -> None:
    xmlsec1 = shutil.which("xmlsec1")
    if xmlsec1 is None:
        pytest.skip("xmlsec1 is not installed")
    (tmp_path / "ca.pem").write_bytes(world.pki.ca.cert_pem)
    head = head_of(world.items, world.hub)
    for name, data, ok in (("head.xml", head, True),
                           ("forged.xml", head.replace(b"TreeSize>11<", b"TreeSize>12<"), False)):
        (tmp_path / name).write_bytes(data)
        done = subprocess.run([xmlsec1, "--verify", "--trusted-pem", str(tmp_path / "ca.pem"),
                               str(tmp_path / name)], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert (done.returncode == 0) is ok, done.stderr
