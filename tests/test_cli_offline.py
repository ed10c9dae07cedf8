"""The offline ``axis`` commands (pki, envelope) through typer's runner and as real processes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from axis.errors import error_codes
from cli import app
from signing.keys import fingerprint, load_certificate

REPO = Path(__file__).resolve().parents[1]
SENDER = "000.00.00.G22"
RECIPIENT = "000.00.00.H41"
METADATA = f"""
from = {{ organ_id = "{SENDER}", organ_name = "Văn phòng Chính phủ" }}
to = [{{ organ_id = "{RECIPIENT}", organ_name = "UBND Tỉnh Nghệ An" }}]
code = "7816/VPCP-TTĐT"
promulgation_date = "2024-03-01"
place = "Hà Nội"
type_name = "Công văn"
subject = "V/v kết nối, liên thông"
priority = 2
"""


def axis(*args: object) -> Result:
    """Run ``axis`` in-process; an unexpected exception fails the test instead of exiting 1."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def axis_process(*args: object) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cli`` as a real process from the repository root."""
    return subprocess.run([sys.executable, "-m", "cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)


def json_of(result: Result) -> dict[str, Any]:
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


@dataclass(frozen=True)
class World:
    """Two PKIs (ours and a stranger's), metadata, an unsigned and a signed package."""

    dir: Path
    pki: Path
    other_pki: Path
    metadata: Path
    attachment: Path
    unsigned: Path
    signed: Path

    def key(self, organ: str = SENDER) -> Path:
        return self.pki / f"{organ}.key"

    def cert(self, organ: str = SENDER) -> Path:
        return self.pki / f"{organ}.pem"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("offline")
    pki, other = base / "pki", base / "other-pki"
    for args in (("pki", "init", pki), ("pki", "init", other),
                 ("pki", "issue", pki, "--organ-id", SENDER, "--name", "VPCP"),
                 ("pki", "issue", pki, "--organ-id", RECIPIENT, "--name", "Nghệ An"),
                 ("pki", "issue", other, "--organ-id", SENDER, "--name", "Impostor")):
        assert axis(*args).exit_code == 0
    metadata = base / "letter.toml"
    metadata.write_text(METADATA, encoding="utf-8")
    attachment = base / "công văn.pdf"
    attachment.write_bytes(b"%PDF-1.4 letter body " * 100)
    unsigned, signed = base / "letter.edxml", base / "letter.signed.edxml"
    assert axis("envelope", "new", metadata, "--attach", attachment, "-o", unsigned).exit_code == 0
    result = axis("envelope", "sign", unsigned, "--key", pki / f"{SENDER}.key",
                  "--cert", pki / f"{SENDER}.pem", "-o", signed)
    assert result.exit_code == 0, result.output
    return World(base, pki, other, metadata, attachment, unsigned, signed)


# -- the whole flow, as an operator would type it ------------------------------------------


def test_full_offline_flow_as_real_processes(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    metadata = tmp_path / "letter.toml"
    metadata.write_text(METADATA, encoding="utf-8")
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.4 scanned " * 50)
    unsigned, signed = tmp_path / "letter.edxml", tmp_path / "signed.edxml"
    key, cert = pki / f"{SENDER}.key", pki / f"{SENDER}.pem"
    steps: list[tuple[tuple[object, ...], str]] = [
        (("pki", "init", pki), "hub certificate"),
        (("pki", "issue", pki, "--organ-id", SENDER, "--name", "VPCP"), str(cert)),
        (("envelope", "new", metadata, "--attach", tmp_path / "scan.pdf", "-o", unsigned),
         "scan.pdf"),
        (("envelope", "validate", unsigned), "1 valid, 0 invalid"),
        (("envelope", "sign", unsigned, "--key", key, "--cert", cert, "-o", signed),
         f"UID={SENDER}"),
        (("envelope", "verify", signed, "--cert", cert), "signature valid"),
        (("envelope", "verify", signed, "--trust", pki / "ca.pem"), "trust anchor"),
        (("envelope", "show", signed), "not verified, use `axis envelope verify`"),
    ]
    for args, expected in steps:
        done = axis_process(*args)
        assert done.returncode == 0, (args, done.stderr)
        assert expected in done.stdout, (args, done.stdout)
    assert (pki / "ca.key").stat().st_mode & 0o077 == 0
    assert (pki / f"{SENDER}.key").stat().st_mode & 0o077 == 0


def test_failure_as_real_process_prints_code_on_stderr(world: World) -> None:
    done = axis_process("envelope", "verify", world.unsigned, "--trust", world.pki / "ca.pem")
    assert done.returncode == 1
    assert done.stderr.startswith("error: signature.missing: ")
    assert done.stdout == ""
    done = axis_process("envelope", "verify", world.signed, "--json",
                        "--trust", world.other_pki / "ca.pem")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "signature.untrusted_certificate"


# -- JSON shapes ------------------------------------------------------------------------------


def test_show_json_describes_parties_attachments_and_unverified_signer(world: World) -> None:
    data = json_of(axis("envelope", "show", world.signed, "--json"))
    assert data["ok"] is True
    assert data["kind"] == "edoc"
    assert data["from"] == {"organ_id": SENDER, "organ_name": "Văn phòng Chính phủ"}
    assert [r["organ_id"] for r in data["to"]] == [RECIPIENT]
    assert data["code"] == "7816/VPCP-TTĐT"
    assert data["priority"] == 2
    [attachment] = data["attachments"]
    assert attachment["name"] == world.attachment.name
    assert attachment["size"] == world.attachment.stat().st_size
    signature = data["signature"]
    assert signature["verified"] is False
    assert signature["organ_id"] == SENDER
    assert signature["algorithm"] == "rsa-sha256"
    assert signature["fingerprint"] == fingerprint(load_certificate(world.cert().read_bytes()))
    assert json_of(axis("envelope", "show", world.unsigned, "--json"))["signature"] is None


def test_sign_and_verify_json_name_the_same_signer(world: World) -> None:
    signed = world.dir / "json-signed.edxml"
    sign = json_of(axis("envelope", "sign", world.unsigned, "--key", world.key(),
                        "--cert", world.cert(), "-o", signed, "--json"))
    verify = json_of(axis("envelope", "verify", signed, "--cert", world.cert(), "--json"))
    assert sign["signer"]["fingerprint"] == verify["signer"]["fingerprint"]
    assert verify["verified"] is True
    assert verify["signer"]["organ_id"] == SENDER
    assert verify["document_id"] == sign["document_id"]
    assert verify["warning"] is None


def test_pki_json_lists_the_files_it_wrote(tmp_path: Path) -> None:
    data = json_of(axis("pki", "init", tmp_path / "p", "--json"))
    assert all(Path(path).is_file() for path in data["files"].values())
    assert re.fullmatch(r"[0-9a-f]{64}", data["hub_fingerprint"])
    issued = json_of(axis("pki", "issue", tmp_path / "p", "--organ-id", SENDER,
                          "--name", "VPCP", "--json"))
    assert Path(issued["cert"]).is_file() and Path(issued["key"]).is_file()


# -- failures: each with its code and exit status --------------------------------------------


def _tampered(world: World) -> Path:
    path = world.dir / "tampered.edxml"
    path.write_bytes(world.signed.read_bytes().replace("liên thông".encode(), b"lien thong"))
    return path


def _invalid(world: World) -> Path:
    path = world.dir / "invalid.edxml"
    path.write_bytes(world.unsigned.read_bytes().replace(b"Subject>", b"Subjekt>"))
    return path


def _bad_metadata(world: World) -> Path:
    path = world.dir / "bad.toml"
    path.write_text(METADATA.replace('subject = "V/v kết nối, liên thông"', ""), "utf-8")
    return path


FAILURES: list[tuple[str, Callable[[World], list[object]], str, str]] = [
    ("pki init over an existing pki", lambda w: ["pki", "init", w.pki], "pki.exists", ""),
    ("pki issue bad organ id", lambda w: ["pki", "issue", w.pki, "--organ-id", "g22!",
                                          "--name", "x"], "registry.invalid_organ_id", ""),
    ("pki issue twice", lambda w: ["pki", "issue", w.pki, "--organ-id", SENDER, "--name", "x"],
     "pki.exists", ""),
    ("pki issue without a CA", lambda w: ["pki", "issue", w.dir / "nothing",
                                          "--organ-id", SENDER, "--name", "x"], "pki.error", ""),
    ("new: missing attachment", lambda w: ["envelope", "new", w.metadata, "--attach",
                                           w.dir / "gone.pdf", "-o", w.dir / "x.edxml"],
     "envelope.invalid_metadata", "gone.pdf"),
    ("new: missing metadata", lambda w: ["envelope", "new", w.dir / "gone.toml",
                                         "-o", w.dir / "x.edxml"],
     "envelope.invalid_metadata", "gone.toml"),
    ("new: metadata lacks subject", lambda w: ["envelope", "new", _bad_metadata(w),
                                               "-o", w.dir / "x.edxml"],
     "envelope.invalid_metadata", "subject"),
    ("show: missing file", lambda w: ["envelope", "show", w.dir / "gone.edxml"],
     "envelope.invalid_metadata", "gone.edxml"),
    ("show: invalid package", lambda w: ["envelope", "show", _invalid(w)],
     "envelope.schema_violation", "Subjekt"),
    ("sign: missing key", lambda w: ["envelope", "sign", w.unsigned, "--key", w.dir / "no.key",
                                     "--cert", w.cert(), "-o", w.dir / "x.edxml"],
     "signature.invalid_key_material", "no.key"),
    ("sign: key of another certificate", lambda w: ["envelope", "sign", w.unsigned,
                                                    "--key", w.key(RECIPIENT), "--cert", w.cert(),
                                                    "-o", w.dir / "x.edxml"],
     "signature.invalid_key_material", ""),
    ("sign: already signed", lambda w: ["envelope", "sign", w.signed, "--key", w.key(),
                                        "--cert", w.cert(), "-o", w.dir / "x.edxml"],
     "signature.multiple_signatures", ""),
    ("sign: invalid package", lambda w: ["envelope", "sign", _invalid(w), "--key", w.key(),
                                         "--cert", w.cert(), "-o", w.dir / "x.edxml"],
     "envelope.schema_violation", "Subjekt"),
    ("verify: tampered", lambda w: ["envelope", "verify", _tampered(w), "--cert", w.cert()],
     "signature.invalid", ""),
    ("verify: wrong pinned cert", lambda w: ["envelope", "verify", w.signed,
                                             "--cert", w.cert(RECIPIENT)],
     "signature.certificate_mismatch", ""),
    ("verify: other CA", lambda w: ["envelope", "verify", w.signed,
                                    "--trust", w.other_pki / "ca.pem"],
     "signature.untrusted_certificate", ""),
    ("verify: unsigned", lambda w: ["envelope", "verify", w.unsigned, "--trust", w.pki / "ca.pem"],
     "signature.missing", ""),
    ("verify: missing package", lambda w: ["envelope", "verify", w.dir / "gone.edxml",
                                           "--trust", w.pki / "ca.pem"],
     "envelope.invalid_metadata", "gone.edxml"),
    ("verify: missing trust file", lambda w: ["envelope", "verify", w.signed,
                                              "--trust", w.dir / "gone.pem"],
     "envelope.invalid_metadata", "gone.pem"),
]


@pytest.mark.parametrize(("args", "code", "mentions"),
                         [pytest.param(a, c, m, id=i) for i, a, c, m in FAILURES])
def test_failure_is_reported_with_its_code(
    world: World, args: Callable[[World], list[object]], code: str, mentions: str
) -> None:
    text = axis(*args(world))
    assert text.exit_code == 1
    assert text.stdout == ""
    assert text.stderr.startswith(f"error: {code}: ")
    assert mentions in text.stderr
    data = json_of(axis(*args(world), "--json"))
    assert data["ok"] is False
    assert data["error"]["code"] == code


def test_schema_violation_names_the_element_path(world: World) -> None:
    data = json_of(axis("envelope", "validate", _invalid(world), world.unsigned, "--json"))
    bad, good = data["results"]
    assert data["ok"] is False
    assert bad["error"]["code"] == "envelope.schema_violation"
    assert bad["error"]["path"].endswith("/MessageHeader/Subjekt")
    assert good == {"file": str(world.unsigned), "ok": True, "kind": "edoc",
                    "document_id": good["document_id"]}


@pytest.mark.parametrize("flags", [["--cert", "C", "--trust", "T"], []], ids=["both", "neither"])
def test_verify_needs_exactly_one_of_cert_and_trust(world: World, flags: list[str]) -> None:
    given = {"C": world.cert(), "T": world.pki / "ca.pem"}
    result = axis("envelope", "verify", world.signed, *(given.get(f, f) for f in flags))
    assert result.exit_code == 2
    assert "exactly one of --cert or --trust" in result.output


def test_signing_another_agencys_package_warns(world: World) -> None:
    result = axis("envelope", "sign", world.unsigned, "--key", world.key(RECIPIENT),
                  "--cert", world.cert(RECIPIENT), "-o", world.dir / "foreign.edxml")
    assert result.exit_code == 0
    assert f"the certificate belongs to {RECIPIENT}" in result.stderr


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_changed_attachment_character_breaks_the_signature(world: World,
                                                               data: st.DataObject) -> None:
    raw = world.signed.read_bytes()
    start = raw.index(b"<ContentTransferEncoded>") + len(b"<ContentTransferEncoded>")
    end = raw.index(b"</ContentTransferEncoded>")
    at = data.draw(st.integers(start, end - 1), label="position")
    replacement = data.draw(st.sampled_from(b"AQgw+/09").filter(lambda c: c != raw[at]))
    path = world.dir / "flipped.edxml"
    path.write_bytes(raw[:at] + bytes([replacement]) + raw[at + 1:])
    result = axis("envelope", "verify", path, "--cert", world.cert(), "--json")
    assert result.exit_code == 1
    assert json_of(result)["error"]["code"] == "signature.invalid"


# -- new: progress for large attachments -------------------------------------------------------


def test_large_attachment_shows_progress_on_stderr(world: World) -> None:
    big = world.dir / "big.bin"
    big.write_bytes(bytes(range(256)) * 22 * 1024)  # 5.5 MiB
    out = world.dir / "big.edxml"
    result = axis("envelope", "new", world.metadata, "--attach", big, "-o", out, "--json")
    assert result.exit_code == 0
    assert "reading attachment big.bin (5.5 MB)" in result.stderr
    assert json_of(result)["attachments"][0]["size"] == big.stat().st_size
    small = axis("envelope", "new", world.metadata, "--attach", world.attachment,
                 "-o", world.dir / "small.edxml")
    assert small.stderr == ""


# -- the vendor corpus -------------------------------------------------------------------------


def test_vendor_corpus_validates_except_the_placeholder_attachment(conformance_dir: Path) -> None:
    files = sorted(conformance_dir.glob("*.edxml"))
    result = axis("envelope", "validate", *files, "--json")
    assert result.exit_code == 1
    results = {Path(r["file"]).name: r for r in json_of(result)["results"]}
    refused = results.pop("edoc.edxml")
    assert len(results) == 15
    assert all(r["ok"] for r in results.values()), [r for r in results.values() if not r["ok"]]
    name = re.search(r"<(?:\w+:)?AttachmentName>([^<]+)<",
                     (conformance_dir / "edoc.edxml").read_text("utf-8"))
    assert name is not None
    assert refused["error"]["code"] == "envelope.invalid_attachment"
    assert name.group(1) in refused["error"]["reason"]
    text = axis("envelope", "validate", *files)
    assert "15 valid, 1 invalid" in text.stdout
    assert text.stderr.startswith("error: envelope.invalid_attachment: 1 of 16")


def test_vendor_status_package_shows_the_status_names(conformance_dir: Path) -> None:
    result = axis("envelope", "show", conformance_dir / "status_rejection_02.edxml")
    assert result.exit_code == 0
    assert "02 Từ chối tiếp nhận (rejected)" in result.stdout
    assert "unsigned" in result.stdout


def test_vendor_signatures_fail_with_a_code_not_a_crash(conformance_dir: Path,
                                                        world: World) -> None:
    for path in sorted(conformance_dir.glob("edoc*.edxml")):
        result = axis("envelope", "verify", path, "--trust", world.pki / "ca.pem",
                      "--allow-sha1", "--json")
        assert result.exit_code == 1
        code = json_of(result)["error"]["code"]
        assert code in error_codes() and code.split(".")[0] in {"signature", "envelope"}, code


# -- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["pki", "init"], ["pki", "issue"], ["envelope", "new"],
                                     ["envelope", "show"], ["envelope", "validate"],
                                     ["envelope", "sign"], ["envelope", "verify"]])
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = axis(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout
    assert f"axis {' '.join(command)}" in result.stdout
