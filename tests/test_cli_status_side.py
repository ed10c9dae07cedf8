"""`axis status` judges this system's side of a document by system, never by organ id.

The recipient is the system that fetched the document (`axis inbox fetch` stored it),
the sender the system that sent it (`axis send` recorded ``<consignment>.sent.json``).
Offline: the side decision and the CLI's refusals (typer's runner and a process).
Online: a sub-unit's take-back (13) through a real hub, and a recipient whose profile
organ is not the To organ answering 03.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from axis.client.agency import InboxItem
from axis.client.inbox_store import InboxStore
from axis.client.profile import profile_toml
from axis.commands.clerk_io import (
    document_side,
    read_sent_record,
    sent_paths,
    sent_record_path,
    write_sent_record,
)
from axis.errors import StatusSideUnknown
from cli import app
from envelopes.builder import build_package, document_from_metadata
from envelopes.model import DocumentPackage
from tests.clikit import REPO, CliWorld, assert_error, base_env, fetch_until, organ

SYSTEM_A, SUB_A = "000.00.00.A01", "000.00.01.A01"  # A serves its sub-unit SUB_A
SYSTEM_B, SUB_B = "000.00.00.B02", "000.00.01.B02"


def document(sender: str = SUB_A, to: str = SUB_B, number: str = "7") -> DocumentPackage:
    return document_from_metadata(
        {
            "from": {"organ_id": sender, "organ_name": "Vụ Pháp chế"},
            "to": [{"organ_id": to}],
            "code": {"number": number, "notation": "PC"},
            "promulgation_date": "2026-03-01",
            "subject": "V/v lấy lại văn bản",
        },
        [],
    )


def sent_by(
    folder: Path, system_id: str, package: DocumentPackage, event: str = "accepted"
) -> Path:
    """What `axis send` leaves: the package and its ``.sent.json`` record."""
    path, _ = sent_paths(folder, f"lo-{system_id}-{package.document_id.replace('/', '_')}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build_package(package))
    write_sent_record(path, system_id, "m1", package, event)
    return path


def fetched_by(folder: Path, system_id: str, package: DocumentPackage) -> Path:
    """What `axis inbox fetch` leaves for ``system_id``: the item's ``package.edxml``."""
    item = InboxItem(
        kind="edoc", body=build_package(package), message_id=f"x/{system_id}", headers={},
        package=package,
    )  # fmt: skip
    meta = InboxStore(folder, system_id).save(item)
    return folder / str(meta["id"]) / "package.edxml"


def side(path: Path, package: DocumentPackage, system_id: str, root: Path) -> str:
    return document_side(path, package, system_id, inbox=root / "inbox", sent=root / "sent")


# -- the side decision ---------------------------------------------------------------------


def test_a_sub_units_document_is_its_systems_to_take_back(tmp_path: Path) -> None:
    package = document(sender=SUB_A)  # From is the sub-unit, not the system's own organ
    path = sent_by(tmp_path / "sent", SYSTEM_A, package)
    assert side(path, package, SYSTEM_A, tmp_path) == "sender"
    record = read_sent_record(sent_record_path(path))
    assert record is not None
    assert (record["system_id"], record["sender"], record["event"]) == (SYSTEM_A, SUB_A, "accepted")
    assert record["recipients"] == [SUB_B] and record["package"] == path.name


def test_a_copy_is_found_through_the_sent_folder(tmp_path: Path) -> None:
    package = document()
    original = sent_by(tmp_path / "sent", SYSTEM_A, package)
    copy = tmp_path / "elsewhere" / "copy.edxml"
    copy.parent.mkdir()
    shutil.copyfile(original, copy)
    assert side(copy, package, SYSTEM_A, tmp_path) == "sender"
    with pytest.raises(StatusSideUnknown):  # with the wrong --sent folder: no record
        document_side(copy, package, SYSTEM_A, inbox=tmp_path / "x", sent=tmp_path / "y")


def test_the_recipient_is_the_system_that_fetched_it_whatever_its_organ(tmp_path: Path) -> None:
    package = document(to=SUB_B)  # addressed to B's sub-unit; B's profile organ is SYSTEM_B
    item = fetched_by(tmp_path / "inbox", SYSTEM_B, package)
    assert json.loads((item.parent / "meta.json").read_text())["fetched_by"] == SYSTEM_B
    assert side(item, package, SYSTEM_B, tmp_path) == "recipient"
    copy = tmp_path / "copy.edxml"
    shutil.copyfile(item, copy)
    assert side(copy, package, SYSTEM_B, tmp_path) == "recipient"  # found under --inbox


