"""A clerk's day through the real ``axis`` processes: send, fetch, answer, trace, prove.

Every command runs as ``python -m cli`` in its own process against the real
RabbitMQ (a vhost per world) and a real ``axis serve`` process.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.clikit import (
    AgencyFiles,
    CliWorld,
    assert_error,
    cli_world,
    fetch_until,
    organ,
    with_vhost,
)

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def world(
    tmp_path: Path, amqp_base_url: str, management_base_url: str, unique_name: str
) -> Iterator[CliWorld]:
    with cli_world(tmp_path, amqp_base_url, management_base_url, unique_name) as w:
        yield w


def test_whole_flow_send_fetch_status_trace_verify(world: CliWorld) -> None:
    created = world.init()
    assert Path(created["hub_cert"]).is_file() and Path(created["ca"]).is_file()
    explicit_url = with_vhost(world.amqp_base, world.vhost, credentials=False)
    a = world.agency(organ("A"), "Văn phòng Chính phủ", amqp_url=explicit_url)
    b = world.agency(organ("B"), "UBND tỉnh Nghệ An")  # broker URL from $AXIS_AMQP_URL
    for files in (a, b):
        reg = files.registration
        assert reg["ok"] is True and reg["system_id"] == reg["amqp_user"] == files.organ_id
        assert reg["inbox"] == f"axis.inbox.{files.organ_id}" and len(reg["amqp_password"]) >= 24
        assert files.profile.stat().st_mode & 0o777 == 0o600
        text = files.profile.read_text(encoding="utf-8")
        assert explicit_url in text and "guest" not in text  # the system's account, not admin
    hub = world.start_hub()

    original = os.urandom(150_000) + "…công văn".encode()
    attachment = world.root / "công-văn-7816.bin"
    attachment.write_bytes(original)
    sent = world.ok(
        "send",
        "--to",
        b.organ_id,
        "--subject",
        "V/v kết nối, liên thông",
        "--code",
        "7816/VPCP-TTĐT",
        "--attach",
        attachment,
        "--out-dir",
        world.root / "sent",
        "--profile",
        a.profile,
        "--json",
    ).json()
    assert sent["event"] == "accepted" and sent["recipients"] == [b.organ_id]
    package, receipt = Path(sent["package"]), Path(sent["receipt"])
    assert package.is_file() and receipt.is_file()
    consignment, document_id = sent["message_id"], sent["document_id"]

    inbox_b = world.root / "inbox-b"
    got = fetch_until(
        world, b.profile, inbox_b, lambda items: any(i["kind"] == "edoc" for i in items)
    )
    [doc] = [i for i in got if i["kind"] == "edoc"]
    assert doc["verified"] is True and doc["document_id"] == document_id
    item = inbox_b / doc["id"]
    assert (item / "package.edxml").read_bytes() == package.read_bytes()  # as received
    assert (item / "attachments" / attachment.name).read_bytes() == original
    assert json.loads((item / "meta.json").read_text(encoding="utf-8"))["sender"] == a.organ_id

    answered = world.ok(
        "status",
        item / "package.edxml",
        "--code",
        "03",
        "--description",
        "vào sổ",
        "--profile",
        b.profile,
        "--json",
    ).json()
    assert (answered["status_code"], answered["status_vi"]) == ("03", "Đã tiếp nhận")

    inbox_a = world.root / "inbox-a"

    def sender_has_all(items: list[dict[str, Any]]) -> bool:
        return {"01", "03"} <= {i.get("status_code") for i in items} and {
            "delivered", "status"} <= {i.get("event") for i in items}  # fmt: skip

    got_a = fetch_until(world, a.profile, inbox_a, sender_has_all)
    events = {i.get("event") for i in got_a if i["kind"] == "receipt"}
    assert events == {"accepted", "delivered", "status"}  # status: the business receipt of 03
    assert all(i["verified"] for i in got_a)
    listed = world.ok("inbox", "list", inbox_a, "--json").json()["items"]
    assert len(listed) == len(got_a)
    stamps = [i["stored_at"] for i in listed]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert "status 03 Đã tiếp nhận" in world.ok("inbox", "list", inbox_a).stdout

    _check_trace(world, a, document_id, consignment)
    _check_receipt_verify(world, receipt, package)
    assert world.stop_hub(hub) == 0, world.hub_log()


EXPECTED_ORDER = ["submitted", "accepted", "published", "01", "delivered", "03"]


def _milestones(events: list[dict[str, Any]]) -> list[str]:
    """The first occurrence of each milestone, in the order the timeline gives them."""
    seen: list[str] = []
    for e in events:
        key = e.get("status_code") if e["event"] == "status" else e["event"]
        if key in EXPECTED_ORDER and key not in seen:
            seen.append(key)
    return seen


def _check_trace(world: CliWorld, a: AgencyFiles, document_id: str, consignment: str) -> None:
    asks = [
        ("trace", document_id, "--profile", a.profile),
        ("trace", consignment, "--profile", a.profile),
        ("trace", consignment, "--home", world.home),
        ("trace", document_id),  # $AXIS_HOME, no profile
    ]
    for ask in asks:
        timeline = world.ok(*ask, "--json").json()
        assert timeline["document_id"] == document_id, ask
        assert _milestones(timeline["events"]) == EXPECTED_ORDER, (ask, timeline["events"])
        names = {(e.get("status_vi"), e.get("status_en")) for e in timeline["events"]}
        assert {("Đã đến", "arrived"), ("Đã tiếp nhận", "accepted and registered")} <= names
        text = world.ok(*ask).stdout
        lines = text.splitlines()
        assert lines[0].startswith(f"Document {document_id}")
        assert "01 Đã đến (arrived)" in text and "03 Đã tiếp nhận (accepted and registered)" in text
        first = {
            w: next(i for i, line in enumerate(lines) if w in line)
            for w in ("submitted by", "accepted by the hub", "Đã đến", "Đã tiếp nhận")
        }
        assert list(first.values()) == sorted(first.values()), text


def _check_receipt_verify(world: CliWorld, receipt: Path, package: Path) -> None:
    for flag, anchor in (("--hub-cert", world.pki / "hub.pem"), ("--trust", world.pki / "ca.pem")):
        text = world.ok("receipt", "verify", receipt, "--package", package, flag, anchor).stdout
        assert "receipt verified" in text and "accepted" in text
        assert "has exactly this SHA-256" in text
        data = world.ok(
            "receipt", "verify", receipt, "--package", package, flag, anchor, "--json"
        ).json()
        assert data["verified"] is True and data["package"]["matches"] is True
        assert data["receipt"]["event"] == "accepted" and "the hub accepted" in data["statement"]


# -- failure paths: one world for the module, a hub that ran once and is now stopped ----------


@dataclass
class Stage:
    world: CliWorld
    a: AgencyFiles
    b: AgencyFiles
    package: Path
    receipt: Path
    b_item: Path  # the document as B's `axis inbox fetch` stored it


@pytest.fixture(scope="module")
def stage(
    tmp_path_factory: pytest.TempPathFactory, amqp_base_url: str, management_base_url: str
) -> Iterator[Stage]:
    root = tmp_path_factory.mktemp("cli-failures")
    vhost = f"t{os.urandom(6).hex()}"
    with cli_world(root, amqp_base_url, management_base_url, vhost) as world:
        world.init()
        a, b = world.agency(organ("A"), "Cơ quan A"), world.agency(organ("B"), "Cơ quan B")
        hub = world.start_hub()
        sent = world.ok(
            "send",
            "--to",
            b.organ_id,
            "--subject",
            "V/v thử",
            "--code",
            "1/T",
            "--out-dir",
            root / "sent",
            "--profile",
            a.profile,
            "--json",
        ).json()
        inbox_b = root / "inbox-b"
        got = fetch_until(world, b.profile, inbox_b, lambda items: _edocs(items) != [])
        [doc] = _edocs(got)
        assert world.stop_hub(hub) == 0, world.hub_log()
        yield Stage(world, a, b, Path(sent["package"]), Path(sent["receipt"]), inbox_b / doc["id"])


def _edocs(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["kind"] == "edoc"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _edited_profile(stage: Stage, name: str, old: str, new: str) -> Path:
    text = stage.a.profile.read_text(encoding="utf-8")
    assert old in text
    path = stage.world.root / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def _case_args(stage: Stage, case: str) -> tuple[list[object], str]:
    s, send = (
        stage,
        [
            "send",
            "--to",
            stage.b.organ_id,
            "--subject",
            "x",
            "--code",
            "2/T",
            "--out-dir",
            stage.world.root / "sent",
        ],
    )
    if case == "unknown_profile":
        return [*send, "--profile", s.world.root / "nope.toml"], "config.profile_not_found"
    if case == "wrong_password":
        password = s.a.registration["amqp_password"]
        profile = _edited_profile(s, "wrong.toml", password, password[::-1])
        return [*send, "--profile", profile], "transport.authentication_failed"
    if case == "unreachable":
        profile = _edited_profile(s, "closed.toml", "127.0.0.1:5672", f"127.0.0.1:{_closed_port()}")
        return [*send, "--profile", profile], "transport.unreachable"
    if case == "wrong_vhost":  # the account has no permission on the broker's default vhost
        profile = _edited_profile(s, "vhost.toml", f'/{s.world.vhost}"', '/"')
        return [*send, "--profile", profile], "transport.access_refused"
    if case == "receipt_timeout":
        return [*send, "--timeout", "2", "--profile", s.a.profile], "transport.receipt_timeout"
    if case == "tampered_receipt":
        tampered = s.world.root / "tampered.xml"
        tampered.write_bytes(s.receipt.read_bytes().replace(b"accepted", b"rejected", 1))
        return (
            ["receipt", "verify", tampered, "--hub-cert", s.world.pki / "hub.pem"],
            "signature.invalid",
        )
    if case == "package_mismatch":
        other = s.world.root / "other.edxml"
        other.write_bytes(s.package.read_bytes() + b"\n")
        return (
            ["receipt", "verify", s.receipt, "--package", other, "--trust", s.world.pki / "ca.pem"],
            "receipt.package_mismatch",
        )
    if case == "status_refused":  # a recipient (it fetched the document) may not ask for 13
        return (
            ["status", s.b_item, "--code", "13", "--profile", s.b.profile],
            "status.code_refused",
        )
    if case == "status_side_unknown":  # B never fetched the package A keeps in sent/
        return (
            ["status", s.package, "--code", "03", "--profile", s.b.profile],
            "status.side_unknown",
        )
    if case == "status_01_is_automatic":
        return ["status", s.package, "--code", "1", "--profile", s.b.profile], "status.code_refused"
    if case == "sender_status_refused":  # the sender may not say it registered its own document
        return [
            "status",
            s.package,
            "--code",
            "03",
            "--profile",
            s.a.profile,
        ], "status.code_refused"
    if case == "register_twice":
        return (
            ["agency", "register", s.a.organ_id, "--name", "again", "--cert", s.a.cert],
            "registry.agency_exists",
        )
    if case == "bad_message_id":  # refused before anything is sent
        return [
            *send,
            "--message-id",
            "lô 1",
            "--profile",
            s.a.profile,
        ], "submission.invalid_message_id"
    if case == "no_hub_home":
        return ["agency", "list", "--home", s.world.root / "nowhere"], "config.home_missing"
    raise AssertionError(case)


CASES = [
    "unknown_profile",
    "wrong_password",
    "unreachable",
    "wrong_vhost",
    "receipt_timeout",
    "tampered_receipt",
    "package_mismatch",
    "status_refused",
    "status_side_unknown",
    "status_01_is_automatic",
    "sender_status_refused",
    "register_twice",
    "bad_message_id",
    "no_hub_home",
]


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
@pytest.mark.parametrize("case", CASES)
def test_failure_is_coded_with_non_zero_exit(stage: Stage, case: str, as_json: bool) -> None:
    args, code = _case_args(stage, case)
    run = stage.world.axis(*args, *(["--json"] if as_json else []))
    error = assert_error(run, code, as_json=as_json)
    if as_json:
        assert "Traceback" not in run.stderr, run
        assert set(error) >= {"code", "reason"}
    if case == "receipt_timeout" and as_json:
        assert error["message_id"] and Path(error["package"]).is_file()  # what was sent, kept


def test_a_rejection_by_the_hub_exits_non_zero_with_the_hubs_code(stage: Stage) -> None:
    world = stage.world
    hub = world.start_hub()
    try:
        nobody = organ("NOBODY")
        run = world.axis(
            "send",
            "--to",
            nobody,
            "--subject",
            "x",
            "--code",
            "3/T",
            "--message-id",
            "lo.1",
            "--out-dir",
            world.root / "sent",
            "--profile",
            stage.a.profile,
            "--json",
        )
        error = assert_error(run, "recipient.unknown", as_json=True)
        assert error["message_id"] == "lo.1"
        assert Path(error["package"]).name == "lo.1.edxml"  # the dot is not taken for a suffix
        assert Path(error["receipt"]).name == "lo.1.receipt.xml"  # the signed refusal: proof too
        verified = world.ok(
            "receipt",
            "verify",
            error["receipt"],
            "--package",
            error["package"],
            "--hub-cert",
            world.pki / "hub.pem",
            "--json",
        ).json()
        assert verified["receipt"]["error_code"] == "recipient.unknown"
    finally:
        assert world.stop_hub(hub) == 0, world.hub_log()
