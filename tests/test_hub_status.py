"""``axis hub status`` as a real process, about a real hub on the real broker after real
traffic; and its coded errors when the database, management API or vhost is missing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from axis import hub_overview
from axis.hub_overview import latest_rejections
from axis.settings import write_default_config
from axis.store import Store
from cli import app
from routing.contract import inbox_queue_name
from tests.clikit import REPO, Run, assert_error, base_env, organ
from tests.hubkit import HubKit, document, vhost_url
from tests.test_store import T0, submission

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def kit_db_url() -> None:
    """SQLite under the hub: the overview's own store read runs on both stores below
    (``test_latest_rejections_*``)."""
    return None


def hub_status(kit: HubKit, *args: str) -> Run:
    """``axis hub status ARGS`` about the kit's hub home, in a process of its own."""
    env = {**base_env(), "AXIS_AMQP_URL": kit.settings.amqp_url,
           "AXIS_MANAGEMENT_URL": kit.settings.management_url}  # fmt: skip
    argv = ("hub", "status", "--home", str(kit.home), *args)
    done = subprocess.run([sys.executable, "-m", "cli", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    return Run(argv, done.returncode, done.stdout, done.stderr)


async def status_until(kit: HubKit, ready: Any, *args: str, timeout: float = 20) -> dict[str, Any]:
    """``--json`` status until ``ready(data)``: the management API's counts lag a few s."""
    deadline = time.monotonic() + timeout
    while True:
        run = await asyncio.to_thread(hub_status, kit, "--json", *args)
        assert run.returncode == 0, run
        data = run.json()
        if ready(data) or time.monotonic() > deadline:
            return data
        await asyncio.sleep(0.5)


def system(data: dict[str, Any], system_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in data["systems"] if s["system_id"] == system_id]
    assert len(found) == 1, data["systems"]
    return found[0]


async def test_status_after_traffic(kit: HubKit) -> None:
    a, b = await kit.agency(organ("A")), await kit.agency(organ("B"))
    idle = await kit.agency(organ("S"))
    kit.store.set_system_active(idle.organ_id, False)
    sent = await a.client.send(a.client.sign(document(a.organ_id, [b.organ_id])))
    assert (await a.client.wait_receipt(sent, 15)).receipt.event == "accepted"
    unknown = await a.client.send(a.client.sign(document(a.organ_id, [organ("NOBODY")])))
    assert (await a.client.wait_receipt(unknown, 15)).receipt.error_code == "recipient.unknown"
    await a.client.send(a.client.sign(document(a.organ_id, [b.organ_id], number="2")),
                        message_id="same-id")  # fmt: skip
    await a.client.wait_receipt("same-id", 15)
    await a.client.send(a.client.sign(document(a.organ_id, [b.organ_id], number="3")),
                        message_id="same-id")  # other bytes: a conflict, into axis.dead
    assert kit.evidence is not None
    await asyncio.to_thread(kit.evidence.make_head)

    data = await status_until(
        kit, lambda d: system(d, b.organ_id)["inbox"]["messages"] == 2
        and d["dead_letters"]["count"] == 1 and d["hub_workers"] == 1, "--letters", "0", timeout=45,
    )  # fmt: skip
    assert data["ok"] is True and data["vhost"] == kit.vhost
    assert data["home"] == str(kit.home)
    assert data["registry"] == {
        "systems_active": 2, "systems_suspended": 1, "organs_served": 3,
        "certificates_active": 3, "certificates_revoked": 0, "certificates_expiring": 0,
    }  # fmt: skip
    assert data["hub_workers"] == 1
    assert data["queues"]["submit"]["present"] and data["queues"]["submit"]["consumers"] == 1
    assert [q["queue"] for q in data["queues"]["retry"]] == [f"axis.retry.{n}" for n in
                                                             range(1, 8)]  # fmt: skip
    inbox_b = system(data, b.organ_id)
    assert inbox_b["inbox"] == {"queue": inbox_queue_name(b.organ_id), "messages": 2,
                                "consumers": 0, "present": True}  # fmt: skip
    assert data["systems"][0]["system_id"] in (a.organ_id, b.organ_id)  # deepest first
    assert system(data, idle.organ_id)["active"] is False
    assert data["dead_letters"] == {"count": 1, "scanned": 0, "newest": []}  # not read
    held = data["attachments"]
    assert held["queue"]["present"] and held["folder"] == str(kit.settings.attachments_path)
    assert [held[k] for k in ("files", "file_bytes", "uploads", "upload_bytes")] == [0] * 4
    assert data["log"]["size"] == kit.store.log_size() > 0
    head = data["log"]["head"]
    assert head is not None and head["tree_size"] == data["log"]["size"]
    rejected = data["rejections"]
    assert [(r["user_id"], r["error_code"]) for r in rejected] == [
        (a.organ_id, "recipient.unknown")
    ]  # the conflict is not stored: only the dead letter tells of it
    assert rejected[0]["message_id"] == unknown

    full = (await asyncio.to_thread(hub_status, kit, "--json")).json()
    dead = full["dead_letters"]
    assert dead["count"] == dead["scanned"] == 1
    (letter,) = dead["newest"]
    assert letter["message_id"] == "same-id" and letter["origin"] == a.organ_id
    assert letter["reason"] == "submission.duplicate_conflict"
    again = (await asyncio.to_thread(hub_status, kit, "--json")).json()
    assert again["dead_letters"]["count"] == 1  # reading it removed nothing

    text = await asyncio.to_thread(hub_status, kit)
    assert text.returncode == 0, text
    lines = text.stdout.splitlines()
    assert "hub workers   1 consuming axis.submit" in lines
    assert any(line.startswith("attachments   0 file(s) kept, 0 bytes; 0 upload(s)")
               for line in lines)  # fmt: skip
    assert any(line.startswith("dead letters  1 in axis.dead") for line in lines)
    assert any("same-id" in line and "submission.duplicate_conflict" in line for line in lines)
    assert any(unknown in line and "recipient.unknown" in line for line in lines)
    row = next(line for line in lines if line.lstrip().startswith(idle.organ_id))
    assert "SUSPENDED" in row and idle.name in row


# -- the store read ------------------------------------------------------------------


def test_latest_rejections_newest_first_within_the_window(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(6):
        outcome = "rejected" if i % 2 else "accepted"
        record = submission(message_id=f"m{i}", document_id=f"d{i}", outcome=outcome,
                            at=T0 + timedelta(seconds=i))  # fmt: skip
        store.record_submission(record, [], [])
    found = latest_rejections(store.engine, 2)
    assert [(r.message_id, r.error_code) for r in found] == [
        ("m5", "signature.invalid"), ("m3", "signature.invalid")]  # fmt: skip
    assert found[0].at == T0 + timedelta(seconds=5) and found[0].kind == "edoc"
    monkeypatch.setattr(hub_overview, "REJECTION_WINDOW", 2)  # only the 2 latest are read
    assert [r.message_id for r in latest_rejections(store.engine, 5)] == ["m5"]
    assert latest_rejections(store.engine, 0) == []


def test_systems_are_listed_deepest_inbox_first_then_by_id() -> None:
    from types import SimpleNamespace
    from typing import cast

    from axis.commands.hub_status import _systems
    from axis.queues import QueueStat
    from axis.registry import RegistrySnapshot

    systems = {s: SimpleNamespace(system_id=s, name=s, active=True) for s in ("A", "B", "C")}
    snapshot = cast(RegistrySnapshot, SimpleNamespace(systems=systems))
    queues = {inbox_queue_name("C"): QueueStat(inbox_queue_name("C"), 7, 0),
              inbox_queue_name("A"): QueueStat(inbox_queue_name("A"), 0, 1)}  # fmt: skip
    rows = _systems(snapshot, queues)
    assert [r["system_id"] for r in rows] == ["C", "A", "B"]  # the deepest has the last id
    assert rows[2]["inbox"]["present"] is False


# -- coded errors ----------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "hub"
    home.mkdir()
    write_default_config(home)
    return home


def invoke(home: Path, env: dict[str, str]) -> Run:
    result = CliRunner().invoke(app, ["hub", "status", "--home", str(home), "--json"],
                                env=env)  # fmt: skip
    return Run(("hub", "status"), result.exit_code, result.stdout, "")


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"AXIS_MANAGEMENT_URL": "http://guest:guest@127.0.0.1:1/"}, "transport.unreachable"),
        ({"AXIS_DB_URL": "postgresql+psycopg://axis:s3cret@127.0.0.1:1/axis"},
         "store.unavailable"),
        ({"AXIS_DB_URL": "sqlite:////nonexistent-folder-for-axis/axis.db"}, "store.unavailable"),
        ({"AXIS_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/no-such-vhost-for-axis"},
         "transport.hub_not_ready"),
    ],
    ids=["management-api-down", "database-down", "sqlite-unopenable", "no-vhost"],
)  # fmt: skip
def test_unreachable_parts_are_coded_errors(
    home: Path, management_base_url: str, amqp_base_url: str,
    override: dict[str, str], code: str,
) -> None:  # fmt: skip
    env = {"AXIS_AMQP_URL": vhost_url(amqp_base_url, "/"),
           "AXIS_MANAGEMENT_URL": management_base_url, **override}  # fmt: skip
    run = invoke(home, env)
    assert run.returncode == 4, run
    error = assert_error(run, code, as_json=True)
    assert "s3cret" not in run.stdout
    if "AXIS_DB_URL" in override:
        assert urlsplit(override["AXIS_DB_URL"]).path in error["reason"]


@pytest.mark.parametrize("command", [["agency", "list"], ["directory", "lookup", "000.00.00.G22"]])
def test_other_hub_commands_give_the_same_coded_error_for_an_unopenable_store(
    home: Path, command: list[str]
) -> None:
    env = {"AXIS_DB_URL": "sqlite:////nonexistent-folder-for-axis/axis.db"}
    result = CliRunner().invoke(app, [*command, "--home", str(home), "--json"], env=env)
    run = Run(tuple(command), result.exit_code, result.stdout, "")
    assert run.returncode == 4, run
    assert_error(run, "store.unavailable", as_json=True)