def test_a_system_that_sent_to_itself_is_a_recipient_as_the_hub_judges(tmp_path: Path) -> None:
    package = document(sender=SYSTEM_A, to=SUB_A)
    sent = sent_by(tmp_path / "sent", SYSTEM_A, package)
    fetched_by(tmp_path / "inbox", SYSTEM_A, package)
    assert side(sent, package, SYSTEM_A, tmp_path) == "recipient"


def test_an_item_stored_before_fetched_by_existed_counts_as_fetched(tmp_path: Path) -> None:
    package = document()
    item = fetched_by(tmp_path / "inbox", SYSTEM_B, package)
    meta_file = item.parent / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["fetched_by"]
    meta_file.write_text(json.dumps(meta))
    assert side(item, package, SYSTEM_B, tmp_path) == "recipient"


@pytest.mark.parametrize(
    "case", ["nothing", "another_systems_inbox", "another_systems_send", "rejected", "other_organ"]
)
def test_no_record_of_this_system_is_side_unknown(tmp_path: Path, case: str) -> None:
    package = document()
    path = tmp_path / "loose.edxml"
    path.write_bytes(build_package(package))
    if case == "another_systems_inbox":
        path = fetched_by(tmp_path / "inbox", SYSTEM_A, package)
    elif case == "another_systems_send":
        path = sent_by(tmp_path / "sent", SYSTEM_A, package)
    elif case == "rejected":  # the hub refused the send: the system is no party to it
        path = sent_by(tmp_path / "sent", SYSTEM_B, package, "rejected")
    elif case == "other_organ":  # same DocumentId, but another sender organ's document
        sent_by(tmp_path / "sent", SYSTEM_B, document(sender=SYSTEM_B))
        path = sent_by(tmp_path / "other", SYSTEM_A, package)
    with pytest.raises(StatusSideUnknown) as raised:
        side(path, package, SYSTEM_B, tmp_path)
    assert raised.value.code == "status.side_unknown"
    assert raised.value.detail == {"document_id": package.document_id, "system_id": SYSTEM_B}
    assert "--inbox" in raised.value.reason and "--sent" in raised.value.reason


# -- the command, offline: typer's runner and a process ------------------------------------


@pytest.fixture
def profiles(tmp_path: Path) -> dict[str, Path]:
    """Profiles of A and B (no broker is reached: every case is refused before)."""
    made = {}
    for system_id in (SYSTEM_A, SYSTEM_B):
        path = tmp_path / f"{system_id}.toml"
        path.write_text(
            profile_toml({
                "system_id": system_id, "amqp_url": "amqp://127.0.0.1:1/", "password": "p",
                "key": "k.pem", "cert": "c.pem", "hub_cert": "h.pem", "ca": "ca.pem",
            }),
            encoding="utf-8",
        )  # fmt: skip
        made[system_id] = path
    return made


def _status(path: Path, code: str, profile: Path, root: Path, *more: str) -> list[str]:
    return [
        "status", str(path), "--code", code, "--profile", str(profile),
        "--inbox", str(root / "inbox"), "--sent", str(root / "sent"), *more,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("who", "code", "expected"),
    [
        ("sender", "03", "status.code_refused"),  # the sender may not register its own document
        ("recipient", "13", "status.code_refused"),  # a recipient may not take it back
        ("stranger", "03", "status.side_unknown"),
        ("stranger", "13", "status.side_unknown"),
    ],
)
def test_runner_refuses_before_sending(
    tmp_path: Path, profiles: dict[str, Path], who: str, code: str, expected: str
) -> None:
    package = document()
    sent = sent_by(tmp_path / "sent", SYSTEM_A, package)
    item = fetched_by(tmp_path / "inbox", SYSTEM_B, package)
    path, profile = {
        "sender": (sent, profiles[SYSTEM_A]),
        "recipient": (item.parent, profiles[SYSTEM_B]),  # the item's folder is accepted too
        "stranger": (sent, profiles[SYSTEM_B]),
    }[who]
    root = tmp_path if who != "stranger" else tmp_path / "nowhere"
    result = CliRunner().invoke(app, _status(path, code, profile, root, "--json"))
    assert result.exit_code == 1, result.output
    error = json.loads(result.output)["error"]
    assert error["code"] == expected
    if expected == "status.code_refused":
        side_word = "sender" if who == "sender" else "recipient"
        assert f"is its {side_word}" in error["reason"]


