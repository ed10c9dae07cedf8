"""An operator's commands as real processes: agencies, the directory, `axis serve` workers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clikit import (
    REPO,
    AgencyFiles,
    CliWorld,
    assert_error,
    base_env,
    organ,
    submit_consumers,
    wait_for,
)

pytestmark = pytest.mark.rabbitmq


def _send(world: CliWorld, sender: AgencyFiles, to: str, number: str) -> dict[str, object]:
    """``axis send --json``; returns the receipt data, or the error of a rejection."""
    run = world.axis(
        "send",
        "--to",
        to,
        "--subject",
        "V/v thử",
        "--code",
        f"{number}/T",
        "--out-dir",
        world.root / "sent",
        "--profile",
        sender.profile,
        "--json",
    )
    data = run.json()
    assert (run.returncode == 0) == data["ok"], run
    return data if data["ok"] else dict(data["error"])


def _fingerprints(world: CliWorld, organ_id: str) -> dict[str, bool]:
    shown = world.ok("agency", "show", organ_id, "--json").json()
    return {c["fingerprint"]: c["revoked"] for c in shown["certificates"]}


def test_agency_lifecycle_and_its_effect_on_the_hub(world: CliWorld) -> None:
    department = organ("DEPT")
    a, b = (
        world.agency(organ("A"), "Cơ quan A"),
        world.agency(organ("B"), "Cơ quan B", serves=(department,)),
    )
    assert world.ok("agency", "show", b.organ_id, "--json").json()["serves"] == sorted(
        [b.organ_id, department]
    )
    listed = world.ok("agency", "list", "--json").json()["systems"]
    assert {(s["system_id"], s["active"]) for s in listed} == {
        (a.organ_id, True),
        (b.organ_id, True),
    }
    shown = world.ok("agency", "show", a.organ_id, "--json").json()
    assert shown["serves"] == [a.organ_id] and shown["inbox"] == f"axis.inbox.{a.organ_id}"
    [first] = _fingerprints(world, a.organ_id)
    text = world.ok("agency", "show", a.organ_id).stdout
    assert first in text and "Cơ quan A" in text and "active" in text

    assert world.ok("agency", "suspend", b.organ_id, "--json").json()["active"] is False
    assert f"{b.organ_id:20} SUSPENDED" in world.ok("agency", "list").stdout

    # Another organ's certificate is refused; a second one of A's own (another CA) is bound.
    wrong = world.axis("agency", "add-cert", a.organ_id, "--cert", b.cert, "--json")
    assert_error(wrong, "signature.invalid_key_material", as_json=True)
    world.ok("pki", "init", world.root / "pki2")
    world.ok("pki", "issue", world.root / "pki2", "--organ-id", a.organ_id, "--name", "A mới")
    added = world.ok(
        "agency",
        "add-cert",
        a.organ_id,
        "--cert",
        world.root / "pki2" / f"{a.organ_id}.pem",
        "--json",
    ).json()
    assert _fingerprints(world, a.organ_id) == {first: False, added["fingerprint"]: False}

    for bad, code in (("0000", "registry.unknown_agency"), (first[:6], "registry.unknown_agency")):
        assert_error(world.axis("agency", "revoke-cert", a.organ_id, bad), code, as_json=False)
    world.ok("agency", "revoke-cert", a.organ_id, first[:12].upper())  # a unique prefix
    assert _fingerprints(world, a.organ_id) == {first: True, added["fingerprint"]: False}
    for command in ("suspend", "resume", "show"):
        missing = world.axis("agency", command, "NOBODY.X1", "--json")
        assert_error(missing, "registry.unknown_agency", as_json=True)

    hub = world.start_hub()
    try:
        assert _send(world, a, b.organ_id, "1")["code"] == "signature.revoked_certificate"
        assert _send(world, b, a.organ_id, "2")["code"] == "sender.system_suspended"
        assert world.ok("agency", "resume", b.organ_id, "--json").json()["active"] is True
        assert _send(world, b, a.organ_id, "3")["event"] == "accepted"
    finally:
        assert world.stop_hub(hub) == 0, world.hub_log()


CSV_BAD = """organ_id,name,parent_id
000.00.00.H29,UBND tỉnh Hòa Bình,
000.00.01.H29,Sở Nội vụ tỉnh Hòa Bình,000.00.00.H29
not an id!,Cơ quan lạ,
"""


def test_directory_import_names_the_bad_line_and_imports_nothing(world: CliWorld) -> None:
    bad = world.root / "bad.csv"
    bad.write_text(CSV_BAD, encoding="utf-8")
    for as_json in (True, False):
        run = world.axis("directory", "import", bad, *(["--json"] if as_json else []))
        error = assert_error(run, "registry.import_failed", as_json=as_json)
        assert "line 4" in (error["reason"] if as_json else run.stderr), run
    missing = world.axis("directory", "import", world.root / "none.csv", "--json")
    assert_error(missing, "registry.import_failed", as_json=True)

    good = world.root / "good.csv"
    good.write_text("".join(CSV_BAD.splitlines(keepends=True)[:3]), encoding="utf-8")
    assert world.ok("directory", "import", good, "--json").json()["imported"] == 2
    assert "imported 2 organs" in world.ok("directory", "import", good).stdout  # upsert: again


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def test_serve_with_two_workers_consumes_twice_and_stops_on_sigterm(world: CliWorld) -> None:
    supervisor = world.start_hub("--workers", "2", consumers=2)
    workers = _children(supervisor.pid)
    assert len(workers) == 2, workers
    started = time.monotonic()
    assert world.stop_hub(supervisor) == 0, world.hub_log()
    assert time.monotonic() - started < 8
    assert all(_gone(pid) for pid in workers)
    wait_for(lambda: submit_consumers(world.amqp_url) == 0, timeout=10, what="no consumers")
    assert world.hub_log().count("ready") == 2


def test_a_dying_worker_stops_the_whole_hub(world: CliWorld) -> None:
    supervisor = world.start_hub("--workers", "2", consumers=2)
    first, second = _children(supervisor.pid)
    subprocess.run(["kill", "-KILL", str(first)], check=True)
    assert supervisor.wait(timeout=15) != 0  # the operator's supervisor sees the failure
    world.hubs.remove(supervisor)
    wait_for(lambda: _gone(second), timeout=10, what="the other worker to stop")


def test_serve_init_and_register_failures_are_coded(world: CliWorld) -> None:
    assert_error(world.axis("init", world.home, "--json"), "pki.exists", as_json=True)
    closed = world.env["AXIS_AMQP_URL"].replace(":5672/", ":1/")
    run = world.axis("serve", env={"AXIS_AMQP_URL": closed}, timeout=30)
    assert_error(run, "transport.unreachable", as_json=False)
    unknown = world.axis(
        "agency", "register", "bad id", "--name", "x", "--cert", world.pki / "hub.pem"
    )
    assert_error(unknown, "registry.invalid_organ_id", as_json=False)


COMMANDS = [
    ["init"],
    ["serve"],
    ["agency", "register"],
    ["agency", "list"],
    ["agency", "show"],
    ["agency", "suspend"],
    ["agency", "resume"],
    ["agency", "add-cert"],
    ["agency", "revoke-cert"],
    ["directory", "import"],
    ["profile", "create"],
    ["send"],
    ["inbox", "fetch"],
    ["inbox", "list"],
    ["status"],
    ["trace"],
    ["receipt", "verify"],
]


def test_every_command_has_help() -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cli", *cmd, "--help"],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**base_env(), "COLUMNS": "200", "NO_COLOR": "1"},
        )
        for cmd in COMMANDS
    ]
    for cmd, proc in zip(COMMANDS, procs, strict=True):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (cmd, err)
        assert "Usage:" in out and "--help" in out, cmd
        if cmd != ["serve"]:
            assert "--json" in out, cmd
