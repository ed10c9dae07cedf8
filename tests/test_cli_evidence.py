"""The evidence commands as real processes against a real hub: export a bundle as a clerk
and as the operator, verify it offline, prove heads consistent, keep a witness, and see
every one of them fail once the store is altered behind the hub's back."""

from __future__ import annotations

import sqlite3
import zipfile
from typing import Any

import pytest

from axis.evidence import merkle
from axis.evidence.bundle import entry_bytes
from tests.clikit import AgencyFiles, CliWorld, assert_error, fetch_until, organ

pytestmark = pytest.mark.rabbitmq


def _send(world: CliWorld, a: AgencyFiles, b: AgencyFiles, code: str) -> dict[str, Any]:
    return world.ok("send", "--to", b.organ_id, "--subject", "V/v kiểm toán", "--code", code,
                    "--out-dir", world.root / "sent", "--profile", a.profile,
                    "--json").json()  # fmt: skip


def _flip(data: bytes, name: str) -> bytes:
    """The bundle with one byte of member ``name`` changed (the ZIP rewritten around it)."""
    import io

    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == name:
                middle = len(content) // 2
                content = content[:middle] + bytes([content[middle] ^ 1]) + content[middle + 1:]
            target.writestr(info, content)
    return out.getvalue()


def test_export_verify_consistency_monitor_and_tampering(world: CliWorld) -> None:
    a = world.agency(organ("A"), "Văn phòng Chính phủ")
    b = world.agency(organ("B"), "UBND tỉnh Nghệ An")
    c = world.agency(organ("C"), "Bộ Tài chính")
    hub = world.start_hub()
    ca = world.pki / "ca.pem"
    sent = _send(world, a, b, "1/VPCP")
    got = fetch_until(world, b.profile, world.root / "inbox-b",
                      lambda items: any(i["kind"] == "edoc" for i in items))  # fmt: skip
    [doc] = [i for i in got if i["kind"] == "edoc"]
    package = world.root / "inbox-b" / doc["id"] / "package.edxml"
    world.ok("status", package, "--code", "03", "--profile", b.profile)
    fetch_until(world, a.profile, world.root / "inbox-a",
                lambda items: "status" in {i.get("event") for i in items})  # fmt: skip

    # A clerk exports as the sender; the recipient may export by DocumentId.
    bundle = world.root / "evidence.zip"
    exported = world.ok("evidence", "export", sent["message_id"], "-o", bundle,
                        "--with-package", "--profile", a.profile, "--json").json()  # fmt: skip
    assert exported["entries"] >= 4 and exported["package"] is True
    world.ok("evidence", "export", sent["document_id"], "-o", world.root / "b.zip",
             "--profile", b.profile)  # fmt: skip
    assert_error(world.axis("evidence", "export", sent["message_id"], "-o", world.root / "c.zip",
                            "--profile", c.profile, "--json"),
                 "transport.query_refused", as_json=True)  # fmt: skip

    report = world.ok("audit", "verify", bundle, "--trust", ca, "--json").json()
    assert report["ok"] is True
    assert {"accepted", "delivered", "status"} <= {r["event"] for r in report["receipts"]}
    text = world.ok("audit", "verify", bundle, "--trust", ca).stdout
    assert "verified" in text and sent["document_id"] in text
    for member in ("head.xml", next(n for n in zipfile.ZipFile(bundle).namelist()
                                    if n.endswith(".receipt.xml"))):  # fmt: skip
        broken = world.root / "broken.zip"
        broken.write_bytes(_flip(bundle.read_bytes(), member))
        run = world.axis("audit", "verify", broken, "--trust", ca, "--json")
        assert run.returncode == 1 and run.json()["ok"] is False, run

    # Heads: the newest over the broker, a newer one signed by the operator.
    old = world.root / "head-old.xml"
    world.ok("log", "head", "--profile", c.profile, "-o", old)
    _send(world, a, b, "2/VPCP")
    new = world.root / "head-new.xml"
    head = world.ok("log", "head", "--home", world.home, "--new", "-o", new, "--json").json()
    assert head["tree_size"] > 0 and new.is_file()
    proved = world.ok("audit", "consistency", old, new, "--profile", c.profile, "--trust", ca,
                      "--json").json()  # fmt: skip
    assert proved["consistent"] is True and proved["new"]["tree_size"] > proved["old"]["tree_size"]
    state = world.root / "witness"
    world.ok("audit", "monitor", "--state", state, "--home", world.home, "--trust", ca)
    world.ok("audit", "monitor", "--state", state, "--home", world.home, "--trust", ca)
    assert list(state.glob("head-*.xml"))

    # Someone edits one stored log entry: every check from the store now fails.
    assert world.stop_hub(hub) == 0
    with sqlite3.connect(world.home / "axis.db") as db:
        db.execute("UPDATE log_entries SET payload = CAST('{}' AS BLOB) WHERE idx = 2")
    for args in (("audit", "consistency", old, new, "--home", world.home),
                 ("audit", "monitor", "--state", state, "--home", world.home)):  # fmt: skip
        run = world.axis(*args, "--trust", ca, "--json")
        assert run.returncode == 1 and run.json()["error"]["code"] in (
            "log.tampered", "audit.inconsistent"), run  # fmt: skip
    refused = world.axis("serve", "--home", world.home)
    assert refused.returncode == 1 and "log.tampered" in refused.stderr, refused

    # An insider with the hub key rewrites that entry with its hash and signs a new head
    # over the result: the store agrees with itself, the witness does not.
    with sqlite3.connect(world.home / "axis.db") as db:
        db.execute("UPDATE log_entries SET leaf_hash = ? WHERE idx = 2",
                   (merkle.leaf_hash(entry_bytes(*db.execute(
                       "SELECT type, payload FROM log_entries WHERE idx = 2").fetchone())),))
    world.ok("agency", "suspend", c.organ_id, "--home", world.home)  # the log grows
    world.ok("log", "head", "--home", world.home, "--new")
    run = world.axis("audit", "monitor", "--state", state, "--home", world.home, "--trust", ca,
                     "--json")  # fmt: skip
    assert run.returncode == 1 and run.json()["error"]["code"] == "audit.inconsistent", run