def test_process_reports_side_unknown_in_words(tmp_path: Path, profiles: dict[str, Path]) -> None:
    package = document()
    loose = tmp_path / "loose.edxml"
    loose.write_bytes(build_package(package))
    done = subprocess.run(
        [sys.executable, "-m", "cli", *_status(loose, "13", profiles[SYSTEM_A], tmp_path)],
        cwd=REPO, env=base_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done
    assert "error: status.side_unknown: no record that system 000.00.00.A01" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_names_the_record_folders() -> None:
    result = CliRunner().invoke(app, ["status", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in ("--inbox", "--sent", "--json", "status.side_unknown"):
        assert option in result.output


# -- through a real hub --------------------------------------------------------------------


def _codes(items: list[dict[str, Any]]) -> set[str]:
    return {str(i["status_code"]) for i in items if i["kind"] == "status"}


@pytest.mark.rabbitmq
def test_a_sub_unit_takes_back_its_document_through_the_hub(world: CliWorld) -> None:
    sub_a, sub_b = organ("SUBA"), organ("SUBB")
    a = world.agency(organ("A"), "Bộ A", serves=(sub_a,))
    b = world.agency(organ("B"), "Tỉnh B", serves=(sub_b,))
    hub = world.start_hub()
    try:
        metadata = world.root / "from-sub-unit.toml"
        metadata.write_text(f'[from]\norgan_id = "{sub_a}"\norgan_name = "Vụ A"\n', "utf-8")
        sent = world.ok(
            "send", metadata, "--to", sub_b, "--subject", "V/v thử", "--code", "9/PC",
            "--out-dir", world.root / "sent", "--profile", a.profile, "--json",
        ).json()  # fmt: skip
        assert sent["event"] == "accepted"
        package, document_id = Path(sent["package"]), sent["document_id"]
        record = read_sent_record(sent_record_path(package))
        assert record is not None and (record["system_id"], record["sender"]) == (a.organ_id, sub_a)

        inbox_b = world.root / "inbox-b"
        got = fetch_until(world, b.profile, inbox_b, lambda i: any(x["kind"] == "edoc" for x in i))
        [doc] = [i for i in got if i["kind"] == "edoc"]
        item = inbox_b / doc["id"]

        # B answers a document addressed to its sub-unit; it may not ask to take it back.
        answered = world.ok("status", item, "--code", "03", "--profile", b.profile, "--json")
        assert answered.json()["side"] == "recipient"
        refused = world.axis("status", item, "--code", "13", "--profile", b.profile, "--json")
        assert_error(refused, "status.code_refused", as_json=True)

        # A sent it for its sub-unit: 03 is refused, 13 goes (a copy, found through --sent).
        refused = world.axis("status", package, "--code", "03", "--profile", a.profile)
        assert_error(refused, "status.code_refused", as_json=False)
        copy = world.root / "elsewhere" / "copy.edxml"
        copy.parent.mkdir()
        shutil.copyfile(package, copy)
        took_back = world.ok(
            "status", copy, "--code", "13", "--description", "Xin rút lại",
            "--sent", world.root / "sent", "--profile", a.profile, "--json",
        ).json()  # fmt: skip
        assert (took_back["side"], took_back["status_code"]) == ("sender", "13")

        # The hub routed both: B gets the take-back request, A gets 03.
        fetch_until(world, b.profile, inbox_b, lambda items: "13" in _codes(items))
        fetch_until(world, a.profile, world.root / "inbox-a", lambda items: "03" in _codes(items))
        timeline = world.ok("trace", document_id, "--home", world.home, "--json").json()
        statuses = {e.get("status_code") for e in timeline["events"] if e["event"] == "status"}
        assert {"01", "03", "13"} <= statuses, timeline["events"]

        # A system with no record of the document is told so, and nothing is sent.
        unknown = world.axis(
            "status", package, "--code", "03", "--inbox", world.root / "none",
            "--profile", b.profile, "--json",
        )  # fmt: skip
        assert_error(unknown, "status.side_unknown", as_json=True)
    finally:
        assert world.stop_hub(hub) == 0, world.hub_log()
