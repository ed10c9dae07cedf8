"""The committed wire-contract test vectors (docs/test-vectors/) still verify as
``vectors.json`` says, with the current code and with xmlsec1: what a vendor tests its
own implementation against must stay true."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from axis.evidence import merkle
from axis.evidence.heads import verify_head
from axis.receipts import verify_receipt
from envelopes.errors import AxisError
from envelopes.model import StatusPackage
from envelopes.parser import read_package
from routing.values import sha256_hex
from signing.keys import load_certificate, organ_id_of
from signing.verify import VerifyPolicy, verify

VECTORS = Path(__file__).resolve().parents[1] / "docs" / "test-vectors"
CASES: list[dict[str, Any]] = json.loads((VECTORS / "vectors.json").read_text(encoding="utf-8"))


def _policy(case: dict[str, Any]) -> VerifyPolicy:
    now = datetime.now(UTC)
    if "trust" in case:
        return VerifyPolicy(at=now, trust_anchors=(_cert(case["trust"]),))
    return VerifyPolicy(at=now, pinned=(_cert(case["pin"]),))


def _cert(name: str) -> Any:
    return load_certificate((VECTORS / name).read_bytes())


def _check(case: dict[str, Any]) -> dict[str, Any]:
    """What verifying the vector with this code gives, in the shape of ``expect``."""
    raw = (VECTORS / case["file"]).read_bytes()
    policy = _policy(case)
    try:
        if case["kind"] == "package":
            verified = verify(raw, policy)
            package = read_package(verified.root)
            found: dict[str, Any] = {"ok": True, "signer_organ": organ_id_of(verified.signer)}
            if isinstance(package, StatusPackage):
                return {**found, "status_code": package.status_code.value}
            return {**found, "document_id": package.document_id, "sha256": sha256_hex(raw)}
        if case["kind"] == "receipt":
            receipt = verify_receipt(raw, policy).receipt
            return {"ok": True, "event": receipt.event, "package_sha256": receipt.package_sha256,
                    "error_code": receipt.error_code, "document_id": receipt.document_id,
                    "log_leaf_hash": merkle.leaf_hash(b"receipt\n" + raw).hex()}  # fmt: skip
        head = verify_head(raw, policy).head
        return {"ok": True, "tree_size": head.tree_size, "root_hash": head.root_hash.hex()}
    except AxisError as error:
        return {"ok": False, "code": str(error.detail.get("cause", error.code))}


@pytest.mark.parametrize("case", CASES, ids=lambda c: str(c["file"]))
def test_vector_verifies_as_documented(case: dict[str, Any]) -> None:
    found = _check(case)
    expected = case["expect"]
    assert {key: found.get(key) for key in expected} == expected


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 is not installed")
@pytest.mark.parametrize("case", CASES, ids=lambda c: str(c["file"]))
def test_vector_gives_the_same_verdict_with_xmlsec1(case: dict[str, Any]) -> None:
    if "trust" in case:
        key = ["--trusted-pem", str(VECTORS / case["trust"])]
    else:
        key = ["--pubkey-cert-pem", str(VECTORS / case["pin"]), "--enabled-key-data", "key-name"]
    done = subprocess.run(["xmlsec1", "--verify", *key, str(VECTORS / case["file"])],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert (done.returncode == 0) == case["expect"]["ok"], done.stderr


def test_every_vector_file_is_described() -> None:
    described = {case["file"] for case in CASES}
    certificates = {"ca.pem", "hub.pem", "agency-g22.pem", "agency-h41.pem"}
    present = {p.name for p in VECTORS.iterdir()} - {"vectors.json", "README.md"}
    assert present == described | certificates
    assert not any(p.suffix == ".key" for p in VECTORS.iterdir())  # no private key, ever
