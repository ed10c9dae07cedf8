"""``axis receipt verify``: what a hub receipt proves, checked offline."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from axis.receipts import sign_receipt
from cli import app
from routing.values import Receipt, sha256_hex
from signing.keys import fingerprint
from signing.pki import Credential, issue_agency, issue_hub, new_ca

REPO = Path(__file__).resolve().parents[1]
PACKAGE = b"<edXML>the package the hub accepted</edXML>"


def axis(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def json_of(result: Result) -> dict[str, Any]:
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def receipt(event: str = "accepted", **changes: Any) -> Receipt:
    fields: dict[str, Any] = {
        "receipt_id": "rcpt-0001", "event": event, "message_id": "msg-42",
        "package_sha256": sha256_hex(PACKAGE), "hub_time": datetime(2024, 3, 1, 8, 30, tzinfo=UTC),
        "sender_system": "000.00.00.G22", "sender_organ": "000.00.00.G22",
        "document_id": "000.00.00.G22,2024/03/01,7816/VPCP", "recipients": ("000.00.00.H41",),
    }
    if event == "rejected":
        fields.update(error_code="signature.invalid", reason="the signed content was altered")
    fields.update(changes)
    return Receipt(**fields)


@dataclass(frozen=True)
class Keys:
    dir: Path
    hub: Credential
    ca_pem: Path
    hub_pem: Path
    other_ca_pem: Path
    other_hub: Credential
    agency: Credential

    def write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    base = tmp_path_factory.mktemp("receipts")
    now = datetime.now(UTC)
    ca, other_ca = new_ca("Axis test CA", now), new_ca("Another CA", now)
    hub = issue_hub(ca, now)
    (base / "ca.pem").write_bytes(ca.cert_pem)
    (base / "hub.pem").write_bytes(hub.cert_pem)
    (base / "other-ca.pem").write_bytes(other_ca.cert_pem)
    (base / "package.edxml").write_bytes(PACKAGE)
    return Keys(base, hub, base / "ca.pem", base / "hub.pem", base / "other-ca.pem",
                issue_hub(other_ca, now), issue_agency(ca, "000.00.00.G22", "VPCP", now))


def signed(keys: Keys, credential: Credential | None = None, **changes: Any) -> bytes:
    return sign_receipt(receipt(**changes), (credential or keys.hub).signing_key())


@pytest.mark.parametrize("anchor", ["--hub-cert", "--trust"])
def test_genuine_receipt_verifies_and_says_what_it_proves(keys: Keys, anchor: str) -> None:
    path = keys.write("ok.xml", signed(keys))
    anchor_file = keys.hub_pem if anchor == "--hub-cert" else keys.ca_pem
    result = axis("receipt", "verify", path, "--package", keys.dir / "package.edxml",
                  anchor, anchor_file)
    assert result.exit_code == 0, result.output
    assert "the hub accepted document '000.00.00.G22,2024/03/01,7816/VPCP'" in result.stdout
    assert "consignment 'msg-42'" in result.stdout
    assert "2024-03-01T08:30:00" in result.stdout
    assert "CN=Axis hub" in result.stdout
    assert "package.edxml has exactly this SHA-256" in result.stdout


def test_json_shape(keys: Keys) -> None:
    path = keys.write("rejected.xml", signed(keys, event="rejected"))
    data = json_of(axis("receipt", "verify", path, "--hub-cert", keys.hub_pem, "--json"))
    assert data["ok"] is True and data["verified"] is True
    assert data["receipt"]["event"] == "rejected"
    assert data["receipt"]["error_code"] == "signature.invalid"
    assert data["receipt"]["package_sha256"] == sha256_hex(PACKAGE)
    assert data["signer"]["fingerprint"] == fingerprint(keys.hub.certificate)
    assert data["package"] is None
    assert "rejected consignment 'msg-42'" in data["statement"]


def test_receipt_verify_as_a_real_process(keys: Keys) -> None:
    path = keys.write("process.xml", signed(keys, event="delivered"))
    done = subprocess.run([sys.executable, "-m", "cli", "receipt", "verify", str(path),
                           "--trust", str(keys.ca_pem)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "arrived at 000.00.00.H41" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "cli", "receipt", "verify", str(path),
                          "--trust", str(keys.other_ca_pem)], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=False)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: signature.untrusted_certificate: ")


def _tampered(keys: Keys) -> Path:
    raw = signed(keys)
    return keys.write("tampered.xml", raw.replace(b"msg-42", b"msg-43"))


CASES: list[tuple[str, Any, str]] = [
    ("one byte changed", lambda k: [_tampered(k), "--hub-cert", k.hub_pem], "signature.invalid"),
    ("another hub key, pinned", lambda k: [k.write("other.xml", signed(k, k.other_hub)),
                                           "--hub-cert", k.hub_pem],
     "signature.certificate_mismatch"),
    ("another hub key, trusted CA", lambda k: [k.write("other.xml", signed(k, k.other_hub)),
                                               "--trust", k.ca_pem],
     "signature.untrusted_certificate"),
    ("signed by an agency of the same CA", lambda k: [k.write("agency.xml",
                                                              signed(k, k.agency)),
                                                      "--trust", k.ca_pem],
     "signature.untrusted_certificate"),
    ("another package", lambda k: [k.write("ok.xml", signed(k)), "--package", k.hub_pem,
                                   "--hub-cert", k.hub_pem], "receipt.package_mismatch"),
    ("missing receipt", lambda k: [k.dir / "gone.xml", "--hub-cert", k.hub_pem],
     "envelope.invalid_metadata"),
    ("missing package", lambda k: [k.write("ok.xml", signed(k)), "--package", k.dir / "gone",
                                   "--hub-cert", k.hub_pem], "envelope.invalid_metadata"),
    ("not a receipt", lambda k: [k.write("junk.xml", b"<receipt>"), "--hub-cert", k.hub_pem],
     "envelope.malformed_xml"),
]


@pytest.mark.parametrize(("args", "code"), [pytest.param(a, c, id=i) for i, a, c in CASES])
def test_refused_receipt_fails_with_its_code(keys: Keys, args: Any, code: str) -> None:
    text = axis("receipt", "verify", *args(keys))
    assert text.exit_code == 1
    assert text.stderr.startswith(f"error: {code}: ")
    data = json_of(axis("receipt", "verify", *args(keys), "--json"))
    assert (data["ok"], data["error"]["code"]) == (False, code)


@pytest.mark.parametrize("flags", [["--hub-cert", "H", "--trust", "C"], []],
                         ids=["both", "neither"])
def test_needs_exactly_one_of_hub_cert_and_trust(keys: Keys, flags: list[str]) -> None:
    given_files = {"H": keys.hub_pem, "C": keys.ca_pem}
    path = keys.write("ok.xml", signed(keys))
    result = axis("receipt", "verify", path, *(given_files.get(f, f) for f in flags))
    assert result.exit_code == 2
    assert "exactly one of --hub-cert or --trust" in result.output


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_changed_byte_of_the_receipt_text_is_refused(keys: Keys, data: st.DataObject) -> None:
    raw = signed(keys)
    body_end = raw.index(b"<ds:Signature")
    # Only bytes of element text: whitespace inside tags or the XML declaration may
    # legitimately not matter to canonicalization.
    positions = [i for i in range(raw.index(b"<axis:ReceiptId>"), body_end)
                 if raw[i:i + 1].isalnum() and raw.rfind(b">", 0, i) > raw.rfind(b"<", 0, i)]
    at = data.draw(st.sampled_from(positions), label="position")
    new = data.draw(st.sampled_from(b"0aZ9x").filter(lambda c: c != raw[at]))
    path = keys.write("flipped.xml", raw[:at] + bytes([new]) + raw[at + 1:])
    result = axis("receipt", "verify", path, "--hub-cert", keys.hub_pem, "--json")
    assert result.exit_code == 1
    assert json_of(result)["error"]["code"] in {"signature.invalid", "receipt.malformed"}


def test_help_has_an_example() -> None:
    result = axis("receipt", "verify", "--help")
    assert result.exit_code == 0
    assert "axis receipt verify receipt.xml" in result.stdout
