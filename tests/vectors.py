"""Writes the wire-contract test vectors in docs/test-vectors/ (run by hand, rarely):

    .venv/bin/python -m tests.vectors docs/test-vectors

A throw-away PKI (keys generated here and never written), a signed document package and
a status package (RSA agency keys), the hub's receipts for them (ECDSA P-256), a
duplicate-conflict receipt, a signed tree head, altered copies of each, and
``vectors.json`` saying what each file must verify to. ``tests/test_vectors.py`` checks
the committed files with the current code and with xmlsec1.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from axis.evidence import merkle
from axis.evidence.heads import TreeHead, sign_head
from axis.receipts import sign_receipt
from envelopes.builder import build_package, document_from_metadata, status_package
from envelopes.model import Organization
from envelopes.status_codes import StatusCode
from routing.values import Receipt, sha256_hex
from signing.keys import fingerprint
from signing.pki import issue_agency, issue_hub, new_ca
from signing.sign import sign_package

# Fixed so that re-running gives the same documents (signatures differ: ECDSA is random).
AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
VALID_DAYS = 365 * 30
G22, H41 = ("000.00.00.G22", "Văn phòng Chính phủ"), ("000.00.00.H41", "UBND tỉnh Nghệ An")


def _pem(cert: Any) -> bytes:
    return bytes(cert.public_bytes(serialization.Encoding.PEM))


def _altered(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data, old
    return data.replace(old, new, 1)


def write_vectors(out: Path) -> list[dict[str, Any]]:
    """Write every vector into ``out``; the entries of ``vectors.json``."""
    ca = new_ca("Axis test-vector CA", AT, valid_days=VALID_DAYS)
    hub = issue_hub(ca, AT, valid_days=VALID_DAYS)
    until = AT + timedelta(days=VALID_DAYS)
    g22 = issue_agency(ca, *G22, AT, not_after=until)
    h41 = issue_agency(ca, *H41, AT, not_after=until)
    files: dict[str, bytes] = {"ca.pem": _pem(ca.certificate), "hub.pem": _pem(hub.certificate),
                               "agency-g22.pem": _pem(g22.certificate),
                               "agency-h41.pem": _pem(h41.certificate)}  # fmt: skip
    document = document_from_metadata({
        "from": {"organ_id": G22[0], "organ_name": G22[1]},
        "to": [{"organ_id": H41[0], "organ_name": H41[1]}],
        "document_id": f"{G22[0]},{AT:%Y/%m/%d},7816/VPCP-TTĐT",
        "code": {"number": "7816", "notation": "VPCP-TTĐT"},
        "promulgation_date": date(2026, 12, 1).isoformat(), "type_name": "Công văn",
        "subject": "V/v kết nối, liên thông phần mềm quản lý văn bản"}, [])  # fmt: skip
    package = sign_package(build_package(document), g22.signing_key())
    status = sign_package(build_package(status_package(
        Organization(H41[0], H41[1]), document, StatusCode.ACCEPTED, "Đã vào sổ", AT)),
        h41.signing_key())  # fmt: skip
    accepted = Receipt(receipt_id="6f0b6a5e-4d0e-4c55-9a0e-3f1f7a4d2b10", event="accepted",
                       message_id="vector-consignment-1", package_sha256=sha256_hex(package),
                       hub_time=AT + timedelta(seconds=1), sender_system=G22[0],
                       sender_organ=G22[0], document_id=document.document_id,
                       recipients=(H41[0],), signer_fingerprint=fingerprint(g22.certificate))
    conflict = Receipt(receipt_id="0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e", event="rejected",
                       message_id="vector-consignment-1",
                       package_sha256=sha256_hex(b"other bytes under the same consignment id"),
                       hub_time=AT + timedelta(seconds=2), sender_system=G22[0],
                       error_code="submission.duplicate_conflict",
                       reason="consignment 'vector-consignment-1' was submitted before with "
                       "different content")  # fmt: skip
    receipt = sign_receipt(accepted, hub.signing_key())
    leaves = [merkle.leaf_hash(b"receipt\n" + receipt)]
    head = sign_head(TreeHead(1, merkle.root_of(leaves), AT + timedelta(seconds=3)),
                     hub.signing_key())  # fmt: skip
    files.update({
        "package.signed.edxml": package,
        "package.altered.edxml": _altered(package, b"7816/VPCP", b"7817/VPCP"),
        "status-03.signed.edxml": status,
        "receipt.accepted.xml": receipt,
        "receipt.altered.xml": _altered(receipt, b">accepted<", b">rejected<"),
        "receipt.conflict.xml": sign_receipt(conflict, hub.signing_key()),
        "receipt.agency-signed.xml": sign_receipt(accepted, g22.signing_key()),
        "tree-head.xml": head,
    })  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    vectors = _expectations(document.document_id, sha256_hex(package), leaves[0].hex())
    (out / "vectors.json").write_text(json.dumps(vectors, ensure_ascii=False, indent=2) + "\n",
                                      encoding="utf-8")  # fmt: skip
    return vectors


def _expectations(document_id: str, package_sha: str, leaf: str) -> list[dict[str, Any]]:
    ok = {"ok": True}
    return [
        {"file": "package.signed.edxml", "kind": "package", "trust": "ca.pem",
         "expect": {**ok, "signer_organ": G22[0], "document_id": document_id,
                    "sha256": package_sha}},
        {"file": "package.altered.edxml", "kind": "package", "trust": "ca.pem",
         "expect": {"ok": False, "code": "signature.invalid"}},
        {"file": "status-03.signed.edxml", "kind": "package", "trust": "ca.pem",
         "expect": {**ok, "signer_organ": H41[0], "status_code": "03"}},
        {"file": "receipt.accepted.xml", "kind": "receipt", "pin": "hub.pem",
         "expect": {**ok, "event": "accepted", "package_sha256": package_sha,
                    "log_leaf_hash": leaf}},
        {"file": "receipt.altered.xml", "kind": "receipt", "pin": "hub.pem",
         "expect": {"ok": False, "code": "signature.invalid"}},
        {"file": "receipt.conflict.xml", "kind": "receipt", "pin": "hub.pem",
         "expect": {**ok, "event": "rejected", "error_code": "submission.duplicate_conflict",
                    "document_id": ""}},
        {"file": "receipt.agency-signed.xml", "kind": "receipt", "pin": "hub.pem",
         "expect": {"ok": False, "code": "signature.certificate_mismatch"}},
        {"file": "tree-head.xml", "kind": "tree-head", "pin": "hub.pem",
         "expect": {**ok, "tree_size": 1, "root_hash": leaf}},
    ]  # fmt: skip


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/test-vectors")
    for vector in write_vectors(target):
        print(vector["file"], vector["expect"])
