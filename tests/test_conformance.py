"""The vendor conformance kit (``axis conformance``): a reference connector passes every rule,
a careless one fails exactly the rules it breaks, and the kit leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from axis.conformance.hooks import hook_environment, run_hook
from axis.conformance.rules import RULES, Seen, judge_sending
from axis.pki_files import init_pki, issue_agency_files
from axis.provision import Management, generate_password
from cli import app
from routing.values import SubmissionRecord
from tests.clikit import organ

REPO = Path(__file__).resolve().parents[1]
AXIS = f'"{sys.executable}" "{REPO / "cli.py"}"'
CARELESS = f'"{sys.executable}" "{REPO / "tests" / "careless_vendor.py"}"'
runner = CliRunner()


def write_profile(folder: Path, hooks: dict[str, str], *, key: bool = True) -> Path:
    """A vendor profile for a fresh organ, with its certificate issued by a CA of its own."""
    system = organ("CONF")
    pki = folder / "vendor-pki"
    init_pki(pki, _now())
    paths = issue_agency_files(pki, system, "Vendor under test", _now())
    lines = [f'system_id = "{system}"', 'organ_name = "Vendor under test"',
             f'certificate = "{paths.cert}"', f'peer_organ = "{organ("PEER")}"',
             "hook_timeout = 30"]  # fmt: skip
    if key:
        lines.append(f'key = "{paths.key}"')
    lines.append("[hooks]")
    lines += [f"{name} = {json.dumps(command)}" for name, command in hooks.items()]
    profile = folder / "vendor.toml"
    profile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return profile


def _now() -> datetime:
    return datetime.now(UTC)


def _urls(amqp: str, management: str) -> list[str]:
    return ["--amqp-url", amqp, "--management-url", management]


def test_the_reference_connector_passes_every_rule_and_nothing_is_left_behind(
    tmp_path: Path, amqp_base_url: str, management_base_url: str
) -> None:
    hooks = {
        "send": f"{AXIS} send --to $AXIS_CONFORMANCE_PEER_ORGAN --subject 'Kiểm tra' "
                "--code 1/KIT --out-dir $AXIS_CONFORMANCE_WORKDIR/sent",
        "receive": f"{AXIS} inbox fetch --to $AXIS_CONFORMANCE_WORKDIR/inbox",
    }  # fmt: skip
    profile = write_profile(tmp_path, hooks)
    done = subprocess.run(
        [sys.executable, "-m", "cli", "conformance", "run", "--profile", str(profile), "--json",
         *_urls(amqp_base_url, management_base_url)],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [r["id"] for r in report["rules"]] == [rule.id for rule in RULES]
    assert {r["result"] for r in report["rules"]} == {"pass"}, report
    assert report["passed"] == len(RULES) and not report["kept"]
    management = Management(management_base_url)
    assert not management.vhost_exists(report["vhost"])
    system = next(line.split('"')[1] for line in profile.read_text().splitlines()
                  if line.startswith("system_id"))  # fmt: skip
    assert not management.user_exists(system)


def test_a_careless_connector_fails_exactly_the_rules_it_breaks(
    tmp_path: Path, amqp_base_url: str, management_base_url: str
) -> None:
    keyed = write_profile(tmp_path, {"send": "true"})  # the key and cert paths, for the hooks
    text = keyed.read_text()
    key = next(line.split('"')[1] for line in text.splitlines() if line.startswith("key ="))
    cert = next(line.split('"')[1] for line in text.splitlines() if line.startswith("certificate"))
    hooks = {name: f"{CARELESS} {name} {key} {cert}" for name in ("send", "receive")}
    keyed.write_text(text.split("[hooks]")[0] + "[hooks]\n" + "\n".join(
        f"{name} = {json.dumps(command)}" for name, command in hooks.items()) + "\n")
    workdir = tmp_path / "run"
    result = runner.invoke(app, ["conformance", "run", "--profile", str(keyed), "--json",
                                 "--workdir", str(workdir),
                                 *_urls(amqp_base_url, management_base_url)])  # fmt: skip
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    failed = {r["id"] for r in report["rules"] if r["result"] == "fail"}
    assert failed == {"submit.persistent", "submit.content_type", "deliver.once",
                      "deliver.tampered", "deliver.wrong_signer"}, report  # fmt: skip
    assert {r["result"] for r in report["rules"]} == {"pass", "fail"}
    assert report["kept"] and (workdir / "receive.log").is_file()
    details = {r["id"]: r["detail"] for r in report["rules"]}
    assert details["submit.persistent"] == "1"
    assert "status 01" in details["deliver.tampered"]


def test_a_broken_hook_fails_its_rules_and_the_text_report_points_at_the_docs(
    tmp_path: Path, amqp_base_url: str, management_base_url: str
) -> None:
    profile = write_profile(tmp_path, {"send": "exit 3"}, key=False)
    result = runner.invoke(app, ["conformance", "run", "--profile", str(profile),
                                 *_urls(amqp_base_url, management_base_url)])  # fmt: skip
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith(f"0 passed, 2 failed, {len(RULES) - 2} skipped")
    assert any(line.split()[:2] == ["FAIL", "send.hook"] for line in lines)
    assert "exited 3" in result.stdout and "see docs/conformance.md#the-profile" in result.stdout
    assert any(line.split()[:2] == ["SKIP", "receive.hook"] for line in lines)


def test_an_existing_broker_user_is_neither_reset_nor_deleted(
    tmp_path: Path, amqp_base_url: str, management_base_url: str
) -> None:
    profile = write_profile(tmp_path, {"send": "true"})
    system = next(line.split('"')[1] for line in profile.read_text().splitlines()
                  if line.startswith("system_id"))  # fmt: skip
    management = Management(management_base_url)
    management.create_user(system, generate_password())
    try:
        result = runner.invoke(app, ["conformance", "run", "--profile", str(profile), "--json",
                                     *_urls(amqp_base_url, management_base_url)])  # fmt: skip
        assert result.exit_code == 1, result.output
        assert json.loads(result.stdout)["error"]["code"] == "registry.agency_exists"
        assert management.user_exists(system)
    finally:
        management.delete_user(system)


@pytest.mark.parametrize(
    ("edit", "code", "words"),
    [
        (lambda t: "colour = 1\n" + t, "config.invalid", "unknown key(s) colour"),
        (lambda t: t.replace("send =", "sned ="), "config.invalid", "unknown hook(s) sned"),
        (lambda t: t.split("[hooks]")[0] + "[hooks]\n", "config.invalid", "names no hook"),
        (lambda t: t.replace("hook_timeout = 30", "hook_timeout = 0"), "config.invalid",
         "hook_timeout"),
        (lambda t: t.replace("system_id =", "#", 1), "config.invalid", "lacks system_id"),
        (lambda t: t.replace('system_id = "', 'system_id = "X', 1),
         "signature.invalid_key_material", "names organ"),
        (lambda t: t + "[", "config.invalid", "not valid TOML"),
    ],
)  # fmt: skip
def test_a_bad_profile_is_refused_with_a_code_before_anything_runs(
    tmp_path: Path, edit: object, code: str, words: str
) -> None:
    profile = write_profile(tmp_path, {"send": "true"})
    assert callable(edit)
    profile.write_text(edit(profile.read_text()))
    result = runner.invoke(app, ["conformance", "run", "--profile", str(profile), "--json",
                                 "--management-url", "http://nobody:x@127.0.0.1:1/"])  # fmt: skip
    error = json.loads(result.stdout)["error"]
    assert (error["code"], result.exit_code in (1, 3)) == (code, True), error
    assert words in error["reason"]


def test_a_missing_profile_is_a_configuration_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["conformance", "run", "--profile", str(tmp_path / "no.toml")])
    assert result.exit_code == 3
    assert "config.profile_not_found" in result.stderr


def test_the_rule_list_is_published() -> None:
    result = runner.invoke(app, ["conformance", "rules", "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.stdout)["rules"]
    assert [r["id"] for r in listed] == [rule.id for rule in RULES]
    docs = (REPO / "docs" / "conformance.md").read_text(encoding="utf-8")
    for rule in RULES:
        assert f"`{rule.id}`" in docs, rule.id
        page = rule.doc.split("#")[0]
        assert (REPO / "docs" / page).is_file(), rule.doc


# -- the pure judging -------------------------------------------------------------------


def _record(code: str | None) -> SubmissionRecord:
    return SubmissionRecord(
        user_id="S", message_id="m1", kind="edoc", sha256="", raw=b"", receipt=b"",
        received_at=datetime.now(UTC), outcome="rejected" if code else "accepted",
        error_code=code, reason="why",
    )  # fmt: skip


HUB_STEPS = ("submit.schema", "submit.sender", "submit.signature", "submit.recipients")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (None, ("pass", "pass", "pass", "pass", "pass")),
        ("envelope.schema_violation", ("fail", "skip", "skip", "skip", "fail")),
        ("sender.organ_not_served", ("pass", "fail", "skip", "skip", "fail")),
        ("signature.untrusted_certificate", ("pass", "pass", "fail", "skip", "fail")),
        ("signature.certificate_not_registered", ("pass", "pass", "fail", "skip", "fail")),
        ("recipient.unknown", ("pass", "pass", "pass", "fail", "fail")),
        ("submission.rate_limited", ("skip", "skip", "skip", "skip", "fail")),
    ],
)
def test_the_hubs_answer_is_judged_at_the_step_that_refused(
    code: str | None, expected: tuple[str, ...]
) -> None:
    from axis.conformance.rules import HookRun

    seen = Seen("edoc", "m1", "S", 2, "application/xml", b"<x/>")
    verdicts = judge_sending("S", HookRun("h", 0, 0.1), 30, seen, _record(code))
    results = {v.rule: v.result for v in verdicts}
    assert tuple(results[rule] for rule in (*HUB_STEPS, "submit.accepted")) == expected
    assert all(results[r] == "pass" for r in ("send.hook", "submit.published", "submit.user_id"))


async def test_a_hook_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    started = time.monotonic()
    run = await run_hook("sleep 30 & echo $! > child.pid; sleep 30", cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin"}, timeout=0.5,
                         log=tmp_path / "h.log")  # fmt: skip
    assert run.exit_code is None and time.monotonic() - started < 5
    assert "killed after the 0.5 s timeout" in run.verdict("send.hook", 0.5).detail
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while _running(child) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not _running(child)  # the background child went with the shell


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_a_hook_sees_the_kits_variables_and_none_of_the_callers_axis_settings(
    tmp_path: Path,
) -> None:
    env = hook_environment({"PATH": "/usr/bin:/bin", "AXIS_HOME": "/secret"}, {"peer_organ": "P"})
    run = await run_hook('echo "$AXIS_CONFORMANCE_PEER_ORGAN:${AXIS_HOME:-none}"; exit 4',
                         cwd=tmp_path, env=env, timeout=10, log=tmp_path / "h.log")  # fmt: skip
    assert (run.exit_code, run.output_tail) == (4, "P:none\n")
